//! The wire messages of the three-way scuttlebutt exchange, and their checks.
//!
//! A round is `Syn` (the initiator's digests), `Ack` (the deltas the initiator lacks, and digests
//! of what the responder lacks), `Ack2` (the deltas the responder asked for). A node that leaves
//! also pushes an unsolicited `Ack2` so that the news spreads before it stops.

use crate::state::{Status, Versioned};

/// "I know this node's state of `generation` up to `version`."
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Digest<Id> {
    /// The node the digest is about.
    pub id: Id,
    /// The generation known.
    pub generation: u64,
    /// Everything up to this version is known (0: nothing).
    pub version: u64,
}

/// The part of a node's state with versions in `(from_version, to_version]`, plus its header
/// (heartbeat, status, address), which always travels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Delta<Id, A> {
    /// The node the delta is about.
    pub id: Id,
    /// The generation of the state.
    pub generation: u64,
    /// The delta holds every application entry newer than this version (0: the whole state).
    pub from_version: u64,
    /// ... up to this version; the receiver then knows the state up to it.
    pub to_version: u64,
    /// The heartbeat counter.
    pub heartbeat: Versioned<u64>,
    /// The announced status.
    pub status: Versioned<Status>,
    /// The address.
    pub address: Versioned<A>,
    /// Application entries in ascending version order.
    pub app: Vec<(String, Versioned<Vec<u8>>)>,
}

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Message<Id, A> {
    /// The sender's cluster; messages of other clusters are ignored.
    pub cluster: String,
    /// The sender's address, so that a first contact can be answered.
    pub sender_address: A,
    /// What the message says.
    pub body: Body<Id, A>,
}

/// The three steps of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Body<Id, A> {
    /// Opens an exchange with what the initiator knows.
    Syn {
        /// One digest per node the initiator knows (itself included).
        digests: Vec<Digest<Id>>,
        /// False when the digest list was cut to fit the size bound: the responder then does not
        /// take a missing digest for an unknown node.
        complete: bool,
    },
    /// Answers a `Syn`.
    Ack {
        /// What the responder lacks: the initiator answers with deltas from these versions.
        requests: Vec<Digest<Id>>,
        /// What the initiator lacks.
        deltas: Vec<Delta<Id, A>>,
    },
    /// Closes an exchange (or pushes news unsolicited).
    Ack2 {
        /// What the responder asked for.
        deltas: Vec<Delta<Id, A>>,
    },
}

/// Why a message was judged malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    VersionRange,
    EntryOutOfRange,
    EntriesUnordered,
    HeaderVersion,
}

impl Malformed {
    /// The broken invariant, for [`MessageError::Malformed`](crate::MessageError::Malformed).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Malformed::VersionRange => "version range ends before it starts",
            Malformed::EntryOutOfRange => "entry version outside the delta's range",
            Malformed::EntriesUnordered => "entries not in increasing version order",
            Malformed::HeaderVersion => "full delta with an unversioned header field",
        }
    }
}

impl<Id, A> Delta<Id, A> {
    /// Checks the invariants that an honest sender always keeps.
    pub(crate) fn check(&self) -> Result<(), Malformed> {
        if self.from_version > self.to_version {
            return Err(Malformed::VersionRange);
        }
        if self.from_version == 0
            && (self.heartbeat.version == 0
                || self.status.version == 0
                || self.address.version == 0)
        {
            return Err(Malformed::HeaderVersion);
        }
        let mut last = self.from_version;
        for (_, entry) in &self.app {
            if entry.version <= self.from_version || entry.version > self.to_version {
                return Err(Malformed::EntryOutOfRange);
            }
            if entry.version <= last {
                return Err(Malformed::EntriesUnordered);
            }
            last = entry.version;
        }
        Ok(())
    }

    /// Estimated encoded size.
    pub fn size_estimate(&self, id_size: usize, address_size: usize) -> usize {
        let app: usize = self.app.iter().map(|(k, v)| entry_size(k, &v.value)).sum();
        id_size + address_size + 8 * 7 + 1 + 2 + app
    }
}

impl<Id, A> Message<Id, A> {
    /// Estimated encoded size in bytes, counting integers as 8 bytes, strings and byte vectors
    /// as their length plus 2 to 4 bytes, and ids and addresses as the given sizes (the
    /// `*_size_estimate` fields of [`Config`](crate::Config)). Close to, and usually above, a
    /// MessagePack encoding, whose integers are variable length.
    pub fn size_estimate(&self, id_size: usize, address_size: usize) -> usize {
        let header = self.cluster.len() + 2 + address_size + 1;
        let digest = id_size + 16;
        let deltas = |d: &[Delta<Id, A>]| -> usize {
            d.iter()
                .map(|d| d.size_estimate(id_size, address_size))
                .sum::<usize>()
                + 4
        };
        header
            + match &self.body {
                Body::Syn { digests, .. } => 4 + 1 + digests.len() * digest,
                Body::Ack {
                    requests,
                    deltas: d,
                } => 4 + requests.len() * digest + deltas(d),
                Body::Ack2 { deltas: d } => deltas(d),
            }
    }

    pub(crate) fn check(&self) -> Result<(), Malformed> {
        let deltas: &[Delta<Id, A>] = match &self.body {
            Body::Syn { .. } => &[],
            Body::Ack { deltas, .. } | Body::Ack2 { deltas } => deltas,
        };
        deltas.iter().try_for_each(Delta::check)
    }
}

/// Estimated encoded size of one application entry (key, value, version).
pub(crate) fn entry_size(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + 4 + 8
}
