//! The HTTP API's accept loop: HTTP/1.1 connections under the node's limits.
//!
//! `axum::serve` gives hyper no timer, so hyper bounds nothing in time, and it accepts every
//! connection. Here each connection:
//! - counts against [`HttpConfig::max_connections`](super::HttpConfig::max_connections): one
//!   more takes the oldest slot of the client address holding the most when its own address
//!   holds fewer (`runtime::slots`; that connection answers the request it is serving, if any, and
//!   closes), and is otherwise answered `503` (the JSON error body of every refusal) and
//!   closed. Connections that gave their slot up and still finish a request (or a request's
//!   head: hyper closes only an idle one at once) are at most `max_connections` more; past
//!   that the oldest of them is closed outright, so that a client that takes slots and lets
//!   them go again cannot pile up evicted connections and run the node out of descriptors;
//! - must send a request's head within the node's `read_timeout`, which also bounds how long a
//!   kept-alive connection may idle between requests (hyper's header timeout);
//! - is closed when no byte went either way for `idle_timeout` (a body that stops halfway), or a
//!   write makes no progress for `read_timeout` (an answer the client does not read)
//!   ([`Deadlines`]), or its answers not yet written are past the node's limits on unsent
//!   replies ([`Unwritten`]).
//!
//! The connections run in a [`JoinSet`] owned by the loop, so stopping the API (aborting its
//! task) closes them all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::{AbortHandle, Id, JoinSet};

use super::deadlines::Deadlines;
use super::unwritten::Unwritten;
use crate::runtime::frame::DRAIN_TIME;
use crate::runtime::slots::{AddressSlots, Admit};
use crate::runtime::{ConnectionLimits, UnsentBytes};

/// How long an HTTP connection may stall.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest request head read (`431` past it), and so the most a connection buffers before
    /// its request is authenticated.
    pub max_head: usize,
    /// The node's limits on unsent replies (see [`Unwritten`]).
    pub unsent: ConnectionLimits,
    /// A request's head must arrive within this (and a kept-alive connection idles at most
    /// this long); a write must progress within it.
    pub read_timeout: Duration,
    /// No byte either way for this long closes the connection.
    pub idle_timeout: Duration,
    /// How long a connection that gave its slot up may go on answering the request it serves
    /// (longer than any request takes): past it, it closes, so that evicted connections cannot
    /// pile up past the cap.
    pub close_grace: Duration,
}

/// The answer to a connection past the cap.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 81\r\n\
\r\n\
{\"error\": \"unavailable\", \"message\": \"the node serves too many HTTP connections\"}\n";

/// Serves `app` on `listener` until the node closes (`closing`: then no more connections are
/// taken, each connection is told to close once its request in progress is answered, and this
/// returns when they have) or the task running this is aborted; answers not yet written count
/// in `unsent`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    unsent: Arc<UnsentBytes>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut slots = AddressSlots::new(limits.max_connections);
    // How to tell each connection to close once its request in progress is answered.
    let mut open: HashMap<Id, (Arc<Notify>, AbortHandle)> = HashMap::new();
    let mut evicted = Evicted::default();
    let refusals = Arc::new(Semaphore::new(REFUSING));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = crate::runtime::server::closed(&mut closing) => {
                drop(listener);
                for (close, _) in open.values() {
                    close.notify_one();
                }
                while connections.join_next().await.is_some() {}
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = match slots.admit(peer.ip()) {
                        Admit::Free => true,
                        Admit::Instead(victim) => {
                            tracing::debug!(%peer, "HTTP connection cap: closing the oldest \
                                connection of the address holding the most");
                            if let Some((close, abort)) = open.remove(&victim) {
                                close.notify_one();
                                evicted.push(victim, abort, limits.max_connections);
                            }
                            true
                        }
                        Admit::Refuse => false,
                    };
                    if admitted {
                        let app = app.clone();
                        let close = Arc::new(Notify::new());
                        let told = Arc::clone(&close);
                        let unwritten = Unwritten::new(Arc::clone(&unsent), limits.unsent);
                        let handle = connections.spawn(async move {
                            connection(stream, app, limits, told, unwritten).await
                        });
                        slots.add(peer.ip(), handle.id());
                        open.insert(handle.id(), (close, handle));
                    } else {
                        // Refusals wait for the client to close (see `refuse`), a bounded
                        // number at once; past that a connection is simply closed.
                        match Arc::clone(&refusals).try_acquire_owned() {
                            Ok(permit) => {
                                connections.spawn(async move {
                                    refuse(stream).await;
                                    drop(permit);
                                });
                            }
                            Err(_) => drop(stream),
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine, so wait a moment and go on.
                    tracing::warn!(error = %e, "the HTTP API could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                slots.remove(id);
                open.remove(&id);
                evicted.ended(id);
            }
        }
    }
}

/// Connections that gave their slot up and are still finishing, oldest first.
#[derive(Default)]
struct Evicted {
    by_order: BTreeMap<u64, (Id, AbortHandle)>,
    order_of: HashMap<Id, u64>,
    next: u64,
}

impl Evicted {
    /// Connection `id` gave its slot up; the oldest evicted ones are closed outright while more
    /// than `max` remain.
    fn push(&mut self, id: Id, abort: AbortHandle, max: usize) {
        self.by_order.insert(self.next, (id, abort));
        self.order_of.insert(id, self.next);
        self.next += 1;
        while self.by_order.len() > max {
            let Some((_, (oldest, abort))) = self.by_order.pop_first() else {
                break;
            };
            self.order_of.remove(&oldest);
            tracing::debug!("HTTP connection closed: too many evicted connections still open");
            abort.abort();
        }
    }

    /// Connection `id` ended.
    fn ended(&mut self, id: Id) {
        if let Some(order) = self.order_of.remove(&id) {
            self.by_order.remove(&order);
        }
    }
}

/// Connections being refused at once.
const REFUSING: usize = 64;

/// Answers `503`, closes its side, and reads what the client still sends until it closes (at
/// most [`DRAIN_TIME`]): closing a socket with unread input resets the connection, and the
/// client could lose the answer. (The TCP protocol's refusals do the same, `frame::refuse`.)
async fn refuse(mut stream: TcpStream) {
    tracing::debug!("HTTP connection refused: at the connection cap");
    let drain = async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// Serves one connection; once `close` is notified (its slot went to another client), it
/// answers the request in progress, if any, and closes (an idle one closes at once). Its
/// answers not yet written count in `unwritten`; past a limit it closes.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: HttpLimits,
    close: Arc<Notify>,
    unwritten: Arc<Unwritten>,
) {
    let _ = stream.set_nodelay(true);
    let io = Deadlines::new(stream, limits.idle_timeout, limits.read_timeout)
        .counting(Arc::clone(&unwritten));
    let counted = Arc::clone(&unwritten);
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request| {
        let answer = hyper::service::Service::call(&app, request);
        let counted = Arc::clone(&counted);
        async move {
            let answer = answer.await;
            if let Ok(answer) = &answer {
                let hint = axum::body::HttpBody::size_hint(answer.body());
                let bytes = hint.exact().unwrap_or_else(|| hint.lower());
                counted.queued(usize::try_from(bytes).unwrap_or(usize::MAX));
            }
            answer
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_head.max(8 << 10))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let served = tokio::select! {
        done = served.as_mut() => done,
        reason = unwritten.told() => {
            tracing::warn!(%reason, "HTTP client holds the most unread answers; closing");
            return;
        }
        () = close.notified() => {
            served.as_mut().graceful_shutdown();
            let finish = tokio::time::timeout(limits.close_grace, served);
            tokio::select! {
                done = finish => match done {
                    Ok(done) => done,
                    Err(_) => {
                        tracing::debug!("HTTP connection closed: past its grace after eviction");
                        return;
                    }
                },
                reason = unwritten.told() => {
                    tracing::warn!(%reason, "HTTP client holds the most unread answers; closing");
                    return;
                }
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_answer_with_a_json_body() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a length")
            .parse()
            .expect("a number");
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["error"], "unavailable");
    }
}
