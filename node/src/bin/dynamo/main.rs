//! `dynamo`: run a node, run a local cluster, and talk to a cluster.
//!
//! ```text
//! dynamo cluster --nodes 3                 # a local cluster on 127.0.0.1:7001..7003
//! dynamo put cart milk                     # prints the new context
//! dynamo get cart                          # prints every sibling and the context
//! dynamo put cart milk,eggs --context <hex>
//! dynamo status | ring | members | leave --node 127.0.0.1:7003
//! dynamo plan --node 127.0.0.1:7001 --join 4  # what a membership change would move
//! dynamo commit --node 127.0.0.1:7001 --version 0 --join 4
//! dynamo serve --id 1 --listen 0.0.0.0:7001 --advertise 10.0.0.1:7001 \
//!              --data-dir /var/lib/dynamo --members 1,2,3 \
//!              --peer 2=10.0.0.2:7001 --peer 3=10.0.0.3:7001
//!              # with DYNAMO_PEER_SECRET (nodes only) and DYNAMO_CLIENT_SECRET in the environment
//! ```

/// `println!` that reports a failed write (a closed pipe: `dynamo get k | head -1`) as an error
/// instead of panicking; `main` ends quietly on a broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod change;
mod cluster;
mod init;
mod serve;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::NodeId;

use serve::{serve, ServeArgs};

/// The allocator of the binary (see the `cli` feature in `node/Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The client secret `dynamo cluster` uses, and clients use when none is given: for trying
/// things out.
const LOCAL_CLIENT_SECRET: &str = "dynamo-local-client-secret";
/// The peer secret `dynamo cluster` gives its nodes when none is given.
const LOCAL_PEER_SECRET: &str = "dynamo-local-peer-secret";

#[derive(Parser, Debug)]
#[command(
    name = "dynamo",
    version,
    about = "A Dynamo key-value store: nodes, local clusters and a client"
)]
struct Cli {
    /// Log lines as text (default) or JSON objects, one a line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written (to standard error).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line: timestamp, level, target, message and fields.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node.
    Serve(Box<ServeArgs>),
    /// Write configuration files for a new cluster of machines, with fresh secrets and a
    /// certified key per node.
    Init(init::InitArgs),
    /// Per-node credentials: `dynamo keys issue` certifies a new node's key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a local cluster of N node processes on 127.0.0.1 until Ctrl-C.
    Cluster(cluster::ClusterArgs),
    /// Read every concurrent version of a key and its context.
    Get {
        /// The key.
        key: String,
        /// Write the value's bytes alone to standard output (binary-safe; fails if the key has
        /// several siblings).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Write a value; prints the new context.
    Put {
        /// The key.
        key: String,
        /// The value; `-` reads it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Context (hex) from a get: the versions this write supersedes.
        #[arg(long, default_value = "")]
        context: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a key (a tombstone superseding the versions named by the context).
    Delete {
        /// The key.
        key: String,
        /// Context (hex) from a get.
        #[arg(long, default_value = "")]
        context: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Membership, ring ownership, hints pending, anti-entropy and request statistics of a node.
    /// Every node of --nodes side by side (ring version, keys, hints, anti-entropy, latency
    /// percentiles, agreement), or one node in detail with --node.
    Status {
        /// One node's detailed view (membership, ownership, counters) instead.
        #[arg(long)]
        node: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every node's view side by side: ring version, members, transfers running and ranges
    /// awaiting data. Exits non-zero when the nodes do not agree or a node does not answer.
    Members {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// The ring as a node sees it: ranges and their replicas.
    Ring {
        /// Every range with its replicas (default: a summary per node).
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show what a membership change would do: ownership before and after, replica copies and
    /// bytes that would move. Changes nothing; prints the commit command.
    Plan {
        /// The node that computes the plan (any ring member; no failover).
        #[arg(long)]
        node: String,
        #[command(flatten)]
        change: change::ChangeArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Apply a planned membership change: sent to the claimant, with the ring version the plan
    /// was made from (refused if the ring changed since).
    Commit {
        /// The claimant's address (the plan prints it).
        #[arg(long)]
        node: String,
        /// The ring version the plan was made from.
        #[arg(long)]
        version: u64,
        #[command(flatten)]
        change: change::ChangeArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the bearer token of the cluster's HTTP API (derived from the client secret and the
    /// cluster's name): `curl -H "Authorization: Bearer $(dynamo token)" ...`.
    Token {
        /// The cluster's client secret.
        #[arg(long, alias = "secret", env = "DYNAMO_CLIENT_SECRET", default_value = LOCAL_CLIENT_SECRET, hide_env_values = true)]
        client_secret: String,
        /// The cluster's name.
        #[arg(long, default_value = "dynamo")]
        cluster: String,
    },
    /// Ask one node to leave the cluster. The node is named explicitly and the request never
    /// goes to another node, even if that one does not answer.
    Leave {
        /// The address of the node that leaves.
        #[arg(long)]
        node: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Issue a key and certificate for node --id, signed by the authority of `dynamo init`.
    Issue(init::IssueArgs),
}

#[derive(Args, Debug)]
struct ConnArgs {
    /// Node addresses, comma separated; requests go to the next one when one does not answer.
    #[arg(
        long,
        value_delimiter = ',',
        env = "DYNAMO_NODES",
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    nodes: Vec<String>,
    /// The cluster's client secret.
    #[arg(long, alias = "secret", env = "DYNAMO_CLIENT_SECRET", default_value = LOCAL_CLIENT_SECRET, hide_env_values = true)]
    client_secret: String,
    /// The cluster's name.
    #[arg(long, default_value = "dynamo")]
    cluster: String,
    /// Seconds to wait for a node before trying the next.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Talk to nodes that run without encryption (`serve --no-encryption`, for benchmarks).
    #[arg(long)]
    no_encryption: bool,
    /// Largest request to send, in bytes (a larger one is refused before it is sent). The nodes
    /// take 4 MiB, or their largest put (value, key and context limits and 4 KiB) when that is more: raise it with them.
    #[arg(long, default_value_t = dynamo_node::runtime::DEFAULT_MAX_CLIENT_FRAME)]
    max_request: usize,
    /// Largest reply to take, in bytes. A read returns every version of the key, up to N times
    /// the nodes' max_siblings_size: raise it with them past 16 MiB in all.
    #[arg(long, default_value_t = dynamo_node::runtime::DEFAULT_MAX_FRAME)]
    max_reply: usize,
}

impl ConnArgs {
    fn client(&self) -> Client {
        self.client_of(self.nodes.clone())
    }

    /// A client of exactly these nodes (one, for an admin command: no failover).
    fn client_of(&self, nodes: Vec<String>) -> Client {
        let mut config = ClientConfig::new(nodes, self.client_secret.clone());
        config.encrypt = !self.no_encryption;
        config.cluster = self.cluster.clone();
        config.timeout = Duration::from_secs(self.timeout);
        config.max_request = self.max_request;
        config.max_frame = self.max_reply;
        Client::new(config)
    }
}

/// After a write that succeeded on a retry: the nodes tried before may have applied it too.
fn note_unsure(client: &Client, what: &str) {
    let unsure = client.unsure_nodes();
    if !unsure.is_empty() {
        eprintln!(
            "note: {} gave no answer after the {what} was sent and may have applied it too; a get \
             may show it twice, as siblings: write with the get's context, not the one above, to \
             fold them",
            unsure.join(", ")
        );
    }
}

fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("0x{}", hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x");
    if !s.len().is_multiple_of(2) {
        bail!("context must be hex with an even number of digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| anyhow!("context is not hex: {s:?}"))
        })
        .collect()
}

/// Exit code of a get or delete of a key that is not there (0: done, 2: an error).
const NOT_FOUND: u8 = 1;

/// Exit code of a put or delete that failed but may have been applied all the same (a quorum
/// not reached, a timeout, a node that gave no answer): read the key before writing again.
const MAYBE_APPLIED: u8 = 3;

/// A put or delete that failed with `e`: exit [`MAYBE_APPLIED`], saying so and naming the
/// nodes that may hold it, when it may have been applied; else the error as any other.
fn write_failed(client: &Client, what: &str, e: dynamo_node::client::Error) -> Result<ExitCode> {
    // A node tried before the one whose answer this is may have applied it (it gave none).
    if !e.may_have_applied() && client.unsure_nodes().is_empty() {
        return Err(e.into());
    }
    eprintln!("dynamo: {e}");
    let unsure = client.unsure_nodes();
    let nodes = if unsure.is_empty() {
        String::new()
    } else {
        format!(" ({} gave no answer after it was sent)", unsure.join(", "))
    };
    eprintln!(
        "note: the {what} failed but may have been applied all the same{nodes}: read the key \
         before writing it again, and write with the context that read returns"
    );
    Ok(ExitCode::from(MAYBE_APPLIED))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Serve(args) => done(serve(&args).await),
        Command::Cluster(args) => done(cluster::run(&args).await),
        Command::Init(args) => done(init::run(&args)),
        Command::Keys(KeysCommand::Issue(args)) => done(init::issue(&args)),
        Command::Get { key, raw, conn } => {
            let got = conn.client().get(key.as_bytes()).await?;
            if got.values.is_empty() {
                eprintln!("(not found)");
                return Ok(ExitCode::from(NOT_FOUND));
            }
            if raw {
                let [value] = &got.values[..] else {
                    bail!(
                        "{} siblings: --raw writes one value; read them without --raw",
                        got.values.len()
                    );
                };
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                out.write_all(value)?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            for (i, v) in got.values.iter().enumerate() {
                say!("sibling {}: {}", i + 1, show(v));
            }
            say!("context: {}", hex(&got.context));
            say!("replicas: {:?}", got.replicas);
            Ok(ExitCode::SUCCESS)
        }
        Command::Put {
            key,
            value,
            file,
            context,
            conn,
        } => {
            let value = match (value.as_deref(), file) {
                (_, Some(path)) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (Some("-"), None) => {
                    use std::io::Read as _;
                    let mut bytes = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut bytes)
                        .context("cannot read the value from standard input")?;
                    bytes
                }
                (Some(v), None) => v.as_bytes().to_vec(),
                (None, None) => bail!("give a value, `-` for standard input, or --file"),
            };
            let mut client = conn.client();
            let ctx = match client.put(key.as_bytes(), value, &unhex(&context)?).await {
                Ok(ctx) => ctx,
                Err(e) => return write_failed(&client, "put", e),
            };
            say!("stored");
            say!("context: {}", hex(&ctx));
            note_unsure(&client, "put");
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { key, context, conn } => {
            let mut client = conn.client();
            let context = if context.trim().is_empty() {
                // A delete supersedes what its context names; without one it would supersede
                // nothing. Read the key first and delete what that read saw.
                let got = client.get(key.as_bytes()).await?;
                if got.values.is_empty() {
                    eprintln!("(not found)");
                    return Ok(ExitCode::from(NOT_FOUND));
                }
                eprintln!(
                    "no --context given: deleting the {} version(s) read just now (context {})",
                    got.values.len(),
                    hex(&got.context)
                );
                got.context
            } else {
                unhex(&context)?
            };
            let ctx = match client.delete(key.as_bytes(), &context).await {
                Ok(ctx) => ctx,
                Err(e) => return write_failed(&client, "delete", e),
            };
            say!("deleted");
            say!("context: {}", hex(&ctx));
            note_unsure(&client, "delete");
            Ok(ExitCode::SUCCESS)
        }
        Command::Members { conn } => done(status::members(&conn).await),
        Command::Status {
            node: None,
            conn,
            json,
        } => done(status::cluster(&conn, json).await),
        Command::Status {
            node: Some(node),
            conn,
            json,
        } => {
            let mut client = conn.client_of(vec![node]);
            let s = client.status().await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "node {} at {} (epoch {}, generation {})",
                s.id,
                s.address,
                s.epoch,
                s.generation
            );
            say!("members:");
            for m in &s.members {
                let share = s
                    .ownership
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .map_or(0.0, |(_, f)| *f);
                say!(
                    "  {:>4}  {:<22} {:<5} replicates {:>5.1}% of the keys  hints held for it: {}",
                    m.id,
                    m.address,
                    if m.up { "up" } else { "down" },
                    share * 100.0,
                    m.hints_pending
                );
            }
            say!(
                "keys: {}  partitions replicated: {}  hints pending: {}",
                s.keys,
                s.partitions_replicated,
                s.hints_pending
            );
            let c = &s.counters;
            say!(
                "anti-entropy: {} sessions ({} running, {} failed), {} keys repaired, {} bytes",
                c.sync_sessions,
                s.sync_sessions_running,
                c.sync_failures,
                c.sync_keys_repaired,
                c.sync_bytes
            );
            say!(
                "requests: {} gets, {} puts, {} deletes, {} failed, {} forwarded, {} in flight",
                c.gets,
                c.puts,
                c.deletes,
                c.failures,
                c.forwarded,
                s.requests_in_flight
            );
            say!(
                "replica: {} writes, {} reads, {} read repairs; hints: {} recorded, {} delivered, {} dropped",
                c.replica_writes, c.replica_reads, c.read_repairs, c.hints_recorded, c.hints_delivered, c.hints_dropped
            );
            say!(
                "latency (ms): get p50 {} p99 {} p99.9 {} max {} (mean {:.2}) | put p50 {} p99 {} p99.9 {} \
                 max {} (mean {:.2})",
                s.get_latency.p50,
                s.get_latency.p99,
                s.get_latency.p999,
                s.get_latency.max,
                s.get_latency.mean,
                s.put_latency.p50,
                s.put_latency.p99,
                s.put_latency.p999,
                s.put_latency.max,
                s.put_latency.mean
            );
            for line in status::staleness_lines(s.staleness.as_ref()) {
                say!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ring { full, conn } => {
            let ring = conn.client().ring().await?;
            if !full {
                // Per node: ranges it replicates (first in the preference list or not) and the
                // share of the key space they cover.
                let mut per: std::collections::BTreeMap<NodeId, (usize, usize, f64)> =
                    Default::default();
                for r in &ring {
                    for (i, n) in r.replicas.iter().enumerate() {
                        let e = per.entry(*n).or_default();
                        e.0 += 1;
                        e.1 += usize::from(i == 0);
                        e.2 += r.fraction;
                    }
                }
                let n = ring.first().map_or(0, |r| r.replicas.len());
                say!(
                    "{} ranges, {} replicas each, {} nodes",
                    ring.len(),
                    n,
                    per.len()
                );
                say!(
                    "{:>6}  {:>8}  {:>8}  {:>16}",
                    "node",
                    "ranges",
                    "as first",
                    "key space held"
                );
                for (id, (ranges, first, share)) in per {
                    say!("{id:>6}  {ranges:>8}  {first:>8}  {:>15.1}%", share * 100.0);
                }
                say!("(every range and its replicas: dynamo ring --full)");
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "{:>5}  {:<34} {:>7}  replicas",
                "range",
                "end position",
                "share"
            );
            for r in ring {
                say!(
                    "{:>5}  {:<34} {:>6.2}%  {:?}",
                    r.index,
                    r.end,
                    r.fraction * 100.0,
                    r.replicas
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { node, change, conn } => done(change::plan(&node, &change, &conn).await),
        Command::Commit {
            node,
            version,
            change,
            conn,
        } => done(change::commit(&node, version, &change, &conn).await),
        Command::Token {
            client_secret,
            cluster,
        } => {
            say!(
                "{}",
                dynamo_node::http::token(&cluster, client_secret.as_bytes())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Leave { node, conn } => {
            let mut client = conn.client_of(vec![node]);
            client.leave().await?;
            say!(
                "node at {} is leaving: once the claimant takes it out of the ring (when the ring can lose a node), it hands its ranges over, then stops serving them",
                client.connected_to().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The async runtime. With one worker thread (`TOKIO_WORKER_THREADS=1`, which `dynamo cluster`
/// gives each of three nodes on two cores, or a one-core machine) tokio's single-threaded
/// scheduler runs the tasks, without the work-stealing machinery of the multi-threaded one:
/// gets 1.08x, read-modify-writes 1.07x with three nodes on two cores
/// (bench/results/profile-2026-12-04.md). Otherwise the multi-threaded runtime, which reads
/// `TOKIO_WORKER_THREADS` itself.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS").ok();
    if single_threaded(workers.as_deref(), cores()) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

/// The cores this process may run on (1 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether one thread runs the tasks: one worker asked for, or none asked for on one core.
fn single_threaded(workers: Option<&str>, cores: usize) -> bool {
    match workers {
        Some(w) => w.trim().parse::<usize>() == Ok(1),
        None => cores <= 1,
    }
}

/// Exit codes: 0 done (found), 1 not found (get, delete), 2 an error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log line that cannot be written is dropped: reporting the failure would go to the same
    // standard error with `eprintln!`, which panics when its reader went away (`dynamo serve
    // 2>&1 | head`), and a node must not stop for its logs.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dynamo: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader of our output went away (`dynamo get k | head -1`): nothing to report.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dynamo: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::single_threaded;

    #[test]
    fn one_worker_asked_for_or_one_core_runs_on_one_thread() {
        assert!(single_threaded(Some("1"), 8));
        assert!(single_threaded(Some(" 1 "), 8));
        assert!(!single_threaded(Some("2"), 1));
        assert!(!single_threaded(Some("many"), 8));
        assert!(single_threaded(None, 1));
        assert!(!single_threaded(None, 2));
    }
}
