//! The messages two [`crate::SyncSession`]s exchange, and a deterministic estimate of their size.
//!
//! Every message but [`Message::Hello`] and [`Message::Abort`] carries a step number: the sides
//! alternate, the initiator's hello is step 0, the reply step 1, and so on. Steps let a session
//! drop duplicates and reject messages from the future.

use crate::config::{SegmentId, TreeConfig};
use crate::hash::{Hash, HASH_LEN};

/// One `(key, version digest)` pair of the owner's store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Entry {
    /// The key.
    #[cfg_attr(feature = "serde", serde(with = "bytes"))]
    pub key: Vec<u8>,
    /// A digest of the key's versions (for example a hash of its sibling set).
    #[cfg_attr(feature = "serde", serde(with = "bytes"))]
    pub digest: Vec<u8>,
}

impl Entry {
    /// An entry from anything byte-like.
    pub fn new(key: impl Into<Vec<u8>>, digest: impl Into<Vec<u8>>) -> Self {
        Entry {
            key: key.into(),
            digest: digest.into(),
        }
    }
}

/// The hashes of all children of one node the receiver reported (implicitly) as differing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChildHashes {
    /// Index of the parent within its level.
    pub parent: u32,
    /// The sender's hashes of the parent's `fanout` children, in order.
    pub hashes: Vec<Hash>,
}

/// The sender's entries of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SegmentEntries {
    /// The segment.
    pub segment: SegmentId,
    /// Its entries, sorted by key.
    pub entries: Vec<Entry>,
}

impl SegmentEntries {
    /// Its share of [`Message::encoded_len`] in an `Entries` message.
    pub(crate) fn encoded_len(&self) -> usize {
        varint(u64::from(self.segment))
            + varint(self.entries.len() as u64)
            + self
                .entries
                .iter()
                .map(|e| byte_string(&e.key) + byte_string(&e.digest))
                .sum::<usize>()
    }
}

/// How a key differs between the two replicas, seen from one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DiffKind {
    /// The peer has the key, this side does not.
    MissingLocally,
    /// This side has the key, the peer does not.
    MissingRemotely,
    /// Both have the key with different digests.
    Different,
}

impl DiffKind {
    /// The same difference seen from the other side.
    pub fn flip(self) -> DiffKind {
        match self {
            DiffKind::MissingLocally => DiffKind::MissingRemotely,
            DiffKind::MissingRemotely => DiffKind::MissingLocally,
            DiffKind::Different => DiffKind::Different,
        }
    }
}

/// One key that differs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyDiff {
    /// The key.
    #[cfg_attr(feature = "serde", serde(with = "bytes"))]
    pub key: Vec<u8>,
    /// How it differs.
    pub kind: DiffKind,
}

impl KeyDiff {
    /// Its share of [`Message::encoded_len`] in a `Differences` message.
    pub(crate) fn encoded_len(&self) -> usize {
        byte_string(&self.key) + 1
    }
}

/// A message of the anti-entropy protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Message {
    /// Initiator to responder, step 0: the initiator's shape and root.
    Hello {
        /// Session id chosen by the initiator's owner.
        session: u64,
        /// The initiator's tree shape; must equal the responder's.
        shape: TreeConfig,
        /// The initiator's root hash.
        root: Hash,
    },
    /// The sender's hashes at `level` for the children of every node of `level - 1` that the
    /// sender found differing. The receiver compares them with its own and answers with the
    /// next level.
    Hashes {
        /// Session id.
        session: u64,
        /// Step number.
        step: u32,
        /// Level of the hashes (of the children), `1..=depth`.
        level: u8,
        /// One group per differing parent.
        groups: Vec<ChildHashes>,
    },
    /// The sender's entries of every segment it found differing.
    Entries {
        /// Session id.
        session: u64,
        /// Step number.
        step: u32,
        /// One list per differing segment.
        segments: Vec<SegmentEntries>,
    },
    /// The final result, from the sender's point of view; the receiver flips each kind.
    Differences {
        /// Session id.
        session: u64,
        /// Step number.
        step: u32,
        /// The keys that differ, sorted.
        keys: Vec<KeyDiff>,
    },
    /// The sender gave up (an error); the receiver fails too.
    Abort {
        /// Session id.
        session: u64,
        /// The sender's error, as text.
        reason: String,
    },
}

impl Message {
    /// The session id the message belongs to.
    pub fn session(&self) -> u64 {
        match self {
            Message::Hello { session, .. }
            | Message::Hashes { session, .. }
            | Message::Entries { session, .. }
            | Message::Differences { session, .. }
            | Message::Abort { session, .. } => *session,
        }
    }

    /// The step number (`Hello` is step 0, `Abort` has none).
    pub fn step(&self) -> Option<u32> {
        match self {
            Message::Hello { .. } => Some(0),
            Message::Hashes { step, .. }
            | Message::Entries { step, .. }
            | Message::Differences { step, .. } => Some(*step),
            Message::Abort { .. } => None,
        }
    }

    /// A short name of the message kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Hashes { .. } => "Hashes",
            Message::Entries { .. } => "Entries",
            Message::Differences { .. } => "Differences",
            Message::Abort { .. } => "Abort",
        }
    }

    /// Whether the message belongs to the tree-comparison part (hello and hashes).
    pub fn is_tree_part(&self) -> bool {
        matches!(self, Message::Hello { .. } | Message::Hashes { .. })
    }

    /// A deterministic estimate of the encoded size in bytes, close to a compact binary encoding
    /// such as MessagePack: one byte per enum tag, integers and length prefixes as LEB128 varints,
    /// byte strings (keys, digests, 32-byte hashes) as a length prefix plus their bytes.
    pub fn encoded_len(&self) -> usize {
        let hash = varint(HASH_LEN as u64) + HASH_LEN;
        1 + varint(self.session())
            + match self {
                Message::Hello { shape, .. } => varint(u64::from(shape.fanout())) + 1 + hash,
                Message::Hashes { step, groups, .. } => {
                    varint(u64::from(*step))
                        + 1
                        + varint(groups.len() as u64)
                        + groups
                            .iter()
                            .map(|g| {
                                varint(u64::from(g.parent))
                                    + varint(g.hashes.len() as u64)
                                    + g.hashes.len() * hash
                            })
                            .sum::<usize>()
                }
                Message::Entries { step, segments, .. } => {
                    varint(u64::from(*step))
                        + varint(segments.len() as u64)
                        + segments
                            .iter()
                            .map(SegmentEntries::encoded_len)
                            .sum::<usize>()
                }
                Message::Differences { step, keys, .. } => {
                    varint(u64::from(*step))
                        + varint(keys.len() as u64)
                        + keys.iter().map(KeyDiff::encoded_len).sum::<usize>()
                }
                Message::Abort { reason, .. } => byte_string(reason.as_bytes()),
            }
    }
}

/// Size of `n` as an LEB128 varint.
pub(crate) fn varint(n: u64) -> usize {
    let bits = 64 - n.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn byte_string(bytes: &[u8]) -> usize {
    varint(bytes.len() as u64) + bytes.len()
}

#[cfg(feature = "serde")]
mod bytes {
    //! `Vec<u8>` as a serde byte string rather than a sequence of integers.
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_sizes() {
        assert_eq!(varint(0), 1);
        assert_eq!(varint(127), 1);
        assert_eq!(varint(128), 2);
        assert_eq!(varint(u64::MAX), 10);
    }

    #[test]
    fn hashes_size_counts_every_hash() {
        let msg = Message::Hashes {
            session: 1,
            step: 1,
            level: 1,
            groups: vec![ChildHashes {
                parent: 0,
                hashes: vec![Hash::ZERO; 4],
            }],
        };
        // tag, session, step, level, group count, parent, hash count, 4 * (1 + 32)
        assert_eq!(msg.encoded_len(), 1 + 1 + 1 + 1 + 1 + 1 + 1 + 4 * 33);
    }
}
