//! An async Rust client for a Dynamo cluster.
//!
//! The client knows a list of node addresses and talks to one at a time (any node coordinates
//! any request). When that node does not answer (connection refused or lost, no reply in time),
//! the request goes to the next node of the list. A put or delete sent to a node that then gave
//! no answer may have been applied there all the same, so a retry may apply it twice: two
//! versions with the same value, siblings, each under its own coordinator's dot. The context the
//! successful try returns covers only its own copy, so a put with it would leave the other one
//! beside it; [`Client::unsure_nodes`] names the nodes that may hold such a copy, and a get's
//! context covers both (a put with it folds them into one).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dynamo_node::client::Error> {
//! use dynamo_node::client::{Client, ClientConfig};
//!
//! let mut client = Client::new(ClientConfig::new(vec!["127.0.0.1:7001".into()], "secret"));
//! let got = client.get(b"cart").await?;              // every concurrent version + context
//! client.put(b"cart", b"milk".to_vec(), &got.context).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::net::TcpStream;

use crate::core::{ChangeError, ChangePlan, ChangeRequest, NodeStatus, PartitionSize};
use crate::message::{ClientError, ClientOptions, ClientReply, ClientRequest};
use crate::runtime::frame::{
    excerpt, handshake_conn, is_unread_close, AdminReply, AdminRequest, ClientFrame, Conn,
    FrameError, NodeFrame, RangeInfo, Role, DEFAULT_MAX_FRAME,
};
use crate::runtime::handshake::{connect, Credentials, HandshakeError};
use crate::types::{NodeId, Value};

/// How to reach a cluster.
#[derive(Clone)]
pub struct ClientConfig {
    /// Node addresses (`host:port`), tried in order.
    pub nodes: Vec<String>,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's client secret.
    pub secret: Vec<u8>,
    /// Encrypt the connection after the handshake (default on); must match the nodes' choice.
    pub encrypt: bool,
    /// How long to wait for a node to connect or answer before trying the next (default 5 s);
    /// for a request that carries a longer timeout of its own (`ClientOptions::timeout`), that
    /// timeout and a second, so that the request is not sent to another node while the first
    /// still works on it. Keep it above the nodes' `request_timeout` (1 s by default), which
    /// applies to requests that carry none.
    pub timeout: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Largest request sent (default the nodes' default client frame limit, 4 MiB): a larger
    /// one is refused before anything is sent ([`Error::TooLarge`]), as every node would refuse
    /// it. Nodes take their `max_client_frame`, or the largest put they take when that is more
    /// (`max_value_size`, `max_key_size` and `max_context_size` together, and 4 KiB): raise this
    /// with them.
    pub max_request: usize,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("nodes", &self.nodes)
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration for the default cluster name (`dynamo`).
    pub fn new(nodes: Vec<String>, secret: impl Into<Vec<u8>>) -> Self {
        ClientConfig {
            nodes,
            cluster: crate::config::NodeConfig::default().cluster,
            secret: secret.into(),
            encrypt: true,
            timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
            max_request: crate::runtime::DEFAULT_MAX_CLIENT_FRAME,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration names no node.
    #[error("no node address given")]
    NoNodes,
    /// Every node refused the connection (wrong secret, cluster, encryption or protocol version;
    /// a node shedding load refuses too, and the client then tries the next): the last refusal.
    // The reason is in the message and not a `source` too, so that a chain printer (anyhow's
    // `{:#}`) does not print it twice.
    #[error("node {address} refused the connection: {reason}")]
    Refused {
        /// The node's address.
        address: String,
        /// What went wrong.
        reason: HandshakeError,
    },
    /// The cluster answered: the request failed.
    #[error("request failed: {0}")]
    Failed(ClientError),
    /// No node answered.
    #[error(
        "no node answered{}: {}",
        if *.sent { " (it may have been applied: read the key before writing it again)" } else { "" },
        .attempts.iter().map(|(a, e)| format!("{a}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    Unavailable {
        /// Each node tried, and what happened (the last try of each).
        attempts: Vec<(String, String)>,
        /// Whether a put or delete may have been applied: some node it reached gave no answer
        /// ([`Client::unsure_nodes`] names them). `false` when no try got as far as sending it
        /// (every connection failed), or every node it reached answered "unavailable" (which
        /// applies nothing).
        sent: bool,
    },
    /// The request is larger than the nodes take ([`ClientConfig::max_request`]): nothing was
    /// sent.
    #[error(
        "the request is {size} bytes, over the {limit} this client sends (max_request; raise it \
         if the nodes take more): nothing was sent"
    )]
    TooLarge {
        /// The request's encoded size.
        size: usize,
        /// [`ClientConfig::max_request`].
        limit: usize,
    },
    /// A node answered with something that is not an answer to the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A membership change was refused.
    #[error("change refused: {0}")]
    Change(ChangeError),
    /// The node could not answer an admin request.
    #[error("the node could not answer: {0}")]
    Admin(String),
}

from_cause!(Error, Error::Failed, ClientError);

impl Error {
    /// Whether a put or delete that failed so may have been applied all the same (by some
    /// replicas, or by a node that gave no answer): read the key before writing it again. A
    /// quorum failure or a timeout may follow replicas that stored it; a refusal before
    /// anything was stored, or a request never sent, applied nothing.
    ///
    /// ```
    /// use dynamo_node::client::Error;
    /// use dynamo_node::ClientError;
    ///
    /// let timed_out = Error::Failed(ClientError::Timeout { acknowledged: 1, required: 2 });
    /// assert!(timed_out.may_have_applied());
    /// let refused = Error::Failed(ClientError::InvalidContext("damaged".into()));
    /// assert!(!refused.may_have_applied());
    /// assert!(!Error::NoNodes.may_have_applied());
    /// ```
    pub fn may_have_applied(&self) -> bool {
        match self {
            Error::Failed(e) => !e.applied_nothing(),
            Error::Unavailable { sent, .. } => *sent,
            Error::Protocol(_) => true,
            _ => false,
        }
    }
}

/// The answer to a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    /// Every concurrent live version (empty: absent or deleted).
    pub values: Vec<Value>,
    /// Opaque context to pass to the next put or delete of the key.
    pub context: Vec<u8>,
    /// Replicas that answered.
    pub replicas: Vec<NodeId>,
    /// The media type of each value (same order), where its writer gave one.
    pub content_types: Vec<Option<String>>,
}

/// A connection to a cluster. See the [module docs](self).
pub struct Client {
    config: ClientConfig,
    conn: Option<(usize, Conn<TcpStream>)>,
    cursor: usize,
    next_id: u64,
    /// Whether an admin request reached the point of being sent (see [`Error::Unavailable`]).
    sent: bool,
    /// Whether the current try sent the request.
    try_sent: bool,
    /// The nodes the last request was sent to that gave no answer ([`Client::unsure_nodes`]).
    unsure: Vec<String>,
    /// A request is queued on the connection and its answer not read: set while a call waits,
    /// still set when the caller dropped the call (a timeout around it, a `select!`). The
    /// connection may then hold the rest of that request, which the next flush would send: the
    /// next call drops the connection instead.
    exchanging: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("connected_to", &self.connected_to())
            .finish()
    }
}

enum Attempt {
    /// Try the next node.
    Next(String),
    /// The connection was closed (by the node, or lost): on a connection made for an earlier
    /// request, the node may have closed it for being idle, so try the same node once more.
    Closed(String),
    /// The node refused the connection: try the next (it may shed load), and report the refusal
    /// if every node refused.
    Refused(Error),
    /// Give up: no node would take the request.
    Fatal(Error),
}

/// How an attempt the node answered `Unavailable` (it wrote nothing) is told.
const UNAVAILABLE: &str = "unavailable: ";

/// How long past a request's own timeout the client waits for the node's answer (the node
/// answers at its deadline; its reply still has to arrive).
const REPLY_GRACE: Duration = Duration::from_secs(1);

impl Client {
    /// A client; it connects on its first request.
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            conn: None,
            cursor: 0,
            next_id: 1,
            sent: false,
            try_sent: false,
            unsure: Vec::new(),
            exchanging: false,
        }
    }

    /// A client connected to the first node that accepts it.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        let mut client = Client::new(config);
        let mut attempts = Attempts::default();
        for _ in 0..client.config.nodes.len().max(1) {
            match client.ensure_connected().await {
                Ok(()) => return Ok(client),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(failed) => {
                    attempts.push(client.current_address(), failed);
                    client.advance();
                }
            }
        }
        if client.config.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        Err(attempts.error(false))
    }

    /// The nodes the last request was sent to that gave no answer before another node answered
    /// (or the request failed), in the order tried: each may have applied it all the same. After
    /// a put or delete that succeeded, a node named here may hold a second copy, a sibling the
    /// returned context does not cover; a get's context covers both. (A node that answered that
    /// it was unavailable wrote nothing and is not named.)
    pub fn unsure_nodes(&self) -> &[String] {
        &self.unsure
    }

    /// The current node may have applied the request without answering.
    fn note_unsure(&mut self) {
        let address = self.current_address();
        if !self.unsure.contains(&address) {
            self.unsure.push(address);
        }
    }

    /// The address of the node the client is connected to.
    pub fn connected_to(&self) -> Option<&str> {
        let (i, _) = self.conn.as_ref()?;
        self.config.nodes.get(*i).map(String::as_str)
    }

    /// Every concurrent version of `key`, and the context for the next write.
    pub async fn get(&mut self, key: &[u8]) -> Result<GetResult, Error> {
        self.get_with(key, ClientOptions::default()).await
    }

    /// [`Client::get`] with per-request options (R, timeout, strict quorum).
    pub async fn get_with(
        &mut self,
        key: &[u8],
        options: ClientOptions,
    ) -> Result<GetResult, Error> {
        let request = ClientRequest::Get {
            key: key.to_vec(),
            options,
        };
        match self.request(request).await? {
            ClientReply::Got {
                values,
                context,
                replicas,
                content_types,
            } => Ok(GetResult {
                values,
                context,
                replicas,
                content_types,
            }),
            other => Err(Error::Protocol(format!(
                "unexpected answer to a get: {other:?}"
            ))),
        }
    }

    /// Writes `value`, superseding the versions `context` (from a get) names; returns the new
    /// version's context. An empty context writes concurrently with whatever is stored.
    pub async fn put(
        &mut self,
        key: &[u8],
        value: Value,
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.put_with(key, value, context, ClientOptions::default())
            .await
    }

    /// [`Client::put`] with per-request options.
    pub async fn put_with(
        &mut self,
        key: &[u8],
        value: Value,
        context: &[u8],
        options: ClientOptions,
    ) -> Result<Vec<u8>, Error> {
        let request = ClientRequest::Put {
            key: key.to_vec(),
            value,
            context: context.to_vec(),
            options,
            content_type: None,
        };
        self.stored(request).await
    }

    /// Deletes `key` (a tombstone superseding what `context` names); returns the new context.
    pub async fn delete(&mut self, key: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let request = ClientRequest::Delete {
            key: key.to_vec(),
            context: context.to_vec(),
            options: ClientOptions::default(),
        };
        self.stored(request).await
    }

    /// The status of the node the client is connected to.
    pub async fn status(&mut self) -> Result<NodeStatus, Error> {
        match self.admin(AdminRequest::Status).await? {
            AdminReply::Status(s) => Ok(*s),
            other => Err(Error::Protocol(format!(
                "unexpected answer to status: {other:?}"
            ))),
        }
    }

    /// The ring as the connected node sees it.
    pub async fn ring(&mut self) -> Result<Vec<RangeInfo>, Error> {
        match self.admin(AdminRequest::Ring).await? {
            AdminReply::Ring(r) => Ok(r),
            other => Err(Error::Protocol(format!(
                "unexpected answer to ring: {other:?}"
            ))),
        }
    }

    /// Asks the connected node (the first of `nodes` when none is) to leave the cluster. The
    /// request never moves to another node: if that one does not answer, it fails
    /// ([`Error::Unavailable`]); a leave the node refuses is [`Error::Change`] (the ring would
    /// keep fewer than N nodes).
    pub async fn leave(&mut self) -> Result<(), Error> {
        match self.admin_here(AdminRequest::Leave).await? {
            AdminReply::Leaving => Ok(()),
            AdminReply::ChangeRefused(e) => Err(Error::Change(e)),
            other => Err(Error::Protocol(format!(
                "unexpected answer to leave: {other:?}"
            ))),
        }
    }

    /// What a membership change would do, as the connected node computes it.
    pub async fn plan(&mut self, change: ChangeRequest) -> Result<ChangePlan, Error> {
        self.change(AdminRequest::Plan(change)).await
    }

    /// Commits a membership change planned at ring `version` (send it to the claimant).
    pub async fn commit(
        &mut self,
        version: u64,
        change: ChangeRequest,
    ) -> Result<ChangePlan, Error> {
        self.change(AdminRequest::Commit { version, change }).await
    }

    /// Keys and bytes the connected node holds per range.
    pub async fn partition_sizes(&mut self) -> Result<Vec<PartitionSize>, Error> {
        match self.admin(AdminRequest::PartitionSizes).await? {
            AdminReply::PartitionSizes(sizes) => Ok(sizes),
            AdminReply::Failed(why) => Err(Error::Admin(why)),
            other => Err(Error::Protocol(excerpt(&format!(
                "unexpected answer to partition sizes: {other:?}"
            )))),
        }
    }

    async fn change(&mut self, request: AdminRequest) -> Result<ChangePlan, Error> {
        match self.admin(request).await? {
            AdminReply::Plan(plan) => Ok(*plan),
            AdminReply::ChangeRefused(e) => Err(Error::Change(e)),
            other => Err(Error::Protocol(excerpt(&format!(
                "unexpected answer to a change: {other:?}"
            )))),
        }
    }

    async fn stored(&mut self, request: ClientRequest) -> Result<Vec<u8>, Error> {
        match self.request(request).await? {
            ClientReply::Stored { context, .. } => Ok(context),
            other => Err(Error::Protocol(format!(
                "unexpected answer to a write: {other:?}"
            ))),
        }
    }

    async fn request(&mut self, request: ClientRequest) -> Result<ClientReply, Error> {
        let reply = self
            .call(|id| ClientFrame::Request {
                id,
                request: request.clone(),
            })
            .await?;
        match reply {
            NodeFrame::Reply {
                reply: ClientReply::Failed(e),
                ..
            } => Err(Error::Failed(e)),
            NodeFrame::Reply { reply, .. } => Ok(reply),
            other => Err(Error::Protocol(excerpt(&format!(
                "unexpected frame {other:?}"
            )))),
        }
    }

    async fn admin(&mut self, request: AdminRequest) -> Result<AdminReply, Error> {
        let frame = self
            .call(|id| ClientFrame::Admin {
                id,
                request: request.clone(),
            })
            .await?;
        admin_reply(frame)
    }

    /// [`admin`](Self::admin) to the current node only.
    async fn admin_here(&mut self, request: AdminRequest) -> Result<AdminReply, Error> {
        if self.config.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        let make = |id| ClientFrame::Admin {
            id,
            request: request.clone(),
        };
        self.sent = false;
        match self.call_current(&make).await {
            Ok(frame) => admin_reply(frame),
            Err(Attempt::Refused(e) | Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Next(e) | Attempt::Closed(e)) => Err(Error::Unavailable {
                attempts: vec![(self.current_address(), e)],
                sent: self.sent,
            }),
        }
    }

    fn current_address(&self) -> String {
        self.config
            .nodes
            .get(self.cursor)
            .cloned()
            .unwrap_or_default()
    }

    fn advance(&mut self) {
        self.conn = None;
        if !self.config.nodes.is_empty() {
            self.cursor = (self.cursor + 1) % self.config.nodes.len();
        }
    }

    async fn ensure_connected(&mut self) -> Result<(), Attempt> {
        if self.conn.is_some() {
            return Ok(());
        }
        let address = self.current_address();
        let creds = Credentials {
            cluster: self.config.cluster.clone(),
            secret: self.config.secret.clone(),
            identity: None,
            authority: None,
        };
        let (max_frame, max_request) = (self.config.max_frame, self.config.max_request);
        let encrypt = self.config.encrypt;
        let attempt = async {
            let stream = TcpStream::connect(&address)
                .await
                .map_err(|e| Attempt::Next(format!("connect: {e}")))?;
            let _ = stream.set_nodelay(true);
            let mut conn = handshake_conn(stream);
            match connect(&mut conn, &creds, Role::Client, None, encrypt).await {
                Ok(_) => {
                    conn.established(max_frame, max_request, None);
                    Ok(conn)
                }
                Err(HandshakeError::Frame(e)) => Err(Attempt::Next(format!("handshake: {e}"))),
                Err(reason) => Err(Attempt::Refused(Error::Refused {
                    address: address.clone(),
                    reason,
                })),
            }
        };
        match tokio::time::timeout(self.config.timeout, attempt).await {
            Ok(Ok(conn)) => {
                self.conn = Some((self.cursor, conn));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Attempt::Next("connect: timed out".into())),
        }
    }

    async fn call(&mut self, make: impl Fn(u64) -> ClientFrame) -> Result<NodeFrame, Error> {
        if self.config.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        let mut attempts = Attempts::default();
        self.sent = false;
        self.unsure.clear();
        for _ in 0..self.config.nodes.len() {
            let result = self.call_current(&make).await;
            let denied =
                matches!(&result, Err(Attempt::Next(reason)) if reason.starts_with(UNAVAILABLE));
            if self.try_sent && result.is_err() && !denied {
                self.note_unsure();
            }
            match result {
                Ok(frame) => return Ok(frame),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(failed) => {
                    attempts.push(self.current_address(), failed);
                    self.advance();
                }
            }
        }
        // A node that answered "unavailable" applied nothing: the request may have been applied
        // only by a node that got it and gave no answer.
        Err(attempts.error(!self.unsure.is_empty()))
    }

    /// One request to the current node, sent again on a fresh connection if a reused one turns
    /// out closed (the first may have reached the node: `sent` says so).
    async fn call_current(
        &mut self,
        make: &impl Fn(u64) -> ClientFrame,
    ) -> Result<NodeFrame, Attempt> {
        if std::mem::take(&mut self.exchanging) {
            // A call dropped while it waited: what it left on the connection must not go (and
            // the connection made instead is a fresh one, not one reused).
            self.conn = None;
        }
        let mut reused = self.conn.is_some();
        loop {
            self.try_sent = false;
            match self.try_call(make).await {
                Err(Attempt::Closed(e)) if reused => {
                    if self.try_sent {
                        // Sent on a connection that then closed: this node may have applied it,
                        // whatever the next try here says.
                        self.note_unsure();
                    }
                    tracing::debug!(node = %self.current_address(), error = %e, "connection closed; reconnecting");
                    self.conn = None;
                    reused = false;
                }
                other => return other,
            }
        }
    }

    async fn try_call(&mut self, make: &impl Fn(u64) -> ClientFrame) -> Result<NodeFrame, Attempt> {
        self.ensure_connected().await?;
        let id = self.next_id;
        self.next_id += 1;
        let frame = make(id);
        // At least the request's own timeout: given up on earlier, a put would be sent to the
        // next node while this one still works on it, and applied twice.
        let timeout = match &frame {
            ClientFrame::Request { request, .. } => request
                .options()
                .timeout
                .map(|ms| Duration::from_millis(ms).saturating_add(REPLY_GRACE)),
            _ => None,
        }
        .map_or(self.config.timeout, |t| t.max(self.config.timeout));
        let Some((_, conn)) = self.conn.as_mut() else {
            return Err(Attempt::Next("not connected".into()));
        };
        // Queued whole or not at all: a request past `max_request` goes nowhere.
        match conn.feed(&frame) {
            Ok(()) => {}
            Err(FrameError::TooLarge { size, limit, .. }) => {
                return Err(Attempt::Fatal(Error::TooLarge { size, limit }))
            }
            Err(e) => return Err(Attempt::Fatal(Error::Protocol(e.to_string()))),
        }
        // From here on the request may reach the node, whatever happens next (but for a
        // connection the node closed having read nothing more of it: idle, or stopping).
        let sent_before = self.sent;
        self.sent = true;
        self.try_sent = true;
        self.exchanging = true;
        let exchange = async {
            conn.flush().await?;
            loop {
                let frame = conn.recv::<NodeFrame>().await?;
                match &frame {
                    NodeFrame::Reply { id: r, .. } | NodeFrame::AdminReply { id: r, .. }
                        if *r != id =>
                    {
                        continue; // a late answer to an earlier, timed-out request
                    }
                    _ => return Ok::<NodeFrame, FrameError>(frame),
                }
            }
        };
        let answer = tokio::time::timeout(timeout, exchange).await;
        // Answered: the connection holds nothing of this request. Otherwise (no answer in
        // time, a broken frame) it may, and the next call drops it.
        self.exchanging = !matches!(answer, Ok(Ok(_)));
        match answer {
            Ok(Ok(NodeFrame::Error { reason })) if is_unread_close(&reason) => {
                self.sent = sent_before;
                self.try_sent = false;
                Err(Attempt::Closed(format!(
                    "node closed: {}",
                    excerpt(&reason)
                )))
            }
            Ok(Ok(NodeFrame::Error { reason })) => Err(Attempt::Closed(format!(
                "node closed: {}",
                excerpt(&reason)
            ))),
            Ok(Ok(NodeFrame::Reply {
                reply: ClientReply::Failed(ClientError::Unavailable(reason)),
                ..
            })) => Err(Attempt::Next(format!("{UNAVAILABLE}{reason}"))),
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e @ (FrameError::Closed | FrameError::Io(_)))) => {
                Err(Attempt::Closed(e.to_string()))
            }
            Ok(Err(e)) => Err(Attempt::Next(e.to_string())),
            Err(_) => Err(Attempt::Next("no answer in time".into())),
        }
    }
}

/// What each node tried for a request did, for the error once every node failed.
#[derive(Default)]
struct Attempts {
    tried: Vec<(String, String)>,
    /// The last refusal, while every node tried refused.
    all_refused: Option<Error>,
}

impl Attempts {
    fn push(&mut self, address: String, failed: Attempt) {
        let first = self.tried.is_empty();
        let reason = match failed {
            Attempt::Refused(e) => {
                let reason = e.to_string();
                if first || self.all_refused.is_some() {
                    self.all_refused = Some(e);
                }
                reason
            }
            Attempt::Next(e) | Attempt::Closed(e) => {
                self.all_refused = None;
                e
            }
            Attempt::Fatal(e) => {
                self.all_refused = None;
                e.to_string()
            }
        };
        tracing::debug!(node = %address, error = %reason, "node did not answer");
        self.tried.push((address, reason));
    }

    /// `Refused` when every node refused the connection and the request reached none, else
    /// `Unavailable` (which says whether it may have been applied: a request sent on a
    /// connection that then closed, whose node refused the next one, may have been).
    fn error(self, sent: bool) -> Error {
        match self.all_refused {
            Some(refused) if !sent => refused,
            _ => Error::Unavailable {
                attempts: self.tried,
                sent,
            },
        }
    }
}

/// The answer in an admin request's frame.
fn admin_reply(frame: NodeFrame) -> Result<AdminReply, Error> {
    match frame {
        NodeFrame::AdminReply { reply, .. } => Ok(reply),
        other => Err(Error::Protocol(excerpt(&format!(
            "unexpected frame {other:?}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review of the client (thirtieth session): a put sent on a reused connection that then
    /// closed unanswered, whose node refused the next connection (at its cap), with every other
    /// node refusing too, was reported as `Refused` ("node X refused the connection"), which
    /// says nothing was sent, although the node may have applied it.
    #[test]
    fn refusals_after_a_request_that_may_have_been_applied_do_not_say_nothing_was_sent() {
        let refused = |n: u8| {
            Attempt::Refused(Error::Refused {
                address: format!("node-{n}"),
                reason: HandshakeError::Refused("busy".into()),
            })
        };
        let all_refused = || {
            let mut attempts = Attempts::default();
            attempts.push("node-1".into(), refused(1));
            attempts.push("node-2".into(), refused(2));
            attempts
        };
        assert!(matches!(all_refused().error(false), Error::Refused { .. }));
        match all_refused().error(true) {
            Error::Unavailable { sent, attempts } => {
                assert!(sent);
                assert_eq!(attempts.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
