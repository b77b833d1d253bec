//! Tests of [`Conn`]: timeouts under tokio's paused clock, and how many reads a frame takes.

use super::*;

const TIMEOUTS: Timeouts = Timeouts {
    idle: Duration::from_secs(60),
    read: Duration::from_secs(2),
};

/// A connection over an in-memory pipe of 64 bytes whose other end is returned.
fn pipe() -> (Conn<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(64);
    let mut conn = handshake_conn(ours);
    conn.established(1 << 20, 1 << 20, Some(TIMEOUTS));
    (conn, theirs)
}

#[tokio::test(start_paused = true)]
async fn a_write_the_other_side_never_reads_fails_after_the_read_timeout() {
    let (mut conn, _theirs) = pipe();
    conn.feed_body(&[7; 4096]).expect("within the limit");
    let started = Instant::now();
    let e = conn.flush().await.expect_err("nobody reads");
    assert!(
        matches!(e, FrameError::WriteTimeout(t) if t == TIMEOUTS.read),
        "{e:?}"
    );
    assert!(started.elapsed() >= TIMEOUTS.read);
}

#[tokio::test(start_paused = true)]
async fn a_write_that_waits_for_a_slow_reader_completes_within_the_timeout() {
    let (mut conn, mut theirs) = pipe();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut chunk = [0; 64];
        while got.len() < 4 + 4096 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let n = theirs.read(&mut chunk).await.expect("reads");
            got.extend_from_slice(&chunk[..n]);
        }
        got
    });
    conn.feed_body(&[7; 4096]).expect("within the limit");
    conn.flush().await.expect("the reader drains it in time");
    let got = reader.await.expect("the reader finishes");
    assert_eq!(got[..4], 4096u32.to_be_bytes());
    assert!(got[4..].iter().all(|&b| b == 7));
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_stops_arriving_halfway_fails_after_the_read_timeout() {
    let (mut conn, mut theirs) = pipe();
    theirs
        .write_all(&100u32.to_be_bytes())
        .await
        .expect("writes");
    theirs.write_all(&[1; 10]).await.expect("writes");
    let e = conn
        .recv_body()
        .await
        .expect_err("the frame never completes");
    assert!(
        matches!(e, FrameError::ReadTimeout(t) if t == TIMEOUTS.read),
        "{e:?}"
    );
}

/// A byte stream that counts the reads that returned bytes.
struct Counted {
    io: tokio::io::DuplexStream,
    reads: usize,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.reads += 1;
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection counting its reads, over an in-memory pipe of 64 KiB whose other end is
/// returned.
fn counted() -> (Conn<Counted>, tokio::io::DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let mut conn = handshake_conn(Counted { io: ours, reads: 0 });
    conn.established(1 << 20, 1 << 20, Some(TIMEOUTS));
    (conn, theirs)
}

/// Writes one frame of `body` into `to`.
async fn send_frame(to: &mut tokio::io::DuplexStream, body: &[u8]) {
    to.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .expect("writes");
    to.write_all(body).await.expect("writes");
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_arrives_whole_is_read_in_one_read() {
    let (mut conn, mut theirs) = counted();
    // Replies to gets, one at a time: each is sent once the one before was received.
    let body = [9; 146];
    for i in 0..200 {
        send_frame(&mut theirs, &body).await;
        assert_eq!(&conn.recv_body().await.expect("a frame")[..], &body[..]);
        assert_eq!(conn.io.reads, i + 1, "frame {i} took more than one read");
    }
}

#[tokio::test(start_paused = true)]
async fn batches_larger_than_the_first_room_are_soon_read_in_one_read() {
    let (mut conn, mut theirs) = counted();
    let body = vec![5; 3 * READ_ROOM];
    let mut reads = Vec::new();
    for _ in 0..20 {
        send_frame(&mut theirs, &body).await;
        let before = conn.io.reads;
        assert_eq!(conn.recv_body().await.expect("a frame")[..], body[..]);
        reads.push(conn.io.reads - before);
    }
    assert!(
        reads[..3].iter().any(|&n| n > 1),
        "the first room is smaller: {reads:?}"
    );
    assert!(reads[10..].iter().all(|&n| n == 1), "{reads:?}");
}

#[tokio::test(start_paused = true)]
async fn frames_arriving_whole_are_read_one_by_one() {
    let (mut conn, mut theirs) = pipe();
    for body in [&b"one"[..], b"two"] {
        send_frame(&mut theirs, body).await;
    }
    assert_eq!(&conn.recv_body().await.expect("first")[..], b"one");
    assert_eq!(&conn.recv_body().await.expect("second")[..], b"two");
    let e = conn.recv_body().await.expect_err("nothing more arrives");
    assert!(
        matches!(e, FrameError::Idle(t) if t == TIMEOUTS.idle),
        "{e:?}"
    );
}
