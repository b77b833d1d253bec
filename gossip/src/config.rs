//! The machine's configuration, with defaults taken from Dynamo, Cassandra and Riak.

use core::time::Duration;

use crate::error::ConfigError;

/// Whole milliseconds of a span (the unit of the machine's clock), saturating.
pub(crate) fn ms(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

/// The longest gossip interval a machine takes (a day): longer ones overflowed the arithmetic of
/// rounds and of the failure detector.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The distribution of heartbeat inter-arrival times that phi is computed from (see the
/// [`Config`] table for the measurements behind the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PhiModel {
    /// Normal, with the window's mean and standard deviation, as in the original detector
    /// (Hayashibara et al. 2004) and Akka: a peer is suspected after about
    /// `mean + acceptable pause + 5.2 × max(std dev, min std dev)` of silence at phi 8.
    #[default]
    Normal,
    /// Exponential, with the window's mean only, as in Cassandra: suspected after about
    /// `18.4 × mean` of silence at phi 8.
    Exponential,
}

/// Settings of one [`Gossip`](crate::Gossip) machine.
///
/// Every span is a [`Duration`], counted in whole milliseconds of the driver's clock (see the
/// crate docs on time); a zero span means "derive it from the interval" where the table says so.
/// [`Config::default`] gives the values in the table below; change them only with a reason.
///
/// | field | default | source |
/// |---|---|---|
/// | `gossip_interval` | 500 ms | half of Dynamo's, Cassandra's and Riak's 1 s: see below |
/// | `phi_threshold` | 8.0 | Cassandra, Akka |
/// | `phi_model` | `Normal` | Hayashibara et al. 2004, Akka (Cassandra's `Exponential` is the other choice) |
/// | `min_std_dev` | 0 (= interval / 4) | Akka: 100 ms at 1 s heartbeats |
/// | `acceptable_pause` | 0 (= the larger of 3 s and 6 × interval) | Akka's 3 s (stalls of a node or a link); 6 rounds: measured, see below |
/// | `window_size` | 100 | bounded arrival window (Cassandra keeps 1000; 100 is plenty at 1 s) |
/// | `max_sample_interval` | 0 (= 10 × interval) | Cassandra ignores long gaps in the same way |
/// | `remove_after` | 1 hour | — |
/// | `left_grace` | 30 s | Cassandra's ring delay |
/// | `tombstone_ttl` | 1 hour | — |
/// | `max_message_bytes` | 256 KiB | — |
/// | `max_members` | 4096 | — (Dynamo's clusters: hundreds of nodes) |
///
/// The interval and the detector settings were chosen together, by measurement in the crate's
/// simulator, for a crashed node to be marked down by every live node within 15 s, with no live
/// node marked down in an hour at 100 nodes with 5% loss and 1-250 ms delay. At 1 s no detector
/// does both: the last heartbeat of a crashed node takes up to 5 s to reach every node, and an
/// hour holds silences of 10 s between heartbeats of live ones. At 500 ms both halve; the normal
/// model, whose 3 s pause keeps phi 8 beyond 1.25 times every silence measured, then marks a
/// crash down within 9 to 11 s (50 to 100 nodes), where the exponential one takes 19 to 23 s.
/// The price is twice the gossip traffic per second. Numbers and alternatives: the crate README.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Config {
    /// Name of the cluster; a message that names another cluster is ignored and counted.
    pub cluster_name: String,
    /// Time between two gossip rounds, and between two heartbeats of this node.
    pub gossip_interval: Duration,
    /// Suspicion level above which a peer is marked down.
    pub phi_threshold: f64,
    /// The distribution the failure detector fits to heartbeat inter-arrival times.
    pub phi_model: PhiModel,
    /// Normal model: floor of the inter-arrival standard deviation, so that a peer whose
    /// heartbeats happened to arrive like clockwork is not suspected at the first hiccup.
    /// Zero means a quarter of the interval.
    pub min_std_dev: Duration,
    /// Normal model: silence added to the mean inter-arrival time before suspicion starts to
    /// grow: a pause of the peer or of the gossip paths to it that is not a failure. Zero means the
    /// larger of 3 s (a stall of a process or a link does not shrink with the interval) and
    /// 6 × the interval (gossip's own silences are counted in rounds).
    pub acceptable_pause: Duration,
    /// Number of heartbeat inter-arrival samples kept per peer.
    pub window_size: usize,
    /// Inter-arrival gaps longer than this are not recorded (a node coming back from a long
    /// silence must not teach the detector that silence is normal). Zero means 10 × the interval.
    pub max_sample_interval: Duration,
    /// A peer down for this long is removed from the view.
    pub remove_after: Duration,
    /// A peer that announced it left is removed this long after the news arrived, so that the
    /// news has time to spread.
    pub left_grace: Duration,
    /// How long a removed peer's last known version is remembered, so that stale gossip about it
    /// cannot bring it back; counted from the latest moment another member may remove it (a
    /// tombstone lives [`remove_after`](Self::remove_after), or
    /// [`left_grace`](Self::left_grace) for a node that left, plus this). The tombstone of a
    /// node that left keeps its last state, which goes to a peer still naming an older one (a
    /// peer cut off while the node left hears of the departure, rather than keep the node).
    pub tombstone_ttl: Duration,
    /// Upper bound on the estimated encoded size of one message (see [`Message::size_estimate`](crate::Message::size_estimate)).
    pub max_message_bytes: usize,
    /// Most other nodes the view holds, and most removed nodes it remembers. News of a new node
    /// beyond it is ignored and counted ([`Stats::ignored_view_full`](crate::Stats)), and the
    /// tombstone that expires first makes room for a new one: a peer's gossip, faulty or
    /// hostile, cannot make the view, and every message built from it, grow without end. Set it
    /// above the largest cluster you run: a full view learns no new node (until a member is
    /// removed, after [`remove_after`](Self::remove_after)).
    pub max_members: usize,
    /// Estimated encoded size of one node id, used for the message size bound.
    pub id_size_estimate: usize,
    /// Estimated encoded size of one address, used for the message size bound.
    pub address_size_estimate: usize,
    /// Seed of this machine's random choices; mixed with the node id and generation, so nodes
    /// sharing a configuration still choose differently, and a run is replayable.
    pub rng_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_name: "dynamo".to_owned(),
            gossip_interval: Duration::from_millis(500),
            phi_threshold: 8.0,
            phi_model: PhiModel::Normal,
            min_std_dev: Duration::ZERO,
            acceptable_pause: Duration::ZERO,
            window_size: 100,
            max_sample_interval: Duration::ZERO,
            remove_after: Duration::from_secs(3600),
            left_grace: Duration::from_secs(30),
            tombstone_ttl: Duration::from_secs(3600),
            max_message_bytes: 256 * 1024,
            max_members: 4096,
            id_size_estimate: 16,
            address_size_estimate: 24,
            rng_seed: 0,
        }
    }
}

impl Config {
    /// Checks that the values can drive a machine.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if ms(self.gossip_interval) == 0 {
            return Err(ConfigError::ZeroInterval);
        }
        if self.gossip_interval > MAX_INTERVAL {
            return Err(ConfigError::IntervalTooLong {
                ms: ms(self.gossip_interval),
            });
        }
        if !(self.phi_threshold.is_finite() && self.phi_threshold > 0.0) {
            return Err(ConfigError::BadPhiThreshold(self.phi_threshold));
        }
        if self.window_size == 0 {
            return Err(ConfigError::EmptyWindow);
        }
        let floor = 1024;
        if self.max_message_bytes < floor {
            return Err(ConfigError::MessageBoundTooSmall {
                bound: self.max_message_bytes,
                minimum: floor,
            });
        }
        if self.max_members == 0 {
            return Err(ConfigError::NoRoomForMembers);
        }
        Ok(())
    }

    /// The floor of the standard deviation in the normal model.
    pub fn effective_min_std_dev(&self) -> Duration {
        if self.min_std_dev.is_zero() {
            Duration::from_millis(ms(self.gossip_interval) / 4)
        } else {
            self.min_std_dev
        }
    }

    /// The acceptable pause in the normal model.
    pub fn effective_acceptable_pause(&self) -> Duration {
        if self.acceptable_pause.is_zero() {
            Duration::from_millis(ms(self.gossip_interval).saturating_mul(6).max(3_000))
        } else {
            self.acceptable_pause
        }
    }

    /// The longest inter-arrival gap that the failure detector records.
    pub fn effective_max_sample_interval(&self) -> Duration {
        if self.max_sample_interval.is_zero() {
            Duration::from_millis(ms(self.gossip_interval).saturating_mul(10))
        } else {
            self.max_sample_interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_settings_follow_the_interval_unless_set() {
        let at = |interval| Config {
            gossip_interval: Duration::from_millis(interval),
            ..Config::default()
        };
        let ms = Duration::from_millis;
        let default = Config::default();
        assert_eq!(default.effective_acceptable_pause(), ms(3_000));
        assert_eq!(default.effective_min_std_dev(), ms(125));
        assert_eq!(default.effective_max_sample_interval(), ms(5_000));
        assert_eq!(at(1_000).effective_acceptable_pause(), ms(6_000));
        assert_eq!(at(100).effective_acceptable_pause(), ms(3_000));
        assert_eq!(at(100).effective_min_std_dev(), ms(25));
        let set = Config {
            acceptable_pause: ms(700),
            min_std_dev: ms(90),
            ..Config::default()
        };
        assert_eq!(set.effective_acceptable_pause(), ms(700));
        assert_eq!(set.effective_min_std_dev(), ms(90));
    }
}
