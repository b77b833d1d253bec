//! The PBS paper's production latency fits (Bailis et al., VLDB 2012, table 3): each delay is
//! Exp(rate) with probability `p_exp`, otherwise Pareto(`xm`, `alpha`), in milliseconds.
//!
//! - [`LNKD_SSD`]: LinkedIn's Voldemort on SSDs, one distribution for all four delays.
//! - [`LNKD_DISK`]: LinkedIn on spinning disks: slow, heavy-tailed writes (W), SSD-like A, R, S.
//! - [`YMMR`]: Yammer's Riak: heavy-tailed writes, and slower other delays.
//!
//! A cross-datacenter variant of any of them: [`Wars::with_remote`] (the paper's WAN used 75 ms).

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
