//! The live staleness prediction of a running cluster against the stale-read rate measured on it.
//!
//! Starts a local cluster of real nodes in this process (TCP, encryption, data directories,
//! durable writes by default), N = 3 and R = W = 1 configured, so that the nodes' `status`
//! predicts P(consistent) for (R, W) = (1, 1), (2, 1) and (1, 2) from the round trips they
//! measure (`dynamo_node::StalenessStatus`). Then, for each of those choices and each read delay
//! t the nodes predict at (0, 1, 10 and 100 ms), it runs trials the way the PBS model defines them:
//! a put of a fresh key through one of the key's primaries (the model's write coordinator is a
//! replica), and t ms after its acknowledgement a get with R through a node that is not a replica
//! of the key (the model's read coordinator is not one). A read is consistent when it returns the
//! value just written. Finally it asks every node for its prediction and writes a table with the
//! measured rate (95% Wilson interval) beside the predictions (mean, and range over nodes).
//!
//! ```sh
//! cargo run --release -p dynamo-bench --bin staleness-live -- --out bench/results
//! ```
//!
//! The delay t counts from the client's receipt of the put's acknowledgement, which is one local
//! hop after the coordinator's commit, so measured reads are a little later than the model's t.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::redb_store::Durability;
use dynamo_node::runtime::{Engine, LinkDelay, Node, RangeInfo, RuntimeConfig};
use dynamo_node::ClientOptions;
use dynamo_node::{NodeConfig, NodeId, StalenessStatus};

const PEER_SECRET: &str = "staleness-live-peer-secret";
const CLIENT_SECRET: &str = "staleness-live-client-secret";

#[derive(Parser, Debug)]
#[command(about = "Live staleness predictions against measured stale reads on a local cluster")]
struct Args {
    /// Nodes in the local cluster (at least N + 1, so that some node is not a replica of a key).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Trials per (R, W) and read delay.
    #[arg(long, default_value_t = 1000)]
    trials: usize,
    /// Writes and reads before measuring, so that every node has round trips to predict from.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Buffered writes (no fsync before acknowledging) instead of durable ones.
    #[arg(long)]
    buffered: bool,
    /// Storage engine: fjall (the default) or redb.
    #[arg(long, default_value = "fjall")]
    storage: String,
    /// Mean one-way delay injected into every peer message (exponential), ms, one run each;
    /// 0 for none.
    #[arg(long, value_delimiter = ',', default_value = "0,2")]
    link_delay_ms: Vec<f64>,
    /// Directory of the result table (`pbs-live.md`).
    #[arg(long)]
    out: PathBuf,
    /// Directory of the nodes' data (emptied first; default: a directory under the system's temp).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Why the run stopped.
type Fail = Box<dyn std::error::Error + Send + Sync>;

/// The read delays after a put's acknowledgement, ms: the times the nodes predict at.
const DELAYS: [u64; 4] = [0, 1, 10, 100];

/// One measured cell of the table.
struct Cell {
    r: usize,
    w: usize,
    delay: u64,
    trials: usize,
    consistent: usize,
    /// Mean delay actually waited, ms.
    waited: f64,
}

struct Cluster {
    addresses: Vec<String>,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn start(args: &Args, dir: &std::path::Path, delay_ms: f64) -> Result<Cluster, Fail> {
        let listeners = (0..args.nodes)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let addresses = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<NodeId> = (1..=args.nodes as NodeId).collect();
        let node = NodeConfig {
            n: 3,
            r: 1,
            w: 1,
            seeds: ids
                .iter()
                .map(|&i| (i, addresses[i as usize - 1].clone()))
                .collect(),
            initial_members: ids.clone(),
            gossip_interval: 200,
            ..NodeConfig::default()
        };
        let mut nodes = Vec::new();
        for (listener, id) in listeners.into_iter().zip(ids) {
            let mut rc = RuntimeConfig::new(id, node.clone(), PEER_SECRET, CLIENT_SECRET);
            rc.listener = Some(listener);
            rc.data_dir = Some(dir.join(format!("node-{id}")));
            rc.seed = Some(id);
            if delay_ms > 0.0 {
                rc.link_delay = Some(LinkDelay::Exponential(Duration::from_secs_f64(
                    delay_ms / 1e3,
                )));
            }
            rc.storage = Some(match args.storage.as_str() {
                "fjall" => Engine::Fjall,
                "redb" => Engine::Redb,
                other => return Err(format!("unknown storage {other:?} (fjall or redb)").into()),
            });
            if args.buffered {
                rc.durability = Durability::Buffered {
                    sync_interval: Duration::from_secs(1),
                };
            }
            nodes.push(Node::start(rc).await?);
        }
        Ok(Cluster { addresses, nodes })
    }

    fn client_of(&self, id: NodeId) -> Client {
        let mut config =
            ClientConfig::new(vec![self.addresses[id as usize - 1].clone()], CLIENT_SECRET);
        config.timeout = Duration::from_secs(10);
        Client::new(config)
    }

    fn ids(&self) -> Vec<NodeId> {
        (1..=self.nodes.len() as NodeId).collect()
    }

    /// Waits until every node answers and sees every node up.
    async fn wait_ready(&self) -> Result<(), Fail> {
        let deadline = Instant::now() + Duration::from_secs(120);
        for id in self.ids() {
            loop {
                let status = self.client_of(id).status().await;
                let up: BTreeSet<NodeId> = status
                    .iter()
                    .flat_map(|s| s.members.iter().filter(|m| m.up).map(|m| m.id))
                    .collect();
                if self.ids().iter().all(|i| up.contains(i)) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("node {id} never saw every node up").into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// The primaries of `key` in a node's ring.
fn replicas_of(ring: &[RangeInfo], key: &[u8]) -> Vec<NodeId> {
    let pos = dynamo_ring::HashFunction::Md5.position(key).0;
    let end = |r: &RangeInfo| u128::from_str_radix(&r.end, 16).unwrap_or(u128::MAX);
    ring.iter()
        .filter(|r| end(r) >= pos)
        .min_by_key(|r| end(r))
        .or_else(|| ring.iter().min_by_key(|r| end(r)))
        .map(|r| r.replicas.clone())
        .unwrap_or_default()
}

/// Waits `ms` after `from`, to the tenth of a millisecond (the timer's resolution is a
/// millisecond: short waits spin, yielding).
async fn wait_after(from: Instant, ms: u64) {
    let target = from + Duration::from_millis(ms);
    if ms > 5 {
        tokio::time::sleep_until((target - Duration::from_millis(2)).into()).await;
    }
    while Instant::now() < target {
        tokio::task::yield_now().await;
    }
}

/// Runs the trials of one (R, W) and delay.
async fn measure(
    cluster: &Cluster,
    clients: &mut [Client],
    ring: &[RangeInfo],
    (r, w, delay): (usize, usize, u64),
    trials: usize,
    tag: &str,
) -> Result<Cell, Fail> {
    let mut consistent = 0;
    let mut waited = 0.0;
    let ids = cluster.ids();
    for i in 0..trials {
        let key = format!("{tag}-r{r}-w{w}-t{delay}-{i}").into_bytes();
        let replicas = replicas_of(ring, &key);
        let writer = *replicas.first().ok_or("the ring has no replicas")?;
        let readers: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|id| !replicas.contains(id))
            .collect();
        let reader = readers[i % readers.len().max(1)];
        let value = format!("value-{i}").into_bytes();
        let put = ClientOptions {
            w: Some(w),
            ..ClientOptions::default()
        };
        clients[writer as usize - 1]
            .put_with(&key, value.clone(), &[], put)
            .await?;
        let acked = Instant::now();
        wait_after(acked, delay).await;
        waited += acked.elapsed().as_secs_f64() * 1e3;
        let get = ClientOptions {
            r: Some(r),
            ..ClientOptions::default()
        };
        let got = clients[reader as usize - 1].get_with(&key, get).await?;
        if got.values.contains(&value) {
            consistent += 1;
        }
    }
    Ok(Cell {
        r,
        w,
        delay,
        trials,
        consistent,
        waited: waited / trials as f64,
    })
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96_f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The predictions of every node for (R, W) at the `i`-th predicted time: mean, min, max.
fn predicted(statuses: &[StalenessStatus], r: usize, w: usize, i: usize) -> Option<[f64; 3]> {
    let values: Vec<f64> = statuses
        .iter()
        .filter_map(|s| s.choices.iter().find(|c| c.r == r && c.w == w))
        .filter_map(|c| c.p_consistent.get(i).copied())
        .collect();
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some([mean, min, max])
}

/// One run: a cluster with one injected delay, its cells and the nodes' predictions.
struct Scenario {
    delay_ms: f64,
    cells: Vec<Cell>,
    statuses: Vec<StalenessStatus>,
}

fn header(args: &Args, load: &str) -> String {
    let mode = if args.buffered { "buffered" } else { "durable" };
    let mut flags = String::new();
    if args.storage != "fjall" {
        flags.push_str(&format!(" --storage {}", args.storage));
    }
    if args.buffered {
        flags.push_str(" --buffered");
    }
    format!(
        "# Live staleness prediction against measured stale reads\n\n\
         A local cluster of {nodes} real nodes in one process (TCP with encryption, {storage}, {mode} \
         writes), N = 3, configured R = W = 1. Each trial puts a fresh key through one of its \
         primaries and, t ms after the acknowledgement, gets it with R through a node that is not \
         a replica; {trials} trials per row. *Measured* is the share of reads that returned the \
         write, with its 95% Wilson interval; *predicted* is the nodes' own live prediction \
         (`dynamo status`: the PBS WARS model over the write and read round trips and the store \
         flushes each node timed during the run), the mean over the nodes that had enough samples \
         and, in brackets, their range. *Inside* says whether the mean prediction is inside the \
         measured interval.\n\n\
         Produced by `cargo run --release -p dynamo-bench --bin staleness-live -- --out \
         bench/results{flag}` (load average at the end: {load}).\n\n\
         How to read it. With an injected delay the network dominates every exchange and the \
         legs of different messages are independent, which is what the model assumes: there the \
         prediction should follow the measured curve. On loopback the model is pessimistic, for \
         reasons it cannot see: a replica handles its messages in arrival order, and a write sent \
         before the commit reaches every replica long before a read sent after it (the model draws \
         the two independently); and round trips are recorded in whole milliseconds, so a \
         sub-millisecond exchange counts as 0 or 1 ms. The nodes time their store flushes and take \
         them as the replicas' time between applying a write and acknowledging it \
         (`dynamo_pbs::Wars::write_service`); without that, a durable store's flush counted as the \
         write's way to the replica and the loopback prediction at t = 0 was about 70% where every \
         read was consistent.\n",
        nodes = args.nodes,
        trials = args.trials,
        storage = args.storage,
        flag = flags,
    )
}

fn table(md: &mut String, scenario: &Scenario, nodes: usize) {
    let _ = writeln!(
        md,
        "\n## {}\n\n{} of {} nodes had a prediction.\n",
        if scenario.delay_ms > 0.0 {
            format!(
                "Injected one-way delay: exponential, mean {} ms per peer message",
                scenario.delay_ms
            )
        } else {
            "No injected delay (loopback)".to_string()
        },
        scenario.statuses.len(),
        nodes,
    );
    let _ = writeln!(
        md,
        "| N, R, W | t (ms) | waited (ms) | measured P(consistent) | 95% interval | predicted (range over nodes) | inside |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for cell in &scenario.cells {
        let p = cell.consistent as f64 / cell.trials as f64;
        let (lo, hi) = wilson(cell.consistent, cell.trials);
        let i = DELAYS.iter().position(|&d| d == cell.delay).unwrap_or(0);
        let (pred, inside) = match predicted(&scenario.statuses, cell.r, cell.w, i) {
            Some([mean, min, max]) => (
                format!(
                    "{:.1}% [{:.1}, {:.1}]",
                    mean * 100.0,
                    min * 100.0,
                    max * 100.0
                ),
                if (lo - 1e-9..=hi + 1e-9).contains(&mean) {
                    "yes"
                } else {
                    "no"
                },
            ),
            None => ("–".to_string(), "–"),
        };
        let _ = writeln!(
            md,
            "| 3, {}, {} | {} | {:.2} | {:.1}% ({}/{}) | {:.1}–{:.1}% | {} | {} |",
            cell.r,
            cell.w,
            cell.delay,
            cell.waited,
            p * 100.0,
            cell.consistent,
            cell.trials,
            lo * 100.0,
            hi * 100.0,
            pred,
            inside
        );
    }
}

/// Runs every (R, W) and read delay on a fresh cluster with `delay_ms` injected.
async fn scenario(args: &Args, dir: &std::path::Path, delay_ms: f64) -> Result<Scenario, Fail> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let cluster = Cluster::start(args, dir, delay_ms).await?;
    cluster.wait_ready().await?;
    eprintln!("cluster of {} nodes ready, delay {delay_ms} ms", args.nodes);
    let ring = cluster.client_of(1).ring().await?;
    let mut clients: Vec<Client> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.client_of(id))
        .collect();
    // Warm-up: round trips for every node's histograms, connections open.
    let warmup = (1, 1, 0);
    measure(&cluster, &mut clients, &ring, warmup, args.warmup, "warmup").await?;
    let mut cells = Vec::new();
    for (r, w) in [(1, 1), (2, 1), (1, 2)] {
        for delay in DELAYS {
            let point = (r, w, delay);
            let cell = measure(&cluster, &mut clients, &ring, point, args.trials, "trial").await?;
            eprintln!(
                "R={r} W={w} t={delay} ms: {}/{} consistent",
                cell.consistent, cell.trials
            );
            cells.push(cell);
        }
    }
    let mut statuses = Vec::new();
    for id in cluster.ids() {
        if let Some(s) = cluster.client_of(id).status().await?.staleness {
            statuses.push(s);
        }
    }
    for node in cluster.nodes {
        node.shutdown().await?;
    }
    std::fs::remove_dir_all(dir)?;
    Ok(Scenario {
        delay_ms,
        cells,
        statuses,
    })
}

async fn run(args: Args) -> Result<(), Fail> {
    if args.nodes < 4 {
        return Err("--nodes must be at least 4 (N = 3 plus a non-replica reader)".into());
    }
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("dynamo-staleness-live"));
    let mut scenarios = Vec::new();
    for &delay_ms in &args.link_delay_ms {
        scenarios.push(scenario(&args, &dir, delay_ms).await?);
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mut md = header(&args, &load);
    for s in &scenarios {
        table(&mut md, s, args.nodes);
    }
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("pbs-live.md");
    std::fs::write(&path, &md)?;
    print!("{md}");
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("staleness-live: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
