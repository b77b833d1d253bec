//! The PBS paper's production latency fits (Bailis et al., VLDB 2012, table 3): each delay is
//! Exp(rate) with probability `p_exp`, otherwise Pareto(`xm`, `alpha`), in milliseconds.
//!
//! - [`LNKD_SSD`]: LinkedIn's Voldemort on SSDs, one distribution for all four delays.
//! - [`LNKD_DISK`]: LinkedIn on spinning disks: slow, heavy-tailed writes (W), SSD-like A, R, S.
//! - [`YMMR`]: Yammer's Riak: heavy-tailed writes, and slower other delays.
//!
//! A cross-datacenter variant of any of them: [`Wars::with_remote`] (the paper's WAN used 75 ms).
//!
//! [`exponential`] is the paper's synthetic model: exponential delays, the write delay W with
//! its own rate, A, R and S with another.

use crate::dist::Dist;
use crate::model::Wars;

/// LNKD-SSD's delay (all four of W, A, R, S).
pub const SSD: Dist = Dist::Mixture {
    p_exp: 0.0878,
    rate: 1.66,
    xm: 0.235,
    alpha: 10.0,
};

/// LNKD-DISK's write delay W.
pub const DISK_W: Dist = Dist::Mixture {
    p_exp: 0.62,
    rate: 0.183,
    xm: 1.05,
    alpha: 1.51,
};

/// YMMR's write delay W.
pub const YMMR_W: Dist = Dist::Mixture {
    p_exp: 0.061,
    rate: 0.0028,
    xm: 3.0,
    alpha: 3.5,
};

/// YMMR's A, R and S.
pub const YMMR_OTHER: Dist = Dist::Mixture {
    p_exp: 0.018,
    rate: 0.0217,
    xm: 1.5,
    alpha: 3.8,
};

/// LinkedIn, SSDs.
pub const LNKD_SSD: Wars = Wars::new(SSD, SSD, SSD, SSD);
/// LinkedIn, disks.
pub const LNKD_DISK: Wars = Wars::new(DISK_W, SSD, SSD, SSD);
/// Yammer.
pub const YMMR: Wars = Wars::new(YMMR_W, YMMR_OTHER, YMMR_OTHER, YMMR_OTHER);

/// The PBS paper's synthetic latency model: W ~ Exp(`w_rate`), and A, R, S ~ Exp(`ars_rate`)
/// (rates in 1/ms, so the means are `1 / rate` ms). The paper sweeps `w_rate` against a fixed
/// `ars_rate` to show that a longer write tail, not the mean latency, is what makes reads stale.
pub fn exponential(w_rate: f64, ars_rate: f64) -> Wars {
    let ars = Dist::Exponential {
        mean: 1.0 / ars_rate,
    };
    Wars::new(
        Dist::Exponential { mean: 1.0 / w_rate },
        ars.clone(),
        ars.clone(),
        ars,
    )
}

#[cfg(test)]
mod tests {
    use super::exponential;

    #[test]
    fn faster_writes_are_never_less_consistent_on_the_same_draws() {
        // Exponential draws are -ln(u) × mean: with one seed, a smaller write mean shrinks every
        // write delay and nothing else, so P(consistent) can only grow, at every t.
        let rates = [0.05, 0.2, 1.0, 4.0];
        let runs: Vec<_> = rates
            .iter()
            .map(|&w| {
                exponential(w, 1.0)
                    .run(3, &[(1, 1)], 5_000, 11)
                    .expect("valid")
            })
            .collect();
        for t in [0.0, 1.0, 10.0, 100.0] {
            let p: Vec<f64> = runs.iter().map(|r| r[0].p_consistent(t)).collect();
            assert!(p.windows(2).all(|w| w[0] <= w[1]), "t = {t}: {p:?}");
        }
        let slow = &runs[0][0];
        let t = slow.time_to(0.999).expect("p <= 1");
        assert!(slow.p_consistent(t) >= 0.999 && t > 10.0, "{t}");
    }

    #[test]
    fn an_invalid_rate_is_refused() {
        assert!(exponential(0.0, 1.0).validate().is_err());
    }
}
