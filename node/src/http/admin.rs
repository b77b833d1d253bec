//! `GET /status`, `/ring` and `/members`: what the TCP client's status and ring requests return,
//! in JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{json, ApiError, HttpState};
use crate::core::MemberStatus;
use crate::runtime::{AdminReply, AdminRequest};
use crate::types::NodeId;

fn unexpected(reply: &AdminReply) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("unexpected answer from the node: {reply:?}"),
    )
}

async fn node_status(state: &HttpState) -> Result<crate::core::NodeStatus, ApiError> {
    match state.admin(AdminRequest::Status).await? {
        AdminReply::Status(s) => Ok(*s),
        other => Err(unexpected(&other)),
    }
}

/// `GET /status`: the node's [`NodeStatus`](crate::NodeStatus), as `dynamo status --json`
/// prints it.
pub(crate) async fn status(State(state): State<HttpState>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &node_status(&state).await?))
}

/// `GET /ring`: every range of the ring and its replicas ([`RangeInfo`](crate::runtime::RangeInfo)).
pub(crate) async fn ring(State(state): State<HttpState>) -> Result<Response, ApiError> {
    match state.admin(AdminRequest::Ring).await? {
        AdminReply::Ring(ranges) => Ok(json(StatusCode::OK, &ranges)),
        other => Err(unexpected(&other)),
    }
}

/// The body of `GET /members`: this node's view of the membership, what `dynamo members` shows
/// for each node.
#[derive(Debug, Serialize)]
struct Members {
    /// The node answering.
    id: NodeId,
    /// The ring version it uses.
    ring_version: u64,
    /// Whether it is out of the ring, handing its data over.
    leaving: bool,
    /// Outgoing ownership transfers running.
    transfers_running: usize,
    /// Hints it holds for other nodes.
    hints_pending: usize,
    /// Whether it left and holds nothing for anyone (no transfer, no hint, no hand-over's end
    /// unacknowledged): it may be stopped.
    handed_over: bool,
    /// Ranges it awaits data for.
    partitions_incoming: usize,
    /// Every ring member: id, address, up or down, hints held for it.
    members: Vec<MemberStatus>,
}

/// `GET /members`.
pub(crate) async fn members(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let s = node_status(&state).await?;
    let body = Members {
        id: s.id,
        ring_version: s.ring_version,
        leaving: s.leaving,
        transfers_running: s.transfers_running,
        hints_pending: s.hints_pending,
        handed_over: s.handed_over,
        partitions_incoming: s.partitions_incoming,
        members: s.members,
    };
    Ok(json(StatusCode::OK, &body))
}
