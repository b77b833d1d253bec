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

/// The most a connection's buffers should hold once a large frame is gone: a chunk's room and
/// the leftover of the read before it, on each side.
const SETTLED: usize = 2 * READ_CHUNK;

/// Whether `buf` holds an allocation larger than [`SETTLED`], seen or not: a buffer's capacity
/// counts from where its bytes start, and the frames taken before them may have left most of the
/// allocation behind them.
fn holds_more_than_settled(buf: &mut BytesMut) -> bool {
    buf.capacity() > SETTLED || buf.try_reclaim(SETTLED + 1 - buf.len())
}

/// A body larger than any room: it is read in many chunks and written in many records.
fn large_body() -> Vec<u8> {
    (0..900 * 1024).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(start_paused = true)]
async fn a_large_frame_received_does_not_keep_its_buffer() {
    let (mut conn, mut theirs) = counted();
    let body = large_body();
    let writer = tokio::spawn(async move {
        send_frame(&mut theirs, &body).await;
        theirs
    });
    let got = conn.recv_body().await.expect("the large frame");
    assert_eq!(got.len(), 900 * 1024);
    drop(got);
    let mut theirs = writer.await.expect("the writer finishes");
    // The client goes on with small requests, as a client at the frame limit would after one
    // large put.
    for _ in 0..3 {
        send_frame(&mut theirs, b"small").await;
        assert_eq!(
            &conn.recv_body().await.expect("a small frame")[..],
            b"small"
        );
    }
    assert!(
        !holds_more_than_settled(&mut conn.rbuf),
        "the read buffer keeps {} bytes",
        conn.rbuf.capacity()
    );
}

#[tokio::test(start_paused = true)]
async fn a_large_frame_sent_does_not_keep_its_buffer() {
    let (mut conn, mut theirs) = counted();
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        theirs.read_to_end(&mut sink).await.expect("reads");
        sink.len()
    });
    conn.feed_body(&large_body()).expect("within the limit");
    conn.flush().await.expect("the reader drains it");
    conn.send_stream(b"small").await.expect("writes");
    assert!(
        conn.wbuf.capacity() <= SETTLED,
        "the write buffer keeps {} bytes",
        conn.wbuf.capacity()
    );
    drop(conn);
    assert_eq!(
        reader.await.expect("the reader finishes"),
        4 + 900 * 1024 + 5
    );
}

/// Two ends of an encrypted connection over an in-memory pipe of 64 KiB.
fn encrypted_pair() -> (Conn<tokio::io::DuplexStream>, Conn<tokio::io::DuplexStream>) {
    let params: snow::params::NoiseParams = "Noise_NN_25519_ChaChaPoly_BLAKE2s"
        .parse()
        .expect("a known pattern");
    let mut initiator = snow::Builder::new(params.clone())
        .build_initiator()
        .expect("an initiator");
    let mut responder = snow::Builder::new(params)
        .build_responder()
        .expect("a responder");
    let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
    let n = initiator.write_message(&[], &mut a).expect("e");
    responder.read_message(&a[..n], &mut b).expect("e");
    let n = responder.write_message(&[], &mut a).expect("e, ee");
    initiator.read_message(&a[..n], &mut b).expect("e, ee");
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let mut ends = [(ours, initiator), (theirs, responder)].map(|(io, state)| {
        let mut conn = handshake_conn(io);
        conn.established(1 << 20, 1 << 20, Some(TIMEOUTS));
        conn.encrypt_with(state.into_transport_mode().expect("transport"));
        Some(conn)
    });
    let [a, b] = &mut ends;
    (a.take().expect("first end"), b.take().expect("second end"))
}

#[tokio::test(start_paused = true)]
async fn encrypted_frames_straddling_records_arrive_whole_and_in_order() {
    let (mut sender, mut receiver) = encrypted_pair();
    // Frames of sizes that put their boundaries anywhere in the records of one flush, then a
    // frame longer than a record.
    let bodies: Vec<Vec<u8>> = [1, 40_000, 30_000, 65_519, 3, 70_000, 12]
        .iter()
        .enumerate()
        .map(|(i, &len)| vec![i as u8 + 1; len])
        .collect();
    let expected = bodies.clone();
    let writer = tokio::spawn(async move {
        for body in &bodies {
            sender.feed_body(body).expect("within the limit");
        }
        sender.flush().await.expect("writes");
        sender
    });
    for body in &expected {
        assert_eq!(&receiver.recv_body().await.expect("a frame")[..], &body[..]);
    }
    writer.await.expect("the writer finishes");
}

#[tokio::test(start_paused = true)]
async fn a_large_encrypted_frame_does_not_keep_its_buffers() {
    let (mut sender, mut receiver) = encrypted_pair();
    let body = large_body();
    let writer = tokio::spawn(async move {
        sender.feed_body(&body).expect("within the limit");
        sender.flush().await.expect("writes");
        sender
    });
    assert_eq!(
        receiver.recv_body().await.expect("the large frame").len(),
        900 * 1024
    );
    let mut sender = writer.await.expect("the writer finishes");
    for _ in 0..3 {
        sender.feed_body(b"small").expect("within the limit");
        sender.flush().await.expect("writes");
        assert_eq!(
            &receiver.recv_body().await.expect("a small frame")[..],
            b"small"
        );
    }
    for (what, capacity) in [
        ("sender's write buffer", sender.wbuf.capacity()),
        ("sender's sealed records", sender.out.capacity()),
    ] {
        assert!(capacity <= SETTLED, "the {what} keeps {capacity} bytes");
    }
    for (what, buf) in [
        ("receiver's read buffer", &mut receiver.rbuf),
        ("receiver's plaintext", &mut receiver.plain),
    ] {
        assert!(
            !holds_more_than_settled(buf),
            "the {what} keeps {} bytes",
            buf.capacity()
        );
    }
}

/// Feeds frames while flushes are cancelled halfway (a client connection collects replies while
/// it writes): the other side gets every frame once, whole and in order.
async fn cancelled_flushes_lose_and_repeat_nothing(
    mut sender: Conn<tokio::io::DuplexStream>,
    mut receiver: Conn<tokio::io::DuplexStream>,
) {
    let bodies: Vec<Vec<u8>> = (0..40u8)
        .map(|i| vec![i + 1; 1000 + 7_919 * usize::from(i)])
        .collect();
    let expected = bodies.clone();
    let reader = tokio::spawn(async move {
        for body in &expected {
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(&receiver.recv_body().await.expect("a frame")[..], &body[..]);
        }
    });
    let mut cancelled = 0;
    for body in &bodies {
        sender.feed_body(body).expect("within the limit");
        tokio::select! {
            r = sender.flush() => r.expect("writes"),
            () = tokio::time::sleep(Duration::from_micros(300)) => cancelled += 1,
        }
    }
    sender.flush().await.expect("writes the rest");
    assert_eq!(sender.unsent(), 0);
    reader.await.expect("the reader gets every frame");
    assert!(cancelled > 10, "only {cancelled} flushes were cut short");
}

#[tokio::test(start_paused = true)]
async fn a_flush_cancelled_halfway_loses_and_repeats_nothing() {
    let (ours, theirs) = tokio::io::duplex(4096);
    let [sender, receiver] = [ours, theirs].map(|io| {
        let mut conn = handshake_conn(io);
        conn.established(1 << 20, 1 << 20, Some(TIMEOUTS));
        conn
    });
    cancelled_flushes_lose_and_repeat_nothing(sender, receiver).await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_flush_cancelled_halfway_loses_and_repeats_nothing() {
    let (sender, receiver) = encrypted_pair();
    cancelled_flushes_lose_and_repeat_nothing(sender, receiver).await;
}

#[tokio::test(start_paused = true)]
async fn the_write_deadline_holds_across_cancelled_flushes() {
    let (mut conn, _theirs) = pipe();
    conn.feed_body(&[7; 4096]).expect("within the limit");
    let started = Instant::now();
    // Flushes cut short every half second never reset the deadline.
    let e = loop {
        tokio::select! {
            r = conn.flush() => break r.expect_err("nobody reads"),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    assert!(matches!(e, FrameError::WriteTimeout(_)), "{e:?}");
    assert_eq!(started.elapsed(), TIMEOUTS.read);
}
