//! A member on a new, empty store: a node that lost its disk (its data directory emptied, as the
//! stores' own errors advise for damage that cannot be mended), or one of a new cluster's first
//! nodes. Its ring names it a replica of its ranges, and before this module its "not found"
//! counted toward R for every key the other replicas hold, until anti-entropy had refilled it:
//! with R = 2, a read through it and one replica that missed a write returned nothing.
//!
//! Every node publishes in gossip when its store began and whether it holds keys ([`STORE_KEY`]:
//! the start time of the store's first incarnation and a flag, in one entry, so that no delta
//! cut short carries one without the other). A node started on a new store answers no replica
//! read ([`Fresh::unsure`], persisted until settled, so that a restart in the meantime is as
//! unsure) until it has heard every other member's entry, or one peer that holds keys in a store
//! older than its own by more than [`MARGIN`] (a peer as new as itself may have lost its disk at
//! the same moment, and tells nothing of the others). If a peer does, the node awaits every
//! range it replicates until anti-entropy with the settled replicas shows it whole. No
//! hand-over ends such a wait (one resumed from a checkpoint taken before the store was lost
//! would not bring what it lost), so it is only taken with anti-entropy on: without it nothing
//! would end the wait, and the node serves as it is, as after a skipped ring change.
//! The stores' starts are read on each node's clock; a node whose clock reads earlier than when
//! it last started (its gossip generation raised past what peers knew of it) counts every peer
//! that holds keys as older. Else (a new cluster, whose stores began together) it serves as it
//! is. A node with no other
//! member, or that has not heard every member within [`UNSURE_ROUNDS`] gossip rounds (one down,
//! or of a version that does not publish the entry), serves as it is too, with a warning. In a
//! cluster that holds data nearly every member holds keys, so the first peers heard decide; the
//! doubt lasts about one gossip round (a new cluster's, until every member has gossiped).

use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::types::Millis;

/// The gossip entry of every node: when its store began (ms, big-endian), then 1 if it holds
/// keys, else 0 (see [`store_entry`]).
pub(crate) const STORE_KEY: &str = "store";

/// The [`STORE_KEY`] entry of a store that began at `birth`.
pub(crate) fn store_entry(birth: Millis, holds_keys: bool) -> Vec<u8> {
    let mut bytes = birth.to_be_bytes().to_vec();
    bytes.push(u8::from(holds_keys));
    bytes
}

/// A [`STORE_KEY`] entry read: when the store began, and whether it holds keys.
fn read_store_entry(bytes: &[u8]) -> Option<(Millis, bool)> {
    let (birth, holds) = bytes.split_first_chunk::<8>()?;
    match holds {
        [h] => Some((u64::from_be_bytes(*birth), *h == 1)),
        _ => None,
    }
}

/// The store meta name of when the store began.
pub(crate) const BIRTH_META: &str = "store-birth";

/// The store meta name that holds `[1]` while a new store is unsure (see the module docs), and
/// nothing once settled.
pub(crate) const UNSURE_META: &str = "store-unsure";

/// How much older a peer's store must be than a new one's for its keys to be data this node
/// lacks (the nodes of a new cluster start within this of each other; clocks may differ).
pub(crate) const MARGIN: Millis = 10_000;

/// Gossip rounds after its start a new store waits at most to hear a peer that tells.
pub const UNSURE_ROUNDS: u64 = 20;

/// What a node knows of its store's age.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    /// When the store began.
    pub(crate) birth: Millis,
    /// A new store whose node has not yet heard whether the cluster holds older data: it
    /// answers no replica read.
    pub(crate) unsure: bool,
    /// Whether it published that it holds keys.
    published: bool,
    /// The holdings' occupancy count when it last looked whether it holds keys: until it
    /// changes, the answer has not.
    looked_at: Option<u64>,
    /// Whether the store records it unsure.
    persisted_unsure: bool,
    /// A new store on a provisional ring (a joiner's guess): whether it joins or lost its disk
    /// as a member of the cluster is known from the first ring it hears (see
    /// [`NodeCore::first_ring_heard`]); its record stays until then.
    pub(crate) on_provisional: bool,
    /// When the doubt began, if after the node started (the first ring heard named it a
    /// member): the [`UNSURE_ROUNDS`] count from then.
    doubt_since: Millis,
}

impl Fresh {
    /// A store that began at `birth`, holding keys or not (`holds_keys`, as published at
    /// start); `unsure` for a new one (or one still unsure when it stopped) in a ring with other
    /// members; `stored` if the store records it unsure (also when it has nothing to be unsure
    /// of: a node alone; the record then goes), `on_provisional` if it is a new one on a
    /// provisional ring.
    pub(crate) fn new(
        birth: Millis,
        holds_keys: bool,
        unsure: bool,
        stored: bool,
        on_provisional: bool,
    ) -> Self {
        Fresh {
            birth,
            unsure,
            published: holds_keys,
            looked_at: None,
            persisted_unsure: stored,
            on_provisional,
            doubt_since: 0,
        }
    }
}

impl NodeCore {
    /// Whether this node answers no replica read until it hears from its peers: its store is new
    /// and it has not heard yet how old the cluster's data is (see the [module docs](self)), or
    /// it restarted on a store with data and no peer has told it yet how far its last run got
    /// (its store may have gone back: see `restored`).
    pub fn unsure(&self) -> bool {
        self.fresh.unsure || self.restored.doubt
    }

    /// Publishes when the store began once it holds a key, and settles a new store's doubt (see
    /// the module docs). Cheap once both are done.
    pub(crate) fn settle_fresh(&mut self, now: Millis) {
        let occupancy = self.holdings.occupancy_changes();
        if !self.fresh.published && self.fresh.looked_at != Some(occupancy) {
            self.fresh.looked_at = Some(occupancy);
            if self.holdings.len() > 0 {
                self.fresh.published = true;
                let _ = self
                    .gossip
                    .set_app_state(STORE_KEY, store_entry(self.fresh.birth, true));
            }
        }
        if !self.fresh.unsure {
            return;
        }
        let mut unheard = false;
        let mut older = false;
        // Peers knew an earlier incarnation of this node than its store's (gossip raised its
        // generation past theirs: its clock reads earlier than when it last started): the store
        // is newer than the node, whatever the clocks say of the stores' starts.
        let known_before = self.gossip.stats().raised_generation > 0;
        for &id in &self.view.members {
            if id == self.id {
                continue;
            }
            let entry = self
                .gossip
                .node_state(&id)
                .and_then(|state| state.app_state(STORE_KEY))
                .and_then(read_store_entry);
            let Some((birth, holds_keys)) = entry else {
                unheard = true;
                continue;
            };
            // One peer whose store is older and holds keys decides: this node lacks its data.
            // Any other answer decides only with every member's: a peer whose store began with
            // this one's may have lost its disk at the same time (a new cluster's nodes all
            // say so), an older one without keys may be a joiner still awaiting its ranges.
            older |=
                holds_keys && (known_before || birth.saturating_add(MARGIN) < self.fresh.birth);
        }
        let waited = now
            >= self
                .view
                .booted
                .max(self.fresh.doubt_since)
                .saturating_add(self.config.gossip_interval.saturating_mul(UNSURE_ROUNDS));
        if older {
            if self.config.sync_interval.is_some() {
                tracing::warn!(
                    node = self.id,
                    "this node's store is new and the cluster holds older data: it answers no \
                     read of its ranges until anti-entropy has refilled them"
                );
                // No hand-over ends this wait, only anti-entropy: one resumed from a checkpoint
                // taken before the store was lost does not bring what the store lost, whatever
                // ring it runs under (the node may still hold the ring it started with). A later
                // ring that gives the node a range anew records its own start.
                self.await_refill();
            } else {
                tracing::warn!(
                    node = self.id,
                    "this node's store is new and the cluster holds older data; with \
                     anti-entropy off only read repair refills it, and its answers count as \
                     they are"
                );
            }
        } else if unheard && !waited {
            return;
        } else if unheard {
            tracing::warn!(
                node = self.id,
                "this node's store is new and not every peer said how old its data is: serving \
                 as it is"
            );
        }
        self.fresh.unsure = false;
        // A claimant claims nothing while unsure (see `claim`): what gossip reported meanwhile
        // (a joiner, a leave) is claimed now.
        if !self.view.leaving {
            self.claim(now);
        }
    }

    /// Awaits every range this node replicates with other replicas until anti-entropy with them
    /// shows it whole: its store lacks what they hold (a new store in a cluster with older
    /// data, or one that went back: `restored`). A range it alone replicates (N = 1) has
    /// nobody to refill it, and nothing would end the wait.
    pub(crate) fn await_refill(&mut self) {
        for p in 0..self.view.ring.range_count() {
            let others = super::primaries_of(&self.view.ring, p)
                .into_iter()
                .any(|n| n != self.id);
            if others && self.replicates(p) {
                self.transfers.incoming.insert(p);
                self.transfers.since.insert(p, u64::MAX);
            }
        }
    }

    /// A node on a provisional ring adopts `ring`, the first it heard: on a new store, if the
    /// ring already names it a member, it is a member that lost its disk (a joiner is added by
    /// a ring made after it published the cluster's: `claim`), not a joiner: unsure, as a new
    /// store of a member is at start. Its ranges are then awaited as the joiner rules say until
    /// it has heard its peers, and then as [`Self::settle_fresh`] says: a hand-over resumed from
    /// a checkpoint taken before the store was lost (its sender cannot know) ends no such wait.
    pub(crate) fn first_ring_heard(
        &mut self,
        now: Millis,
        ring: &dynamo_ring::Ring<crate::types::NodeId>,
    ) {
        if !std::mem::take(&mut self.fresh.on_provisional) {
            return;
        }
        if ring.contains(&self.id) && ring.nodes().any(|n| n.id != self.id) {
            tracing::warn!(
                node = self.id,
                "this node's store is new and the cluster's ring already names it a member: it \
                 lost its data"
            );
            self.fresh.unsure = true;
            self.fresh.doubt_since = now;
        }
    }

    /// The op that records a new store's doubt settled, once it is (after the partitions it
    /// awaits are persisted: `drain` runs it after them).
    pub(crate) fn persist_fresh(&mut self) {
        if self.fresh.unsure || self.fresh.on_provisional || !self.fresh.persisted_unsure {
            return;
        }
        self.fresh.persisted_unsure = false;
        self.store_op(
            StorageOp::PutMeta {
                name: UNSURE_META.into(),
                value: Vec::new(),
                sync: false,
            },
            Then::Meta,
        );
    }
}
