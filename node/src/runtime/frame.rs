//! The wire format: length-prefixed frames (a 4-byte big-endian length, then the body) whose body
//! is one message encoded with rmp-serde, each enum externally tagged by its variant's name.
//!
//! A connection goes through two phases, and each phase has its own decoder that knows only the
//! frames that may arrive in it, so a frame of another kind is refused by its tag before its
//! content is read:
//!
//! * before and during the handshake: [`Handshake`] frames only, at most [`HANDSHAKE_MAX_FRAME`]
//!   bytes each (an unauthenticated side can make a node buffer a few KiB, no more);
//! * after it: a client sends [`ClientFrame`]s and reads [`NodeFrame`]s; a node's link to a peer
//!   sends [`PeerFrame`]s. Their limit is the node's `max_frame` (peers) or `max_client_frame`.
//!
//! [`Conn`] reads and writes frames on a byte stream. It enforces the frame limit from the length
//! prefix (nothing of an oversized frame is buffered), and, when given [`Timeouts`], closes a
//! connection on which nothing happened for the idle timeout, or on which a frame that has
//! started does not complete within the read timeout (a slow writer), or whose writes stall.
//! Error texts that could carry the other side's bytes are cut to [`excerpt`] size before they
//! are logged or sent back.
//!
//! After an encrypting handshake ([`super::handshake`]), the same frames travel inside Noise
//! transport messages: the byte stream of frames is cut into records of at most 65,519 bytes of
//! plaintext, each sent as a 2-byte big-endian length and its ciphertext (ChaCha20-Poly1305, with
//! the 16-byte tag). A record that fails to decrypt closes the connection.
//!
//! # Versions
//!
//! Frames carry no version byte of their own: a connection's version is agreed once, by the
//! [`PROTOCOL_VERSION`] in the handshake's hello and challenge, and every frame after it is of
//! that version. What no version may change is the length prefix and where a hello or challenge
//! keeps its version (its first field), so that any two versions can tell each other apart
//! ([`super::handshake::decode_handshake`] refuses another version as such even when the rest
//! of its hello does not decode). The bytes of every frame and message are pinned by test
//! vectors (`src/vectors`): a change of them needs a new [`PROTOCOL_VERSION`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod conn;

pub use conn::{close_gently, handshake_conn, refuse, Conn, Timeouts, DRAIN_TIME};

use super::identity::Certificate;
use crate::core::{ChangeError, ChangePlan, ChangeRequest, NodeStatus, PartitionSize};
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::types::NodeId;

/// The protocol version this build speaks. A handshake naming another version is refused.
///
/// 7: a ring names the nodes taken out of it while down, which hand nothing over (gossip's
/// ring state; a node of version 6 cannot read one that names any). A node at its connection
/// cap refuses in the handshake. 6: a node's handshake names its gossip generation ([`Role::Peer`]), so that a node restarted
/// at another address replaces its older, maybe half-open, connection; a receiver acknowledges a
/// hand-over's end ([`PeerMessage::TransferDoneAck`]), which its sender says until it does; the
/// accepting side says the largest frame it takes (`Handshake::Challenge`). 5: a replica that lost its copy of a key says so ([`PeerMessage::ReadLost`]), for read repair
/// to refill it; a hint batch's acknowledgement names the hints not kept
/// ([`dynamo_handoff::HintAck::refused`]). 4: a replica read says whether the coordinator asks the node as one of the key's primaries
/// ([`PeerMessage::Read`]). 3: keys, values, contexts and objects are msgpack byte strings (`bin`), not arrays of
/// integers ([`crate::types::bytes`]). 2: handshake frames apart from the frames after it.
/// 8: contexts are sealed ([`crate::core::ContextSeal`]): a put forwarded between nodes of 7 and
/// 8 would carry a context the other cannot open.
pub const PROTOCOL_VERSION: u32 = 8;

/// Default largest frame between peers (16 MiB): room for large sync and transfer batches.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Default largest frame a client may send (4 MiB): a value of the default 1 MiB limit, its key and
/// context fit with room to spare. A node raises it to fit its configured value limit.
pub const DEFAULT_MAX_CLIENT_FRAME: usize = 4 << 20;

/// Largest frame before the handshake has completed (4 KiB): a hello, a challenge, a proof.
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// Longest error text sent back to the other side or written to the log.
pub const MAX_REASON: usize = 256;

/// Who opens a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Another node of the cluster, which will send [`PeerFrame`]s.
    Peer {
        /// Its node id.
        id: NodeId,
        /// The address it listens on.
        address: String,
        /// Its gossip generation, which grows at every restart. A connection from a later
        /// generation replaces one from an earlier generation at another address (the node
        /// restarted elsewhere; its old connection may be half-open); one from the same or an
        /// earlier generation at another address is refused. Of two nodes started with one id,
        /// the later started one is taken, as gossip takes it.
        generation: u64,
    },
    /// A client, which will send requests.
    Client,
}

/// Requests a client may make besides get/put/delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// The node's [`NodeStatus`].
    Status,
    /// The node's view of the ring: ranges and their replicas.
    Ring,
    /// Ask the node to leave the cluster (it hands its ranges over, then stops serving them).
    Leave,
    /// What a membership change would do (changes nothing).
    Plan(ChangeRequest),
    /// Apply a membership change planned at ring version `version` (the claimant only).
    Commit {
        /// The ring version the plan was made from.
        version: u64,
        /// The change.
        change: ChangeRequest,
    },
    /// Keys and bytes the node holds per range (reads every key: for plans).
    PartitionSizes,
}

/// One key range of the ring and the nodes that replicate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeInfo {
    /// Index of the range.
    pub index: usize,
    /// Exclusive start position (hex).
    pub start: String,
    /// Inclusive end position (hex).
    pub end: String,
    /// Share of the key space.
    pub fraction: f64,
    /// The range's N primary replicas, in preference-list order.
    pub replicas: Vec<NodeId>,
}

/// Answers to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminReply {
    /// The node's status.
    Status(Box<NodeStatus>),
    /// The ring as the node sees it.
    Ring(Vec<RangeInfo>),
    /// The node has started leaving.
    Leaving,
    /// A plan, or the plan a commit applied.
    Plan(Box<ChangePlan>),
    /// The change was refused.
    ChangeRefused(ChangeError),
    /// Keys and bytes per range.
    PartitionSizes(Vec<PartitionSize>),
    /// The node could not answer (a storage error), with why.
    Failed(String),
}

/// The frames of the handshake (see [`super::handshake`]): the only ones a node decodes before a
/// connection is authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Handshake {
    /// First frame of the connecting side.
    Hello {
        /// [`PROTOCOL_VERSION`] of the connecting side.
        version: u32,
        /// The cluster it wants to talk to.
        cluster: String,
        /// Peer or client.
        role: Role,
        /// Whether it wants the connection encrypted after the handshake.
        encrypt: bool,
        /// Random challenge for the accepting side.
        nonce: [u8; 32],
        /// A node's certificate (per-node credentials, see [`super::identity`]).
        #[serde(default)]
        identity: Option<Certificate>,
    },
    /// The accepting side's answer to a hello: its identity and its own challenge.
    Challenge {
        /// [`PROTOCOL_VERSION`] of the accepting side.
        version: u32,
        /// Its node id.
        node: NodeId,
        /// Random challenge for the connecting side.
        nonce: [u8; 32],
        /// Its certificate, to a peer (per-node credentials).
        #[serde(default)]
        identity: Option<Certificate>,
        /// The largest frame it takes from the connecting side once the connection is
        /// established (by its role): the connecting side sends none larger (0: not said).
        #[serde(default)]
        max_frame: u64,
    },
    /// The connecting side proves it holds its role's secret.
    Proof {
        /// HMAC-SHA256 over the handshake transcript.
        mac: [u8; 32],
        /// The first message of the key exchange (empty without encryption).
        #[serde(with = "serde_bytes_compat")]
        key_exchange: Vec<u8>,
    },
    /// The accepting side accepts, and proves it holds the secret too.
    Welcome {
        /// HMAC-SHA256 over the handshake transcript.
        mac: [u8; 32],
        /// The second message of the key exchange (empty without encryption).
        #[serde(with = "serde_bytes_compat")]
        key_exchange: Vec<u8>,
    },
    /// Why the sender closes the connection.
    Error {
        /// A human-readable reason.
        reason: String,
    },
}

/// What a client sends after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientFrame {
    /// A client's data request.
    Request {
        /// Client-chosen id, echoed in the reply.
        id: u64,
        /// The request.
        request: ClientRequest,
    },
    /// A client's admin request.
    Admin {
        /// Client-chosen id, echoed in the reply.
        id: u64,
        /// The request.
        request: AdminRequest,
    },
    /// Why the client closes the connection.
    Error {
        /// A human-readable reason.
        reason: String,
    },
}

/// What a node sends a client after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeFrame {
    /// The answer to a [`ClientFrame::Request`].
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// The answer to a [`ClientFrame::Admin`].
    AdminReply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: AdminReply,
    },
    /// Why the node closes the connection.
    Error {
        /// A human-readable reason.
        reason: String,
    },
}

/// What travels on a link between two nodes after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerFrame {
    /// A message between nodes.
    Peer(PeerMessage),
    /// Why the sender closes the connection.
    Error {
        /// A human-readable reason.
        reason: String,
    },
}

/// Byte strings as msgpack `bin`, not as arrays of integers.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The frame's body is not a message that may arrive here.
    #[error("malformed or unexpected message: {}", excerpt(&.0.to_string()))]
    Decode(rmp_serde::decode::Error),
    /// The frame could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(rmp_serde::encode::Error),
    /// The other side closed the connection.
    #[error("connection closed")]
    Closed,
    /// A frame is longer than the limit of the connection's phase.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes{}", if *.handshake { " before the handshake" } else { "" })]
    TooLarge {
        /// The frame's length.
        size: usize,
        /// The limit.
        limit: usize,
        /// Whether the connection was still in its handshake.
        handshake: bool,
    },
    /// Nothing arrived for the idle timeout (see [`is_unread_close`]).
    #[error("idle for {0:?}{closed}", closed = IDLE_CLOSED)]
    Idle(Duration),
    /// A frame started but did not complete within the read timeout.
    #[error("a frame did not complete within {0:?}")]
    ReadTimeout(Duration),
    /// A write did not complete within the read timeout (the other side does not read).
    #[error("a write did not complete within {0:?}")]
    WriteTimeout(Duration),
    /// A record could not be decrypted (or encrypted): tampered, replayed or garbage bytes.
    #[error("encryption error: {0}")]
    Crypto(String),
}

from_cause!(FrameError, FrameError::Io, std::io::Error);
from_cause!(FrameError, FrameError::Decode, rmp_serde::decode::Error);
from_cause!(FrameError, FrameError::Encode, rmp_serde::encode::Error);

/// How the reason of the error frame a node closes an idle connection with ends
/// ([`FrameError::Idle`]).
const IDLE_CLOSED: &str = ": connection closed for idleness";

/// The reason of the error frame a stopping node closes a client connection with, once it has
/// written every reply it owes.
pub const STOPPED_READING: &str = "node stopping: nothing after its last reply was read";

/// The reason of the error frame a node closes a client connection with when its slot went to a
/// client of another address (the client connection cap, shared fairly by address), once it has
/// written every reply it owes.
pub const SLOT_GIVEN_UP: &str =
    "connection cap: slot given to a client of another address; nothing after its last reply was read";

/// Whether the reason of an error frame says that the node read nothing of the connection
/// after its last reply: it closed the connection for idleness (a server does not call a
/// connection idle while it works on one of its requests), or it stops, or gave the
/// connection's slot to another client, and has answered every request it read
/// ([`STOPPED_READING`], [`SLOT_GIVEN_UP`]). A request sent and unanswered was then not applied.
#[must_use]
pub fn is_unread_close(reason: &str) -> bool {
    (reason.starts_with("idle for ") && reason.ends_with(IDLE_CLOSED))
        || reason == STOPPED_READING
        || reason == SLOT_GIVEN_UP
}

/// Cuts `text` to at most [`MAX_REASON`] bytes (at a character boundary), saying how long it was:
/// for every text that may hold bytes of the other side.
pub fn excerpt(text: &str) -> String {
    if text.len() <= MAX_REASON {
        return text.to_string();
    }
    let mut end = MAX_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// Encodes a frame's body.
pub fn encode<F: Serialize>(frame: &F) -> Result<Vec<u8>, FrameError> {
    Ok(rmp_serde::to_vec(frame)?)
}

/// Decodes a frame's body as an `F`: a frame of a kind that `F` does not know is refused by its
/// tag, before its content is read.
pub fn decode<F: DeserializeOwned>(body: &[u8]) -> Result<F, FrameError> {
    Ok(crate::types::decode_msgpack(body)?)
}

/// What every frame kind can say when a side gives up on a connection.
pub trait ErrorFrame: Serialize {
    /// The frame saying `reason`.
    fn error(reason: String) -> Self;
}

impl ErrorFrame for Handshake {
    fn error(reason: String) -> Self {
        Handshake::Error { reason }
    }
}
impl ErrorFrame for ClientFrame {
    fn error(reason: String) -> Self {
        ClientFrame::Error { reason }
    }
}
impl ErrorFrame for NodeFrame {
    fn error(reason: String) -> Self {
        NodeFrame::Error { reason }
    }
}
impl ErrorFrame for PeerFrame {
    fn error(reason: String) -> Self {
        PeerFrame::Error { reason }
    }
}
