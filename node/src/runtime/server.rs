//! Inbound connections: the listener, the handshake, then one reader per connection.
//!
//! A peer connection only carries [`Frame::Peer`] messages into the driver. A client connection
//! carries requests in and replies out; up to [`MAX_IN_FLIGHT`] requests of one connection are
//! handled at once, and their replies go back as they complete. Anything unexpected (a malformed
//! or unknown frame, an oversized frame, a frame of the wrong kind) is answered with
//! [`Frame::Error`] and the connection is closed; the node goes on.

use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::frame::{framed, recv, refuse, send, Conn, Frame, FrameError, Role};
use super::handshake::{accept, Credentials};
use super::Input;
use crate::message::{ClientError, ClientReply};
use crate::types::NodeId;

/// Requests of one client connection handled at once; more wait in the socket.
pub const MAX_IN_FLIGHT: usize = 1024;
/// How long a connecting side may take to complete the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What connection tasks need.
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    pub creds: Credentials,
    pub id: NodeId,
    pub max_frame: usize,
    pub inputs: mpsc::Sender<Input>,
}

/// Accepts connections until the task is aborted (which aborts every connection too).
pub(crate) async fn serve(listener: TcpListener, ctx: ServerContext) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, addr, ctx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, addr: SocketAddr, ctx: ServerContext) {
    let mut conn = framed(stream, ctx.max_frame);
    let role = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(&mut conn, &ctx.creds, ctx.id))
        .await
    {
        Ok(Ok(role)) => role,
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%addr, "handshake timed out");
            refuse(&mut conn, "handshake timed out").await;
            return;
        }
    };
    match role {
        Role::Peer { id, address } => {
            tracing::debug!(%addr, peer = id, %address, "peer connected");
            peer_connection(conn, addr, id, ctx).await;
        }
        Role::Client => {
            tracing::debug!(%addr, "client connected");
            client_connection(conn, addr, ctx).await;
        }
    }
}

fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Challenge { .. } => "Challenge",
        Frame::Proof { .. } => "Proof",
        Frame::Welcome { .. } => "Welcome",
        Frame::Error { .. } => "Error",
        Frame::Peer(_) => "Peer",
        Frame::Request { .. } => "Request",
        Frame::Reply { .. } => "Reply",
        Frame::Admin { .. } => "Admin",
        Frame::AdminReply { .. } => "AdminReply",
    }
}

fn describe_error(e: &FrameError, max_frame: usize) -> String {
    match e {
        FrameError::TooLarge => {
            format!("frame exceeds the maximum frame size of {max_frame} bytes")
        }
        other => other.to_string(),
    }
}

/// Closes a connection after a bad frame, telling the other side why.
async fn bad_input(conn: &mut Conn<TcpStream>, addr: SocketAddr, reason: String) {
    tracing::warn!(%addr, %reason, "closing connection");
    refuse(conn, &reason).await;
}

async fn peer_connection(
    mut conn: Conn<TcpStream>,
    addr: SocketAddr,
    from: NodeId,
    ctx: ServerContext,
) {
    loop {
        match recv(&mut conn).await {
            Ok(Frame::Peer(msg)) => {
                if ctx.inputs.send(Input::Peer { from, msg }).await.is_err() {
                    return;
                }
            }
            Ok(Frame::Error { reason }) => {
                tracing::debug!(%addr, peer = from, %reason, "peer closed the connection");
                return;
            }
            Ok(other) => {
                bad_input(
                    &mut conn,
                    addr,
                    format!("unexpected {} frame from a peer", kind(&other)),
                )
                .await;
                return;
            }
            Err(FrameError::Closed) => return,
            Err(e) => {
                bad_input(&mut conn, addr, describe_error(&e, ctx.max_frame)).await;
                return;
            }
        }
    }
}

async fn client_connection(mut conn: Conn<TcpStream>, addr: SocketAddr, ctx: ServerContext) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            frame = recv(&mut conn), if in_flight.len() < MAX_IN_FLIGHT => {
                match frame {
                    Ok(Frame::Request { id, request }) => {
                        let (tx, rx) = oneshot::channel();
                        if ctx.inputs.send(Input::Client { request, reply: tx }).await.is_err() {
                            refuse(&mut conn, "node shutting down").await;
                            return;
                        }
                        in_flight.push(futures::future::Either::Left(async move {
                            let reply = rx.await.unwrap_or_else(|_| {
                                ClientReply::Failed(ClientError::Unavailable(
                                    "node shutting down".into(),
                                ))
                            });
                            Frame::Reply { id, reply }
                        }));
                    }
                    Ok(Frame::Admin { id, request }) => {
                        let (tx, rx) = oneshot::channel();
                        if ctx.inputs.send(Input::Admin { request, reply: tx }).await.is_err() {
                            refuse(&mut conn, "node shutting down").await;
                            return;
                        }
                        in_flight.push(futures::future::Either::Right(async move {
                            match rx.await {
                                Ok(reply) => Frame::AdminReply { id, reply },
                                Err(_) => Frame::Error { reason: "node shutting down".into() },
                            }
                        }));
                    }
                    Ok(other) => {
                        let reason = format!("unexpected {} frame from a client", kind(&other));
                        bad_input(&mut conn, addr, reason).await;
                        return;
                    }
                    Err(FrameError::Closed) => return,
                    Err(e) => {
                        bad_input(&mut conn, addr, describe_error(&e, ctx.max_frame)).await;
                        return;
                    }
                }
            }
            Some(frame) = in_flight.next() => {
                let last = matches!(frame, Frame::Error { .. });
                if send(&mut conn, &frame).await.is_err() || last {
                    return;
                }
            }
        }
    }
}
