//! The shape of a tree (fan-out and depth) and the settings of a sync session.
//!
//! Two replicas compare trees only if their shapes are equal: the shape fixes which keys fall in
//! which segment, so trees line up without negotiation.

use core::time::Duration;

use crate::error::ConfigError;
use crate::hash::Hash;

/// Index of a leaf of the tree: a segment of the key-hash space, `0..config.segments()`.
pub type SegmentId = u32;

/// Largest number of segments a tree may have (2^20, Riak's default segment count).
pub const MAX_SEGMENTS: u64 = 1 << 20;

/// The shape of a tree: `fanout` children per inner node and `depth` levels below the root.
///
/// The tree has `fanout^depth` segments (leaves). A key belongs to the segment given by the top
/// `log2(fanout) * depth` bits of `SHA-256(tag || key)` ([`TreeConfig::segment_of`]); the tree's
/// own hash spreads keys evenly over segments whatever range of the ring the partition covers.
///
/// Memory: one 32-byte hash per node, `32 * (fanout^(depth+1) - 1) / (fanout - 1)` bytes
/// (2.8 MB for the default).
///
/// The default, fan-out 4 and depth 8 (65,536 segments), is sized for partitions of up to about a
/// million keys (about 16 keys per segment). Cassandra's trees are binary with 2^15 leaves; Riak
/// uses 2^20 segments. A lower fan-out moves fewer hashes per difference and costs more round trips;
/// fan-out 4 is the one that moves fewest bytes at 100 differences in a million keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "Shape"))]
pub struct TreeConfig {
    fanout: u32,
    depth: u8,
}

/// A shape as read, before [`TreeConfig::new`] checks it (serde reads through it).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct Shape {
    fanout: u32,
    depth: u8,
}

#[cfg(feature = "serde")]
impl TryFrom<Shape> for TreeConfig {
    type Error = ConfigError;

    fn try_from(shape: Shape) -> Result<Self, ConfigError> {
        TreeConfig::new(shape.fanout, shape.depth)
    }
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            fanout: 4,
            depth: 8,
        }
    }
}

impl TreeConfig {
    /// A shape with `fanout` children per node (a power of two from 2 to 256) and `depth` levels
    /// below the root; at most [`MAX_SEGMENTS`] segments. Depth 0 means the root is the only segment.
    pub fn new(fanout: u32, depth: u8) -> Result<Self, ConfigError> {
        if !(2..=256).contains(&fanout) || !fanout.is_power_of_two() {
            return Err(ConfigError::BadFanout { fanout });
        }
        let bits = u64::from(fanout.trailing_zeros()) * u64::from(depth);
        if bits > u64::from(MAX_SEGMENTS.trailing_zeros()) {
            return Err(ConfigError::TooManySegments {
                fanout,
                depth,
                max: MAX_SEGMENTS,
            });
        }
        Ok(TreeConfig { fanout, depth })
    }

    /// Children per inner node.
    pub fn fanout(&self) -> u32 {
        self.fanout
    }

    /// Levels below the root; segments are at level `depth`.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Number of segments, `fanout^depth`.
    pub fn segments(&self) -> u32 {
        1u32 << self.segment_bits()
    }

    /// Number of nodes at `level` (`fanout^level`), for `level <= depth`.
    pub fn nodes_at(&self, level: u8) -> u32 {
        1u32 << (self.fanout_bits() * u32::from(level.min(self.depth)))
    }

    /// The segment a key belongs to. The owner of a tree uses it to index or filter its keys by
    /// segment, so it can answer [`crate::Event::SegmentNeeded`].
    pub fn segment_of(&self, key: &[u8]) -> SegmentId {
        self.segment_of_hash(&Hash::of_key(key))
    }

    pub(crate) fn segment_of_hash(&self, key_hash: &Hash) -> SegmentId {
        let bits = self.segment_bits();
        if bits == 0 {
            return 0;
        }
        // bits <= 20, so the shifted value fits in u32.
        (key_hash.prefix_u64() >> (64 - bits)) as SegmentId
    }

    pub(crate) fn fanout_bits(&self) -> u32 {
        self.fanout.trailing_zeros()
    }

    fn segment_bits(&self) -> u32 {
        self.fanout_bits() * u32::from(self.depth)
    }
}

/// Settings of a [`crate::SyncSession`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct SyncConfig {
    /// How long to wait for the peer's next message before the session fails with
    /// [`crate::SyncError::TimedOut`]. Default 30 s (anti-entropy is background work; the request
    /// timeout of 1 s is for client requests).
    pub timeout: Duration,
    /// About how many bytes of entries ([`crate::Message::Entries`]) and of differing keys
    /// ([`crate::Message::Differences`]) one session sends, by [`crate::Message::encoded_len`]'s
    /// estimate. When the differing segments hold more, the session sends whole segments up to
    /// this much (at least one), starting at a segment drawn from the session id, and
    /// [`crate::Event::Finished`] names the differences in those segments alone: the sessions
    /// that follow find the rest. Default 4 MiB, so that a message stays well inside a transport
    /// frame however many keys a range holds.
    pub max_entries_bytes: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            timeout: Duration::from_secs(30),
            max_entries_bytes: 4 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes() {
        assert!(matches!(
            TreeConfig::new(3, 2),
            Err(ConfigError::BadFanout { fanout: 3 })
        ));
        assert!(TreeConfig::new(1, 2).is_err());
        assert!(TreeConfig::new(512, 1).is_err());
        assert!(matches!(
            TreeConfig::new(4, 11),
            Err(ConfigError::TooManySegments { .. })
        ));
        assert!(TreeConfig::new(4, 10).is_ok());
        assert!(TreeConfig::new(2, 0).is_ok());
    }

    #[test]
    fn segments_cover_the_space() {
        let config = TreeConfig::new(16, 2).unwrap_or_default();
        assert_eq!(config.segments(), 256);
        let mut seen = [false; 256];
        for i in 0..10_000u32 {
            let s = config.segment_of(&i.to_be_bytes());
            assert!(s < 256);
            if let Some(slot) = seen.get_mut(s as usize) {
                *slot = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
        let flat = TreeConfig::new(16, 0).unwrap_or_default();
        assert_eq!(flat.segment_of(b"x"), 0);
        assert_eq!(flat.segments(), 1);
    }
}
