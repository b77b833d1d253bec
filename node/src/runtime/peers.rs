//! Outbound links: one task per peer, fed by a bounded queue, that writes messages in batches.
//!
//! A link connects lazily (on its first message), runs the handshake as a peer, then writes every
//! queued message it can take at once and flushes once per batch. When a connection fails, the
//! link tells the driver the peer is unreachable (so that requests waiting on it fail over now),
//! hands back what it certainly did not send, and reconnects with exponential backoff. A message that finds the
//! queue full is not queued: the driver treats the peer as unreachable rather than grow memory.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frame::{excerpt, handshake_conn, Conn, PeerFrame, Role, HANDSHAKE_MAX_FRAME};
use super::handshake::{connect, Credentials};
use super::Input;
use crate::message::PeerMessage;
use crate::types::NodeId;

/// Most messages written before one flush.
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
    pub max_frame: usize,
    /// A link with nothing to send for this long closes its connection (it reconnects on the next
    /// message): half the peers' idle timeout, so the link closes before the peer does.
    pub idle: Duration,
    pub inputs: mpsc::Sender<Input>,
}

/// The driver's end of a link.
#[derive(Debug)]
pub(crate) struct Link {
    pub address: String,
    pub queue: mpsc::Sender<PeerMessage>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a link to `peer` at `address` with a queue of `capacity` messages.
pub(crate) fn spawn(ctx: LinkContext, peer: NodeId, address: String, capacity: usize) -> Link {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let task = tokio::spawn(run(ctx, peer, address.clone(), rx));
    Link {
        address,
        queue: tx,
        task,
    }
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
        };
        connect(&mut conn, &ctx.creds, role, Some(peer), ctx.encrypt)
            .await
            .map_err(|e| format!("handshake with {address}: {e}"))?;
        conn.established(HANDSHAKE_MAX_FRAME, ctx.max_frame, None);
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

async fn run(ctx: LinkContext, peer: NodeId, address: String, mut rx: mpsc::Receiver<PeerMessage>) {
    let mut backoff = MIN_BACKOFF;
    let mut batch: Vec<PeerMessage> = Vec::with_capacity(BATCH);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(m) => batch.push(m),
                None => return,
            }
        }
        let mut conn = match dial(&ctx, peer, &address).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(peer, error = %e, "peer unreachable");
                undelivered(&ctx, peer, std::mem::take(&mut batch)).await;
                // While backing off, messages are dropped and each drop reported.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        m = rx.recv() => match m {
                            Some(m) => undelivered(&ctx, peer, vec![m]).await,
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::debug!(peer, %address, "connected to peer");
        backoff = MIN_BACKOFF;
        let mut idle = false;
        'connected: loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
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
                m = rx.recv() => match m {
                    Some(m) => batch.push(m),
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
            continue;
        }
        // What was in flight may be lost: requests waiting on the peer fail over.
        batch.clear();
        unreachable(&ctx, peer).await;
    }
}
