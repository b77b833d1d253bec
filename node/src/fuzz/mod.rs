//! Fuzzing of every decoder the node runs on bytes it did not write, on the stable toolchain.
//!
//! One [`Target`] per decoder: the byte stream of a connection (length prefixes, frame limits),
//! the handshake, client frames, the node's replies, peer frames, client contexts, encoded
//! sibling sets, stored data records, and the metadata values of the store (ring state, hint
//! records, counters). [`Target::run`] decodes one input, checks the invariants of what decoded
//! (see `targets`), and catches any panic: a panic or a broken invariant is a failure.
//!
//! A [`Campaign`] mutates the entries of a corpus with a seeded [`mutate::Mutator`] (no nightly,
//! no libFuzzer: deterministic, so a failure replays from its seed), keeps the mutants that decode
//! as further seeds, writes every failing input to a crash directory, and reports per target the
//! inputs run, failures, throughput, and the slowest input in milliseconds per MiB (for inputs of
//! at least [`SLOW_MIN_LEN`] bytes, where timer noise no longer dominates) and in absolute time.
//!
//! The corpus lives in `node/fuzz/corpus/<target>/`, one raw input per file, captured from real
//! traffic by [`corpus::generate`]: a cluster of cores serving puts, gets, siblings, deletes,
//! hinted handoff, anti-entropy, a join and a leave, encoded as the runtime encodes them, plus
//! real handshakes between [`crate::runtime::handshake::connect`] and `accept`.
//!
//! # Fuzzing: how to run the short and long runs
//!
//! The short run is part of the test suite (every corpus entry, then a few thousand mutated
//! inputs per target, in a debug build):
//!
//! ```text
//! cargo test -p dynamo-node --test fuzz
//! ```
//!
//! The same test runs longer with `FUZZ_INPUTS=<inputs per target>`. The long run uses the
//! release binary:
//!
//! ```text
//! cargo build --release -p dynamo-node --bin dynamo-fuzz
//! target/release/dynamo-fuzz run --target all --inputs 11200000 --seed 1 --threads 1 \
//!     --crashes /tmp/dynamo-fuzz-crashes
//! ```
//!
//! `--inputs` counts per target (nine targets: 11.2M each is 100.8M in all). It exits non-zero
//! if any input failed; `dynamo-fuzz replay --target <t> <file>...` reruns saved inputs, and
//! `dynamo-fuzz seed-corpus --out node/fuzz/corpus` regenerates the corpus from traffic.

pub mod corpus;
pub mod mutate;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};

/// Inputs shorter than this are left out of the slowest-per-MiB figure (a few microseconds of
/// timer or scheduler noise on a 100-byte input reads as seconds per MiB).
pub const SLOW_MIN_LEN: usize = 4096;

/// One decoder under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Target {
    /// The byte stream of an established connection, read by `Conn` into frames (first byte:
    /// peer or client side, and the read size).
    Stream,
    /// A handshake frame body, and a new connection's byte stream read by `handshake::accept`.
    Handshake,
    /// A `ClientFrame` body (what a node reads from a client).
    Client,
    /// A `NodeFrame` body (what a client reads from a node).
    Reply,
    /// A `PeerFrame` body (what a node reads from a peer).
    Peer,
    /// A client context (an encoded vector clock).
    Context,
    /// An encoded sibling set (a hint or transfer payload).
    Siblings,
    /// A stored data record: checksum, then the sibling set behind it.
    Record,
    /// A metadata value: ring state (also published in gossip), hint record, counter.
    Meta,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Target; 9] = [
        Target::Stream,
        Target::Handshake,
        Target::Client,
        Target::Reply,
        Target::Peer,
        Target::Context,
        Target::Siblings,
        Target::Record,
        Target::Meta,
    ];

    /// The target's name: its corpus directory and its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Stream => "stream",
            Target::Handshake => "handshake",
            Target::Client => "client",
            Target::Reply => "reply",
            Target::Peer => "peer",
            Target::Context => "context",
            Target::Siblings => "siblings",
            Target::Record => "record",
            Target::Meta => "meta",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input: decodes it and checks what decoded. Never panics: a panic of the decoder
    /// is caught and returned as a failure.
    pub fn run(self, input: &[u8]) -> Verdict {
        let result = catch_unwind(AssertUnwindSafe(|| self.check(input)));
        match result {
            Ok(Ok(Outcome::Accepted)) => Verdict::Accepted,
            Ok(Ok(Outcome::Rejected)) => Verdict::Rejected,
            Ok(Err(violation)) => Verdict::Violation(violation),
            Err(payload) => Verdict::Panic(panic_message(payload.as_ref())),
        }
    }

    /// Runs only what the node runs on such an input (no invariant checks): what the slowest
    /// figures of a [`Report`] time.
    pub fn decode(self, input: &[u8]) {
        targets::decode_only(self, input);
    }

    fn check(self, input: &[u8]) -> Result<Outcome, targets::Violation> {
        match self {
            Target::Stream => targets::stream(input),
            Target::Handshake => targets::handshake(input),
            Target::Client => targets::client(input),
            Target::Reply => targets::reply(input),
            Target::Peer => targets::peer(input),
            Target::Context => targets::context(input),
            Target::Siblings => targets::siblings(input),
            Target::Record => targets::record(input),
            Target::Meta => targets::meta(input),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a decoder made of an input that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It decoded, and what decoded kept every invariant.
    Accepted,
    /// It was refused with an error.
    Rejected,
}

/// The result of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Decoded, and the decoded value kept every invariant.
    Accepted,
    /// Refused with a typed error.
    Rejected,
    /// Decoded, but the value broke an invariant (described).
    Violation(String),
    /// The decoder panicked (with this message).
    Panic(String),
}

impl Verdict {
    /// Whether the input found a bug.
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Violation(_) | Verdict::Panic(_))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Mutated inputs per target (the corpus entries run once more, unmodified, first).
    pub inputs: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Threads per target.
    pub threads: usize,
    /// Largest mutated input, in bytes.
    pub max_len: usize,
    /// Where failing inputs are written (none: not written).
    pub crashes: Option<PathBuf>,
}

impl Default for Campaign {
    fn default() -> Self {
        Campaign {
            inputs: 10_000,
            seed: 1,
            threads: 1,
            max_len: 64 << 10,
            crashes: None,
        }
    }
}

/// A failing input.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub verdict: Verdict,
    /// Its length.
    pub len: usize,
    /// Where it was written, if it was.
    pub saved: Option<PathBuf>,
    /// The input.
    pub input: Vec<u8>,
}

/// What one target's campaign found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inputs run (corpus entries and mutants).
    pub inputs: u64,
    /// Inputs that decoded.
    pub accepted: u64,
    /// Inputs whose decoder panicked.
    pub panics: u64,
    /// Inputs that decoded to a value breaking an invariant.
    pub violations: u64,
    /// Time spent decoding and checking, summed over threads.
    pub busy: Duration,
    /// Wall time of the campaign.
    pub wall: Duration,
    /// Slowest decoding per MiB ([`Target::decode`], fastest of [`RETIMES`] runs) among inputs
    /// of at least [`SLOW_MIN_LEN`] bytes: (ms/MiB, length).
    pub slowest_per_mib: Option<(f64, usize)>,
    /// The input of [`Report::slowest_per_mib`] (to replay it).
    pub slowest_input: Vec<u8>,
    /// Slowest decoding in absolute time: (duration, length).
    pub slowest: Option<(Duration, usize)>,
    /// Longest input run.
    pub longest: usize,
    /// The first failures found (at most [`MAX_KEPT_FAILURES`]).
    pub failures: Vec<Failure>,
}

/// Failures kept in a [`Report`] (all of them are counted, and written out).
pub const MAX_KEPT_FAILURES: usize = 16;

impl Report {
    /// Inputs per second of wall time.
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Panics and violations.
    pub fn failed(&self) -> u64 {
        self.panics + self.violations
    }

    fn per_mib(len: usize, took: Duration) -> f64 {
        took.as_secs_f64() * 1e3 / (len as f64 / (1 << 20) as f64)
    }

    fn would_be_slowest(&self, len: usize, took: Duration) -> bool {
        self.slowest.is_none_or(|(d, _)| took > d)
            || (len >= SLOW_MIN_LEN
                && self
                    .slowest_per_mib
                    .is_none_or(|(r, _)| Self::per_mib(len, took) > r))
    }

    fn count(&mut self, len: usize, took: Duration) {
        self.inputs += 1;
        self.busy += took;
        self.longest = self.longest.max(len);
    }

    fn timed(&mut self, input: &[u8], took: Duration) {
        let len = input.len();
        if self.slowest.is_none_or(|(d, _)| took > d) {
            self.slowest = Some((took, len));
        }
        if len >= SLOW_MIN_LEN {
            let per_mib = Self::per_mib(len, took);
            if self.slowest_per_mib.is_none_or(|(r, _)| per_mib > r) {
                self.slowest_per_mib = Some((per_mib, len));
                self.slowest_input = input.to_vec();
            }
        }
    }

    fn absorb(&mut self, other: Report) {
        self.inputs += other.inputs;
        self.accepted += other.accepted;
        self.panics += other.panics;
        self.violations += other.violations;
        self.busy += other.busy;
        self.longest = self.longest.max(other.longest);
        if let Some((d, l)) = other.slowest {
            if self.slowest.is_none_or(|(m, _)| d > m) {
                self.slowest = Some((d, l));
            }
        }
        if let Some((r, l)) = other.slowest_per_mib {
            if self.slowest_per_mib.is_none_or(|(m, _)| r > m) {
                self.slowest_per_mib = Some((r, l));
                self.slowest_input = other.slowest_input;
            }
        }
        for f in other.failures {
            if self.failures.len() < MAX_KEPT_FAILURES {
                self.failures.push(f);
            }
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_mib = self
            .slowest_per_mib
            .map_or("-".to_string(), |(r, l)| format!("{r:.3} ms/MiB ({l} B)"));
        let slowest = self.slowest.map_or("-".to_string(), |(d, l)| {
            format!("{:.3} ms ({l} B)", d.as_secs_f64() * 1e3)
        });
        write!(
            f,
            "{} inputs, {} decoded, {} panics, {} violations, {:.0} inputs/s, slowest {per_mib}, \
             slowest absolute {slowest}, longest {} B",
            self.inputs,
            self.accepted,
            self.panics,
            self.violations,
            self.rate(),
            self.longest
        )
    }
}

/// How many times a new slowest input is timed again (the fastest of all its runs counts).
pub const RETIMES: usize = 4;

/// Stack size of the campaign's threads: a tokio worker's (2 MiB), where the node decodes.
pub const STACK: usize = 2 << 20;

/// Seeds kept per thread: the corpus plus at most this many mutants that decoded.
const POOL_EXTRA: usize = 1024;
/// Decoded mutants longer than this are not kept as seeds (they would slow every later input).
const POOL_MAX_LEN: usize = 4096;

impl Campaign {
    /// Runs `target` over `corpus`: every entry unmodified, then [`Campaign::inputs`] mutants.
    /// An empty corpus starts from one empty input. Inputs run on threads with the stack of a
    /// tokio worker ([`STACK`]), where the node decodes them.
    pub fn run(&self, target: Target, corpus: &[Vec<u8>]) -> Report {
        let start = Instant::now();
        let seeds: Vec<Vec<u8>> = if corpus.is_empty() {
            vec![Vec::new()]
        } else {
            corpus.to_vec()
        };
        let threads = self.threads.max(1);
        let mut report = Report::default();
        let reports: Vec<Report> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let share = self.inputs / threads as u64
                        + u64::from((t as u64) < self.inputs % threads as u64);
                    let seeds = &seeds;
                    std::thread::Builder::new()
                        .name(format!("fuzz-{target}-{t}"))
                        .stack_size(STACK)
                        .spawn_scoped(s, move || self.worker(target, seeds, t as u64, share))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_default(),
                    Err(_) => Report::default(),
                })
                .collect()
        });
        for r in reports {
            report.absorb(r);
        }
        report.wall = start.elapsed();
        report
    }

    fn worker(&self, target: Target, seeds: &[Vec<u8>], thread: u64, inputs: u64) -> Report {
        let seed = self.seed
            ^ (target as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ thread.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut m = mutate::Mutator::new(seed, self.max_len);
        let mut pool: Vec<Vec<u8>> = seeds.to_vec();
        let mut report = Report::default();
        if thread == 0 {
            for entry in seeds {
                self.one(target, entry, &mut report);
            }
        }
        for _ in 0..inputs {
            let a = m.rng().gen_range(0..pool.len());
            let b = m.rng().gen_range(0..pool.len());
            let input = m.mutate(&pool[a], &pool[b]);
            if self.one(target, &input, &mut report) && input.len() <= POOL_MAX_LEN {
                if pool.len() < seeds.len() + POOL_EXTRA {
                    pool.push(input);
                } else if m.rng().gen_ratio(1, 8) {
                    let i = m.rng().gen_range(seeds.len()..pool.len());
                    pool[i] = input;
                }
            }
        }
        report
    }

    /// Runs one input into `report`; whether it decoded.
    fn one(&self, target: Target, input: &[u8], report: &mut Report) -> bool {
        let start = Instant::now();
        let verdict = target.run(input);
        let took = start.elapsed();
        report.count(input.len(), took);
        // Decoding takes at most as long as decoding and checking: only an input whose checks
        // took longer than the slowest decoding so far can be the slowest decoding. It is timed
        // again, decoding only, and the fastest of those runs counts (a thread preempted by
        // another process mid-input is not a slow decoder).
        if report.would_be_slowest(input.len(), took) {
            let mut fastest = Duration::MAX;
            for _ in 0..RETIMES {
                let again = Instant::now();
                let _ = catch_unwind(AssertUnwindSafe(|| target.decode(input)));
                fastest = fastest.min(again.elapsed());
            }
            report.timed(input, fastest);
        }
        match verdict {
            Verdict::Accepted => {
                report.accepted += 1;
                true
            }
            Verdict::Rejected => false,
            failed => {
                if matches!(failed, Verdict::Panic(_)) {
                    report.panics += 1;
                } else {
                    report.violations += 1;
                }
                let saved = self
                    .crashes
                    .as_deref()
                    .and_then(|dir| save_failure(dir, target, input, &failed));
                if report.failures.len() < MAX_KEPT_FAILURES {
                    report.failures.push(Failure {
                        verdict: failed,
                        len: input.len(),
                        saved,
                        input: input.to_vec(),
                    });
                }
                false
            }
        }
    }
}

/// A short content hash: the file name of a corpus entry or a saved failure.
pub fn content_name(input: &[u8]) -> String {
    Sha256::digest(input)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn save_failure(dir: &Path, target: Target, input: &[u8], verdict: &Verdict) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{}-{}", target.name(), content_name(input)));
    std::fs::write(&path, input).ok()?;
    let _ = std::fs::write(path.with_extension("txt"), format!("{verdict:?}\n"));
    Some(path)
}
