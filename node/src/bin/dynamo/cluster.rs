//! `dynamo cluster`: a local cluster of node processes for trying things out.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Args;

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::runtime::Engine;
use dynamo_node::NodeId;

use crate::{LOCAL_CLIENT_SECRET, LOCAL_PEER_SECRET};

/// `say!` for the cluster's own lines, which go on when nobody reads them: the reader of a
/// pipe that went away (`dynamo cluster | grep -m1 HTTP`) must not end the cluster with its
/// nodes killed rather than stopped (a `--buffered` node flushes only when stopped).
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// [`tell!`] for standard error: the nodes' lines and the cluster's reports on them, which go on
/// when nobody reads them (`dynamo cluster |& grep -m1 HTTP`).
macro_rules! tell_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Port of node 1; node i listens on base-port + i - 1.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// HTTP port of node 1; node i serves its HTTP API on http-base-port + i - 1.
    #[arg(long, default_value_t = 8001)]
    http_base_port: u16,
    /// Directory holding each node's data directory (node-1, node-2, ...).
    #[arg(long, default_value = "dynamo-data")]
    dir: PathBuf,
    /// The secret the nodes prove to each other.
    #[arg(long, env = "DYNAMO_PEER_SECRET", default_value = LOCAL_PEER_SECRET, hide_env_values = true)]
    peer_secret: String,
    /// The secret clients prove.
    #[arg(long, env = "DYNAMO_CLIENT_SECRET", default_value = LOCAL_CLIENT_SECRET, hide_env_values = true)]
    client_secret: String,
    /// Buffered writes (see `dynamo serve --help`).
    #[arg(long)]
    buffered: bool,
    /// Run the nodes without encryption (benchmarks; clients then need --no-encryption too).
    #[arg(long)]
    no_encryption: bool,
    /// Storage engine of new data directories: fjall (default) or redb (see `dynamo serve
    /// --help`).
    #[arg(long)]
    storage: Option<String>,
    /// Spread the nodes over this many zones (z1, z2, ...: node i in zone (i - 1) mod K + 1).
    #[arg(long)]
    zones: Option<u64>,
}

pub(crate) async fn run(args: &ClusterArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    // What every node would refuse, refused here once, before anything starts.
    if let Some(name) = &args.storage {
        if Engine::parse(name).is_none() {
            bail!("storage {name:?}: expected \"fjall\" or \"redb\"");
        }
    }
    let exe = std::env::current_exe().context("cannot find the dynamo executable")?;
    let ids: Vec<NodeId> = (1..=args.nodes).collect();
    let address = |id: NodeId| format!("127.0.0.1:{}", u64::from(args.base_port) + id - 1);
    let http_address =
        |id: NodeId| format!("127.0.0.1:{}", u64::from(args.http_base_port) + id - 1);
    let zone = |id: NodeId| {
        args.zones
            .filter(|&k| k > 0)
            .map(|k| format!("z{}", (id - 1) % k + 1))
    };
    let members = ids
        .iter()
        .map(|&id| match zone(id) {
            Some(z) => format!("{id}@{z}"),
            None => id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    // Each node's `serve` arguments, kept so that a node the operator kills can be restarted by
    // hand with exactly the same command.
    let serve_args = |id: NodeId| -> Vec<String> {
        let mut a = vec![
            "serve".to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            address(id),
            "--http-listen".into(),
            http_address(id),
            "--data-dir".into(),
            args.dir.join(format!("node-{id}")).display().to_string(),
            "--members".into(),
            members.clone(),
        ];
        for &peer in &ids {
            if peer != id {
                a.push("--peer".into());
                a.push(format!("{peer}={}", address(peer)));
            }
        }
        if args.buffered {
            a.push("--buffered".into());
        }
        if args.no_encryption {
            a.push("--no-encryption".into());
        }
        if let Some(storage) = &args.storage {
            a.push("--storage".into());
            a.push(storage.clone());
        }
        if let Some((n, quorum)) = small_cluster_quorums(ids.len()) {
            for (flag, value) in [("--n", n), ("--r", quorum), ("--w", quorum)] {
                a.push(flag.into());
                a.push(value.to_string());
            }
        }
        a
    };
    // The nodes share this machine's cores: each runs its share of worker threads (at least
    // one) unless the operator chose a number (TOKIO_WORKER_THREADS). A node per core rather
    // than every node's threads on every core: fewer threads to wake and switch between (gets
    // 1.12x with three nodes on two cores, bench/results/profile-2026-12-04.md). A node given
    // one worker runs tokio's single-threaded scheduler (see `runtime` in main.rs).
    let workers = node_workers(
        std::env::var_os("TOKIO_WORKER_THREADS").is_some(),
        crate::cores(),
        ids.len(),
    );
    // Handled from before the first node starts: the default action would end this process and
    // leave its nodes running.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (exits, mut exited) = tokio::sync::mpsc::unbounded_channel();
    let mut pids = Vec::new();
    for &id in &ids {
        let mut command = tokio::process::Command::new(&exe);
        if let Some(workers) = workers {
            command.env("TOKIO_WORKER_THREADS", workers.to_string());
        }
        let mut child = command
            .args(serve_args(id))
            .env("DYNAMO_PEER_SECRET", &args.peer_secret)
            .env("DYNAMO_CLIENT_SECRET", &args.client_secret)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        // Each node's log lines, prefixed with its id (they would interleave unmarked).
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt as _;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tell_err!("node {id} | {line}");
                }
            });
        }
        pids.push((id, child.id()));
        let exits = exits.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = exits.send((id, status));
        });
    }
    drop(exits);
    let nodes = ids
        .iter()
        .map(|&i| address(i))
        .collect::<Vec<_>>()
        .join(",");
    // The lines below tell the operator what to try: only once every node answers. A node that
    // exits first (a port taken, a data directory it refuses) ends the cluster with its reason.
    let mut client_config = ClientConfig::new(Vec::new(), args.client_secret.clone());
    client_config.encrypt = !args.no_encryption;
    client_config.timeout = Duration::from_secs(2);
    let ready = async {
        for &id in &ids {
            let mut config = client_config.clone();
            config.nodes = vec![address(id)];
            let mut client = Client::new(config);
            while client.status().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // And reads through it: a new cluster's nodes answer reads once each has heard
            // every member (a second or two). Not for long: a node restarted on an emptied data
            // directory refuses reads until anti-entropy refilled it (minutes), and with two
            // nodes (R = 2) no read goes through meanwhile; the cluster is up all the same.
            let reads = async {
                while client.get(b"dynamo-cluster-ready").await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), reads).await;
        }
    };
    let mut alive: Vec<NodeId> = ids.clone();
    let mut failed: Vec<NodeId> = Vec::new();
    // Why the cluster stops before it was up: it then fails with this.
    let mut unready: Option<String> = None;
    let mut interrupted = false;
    tokio::select! {
        () = ready => {}
        exit = exited.recv() => {
            unready = Some(match exit {
                Some((id, status)) => {
                    let how = exited_how(id, &status, &mut alive, &mut failed);
                    format!("node {id} exited ({how}) before the cluster was up (its log is above)")
                }
                None => "every node exited before the cluster was up".to_string(),
            });
        }
        () = tokio::time::sleep(READY_TIMEOUT) => {
            unready = Some(format!(
                "the nodes did not answer within {} s (their logs are above)",
                READY_TIMEOUT.as_secs()
            ));
        }
        _ = tokio::signal::ctrl_c() => interrupted = true,
        _ = term.recv() => interrupted = true,
    }
    if unready.is_none() && !interrupted {
        serve_until_stopped(
            &ServeView {
                args,
                ids: &ids,
                nodes: &nodes,
                http_address: &http_address,
            },
            &mut term,
            &mut exited,
            &mut alive,
            &mut failed,
            |id| format!("{} {}", exe.display(), serve_args(id).join(" ")),
        )
        .await?;
    }
    // Every node stopped by itself (none was left to stop), one of them failing: the cluster
    // failed, and says so with its exit code.
    let ended_by_failure = alive.is_empty() && !failed.is_empty();
    stop(&pids, &mut exited, &mut alive, &mut failed).await;
    if let Some(why) = unready {
        bail!("{why}; stopped the other nodes");
    }
    if ended_by_failure {
        bail!("every node stopped, and node(s) {failed:?} failed (their logs are above)");
    }
    Ok(())
}

/// What the banner of a running cluster shows.
struct ServeView<'a, H: Fn(NodeId) -> String> {
    args: &'a ClusterArgs,
    ids: &'a [NodeId],
    nodes: &'a str,
    http_address: &'a H,
}

/// A node's exit as the operator reads it; counts it out of `alive`, and into `failed` when it
/// exited with an error of its own (killed by a signal is what an operator studying failures
/// does).
fn exited_how(
    id: NodeId,
    status: &std::io::Result<std::process::ExitStatus>,
    alive: &mut Vec<NodeId>,
    failed: &mut Vec<NodeId>,
) -> String {
    alive.retain(|&a| a != id);
    match status {
        Ok(s) => {
            if s.code().is_some_and(|c| c != 0) {
                failed.push(id);
            }
            s.to_string()
        }
        Err(e) => e.to_string(),
    }
}

type Exits =
    tokio::sync::mpsc::UnboundedReceiver<(NodeId, std::io::Result<std::process::ExitStatus>)>;

/// Prints what to try, then reports each node's exit with the command that restarts it, until
/// Ctrl-C, SIGTERM, or no node is left.
async fn serve_until_stopped<H: Fn(NodeId) -> String>(
    view: &ServeView<'_, H>,
    term: &mut tokio::signal::unix::Signal,
    exited: &mut Exits,
    alive: &mut Vec<NodeId>,
    failed: &mut Vec<NodeId>,
    restart: impl Fn(NodeId) -> String,
) -> Result<()> {
    let (args, ids, nodes, http_address) = (view.args, view.ids, view.nodes, view.http_address);
    tell!(
        "dynamo: {} nodes on {} (data in {}), client secret {:?}{}",
        args.nodes,
        nodes,
        args.dir.display(),
        if args.client_secret == LOCAL_CLIENT_SECRET {
            LOCAL_CLIENT_SECRET
        } else {
            "<given>"
        },
        if args.no_encryption {
            ", without encryption"
        } else {
            ""
        }
    );
    // The try-lines must work as printed: a given client secret goes in the environment.
    let env = if args.client_secret == LOCAL_CLIENT_SECRET {
        ""
    } else {
        "DYNAMO_CLIENT_SECRET=... "
    };
    let flags = if args.no_encryption {
        " --no-encryption"
    } else {
        ""
    };
    tell!("try, from another terminal:");
    tell!("  {env}dynamo put cart milk --nodes {nodes}{flags}");
    tell!("  {env}dynamo get cart --nodes {nodes}{flags}");
    tell!("  {env}dynamo status --nodes {nodes}{flags}");
    tell!("(with cargo: {env}cargo run --release -p dynamo-node --bin dynamo -- get cart{flags})");
    let https = ids
        .iter()
        .map(|&i| format!("http://{}", http_address(i)))
        .collect::<Vec<_>>()
        .join(" ");
    tell!("HTTP API on {https}; its bearer token: {env}dynamo token");
    tell!(
        "  curl -H \"Authorization: Bearer $({env}dynamo token)\" http://{}/kv/cart",
        http_address(1)
    );
    tell!(
        "web console: http://{}/ (enter the token there, or open http://{}/#token=$({env}dynamo token))",
        http_address(1),
        http_address(1)
    );
    tell!("Kill a node to study failures: the others keep serving. Ctrl-C stops every node.");

    // Nodes may be killed on purpose (that is what a local cluster is for): report each exit with
    // the command that restarts it, and keep serving until Ctrl-C or until no node is left.
    while !alive.is_empty() {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            // SIGTERM (a service manager, `kill`) stops the nodes too, instead of orphaning them.
            _ = term.recv() => break,
            exit = exited.recv() => {
                let Some((id, status)) = exit else { break };
                let how = exited_how(id, &status, alive, failed);
                tell_err!(
                    "dynamo: node {id} exited ({how}); {} still running. Restart it with:\n  DYNAMO_PEER_SECRET=... DYNAMO_CLIENT_SECRET=... {}",
                    alive.len(),
                    restart(id)
                );
            }
        }
    }
    Ok(())
}

/// Stops the nodes still running: TERM, a few seconds to stop (a `--buffered` node flushes),
/// then KILL. (At Ctrl-C they got SIGINT too, being in this process group.)
async fn stop(
    pids: &[(NodeId, Option<u32>)],
    exited: &mut Exits,
    alive: &mut Vec<NodeId>,
    failed: &mut Vec<NodeId>,
) {
    let signal = |name: &str, alive: &[NodeId]| {
        for (id, pid) in pids {
            if let (true, Some(pid)) = (alive.contains(id), pid) {
                let _ = std::process::Command::new("kill")
                    .arg(name)
                    .arg(pid.to_string())
                    .status();
            }
        }
    };
    signal("-TERM", alive);
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while !alive.is_empty() {
        tokio::select! {
            () = &mut deadline => {
                tell_err!("dynamo: {} node(s) did not stop in time; killing them", alive.len());
                signal("-KILL", alive);
                break;
            }
            exit = exited.recv() => match exit {
                Some((id, status)) => {
                    exited_how(id, &status, alive, failed);
                }
                None => break,
            },
        }
    }
}

/// How long `dynamo cluster` waits for its nodes to answer before it gives up: a loaded machine
/// opens a data directory and starts a node in well under this.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// `(N, R = W)` for a cluster of fewer nodes than the default N of 3: N is the node count, and R
/// and W a majority of it, so that a one- or two-node cluster can serve (with N = 3 and W = 2 a
/// single node could never acknowledge a put). `None`: the defaults.
pub(crate) fn small_cluster_quorums(nodes: usize) -> Option<(usize, usize)> {
    (nodes < dynamo_node::NodeConfig::default().n).then(|| (nodes, nodes / 2 + 1))
}

/// Worker threads for each of `nodes` node processes on a machine of `cores`: the nodes' share
/// of the cores, at least one; `None` when the operator set the number (`chosen`).
fn node_workers(chosen: bool, cores: usize, nodes: usize) -> Option<usize> {
    (!chosen).then(|| (cores / nodes.max(1)).max(1))
}

#[cfg(test)]
mod tests {
    use super::{node_workers, small_cluster_quorums};

    #[test]
    fn a_small_cluster_replicates_on_every_node_with_majority_quorums() {
        assert_eq!(small_cluster_quorums(1), Some((1, 1)));
        assert_eq!(small_cluster_quorums(2), Some((2, 2)));
        assert_eq!(small_cluster_quorums(3), None);
        assert_eq!(small_cluster_quorums(5), None);
    }

    #[test]
    fn nodes_share_the_cores_and_the_operator_decides_first() {
        assert_eq!(node_workers(false, 2, 3), Some(1));
        assert_eq!(node_workers(false, 16, 3), Some(5));
        assert_eq!(node_workers(false, 8, 1), Some(8));
        assert_eq!(node_workers(true, 16, 3), None);
    }
}
