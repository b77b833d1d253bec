//! The `dynamo` binary: a node SIGKILLed during writes, restarted from its data directory.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{check_stores, eventually, replicas_of, wait_up, Spec, REQUEST_TIMEOUT_MS, SECRET};
use dynamo_node::NodeId;

fn spawn(spec: &Spec, dir: &Path, id: NodeId) -> Child {
    let n = spec.len() as u64;
    let peers: Vec<String> = (1..=n)
        .map(|p| format!("[{p}, \"{}\"]", spec.address(p)))
        .collect();
    let config = format!(
        "id = {id}\nlisten = \"{}\"\ndata_dir = \"{}\"\n\n[node]\ninitial_members = [{}]\nseeds = [{}]\n\
         gossip_interval = 200\nhandoff_interval = 200\nsync_interval = 200\nrequest_timeout = {}\n",
        spec.address(id),
        dir.join(format!("node-{id}")).display(),
        (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
        peers.join(", "),
        REQUEST_TIMEOUT_MS,
    );
    let file = dir.join(format!("node-{id}.toml"));
    std::fs::write(&file, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .env("DYNAMO_PEER_SECRET", crate::PEER_SECRET)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_then_restart_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec::processes(4, Some(tmp.path()));
    let mut children: Vec<Child> = (1..=4).map(|id| spawn(&spec, tmp.path(), id)).collect();
    wait_up(&spec).await;

    let mut client = spec.client();
    let mut written = Vec::new();
    for i in 0..300 {
        if i == 100 {
            // SIGKILL: no shutdown, no final commit.
            children[3].start_kill().unwrap();
            children[3].wait().await.unwrap();
            // Keep writing while the failure detector notices (writes must succeed throughout),
            // then write on with node 4 known down: fallbacks take its writes with hints.
            let mut j = 0;
            loop {
                let (key, value) = (format!("early-{j}"), format!("value-{j}"));
                client
                    .put(key.as_bytes(), value.clone().into_bytes(), &[])
                    .await
                    .unwrap();
                written.push((key, value));
                j += 1;
                let s = spec.client_of(1).status().await.unwrap();
                if s.members.iter().any(|m| m.id == 4 && !m.up) {
                    break;
                }
                assert!(j < 2000, "node 1 never saw node 4 down");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if i == 200 {
            children[3] = spawn(&spec, tmp.path(), 4);
        }
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        client
            .put(key.as_bytes(), value.clone().into_bytes(), &[])
            .await
            .unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        written.push((key, value));
    }

    // Node 4 is back: it receives its hints and anti-entropy fills the rest.
    let ring = spec.client_of(1).ring().await.unwrap();
    let expected = |id: NodeId| {
        written
            .iter()
            .filter(|(k, _)| replicas_of(&ring, k.as_bytes()).contains(&id))
            .count()
    };
    for id in 1..=4u64 {
        let want = expected(id);
        let ok = eventually(30, || async {
            let s = spec.client_of(id).status().await.ok()?;
            (s.keys >= want && s.hints_pending == 0).then_some(())
        })
        .await;
        if ok.is_none() {
            let s = spec.client_of(id).status().await.unwrap();
            panic!(
                "node {id} never got its {want} keys: it has {}, {} hints pending, {:?}",
                s.keys, s.hints_pending, s.counters
            );
        }
    }
    let mut hints = 0;
    for id in 1..=3u64 {
        hints += spec
            .client_of(id)
            .status()
            .await
            .unwrap()
            .counters
            .hints_recorded;
    }
    assert!(
        hints > 0,
        "writes while node 4 was down went to fallbacks with hints"
    );

    // Stop gracefully (SIGTERM), then read every data directory.
    for child in &mut children {
        stop(child).await;
    }
    check_stores(tmp.path(), &ring, &written);
}

/// Stops `child` with SIGTERM and waits for it to exit.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

/// Copies directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A node's data directory put back from a backup taken a run earlier (node stopped, directory
/// copied, node started again and written to, stopped, directory replaced by the copy): the
/// peers knew its last run further than its store records, so it awaits its ranges (no read of
/// them counts) until anti-entropy has refilled them, and then holds every key. Before, it
/// served the backup's keys as a full replica, its reads counting toward R.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_awaits_its_ranges_until_refilled() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec::processes(3, Some(tmp.path()));
    let mut children: Vec<Child> = (1..=3).map(|id| spawn(&spec, tmp.path(), id)).collect();
    wait_up(&spec).await;
    let mut client = spec.client_of(1);
    let mut written = 0;
    let mut write = |n: usize| {
        let range = written..written + n;
        written += n;
        range
    };
    for i in write(20) {
        client
            .put(format!("key-{i}").as_bytes(), b"v".to_vec(), &[])
            .await
            .unwrap();
    }
    stop(&mut children[2]).await;
    let data = tmp.path().join("node-3");
    let backup = tmp.path().join("node-3-backup");
    copy_dir(&data, &backup);
    children[2] = spawn(&spec, tmp.path(), 3);
    wait_up(&spec).await;
    for i in write(80) {
        client
            .put(format!("key-{i}").as_bytes(), b"v".to_vec(), &[])
            .await
            .unwrap();
    }
    let keys = |id| {
        let spec = &spec;
        async move { spec.client_of(id).status().await.ok().map(|s| s.keys) }
    };
    let all = eventually(60, || async { (keys(3).await? == written).then_some(()) }).await;
    assert!(all.is_some(), "node 3 never held all {written} keys");
    stop(&mut children[2]).await;
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::rename(&backup, &data).unwrap();
    children[2] = spawn(&spec, tmp.path(), 3);
    let awaiting = eventually(60, || async {
        let s = spec.client_of(3).status().await.ok()?;
        (s.partitions_incoming > 0).then_some(s.partitions_incoming)
    })
    .await;
    assert!(
        awaiting.is_some(),
        "node 3, restored from a backup, never awaited its ranges"
    );
    let refilled = eventually(120, || async {
        let s = spec.client_of(3).status().await.ok()?;
        (s.partitions_incoming == 0 && s.keys == written).then_some(())
    })
    .await;
    let s = spec.client_of(3).status().await.unwrap();
    assert!(
        refilled.is_some(),
        "node 3 never was refilled: {} of {written} keys, {} ranges awaited",
        s.keys,
        s.partitions_incoming
    );
    for child in &mut children {
        stop(child).await;
    }
}

/// CPU time (user and system, in clock ticks) the thread `tid` of process `pid` has used.
fn thread_cpu_ticks(pid: u32, tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A node given one worker (`TOKIO_WORKER_THREADS=1`, which `dynamo cluster` gives each of three
/// nodes on two cores) runs tokio's single-threaded scheduler: its main thread serves the
/// requests. The multi-threaded runtime with one worker leaves the main thread parked in
/// `block_on` (0 ticks over the same requests), serving on a worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_given_one_worker_serves_on_its_main_thread() {
    let node = crate::hostile::Proc::start_with(
        &["--n", "1", "--r", "1", "--w", "1"],
        None,
        &[("TOKIO_WORKER_THREADS", "1")],
    )
    .await;
    let pid = node.child.id().unwrap();
    let mut client = dynamo_node::client::Client::new(dynamo_node::client::ClientConfig::new(
        vec![node.address.clone()],
        SECRET,
    ));
    client.put(b"k", b"v".to_vec(), &[]).await.unwrap();
    let before = thread_cpu_ticks(pid, pid);
    for _ in 0..3000 {
        let got = client.get(b"k").await.unwrap();
        assert_eq!(got.values, vec![b"v".to_vec()]);
    }
    let after = thread_cpu_ticks(pid, pid);
    assert!(
        after > before,
        "the main thread used no CPU over 3,000 requests ({before} -> {after} ticks)"
    );
}

/// Review of the command line, twenty-fifth session of issue 20: a node whose standard error was
/// a pipe whose reader went away (`dynamo serve 2>&1 | head`, or `dynamo cluster`'s relay of a
/// node's lines ending) panicked at its next log line: the log writer's failure was reported with
/// `eprintln!`, which panics when standard error is a closed pipe. It now keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_reader_went_away_keeps_serving() {
    let mut node =
        crate::hostile::Proc::start_with_stderr_closed(&["--n", "1", "--r", "1", "--w", "1"]).await;
    let mut client = dynamo_node::client::Client::new(dynamo_node::client::ClientConfig::new(
        vec![node.address.clone()],
        SECRET,
    ));
    // At debug level, every request logs.
    for i in 0..50 {
        let key = format!("k{i}");
        client
            .put(key.as_bytes(), b"v".to_vec(), &[])
            .await
            .unwrap();
        let got = client.get(key.as_bytes()).await.unwrap();
        assert_eq!(got.values, vec![b"v".to_vec()]);
    }
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the node exited once its log reader went away"
    );
}
