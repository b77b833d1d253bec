//! A byte stream that fails when the other side stops moving: the HTTP API's guard against
//! clients that hold a connection open without using it.
//!
//! Hyper bounds how long a request's head may take to arrive (and so how long a kept-alive
//! connection may idle between requests) once it has a timer, but not a body that stops halfway,
//! nor an answer the client never reads. [`Deadlines`] wraps the socket and bounds both:
//!
//! - a read that waits when no byte went either way for `idle` fails with `TimedOut`. Answers
//!   count as progress, and every request's own wait is bounded well below the default `idle`
//!   ([`MAX_REQUEST_TIMEOUT`](crate::MAX_REQUEST_TIMEOUT)), so a request being served is never cut;
//! - a write (or flush) that makes no progress for `write` fails with `TimedOut`.
//!
//! Times come from tokio's clock, so the tests below run under a paused one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::unwritten::Unwritten;

/// A stream whose reads and writes fail once the other side has stalled too long.
#[derive(Debug)]
pub(crate) struct Deadlines<IO> {
    io: IO,
    idle: Duration,
    write: Duration,
    /// When a byte last went either way.
    last: Instant,
    /// Since when a write has been waiting without progress.
    write_waiting: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// The connection's answers not yet written, if counted: bytes the socket takes count
    /// down, and once they are past a limit every read and write fails.
    unwritten: Option<std::sync::Arc<Unwritten>>,
}

impl<IO> Deadlines<IO> {
    /// Wraps `io`: reads fail after `idle` without a byte either way, writes after `write`
    /// without progress.
    pub(crate) fn new(io: IO, idle: Duration, write: Duration) -> Self {
        let now = Instant::now();
        Deadlines {
            io,
            idle,
            write,
            last: now,
            write_waiting: None,
            read_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            write_timer: Box::pin(tokio::time::sleep_until(now + write)),
            unwritten: None,
        }
    }

    /// Counts the bytes written against `unwritten`, and fails once it says to close.
    pub(crate) fn counting(mut self, unwritten: std::sync::Arc<Unwritten>) -> Self {
        self.unwritten = Some(unwritten);
        self
    }

    /// Why the connection must close, if its answers not yet written are past a limit.
    fn closing(&self) -> Option<io::Error> {
        let reason = self.unwritten.as_ref()?.closing()?;
        Some(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            reason.to_owned(),
        ))
    }

    /// A write's result: the bytes it took count down the connection's unwritten answers.
    fn counted(&self, result: &Poll<io::Result<usize>>) {
        if let (Poll::Ready(Ok(n)), Some(unwritten)) = (result, &self.unwritten) {
            unwritten.written(*n);
        }
    }

    /// Records a write's progress.
    fn wrote(&mut self) {
        self.write_waiting = None;
        self.last = Instant::now();
    }

    /// A write waits: fails it once it has waited `write` since its last progress.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let since = *self.write_waiting.get_or_insert_with(Instant::now);
        let deadline = since + self.write;
        if self.write_timer.deadline() != deadline {
            self.write_timer.as_mut().reset(deadline);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(timed_out("the client read nothing", self.write)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write-side call's result, with the deadline applied.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(r) => {
                self.wrote();
                Poll::Ready(r)
            }
            Poll::Pending => self.write_waits(cx).map(Err),
        }
    }
}

fn timed_out(what: &str, after: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} for {after:?}"))
}

impl<IO: AsyncRead + Unpin> AsyncRead for Deadlines<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.closing() {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let deadline = this.last + this.idle;
                if this.read_timer.deadline() != deadline {
                    this.read_timer.as_mut().reset(deadline);
                }
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out("no byte either way", this.idle))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deadlines<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.closing() {
            return Poll::Ready(Err(e));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.counted(&result);
        this.written(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.closing() {
            return Poll::Ready(Err(e));
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.counted(&result);
        this.written(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.written(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.written(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const IDLE: Duration = Duration::from_secs(10);
    const WRITE: Duration = Duration::from_secs(2);

    /// Our end over an in-memory pipe of 64 bytes, and the other end.
    fn pipe() -> (Deadlines<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(64);
        (Deadlines::new(ours, IDLE, WRITE), theirs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_fails_after_idle_without_a_byte_either_way() {
        let (mut ours, _theirs) = pipe();
        let started = Instant::now();
        let e = ours.read(&mut [0; 8]).await.expect_err("nothing comes");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_either_way_keep_a_read_waiting() {
        let (mut ours, mut theirs) = pipe();
        let started = Instant::now();
        // Something arrives at 6 s; our answer leaves at 12 s, then nothing more comes.
        theirs.write_all(b"x").await.expect("fits");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(ours.read(&mut [0; 8]).await.expect("arrived"), 1);
        tokio::time::sleep(Duration::from_secs(6)).await;
        ours.write_all(b"answer").await.expect("fits");
        let e = ours.read(&mut [0; 8]).await.expect_err("nothing comes");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(12) + IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_write_timeout() {
        let (mut ours, _theirs) = pipe();
        let started = Instant::now();
        let e = ours.write_all(&[7; 4096]).await.expect_err("nobody reads");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), WRITE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_gets_everything() {
        let (mut ours, mut theirs) = pipe();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0; 64];
            while got.len() < 4096 {
                tokio::time::sleep(WRITE / 2).await;
                let n = theirs.read(&mut chunk).await.expect("reads");
                got.extend_from_slice(&chunk[..n]);
            }
            got
        });
        ours.write_all(&[7; 4096])
            .await
            .expect("each wait is shorter than the timeout");
        assert_eq!(reader.await.expect("reader").len(), 4096);
    }
}
