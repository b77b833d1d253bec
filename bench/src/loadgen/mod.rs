//! One closed-loop load generator for every system: this project (its TCP client), Redis (RESP)
//! and etcd (its v3 JSON gateway).
//!
//! A [`Backend`] knows how to open connections to one system; a [`Connection`] does the three
//! operations every workload is made of (get, put, read-modify-write). [`run`] opens
//! `connections` connections, each with one request in flight (a closed loop), spreads them over
//! the system's endpoints round-robin, runs a warm-up and then a measured window, and returns a
//! [`Report`]: operations per second, latency percentiles per operation, errors, and (when the
//! servers' process ids are given) disk bytes written and syscalls made by the servers during the
//! measured window.
//!
//! Adding a system (an HTTP API, say) is one more module with a [`Backend`] and a
//! [`Connection`], and one more arm in [`AnyBackend`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), dynamo_bench::loadgen::LoadError> {
//! use dynamo_bench::loadgen::{run, AnyBackend, RunSpec, Workload};
//! use dynamo_bench::loadgen::redis::Redis;
//!
//! let backend = AnyBackend::Redis(Redis::new(vec!["127.0.0.1:6379".into()]));
//! let spec = RunSpec { workload: Workload::Get, connections: 50, ..RunSpec::default() };
//! let report = run(&backend, &spec).await?;
//! println!("{} ops/s", report.ops_per_sec());
//! # Ok(()) }
//! ```

pub mod dynamo;
pub mod dynamo_http;
pub mod etcd;
pub mod probe;
pub mod redis;
mod report;
pub mod table;
mod zipf;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use report::{OpStats, Report};
pub use zipf::Zipf;

/// Why a run or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A connection could not be made.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The endpoint.
        address: String,
        /// Why.
        reason: String,
    },
    /// An I/O error on an open connection.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("server error: {0}")]
    Server(String),
    /// A preloaded key was not found.
    #[error("key not found: {0}")]
    Missing(String),
    /// A preloaded key read back a value that is not the one written (beyond the first byte,
    /// which read-modify-writes count up).
    #[error("key {0} read back another value than the one written")]
    Wrong(String),
    /// A connection task failed.
    #[error("a connection task failed: {0}")]
    Task(String),
}

impl From<crate::http1::HttpError> for LoadError {
    fn from(e: crate::http1::HttpError) -> Self {
        match e {
            crate::http1::HttpError::Connect { address, reason } => {
                LoadError::Connect { address, reason }
            }
            crate::http1::HttpError::Io(e) => LoadError::Io(e),
            crate::http1::HttpError::Protocol(p) => LoadError::Protocol(p),
        }
    }
}

/// What a read returned: the value (if any) and the token a later write of the same key hands
/// back (this project's context; empty for the others).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    /// The value, or `None` when the key is absent.
    pub value: Option<Vec<u8>>,
    /// Opaque token for a write that supersedes what was read.
    pub token: Vec<u8>,
}

/// One connection to a system, with one request in flight at a time.
pub trait Connection: Send {
    /// Reads `key`.
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Read, LoadError>> + Send;
    /// Writes `value` under `key`, superseding what `token` (from a read) names (an empty token:
    /// a blind write).
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        token: &[u8],
    ) -> impl Future<Output = Result<(), LoadError>> + Send;
}

/// A system to drive: opens connections to its endpoints.
pub trait Backend: Send + Sync {
    /// The connection type.
    type Conn: Connection + 'static;
    /// A short name for reports (`redis`, `etcd`, `dynamo`).
    fn name(&self) -> &str;
    /// Opens connection number `index` (spread over the endpoints round-robin by index).
    fn connect(&self, index: usize) -> impl Future<Output = Result<Self::Conn, LoadError>> + Send;
}

/// Every backend this crate knows, as one type (so a command line can pick one at run time).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyBackend {
    /// This project, over its TCP client protocol.
    Dynamo(dynamo::Dynamo),
    /// This project, over its HTTP API.
    DynamoHttp(dynamo_http::DynamoHttp),
    /// Redis over RESP.
    Redis(redis::Redis),
    /// etcd over its v3 JSON gateway.
    Etcd(etcd::Etcd),
}

/// A connection of an [`AnyBackend`].
#[allow(clippy::large_enum_variant)]
pub enum AnyConn {
    /// See [`AnyBackend::Dynamo`].
    Dynamo(dynamo::DynamoConn),
    /// See [`AnyBackend::DynamoHttp`].
    DynamoHttp(dynamo_http::DynamoHttpConn),
    /// See [`AnyBackend::Redis`].
    Redis(redis::RedisConn),
    /// See [`AnyBackend::Etcd`].
    Etcd(etcd::EtcdConn),
}

impl Connection for AnyConn {
    async fn get(&mut self, key: &[u8]) -> Result<Read, LoadError> {
        match self {
            AnyConn::Dynamo(c) => c.get(key).await,
            AnyConn::DynamoHttp(c) => c.get(key).await,
            AnyConn::Redis(c) => c.get(key).await,
            AnyConn::Etcd(c) => c.get(key).await,
        }
    }

    async fn put(&mut self, key: &[u8], value: &[u8], token: &[u8]) -> Result<(), LoadError> {
        match self {
            AnyConn::Dynamo(c) => c.put(key, value, token).await,
            AnyConn::DynamoHttp(c) => c.put(key, value, token).await,
            AnyConn::Redis(c) => c.put(key, value, token).await,
            AnyConn::Etcd(c) => c.put(key, value, token).await,
        }
    }
}

impl Backend for AnyBackend {
    type Conn = AnyConn;

    fn name(&self) -> &str {
        match self {
            AnyBackend::Dynamo(b) => b.name(),
            AnyBackend::DynamoHttp(b) => b.name(),
            AnyBackend::Redis(b) => b.name(),
            AnyBackend::Etcd(b) => b.name(),
        }
    }

    async fn connect(&self, index: usize) -> Result<AnyConn, LoadError> {
        Ok(match self {
            AnyBackend::Dynamo(b) => AnyConn::Dynamo(b.connect(index).await?),
            AnyBackend::DynamoHttp(b) => AnyConn::DynamoHttp(b.connect(index).await?),
            AnyBackend::Redis(b) => AnyConn::Redis(b.connect(index).await?),
            AnyBackend::Etcd(b) => AnyConn::Etcd(b.connect(index).await?),
        })
    }
}

/// What each connection does in its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workload {
    /// Reads of preloaded keys, uniformly chosen.
    #[default]
    Get,
    /// Blind writes, each to a new key.
    Put,
    /// A read then a write of the same preloaded key with what the read returned (one operation).
    ReadModifyWrite,
    /// 95 % reads and 5 % read-modify-writes of preloaded keys, uniformly chosen.
    Mix,
    /// As [`Workload::Mix`] with keys chosen from a Zipf distribution (θ = 0.99, YCSB's).
    Zipf,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 5] = [
        Workload::Get,
        Workload::Put,
        Workload::ReadModifyWrite,
        Workload::Mix,
        Workload::Zipf,
    ];

    /// The workload's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::ReadModifyWrite => "rmw",
            Workload::Mix => "mix",
            Workload::Zipf => "zipf",
        }
    }

    /// The workload called `name`.
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Whether the workload reads preloaded keys.
    pub fn needs_preload(self) -> bool {
        self != Workload::Put
    }
}

/// How to run one workload.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The workload.
    pub workload: Workload,
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// Preloaded keys that reads choose from.
    pub keys: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Warm-up before the measured window (operations not counted).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Prefix of every key (a fresh one per run keeps runs apart).
    pub prefix: String,
    /// Server processes whose disk writes and syscalls the report counts (optional).
    pub pids: Vec<u32>,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            workload: Workload::Get,
            connections: 50,
            keys: 10_000,
            value_size: 100,
            warmup: Duration::from_secs(5),
            measure: Duration::from_secs(30),
            prefix: "lg".into(),
            pids: Vec::new(),
        }
    }
}

/// The name of preloaded key `i` under `prefix`.
pub fn preload_key(prefix: &str, i: u64) -> Vec<u8> {
    format!("{prefix}-k{i:010}").into_bytes()
}

/// A value of `size` bytes that differs with `seed` (so that nothing compresses it away).
pub fn value(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..size).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

/// Writes the `spec.keys` keys the read workloads choose from, over `spec.connections`
/// connections.
pub async fn preload<B: Backend + 'static>(
    backend: &Arc<B>,
    spec: &RunSpec,
) -> Result<(), LoadError> {
    let conns = spec.connections.clamp(1, 64) as u64;
    let mut tasks = Vec::new();
    for c in 0..conns {
        let backend = backend.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = backend.connect(c as usize).await?;
            let mut i = c;
            while i < spec.keys {
                let v = value(spec.value_size, i);
                conn.put(&preload_key(&spec.prefix, i), &v, &[]).await?;
                i += conns;
            }
            Ok::<(), LoadError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| LoadError::Task(e.to_string()))??;
    }
    Ok(())
}

/// Latencies and counts of one connection (or of all, merged).
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) all: Histogram<u64>,
    pub(crate) gets: Histogram<u64>,
    pub(crate) writes: Histogram<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        let h = || Histogram::new(3).expect("3 significant figures is a valid precision");
        Tally {
            all: h(),
            gets: h(),
            writes: h(),
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: &Tally) {
        let _ = self.all.add(&other.all);
        let _ = self.gets.add(&other.gets);
        let _ = self.writes.add(&other.writes);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// One operation of a workload.
enum Op {
    Get(u64),
    Put(u64),
    Rmw(u64),
}

struct Chooser {
    rng: SmallRng,
    zipf: Option<Zipf>,
    keys: u64,
    next_new: u64,
    stride: u64,
}

impl Chooser {
    fn key(&mut self) -> u64 {
        match &self.zipf {
            // Scatter the popular ranks over the key space, as YCSB's scrambled Zipfian does.
            Some(z) => {
                let rank = z.sample(&mut self.rng);
                rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % self.keys
            }
            None => self.rng.gen_range(0..self.keys),
        }
    }

    fn next(&mut self, workload: Workload) -> Op {
        match workload {
            Workload::Get => Op::Get(self.key()),
            Workload::Put => {
                let k = self.next_new;
                self.next_new += self.stride;
                Op::Put(k)
            }
            Workload::ReadModifyWrite => Op::Rmw(self.key()),
            Workload::Mix | Workload::Zipf => {
                if self.rng.gen_bool(0.05) {
                    Op::Rmw(self.key())
                } else {
                    Op::Get(self.key())
                }
            }
        }
    }
}

/// Checks what a read of preloaded key `k` returned: present, and the value written (a
/// read-modify-write changes only its first byte). A system that answers with nothing, an empty
/// value or another key's is counted as failing, not as fast.
fn check_read(
    expected: &Expected,
    k: u64,
    key: &[u8],
    read: &Option<Vec<u8>>,
) -> Result<(), LoadError> {
    let name = || String::from_utf8_lossy(key).into_owned();
    let Some(v) = read else {
        return Err(LoadError::Missing(name()));
    };
    let computed;
    let want = match expected.values.get(k as usize) {
        Some(want) => want.as_slice(),
        None => {
            computed = value(expected.size, k);
            computed.as_slice()
        }
    };
    if v.len() != want.len() || v.get(1..) != want.get(1..) {
        return Err(LoadError::Wrong(name()));
    }
    Ok(())
}

/// The values the preload wrote, computed once per run (up to 64 MiB of them; past that, each
/// check computes its own), so that checking a read costs the driver a comparison.
struct Expected {
    size: usize,
    values: Vec<Vec<u8>>,
}

impl Expected {
    fn of(spec: &RunSpec) -> Self {
        let reads = !matches!(spec.workload, Workload::Put);
        // Each value costs its bytes and a vector's header and allocation besides.
        let fit = ((64usize << 20) / (spec.value_size + 64)) as u64;
        let count = if reads { spec.keys.min(fit) } else { 0 };
        Expected {
            size: spec.value_size,
            values: (0..count).map(|k| value(spec.value_size, k)).collect(),
        }
    }
}

async fn one_op<C: Connection>(
    conn: &mut C,
    op: &Op,
    spec: &RunSpec,
    expected: &Expected,
    value: &[u8],
) -> Result<bool, LoadError> {
    match *op {
        Op::Get(k) => {
            let key = preload_key(&spec.prefix, k);
            let read = conn.get(&key).await?;
            check_read(expected, k, &key, &read.value)?;
            Ok(false)
        }
        Op::Put(k) => {
            let key = format!("{}-n{k:012}", spec.prefix).into_bytes();
            conn.put(&key, value, &[]).await?;
            Ok(true)
        }
        Op::Rmw(k) => {
            let key = preload_key(&spec.prefix, k);
            let read = conn.get(&key).await?;
            // A preloaded key that reads as absent, or as another value, is a lost write, as in
            // a get.
            check_read(expected, k, &key, &read.value)?;
            let Some(mut v) = read.value else {
                return Err(LoadError::Missing(
                    String::from_utf8_lossy(&key).into_owned(),
                ));
            };
            // The modification: the first byte counts up.
            match v.first_mut() {
                Some(b) => *b = b.wrapping_add(1),
                None => v.extend_from_slice(value),
            }
            conn.put(&key, &v, &read.token).await?;
            Ok(true)
        }
    }
}

async fn conn_loop<C: Connection>(
    mut conn: C,
    index: usize,
    spec: Arc<RunSpec>,
    expected: Arc<Expected>,
    start_at: Instant,
    until: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut chooser = Chooser {
        rng: SmallRng::seed_from_u64(0x5eed ^ index as u64),
        zipf: (spec.workload == Workload::Zipf).then(|| Zipf::new(spec.keys.max(1), 0.99)),
        keys: spec.keys.max(1),
        // New keys of this run only (a run with another connection count before this one
        // started from the same numbers), at the same key length as before.
        next_new: index as u64 + spec.connections as u64 * 1_000_000_000,
        stride: spec.connections.max(1) as u64,
    };
    let value = value(spec.value_size, index as u64);
    loop {
        let op = chooser.next(spec.workload);
        let started = Instant::now();
        if started >= until {
            break;
        }
        let result = one_op(&mut conn, &op, &spec, &expected, &value).await;
        if started < start_at {
            if result.is_err() {
                // Not counted, but not spun on either.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        let micros = started.elapsed().as_micros() as u64;
        match result {
            Ok(write) => {
                let _ = tally.all.record(micros);
                let _ = if write {
                    tally.writes.record(micros)
                } else {
                    tally.gets.record(micros)
                };
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(e.to_string());
                }
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

/// Runs one workload against a backend and reports it (see the [module docs](self)). The read
/// workloads expect [`preload`] to have run with the same `spec.prefix`, `keys` and
/// `value_size`.
pub async fn run<B: Backend + Clone + 'static>(
    backend: &B,
    spec: &RunSpec,
) -> Result<Report, LoadError> {
    let backend = Arc::new(backend.clone());
    let spec = Arc::new(spec.clone());
    let mut conns = Vec::with_capacity(spec.connections);
    for i in 0..spec.connections.max(1) {
        conns.push(backend.connect(i).await?);
    }
    let expected = Arc::new(Expected::of(&spec));
    let start_at = Instant::now() + spec.warmup;
    let until = start_at + spec.measure;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(conn_loop(
                c,
                i,
                spec.clone(),
                expected.clone(),
                start_at,
                until,
            ))
        })
        .collect();
    tokio::time::sleep_until(start_at.into()).await;
    let probe = probe::Probe::start(&spec.pids);
    tokio::time::sleep_until(until.into()).await;
    let (servers, driver_cpu_seconds) = probe.finish().await;
    let mut total = Tally::new();
    for t in tasks {
        let tally = t.await.map_err(|e| LoadError::Task(e.to_string()))?;
        total.merge(&tally);
    }
    Ok(Report::new(
        backend.name(),
        &spec,
        &total,
        spec.measure.as_secs_f64(),
        servers,
        driver_cpu_seconds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a store of one key that answers gets with `answer`, whatever it holds.
    struct Answers {
        answer: Option<Vec<u8>>,
    }

    impl Connection for Answers {
        async fn get(&mut self, _key: &[u8]) -> Result<Read, LoadError> {
            Ok(Read {
                value: self.answer.clone(),
                token: Vec::new(),
            })
        }

        async fn put(&mut self, _: &[u8], _: &[u8], _: &[u8]) -> Result<(), LoadError> {
            Ok(())
        }
    }

    /// Review of the benchmark (the project's twenty-ninth session): a read counted as a success
    /// whenever it returned something, so a system answering an empty value, a truncated one or
    /// another key's would have looked fast rather than wrong. Every read of a preloaded key is
    /// checked against the value written (beyond the first byte, which read-modify-writes count
    /// up).
    #[tokio::test]
    async fn a_read_of_another_value_is_an_error() {
        let spec = RunSpec {
            keys: 10,
            ..RunSpec::default()
        };
        let expected = Expected::of(&spec);
        let written = value(spec.value_size, 3);
        let mut modified = written.clone();
        modified[0] = modified[0].wrapping_add(1);
        let cases: [(Option<Vec<u8>>, bool); 6] = [
            (Some(written.clone()), true),
            (Some(modified), true),
            (None, false),
            (Some(Vec::new()), false),
            (Some(written[..50].to_vec()), false),
            (Some(value(spec.value_size, 4)), false),
        ];
        for (answer, fine) in cases {
            for op in [Op::Get(3), Op::Rmw(3)] {
                let mut conn = Answers {
                    answer: answer.clone(),
                };
                let result = one_op(&mut conn, &op, &spec, &expected, &written).await;
                assert_eq!(result.is_ok(), fine, "{answer:?}: {result:?}");
            }
        }
    }
}
