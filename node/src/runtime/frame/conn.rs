//! [`Conn`]: frames read and written on a byte stream, with limits, timeouts and, after an
//! encrypting handshake, Noise records (see the parent module for the format).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::{decode, excerpt, ErrorFrame, FrameError, HANDSHAKE_MAX_FRAME};

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
    /// The bytes a flush is writing (sealed records on an encrypted connection), of which the
    /// first `out_pos` are written. What is fed meanwhile waits in `wbuf` for the next batch, so
    /// a flush cancelled halfway loses nothing and writes nothing twice.
    out: Vec<u8>,
    out_pos: usize,
    /// Since when a write has waited without progress (across flushes that were cancelled).
    write_since: Option<Instant>,
    /// The read deadline's timer, kept from one read to the next: moving a registered timer
    /// later is a lock-free update, where a fresh timer per read is a registration in tokio's
    /// time driver and a removal after it.
    timer: Option<Pin<Box<Sleep>>>,
    /// The room a read of an established connection is given (see [`READ_ROOM`]).
    room: usize,
    /// Whether the read buffers grew for a frame larger than [`KEPT_BUFFER`]: they are let go
    /// once it is taken and nothing is left in them.
    grown: bool,
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
        out: Vec::new(),
        out_pos: 0,
        write_since: None,
        timer: None,
        room: READ_ROOM,
        grown: false,
    }
}

/// Largest chunk read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// The room a read of an established connection is given at first: a read is made into at least
/// a quarter of it, at the end of the read buffer. A read into the few bytes left after the frames
/// before it cuts the next frame in two, and its second half costs a second read: a third of the
/// replies to gets arrived in two `recvfrom` calls when a read got whatever room was left
/// (`strace` of the load generator, 50 connections). A read that fills its room doubles it, up to
/// [`READ_CHUNK`]: a peer's batches of messages are several KiB, a client's requests a few
/// hundred bytes. The buffer takes back the space of the frames already taken once they are
/// gone, so it grows only with the room.
const READ_ROOM: usize = 4096;

/// The largest buffer a connection keeps from one frame to the next. A frame larger than this
/// (a client's put near its 4 MiB limit, a peer's batch of hinted values) is read and written in
/// buffers of its size, which are let go once it is gone: a connection that kept them would hold
/// that memory for as long as it lives, over every client slot.
const KEPT_BUFFER: usize = 2 * READ_CHUNK;

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
        let Some(size) = self.peek_len()? else {
            return Ok(None);
        };
        let encrypted = self.cipher.is_some();
        let buf = if encrypted {
            &mut self.plain
        } else {
            &mut self.rbuf
        };
        if buf.len() < 4 + size {
            // Room for the rest of this frame, never more than a chunk at once.
            let missing = 4 + size - buf.len();
            buf.reserve(missing.min(READ_CHUNK));
            self.grown |= 4 + size > KEPT_BUFFER;
            if encrypted {
                self.rbuf.reserve(READ_CHUNK);
            }
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size)))
    }

    /// Counts the connection active now: its idle timeout starts again (a server that owes
    /// the other side a reply does not call the connection idle).
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Whether part of a frame (or of a record) has arrived.
    fn partial(&self) -> bool {
        !self.rbuf.is_empty() || !self.plain.is_empty()
    }

    /// The size of the next frame's body, once its length prefix has arrived (checked against
    /// the limit), without reading the body beyond what arrived with it: a server learns what a
    /// request will hold before it lets the request in. Cancel-safe.
    pub async fn next_len(&mut self) -> Result<usize, FrameError> {
        loop {
            if let Some(size) = self.peek_len()? {
                return Ok(size);
            }
            self.mark_partial();
            self.fill().await?;
        }
    }

    /// The size the length prefix at the front of the buffer announces, if it has arrived.
    fn peek_len(&mut self) -> Result<Option<usize>, FrameError> {
        if self.cipher.is_some() {
            self.decrypt_records()?;
        }
        let buf = if self.cipher.is_some() {
            &self.plain
        } else {
            &self.rbuf
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
        Ok(Some(size))
    }

    /// The frame at the front arrived in part and this side stopped reading it a while (its
    /// server waited for room for it): the read timeout for the rest counts from now.
    pub fn resume(&mut self) {
        if self.partial() {
            self.partial_since = Some(Instant::now());
        }
    }

    /// Notes when a frame began arriving, for the read timeout.
    fn mark_partial(&mut self) {
        if self.partial_since.is_none() && self.partial() {
            // A frame began arriving with the last read and is not whole yet.
            self.partial_since = Some(Instant::now());
        }
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
            self.mark_partial();
            if self.grown && !self.partial() {
                // A large frame was taken and nothing follows it: its allocation goes with it
                // (the frame's body may still hold it for a while, this connection does not).
                self.rbuf = BytesMut::new();
                self.plain = BytesMut::new();
                self.grown = false;
            }
            self.fill().await?;
        }
    }

    /// Reads once from the stream into the read buffer, within the read or idle timeout.
    async fn fill(&mut self) -> Result<(), FrameError> {
        // A handshake reads into what is left, a small buffer: its peer is not known yet.
        let (least, room) = if self.handshake {
            (1, 512)
        } else {
            (self.room / 4, self.room)
        };
        if self.rbuf.capacity() - self.rbuf.len() < least {
            self.rbuf.reserve(room);
        }
        let given = self.rbuf.capacity() - self.rbuf.len();
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
        if n == given && !self.handshake {
            self.room = (self.room * 2).min(READ_CHUNK);
        }
        if n == 0 {
            return Err(if !self.partial() {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        Ok(())
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

    /// Bytes fed and not yet written.
    pub fn unsent(&self) -> usize {
        self.wbuf.len() + self.out.len() - self.out_pos
    }

    /// Moves what was queued to the bytes being written: sealed into records on an encrypted
    /// connection, as it is otherwise. The plaintext buffer is kept for the next batch.
    fn stage(&mut self) -> Result<(), FrameError> {
        self.out.clear();
        self.out_pos = 0;
        let Some(cipher) = self.cipher.as_mut() else {
            std::mem::swap(&mut self.wbuf, &mut self.out);
            return Ok(());
        };
        let records = self.wbuf.len().div_ceil(RECORD_PLAINTEXT);
        let sealed = &mut self.out;
        sealed.reserve(self.wbuf.len() + records * 18);
        let scratch = &mut self.scratch;
        if scratch.len() < 65535 {
            scratch.resize(65535, 0);
        }
        for chunk in self.wbuf.chunks(RECORD_PLAINTEXT) {
            let n = cipher
                .write_message(chunk, scratch)
                .map_err(|e| FrameError::Crypto(format!("cannot encrypt a record: {e}")))?;
            sealed.put_u16(n as u16);
            sealed.extend_from_slice(&scratch[..n]);
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Writes what was queued. Cancel safe: a flush dropped halfway leaves the rest for the next
    /// one (which also keeps the write deadline of the write that was waiting).
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        if self.unsent() == 0 {
            return Ok(());
        }
        loop {
            if self.out_pos == self.out.len() {
                if self.wbuf.is_empty() {
                    break;
                }
                self.stage()?;
            }
            let n = self.write_some().await?;
            self.out_pos += n;
            self.write_since = None;
        }
        self.io.flush().await?;
        self.out.clear();
        self.out_pos = 0;
        for buf in [&mut self.wbuf, &mut self.out] {
            if buf.capacity() > KEPT_BUFFER {
                *buf = Vec::new();
            }
        }
        self.last_activity = Instant::now();
        Ok(())
    }

    /// One write of the bytes being written, within the write deadline.
    async fn write_some(&mut self) -> Result<usize, FrameError> {
        let timeouts = self.timeouts;
        let Conn {
            io,
            out,
            out_pos,
            write_since,
            ..
        } = self;
        let rest = &out[*out_pos..];
        // Most writes complete at once: only one that has to wait gets a timer (a timer per
        // write was a registration with tokio's time driver per reply).
        let mut limit: Option<Pin<Box<Sleep>>> = None;
        let n = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut *io).poll_write(cx, rest) {
                return Poll::Ready(r.map_err(FrameError::from));
            }
            let Some(t) = timeouts else {
                return Poll::Pending;
            };
            let since = *write_since.get_or_insert_with(Instant::now);
            let limit =
                limit.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(since + t.read)));
            limit
                .as_mut()
                .poll(cx)
                .map(|()| Err(FrameError::WriteTimeout(t.read)))
        })
        .await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        Ok(n)
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

/// Sends an error frame of kind `F` with `reason` (cut to [`MAX_REASON`](super::MAX_REASON), best effort, within
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
    // Frames queued and not started are dropped; a batch being written is finished first, so
    // that the error frame starts where a frame may.
    conn.wbuf.clear();
    let _ = conn.feed(&frame);
    close_gently(conn).await;
}

/// Writes what is queued, then closes the connection without losing it: the write side first,
/// then what the other side still sends is read and dropped until it closes too (for up to
/// [`DRAIN_TIME`]). Closed with unread bytes, a socket resets the connection, and the other side
/// may lose what it had not read yet (the last replies, the error frame).
pub async fn close_gently<T: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<T>) {
    let io = async {
        let _ = conn.flush().await;
        let _ = conn.io.shutdown().await;
        // Small: an attacker's connections may each wait here for the whole drain time.
        let mut sink = [0u8; 2048];
        while let Ok(n) = conn.io.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, io).await;
}

/// How long [`refuse`] and [`close_gently`] wait for the other side to close.
pub const DRAIN_TIME: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests;
