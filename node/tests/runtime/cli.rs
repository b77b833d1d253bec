//! The `dynamo` command run as a user runs it, against an in-process node (issue 17's table).

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{wait_up, Spec, SECRET};

/// `dynamo ARGS --nodes ADDR` with the test cluster's client secret.
fn dynamo(spec: &Spec, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dynamo"));
    c.args(args)
        .arg("--nodes")
        .arg(spec.address(1))
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn run(spec: &Spec, args: &[&str]) -> Output {
    dynamo(spec, args).output().await.unwrap()
}

/// The output of a command that must end by itself (`expect`), within a bound generous for a
/// loaded machine: a command that would run on instead fails the test rather than hang it.
async fn bounded(command: &mut Command, expect: &str) -> Output {
    let out = command.stdin(Stdio::null()).kill_on_drop(true).output();
    tokio::time::timeout(std::time::Duration::from_secs(120), out)
        .await
        .expect(expect)
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_reads_writes_and_deletes_as_a_script_expects() {
    let spec = Spec::new(3, None);
    let nodes = spec.start_all().await;
    wait_up(&spec).await;

    // A missing key: exit code 1, "(not found)" on standard error.
    let missing = run(&spec, &["get", "nothing-here"]).await;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(text(&missing.stderr).contains("(not found)"));

    // A value from standard input, read back byte for byte with --raw.
    let value: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mut put = dynamo(&spec, &["put", "bin", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&value).await.unwrap();
    drop(stdin);
    let put = put.wait_with_output().await.unwrap();
    assert!(put.status.success(), "{put:?}");
    let raw = run(&spec, &["get", "bin", "--raw"]).await;
    assert!(raw.status.success(), "{raw:?}");
    assert_eq!(raw.stdout, value);

    // A value from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value");
    std::fs::write(&file, b"from a file").unwrap();
    let put = run(&spec, &["put", "f", "--file", file.to_str().unwrap()]).await;
    assert!(put.status.success(), "{put:?}");
    let got = run(&spec, &["get", "f", "--raw"]).await;
    assert_eq!(got.stdout, b"from a file");

    // A delete without a context reads the key first and deletes what it saw (it used to
    // print "deleted" and leave the value in place).
    let put = run(&spec, &["put", "cart", "milk"]).await;
    assert!(put.status.success(), "{put:?}");
    let delete = run(&spec, &["delete", "cart"]).await;
    assert!(delete.status.success(), "{delete:?}");
    assert!(text(&delete.stderr).contains("no --context given"));
    let gone = run(&spec, &["get", "cart"]).await;
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    let again = run(&spec, &["delete", "cart"]).await;
    assert_eq!(again.status.code(), Some(1), "{again:?}");

    // A reader that goes away (`dynamo ring | head -1`): no panic, exit 0.
    let mut ring = dynamo(&spec, &["ring"]).spawn().unwrap();
    drop(ring.stdout.take());
    let ring = ring.wait_with_output().await.unwrap();
    let stderr = text(&ring.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(ring.status.code(), Some(0), "{stderr}");

    // `status` shows every node side by side and says whether they agree; `ring` summarises.
    let all = spec.addresses().join(",");
    let status = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["status", "--nodes", &all])
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    let out = text(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(out.contains("all 3 nodes agree on the ring"), "{out}");
    assert!(out.contains("get p50/p99/p99.9"), "{out}");
    assert_eq!(
        out.lines().count(),
        5,
        "a header, 3 nodes, agreement: {out}"
    );
    let members = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["members", "--nodes", &all])
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    let out = text(&members.stdout);
    assert!(members.status.success(), "{members:?}");
    assert!(out.contains("all 3 nodes agree on the ring"), "{out}");
    let ring = run(&spec, &["ring"]).await;
    let out = text(&ring.stdout);
    assert!(
        out.starts_with("64 ranges, 3 replicas each, 3 nodes"),
        "{out}"
    );
    let full = run(&spec, &["ring", "--full"]).await;
    assert_eq!(
        text(&full.stdout).lines().count(),
        65,
        "a header and 64 ranges"
    );

    // An error says its cause once, and exits 2.
    let wrong = dynamo(&spec, &["get", "k"])
        .env("DYNAMO_CLIENT_SECRET", "wrong")
        .output()
        .await
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    let stderr = text(&wrong.stderr);
    assert_eq!(
        stderr.matches("wrong client secret").count(),
        1,
        "the cause is printed once: {stderr}"
    );

    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// `dynamo serve --help` tells the defaults and the configuration file's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_help_gives_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    let help = text(&out.stdout);
    for wanted in [
        "default 127.0.0.1:7001",
        "default 3",
        "default 2",
        "[node] table",
    ] {
        assert!(help.contains(wanted), "{wanted:?} in:\n{help}");
    }
}

/// `dynamo serve --sync-interval-ms` without `--buffered` is refused: a durable node fsyncs before
/// every acknowledgement, and the flag was silently ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_interval_without_buffered_writes_is_refused() {
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .args(["serve", "--id", "1", "--sync-interval-ms", "10"])
            .args(["--listen", "127.0.0.1:0"])
            .env("DYNAMO_CLIENT_SECRET", "c")
            .env("DYNAMO_PEER_SECRET", "p"),
        "refused at once, not served",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--buffered"), "{stderr}");
}

/// `dynamo serve --config` refuses an unknown `[node]` field instead of ignoring it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_configuration_field_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "id = 1\n\n[node]\nrr = 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .env("DYNAMO_CLIENT_SECRET", "c")
        .env("DYNAMO_PEER_SECRET", "p")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown field") && stderr.contains("rr"),
        "{stderr}"
    );
}

/// A node started with another partition count keeps a ring of its own, of the same version and
/// members as the others' (each refuses the other's): `dynamo members` says the nodes disagree
/// (it compared version and members only, and reported agreement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_sees_a_node_configured_with_another_partition_count() {
    let spec = Spec::new(3, None);
    let _one = spec.start(1).await;
    let _two = spec.start(2).await;
    let mut rc = spec.runtime_config(3);
    rc.node.partitions = 128;
    let _three = dynamo_node::runtime::Node::start(rc).await.unwrap();
    for id in spec.ids() {
        let spec = &spec;
        let answers = crate::eventually(60, || async move {
            spec.client_of(id).status().await.ok().map(|_| ())
        });
        assert!(answers.await.is_some(), "node {id} answers");
    }
    let members = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["members", "--nodes", &spec.addresses().join(",")])
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert!(!members.status.success(), "{members:?}");
    let stderr = text(&members.stderr);
    assert!(stderr.contains("do not agree"), "{stderr}");
}

/// `dynamo cluster` with a storage engine no node can use fails at once with the reason, before
/// it starts anything (it printed its banner and exited 0 once every node had failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_an_unknown_storage_engine_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["cluster", "--storage", "rdb", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("rdb"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("try, from another terminal"),
        "{out:?}"
    );
}

/// `dynamo cluster` whose nodes cannot start (here: their ports are taken) says so and exits
/// non-zero, and never prints the lines to try as if the cluster were up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_nodes_all_fail_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Held for the whole test: the node's ports are taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let http_port = taken_http.local_addr().unwrap().port().to_string();
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .args(["cluster", "--nodes", "1", "--base-port", &port])
            .args(["--http-base-port", &http_port, "--dir"])
            .arg(dir.path()),
        "cluster ends once its node failed",
    )
    .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !text(&out.stdout).contains("try, from another terminal"),
        "{out:?}"
    );
    drop((taken, taken_http));
}

/// Review of the operator's surface (the project's twenty-ninth session): `dynamo init` for one
/// or two machines wrote N = 3, R = W = 2, as for three: a single node could never acknowledge a
/// put, two stopped taking writes when one was down. It writes the quorums `dynamo cluster` uses
/// for so few nodes: N the node count, R and W a majority of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_for_fewer_nodes_than_n_writes_quorums_they_can_meet() {
    for (nodes, want) in [
        ("10.9.9.1:7001", "n = 1\nr = 1\nw = 1\n"),
        ("10.9.9.1:7001,10.9.9.2:7001", "n = 2\nr = 2\nw = 2\n"),
        (
            "10.9.9.1:7001,10.9.9.2:7001,10.9.9.3:7001",
            "n = 3\nr = 2\nw = 2\n",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let init = Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .args(["init", "--nodes", nodes, "--out"])
            .arg(dir.path())
            .output()
            .await
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        let file = std::fs::read_to_string(dir.path().join("node-1.toml")).unwrap();
        assert!(file.contains(want), "{nodes}: {file}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("node-1.toml"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the file holds secrets");
        }
    }
}

/// `dynamo init` writes configurations a node starts from, and a client environment that reaches
/// it (secrets generated, shared by the files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_configurations_a_node_starts_from() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    let init = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args([
            "init",
            "--nodes",
            "10.9.9.1:7001,10.9.9.2:7001,10.9.9.3:7001",
        ])
        .arg("--out")
        .arg(&conf)
        .output()
        .await
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let env = std::fs::read_to_string(conf.join("client.env")).unwrap();
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("DYNAMO_CLIENT_SECRET="))
        .unwrap()
        .to_owned();
    let address = crate::private_loopback(1)[0].to_string();
    let _node = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("serve")
        .arg("--config")
        .arg(conf.join("node-1.toml"))
        .args(["--listen", &address, "--advertise", &address, "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("DYNAMO_CLIENT_SECRET")
        .env_remove("DYNAMO_PEER_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut config = dynamo_node::client::ClientConfig::new(vec![address.clone()], secret.clone());
    config.timeout = crate::CLIENT_TIMEOUT;
    let mut client = dynamo_node::client::Client::new(config);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        match client.status().await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("never answered: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    assert_eq!(status.id, 1);
    assert_eq!(status.members.len(), 3);
    // A credential for a node added later, from the authority `init` wrote.
    let issued = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["keys", "issue", "--id", "4", "--authority-key"])
        .arg(conf.join("authority.key"))
        .output()
        .await
        .unwrap();
    assert!(issued.status.success(), "{issued:?}");
    let lines = text(&issued.stdout);
    assert!(
        lines.contains("node_key = ") && lines.contains("node_cert = "),
        "{lines}"
    );
    // docs/operations.md, "Add a machine": node 4's file holds the secrets of node 1's, the
    // issued credential and no initial members; it joins through node 1 and waits for a commit.
    // Node 1 then knows it and sees it up, which a plan of its join needs (it refused the
    // connections of a node 4 started from flags alone: "presents no node certificate").
    let node_1 = std::fs::read_to_string(conf.join("node-1.toml")).unwrap();
    let secrets: String = node_1
        .lines()
        .filter(|l| l.starts_with("peer_secret") || l.starts_with("client_secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    let address_4 = crate::private_loopback(1)[0].to_string();
    let file_4 = dir.path().join("node-4.toml");
    std::fs::write(
        &file_4,
        format!(
            "id = 4\nlisten = \"{address_4}\"\nadvertise = \"{address_4}\"\n\
             data_dir = \"{}\"\n{secrets}{lines}\n[node]\nzone = \"rack-a\"\n",
            dir.path().join("data-4").display()
        ),
    )
    .unwrap();
    let _node_4 = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("serve")
        .arg("--config")
        .arg(&file_4)
        .args(["--join", &address, "--wait-for-commit"])
        .env_remove("DYNAMO_CLIENT_SECRET")
        .env_remove("DYNAMO_PEER_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let planned = crate::eventually(60, || {
        let (address, secret) = (address.clone(), secret.clone());
        async move {
            let plan = Command::new(env!("CARGO_BIN_EXE_dynamo"))
                .args(["plan", "--node", &address, "--join", "4"])
                .env("DYNAMO_CLIENT_SECRET", secret)
                .stdin(Stdio::null())
                .output()
                .await
                .ok()?;
            plan.status.success().then_some(plan)
        }
    })
    .await;
    assert!(planned.is_some(), "node 1 never saw node 4 up");
    // Node 1's file started as node 3: its credential certifies node 1 only.
    let wrong = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("serve")
        .arg("--config")
        .arg(conf.join("node-1.toml"))
        .args(["--id", "3", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data-3"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    let stderr = text(&wrong.stderr);
    assert!(
        stderr.contains("not the authority's for node 3"),
        "{stderr}"
    );
}

/// `--listen` takes a host name (`localhost:0`), not only an IP address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listens_on_a_host_name() {
    use tokio::io::AsyncBufReadExt as _;
    let mut node = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["serve", "--id", "1", "--listen", "localhost:0"])
        .env("DYNAMO_CLIENT_SECRET", "c")
        .env("DYNAMO_PEER_SECRET", "p")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(node.stderr.take().unwrap()).lines();
    let started = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("node started") {
                return Some(line);
            }
        }
        None
    })
    .await
    .unwrap();
    let line = started.expect("the node started");
    assert!(
        line.contains("127.0.0.1:") || line.contains("[::1]:"),
        "{line}"
    );
}
