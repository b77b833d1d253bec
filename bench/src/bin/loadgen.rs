//! A closed-loop load generator for this project, Redis and etcd (see
//! `dynamo_bench::loadgen`).
//!
//! Each connection has one request in flight; the connections spread over the endpoints
//! round-robin. Every workload named runs with every connection count named, one after the
//! other, after one preload of the keys the reads choose from. One line per run on stdout; with
//! `--json FILE`, one JSON object per run appended to FILE.
//!
//! ```sh
//! cargo run --release -p dynamo-node --bin dynamo -- cluster --nodes 3      # in one terminal
//! cargo run --release -p dynamo-bench --bin loadgen -- --seconds 10         # in another
//! cargo run --release -p dynamo-bench --bin loadgen -- --system redis --endpoints 127.0.0.1:6379 \
//!     --workloads get,put --connections 1,50
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dynamo_bench::loadgen::dynamo::Dynamo;
use dynamo_bench::loadgen::dynamo_http::DynamoHttp;
use dynamo_bench::loadgen::etcd::Etcd;
use dynamo_bench::loadgen::redis::Redis;
use dynamo_bench::loadgen::{preload, run, AnyBackend, RunSpec, Workload};

#[derive(Parser, Debug)]
#[command(
    about = "Closed-loop load against this project, Redis or etcd",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The system: dynamo, dynamo-http (this project's HTTP API; `--http-token`), redis or etcd.
    #[arg(long, default_value = "dynamo")]
    system: String,
    /// Its endpoints (`host:port`), comma separated (default: the local cluster's nodes, Redis's
    /// or etcd's default port).
    #[arg(long, alias = "nodes")]
    endpoints: Option<String>,
    /// The name in reports (default: the system's).
    #[arg(long)]
    name: Option<String>,
    /// This project's client secret.
    #[arg(
        long,
        alias = "secret",
        env = "DYNAMO_CLIENT_SECRET",
        default_value = "dynamo-local-client-secret"
    )]
    client_secret: String,
    /// Talk to dynamo nodes that run without encryption (`dynamo cluster --no-encryption`).
    #[arg(long)]
    no_encryption: bool,
    /// The HTTP API's bearer token, for `--system dynamo-http` (`dynamo token` prints it).
    #[arg(long, env = "DYNAMO_HTTP_TOKEN", default_value = "")]
    http_token: String,
    /// Workloads, comma separated: get, put, rmw (read-modify-write), mix (95 % get, 5 % rmw),
    /// zipf (mix on Zipf-distributed keys).
    #[arg(long, default_value = "mix")]
    workloads: String,
    /// Connection counts, comma separated: every workload runs once with each.
    #[arg(long, alias = "clients", default_value = "16")]
    connections: String,
    /// Preloaded keys that reads choose from.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Server process ids whose disk writes, CPU time and syscalls (with `perf`) are counted.
    #[arg(long)]
    pids: Option<String>,
    /// Append one JSON object per run to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Writes the Markdown comparison table of runs recorded with --json (bench/peers.sh).
    Table {
        /// The JSON lines.
        #[arg(long)]
        input: std::path::PathBuf,
        /// The Markdown file to write.
        #[arg(long)]
        output: std::path::PathBuf,
        /// A paragraph under the title (machine, load, settings).
        #[arg(long, default_value = "")]
        note: String,
        /// The JSON lines of an earlier run, shown beside this one.
        #[arg(long)]
        before: Option<std::path::PathBuf>,
    },
}

fn table(
    input: &std::path::Path,
    output: &std::path::Path,
    note: &str,
    before: Option<&std::path::Path>,
) -> Result<(), String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let jsonl = read(input)?;
    let before = before.map(read).transpose()?;
    let md = dynamo_bench::loadgen::table::markdown(&jsonl, note, before.as_deref());
    std::fs::write(output, md).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn backend(args: &Args) -> Result<AnyBackend, String> {
    let endpoints = |default: &str| list(args.endpoints.as_deref().unwrap_or(default));
    Ok(match args.system.as_str() {
        "dynamo" => AnyBackend::Dynamo(Dynamo::new(
            args.name.as_deref().unwrap_or("dynamo"),
            endpoints("127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"),
            args.client_secret.as_bytes(),
            !args.no_encryption,
        )),
        "dynamo-http" => AnyBackend::DynamoHttp(DynamoHttp::new(
            endpoints("127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"),
            &args.http_token,
        )),
        "redis" => AnyBackend::Redis(Redis::new(endpoints("127.0.0.1:6379"))),
        "etcd" => AnyBackend::Etcd(Etcd::new(endpoints("127.0.0.1:2379"))),
        other => {
            return Err(format!(
                "unknown system {other:?} (dynamo, dynamo-http, redis or etcd)"
            ))
        }
    })
}

fn fail(message: String) -> ! {
    eprintln!("loadgen: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(Command::Table {
        input,
        output,
        note,
        before,
    }) = &args.command
    {
        table(input, output, note, before.as_deref()).unwrap_or_else(|e| fail(e));
        return;
    }
    let backend = backend(&args).unwrap_or_else(|e| fail(e));
    let workloads: Vec<Workload> = list(&args.workloads)
        .iter()
        .map(|w| Workload::parse(w).ok_or_else(|| format!("unknown workload {w:?}")))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(e));
    let connections: Vec<usize> = list(&args.connections)
        .iter()
        .map(|c| c.parse().map_err(|_| format!("bad connection count {c:?}")))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(e));
    let pids: Vec<u32> = list(args.pids.as_deref().unwrap_or(""))
        .iter()
        .map(|p| p.parse().map_err(|_| format!("bad pid {p:?}")))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(e));
    let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut spec = RunSpec {
        workload: Workload::Get,
        connections: connections.iter().copied().max().unwrap_or(1),
        keys: args.keys.max(1),
        value_size: args.value_size,
        warmup: seconds(args.warmup),
        measure: seconds(args.seconds),
        prefix: format!("lg{stamp}"),
        pids,
    };
    let name = args.name.clone().unwrap_or_else(|| args.system.clone());
    if workloads.iter().any(|w| w.needs_preload()) {
        eprintln!("loadgen: {name}: preloading {} keys", spec.keys);
        preload(&Arc::new(backend.clone()), &spec)
            .await
            .unwrap_or_else(|e| fail(format!("preload failed: {e}")));
    }
    for workload in &workloads {
        for c in &connections {
            spec.workload = *workload;
            spec.connections = *c;
            let mut report = run(&backend, &spec)
                .await
                .unwrap_or_else(|e| fail(format!("{}: {e}", workload.name())));
            report.system.clone_from(&name);
            println!("{}", report.line());
            if let Some(path) = &args.json {
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{}", report.json()));
                if let Err(e) = written {
                    fail(format!("cannot write {}: {e}", path.display()));
                }
            }
        }
    }
}
