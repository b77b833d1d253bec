//! A closed-loop load generator against a running cluster, with latency histograms.
//!
//! Each of `--clients` tasks connects with the Rust client and, until `--seconds` pass, picks a key
//! (uniform over `--keys`) and either reads it or does a read-modify-write (get, then put with the
//! context). It prints throughput and get/put latency percentiles.
//!
//! ```sh
//! cargo run --release -p dynamo-node --bin dynamo -- cluster --nodes 3      # in one terminal
//! cargo run --release -p dynamo-bench --bin loadgen -- --seconds 10         # in another
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use dynamo_bench::http1::Http1;
use dynamo_node::client::{Client, ClientConfig};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Closed-loop load against a running dynamo cluster")]
struct Args {
    /// Node addresses, comma separated.
    #[arg(long, default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    nodes: String,
    /// The cluster's client secret.
    #[arg(
        long,
        alias = "secret",
        env = "DYNAMO_CLIENT_SECRET",
        default_value = "dynamo-local-client-secret"
    )]
    client_secret: String,
    /// Talk to nodes that run without encryption (`dynamo cluster --no-encryption`).
    #[arg(long)]
    no_encryption: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    /// Share of operations that are read-modify-writes (the rest are gets).
    #[arg(long, default_value_t = 0.5)]
    writes: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Use the HTTP API with this bearer token (`--nodes` are the nodes' HTTP addresses).
    #[arg(long)]
    http_token: Option<String>,
}

/// A connection to one node, over the TCP protocol or the HTTP API.
enum Conn {
    Tcp(Client),
    Http { http: Http1, auth: String },
}

impl Conn {
    async fn open(args: &Args, id: usize) -> Result<Conn, String> {
        // Spread the clients over the nodes: each starts with a different one.
        let mut nodes: Vec<String> = args.nodes.split(',').map(str::to_string).collect();
        let shift = id % nodes.len().max(1);
        nodes.rotate_left(shift);
        if let Some(token) = &args.http_token {
            let node = nodes.first().ok_or("no node given")?;
            let http = Http1::connect(node).await.map_err(|e| e.to_string())?;
            return Ok(Conn::Http {
                http,
                auth: format!("Bearer {token}"),
            });
        }
        let mut config = ClientConfig::new(nodes, args.client_secret.as_bytes().to_vec());
        config.encrypt = !args.no_encryption;
        Ok(Conn::Tcp(
            Client::connect(config).await.map_err(|e| e.to_string())?,
        ))
    }

    /// Reads `key`; returns the context for the next write.
    async fn get(&mut self, key: &str) -> Result<Vec<u8>, String> {
        match self {
            Conn::Tcp(client) => client
                .get(key.as_bytes())
                .await
                .map(|r| r.context)
                .map_err(|e| e.to_string()),
            Conn::Http { http, auth } => {
                let path = format!("/kv/{key}");
                let r = http
                    .request("GET", &path, &[("Authorization", auth)], &[])
                    .await
                    .map_err(|e| e.to_string())?;
                match r.status {
                    200 | 300 | 404 => Ok(r
                        .header("x-dynamo-context")
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec()),
                    status => Err(format!("HTTP {status}")),
                }
            }
        }
    }

    /// Writes `value` over what `context` names.
    async fn put(&mut self, key: &str, value: Vec<u8>, context: &[u8]) -> Result<(), String> {
        match self {
            Conn::Tcp(client) => client
                .put(key.as_bytes(), value, context)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Conn::Http { http, auth } => {
                let path = format!("/kv/{key}");
                let context = String::from_utf8_lossy(context);
                let mut headers = vec![("Authorization", auth.as_str())];
                if !context.is_empty() {
                    headers.push(("X-Dynamo-Context", context.as_ref()));
                }
                let r = http
                    .request("PUT", &path, &headers, &value)
                    .await
                    .map_err(|e| e.to_string())?;
                match r.status {
                    200 | 204 => Ok(()),
                    status => Err(format!("HTTP {status}")),
                }
            }
        }
    }
}

struct Tally {
    gets: Histogram<u64>,
    puts: Histogram<u64>,
    errors: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid precision")
}

async fn client_loop(args: &Args, id: usize, until: Instant) -> Result<Tally, String> {
    let mut conn = Conn::open(args, id).await?;
    let mut rng = SmallRng::seed_from_u64(id as u64);
    let mut tally = Tally {
        gets: histogram(),
        puts: histogram(),
        errors: 0,
    };
    let micros = |since: Instant| since.elapsed().as_micros() as u64;
    while Instant::now() < until {
        let key = format!("load-{}", rng.gen_range(0..args.keys.max(1)));
        let started = Instant::now();
        let context = match conn.get(&key).await {
            Ok(context) => {
                let _ = tally.gets.record(micros(started));
                context
            }
            Err(_) => {
                tally.errors += 1;
                continue;
            }
        };
        if rng.gen_bool(args.writes.clamp(0.0, 1.0)) {
            let value = vec![b'x'; args.value_size];
            let started = Instant::now();
            match conn.put(&key, value, &context).await {
                Ok(()) => {
                    let _ = tally.puts.record(micros(started));
                }
                Err(_) => tally.errors += 1,
            }
        }
    }
    Ok(tally)
}

fn line(name: &str, h: &Histogram<u64>, seconds: f64) -> String {
    format!(
        "{name:<4} {:>8} ops {:>9.0}/s  mean {:>7.2} ms  p50 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2}  max {:>7.2}",
        h.len(),
        h.len() as f64 / seconds,
        h.mean() / 1000.0,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    )
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let args: &'static Args = Box::leak(Box::new(args));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.clients)
        .map(|id| tokio::spawn(client_loop(args, id, until)))
        .collect();
    let mut total = Tally {
        gets: histogram(),
        puts: histogram(),
        errors: 0,
    };
    for task in tasks {
        match task.await {
            Ok(Ok(t)) => {
                let _ = total.gets.add(&t.gets);
                let _ = total.puts.add(&t.puts);
                total.errors += t.errors;
            }
            Ok(Err(e)) => {
                eprintln!("loadgen: a client could not connect: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("loadgen: a client task failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} over {}: {} clients, {} keys, {:.0}% read-modify-writes, {} B values, {:.1} s, {} errors",
        if args.http_token.is_some() { "HTTP API" } else { "TCP protocol" },
        args.nodes,
        args.clients,
        args.keys,
        args.writes * 100.0,
        args.value_size,
        seconds,
        total.errors
    );
    println!("{}", line("get", &total.gets, seconds));
    println!("{}", line("put", &total.puts, seconds));
}
