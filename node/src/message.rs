//! What nodes say to each other and what clients say to nodes.
//!
//! Every message is a plain enum; the runtime encodes them with rmp-serde, the simulator passes
//! them by value.

use serde::{Deserialize, Serialize};

use crate::types::{Key, NodeId, Object, RequestId, Sibs, Value};

/// Longest content type (bytes) a put may carry: media types are short (RFC 6838 caps the type
/// and subtype at 127 characters each), and every sibling of a key carries its own.
pub const MAX_CONTENT_TYPE: usize = 256;

/// A client's per-request overrides of the node's defaults (the coordinator turns them, with the
/// node's configuration, into a `dynamo_quorum::RequestOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientOptions {
    /// Read quorum R.
    pub r: Option<usize>,
    /// Write quorum W.
    pub w: Option<usize>,
    /// Timeout in milliseconds, at most [`MAX_REQUEST_TIMEOUT`](crate::MAX_REQUEST_TIMEOUT) (or
    /// the node's request timeout when that is longer).
    pub timeout: Option<u64>,
    /// Force sloppy (`Some(false)`) or strict (`Some(true)`) quorums.
    pub strict: Option<bool>,
}

/// A client's request, accepted by any node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientRequest {
    /// Read every concurrent version of a key.
    Get {
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// Overrides.
        options: ClientOptions,
    },
    /// Write a value. `context` is the opaque context of an earlier get (empty: none).
    Put {
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// The new value.
        #[serde(with = "crate::types::bytes")]
        value: Value,
        /// Context bytes from a get; the write supersedes exactly what that get returned.
        #[serde(with = "crate::types::bytes")]
        context: Vec<u8>,
        /// Overrides.
        options: ClientOptions,
        /// The value's media type, stored with it and returned by gets (absent from requests of
        /// earlier versions: none).
        #[serde(default)]
        content_type: Option<String>,
    },
    /// Delete a key: a put of a tombstone.
    Delete {
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// Context bytes from a get.
        #[serde(with = "crate::types::bytes")]
        context: Vec<u8>,
        /// Overrides.
        options: ClientOptions,
    },
}

impl ClientRequest {
    /// The key the request is about.
    pub fn key(&self) -> &[u8] {
        match self {
            ClientRequest::Get { key, .. }
            | ClientRequest::Put { key, .. }
            | ClientRequest::Delete { key, .. } => key,
        }
    }

    /// About how many bytes the request holds: its key, value and context, plus 64 for the
    /// rest. What a node counts against its limits on requests taken in and not answered.
    pub fn weight(&self) -> usize {
        match self {
            ClientRequest::Put {
                key,
                value,
                context,
                ..
            } => Self::weight_of_put(key, value.len(), context),
            ClientRequest::Delete { key, context, .. } => 64 + key.len() + context.len(),
            ClientRequest::Get { key, .. } => 64 + key.len(),
        }
    }

    /// The [`weight`](Self::weight) of a put of a value of `len` bytes, known before the value
    /// is read.
    pub fn weight_of_put(key: &[u8], len: usize, context: &[u8]) -> usize {
        64 + key.len() + len + context.len()
    }

    /// The request's overrides.
    pub fn options(&self) -> &ClientOptions {
        match self {
            ClientRequest::Get { options, .. }
            | ClientRequest::Put { options, .. }
            | ClientRequest::Delete { options, .. } => options,
        }
    }

    /// The request's options, to change.
    pub fn options_mut(&mut self) -> &mut ClientOptions {
        match self {
            ClientRequest::Get { options, .. }
            | ClientRequest::Put { options, .. }
            | ClientRequest::Delete { options, .. } => options,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// So many replicas failed or were unreachable that R or W answers could not be had.
    #[error("quorum not reached: {acknowledged} of {required} replicas answered")]
    QuorumFailed {
        /// Replicas that answered.
        acknowledged: usize,
        /// Replicas required.
        required: usize,
    },
    /// The request's timeout passed with fewer than R or W answers (the replicas that did not
    /// answer may still apply a write).
    #[error("timed out: {acknowledged} of {required} replicas answered in time")]
    Timeout {
        /// Replicas that answered in time.
        acknowledged: usize,
        /// Replicas required.
        required: usize,
    },
    /// R, W or N do not fit together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The value is larger than the node accepts.
    #[error("value of {size} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// Size of the value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The context bytes could not be decoded.
    #[error("invalid context: {0}")]
    InvalidContext(String),
    /// The node's storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The node is overloaded or shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A key, context, or the versions a put would leave on a key, exceed a limit of the node.
    #[error("{what} of {size} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What is too large (`key bytes`, `context bytes`, `siblings`, `sibling bytes`).
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl ClientError {
    /// Whether the node that answered with this error certainly wrote nothing: it turned the
    /// request down before applying it (`Unavailable`: joining, overloaded, the timeout passed
    /// before a coordinator took it; or an invalid request). A quorum failure, a timeout or a
    /// storage error may follow a write some replica applied.
    #[must_use]
    pub fn applied_nothing(&self) -> bool {
        matches!(
            self,
            ClientError::Unavailable(_)
                | ClientError::InvalidOptions(_)
                | ClientError::InvalidContext(_)
                | ClientError::ValueTooLarge { .. }
                | ClientError::LimitExceeded { .. }
        )
    }
}

/// The answer to a [`ClientRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientReply {
    /// The result of a get: every concurrent live value (empty if the key is absent or
    /// deleted), and the context to pass to the next put or delete.
    Got {
        /// Live sibling values.
        #[serde(with = "crate::types::bytes::list")]
        values: Vec<Value>,
        /// Opaque context.
        #[serde(with = "crate::types::bytes")]
        context: Vec<u8>,
        /// Replicas that answered with their versions (or none) before the reply, in order:
        /// not those that refused or failed.
        replicas: Vec<NodeId>,
        /// The media type of each value of `values` (same order), where its writer gave one.
        #[serde(default)]
        content_types: Vec<Option<String>>,
    },
    /// A put or delete reached W replicas.
    Stored {
        /// Context of the new version (a get would return it).
        #[serde(with = "crate::types::bytes")]
        context: Vec<u8>,
        /// Replicas that acknowledged before the reply, in order.
        replicas: Vec<NodeId>,
    },
    /// The request failed.
    Failed(ClientError),
}

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerMessage {
    /// Membership gossip.
    Gossip(dynamo_gossip::Message<NodeId, String>),
    /// A request forwarded to a node that may coordinate it (a put to one of the key's primaries).
    Forward {
        /// The forwarder's request id.
        req: RequestId,
        /// The request.
        request: ClientRequest,
    },
    /// The coordinator's reply to a forwarded request.
    ForwardReply {
        /// The forwarder's request id.
        req: RequestId,
        /// The reply.
        reply: ClientReply,
    },
    /// Store these versions of a key (a coordinated put, or read repair when `req` is `None`).
    Write {
        /// Coordinator request id; `None` for read repair (no acknowledgement).
        req: Option<RequestId>,
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// The versions to merge.
        siblings: Sibs,
        /// For a sloppy-quorum fallback: the primary it stands in for. The target itself for a
        /// write of a strict request a sloppy node coordinates: its acknowledgement counts only
        /// if the target is one of the key's primaries, whatever its own mode (a node of an
        /// older version stores it and counts it, as a sloppy node did any write). The target
        /// itself too for read repair of a primary (`req` is `None`): a copy of what the
        /// replicas answered, which ends a copy the target lost (older nodes merge it as any
        /// write).
        hint: Option<NodeId>,
    },
    /// Acknowledgement of a [`PeerMessage::Write`].
    WriteAck {
        /// Coordinator request id.
        req: RequestId,
        /// Whether the replica stored it.
        ok: bool,
    },
    /// Ask for a key's versions.
    Read {
        /// Coordinator request id.
        req: RequestId,
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// Whether the coordinator asks as one of the key's primaries in its ring (not as a
        /// sloppy quorum's fallback). A node that is not a primary of the key in its own ring
        /// then answers [`PeerMessage::ReadRefused`]: the two rings differ (it has not heard the
        /// coordinator's ring yet, or the coordinator has not heard its), and what it holds of
        /// the key says nothing about what a replica holds.
        primary: bool,
    },
    /// The versions a replica holds (`None`: not found).
    ReadReply {
        /// Coordinator request id.
        req: RequestId,
        /// The versions.
        siblings: Option<Sibs>,
    },
    /// Hinted handoff: a batch of hints for the receiver.
    Hints(dynamo_handoff::HintBatch<Vec<u8>>),
    /// Acknowledgement of a hint batch.
    HintsAck(dynamo_handoff::HintAck),
    /// Anti-entropy: a Merkle sync message for one partition.
    Sync {
        /// Partition.
        partition: u32,
        /// The session's message.
        msg: dynamo_merkle::Message,
    },
    /// Anti-entropy: versions of differing keys, and the keys whose versions the sender wants.
    Exchange {
        /// Partition.
        partition: u32,
        /// Versions the receiver should merge.
        #[serde(with = "crate::types::bytes::keyed")]
        entries: Vec<(Key, Sibs)>,
        /// Keys whose versions the sender wants back.
        #[serde(with = "crate::types::bytes::list")]
        want: Vec<Key>,
    },
    /// Every replica held exactly this tombstone: drop the versions its context covers, and the
    /// key if none is left.
    Reap {
        /// The key.
        #[serde(with = "crate::types::bytes")]
        key: Key,
        /// The context of the tombstone the coordinator saw on every replica.
        clock: crate::types::Clock,
    },
    /// Ownership transfer: a batch of a range's keys.
    Transfer(dynamo_handoff::TransferBatch<Key, Vec<u8>>),
    /// Acknowledgement of a transfer batch.
    TransferAck(dynamo_handoff::TransferAck<Key>),
    /// A read this node cannot answer yet: it is a new replica of the key's range and the range
    /// has not arrived. The coordinator counts it as a failure, not as not-found.
    ReadRefused {
        /// The coordinator's request id.
        req: RequestId,
    },
    /// A read this node cannot answer: it lost its copy of the key (a damaged record it set
    /// aside). The coordinator counts it as a failure, not as not-found, and read repair refills
    /// it.
    ReadLost {
        /// The coordinator's request id.
        req: RequestId,
    },
    /// The sender finished handing partition `partition` over to the receiver.
    TransferDone {
        /// Partition.
        partition: u32,
        /// The sender's ring version: a receiver that has not adopted it yet keeps the news
        /// until it does (else the range would await data that already arrived).
        #[serde(default)]
        version: u64,
    },
    /// The receiver took the sender's [`PeerMessage::TransferDone`] (and whatever it changed is
    /// durable): the sender stops saying it again.
    TransferDoneAck {
        /// Partition.
        partition: u32,
        /// The version the `TransferDone` named.
        version: u64,
    },
}

impl PeerMessage {
    /// About how many bytes the message holds: its keys, values, contexts and payloads (what can
    /// be large), plus 64 for the rest. What a link's queue counts against its byte bound.
    pub fn weight(&self) -> usize {
        const BASE: usize = 64;
        let sibs =
            |s: &Sibs| -> usize { s.live_values().map(Object::size).sum::<usize>() + s.len() * 32 };
        BASE + match self {
            PeerMessage::Forward { request, .. } => request.weight().saturating_sub(BASE),
            PeerMessage::ForwardReply { reply, .. } => match reply {
                ClientReply::Got {
                    values, context, ..
                } => values.iter().map(Vec::len).sum::<usize>() + context.len(),
                ClientReply::Stored { context, .. } => context.len(),
                _ => 0,
            },
            PeerMessage::Write { key, siblings, .. } => key.len() + sibs(siblings),
            PeerMessage::Read { key, .. } | PeerMessage::Reap { key, .. } => key.len(),
            PeerMessage::ReadReply { siblings, .. } => siblings.as_ref().map_or(0, sibs),
            PeerMessage::Hints(batch) => batch
                .entries
                .iter()
                .map(|e| e.key.len() + e.payload.len())
                .sum(),
            PeerMessage::Exchange { entries, want, .. } => {
                entries
                    .iter()
                    .map(|(k, s)| k.len() + sibs(s))
                    .sum::<usize>()
                    + want.iter().map(Vec::len).sum::<usize>()
            }
            PeerMessage::Transfer(batch) => batch
                .entries
                .iter()
                .map(|e| e.key.len() + e.payload.len())
                .sum(),
            PeerMessage::Gossip(_)
            | PeerMessage::WriteAck { .. }
            | PeerMessage::HintsAck(_)
            | PeerMessage::Sync { .. }
            | PeerMessage::TransferAck(_)
            | PeerMessage::ReadRefused { .. }
            | PeerMessage::ReadLost { .. }
            | PeerMessage::TransferDone { .. }
            | PeerMessage::TransferDoneAck { .. } => 0,
        }
    }
}
