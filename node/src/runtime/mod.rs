//! The tokio runtime: runs a [`NodeCore`](crate::core::NodeCore) on real TCP with durable storage.
//!
//! ```text
//!  listener ──▶ connection tasks ──┐                       ┌──▶ peer links (bounded queues,
//!  (handshake, frames)             ├─▶ inputs (mpsc) ─▶ driver task ─┤      batched writes, backoff)
//!  peer links: "unreachable" ──────┘     owns NodeCore      └──▶ client replies (oneshot)
//! ```
//!
//! One task, the driver, owns the core. Everything else talks to it through one channel of
//! inputs. After each batch of inputs (whatever is queued, up to [`MAX_BATCH`]) the driver
//! flushes the store *once* (group commit), then sends what the core produced: messages to the
//! peers' queues, replies to the waiting connections. So no acknowledgement leaves before the
//! write it acknowledges is durable, and one fsync covers many writes. The timer fires at
//! [`NodeCore::poll_timeout`](crate::core::NodeCore::poll_timeout).
//!
//! Time given to the core is wall-clock milliseconds at start plus a monotonic clock since, so it
//! never goes backwards within a run and grows across restarts (the core derives its gossip
//! generation from it).
//!
//! [`Node::start`] starts a node; [`Node::shutdown`] stops it gracefully and [`Node::kill`] stops
//! it abruptly (for tests).

mod delay;
mod driver;
mod engine;
pub mod frame;
pub mod handshake;
pub mod identity;
mod peers;
mod refreshed;
pub(crate) mod server;
pub(crate) mod slots;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use delay::LinkDelay;
pub use engine::{open_store, AnyStore, Engine};
pub use frame::{
    AdminReply, AdminRequest, ClientFrame, Handshake, NodeFrame, PeerFrame, RangeInfo, Role,
    DEFAULT_MAX_CLIENT_FRAME, DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
pub use handshake::{Credentials, HandshakeError, NodeSecrets};
pub use server::ConnectionLimits;
pub(crate) use server::{within_timeout, Admitted, RequestBudget, UnsentBytes, UnsentShare};

use crate::config::NodeConfig;
use crate::core::{NodeError, StoredCore};
use crate::message::{ClientReply, ClientRequest, PeerMessage};
use crate::redb_store::Durability;
use crate::store::{MemoryStore, Store as _, StoreError};
use crate::types::NodeId;

/// Most inputs handled between two flushes.
pub const MAX_BATCH: usize = 1024;
/// Capacity of the driver's input channel.
const INPUT_CAPACITY: usize = 16 * 1024;

/// Where a client request's reply goes, with the request's share of the node's request budget
/// ([`server::RequestBudget`]): given back when the driver is done with the request (answered
/// it, or dropped it), not when the client goes away.
#[derive(Debug)]
pub(crate) struct Replier {
    tx: oneshot::Sender<ClientReply>,
    _admitted: Option<server::Admitted>,
}

impl Replier {
    /// A reply channel holding `admitted` until the reply is sent.
    pub(crate) fn new(
        tx: oneshot::Sender<ClientReply>,
        admitted: Option<server::Admitted>,
    ) -> Self {
        Replier {
            tx,
            _admitted: admitted,
        }
    }

    /// Sends the reply (and gives the request's bytes back); the reply again if nobody waits.
    pub(crate) fn send(self, reply: ClientReply) -> Result<(), ClientReply> {
        self.tx.send(reply)
    }
}

impl From<oneshot::Sender<ClientReply>> for Replier {
    fn from(tx: oneshot::Sender<ClientReply>) -> Self {
        Replier::new(tx, None)
    }
}

/// What the driver is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// A message from a peer.
    Peer { from: NodeId, msg: PeerMessage },
    /// A client request and where its reply goes.
    Client {
        request: ClientRequest,
        reply: Replier,
    },
    /// An admin request and where its reply goes.
    Admin {
        request: AdminRequest,
        reply: oneshot::Sender<AdminReply>,
    },
    /// A snapshot of the node's status and request metrics (for `/metrics`).
    #[cfg(feature = "http")]
    Metrics {
        reply: oneshot::Sender<Box<MetricsSnapshot>>,
    },
    /// A link to a peer broke: what was in flight may or may not have arrived.
    Unreachable(NodeId),
    /// A link certainly did not deliver these messages (connection refused, backing off).
    Undelivered(NodeId, Vec<PeerMessage>),
    /// A link replaced (its peer's address changed) had not sent these: they go again, on the
    /// peer's current link.
    Resend(NodeId, Vec<PeerMessage>),
    /// Stop after flushing.
    Shutdown,
}

/// How long a stopping node's client connections may take to write the replies they owe (a
/// client that does not read them is given up).
pub const REPLY_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Room a client frame keeps for its encoding beyond a put's key, value, context and content
/// type (see [`RuntimeConfig::client_frame`]).
const CLIENT_FRAME_ROOM: usize = 4 << 10;

/// Room a peer frame keeps beyond a key's versions or value (see [`RuntimeConfig::peer_frame`]).
const PEER_FRAME_ROOM: usize = 1 << 20;

/// What the driver reports for `/metrics`.
#[cfg(feature = "http")]
#[derive(Debug)]
pub(crate) struct MetricsSnapshot {
    /// The node's status (counters, members, staleness predictions).
    pub status: crate::core::NodeStatus,
    /// Client requests by operation and outcome.
    pub requests: crate::core::RequestMetrics,
}

/// How to run a node.
///
/// Not `Clone`: it may own a bound [`listener`](RuntimeConfig::listener).
#[derive(Debug)]
pub struct RuntimeConfig {
    /// The node's id.
    pub id: NodeId,
    /// Address to listen on (`127.0.0.1:0` picks a free port). Ignored when
    /// [`listener`](RuntimeConfig::listener) is given.
    pub listen: String,
    /// A listener already bound, which the node accepts on instead of binding `listen`.
    ///
    /// Binding first lets the caller know every node's address before any node starts, without
    /// releasing the port in between (a released port can be taken by anyone): tests bind all
    /// their listeners on `127.0.0.1:0`, write the addresses into the seed lists, then hand each
    /// listener to its node. Connections made to it before the node starts wait in its backlog.
    /// Default `None`.
    pub listener: Option<std::net::TcpListener>,
    /// Address other nodes reach this one at (default: the address actually bound).
    pub advertise: Option<String>,
    /// The core's configuration (cluster name, N/R/W, seeds, initial members...).
    pub node: NodeConfig,
    /// The secret nodes prove to each other (clients never hold it).
    pub peer_secret: Vec<u8>,
    /// The secret clients prove. Must differ from the peer secret.
    pub client_secret: Vec<u8>,
    /// Encrypt connections after the handshake (default on). Off only for benchmarks: every node
    /// and client of a cluster must agree, or their handshakes are refused.
    pub encrypt: bool,
    /// Data directory: with one, the store is on disk (see [`storage`](RuntimeConfig::storage));
    /// without, in memory (lost at stop).
    pub data_dir: Option<PathBuf>,
    /// The storage engine of the data directory: `None` (the default) takes the engine whose
    /// files the directory holds, or [`Engine::default`] for a new one. A named engine that
    /// differs from the directory's is refused.
    pub storage: Option<Engine>,
    /// Durable (fsync before acknowledging) or buffered writes.
    pub durability: Durability,
    /// Largest frame accepted from a peer, or sent to a peer or a client (raised to fit the
    /// largest version set a replica keeps of a key, N times `node.max_siblings_size`, and a
    /// forwarded value: see [`RuntimeConfig::peer_frame`]).
    pub max_frame: usize,
    /// Largest frame accepted from a client (raised to fit the largest put: see
    /// [`RuntimeConfig::client_frame`]).
    pub max_client_frame: usize,
    /// Connection caps and timeouts.
    pub limits: ConnectionLimits,
    /// Capacity of each peer's outbound queue (messages); a full queue fails requests.
    pub peer_queue: usize,
    /// Seed of the core's randomness (default: random).
    pub seed: Option<u64>,
    /// This node's certified key pair (per-node credentials, see [`identity`]).
    pub identity: Option<identity::NodeIdentity>,
    /// The cluster authority's public key: with it, every peer must prove the certified key of
    /// its id (and this node needs an `identity`).
    pub authority: Option<[u8; 32]>,
    /// Delay injected into every message to a peer, for experiments on one machine (see
    /// [`LinkDelay`]). Default `None`.
    pub link_delay: Option<LinkDelay>,
    /// The HTTP API ([`crate::http`]): `None` (the default here) serves none.
    #[cfg(feature = "http")]
    pub http: Option<crate::http::HttpConfig>,
}

impl RuntimeConfig {
    /// The largest frame between peers: `max_frame`, raised to fit every message a key can make
    /// (a replica write, read reply, hand-over or anti-entropy entry of the versions a replica
    /// keeps of one key, at most N times `node.max_siblings_size`; a forwarded put of a value of
    /// `node.max_value_size`), with room for keys, clocks and framing. A smaller limit dropped
    /// such a message at the link: the write timed out, and no repair could ever carry the key.
    #[must_use]
    pub fn peer_frame(&self) -> usize {
        let node = &self.node;
        let key = node
            .max_siblings_size
            .saturating_mul(node.n)
            .max(node.max_value_size);
        self.max_frame.max(key.saturating_add(PEER_FRAME_ROOM))
    }

    /// The largest frame accepted from a client: `max_client_frame`, raised to fit the largest
    /// put the node takes (a value of `node.max_value_size` with a key and a context at their
    /// limits, a content type, and room for the frame's encoding).
    pub fn client_frame(&self) -> usize {
        let node = &self.node;
        let put = node
            .max_value_size
            .saturating_add(node.max_key_size)
            .saturating_add(node.max_context_size)
            .saturating_add(crate::message::MAX_CONTENT_TYPE)
            .saturating_add(CLIENT_FRAME_ROOM);
        self.max_client_frame.max(put)
    }

    /// A configuration with defaults: memory store, listen on `127.0.0.1:0`.
    pub fn new(
        id: NodeId,
        node: NodeConfig,
        peer_secret: impl Into<Vec<u8>>,
        client_secret: impl Into<Vec<u8>>,
    ) -> Self {
        RuntimeConfig {
            id,
            listen: "127.0.0.1:0".into(),
            listener: None,
            advertise: None,
            node,
            peer_secret: peer_secret.into(),
            client_secret: client_secret.into(),
            encrypt: true,
            data_dir: None,
            storage: None,
            durability: Durability::Durable,
            max_frame: DEFAULT_MAX_FRAME,
            max_client_frame: DEFAULT_MAX_CLIENT_FRAME,
            limits: ConnectionLimits::default(),
            peer_queue: 4096,
            seed: None,
            identity: None,
            authority: None,
            link_delay: None,
            #[cfg(feature = "http")]
            http: None,
        }
    }
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The store could not be opened or failed.
    #[error("storage: {0}")]
    Store(StoreError),
    /// The core refused to start.
    #[error("node: {0}")]
    Node(NodeError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        reason: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The driver task ended abnormally.
    #[error("node task failed: {0}")]
    Task(String),
}

from_cause!(RuntimeError, RuntimeError::Store, StoreError);
from_cause!(RuntimeError, RuntimeError::Node, NodeError);

/// The driver's clock: wall-clock milliseconds at start, then monotonic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: u64,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        let origin = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            origin,
            start: tokio::time::Instant::now(),
        }
    }

    /// Now, in core milliseconds.
    pub(crate) fn now(&self) -> u64 {
        self.at(tokio::time::Instant::now())
    }

    /// The instant `at`, in core milliseconds.
    pub(crate) fn at(&self, at: tokio::time::Instant) -> u64 {
        self.origin + at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// The instant of core time `t`.
    pub(crate) fn instant_at(&self, t: u64) -> tokio::time::Instant {
        self.start + Duration::from_millis(t.saturating_sub(self.origin))
    }
}

/// A running node. Dropping it aborts its tasks (like [`Node::kill`], without waiting).
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    addr: SocketAddr,
    inputs: mpsc::Sender<Input>,
    driver: Option<JoinHandle<Result<(), RuntimeError>>>,
    server: Option<JoinHandle<()>>,
    /// Tells the server that the node stops ([`server::ServerContext::closing`]).
    closing: tokio::sync::watch::Sender<bool>,
    /// The HTTP API's address and task.
    http: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Node {
    /// Opens the store, binds the listener (or takes [`RuntimeConfig::listener`]) and starts the
    /// node's tasks. Must be called inside a tokio runtime.
    pub async fn start(mut config: RuntimeConfig) -> Result<Node, RuntimeError> {
        if config.peer_secret.is_empty() || config.client_secret.is_empty() {
            return Err(RuntimeError::Config(
                "the peer secret and the client secret must not be empty".into(),
            ));
        }
        if config.peer_secret == config.client_secret {
            return Err(RuntimeError::Config(
                "the peer secret must differ from the client secret: a client holding it could pose as a node".into(),
            ));
        }
        match (&config.authority, &config.identity) {
            (Some(authority), Some(identity)) => {
                if identity.id != config.id {
                    return Err(RuntimeError::Config(format!(
                        "the node credential is node {}'s, this is node {}",
                        identity.id, config.id
                    )));
                }
                identity
                    .certificate
                    .verify(authority, &config.node.cluster, config.id)
                    .map_err(|e| RuntimeError::Config(format!("node credential: {e}")))?;
            }
            (Some(_), None) => {
                return Err(RuntimeError::Config(
                    "an authority is set but this node has no node credential".into(),
                ))
            }
            (None, _) => {}
        }
        let store = match &config.data_dir {
            Some(dir) => open_store(dir, config.storage, config.durability)?,
            None => AnyStore::Memory(MemoryStore::new()),
        };
        if let Some(authority) = &config.authority {
            check_authority(&store, authority)?;
        }
        let (listener, wanted) = match config.listener.take() {
            Some(listener) => {
                let wanted = listener
                    .local_addr()
                    .map_or_else(|_| "a given listener".into(), |a| a.to_string());
                (adopt(listener), wanted)
            }
            None => (
                TcpListener::bind(&config.listen).await,
                config.listen.clone(),
            ),
        };
        let listener = listener.map_err(|reason| RuntimeError::Bind {
            address: wanted.clone(),
            reason,
        })?;
        let addr = listener.local_addr().map_err(|reason| RuntimeError::Bind {
            address: wanted,
            reason,
        })?;
        let has_peers = config.node.seeds.iter().any(|(id, _)| *id != config.id)
            || config.node.initial_members.iter().any(|&m| m != config.id);
        if config.advertise.is_none() && addr.ip().is_unspecified() && has_peers {
            return Err(RuntimeError::Config(format!(
                "listening on {addr}, an address other nodes cannot reach this node at: give the \
                 one they can (--advertise HOST:PORT, or `advertise` in the configuration file)"
            )));
        }
        let address = config.advertise.clone().unwrap_or_else(|| addr.to_string());
        let clock = Clock::new();
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut core = StoredCore::new(
            config.id,
            address.clone(),
            config.node.clone(),
            store,
            clock.now(),
            seed,
        )?;
        // Contexts handed to clients carry a tag only nodes can make (see `core::ContextSeal`).
        core.set_context_seal(crate::core::ContextSeal::from_secret(&config.peer_secret));
        if let Some(authority) = &config.authority {
            // Once the node's own checks passed: a directory refused for another reason (another
            // node's, another format) keeps no mark of a configuration that never ran on it.
            mark_authority(core.store_mut(), authority)?;
        }
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        let requests = server::RequestBudget::new(config.limits.max_request_bytes_total);
        let secrets = NodeSecrets {
            cluster: config.node.cluster.clone(),
            peer_secret: config.peer_secret.clone(),
            client_secret: config.client_secret.clone(),
            identity: config.identity.clone(),
            authority: config.authority,
        };
        let link_ctx = peers::LinkContext {
            creds: Credentials {
                cluster: config.node.cluster.clone(),
                secret: config.peer_secret.clone(),
                identity: config.identity.clone(),
                authority: config.authority,
            },
            encrypt: config.encrypt,
            me: config.id,
            my_address: address,
            generation: Arc::new(AtomicU64::new(core.generation())),
            max_frame: config.peer_frame(),
            idle: config.limits.idle_timeout / 2,
            write_timeout: config.limits.read_timeout,
            inputs: tx.clone(),
        };
        // Replies not yet written, over every client connection (TCP and HTTP).
        let unsent: std::sync::Arc<UnsentBytes> = std::sync::Arc::default();
        // Set when the node stops (see `Node::shutdown`).
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        #[cfg(feature = "http")]
        let http = match config.http.take() {
            Some(http) => Some(
                crate::http::start(
                    http,
                    crate::http::NodeInfo {
                        cluster: config.node.cluster.clone(),
                        client_secret: config.client_secret.clone(),
                        max_value_size: config.node.max_value_size,
                        max_head: crate::http::max_head(&config.node),
                        request_timeout: Duration::from_millis(config.node.request_timeout),
                        data_dir: config.data_dir.clone(),
                        limits: config.limits,
                        requests: requests.clone(),
                        unsent: std::sync::Arc::clone(&unsent),
                    },
                    tx.clone(),
                    closing.clone(),
                )
                .await?,
            ),
            None => None,
        };
        #[cfg(not(feature = "http"))]
        let http = None;
        let delay = config
            .link_delay
            .map(|d| delay::DelaySource::new(d, seed ^ 0xde1a));
        let driver = driver::Driver::new(core, clock, link_ctx, config.peer_queue, delay);
        let driver = tokio::spawn(driver.run(rx));
        let server = tokio::spawn(server::serve(
            listener,
            server::ServerContext {
                secrets,
                encrypt: config.encrypt,
                id: config.id,
                max_frame: config.peer_frame(),
                max_client_frame: config.client_frame(),
                limits: config.limits,
                inputs: tx.clone(),
                unsent,
                requests,
                request_timeout: std::time::Duration::from_millis(config.node.request_timeout),
                closing,
            },
        ));
        match &http {
            Some((http_addr, _)) => {
                tracing::info!(id = config.id, %addr, http = %http_addr, "node started")
            }
            None => tracing::info!(id = config.id, %addr, "node started"),
        }
        Ok(Node {
            id: config.id,
            addr,
            inputs: tx,
            driver: Some(driver),
            server: Some(server),
            closing: closing_tx,
            http,
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the HTTP API listens on, if the node serves one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(addr, _)| *addr)
    }

    /// Waits until the node stops by itself (a storage failure) and says why.
    pub async fn wait(&mut self) -> Result<(), RuntimeError> {
        match self.driver.as_mut() {
            Some(d) => {
                let r = d.await;
                self.driver = None;
                flatten(r)
            }
            None => Ok(()),
        }
    }

    /// Stops accepting connections and requests (TCP and HTTP), lets the driver flush and stop,
    /// and waits for it; then lets the client connections write the replies the driver gave them
    /// (for up to [`REPLY_DRAIN`]): every request the node applied is answered.
    pub async fn shutdown(mut self) -> Result<(), RuntimeError> {
        let _ = self.closing.send(true);
        let _ = self.inputs.send(Input::Shutdown).await;
        let stopped = match self.driver.take() {
            Some(d) => flatten(d.await),
            None => Ok(()),
        };
        let deadline = tokio::time::Instant::now() + REPLY_DRAIN;
        let tasks = [self.http.take().map(|(_, h)| h), self.server.take()];
        for mut task in tasks.into_iter().flatten() {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        stopped
    }

    /// Stops the node abruptly: every task is aborted, nothing more is sent. Returns once the
    /// tasks are gone (and the data directory is free again).
    pub async fn kill(mut self) {
        if let Some((_, h)) = self.http.take() {
            h.abort();
            let _ = h.await;
        }
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
        if let Some(d) = self.driver.take() {
            d.abort();
            let _ = d.await;
        }
    }
}

/// A listener bound elsewhere, made ready for tokio (which needs it non-blocking).
pub(crate) fn adopt(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn flatten(
    r: Result<Result<(), RuntimeError>, tokio::task::JoinError>,
) -> Result<(), RuntimeError> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(RuntimeError::Task(e.to_string())),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((_, h)) = self.http.take() {
            h.abort();
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
        if let Some(d) = self.driver.take() {
            d.abort();
        }
    }
}

/// The store's meta key holding the public key of the authority of the cluster whose node wrote
/// the data directory.
const META_AUTHORITY: &str = "authority";

/// Refuses a data directory that a node of another cluster wrote (another authority: a second
/// `dynamo init` makes one), whose ring, members and keys this node would gossip into its own
/// cluster. (A node without an authority checks nothing: the cluster name and secrets of a
/// cluster configured by flags say too little to tell two clusters apart.)
fn check_authority(store: &AnyStore, authority: &[u8; 32]) -> Result<(), RuntimeError> {
    match store.get_meta(META_AUTHORITY)? {
        Some(stored) if stored.as_slice() != authority.as_slice() => {
            Err(RuntimeError::Config(format!(
                "the data directory belongs to the cluster of authority {}, not this node's {}: \
                 start it on an empty data directory (anti-entropy and transfers fill it), or \
                 with that cluster's configuration",
                identity::hex(&stored),
                identity::hex(authority)
            )))
        }
        _ => Ok(()),
    }
}

/// Marks a data directory without a mark (new, or written before the mark existed) as this
/// authority's cluster's (see [`check_authority`]).
fn mark_authority(store: &mut AnyStore, authority: &[u8; 32]) -> Result<(), RuntimeError> {
    if store.get_meta(META_AUTHORITY)?.is_none() {
        store.put_meta(META_AUTHORITY, authority)?;
    }
    Ok(())
}

/// The ring as a list of ranges and their replicas (for [`AdminRequest::Ring`]).
pub(crate) fn ring_info(ring: &dynamo_ring::Ring<NodeId>) -> Vec<RangeInfo> {
    (0..ring.range_count())
        .filter_map(|i| {
            let range = ring.range(i)?;
            let replicas = ring
                .preference_list_for_range(i)?
                .primaries()
                .copied()
                .collect();
            Some(RangeInfo {
                index: i,
                start: range.start.to_string(),
                end: range.end.to_string(),
                fraction: range.fraction(),
                replicas,
            })
        })
        .collect()
}
