//! The wire format: length-delimited frames (`tokio-util`'s codec: a 4-byte big-endian length,
//! then the body) whose body is one [`Frame`] encoded with rmp-serde.
//!
//! Every connection starts with the handshake frames ([`Frame::Hello`], [`Frame::Challenge`],
//! [`Frame::Proof`], [`Frame::Welcome`]); after it, a peer connection carries [`Frame::Peer`] and a
//! client connection carries requests and replies. [`Frame::Error`] is the last frame a side sends
//! before it closes a connection, saying why.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::core::NodeStatus;
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::types::NodeId;

/// The protocol version this build speaks. A handshake naming another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default largest frame accepted (16 MiB): room for a 1 MiB value and large sync batches.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Who opens a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Another node of the cluster, which will send [`Frame::Peer`] messages.
    Peer {
        /// Its node id.
        id: NodeId,
        /// The address it listens on.
        address: String,
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
}

/// Everything that travels on a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// First frame of the connecting side.
    Hello {
        /// [`PROTOCOL_VERSION`] of the connecting side.
        version: u32,
        /// The cluster it wants to talk to.
        cluster: String,
        /// Peer or client.
        role: Role,
        /// Random challenge for the accepting side.
        nonce: [u8; 32],
    },
    /// The accepting side's answer to a hello: its identity and its own challenge.
    Challenge {
        /// [`PROTOCOL_VERSION`] of the accepting side.
        version: u32,
        /// Its node id.
        node: NodeId,
        /// Random challenge for the connecting side.
        nonce: [u8; 32],
    },
    /// The connecting side proves it holds the cluster secret.
    Proof {
        /// HMAC-SHA256 over the handshake transcript.
        mac: [u8; 32],
    },
    /// The accepting side accepts, and proves it holds the secret too.
    Welcome {
        /// HMAC-SHA256 over the handshake transcript.
        mac: [u8; 32],
    },
    /// Why the sender closes the connection.
    Error {
        /// A human-readable reason.
        reason: String,
    },
    /// A message between nodes.
    Peer(PeerMessage),
    /// A client's data request.
    Request {
        /// Client-chosen id, echoed in the reply.
        id: u64,
        /// The request.
        request: ClientRequest,
    },
    /// The answer to a [`Frame::Request`].
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// A client's admin request.
    Admin {
        /// Client-chosen id, echoed in the reply.
        id: u64,
        /// The request.
        request: AdminRequest,
    },
    /// The answer to a [`Frame::Admin`].
    AdminReply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: AdminReply,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The connection failed, or a frame was longer than the limit.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame's body is not a known message.
    #[error("malformed or unknown message: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The frame could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The other side closed the connection.
    #[error("connection closed")]
    Closed,
    /// A frame announced more bytes than the limit.
    #[error("frame exceeds the maximum frame size")]
    TooLarge,
}

/// A framed connection.
pub type Conn<T> = Framed<T, LengthDelimitedCodec>;

/// Wraps a byte stream in the length-delimited codec with a frame limit.
pub fn framed<T: AsyncRead + AsyncWrite>(io: T, max_frame: usize) -> Conn<T> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    Framed::new(io, codec)
}

/// Encodes a frame's body.
pub fn encode(frame: &Frame) -> Result<Bytes, FrameError> {
    Ok(Bytes::from(rmp_serde::to_vec(frame)?))
}

/// Decodes a frame's body.
pub fn decode(body: &BytesMut) -> Result<Frame, FrameError> {
    Ok(rmp_serde::from_slice(body)?)
}

/// Reads the next frame.
pub async fn recv<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
) -> Result<Frame, FrameError> {
    match conn.next().await {
        Some(Ok(body)) => decode(&body),
        Some(Err(e)) => {
            let too_large = e
                .get_ref()
                .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>());
            Err(if too_large {
                FrameError::TooLarge
            } else {
                FrameError::Io(e)
            })
        }
        None => Err(FrameError::Closed),
    }
}

/// Writes one frame and flushes.
pub async fn send<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    frame: &Frame,
) -> Result<(), FrameError> {
    conn.send(encode(frame)?).await?;
    Ok(())
}

/// Sends [`Frame::Error`] with `reason` (best effort) and closes the connection.
///
/// After closing its side, it reads and discards what the other side still sends for a moment
/// (at most [`DRAIN_TIME`]): closing a socket with unread input resets the connection, and the
/// other side could lose the error frame.
pub async fn refuse<T: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<T>, reason: &str) {
    let _ = send(
        conn,
        &Frame::Error {
            reason: reason.to_string(),
        },
    )
    .await;
    let _ = SinkExt::<Bytes>::close(conn).await;
    let drain = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = conn.get_mut().read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// How long [`refuse`] waits for the other side to close.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);
