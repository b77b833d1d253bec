//! When a request's replicas fail: counting them as failed, handing a failed put target's copy to
//! a fallback with a hint, forwarding a request whose coordinator is gone, and deadlines.

use dynamo_quorum::Mode;

use super::coordinator::{invalid, Pending};
use super::NodeCore;
use crate::message::{ClientError, ClientReply, PeerMessage};
use crate::store::Store;
use crate::types::{Millis, NodeId, RequestId};

impl<S: Store> NodeCore<S> {
    /// `peer` is down or unreachable: requests waiting on it count it as failed. A forward to it
    /// keeps waiting: it may have arrived (see [`NodeCore::undelivered`]).
    pub(crate) fn fail_peer(&mut self, now: Millis, peer: NodeId) {
        let reqs: Vec<RequestId> = self.pending.keys().copied().collect();
        for req in reqs {
            match self.pending.get_mut(&req) {
                Some(Pending::Get { coord, .. })
                    if coord.targets().iter().any(|t| t.node == peer) =>
                {
                    coord.handle_failure(now, &peer);
                    self.pump(now, req);
                }
                Some(Pending::Put { coord, .. })
                    if coord.targets().iter().any(|t| t.node == peer) =>
                {
                    coord.handle_failure(now, &peer);
                    self.rehint(now, req, peer);
                    self.pump(now, req);
                }
                _ => {}
            }
        }
    }

    /// A forward certainly did not reach `peer`: coordinate the request here (under a fresh
    /// actor epoch: this node is not a primary of the key).
    pub(crate) fn forward_undelivered(&mut self, now: Millis, peer: NodeId, req: RequestId) {
        if !matches!(self.pending.get(&req), Some(Pending::Forward { to, .. }) if *to == peer) {
            return;
        }
        if let Some(Pending::Forward {
            origin, request, ..
        }) = self.pending.remove(&req)
        {
            match self.options(now, &request) {
                Ok(options) => self.coordinate_put(now, origin, request, options),
                Err(e) => self.reply(origin, invalid(e)),
            }
        }
    }

    /// A target of a put failed after the plan was made (the failure detector had not noticed
    /// yet): send the versions, with a hint, to the next healthy node of the preference list that
    /// was not a target, as the plan would have done. Whether or not the put already reached W,
    /// the write then survives on N nodes and returns to the failed one when it is back.
    pub(crate) fn rehint(&mut self, now: Millis, req: RequestId, failed: NodeId) {
        let Some(Pending::Put {
            key,
            coord,
            payload,
            acked,
            rehinted,
            ..
        }) = self.pending.get(&req)
        else {
            return;
        };
        if !self.config.hinted_handoff
            || coord.options().mode == Mode::Strict
            || acked.contains(&failed)
            || rehinted.contains(&failed)
        {
            return;
        }
        let Some(target) = coord.targets().iter().find(|t| t.node == failed) else {
            return;
        };
        let intended = target.hint.unwrap_or(failed);
        let key = key.clone();
        let next = self.ring.preference_list(&key).map(|r| *r.node).find(|&n| {
            n != failed
                && n != intended
                && !coord.targets().iter().any(|t| t.node == n)
                && !rehinted.contains(&n)
                && self.is_up(n)
        });
        let Some(next) = next else { return };
        let siblings = payload.clone();
        if let Some(Pending::Put { rehinted, .. }) = self.pending.get_mut(&req) {
            rehinted.push(failed);
            rehinted.push(next);
        }
        if next == self.id {
            self.replica_write(now, self.id, None, key, siblings, Some(intended));
        } else {
            self.transmits.push_back((
                next,
                PeerMessage::Write {
                    req: None,
                    key,
                    siblings,
                    hint: Some(intended),
                },
            ));
        }
    }

    pub(crate) fn request_timeouts(&mut self, now: Millis) {
        let due: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.poll_timeout().is_some_and(|t| t <= now))
            .map(|(r, _)| *r)
            .collect();
        for req in due {
            match self.pending.get_mut(&req) {
                Some(Pending::Get { coord, .. }) => {
                    coord.handle_timeout(now);
                    self.pump(now, req);
                }
                Some(Pending::Put { coord, .. }) => {
                    coord.handle_timeout(now);
                    self.pump(now, req);
                }
                Some(Pending::Forward { .. }) => {
                    if let Some(Pending::Forward { origin, .. }) = self.pending.remove(&req) {
                        self.reply(
                            origin,
                            ClientReply::Failed(ClientError::Unavailable(
                                "the coordinator did not answer in time".into(),
                            )),
                        );
                    }
                }
                None => {}
            }
        }
    }
}
