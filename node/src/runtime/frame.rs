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

use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::identity::Certificate;
use crate::core::{ChangeError, ChangePlan, ChangeRequest, NodeStatus, PartitionSize};
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::types::NodeId;

/// The protocol version this build speaks. A handshake naming another version is refused.
///
/// 3: keys, values, contexts and objects are msgpack byte strings (`bin`), not arrays of
/// integers ([`crate::types::bytes`]). 2: handshake frames apart from the frames after it.
pub const PROTOCOL_VERSION: u32 = 3;

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
    /// Nothing arrived for the idle timeout.
    #[error("idle for {0:?}: connection closed")]
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

/// Idle and read timeouts of an established connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time without a frame in either direction.
    pub idle: Duration,
    /// Longest time a frame may take to arrive once its first byte has, and a write to complete.
    pub read: Duration,
}

/// A framed connection over a byte stream.
pub struct Conn<T> {
    io: T,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    max_frame: usize,
    max_send: usize,
    handshake: bool,
    timeouts: Option<Timeouts>,
    /// Last frame received or flushed.
    last_activity: Instant,
    /// When the bytes of the frame now arriving started to arrive.
    partial_since: Option<Instant>,
    /// The Noise transport state of an encrypted connection.
    cipher: Option<Box<snow::TransportState>>,
    /// Decrypted bytes not yet taken as frames (encrypted connections only).
    plain: BytesMut,
    /// One record's worth of scratch space for the cipher, allocated once per connection
    /// (encrypted connections only).
    scratch: Vec<u8>,
    /// The sealed records of the last flush, kept for its allocation.
    sealed: Vec<u8>,
    /// The read deadline's timer, kept from one read to the next: moving a registered timer
    /// later is a lock-free update, where a fresh timer per read is a registration in tokio's
    /// time driver and a removal after it.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Most plaintext bytes in one record: a Noise message is at most 65,535 bytes with its tag.
const RECORD_PLAINTEXT: usize = 65535 - 16;

impl<T> std::fmt::Debug for Conn<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("max_frame", &self.max_frame)
            .field("handshake", &self.handshake)
            .field("buffered", &self.rbuf.len())
            .finish_non_exhaustive()
    }
}

/// Wraps a fresh byte stream for its handshake: frames of at most [`HANDSHAKE_MAX_FRAME`] bytes.
pub fn handshake_conn<T: AsyncRead + AsyncWrite + Unpin>(io: T) -> Conn<T> {
    Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        max_frame: HANDSHAKE_MAX_FRAME,
        max_send: HANDSHAKE_MAX_FRAME,
        handshake: true,
        timeouts: None,
        last_activity: Instant::now(),
        partial_since: None,
        cipher: None,
        plain: BytesMut::new(),
        scratch: Vec::new(),
        sealed: Vec::new(),
        timer: None,
    }
}

/// Largest chunk read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    /// Ends the handshake phase: from now on frames of up to `max_recv` bytes are accepted and
    /// frames of up to `max_send` bytes sent, and `timeouts` (if any) apply.
    pub fn established(&mut self, max_recv: usize, max_send: usize, timeouts: Option<Timeouts>) {
        self.max_frame = max_recv;
        self.max_send = max_send;
        self.handshake = false;
        self.timeouts = timeouts;
        self.last_activity = Instant::now();
    }

    /// Encrypts everything from now on with `transport` (the end of an encrypting handshake).
    pub fn encrypt_with(&mut self, transport: snow::TransportState) {
        self.cipher = Some(Box::new(transport));
    }

    /// Whether the connection is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Decrypts every complete record in the read buffer into `plain`.
    fn decrypt_records(&mut self) -> Result<(), FrameError> {
        let Some(cipher) = self.cipher.as_mut() else {
            return Ok(());
        };
        let out = &mut self.scratch;
        if out.len() < 65535 {
            out.resize(65535, 0);
        }
        while self.rbuf.len() >= 2 {
            let len = u16::from_be_bytes([self.rbuf[0], self.rbuf[1]]) as usize;
            if len < 16 {
                return Err(FrameError::Crypto(format!("a record of {len} bytes")));
            }
            if self.rbuf.len() < 2 + len {
                break;
            }
            let n = cipher
                .read_message(&self.rbuf[2..2 + len], out)
                .map_err(|e| FrameError::Crypto(format!("cannot decrypt a record: {e}")))?;
            self.plain.extend_from_slice(&out[..n]);
            self.rbuf.advance(2 + len);
        }
        Ok(())
    }

    /// The limit on frames received in the current phase.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The limit on frames sent in the current phase.
    pub fn max_send(&self) -> usize {
        self.max_send
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// A complete frame body at the front of the read buffer, if there is one.
    fn take_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let encrypted = self.cipher.is_some();
        if encrypted {
            self.decrypt_records()?;
        }
        let buf = if encrypted {
            &mut self.plain
        } else {
            &mut self.rbuf
        };
        if buf.len() < 4 {
            return Ok(None);
        }
        let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_frame,
                handshake: self.handshake,
            });
        }
        if buf.len() < 4 + size {
            // Room for the rest of this frame, never more than a chunk at once.
            let missing = 4 + size - buf.len();
            buf.reserve(missing.min(READ_CHUNK));
            if encrypted {
                self.rbuf.reserve(READ_CHUNK);
            }
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size)))
    }

    /// Whether part of a frame (or of a record) has arrived.
    fn partial(&self) -> bool {
        !self.rbuf.is_empty() || !self.plain.is_empty()
    }

    /// Reads the next frame's body. Cancel-safe: what was read stays buffered.
    pub async fn recv_body(&mut self) -> Result<BytesMut, FrameError> {
        loop {
            if let Some(body) = self.take_frame()? {
                let now = Instant::now();
                self.last_activity = now;
                self.partial_since = self.partial().then_some(now);
                return Ok(body);
            }
            if self.rbuf.capacity() == self.rbuf.len() {
                self.rbuf.reserve(if self.handshake { 512 } else { 4096 });
            }
            let n = match self.timeouts {
                None => self.io.read_buf(&mut self.rbuf).await?,
                Some(t) => {
                    let (deadline, error) = match self.partial_since {
                        Some(since) => (since + t.read, FrameError::ReadTimeout(t.read)),
                        None => (self.last_activity + t.idle, FrameError::Idle(t.idle)),
                    };
                    let timer = match &mut self.timer {
                        Some(timer) => {
                            if timer.deadline() != deadline {
                                timer.as_mut().reset(deadline);
                            }
                            timer
                        }
                        empty @ None => empty.insert(Box::pin(tokio::time::sleep_until(deadline))),
                    };
                    tokio::select! {
                        biased;
                        r = self.io.read_buf(&mut self.rbuf) => r?,
                        _ = timer.as_mut() => return Err(error),
                    }
                }
            };
            if n == 0 {
                return Err(if !self.partial() {
                    FrameError::Closed
                } else {
                    FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
            if self.partial_since.is_none() {
                self.partial_since = Some(Instant::now());
            }
        }
    }

    /// Reads and decodes the next frame as an `F`.
    pub async fn recv<F: DeserializeOwned>(&mut self) -> Result<F, FrameError> {
        let body = self.recv_body().await?;
        decode(&body)
    }

    /// Queues an encoded body (checked against the limit) without writing it.
    pub fn feed_body(&mut self, body: &[u8]) -> Result<(), FrameError> {
        if body.len() > self.max_send {
            return Err(FrameError::TooLarge {
                size: body.len(),
                limit: self.max_send,
                handshake: self.handshake,
            });
        }
        self.wbuf.put_u32(body.len() as u32);
        self.wbuf.extend_from_slice(body);
        Ok(())
    }

    /// Encodes and queues a frame. An encoding failure or an oversized frame fails this frame
    /// only: nothing of it is queued.
    pub fn feed<F: Serialize>(&mut self, frame: &F) -> Result<(), FrameError> {
        // Encoded in place after a length prefix (no intermediate buffer); taken back out if it
        // fails or is too large.
        let start = self.wbuf.len();
        self.wbuf.put_u32(0);
        if let Err(e) = rmp_serde::encode::write(&mut self.wbuf, frame) {
            self.wbuf.truncate(start);
            return Err(e.into());
        }
        let size = self.wbuf.len() - start - 4;
        if size > self.max_send {
            self.wbuf.truncate(start);
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_send,
                handshake: self.handshake,
            });
        }
        self.wbuf[start..start + 4].copy_from_slice(&(size as u32).to_be_bytes());
        Ok(())
    }

    /// Encrypts what was queued into records, in place of the plaintext.
    fn seal(&mut self) -> Result<(), FrameError> {
        let Some(cipher) = self.cipher.as_mut() else {
            return Ok(());
        };
        let records = self.wbuf.len().div_ceil(RECORD_PLAINTEXT);
        let sealed = &mut self.sealed;
        sealed.clear();
        sealed.reserve(self.wbuf.len() + records * 18);
        let out = &mut self.scratch;
        if out.len() < 65535 {
            out.resize(65535, 0);
        }
        for chunk in self.wbuf.chunks(RECORD_PLAINTEXT) {
            let n = cipher
                .write_message(chunk, out)
                .map_err(|e| FrameError::Crypto(format!("cannot encrypt a record: {e}")))?;
            sealed.put_u16(n as u16);
            sealed.extend_from_slice(&out[..n]);
        }
        // The sealed bytes are written; the plaintext buffer is kept for the next batch.
        std::mem::swap(&mut self.wbuf, &mut self.sealed);
        Ok(())
    }

    /// Writes what was queued.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.seal()?;
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        match self.timeouts {
            None => write.await?,
            Some(t) => match tokio::time::timeout(t.read, write).await {
                Ok(r) => r?,
                Err(_) => return Err(FrameError::WriteTimeout(t.read)),
            },
        }
        self.wbuf.clear();
        self.last_activity = Instant::now();
        Ok(())
    }

    /// Encodes, writes and flushes one frame.
    pub async fn send<F: Serialize>(&mut self, frame: &F) -> Result<(), FrameError> {
        self.feed(frame)?;
        self.flush().await
    }

    /// Writes raw bytes on the socket, past the encryption (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Writes bytes into the stream of frames as they are, no length prefix added, encrypted if
    /// the connection is (for tests of bad input).
    pub async fn send_stream(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.wbuf.extend_from_slice(bytes);
        self.flush().await
    }

    /// Writes a body with its length prefix, ignoring the limit (for tests of bad input).
    pub async fn send_unchecked(&mut self, body: &[u8]) -> Result<(), FrameError> {
        let mut bytes = Vec::with_capacity(4 + body.len());
        bytes.put_u32(body.len() as u32);
        bytes.extend_from_slice(body);
        self.send_stream(&bytes).await
    }
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

/// Sends an error frame of kind `F` with `reason` (cut to [`MAX_REASON`], best effort, within
/// [`DRAIN_TIME`]) and closes the connection.
///
/// After closing its side, it reads and discards what the other side still sends for a moment
/// (at most [`DRAIN_TIME`]): closing a socket with unread input resets the connection, and the
/// other side could lose the error frame.
pub async fn refuse<F: ErrorFrame, T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    reason: &str,
) {
    let frame = F::error(excerpt(reason));
    conn.wbuf.clear();
    let _ = conn.feed(&frame);
    let _ = conn.seal();
    let io = async {
        let _ = conn.io.write_all(&conn.wbuf).await;
        let _ = conn.io.shutdown().await;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = conn.io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, io).await;
}

/// How long [`refuse`] waits for the other side to close.
pub const DRAIN_TIME: Duration = Duration::from_millis(500);
