//! A node's own failure detection (paper section 4.8.1): "node A may consider node B failed if
//! node B does not respond to node A's messages". Gossip's detector marks a peer down for
//! everyone only after seconds of silence (8-10 s in the simulator at its default rounds); until
//! then a coordinator kept sending a silently failed peer its requests and waited for it, and
//! the requests whose quorum needed it failed (experiments 5 and 8, measured through that
//! window). A peer that could not be reached (a message to it refused, its link lost), or that
//! let a request's deadline pass without a word since the request began (and for the
//! configured request timeout at least), is silent here: sloppy requests route around it
//! (fallbacks take its copies with a hint) until any message from it arrives, and once a
//! gossip round the node asks it for one, opening a gossip exchange with it ("node A
//! periodically retries node B"). Only request routing heeds it; hints, transfers,
//! anti-entropy, the reaper and strict quorums go by gossip's view.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{Millis, NodeId};

/// The peers this node heard from, when, and those it holds silent.
#[derive(Debug, Default)]
pub(crate) struct Silence {
    /// When each peer's latest message arrived.
    heard: BTreeMap<NodeId, Millis>,
    silent: BTreeSet<NodeId>,
}

impl Silence {
    /// A message from `peer` arrived at `now`: it is not silent.
    pub(crate) fn heard(&mut self, peer: NodeId, now: Millis) {
        self.heard.insert(peer, now);
        if !self.silent.is_empty() {
            self.silent.remove(&peer);
        }
    }

    /// `peer` did not answer a request that began at `since` by its deadline: silent unless a
    /// message from it arrived since. Whether it became silent now.
    pub(crate) fn suspect(&mut self, peer: NodeId, since: Millis) -> bool {
        let spoke = self.heard.get(&peer).is_some_and(|&at| at >= since);
        !spoke && self.silence(peer)
    }

    /// `peer` could not be reached (a message to it was refused, its link was lost): silent until
    /// heard from. Whether it became silent now.
    pub(crate) fn silence(&mut self, peer: NodeId) -> bool {
        self.silent.insert(peer)
    }

    /// The peers held silent.
    pub(crate) fn silent(&self) -> Vec<NodeId> {
        self.silent.iter().copied().collect()
    }

    /// Whether requests route around `peer`.
    pub(crate) fn is_silent(&self, peer: NodeId) -> bool {
        self.silent.contains(&peer)
    }

    /// Forgets `peer` (it left the cluster).
    pub(crate) fn forget(&mut self, peer: NodeId) {
        self.heard.remove(&peer);
        self.silent.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::Silence;

    #[test]
    fn a_peer_heard_since_the_request_began_is_not_silent() {
        let mut s = Silence::default();
        s.heard(2, 100);
        assert!(!s.suspect(2, 100), "heard at the request's start");
        assert!(s.suspect(2, 101));
        assert!(s.is_silent(2));
        assert!(!s.suspect(2, 101), "already silent");
        s.heard(2, 150);
        assert!(!s.is_silent(2));
        assert!(s.suspect(3, 0), "never heard");
        s.forget(3);
        assert!(!s.is_silent(3));
    }
}
