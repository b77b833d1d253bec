//! A member on a new, empty store: a node that lost its disk (its data directory emptied, as the
//! stores' own errors advise for damage that cannot be mended), or one of a new cluster's first
//! nodes. Its ring names it a replica of its ranges, and before this module its "not found"
//! counted toward R for every key the other replicas hold, until anti-entropy had refilled it:
//! with R = 2, a read through it and one replica that missed a write returned nothing.
//!
//! Every node publishes in gossip, once it holds a key, when its store began
//! ([`DATA_SINCE_KEY`], the start time of the store's first incarnation). A node started on a
//! new store answers no replica read ([`Fresh::unsure`]) until it hears its first peers. If one
//! of them holds keys in a store older than its own by more than [`MARGIN`], it awaits every
//! range it replicates, as a restarted node that missed ring changes does, until a transfer or
//! anti-entropy with the settled replicas shows it whole; else (a new cluster, whose stores
//! began together) it serves as it is. In a cluster that holds data nearly every member holds
//! keys, so the first peers heard tell; the doubt lasts about one gossip round.

use super::NodeCore;
use crate::types::Millis;

/// The gossip entry of a node that holds keys: when its store began (ms, big-endian).
pub(crate) const DATA_SINCE_KEY: &str = "data-since";

/// The store meta name of when the store began.
pub(crate) const BIRTH_META: &str = "store-birth";

/// How much older a peer's store must be than a new one's for its keys to be data this node
/// lacks (the nodes of a new cluster start within this of each other; clocks may differ).
pub(crate) const MARGIN: Millis = 10_000;

/// What a node knows of its store's age.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    /// When the store began.
    pub(crate) birth: Millis,
    /// A new store whose node has not yet heard whether the cluster holds older data: it
    /// answers no replica read.
    pub(crate) unsure: bool,
    /// Whether it published [`DATA_SINCE_KEY`].
    published: bool,
}

impl Fresh {
    /// A store that began at `birth`; `unsure` for a new one in a ring with other members.
    pub(crate) fn new(birth: Millis, unsure: bool) -> Self {
        Fresh {
            birth,
            unsure,
            published: false,
        }
    }
}

impl NodeCore {
    /// Publishes when the store began once it holds a key, and settles a new store's doubt (see
    /// the module docs). Cheap once both are done.
    pub(crate) fn settle_fresh(&mut self) {
        if !self.fresh.published && self.holdings.len() > 0 {
            self.fresh.published = true;
            let _ = self
                .gossip
                .set_app_state(DATA_SINCE_KEY, self.fresh.birth.to_be_bytes().to_vec());
        }
        if !self.fresh.unsure {
            return;
        }
        let mut heard = 0;
        let mut older = false;
        for &id in &self.view.members {
            if id == self.id {
                continue;
            }
            let Some(state) = self.gossip.node_state(&id) else {
                continue;
            };
            heard += 1;
            let since = state
                .app_state(DATA_SINCE_KEY)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            older |= since.is_some_and(|t| t.saturating_add(MARGIN) < self.fresh.birth);
        }
        if heard == 0 {
            return;
        }
        self.fresh.unsure = false;
        if older {
            tracing::warn!(
                node = self.id,
                "this node's store is new and the cluster holds older data: it answers no read \
                 of its ranges until they are refilled (anti-entropy, transfers)"
            );
            let version = self.view.ring_state.version;
            for p in 0..self.view.ring.range_count() {
                if self.replicates(p) {
                    self.transfers.incoming.insert(p);
                    self.transfers.since.insert(p, version);
                }
            }
        }
    }
}
