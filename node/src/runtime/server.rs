//! Inbound connections: the listener, the handshake, then one reader per connection.
//!
//! A peer connection only carries [`PeerFrame::Peer`] messages into the driver. A client
//! connection carries requests in and replies out; up to [`MAX_IN_FLIGHT`] requests of one
//! connection are handled at once, and their replies go back as they complete. Anything
//! unexpected (a malformed or unknown frame, an oversized frame, a frame of the wrong kind) is
//! answered with an error frame and the connection is closed; the node goes on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;

use super::frame::{
    close_gently, excerpt, handshake_conn, refuse, ClientFrame, Conn, FrameError, Handshake,
    NodeFrame, PeerFrame, Role, Timeouts, HANDSHAKE_MAX_FRAME, SLOT_GIVEN_UP, STOPPED_READING,
};
use super::handshake::{accept_admitting, FrameLimits, NodeSecrets};
use super::slots::{AddressSlots, Admit};
use super::Input;
use crate::message::{ClientError, ClientReply, ClientRequest};
use crate::types::NodeId;
pub(crate) use budget::{Admitted, RequestBudget};
pub(crate) use handshakes::host_of;
use handshakes::Handshakes;
use unsent::Unsent;
pub(crate) use unsent::{Unsent as UnsentShare, UnsentBytes};

/// Requests of one client connection handled at once; more wait in the socket.
pub const MAX_IN_FLIGHT: usize = 1024;
/// First pause after a failed accept (out of file descriptors, say); doubled after each failure in
/// a row up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections a node holds, and for how long.
///
/// Unauthenticated connections cost a node a few KiB each (their frames are at most
/// [`HANDSHAKE_MAX_FRAME`](super::frame::HANDSHAKE_MAX_FRAME) bytes) and hold no slot for long:
/// at most `max_handshakes` run at once, and when one more arrives the oldest of the address
/// holding the most is closed, so idle connections that never authenticate cannot lock clients
/// out, nor can one host close other hosts' handshakes. Authenticated connections hold a
/// slot until they close: clients one of `max_connections` (shared fairly by address, as the
/// HTTP API's), peers one of `max_peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time a connecting side may take to complete the handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// An established connection on which no frame went either way for this long is closed
    /// (default 120 s). A node closes its own idle links to peers after half of it.
    pub idle_timeout: Duration,
    /// Once a frame's first byte has arrived, the rest must arrive within this time; a write must
    /// complete within it too (default 30 s).
    pub read_timeout: Duration,
    /// Connections still in their handshake (default 256); one more closes the oldest of the
    /// address that holds the most.
    pub max_handshakes: usize,
    /// Client connections at once (default 1024). One more takes the oldest slot of the address
    /// (an IPv6 /64 counts as one) holding the most when its own holds fewer, that connection
    /// closing once it has answered what it read; it is refused in the handshake otherwise.
    pub max_connections: usize,
    /// Peer connections at once (default 256).
    pub max_peers: usize,
    /// A client connection whose replies waiting to be written pass this many bytes is closed
    /// (default 32 MiB): a client that sends requests and does not read the replies would
    /// otherwise have the node hold up to [`MAX_IN_FLIGHT`] of them, each as large as a key's
    /// whole sibling set (4 GiB with the default limits).
    pub max_unsent: usize,
    /// Replies waiting to be written over every client connection (default 256 MiB): past it,
    /// the connection holding the most is closed, so that many clients that do not read (each
    /// under `max_unsent`) cannot make the node hold `max_connections` times `max_unsent`.
    pub max_unsent_total: usize,
    /// Bytes of requests (keys, values, contexts) a client connection has handed to the node and
    /// that are not answered yet (default 32 MiB): past it, the connection reads no more requests
    /// until some are answered. One request is always taken, whatever its size.
    pub max_request_bytes: usize,
    /// The same over every client connection, TCP and HTTP (default 256 MiB): a request waits
    /// until the node holds less, connections in the order they asked.
    pub max_request_bytes_total: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            read_timeout: Duration::from_secs(30),
            max_handshakes: 256,
            max_connections: 1024,
            max_peers: 256,
            max_unsent: 32 << 20,
            max_unsent_total: 256 << 20,
            max_request_bytes: 32 << 20,
            max_request_bytes_total: 256 << 20,
        }
    }
}

impl ConnectionLimits {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: self.idle_timeout,
            read: self.read_timeout,
        }
    }
}

/// What connection tasks need.
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    pub secrets: NodeSecrets,
    pub encrypt: bool,
    pub id: NodeId,
    /// Largest frame from or to a peer, and to a client ([`super::RuntimeConfig::peer_frame`]).
    pub max_frame: usize,
    /// Largest frame from a client.
    pub max_client_frame: usize,
    pub limits: ConnectionLimits,
    pub inputs: mpsc::Sender<Input>,
    /// Reply bytes waiting to be written, over every client connection.
    pub unsent: Arc<UnsentBytes>,
    /// Request bytes taken in and not answered, over every client connection.
    pub requests: RequestBudget,
    /// The timeout of a request that names none (the node's `request_timeout`).
    pub request_timeout: Duration,
    /// Set (or its sender dropped) when the node stops: the server takes no more connections and
    /// no more requests, and each client connection ends once it has written the replies it owes.
    pub closing: watch::Receiver<bool>,
}

/// The slots of established connections, shared by the connection tasks.
#[derive(Debug)]
struct Slots {
    /// The client connections' slots, by address, with what closes each (see
    /// [`ClientSlot`]).
    clients: Mutex<ClientSlots>,
    peers: Arc<Semaphore>,
    /// Connections in their handshake.
    handshakes: Mutex<Handshakes>,
    /// The connected peers by node id.
    peer_ids: Mutex<HashMap<NodeId, PeerEntry>>,
    /// Handshakes closed by this node (timed out, or the oldest for a newcomer) being refused
    /// gently at once ([`REFUSING`]).
    refusing: Arc<Semaphore>,
}

/// Who holds the client slots, and how to close each connection.
#[derive(Debug)]
struct ClientSlots {
    taken: AddressSlots<u64>,
    /// By ticket: sent (or dropped) when the connection gives its slot up to a client of
    /// another address.
    give_up: HashMap<u64, oneshot::Sender<()>>,
    /// Connections that gave their slot up and still answer what they read: at most as many
    /// as the slots (past that, a newcomer is refused), or an address that takes slots back as
    /// fast as they are given up would hold ever more sockets.
    leaving: std::collections::HashSet<u64>,
}

/// A client connection's slot, freed when dropped.
struct ClientSlot {
    slots: Arc<Slots>,
    ticket: u64,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut clients = lock(&self.slots.clients);
        clients.taken.remove(self.ticket);
        clients.give_up.remove(&self.ticket);
        clients.leaving.remove(&self.ticket);
    }
}

/// What a connection holds once admitted.
enum Slot {
    /// Held for as long as the connection runs.
    Peer {
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
    /// With what says that the slot went to a client of another address.
    Client(ClientSlot, oneshot::Receiver<()>),
}

impl Slots {
    /// A slot for a client connection from `ip` (see [`AddressSlots`]): a free one, or the
    /// oldest of the address holding the most, whose connection is told to close.
    fn client(
        self: &Arc<Self>,
        ip: std::net::IpAddr,
        ticket: u64,
        limit: usize,
    ) -> Result<Slot, String> {
        let mut clients = lock(&self.clients);
        let refused = || format!("too many client connections (limit {limit})");
        if clients.taken.is_full() && clients.leaving.len() >= limit {
            return Err(refused());
        }
        match clients.taken.admit(ip) {
            Admit::Free => {}
            Admit::Instead(victim) => {
                clients.leaving.insert(victim);
                if let Some(close) = clients.give_up.remove(&victim) {
                    let _ = close.send(());
                }
            }
            Admit::Refuse => return Err(refused()),
        }
        clients.taken.add(ip, ticket);
        let (close, closed) = oneshot::channel();
        clients.give_up.insert(ticket, close);
        let slot = ClientSlot {
            slots: Arc::clone(self),
            ticket,
        };
        Ok(Slot::Client(slot, closed))
    }
}

/// Most handshakes closed by this node that are refused gently at once (the error frame, then
/// up to the drain time for the other side to close); past that one is closed at once. Out of
/// their handshake slot, they were unbounded: a flood of idle connections that stay open held a
/// descriptor each for the drain time and ran the node out of them.
const REFUSING: usize = 64;

/// Refuses a connection this node closes in its handshake: gently (see [`refuse`]) while
/// fewer than [`REFUSING`] are, else at once.
async fn refuse_closed_handshake<T: AsyncRead + AsyncWrite + Unpin>(
    slots: &Slots,
    conn: &mut Conn<T>,
    reason: &str,
) {
    if let Ok(_permit) = Arc::clone(&slots.refusing).try_acquire_owned() {
        refuse::<Handshake, _>(conn, reason).await;
    }
}

/// A connected peer.
#[derive(Debug)]
struct PeerEntry {
    ticket: u64,
    address: String,
    generation: u64,
    /// Dropped to close the connection.
    _close: oneshot::Sender<()>,
}

/// Accepts connections until the node closes ([`ServerContext::closing`]), then waits for every
/// connection to end (a client connection writes the replies it owes first); aborting the task
/// aborts every connection too.
pub(crate) async fn serve(listener: TcpListener, ctx: ServerContext) {
    let slots = Arc::new(Slots {
        clients: Mutex::new(ClientSlots {
            taken: AddressSlots::new(ctx.limits.max_connections),
            give_up: HashMap::new(),
            leaving: Default::default(),
        }),
        peers: Arc::new(Semaphore::new(ctx.limits.max_peers)),
        handshakes: Mutex::new(Handshakes::default()),
        peer_ids: Mutex::new(HashMap::new()),
        refusing: Arc::new(Semaphore::new(REFUSING)),
    });
    let mut conns = JoinSet::new();
    let mut next = 0u64;
    let mut backoff = MIN_ACCEPT_BACKOFF;
    let mut closing = ctx.closing.clone();
    loop {
        tokio::select! {
            _ = closed(&mut closing) => {
                drop(listener);
                while conns.join_next().await.is_some() {}
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    backoff = MIN_ACCEPT_BACKOFF;
                    let _ = stream.set_nodelay(true);
                    next += 1;
                    let (tx, evicted) = oneshot::channel();
                    lock(&slots.handshakes).admit(next, addr.ip(), tx, ctx.limits.max_handshakes);
                    conns.spawn(connection(stream, addr, ctx.clone(), slots.clone(), next, evicted));
                }
                Err(e) => {
                    // Out of file descriptors or memory: pause, longer each time in a row, so a
                    // full table is not retried in a busy loop (nor logged a hundred times a second).
                    tracing::warn!(error = %e, pause = ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Returns once the node closes ([`ServerContext::closing`] set, or its sender gone).
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: ServerContext,
    slots: Arc<Slots>,
    ticket: u64,
    evicted: oneshot::Receiver<()>,
) {
    let mut conn = handshake_conn(stream);
    // A connection past its role's cap is refused in the handshake: the other side then knows
    // that nothing it sends reaches this node (a client tries the next node, and does not count
    // this one among those that may have applied its request).
    let slot = |role: &Role| match role {
        Role::Peer { .. } => Arc::clone(&slots.peers)
            .try_acquire_owned()
            .map(|permit| Slot::Peer { _permit: permit })
            .map_err(|_| format!("too many peer connections (limit {})", ctx.limits.max_peers)),
        Role::Client => slots.client(addr.ip(), ticket, ctx.limits.max_connections),
    };
    let handshake = tokio::time::timeout(
        ctx.limits.handshake_timeout,
        accept_admitting(
            &mut conn,
            &ctx.secrets,
            ctx.id,
            ctx.encrypt,
            FrameLimits {
                peer: ctx.max_frame,
                client: ctx.max_client_frame,
            },
            slot,
        ),
    );
    let mut closing = ctx.closing.clone();
    let outcome = tokio::select! {
        r = handshake => Some(r),
        _ = evicted => None,
        _ = closed(&mut closing) => {
            lock(&slots.handshakes).remove(ticket);
            refuse::<Handshake, _>(&mut conn, "node shutting down").await;
            return;
        }
    };
    lock(&slots.handshakes).remove(ticket);
    let (role, slot) = match outcome {
        Some(Ok(Ok(admitted))) => admitted,
        Some(Ok(Err(e))) => {
            tracing::warn!(%addr, error = %e, "handshake refused");
            return;
        }
        Some(Err(_)) => {
            tracing::warn!(%addr, "handshake timed out");
            refuse_closed_handshake(&slots, &mut conn, "handshake timed out").await;
            return;
        }
        None => {
            tracing::debug!(%addr, "too many handshakes: closing the oldest");
            refuse_closed_handshake(&slots, &mut conn, "too many connections in their handshake")
                .await;
            return;
        }
    };
    match role {
        Role::Peer {
            id,
            address,
            generation,
        } => {
            let replaced = match register_peer(&slots, &ctx, ticket, id, &address, generation) {
                Ok(replaced) => replaced,
                Err(reason) => {
                    bad_input::<PeerFrame, _>(&mut conn, addr, reason).await;
                    return;
                }
            };
            tracing::debug!(%addr, peer = id, address = %excerpt(&address), "peer connected");
            conn.established(
                ctx.max_frame,
                HANDSHAKE_MAX_FRAME,
                Some(ctx.limits.timeouts()),
            );
            peer_connection(conn, addr, id, ctx, replaced).await;
            let mut by_id = lock(&slots.peer_ids);
            if by_id.get(&id).is_some_and(|p| p.ticket == ticket) {
                by_id.remove(&id);
            }
        }
        Role::Client => {
            tracing::debug!(%addr, "client connected");
            conn.established(
                ctx.max_client_frame,
                ctx.max_frame,
                Some(ctx.limits.timeouts()),
            );
            let Slot::Client(_slot, given_up) = slot else {
                return;
            };
            client_connection(conn, addr, ctx, given_up).await;
        }
    }
}

/// Closes a connection after a bad frame, telling the other side why (with an error frame of
/// kind `F`).
async fn bad_input<F: super::frame::ErrorFrame, T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    addr: SocketAddr,
    reason: String,
) {
    let reason = excerpt(&reason);
    tracing::warn!(%addr, %reason, "closing connection");
    refuse::<F, _>(conn, &reason).await;
}

/// Closes a connection after a read failed: quietly when it was only idle.
async fn read_failed<F: super::frame::ErrorFrame, T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    addr: SocketAddr,
    e: FrameError,
) {
    if let FrameError::Idle(_) = e {
        tracing::debug!(%addr, error = %e, "closing an idle connection");
        refuse::<F, _>(conn, &e.to_string()).await;
    } else {
        bad_input::<F, _>(conn, addr, e.to_string()).await;
    }
}

/// One connection per node id. A second connection claiming the id of a connected node
/// replaces the older one when it names the same address (the node reconnected; its old
/// connection may be half-open) or a later generation (the node restarted at another address,
/// and its old connection may be half-open: waiting for that one to time out would cut the node
/// off from this one for minutes). It is refused when it names another address and no later
/// generation (two nodes configured with one id). A connection claiming this node's own id is
/// refused. Returns the signal that closes the new connection when it is replaced in turn.
fn register_peer(
    slots: &Slots,
    ctx: &ServerContext,
    ticket: u64,
    id: NodeId,
    address: &str,
    generation: u64,
) -> Result<oneshot::Receiver<()>, String> {
    if id == ctx.id {
        return Err(format!("a peer claims this node's id {id}"));
    }
    let mut by_id = lock(&slots.peer_ids);
    if let Some(existing) = by_id.get(&id) {
        if existing.address != address && generation <= existing.generation {
            return Err(format!(
                "node id {id} is already connected, from {} (generation {}, this connection's {generation})",
                excerpt(&existing.address),
                existing.generation
            ));
        }
        tracing::debug!(
            peer = id,
            "a peer reconnected: closing its older connection"
        );
    }
    let (close, replaced) = oneshot::channel();
    // Inserting drops the older entry's sender, which closes the older connection.
    by_id.insert(
        id,
        PeerEntry {
            ticket,
            address: address.to_string(),
            generation,
            _close: close,
        },
    );
    Ok(replaced)
}

async fn peer_connection(
    mut conn: Conn<TcpStream>,
    addr: SocketAddr,
    from: NodeId,
    ctx: ServerContext,
    mut replaced: oneshot::Receiver<()>,
) {
    let mut closing = ctx.closing.clone();
    loop {
        let frame = tokio::select! {
            frame = conn.recv::<PeerFrame>() => frame,
            _ = closed(&mut closing) => return,
            _ = &mut replaced => {
                refuse::<PeerFrame, _>(&mut conn, "replaced by a newer connection").await;
                return;
            }
        };
        match frame {
            Ok(PeerFrame::Peer(msg)) => {
                if ctx.inputs.send(Input::Peer { from, msg }).await.is_err() {
                    return;
                }
            }
            Ok(PeerFrame::Error { reason }) => {
                let reason = excerpt(&reason);
                tracing::debug!(%addr, peer = from, %reason, "peer closed the connection");
                return;
            }
            Err(FrameError::Closed) => return,
            Err(e) => {
                read_failed::<PeerFrame, _>(&mut conn, addr, e).await;
                return;
            }
        }
    }
}

async fn client_connection<T: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Conn<T>,
    addr: SocketAddr,
    ctx: ServerContext,
    mut given_up: oneshot::Receiver<()>,
) {
    let mut in_flight = FuturesUnordered::new();
    let unsent = Unsent::new(Arc::clone(&ctx.unsent));
    // Request bytes handed to the driver and not answered (the in-flight futures give them
    // back), against `max_request_bytes`. A frame takes its share of the node-wide budget
    // (`max_request_bytes_total`) by the size its length prefix announces, before its body is
    // read: `admitting` while it waits (meanwhile nothing more is read, and the client's bytes
    // wait in its socket), `share` once it has it. Read first, 1,024 connections could each hold
    // a 4 MiB put past the budget.
    let mut held = 0usize;
    let mut admitting: Option<Admitting> = None;
    let mut share: Option<(Admitted, usize)> = None;
    // When the request being admitted announced its length, and how long it waited for its
    // share (counted against its timeout; reading its body is not).
    let mut announced = tokio::time::Instant::now();
    let mut waited = Duration::ZERO;
    // Whether the client may still send: one that shut down its side of the connection at a
    // frame's end still reads the replies to what it sent.
    let mut reading = true;
    let mut closing = ctx.closing.clone();
    // The node stops: it stopped reading, and says so once it has answered what it read.
    let mut stopping = false;
    // The connection's slot went to a client of another address (see `slots`): as when the node
    // stops, once it has answered what it read. `asked`: the word came (or cannot any more).
    let mut slot_given_up = false;
    let mut asked = false;
    // The driver stopped with a request of this connection taken and unanswered: it may have
    // been applied, which an `Unavailable` reply would deny (it means that nothing was
    // written). Once the other replies are written, the client hears what a lost connection
    // tells: maybe applied.
    let mut gone = false;
    loop {
        if !reading && in_flight.is_empty() {
            if gone {
                refuse::<NodeFrame, _>(&mut conn, "node shutting down").await;
            } else if slot_given_up {
                tracing::debug!(%addr, "client connection gave its slot to another address");
                refuse::<NodeFrame, _>(&mut conn, SLOT_GIVEN_UP).await;
            } else if stopping {
                refuse::<NodeFrame, _>(&mut conn, STOPPED_READING).await;
            }
            return;
        }
        let room = in_flight.len() < MAX_IN_FLIGHT
            && (held < ctx.limits.max_request_bytes || in_flight.is_empty());
        let admitted_next = share.is_some();
        tokio::select! {
            incoming = async {
                if admitted_next {
                    Incoming::Frame(conn.recv::<ClientFrame>().await)
                } else {
                    Incoming::Len(conn.next_len().await)
                }
            }, if reading && (admitted_next || (admitting.is_none() && room)) => {
                let (frame, admitted, weight) = match incoming {
                    Incoming::Len(Ok(len)) => {
                        let weight = FRAME_WEIGHT + len;
                        match ctx.requests.try_admit(weight) {
                            Some(admitted) => {
                                waited = Duration::ZERO;
                                share = Some((admitted, weight));
                            }
                            None => {
                                // Only a request that waits reads the clock.
                                announced = tokio::time::Instant::now();
                                admitting = Some(Admitting::new(&ctx.requests, weight));
                            }
                        }
                        continue;
                    }
                    Incoming::Frame(Ok(frame @ (ClientFrame::Request { .. } | ClientFrame::Admin { .. }))) => {
                        let Some((admitted, weight)) = share.take() else {
                            continue;
                        };
                        (frame, admitted, weight)
                    }
                    Incoming::Frame(Ok(ClientFrame::Error { reason })) => {
                        let reason = excerpt(&reason);
                        tracing::debug!(%addr, %reason, "client closed the connection");
                        return;
                    }
                    Incoming::Len(Err(FrameError::Closed)) => {
                        reading = false;
                        continue;
                    }
                    Incoming::Frame(Err(FrameError::Closed)) => return,
                    // Not idle while a reply is owed: the client waits for it (and an idle
                    // close then tells it that nothing it sent since its last reply was read).
                    Incoming::Len(Err(FrameError::Idle(_))) if !in_flight.is_empty() => {
                        conn.touch();
                        continue;
                    }
                    Incoming::Len(Err(e)) | Incoming::Frame(Err(e)) => {
                        read_failed::<NodeFrame, _>(&mut conn, addr, e).await;
                        return;
                    }
                };
                // Read as the node began to stop (this arm won the race with the one below): not
                // taken, and said so once the replies owed are written.
                if *closing.borrow() {
                    reading = false;
                    stopping = true;
                    continue;
                }
                held += weight;
                match frame {
                    ClientFrame::Request { id, request } => {
                        let (tx, rx) = oneshot::channel();
                        // The bytes go with the request: the driver gives them back when it is
                        // done with it, whether or not this connection is still there.
                        let reply = super::Replier::new(tx, Some(admitted));
                        match within_timeout(request, waited, ctx.request_timeout) {
                            Ok(request) => {
                                if ctx.inputs.send(Input::Client { request, reply }).await.is_err() {
                                    // The driver stopped: not taken. The replies it gave the
                                    // requests before are written first.
                                    held -= weight;
                                    reading = false;
                                    stopping = true;
                                    continue;
                                }
                            }
                            Err(turned_down) => {
                                let _ = reply.send(turned_down);
                            }
                        }
                        in_flight.push(futures::future::Either::Left(async move {
                            // `None`: the driver stopped with the request taken (see `gone`).
                            let frame = rx.await.ok().map(|reply| NodeFrame::Reply { id, reply });
                            (weight, frame)
                        }));
                    }
                    ClientFrame::Admin { id, request } => {
                        let (tx, rx) = oneshot::channel();
                        if ctx.inputs.send(Input::Admin { request, reply: tx }).await.is_err() {
                            held -= weight;
                            reading = false;
                            stopping = true;
                            continue;
                        }
                        in_flight.push(futures::future::Either::Right(async move {
                            let frame = rx.await.ok().map(|reply| NodeFrame::AdminReply { id, reply });
                            drop(admitted);
                            (weight, frame)
                        }));
                    }
                    // Only requests are admitted.
                    ClientFrame::Error { .. } => {}
                }
            }
            // The node stops: what was read is answered (the driver flushes it first), nothing
            // more is read.
            _ = closed(&mut closing), if reading => {
                reading = false;
                stopping = true;
                // A share still awaited would go unused: out of the queue.
                admitting = None;
                continue;
            }
            word = &mut given_up, if reading && !asked => {
                asked = true;
                if word.is_ok() {
                    reading = false;
                    slot_given_up = true;
                    admitting = None;
                }
                continue;
            }
            // Not once the connection stopped reading (its wait is dropped then).
            (admitted, weight) = async {
                match admitting.as_mut() {
                    Some(a) => a.wait().await,
                    None => std::future::pending().await,
                }
            }, if reading => {
                admitting = None;
                let Some(admitted) = admitted else {
                    refuse::<NodeFrame, _>(&mut conn, "node shutting down").await;
                    return;
                };
                // The rest of the frame has the whole read timeout from now.
                conn.resume();
                waited = announced.elapsed();
                share = Some((admitted, weight));
            }
            Some((weight, frame)) = in_flight.next() => {
                held -= weight;
                let Some(frame) = frame else {
                    gone = true;
                    reading = false;
                    continue;
                };
                let mut last = queue_reply(&mut conn, addr, frame);
                // Write, taking the replies that complete meanwhile (a flush cut short goes on
                // where it stopped): they wait as bytes, counted against the limits, not as
                // replies nobody looks at.
                loop {
                    let Some(closing) = last else { return };
                    if let Some(reason) = unsent.hold(conn.unsent(), &ctx.limits) {
                        let held = conn.unsent();
                        tracing::warn!(%addr, unsent = held, "client reads its replies too slowly; closing");
                        refuse::<NodeFrame, _>(&mut conn, &reason).await;
                        return;
                    }
                    tokio::select! {
                        biased;
                        written = conn.flush() => {
                            if written.is_err() {
                                return;
                            }
                            if closing {
                                close_gently(&mut conn).await;
                                return;
                            }
                            unsent.hold(conn.unsent(), &ctx.limits);
                            break;
                        }
                        Some((weight, frame)) = in_flight.next(), if !closing => {
                            held -= weight;
                            match frame {
                                Some(frame) => last = queue_reply(&mut conn, addr, frame),
                                None => {
                                    gone = true;
                                    reading = false;
                                }
                            }
                        }
                        reason = unsent.told(&ctx.limits) => {
                            tracing::warn!(%addr, unsent = conn.unsent(), "client holds the most unread replies; closing");
                            refuse::<NodeFrame, _>(&mut conn, &reason).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// What a client frame weighs against the request budgets beyond its size: the bookkeeping of
/// the request it carries.
const FRAME_WEIGHT: usize = 64;

/// `request`, which waited `waited` for the request budget, with only what is left of the
/// timeout it names; or, once none is left (of the node's `default` if it names none), the
/// answer that turns it down: nothing was applied, and its client, which waits about as long
/// before it sends the request to another node, may have done so already. A timeout the node
/// refuses anyway (zero, past the most it takes) is left for the node to refuse.
pub(crate) fn within_timeout(
    mut request: ClientRequest,
    waited: Duration,
    default: Duration,
) -> Result<ClientRequest, ClientReply> {
    let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    if waited_ms == 0 {
        return Ok(request);
    }
    let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    let options = request.options_mut();
    let timeout = match options.timeout {
        // As the node's own check (`check_limits`): the most it takes is the larger of the two.
        Some(t) if t == 0 || t > crate::core::MAX_REQUEST_TIMEOUT.max(default) => {
            return Ok(request)
        }
        Some(t) => t,
        None => default,
    };
    match timeout.checked_sub(waited_ms) {
        Some(left) if left > 0 => {
            // A request that names none keeps the node's, which its client outwaits.
            if options.timeout.is_some() {
                options.timeout = Some(left);
            }
            Ok(request)
        }
        _ => Err(ClientReply::Failed(ClientError::Unavailable(format!(
            "the request waited {waited_ms} ms for this node's request budget, past its \
             timeout of {timeout} ms: not applied"
        )))),
    }
}

/// What a client connection read next: the size of a frame not yet admitted, or an admitted frame.
enum Incoming {
    Len(Result<usize, FrameError>),
    Frame(Result<ClientFrame, FrameError>),
}

/// A client frame whose length prefix has arrived, waiting for its share of the node-wide budget
/// before its body is read.
struct Admitting {
    wait: futures::future::BoxFuture<'static, Option<Admitted>>,
    weight: usize,
}

impl Admitting {
    fn new(budget: &RequestBudget, weight: usize) -> Self {
        let budget = budget.clone();
        Admitting {
            wait: Box::pin(async move { budget.admit(weight).await }),
            weight,
        }
    }

    /// The frame's share (`None`: the node is stopping) and its weight, once admitted. Cancel
    /// safe: dropped unfinished, the frame keeps its place in the queue.
    async fn wait(&mut self) -> (Option<Admitted>, usize) {
        let admitted = (&mut self.wait).await;
        (admitted, self.weight)
    }
}

/// Encodes a reply into the connection's write buffer: `Some(true)` when it is the last frame
/// (an error frame, after which the connection closes), `None` when nothing could be queued.
fn queue_reply<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    addr: SocketAddr,
    frame: NodeFrame,
) -> Option<bool> {
    let last = matches!(frame, NodeFrame::Error { .. });
    if let Err(e) = conn.feed(&frame) {
        // A reply that cannot be encoded (or is too large) fails its request alone if it applied
        // nothing (a refusal, or a read): `Unavailable` sends the client to the next node. Any
        // other (a write's answer: stored, or failed after some replica may have stored it)
        // ends the connection with an error, which a client takes for "may have been applied".
        tracing::warn!(%addr, error = %e, "cannot send a reply");
        let reason = format!("reply not sent: {e}");
        let (failed, ends) = match frame {
            NodeFrame::Reply { id, reply } if applied_nothing(&reply) => (
                NodeFrame::Reply {
                    id,
                    reply: ClientReply::Failed(ClientError::Unavailable(reason)),
                },
                false,
            ),
            _ => (NodeFrame::Error { reason }, true),
        };
        conn.feed(&failed).ok()?;
        return Some(ends);
    }
    Some(last)
}

/// Whether `reply` says that its request changed nothing: a read's answer, or a refusal.
fn applied_nothing(reply: &ClientReply) -> bool {
    match reply {
        ClientReply::Got { .. } => true,
        ClientReply::Failed(e) => e.applied_nothing(),
        _ => false,
    }
}

mod budget;
mod handshakes;
#[cfg(test)]
mod tests;
mod unsent;
