//! When a request's replicas fail: counting them as failed, handing a failed put target's copy to
//! a fallback with a hint, forwarding a request whose coordinator is gone, and deadlines; and
//! members that gossip never heard from.

use super::coordinator::Answer;
use super::requests::Pending;
use super::NodeCore;
use crate::message::{ClientError, ClientReply, PeerMessage};
use crate::types::{Millis, NodeId, RequestId};

/// How long after its start a node keeps believing up a member that gossip has never heard from:
/// the silence after which gossip's failure detector suspects a peer it knows only from its
/// prior (inter-arrival mean two gossip intervals, deviation one; the normal model with the
/// configured threshold, acceptable pause and deviation floor). Gossip suspects a peer only
/// once it heard from it, so without this a member that crashed before its first gossip round
/// reached anyone (or never started) would be up forever, and sloppy quorums would never route
/// around it.
pub(crate) fn unheard_grace(config: &dynamo_gossip::Config) -> Millis {
    let ms = |span: std::time::Duration| span.as_millis() as f64;
    let interval = ms(config.gossip_interval);
    let mean = 2.0 * interval + ms(config.effective_acceptable_pause());
    let std_dev = interval.max(ms(config.effective_min_std_dev())).max(1.0);
    // phi(y) = log10(1 + exp(y (1.5976 + 0.070566 y^2))) (the detector's approximation of the
    // normal tail) grows with y; find where it crosses the threshold by bisection.
    let phi = |y: f64| {
        let x = y * (1.5976 + 0.070566 * y * y);
        (x.max(0.0) + (-x.abs()).exp().ln_1p()) / std::f64::consts::LN_10
    };
    let (mut lo, mut hi) = (0.0_f64, 64.0_f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if phi(mid) > config.phi_threshold {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (mean + hi * std_dev).ceil() as Millis
}

impl NodeCore {
    /// Marks down the members that gossip has still not heard from [`unheard_grace`] after this
    /// node started, as gossip's `Down` would: their hints wait, transfers to them stop, and
    /// requests waiting on them fail over. Hearing from one (gossip's `Joined`) brings it back.
    pub(crate) fn detect_unheard(&mut self, now: Millis) {
        if now
            < self
                .view
                .booted
                .saturating_add(unheard_grace(self.gossip.config()))
        {
            return;
        }
        let silent: Vec<NodeId> = self
            .view
            .members
            .iter()
            .copied()
            .filter(|&m| {
                m != self.id
                    && self.gossip.node_state(&m).is_none()
                    && !self.view.unheard.contains(&m)
            })
            .collect();
        for id in silent {
            self.view.unheard.insert(id);
            self.hints.peer_down(now, id);
            self.transfer_peer(now, id, false);
            self.fail_peer(now, id);
        }
    }

    /// `peer` is down or unreachable: requests waiting on it count it as failed. A forward to it
    /// keeps waiting: it may have arrived (see [`NodeCore::undelivered`]).
    pub(crate) fn fail_peer(&mut self, now: Millis, peer: NodeId) {
        for req in self.requests.awaiting(peer) {
            self.replica_answered(now, peer, req, Answer::Failed);
        }
    }

    /// A forward certainly did not reach `peer`: coordinate the request here (under a fresh
    /// actor epoch: this node is not a primary of the key).
    pub(crate) fn forward_undelivered(&mut self, now: Millis, peer: NodeId, req: RequestId) {
        if let Some(Pending::Forward {
            origin,
            request,
            deadline,
            ..
        }) = self.requests.take_forward_to(req, peer)
        {
            self.coordinate_forwarded_here(now, origin, request, deadline, peer);
        }
    }

    /// A target of a put failed after the plan was made: its coordinator hands its copy, with a
    /// hint, to the next healthy node of the preference list (`PutCoordinator::hand_off`), which
    /// stores it like any fallback (this node included).
    pub(crate) fn rehint(&mut self, now: Millis, req: RequestId, failed: NodeId) {
        if !self.config.hinted_handoff {
            return;
        }
        let Some(Pending::Put { key, .. }) = self.requests.get(req) else {
            return;
        };
        let key = key.clone();
        let up: Vec<NodeId> = self
            .view
            .ring
            .preference_list(&key)
            .map(|r| *r.node)
            .filter(|&n| self.routable(n))
            .collect();
        let Some(Pending::Put { coord, .. }) = self.requests.get_mut(req) else {
            return;
        };
        let Some((next, write)) = coord.hand_off(&failed, up, |_| true) else {
            return;
        };
        if next == self.id {
            self.replica_write(now, self.id, None, key, write.siblings, write.hint);
        } else {
            self.transmits.push_back((
                next,
                PeerMessage::Write {
                    req: None,
                    key,
                    siblings: write.siblings,
                    hint: write.hint,
                },
            ));
        }
    }

    /// `peers` let a request that began at `since` reach its deadline without a word: each not
    /// heard from since, nor for the configured request timeout at least (a client may ask for
    /// a timeout shorter than a round trip), is silent here: new requests route around it (see
    /// `silence`). Requests in flight keep waiting for it: its answers may be on their way.
    fn suspect(&mut self, now: Millis, since: Millis, peers: Vec<NodeId>) {
        let since = since.min(now.saturating_sub(self.config.request_timeout));
        for peer in peers {
            if peer != self.id && self.silence.suspect(peer, since) {
                self.count_silenced();
            }
        }
    }

    pub(crate) fn request_timeouts(&mut self, now: Millis) {
        for req in self.requests.due(now) {
            match self.requests.get_mut(req) {
                Some(Pending::Get { coord, started, .. }) => {
                    let silent = silent_at(now, coord.deadline(), coord.unanswered());
                    let since = *started;
                    coord.handle_timeout(now);
                    self.pump(now, req);
                    self.suspect(now, since, silent);
                }
                Some(Pending::Put { coord, started, .. }) => {
                    let silent = silent_at(now, coord.deadline(), coord.unanswered());
                    let since = *started;
                    coord.handle_timeout(now);
                    self.pump(now, req);
                    self.suspect(now, since, silent);
                }
                Some(Pending::Forward { to, sent, .. }) => {
                    let (to, sent) = (*to, *sent);
                    self.suspect(now, sent, vec![to]);
                    if let Some(Pending::Forward {
                        origin, request, ..
                    }) = self.requests.take_forward_to(req, to)
                    {
                        // The coordinator may still apply it: a timeout, not `Unavailable`
                        // (nothing written), after which a client would write it again elsewhere.
                        let required = self.options(&request).map_or(0, |o| o.w);
                        self.reply(
                            origin,
                            ClientReply::Failed(ClientError::Timeout {
                                acknowledged: 0,
                                required,
                            }),
                        );
                    }
                }
                None => {}
            }
        }
    }
}

/// The targets still silent when a request's deadline passed (none before it).
fn silent_at<'a>(
    now: Millis,
    deadline: Millis,
    unanswered: impl Iterator<Item = &'a NodeId>,
) -> Vec<NodeId> {
    if now < deadline {
        return Vec::new();
    }
    unanswered.copied().collect()
}

#[cfg(test)]
mod tests {
    use super::unheard_grace;

    #[test]
    fn a_member_never_heard_is_suspected_when_a_peer_heard_once_would_be() {
        // 500 ms rounds, threshold 8: mean 1000 + pause 3000 + 5.23 x 500 = about 6.6 s, the bound
        // the gossip crate's detector test gives for a peer known only from its prior.
        let grace = unheard_grace(&dynamo_gossip::Config::default());
        assert!((6_600..=6_630).contains(&grace), "{grace}");
        let slow = dynamo_gossip::Config {
            gossip_interval: std::time::Duration::from_millis(1_000),
            ..dynamo_gossip::Config::default()
        };
        // 2000 + max(3000, 6000) + 5.23 x 1000
        assert!((13_200..=13_250).contains(&unheard_grace(&slow)));
    }
}
