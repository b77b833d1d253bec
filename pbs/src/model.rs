//! [`Wars`]: the WARS model of a Dynamo-style quorum system, and [`Staleness`], what a Monte Carlo
//! of it predicts.
//!
//! For each of the N replicas draw W (write request to the replica), A (its ack back), R (read
//! request to it) and S (its response). A write commits when the W-th ack arrives. A read issued
//! `t` ms after the commit reaches replica i at `commit + t + R_i`, which then has the write iff
//! `W_i <= commit + t + R_i`. The coordinator returns after the first R responses (in order of
//! `R_i + S_i`); the read is consistent iff one of them had the write.
//!
//! So each trial has a *staleness window*: the read is consistent iff `t >= window`, with
//! `window = max(0, min over the first R responders of (W_i - commit - R_i))`. One Monte Carlo
//! gives the whole curve in `t`: P(consistent at t) is the fraction of windows `<= t`, and the time
//! to reach probability p is the p-quantile of the windows. Every (R, W) of a run is judged on
//! the same draws, so the comparisons between choices carry no Monte Carlo noise of their own:
//! more R or more W never lowers P, exactly, not only on average.

use crate::dist::{Dist, Empirical};
use crate::error::Error;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::rng::{below, unit_f64};

/// The largest N the model accepts (far beyond any replication factor in use).
pub const MAX_N: usize = 64;

/// N, R and W of a quorum system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quorum {
    /// Replicas of each key.
    pub n: usize,
    /// Replies a read waits for.
    pub r: usize,
    /// Acknowledgements a write waits for.
    pub w: usize,
}

impl Quorum {
    /// Checks `1 <= R, W <= N <= MAX_N`.
    pub fn new(n: usize, r: usize, w: usize) -> Result<Self, Error> {
        if n == 0 || n > MAX_N || r == 0 || w == 0 || r > n || w > n {
            return Err(Error::Quorum { n, r, w });
        }
        Ok(Quorum { n, r, w })
    }

    /// Whether every read quorum meets every write quorum (R + W > N): then every read is
    /// consistent, at any t.
    pub fn is_strict(&self) -> bool {
        self.r + self.w > self.n
    }
}

/// The two one-way delays of one exchange (a write and its ack, or a read and its response).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Legs {
    /// Both legs known: request delay, response delay, drawn independently.
    OneWay {
        /// To the replica (W or R).
        request: Dist,
        /// Back from the replica (A or S).
        response: Dist,
    },
    /// Only the round trip is known, as a coordinator measures it (send to answer, on its own
    /// clock). A draw `x` is split at a uniform point: request `U·x`, response `(1 - U)·x`. That
    /// is exact when the two legs are independent exponentials with one mean (given their sum,
    /// the first is then uniform on `[0, x]`), and keeps the mean of symmetric legs in general;
    /// it cannot recover an asymmetry between the legs.
    RoundTrip(Dist),
}

impl Legs {
    fn draw(&self, rng: &mut ChaCha8Rng) -> (f64, f64) {
        match self {
            Legs::OneWay { request, response } => (request.sample(rng), response.sample(rng)),
            Legs::RoundTrip(d) => {
                let x = d.sample(rng);
                let u = unit_f64(rng);
                (u * x, (1.0 - u) * x)
            }
        }
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            Legs::OneWay { request, response } => {
                request.validate()?;
                response.validate()
            }
            Legs::RoundTrip(d) => d.validate(),
        }
    }
}

/// The WARS model: the delays of writes and acks, reads and responses between a coordinator and
/// the N replicas of a key (all replicas alike).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Wars {
    /// W and A.
    pub write: Legs,
    /// R and S.
    pub read: Legs,
    /// Added to each message to or from a replica in another datacenter, ms (0 for one
    /// datacenter). Replica i sits in datacenter i; the write's coordinator in datacenter 0, the
    /// read's in a uniformly random one.
    pub remote: f64,
    /// The write coordinator is itself replica 0 (Dynamo's rule: a put is coordinated by one of
    /// the key's primaries): that replica has the write at once and acknowledges it at once (or
    /// after its [`write_service`](Wars::write_service)). The read coordinator is assumed not to
    /// be a replica.
    pub coordinator_is_replica: bool,
    /// Time a replica takes between applying a write (readable from then on) and acknowledging
    /// it, such as a durable store's flush to disk; `None` for none. Each replica draws its own,
    /// the coordinator's replica too. It is added to the ack leg A. With [`Legs::RoundTrip`] the
    /// measured round trip is taken to include it: a draw is the round trip less a service draw
    /// (at least 0), split as usual, plus the service on the ack leg. Without it, a round trip
    /// that is mostly a flush is split as if the write took half of it to become readable, and
    /// the model predicts far more stale reads than a durable store gives.
    pub write_service: Option<Dist>,
}

impl Wars {
    /// All four delays given, one datacenter, the coordinator outside the replicas (the paper's
    /// setting).
    pub const fn new(w: Dist, a: Dist, r: Dist, s: Dist) -> Self {
        Wars {
            write: Legs::OneWay {
                request: w,
                response: a,
            },
            read: Legs::OneWay {
                request: r,
                response: s,
            },
            remote: 0.0,
            coordinator_is_replica: false,
            write_service: None,
        }
    }

    /// From round trips measured by coordinators: write to ack, and read to response (see
    /// [`Legs::RoundTrip`] for how each is split).
    pub fn from_round_trips(write: Empirical, read: Empirical) -> Self {
        Wars {
            write: Legs::RoundTrip(Dist::Empirical(write)),
            read: Legs::RoundTrip(Dist::Empirical(read)),
            remote: 0.0,
            coordinator_is_replica: false,
            write_service: None,
        }
    }

    /// With a cross-datacenter delay per message (see [`Wars::remote`]).
    pub fn with_remote(mut self, ms: f64) -> Self {
        self.remote = ms;
        self
    }

    /// With the write coordinator as one of the replicas (see [`Wars::coordinator_is_replica`]).
    pub fn with_coordinator_replica(mut self, yes: bool) -> Self {
        self.coordinator_is_replica = yes;
        self
    }

    /// With a replica's time from applying a write to acknowledging it (see
    /// [`Wars::write_service`]).
    pub fn with_write_service(mut self, service: Dist) -> Self {
        self.write_service = Some(service);
        self
    }

    /// One replica's write delay, ack delay and service time, the last included in the ack
    /// delay (see [`Wars::write_service`]).
    fn draw_write(&self, rng: &mut ChaCha8Rng) -> (f64, f64, f64) {
        let Some(service) = &self.write_service else {
            let (w, a) = self.write.draw(rng);
            return (w, a, 0.0);
        };
        let f = service.sample(rng);
        match &self.write {
            Legs::OneWay { request, response } => {
                (request.sample(rng), response.sample(rng) + f, f)
            }
            Legs::RoundTrip(d) => {
                let x = (d.sample(rng) - f).max(0.0);
                let u = unit_f64(rng);
                (u * x, (1.0 - u) * x + f, f)
            }
        }
    }

    /// Checks every distribution's parameters and the remote delay.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(service) = &self.write_service {
            service.validate()?;
        }
        self.write.validate()?;
        self.read.validate()?;
        if !(self.remote.is_finite() && self.remote >= 0.0) {
            return Err(Error::Parameter {
                what: "remote",
                value: self.remote,
                expected: "finite and >= 0",
            });
        }
        Ok(())
    }

    /// One Monte Carlo run of `trials` trials for N = `n` and each `(R, W)` of `choices`, on the
    /// same draws, from `seed`. The draws do not depend on `choices`: a choice gets the same
    /// prediction whatever else is asked with it.
    pub fn run(
        &self,
        n: usize,
        choices: &[(usize, usize)],
        trials: usize,
        seed: u64,
    ) -> Result<Vec<Staleness>, Error> {
        self.validate()?;
        let quorums: Vec<Quorum> = choices
            .iter()
            .map(|&(r, w)| Quorum::new(n, r, w))
            .collect::<Result<_, _>>()?;
        if trials == 0 {
            return Err(Error::NoTrials);
        }
        let mut windows: Vec<Vec<f64>> = vec![Vec::with_capacity(trials); quorums.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut written = vec![0.0; n];
        let mut acked = vec![0.0; n];
        let mut asked = vec![0.0; n];
        let mut answered = vec![0.0; n];
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..trials {
            let read_dc = if self.remote > 0.0 {
                below(&mut rng, n as u64) as usize
            } else {
                0
            };
            for i in 0..n {
                let wx = if i != 0 { self.remote } else { 0.0 };
                let rx = if i != read_dc { self.remote } else { 0.0 };
                let (w, a, service) = self.draw_write(&mut rng);
                let (r, s) = self.read.draw(&mut rng);
                if i == 0 && self.coordinator_is_replica {
                    written[i] = 0.0;
                    acked[i] = service;
                } else {
                    written[i] = w + wx;
                    acked[i] = written[i] + a + wx;
                }
                asked[i] = r + rx;
                answered[i] = asked[i] + s + rx;
            }
            acked.sort_by(f64::total_cmp);
            for (i, o) in order.iter_mut().enumerate() {
                *o = i;
            }
            order.sort_by(|&a, &b| answered[a].total_cmp(&answered[b]));
            for (q, out) in quorums.iter().zip(windows.iter_mut()) {
                let commit = acked[q.w - 1];
                let window = order[..q.r]
                    .iter()
                    .map(|&i| written[i] - commit - asked[i])
                    .fold(f64::INFINITY, f64::min);
                out.push(window.max(0.0));
            }
        }
        Ok(quorums
            .into_iter()
            .zip(windows)
            .map(|(quorum, mut windows)| {
                windows.sort_by(f64::total_cmp);
                Staleness { quorum, windows }
            })
            .collect())
    }

    /// [`Wars::run`] for one quorum.
    pub fn staleness(&self, quorum: Quorum, trials: usize, seed: u64) -> Result<Staleness, Error> {
        let mut v = self.run(quorum.n, &[(quorum.r, quorum.w)], trials, seed)?;
        v.pop().ok_or(Error::NoTrials)
    }
}

/// The prediction for one quorum: the staleness window of every trial, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Staleness {
    quorum: Quorum,
    windows: Vec<f64>,
}

impl Staleness {
    /// The quorum predicted.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Trials run.
    pub fn trials(&self) -> usize {
        self.windows.len()
    }

    /// The trials' staleness windows (ms after commit from which the read is consistent), sorted.
    pub fn windows(&self) -> &[f64] {
        &self.windows
    }

    /// Trials in which a read issued `t_ms` after the commit was consistent.
    pub fn consistent(&self, t_ms: f64) -> usize {
        self.windows.partition_point(|&w| w <= t_ms)
    }

    /// P(a read issued `t_ms` after the write commits returns it or a newer version).
    pub fn p_consistent(&self, t_ms: f64) -> f64 {
        self.consistent(t_ms) as f64 / self.windows.len().max(1) as f64
    }

    /// The smallest t (ms after commit) with P(consistent at t) >= `p`; `None` for p above 1 or
    /// not a number. Limited by the trials: with 1,000 trials p = 0.999 is the worst trial but one.
    pub fn time_to(&self, p: f64) -> Option<f64> {
        if p.is_nan() || p > 1.0 {
            return None;
        }
        if p <= 0.0 {
            return Some(0.0);
        }
        // The smallest k with k / trials >= p, computed as `p_consistent` divides (`p * trials`
        // rounds: 0.3 * 1000 is 300.00000000000006, whose ceiling is one trial too many).
        let n = self.windows.len();
        let mut k = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        while k > 1 && (k - 1) as f64 / n as f64 >= p {
            k -= 1;
        }
        while k < n && (k as f64 / n as f64) < p {
            k += 1;
        }
        self.windows.get(k - 1).copied()
    }

    /// The paper's ⟨k, t⟩-staleness: P(a read `t_ms` after the commit returns one of the last
    /// `k` versions), taking the k writes' windows as independent: `1 - (1 - P(t))^k`.
    pub fn p_within_versions(&self, t_ms: f64, k: u32) -> f64 {
        let stale = 1.0 - self.p_consistent(t_ms);
        1.0 - stale.powi(k.min(i32::MAX as u32) as i32)
    }
}

/// `C(n, k)` as a float.
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// PBS k-staleness (the paper's closed form, no timing): the probability that a read quorum of R
/// out of N meets one of the last `k` write quorums of W, each a uniformly random W-subset,
/// `1 - (C(N-W, R) / C(N, R))^k`. A quorum built without [`Quorum::new`] (its fields are
/// public) has R and W above N taken as N, so the answer stays a probability.
pub fn k_staleness(quorum: Quorum, k: u32) -> f64 {
    let Quorum { n, r, w } = quorum;
    let (r, w) = (r.min(n), w.min(n));
    let miss = binomial(n - w, r) / binomial(n, r);
    1.0 - miss.powi(k.min(i32::MAX as u32) as i32)
}
