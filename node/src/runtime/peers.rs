//! Outbound links: one task per peer, fed by a bounded queue, that writes messages in batches.
//!
//! A link connects lazily (on its first message), runs the handshake as a peer, then writes every
//! queued message it can take at once and flushes once per batch. When a connection fails, the
//! link tells the driver the peer is unreachable (so that requests waiting on it fail over now),
//! hands back what it certainly did not send, and reconnects with exponential backoff. A batch that finds the
//! queue full is not queued: the driver treats the peer as unreachable rather than grow memory.
//!
//! The driver queues a batch at a time: everything a batch of its inputs sends to one peer, so
//! that the link, woken once, writes all of it with one syscall instead of waking (on the other
//! worker thread) for the first message and writing the rest in further syscalls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::frame::{excerpt, handshake_conn, Conn, PeerFrame, Role, Timeouts, HANDSHAKE_MAX_FRAME};
use super::handshake::{connect_with_limit, Credentials};
use super::Input;
use crate::message::PeerMessage;
use crate::types::NodeId;

/// Messages taken from the queue before one flush, at least (a batch from the driver is taken
/// whole, and the driver's batches are bounded by `MAX_BATCH` inputs).
const BATCH: usize = 256;
/// First reconnect delay; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a connection attempt (TCP and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a link needs to know.
#[derive(Debug, Clone)]
pub(crate) struct LinkContext {
    /// The cluster and the peer secret.
    pub creds: Credentials,
    pub encrypt: bool,
    pub me: NodeId,
    pub my_address: String,
    /// This node's gossip generation, named in every handshake (the driver keeps it current).
    pub generation: Arc<AtomicU64>,
    pub max_frame: usize,
    /// A link with nothing to send for this long closes its connection (it reconnects on the next
    /// message): half the peers' idle timeout, so the link closes before the peer does.
    pub idle: Duration,
    /// A write to the peer that makes no progress for this long fails the link (the peers'
    /// `read_timeout`): a peer that stopped reading is reported unreachable, and its messages
    /// fail over, instead of the link waiting on it until the kernel gives up.
    pub write_timeout: Duration,
    pub inputs: mpsc::Sender<Input>,
}

/// The driver's end of a link.
#[derive(Debug)]
pub(crate) struct Link {
    pub address: String,
    pub outlet: Outlet,
    pub task: tokio::task::JoinHandle<()>,
    /// Tells the task to stop and hand back what it holds ([`Link::retire`]).
    retire: Option<oneshot::Sender<()>>,
    /// Whether [`Link::retire`] was called.
    retired: bool,
}

/// The sending end of a link's queue, bounded in messages and in bytes ([`QUEUE_BYTES`]).
#[derive(Debug, Clone)]
pub(crate) struct Outlet {
    queue: mpsc::UnboundedSender<(Vec<PeerMessage>, usize)>,
    /// Messages queued and not yet taken by the link.
    queued: Arc<AtomicUsize>,
    /// Their weight ([`PeerMessage::weight`]).
    bytes: Arc<AtomicUsize>,
    /// Most messages the queue holds.
    capacity: usize,
}

/// A batch the link did not take, handed back.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue holds too many messages already.
    Full(Vec<PeerMessage>),
    /// The link is gone.
    Closed(Vec<PeerMessage>),
}

impl Outlet {
    /// Whether the link's task has stopped taking messages.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Queues a batch of messages for the peer, in order, unless the queue would then hold more
    /// than its capacity in messages, or more than [`QUEUE_BYTES`] (an empty queue takes any one
    /// batch: what the driver holds for a peer during one fsync can be more than the capacity).
    pub fn offer(&self, batch: Vec<PeerMessage>) -> Result<(), Refused> {
        let n = batch.len();
        let weight: usize = batch.iter().map(PeerMessage::weight).sum();
        // Room is claimed atomically: a delayed message (experiments) may be offered from
        // another task while the driver offers its batch.
        let claimed = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= self.capacity).then_some(q + n)
            });
        if claimed.is_err() {
            return Err(Refused::Full(batch));
        }
        let bytes = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b == 0 || b + weight <= QUEUE_BYTES).then_some(b + weight)
            });
        if bytes.is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Refused::Full(batch));
        }
        self.queue.send((batch, weight)).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.bytes.fetch_sub(weight, Ordering::AcqRel);
            Refused::Closed(e.0 .0)
        })
    }
}

/// The link's end of its queue.
struct Queue {
    rx: mpsc::UnboundedReceiver<(Vec<PeerMessage>, usize)>,
    queued: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl Queue {
    /// The next batch; `None` once the driver dropped the link.
    async fn recv(&mut self) -> Option<Vec<PeerMessage>> {
        let taken = self.rx.recv().await?;
        Some(self.taken(taken))
    }

    /// The next batch if one is queued.
    fn try_recv(&mut self) -> Option<Vec<PeerMessage>> {
        let taken = self.rx.try_recv().ok()?;
        Some(self.taken(taken))
    }

    /// A batch taken off the queue: its room is free again.
    fn taken(&self, (batch, weight): (Vec<PeerMessage>, usize)) -> Vec<PeerMessage> {
        self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        self.bytes.fetch_sub(weight, Ordering::AcqRel);
        batch
    }
}

impl Link {
    /// The link is replaced (its peer's address changed): it stops at once and hands back what
    /// never left (what it queued, the batch it was dialling with), which the driver sends again
    /// on the new link. A batch being written when it stops may or may not arrive, as when a
    /// connection is lost.
    pub(crate) fn retire(mut self) {
        if let Some(retire) = self.retire.take() {
            self.retired = retire.send(()).is_ok();
        }
    }

    /// Stops taking messages and lets the link write what it holds, for at most `within` (a
    /// node that stops: what its last flush queued includes acknowledgements of durable writes);
    /// then the link is gone.
    pub(crate) async fn drain(mut self, within: Duration) {
        // The link's task ends once its queue is empty and closed.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.outlet.queue, closed));
        let _ = tokio::time::timeout(within, &mut self.task).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A retired link's task ends on its own once it has handed back what it held.
        if !self.retired {
            self.task.abort();
        }
    }
}

/// Most bytes of keys and values ([`PeerMessage::weight`]) a link's queue holds (64 MiB), unless
/// it is empty: a slow peer does not make the node hold `capacity` large writes.
const QUEUE_BYTES: usize = 64 << 20;

/// Starts a link to `peer` at `address` with a queue of `capacity` messages.
pub(crate) fn spawn(ctx: LinkContext, peer: NodeId, address: String, capacity: usize) -> Link {
    let (outlet, queue) = queue(capacity);
    let (retire, retired) = oneshot::channel();
    let task = tokio::spawn(serve(ctx, peer, address.clone(), queue, retired));
    Link {
        address,
        outlet,
        task,
        retire: Some(retire),
        retired: false,
    }
}

/// Runs the link until the driver drops its queue, or retires it: then what never left (the
/// batch it was about to write, what its queue holds) goes back to the driver, to be sent again
/// on the peer's new link.
async fn serve(
    ctx: LinkContext,
    peer: NodeId,
    address: String,
    mut rx: Queue,
    retired: oneshot::Receiver<()>,
) {
    let mut batch: Vec<PeerMessage> = Vec::with_capacity(BATCH);
    let retired = tokio::select! {
        () = run(&ctx, peer, &address, &mut rx, &mut batch) => false,
        r = retired => r.is_ok(),
    };
    if !retired {
        return;
    }
    rx.rx.close();
    while let Some(ms) = rx.try_recv() {
        batch.extend(ms);
    }
    if !batch.is_empty() {
        let _ = ctx.inputs.send(Input::Resend(peer, batch)).await;
    }
}

/// A link's queue of at most `capacity` messages (at least one): the driver's end and the
/// link's.
fn queue(capacity: usize) -> (Outlet, Queue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let outlet = Outlet {
        queue: tx,
        queued: queued.clone(),
        bytes: bytes.clone(),
        capacity: capacity.max(1),
    };
    (outlet, Queue { rx, queued, bytes })
}

async fn dial(ctx: &LinkContext, peer: NodeId, address: &str) -> Result<Conn<TcpStream>, String> {
    let attempt = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect to {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut conn = handshake_conn(stream);
        let role = Role::Peer {
            id: ctx.me,
            address: ctx.my_address.clone(),
            generation: ctx.generation.load(Ordering::Relaxed),
        };
        let (_, theirs) = connect_with_limit(&mut conn, &ctx.creds, role, Some(peer), ctx.encrypt)
            .await
            .map_err(|e| format!("handshake with {address}: {e}"))?;
        // Peers never write on a link, so the read side's timeouts never cut one short: the
        // link's own idle close comes first, at half of this idle timeout.
        let timeouts = Timeouts {
            idle: ctx.idle.saturating_mul(2),
            read: ctx.write_timeout,
        };
        // No frame larger than the peer takes (its limit may be below this node's while an
        // operator raises the limits one node at a time): one would close the connection.
        let max_send = theirs.map_or(ctx.max_frame, |t| t.min(ctx.max_frame));
        conn.established(HANDSHAKE_MAX_FRAME, max_send, Some(timeouts));
        Ok(conn)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("connect to {address}: timed out")),
    }
}

async fn unreachable(ctx: &LinkContext, peer: NodeId) {
    let _ = ctx.inputs.send(Input::Unreachable(peer)).await;
}

/// Hands back messages that never left: the driver may act on them for sure (re-coordinate a
/// forwarded request), which it must not do for messages lost in flight.
async fn undelivered(ctx: &LinkContext, peer: NodeId, msgs: Vec<PeerMessage>) {
    let _ = ctx.inputs.send(Input::Undelivered(peer, msgs)).await;
}

/// The link's work until the driver drops its queue: `batch` holds what it took off the queue
/// and has not written yet.
async fn run(
    ctx: &LinkContext,
    peer: NodeId,
    address: &str,
    rx: &mut Queue,
    batch: &mut Vec<PeerMessage>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(ms) => batch.extend(ms),
                None => return,
            }
        }
        let mut conn = match dial(ctx, peer, address).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(peer, error = %e, "peer unreachable");
                undelivered(ctx, peer, std::mem::take(batch)).await;
                if !back_off(ctx, peer, rx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::debug!(peer, address, "connected to peer");
        let connected = tokio::time::Instant::now();
        let mut idle = false;
        'connected: loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Some(ms) => batch.extend(ms),
                    None => break,
                }
            }
            for m in batch.drain(..) {
                // A message that cannot be encoded or exceeds the frame limit fails alone: it is
                // dropped (whoever waits for its answer times out), and the link goes on. Handing
                // it back as undelivered would mark the peer unreachable for a fault of ours.
                if let Err(e) = conn.feed(&PeerFrame::Peer(m)) {
                    tracing::error!(peer, error = %e, "cannot send a message; dropped");
                }
            }
            if let Err(e) = conn.flush().await {
                tracing::debug!(peer, error = %e, "peer connection lost");
                break 'connected;
            }
            // Peers never write on a link, so anything readable means the link is closing.
            tokio::select! {
                ms = rx.recv() => match ms {
                    Some(ms) => batch.extend(ms),
                    None => return,
                },
                _ = tokio::time::sleep(ctx.idle) => {
                    tracing::debug!(peer, "closing an idle link");
                    idle = true;
                    break 'connected;
                }
                r = conn.recv::<PeerFrame>() => {
                    match r {
                        Ok(PeerFrame::Error { reason }) => {
                            tracing::warn!(peer, reason = %excerpt(&reason), "peer closed the link");
                        }
                        Ok(_) => tracing::debug!(peer, "peer wrote on a link; closing it"),
                        Err(e) => tracing::debug!(peer, error = %e, "peer link closed"),
                    }
                    break 'connected;
                }
            }
        }
        if idle {
            backoff = MIN_BACKOFF;
            continue;
        }
        // What was in flight may be lost: requests waiting on the peer fail over.
        batch.clear();
        unreachable(ctx, peer).await;
        if connected.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        } else {
            // Closed at once (the peer refused the link after the handshake: it counts this
            // node connected already, or it is at its peer limit): backed off as a failed dial,
            // or every batch would dial again at once.
            if !back_off(ctx, peer, rx, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// How long a link must have lasted for its end to count as a lost connection rather than a
/// refusal (which backs off).
const STABLE: Duration = Duration::from_secs(1);

/// Waits `backoff`, reporting every batch offered meanwhile as undelivered (it never left).
/// Returns `false` once the driver dropped the link.
async fn back_off(ctx: &LinkContext, peer: NodeId, rx: &mut Queue, backoff: Duration) -> bool {
    let sleep = tokio::time::sleep(backoff);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            ms = rx.recv() => match ms {
                Some(ms) => undelivered(ctx, peer, ms).await,
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientOptions, ClientRequest};
    use crate::runtime::frame::DEFAULT_MAX_FRAME;
    use crate::runtime::handshake::{accept, FrameLimits, NodeSecrets};
    use tokio::net::TcpListener;

    const CLUSTER: &str = "test";
    const PEER_SECRET: &[u8] = b"peer secret";

    /// A forwarded put of a 1 MiB value.
    fn big(req: u64) -> PeerMessage {
        PeerMessage::Forward {
            req,
            request: ClientRequest::Put {
                key: req.to_be_bytes().to_vec(),
                value: vec![7; 1 << 20],
                context: Vec::new(),
                options: ClientOptions::default(),
                content_type: None,
            },
        }
    }

    /// Review of issue 20's sixteenth session: a link's queue was bounded in messages only, so a
    /// slow peer's queue could hold 4,096 writes of 1 MiB values (4 GiB). It is bounded in bytes
    /// of keys and values too; a message larger than the bound still goes when the queue is
    /// empty, and what the link takes frees room.
    #[tokio::test]
    async fn a_links_queue_is_bounded_in_bytes_too() {
        let (outlet, mut link_end) = queue(4096);
        let mut taken = 0;
        for req in 0..100 {
            if outlet.offer(vec![big(req)]).is_ok() {
                taken += 1;
            }
        }
        assert_eq!(
            taken,
            QUEUE_BYTES / big(0).weight(),
            "1 MiB messages in a queue of {QUEUE_BYTES} bytes"
        );
        assert!(link_end.recv().await.is_some());
        assert!(outlet.offer(vec![big(100)]).is_ok(), "room again");
        // Small messages still go while room is left.
        assert!(outlet
            .offer(vec![PeerMessage::ReadRefused { req: 1 }])
            .is_ok());
        // A message past the whole bound goes through an empty queue.
        let (alone, _rx) = queue(4096);
        let huge = PeerMessage::Forward {
            req: 1,
            request: ClientRequest::Put {
                key: b"k".to_vec(),
                value: vec![7; QUEUE_BYTES + 1],
                context: Vec::new(),
                options: ClientOptions::default(),
                content_type: None,
            },
        };
        assert!(alone.offer(vec![huge]).is_ok());
    }

    /// A peer that completes the handshake and then reads nothing (a paused process, a host
    /// whose network went away): the link's write fails after the write timeout, and the driver
    /// hears that the peer is unreachable, instead of the link waiting on it for ever.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_unreachable_after_the_write_timeout() {
        let (listener, address) = listening().await;
        let peer = tokio::spawn(async move {
            let conn = accepted(listener, FrameLimits::default()).await;
            // Holds the connection open and never reads from it again.
            std::future::pending::<()>().await;
            drop(conn);
        });
        let (inputs, mut driver) = mpsc::channel(16);
        let ctx = link_context(inputs);
        let link = spawn(ctx, 2, address, 1024);
        // 48 MiB (under the queue's byte bound): more than the sockets' buffers hold.
        for req in 0..48 {
            assert!(link.outlet.offer(vec![big(req)]).is_ok(), "room");
        }
        let heard = tokio::time::timeout(Duration::from_secs(600), async {
            loop {
                match driver.recv().await {
                    Some(Input::Unreachable(2)) => return,
                    Some(_) => {}
                    None => panic!("the link is gone"),
                }
            }
        })
        .await;
        assert!(
            heard.is_ok(),
            "the link still waits on the peer after 10 minutes"
        );
        peer.abort();
    }

    /// A listener for node 2, the peer the tests' links dial, and its address.
    async fn listening() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("an address").to_string();
        (listener, address)
    }

    /// Node 2's side of the first link to reach `listener`, its handshake done (it takes frames
    /// up to `limits`).
    async fn accepted(listener: TcpListener, limits: FrameLimits) -> Conn<TcpStream> {
        let (stream, _) = listener.accept().await.expect("the link connects");
        let mut conn = handshake_conn(stream);
        accept(&mut conn, &peer_secrets(), 2, false, limits)
            .await
            .expect("a peer");
        conn
    }

    /// The secrets of node 2, the peer the tests' links dial.
    fn peer_secrets() -> NodeSecrets {
        NodeSecrets {
            cluster: CLUSTER.into(),
            peer_secret: PEER_SECRET.to_vec(),
            client_secret: b"client".to_vec(),
            identity: None,
            authority: None,
        }
    }

    /// Node 1's side of a link, reporting to `inputs`.
    fn link_context(inputs: mpsc::Sender<Input>) -> LinkContext {
        LinkContext {
            creds: Credentials {
                cluster: CLUSTER.into(),
                secret: PEER_SECRET.to_vec(),
                identity: None,
                authority: None,
            },
            encrypt: false,
            me: 1,
            my_address: "127.0.0.1:1".into(),
            generation: Default::default(),
            max_frame: DEFAULT_MAX_FRAME,
            idle: Duration::from_secs(3600),
            write_timeout: Duration::from_secs(30),
            inputs,
        }
    }

    fn ack(n: u64) -> PeerMessage {
        PeerMessage::WriteAck { req: n, ok: true }
    }

    /// Review, twentieth session of issue 20: a peer that took the link's handshake and then
    /// refused the link (it counts this node connected already, from an address it had before;
    /// or it is at its peer limit) got the next batch on a new connection at once, every batch:
    /// only failed dials backed off. Each batch was reported possibly delivered, so a forward to
    /// that peer waited for its deadline rather than being coordinated here. A link the peer
    /// closes at once backs off as a failed dial does, and what comes meanwhile is undelivered.
    #[tokio::test]
    async fn a_peer_that_refuses_the_link_at_once_is_not_dialled_at_every_batch() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("an address").to_string();
        let secrets = peer_secrets();
        let peer = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut conn = handshake_conn(stream);
                if accept(&mut conn, &secrets, 2, false, FrameLimits::default())
                    .await
                    .is_ok()
                {
                    crate::runtime::frame::refuse::<PeerFrame, _>(&mut conn, "already connected")
                        .await;
                }
            }
        });
        let (inputs, mut driver) = mpsc::channel(16);
        let ctx = link_context(inputs);
        let link = spawn(ctx, 2, address, 1024);
        let (mut unreachable, mut undelivered) = (0, 0);
        for req in 0..10 {
            assert!(link.outlet.offer(vec![ack(req)]).is_ok(), "room");
            let heard = tokio::time::timeout(Duration::from_secs(60), driver.recv())
                .await
                .expect("the link reports on each message");
            match heard {
                Some(Input::Unreachable(2)) => unreachable += 1,
                Some(Input::Undelivered(2, _)) => undelivered += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            undelivered > 0,
            "every one of {unreachable} messages went on a new connection"
        );
        peer.abort();
    }

    /// Review, twenty-sixth session of issue 20: a link replaced (its peer's address changed) was
    /// dropped, which aborted its task with what it held: the messages queued and the batch it
    /// was dialling with, none of which had left. Nobody heard of them: requests waited on them
    /// until their deadlines, a forward was not coordinated here, a `TransferDone` was never sent
    /// again. A retired link hands them back, to go again on the new link.
    #[tokio::test]
    async fn a_retired_link_hands_back_what_never_left() {
        // A peer that takes the connection and never answers the handshake: the link dials.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("an address").to_string();
        let peer = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.expect("the link connects");
            std::future::pending::<()>().await;
        });
        let (inputs, mut driver) = mpsc::channel(16);
        let link = spawn(link_context(inputs), 2, address, 1024);
        assert!(link.outlet.offer(vec![ack(0)]).is_ok());
        tokio::task::yield_now().await;
        assert!(link.outlet.offer((1..4).map(ack).collect()).is_ok());
        link.retire();
        let mut back = 0;
        while back < 4 {
            match tokio::time::timeout(Duration::from_secs(60), driver.recv()).await {
                Ok(Some(Input::Resend(2, msgs))) => back += msgs.len(),
                Ok(Some(Input::Unreachable(2))) => {}
                other => panic!("{back} of 4 messages handed back, then {other:?}"),
            }
        }
        assert_eq!(back, 4);
        peer.abort();
    }

    /// Review of the runtime, twenty-fifth session of issue 20: a node that stopped dropped its
    /// links, which aborted their tasks before they wrote what the last flush had queued
    /// (acknowledgements and forwarded replies of writes already durable): a forwarding node's
    /// client then waited its whole timeout for a put that was applied. A link drained at
    /// shutdown writes what it holds first.
    #[tokio::test]
    async fn a_link_drained_at_shutdown_delivers_what_it_queued() {
        let (listener, address) = listening().await;
        let peer = tokio::spawn(async move {
            let mut conn = accepted(listener, FrameLimits::default()).await;
            conn.established(DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, None);
            let mut got = 0;
            while let Ok(PeerFrame::Peer(_)) = conn.recv::<PeerFrame>().await {
                got += 1;
            }
            got
        });
        let (inputs, _driver) = mpsc::channel(16);
        let link = spawn(link_context(inputs), 2, address, 1024);
        assert!(link.outlet.offer((0..3).map(ack).collect()).is_ok());
        link.drain(Duration::from_secs(30)).await;
        let got = tokio::time::timeout(Duration::from_secs(30), peer)
            .await
            .expect("the link closed")
            .expect("the peer task");
        assert_eq!(got, 3, "messages queued before the shutdown");
    }

    /// Review of the configuration, twenty-seventh session: each node takes peer frames up to
    /// its own limit (`RuntimeConfig::peer_frame`, from its value and version-set limits), and a
    /// link sent up to the sender's. While an operator raised the value limit one node at a
    /// time, a node already raised sent frames its peers refused: each one closed the link,
    /// losing what followed it and reporting the peer unreachable (its requests failed over).
    /// The accepting node says its limit in the handshake; a link sends no larger frame (the
    /// message is dropped alone, as one past the sender's own limit).
    #[tokio::test]
    async fn a_link_sends_no_frame_larger_than_its_peer_takes() {
        let limit = 64 << 10;
        let (listener, address) = listening().await;
        let peer = tokio::spawn(async move {
            let limits = FrameLimits {
                peer: limit,
                client: limit,
            };
            let mut conn = accepted(listener, limits).await;
            conn.established(limit, HANDSHAKE_MAX_FRAME, None);
            // The connection goes back with the outcome: closed here, the link would report
            // the peer unreachable, as it does when the peer closes on a frame too large.
            loop {
                match conn.recv::<PeerFrame>().await {
                    Ok(PeerFrame::Peer(PeerMessage::WriteAck { req: 99, .. })) => {
                        return (Ok(()), conn)
                    }
                    Ok(_) => {}
                    Err(e) => return (Err(e.to_string()), conn),
                }
            }
        });
        let (inputs, mut driver) = mpsc::channel(16);
        let link = spawn(link_context(inputs), 2, address, 1024);
        // A 1 MiB message, then a small one behind it.
        assert!(link.outlet.offer(vec![big(1), ack(99)]).is_ok());
        let (got, _open) = tokio::time::timeout(Duration::from_secs(60), peer)
            .await
            .expect("the peer read on")
            .expect("the peer task");
        assert_eq!(got, Ok(()), "the message behind the large one");
        while let Ok(input) = driver.try_recv() {
            assert!(
                !matches!(input, Input::Unreachable(_)),
                "the peer was reported unreachable"
            );
        }
    }

    #[test]
    fn the_queue_holds_at_most_its_capacity_in_messages_and_keeps_their_order() {
        let (outlet, mut queue) = queue(3);
        assert!(outlet.offer(vec![ack(1), ack(2)]).is_ok());
        // Two queued: a batch of two would make four.
        match outlet.offer(vec![ack(3), ack(4)]) {
            Err(Refused::Full(back)) => assert_eq!(back.len(), 2),
            other => panic!("expected a full queue, got {other:?}"),
        }
        assert!(outlet.offer(vec![ack(3)]).is_ok());
        let taken: Vec<PeerMessage> = std::iter::from_fn(|| queue.try_recv()).flatten().collect();
        assert_eq!(taken.len(), 3);
        assert!(matches!(taken[0], PeerMessage::WriteAck { req: 1, .. }));
        assert!(matches!(taken[2], PeerMessage::WriteAck { req: 3, .. }));
        // Taken messages free their room.
        assert!(outlet.offer(vec![ack(5), ack(6), ack(7)]).is_ok());
        let _ = std::iter::from_fn(|| queue.try_recv()).count();
        // An empty queue takes any one batch, however many messages (review, twentieth session
        // of issue 20: what a node holds for a peer during one fsync can be more than the
        // capacity, and was refused whole, every flush).
        assert!(outlet.offer((10..20).map(ack).collect()).is_ok());
    }

    #[test]
    fn offers_from_several_threads_never_overfill_the_queue() {
        let (outlet, _queue) = queue(100);
        let accepted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let outlet = outlet.clone();
                    s.spawn(move || {
                        (0..100)
                            .filter(|&i| outlet.offer(vec![ack(i)]).is_ok())
                            .count()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
        });
        assert_eq!(accepted, 100);
        assert_eq!(outlet.queued.load(Ordering::Acquire), 100);
    }

    #[test]
    fn a_closed_link_hands_the_batch_back() {
        let (outlet, queue) = queue(8);
        drop(queue);
        assert!(outlet.is_closed());
        match outlet.offer(vec![ack(1)]) {
            Err(Refused::Closed(back)) => assert_eq!(back.len(), 1),
            other => panic!("expected a closed link, got {other:?}"),
        }
        // Nothing counts as queued after a refusal.
        assert_eq!(outlet.queued.load(Ordering::Acquire), 0);
    }
}
