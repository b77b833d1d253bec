//! Live staleness predictions (PBS, Bailis et al. 2012) from the round trips this node measures.
//!
//! As a coordinator the node records, per remote replica answer, the time from sending a request
//! to its answer: write to ack ([`NodeStats::write_round_trip`]) and read to response
//! ([`NodeStats::read_round_trip`]), node-wide, in milliseconds on the node's clock. The requests
//! of a coordinator all go out when it starts, so the time since the request started is the round
//! trip (rehinted writes after a failure carry no request id and are not counted). Answers that
//! arrive after the request finished count too: leaving them out would keep only the fastest R or
//! W of N and bias the model toward consistency. The local replica's synchronous answer is not a
//! sample.
//!
//! A replica of a durable store serves a write to reads as soon as it applies it, and
//! acknowledges it only after the store's flush to disk: most of a write's round trip on one
//! machine is that flush. The runtime's driver times its flushes ([`NodeStats::write_service`],
//! the flushes that carried replica writes) and the model takes them as each replica's service
//! time between applying and acknowledging ([`dynamo_pbs::Wars::write_service`]): the
//! coordinator's own replica acknowledges after one, and a remote round trip less one is the
//! network's. Without it the flush would count as the write's way to the replica and the
//! prediction would be far too pessimistic (on a local 5-node cluster, 70% consistent at t = 0
//! predicted where 100% of reads were; `bench/results/pbs-live.md`).
//!
//! A coordinator cannot split a round trip into its two legs; `dynamo_pbs::Legs::RoundTrip` splits
//! it at a uniform point (exact for exponential legs, mean-preserving for symmetric ones). The
//! model takes the write coordinator to be a replica (puts are coordinated by a primary: its own
//! copy has the write at once) and the read coordinator not to be one (a get through a replica
//! answers partly from its own copy, which is at least as fresh as the model's worst case only
//! when that replica coordinated the write; the model does not try to tell).
//!
//! The prediction is a Monte Carlo of [`TRIALS`] trials from a fixed seed, about 2 ms for the
//! five choices: deterministic for the same samples, and no cost on the request path beyond two
//! histogram records per answer. `NodeCore::status` makes one afresh; the runtime's driver
//! reuses one for a second (any client may ask for the status as often as it likes).

use dynamo_pbs::{Dist, Empirical, Wars};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::NodeStats;

/// Monte Carlo trials per prediction.
pub const TRIALS: usize = 4_096;
/// Round trips of each kind a prediction needs.
pub const MIN_SAMPLES: u64 = 20;
/// Read delays after a write commits at which P(consistent) is shown, ms.
pub const TIMES: [f64; 4] = [0.0, 1.0, 10.0, 100.0];
/// The target probability whose time is shown.
pub const TARGET: f64 = 0.999;
/// The Monte Carlo's seed (fixed: the same samples give the same prediction).
const SEED: u64 = 0x5eed_0f9b;

/// The live predictions of `dynamo status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StalenessStatus {
    /// Write-to-ack round trips measured.
    pub write_samples: u64,
    /// Read-to-response round trips measured.
    pub read_samples: u64,
    /// Store flushes that carried replica writes, measured (the replicas' service time before an
    /// ack; used once there are `MIN_SAMPLES`).
    pub service_samples: u64,
    /// Monte Carlo trials per choice.
    pub trials: usize,
    /// The read delays after commit of [`StalenessChoice::p_consistent`], ms.
    pub times: Vec<f64>,
    /// The probability of [`StalenessChoice::time_to_target`].
    pub target: f64,
    /// The configured (R, W) first, then R or W one down or up (within 1..=N).
    pub choices: Vec<StalenessChoice>,
}

/// The prediction for one (R, W).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StalenessChoice {
    /// Replication factor.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
    /// Whether this is the node's configuration.
    pub configured: bool,
    /// P(a read issued t ms after the write commits returns it), per [`StalenessStatus::times`].
    pub p_consistent: Vec<f64>,
    /// Time after commit to reach [`StalenessStatus::target`], ms.
    pub time_to_target: Option<f64>,
}

/// The configured (R, W) and its neighbours within `1..=n`.
pub fn choices(n: usize, r: usize, w: usize) -> Vec<(usize, usize)> {
    let mut out = vec![(r, w)];
    let candidates = [
        (r.checked_sub(1), Some(w)),
        (Some(r + 1), Some(w)),
        (Some(r), w.checked_sub(1)),
        (Some(r), Some(w + 1)),
    ];
    for c in candidates {
        if let (Some(r), Some(w)) = c {
            if (1..=n).contains(&r) && (1..=n).contains(&w) {
                out.push((r, w));
            }
        }
    }
    out
}

fn empirical(h: &Histogram<u64>) -> Option<Empirical> {
    empirical_scaled(h, 1.0)
}

/// The histogram's samples times `scale` (microseconds to ms: `1e-3`).
fn empirical_scaled(h: &Histogram<u64>, scale: f64) -> Option<Empirical> {
    Empirical::from_counts(
        h.iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 * scale, v.count_at_value())),
    )
    .ok()
}

/// The predictions for N, R, W from `stats`' round trips; `None` until each kind has
/// [`MIN_SAMPLES`] samples.
pub fn predict(stats: &NodeStats, n: usize, r: usize, w: usize) -> Option<StalenessStatus> {
    let (writes, reads) = (&stats.write_round_trip, &stats.read_round_trip);
    if writes.len() < MIN_SAMPLES || reads.len() < MIN_SAMPLES {
        return None;
    }
    let mut model = Wars::from_round_trips(empirical(writes)?, empirical(reads)?)
        .with_coordinator_replica(true);
    let service = &stats.write_service;
    if service.len() >= MIN_SAMPLES {
        model = model.with_write_service(Dist::Empirical(empirical_scaled(service, 1e-3)?));
    }
    let wanted = choices(n, r, w);
    let runs = model.run(n, &wanted, TRIALS, SEED).ok()?;
    Some(StalenessStatus {
        write_samples: writes.len(),
        read_samples: reads.len(),
        service_samples: service.len(),
        trials: TRIALS,
        times: TIMES.to_vec(),
        target: TARGET,
        choices: runs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let q = s.quorum();
                StalenessChoice {
                    n: q.n,
                    r: q.r,
                    w: q.w,
                    configured: i == 0,
                    p_consistent: TIMES.iter().map(|&t| s.p_consistent(t)).collect(),
                    time_to_target: s.time_to(TARGET),
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_stay_within_n() {
        assert_eq!(
            choices(3, 2, 2),
            vec![(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)]
        );
        assert_eq!(choices(3, 1, 3), vec![(1, 3), (2, 3), (1, 2)]);
        assert_eq!(choices(1, 1, 1), vec![(1, 1)]);
    }

    #[test]
    fn predicts_once_there_are_samples() {
        let mut stats = NodeStats::default();
        assert!(predict(&stats, 3, 2, 2).is_none());
        for i in 0..100u64 {
            let _ = stats.write_round_trip.record(2 + i % 7);
            let _ = stats.read_round_trip.record(1 + i % 5);
        }
        let p = predict(&stats, 3, 1, 1).expect("enough samples");
        assert_eq!(p.choices.len(), 3);
        assert!(p.choices[0].configured);
        // Every write lands within the largest round trip (8 ms) of its start, so by 10 ms
        // after commit every read is consistent.
        assert_eq!(p.choices[0].p_consistent[2], 1.0);
        assert!(p.choices[0].p_consistent[0] < 1.0);
        assert_eq!(predict(&stats, 3, 1, 1), Some(p));
    }

    #[test]
    fn timed_flushes_move_the_round_trip_to_the_ack() {
        // Round trips of 4-6 ms that are all flush (4-6 ms per flush carrying replica writes):
        // every replica has the write as soon as it arrives, long before the coordinator's own
        // flush commits it, so a read right after the commit is consistent.
        let mut stats = NodeStats::default();
        for i in 0..100u64 {
            let _ = stats.write_round_trip.record(4 + i % 3);
            let _ = stats.read_round_trip.record(1 + i % 3);
        }
        let before = predict(&stats, 3, 1, 1).expect("enough samples");
        for i in 0..100u64 {
            stats.counters.replica_writes += 1;
            stats.record_flush(4_000 + 1_000 * (i % 3));
        }
        // A flush without a replica write since the last one is no sample.
        stats.record_flush(1);
        assert_eq!(stats.write_service.len(), 100);
        let after = predict(&stats, 3, 1, 1).expect("enough samples");
        assert_eq!(after.service_samples, 100);
        assert!(before.choices[0].p_consistent[0] < 0.8, "{before:?}");
        assert!(
            after.choices[0].p_consistent[0] > 0.95,
            "{before:?} {after:?}"
        );
    }
}
