//! Starting a [`NodeCore`] from what its store kept: the gossip state, the ring (the stored one,
//! or one built from the initial members), the Merkle trees and the hint log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use dynamo_gossip::Gossip;
use dynamo_handoff::{HintLog, HintLogConfig};
use dynamo_ring::{HashFunction, NodeSpec, Ring, RingConfig, Strategy};
use rand::Rng;

use crate::config::NodeConfig;
use crate::types::{Millis, NodeId};

use super::antientropy::AntiEntropy;
use super::holdings::Holdings;
use super::membership::{self, View};
use super::requests::Requests;
use super::storage::{Storage, StorageOp, Then};
use super::transfers::Transfers;
use super::{
    boot, events, reaper, replicated_ranges, Boot, ContextSeal, NodeCore, NodeError, NodeStats,
};

impl NodeCore {
    /// Starts a node from what its store kept ([`Boot::load`]). Drain
    /// [`NodeCore::poll_storage`] and the other outputs before the first input.
    pub fn new(
        id: NodeId,
        address: String,
        config: NodeConfig,
        boot: Boot,
        now: Millis,
        seed: u64,
    ) -> Result<Self, NodeError> {
        boot::ids_checked(id, &config)?;
        boot::config_checked(id, &config)?;
        let Boot {
            mut rng,
            epochs,
            generation,
            ring: stored_ring,
            previous_members,
            former,
            removed,
            leave_asked,
            incoming: stored_incoming,
            refill: stored_refill,
            whole: stored_whole,
            new_store,
            birth,
            reached,
            started,
            previous_generation,
            lost,
            transfers: stored_transfers,
            checkpoints,
            keys,
            hints: records,
            durable,
        } = boot;

        let gossip_config = dynamo_gossip::Config {
            cluster_name: config.cluster.clone(),
            gossip_interval: Duration::from_millis(config.gossip_interval),
            phi_threshold: config.phi_threshold,
            remove_after: Duration::from_millis(config.remove_after.unwrap_or(u64::MAX / 4)),
            rng_seed: seed,
            ..dynamo_gossip::Config::default()
        };
        let mut gossip = Gossip::new(
            gossip_config,
            id,
            address.clone(),
            generation,
            config.seeds.clone(),
        )
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let _ = gossip.set_status(dynamo_gossip::Status::Up);
        if let Some(zone) = Self::own_zone(&config, id) {
            let _ = gossip.set_app_state(membership::ZONE_KEY, zone.into_bytes());
        }
        if config.wait_for_commit {
            let _ = gossip.set_app_state(membership::ADMISSION_KEY, b"staged".to_vec());
        }
        let holds_keys = !keys.is_empty();
        let _ = gossip.set_app_state(
            super::fresh::STORE_KEY,
            super::fresh::store_entry(birth, holds_keys),
        );

        // The ring this node had (a restart resumes from it), or, for a new node, one built from
        // the initial members (version 0: any ring a peer publishes replaces it).
        // A restart on a stored ring coordinates nothing until it has compared that ring with a
        // peer's (`ring_unconfirmed`): the cluster may have moved on meanwhile. A new node's
        // ring is the cluster's first, or provisional.
        let restarted_on_a_ring = stored_ring.is_some();
        let ring_state = match stored_ring {
            Some(state) => {
                let wanted = Self::build_ring(&config, &BTreeSet::from([id]))?;
                if state.ring.config() != wanted.config() {
                    return Err(NodeError::Config(format!(
                        "the stored ring has N={} and {:?}; the configuration asks for N={} and \
                         {:?}",
                        state.ring.replicas(),
                        state.ring.config().strategy,
                        config.n,
                        wanted.config().strategy
                    )));
                }
                state
            }
            None => {
                let mut members: BTreeSet<NodeId> =
                    config.initial_members.iter().copied().collect();
                members.insert(id);
                membership::RingState {
                    version: 0,
                    claimant: 0,
                    ring: Self::build_ring(&config, &members)?,
                    forced: Default::default(),
                }
            }
        };
        // A node's zone reaches the ring when the node joins (or from the initial members'
        // zones) and does not change in place: a start that names another zone than the ring's
        // for this node is refused, as a ring of another N is, rather than gossiping the new
        // zone while every preference list goes on spreading by the old one. A configuration
        // that names no zone keeps the ring's.
        // Checked against a ring that holds the node's zone: a stored one, or an initial
        // member's first ring (built from the members' zones). A joiner's first ring is a guess
        // that holds no zone; its zone reaches the cluster's ring from gossip when it joins.
        let holds_zone = restarted_on_a_ring || config.initial_members.contains(&id);
        if let (true, Some(zone)) = (holds_zone, Self::own_zone(&config, id)) {
            if let Some(spec) = ring_state.ring.nodes().find(|n| n.id == id) {
                if spec.zone.as_deref() != Some(zone.as_str()) {
                    let (theirs, remedy) = match (restarted_on_a_ring, &spec.zone) {
                        (true, Some(z)) => (format!("the ring has node {id} in zone {z:?}"), ""),
                        (true, None) => (format!("the ring has node {id} in no zone"), ""),
                        (false, Some(z)) => (
                            format!("the initial members' zones put node {id} in zone {z:?}"),
                            " (or correct the members' zones on every node of the new cluster)",
                        ),
                        (false, None) => (
                            format!(
                                "the initial members' zones (`member_zones`, `--members \
                                 ID@ZONE`) give node {id} no zone"
                            ),
                            " (or name it in the members' zones on every node of the new \
                             cluster)",
                        ),
                    };
                    return Err(NodeError::Config(format!(
                        "{theirs}; the configuration puts it in zone {zone:?}. A node's zone \
                         does not change in place: start it in its ring's zone{remedy}, or have \
                         it leave (`dynamo leave`), clear its data directory and join it again \
                         in the new zone"
                    )));
                }
            }
        }
        // A node that is not among the initial members joins an existing cluster: its own ring
        // is a guess until it hears the cluster's.
        // So is the ring of a node given seeds but no initial members.
        let ring_provisional = ring_state.version == 0
            && if config.initial_members.is_empty() {
                config.seeds.iter().any(|(s, _)| *s != id)
            } else {
                !config.initial_members.contains(&id)
            };
        let ring_bytes = ring_state.encode();
        let mut storage = Storage::default();
        if !ring_provisional {
            storage.push(
                StorageOp::PutMeta {
                    name: membership::RING_KEY.into(),
                    value: ring_bytes.clone(),
                    sync: false,
                },
                Then::Meta,
            );
            // Every ring the node makes travels in gossip, and is as large as this one.
            gossip
                .set_app_state(membership::RING_KEY, ring_bytes.clone())
                .map_err(|e| {
                    NodeError::Config(format!(
                        "partitions = {}: the ring does not fit in a gossip message ({e}); use \
                         fewer partitions",
                        ring_state.ring.range_count()
                    ))
                })?;
        }
        let ring = ring_state.ring.clone();
        let members: BTreeSet<NodeId> = ring.nodes().map(|n| n.id).collect();
        if !ring_provisional && members.len() < config.n {
            tracing::warn!(
                node = id,
                n = config.n,
                members = members.len(),
                "fewer members than N: keys keep fewer copies until more join, and writes fail \
                 while fewer than W"
            );
        }
        // A node a ring change took out, restarted before it said it left, or one asked to
        // leave: it goes on leaving.
        let leaving = !ring_provisional && ((!ring.contains(&id) && removed) || leave_asked);
        if leaving {
            let _ = gossip.set_status(dynamo_gossip::Status::Leaving);
        }
        let mut holdings = Holdings::new(config.partitions as usize);
        holdings.restore_lost(lost);
        let mut reaper = reaper::Reaper::new(config.tombstone_grace, now);
        for stored in keys {
            let p = ring.range_index(ring.position(&stored.key));
            holdings.stored(p, &stored.key, stored.digest);
            reaper.track_found(&stored.key, stored.tombstone, now);
        }

        let defaults = HintLogConfig::default();
        let backoff = dynamo_handoff::Backoff {
            initial: std::time::Duration::from_millis(config.handoff_interval.max(1)),
            ..defaults.backoff
        };
        let mut hints = HintLog::new(HintLogConfig {
            seed: seed ^ generation,
            backoff,
            max_bytes: config.max_hint_bytes,
            ..defaults
        });
        for record in &records {
            holdings.hint_kept(record)?;
        }
        hints.rebuild(now, records);

        let mut addresses: BTreeMap<NodeId, String> = config.seeds.iter().cloned().collect();
        addresses.insert(id, address.clone());
        // Anti-entropy every 0 ms means none (a configuration file cannot say `None`).
        let mut config = config;
        if config.sync_interval == Some(0) {
            config.sync_interval = None;
        }
        let next_sync = config
            .sync_interval
            .map(|i| now + rng.gen_range(0..i.max(1)));
        let request_timeout = config.request_timeout;
        let sync_interval = config.sync_interval;
        // Partitions still awaited when last persisted, that this node replicates in its ring.
        let awaited: BTreeSet<usize> = if ring_provisional {
            BTreeSet::new()
        } else {
            stored_incoming
                .into_iter()
                .filter(|&p| super::is_primary(&ring, p, id))
                .collect()
        };
        // A new store in a ring with other members: no replica read until it has heard whether
        // the cluster holds older data (see `fresh`).
        let fresh = super::fresh::Fresh::new(
            birth,
            holds_keys,
            new_store && !ring_provisional && members.iter().any(|&m| m != id),
            new_store,
            new_store && ring_provisional,
        );
        // A store with data in a ring with other members: no replica read until a peer has told
        // how far the node's last run got (see `restored`).
        let restored = super::restored::Restored::new(
            reached,
            started,
            previous_generation,
            generation,
            !ring_provisional && members.iter().any(|&m| m != id),
        );
        // Partitions handed over whole when last persisted, that it still hands over.
        let whole: BTreeSet<usize> = stored_whole
            .iter()
            .copied()
            .filter(|&p| {
                !ring_provisional
                    && !super::is_primary(&ring, p, id)
                    && stored_transfers.iter().any(|&(q, _)| q == p)
            })
            .collect();
        let mut core = NodeCore {
            id,
            address,
            config,
            durable,
            storage,
            epochs,
            generation,
            generation_stored: generation,
            rng,
            gossip,
            view: View {
                replicated: replicated_ranges(&ring, id),
                ring,
                ring_state,
                ring_digest: membership::ring_digest(&ring_bytes),
                ring_bytes,
                handoff_published: Vec::new(),
                replicated_changes: 0,
                handoff_stamp: None,
                hints_published: Vec::new(),
                awaiting_published: None,
                ring_provisional,
                ring_heard: false,
                ring_mismatch: None,
                mismatches_said: BTreeSet::new(),
                restarted_on_a_ring,
                adopted_since_start: false,
                members,
                unheard: BTreeSet::new(),
                booted: now,
                departed: BTreeSet::new(),
                former,
                former_changed: false,
                vanished_hold: false,
                vanished_published: Vec::new(),
                forgot_at: None,
                previous_members,
                addresses,
                leaving,
            },
            holdings,
            hints,
            anti_entropy: AntiEntropy::new(sync_interval, next_sync, request_timeout, generation),
            scrub: super::scrub::Scrub::default(),
            transfers: Transfers::resumed(
                stored_transfers,
                checkpoints,
                awaited,
                // Without anti-entropy (turned off since), nothing would end such a wait: the
                // joiner rules end them, as for a new store `fresh` finds with it off.
                (
                    if sync_interval.is_some() {
                        stored_refill
                    } else {
                        BTreeSet::new()
                    },
                    stored_whole,
                ),
                whole,
            ),
            fresh,
            restored,
            silence: super::silence::Silence::default(),
            reaper,
            seal: ContextSeal::unkeyed(),
            // Request ids of one incarnation never meet those of the next (the generation grows
            // by at least one per restart and by the milliseconds between them), so a peer can
            // tell a repeated forward from a new one across restarts.
            requests: Requests::new(generation.saturating_mul(1 << 20).max(1), request_timeout),
            minting: BTreeMap::new(),
            lease_waiters: VecDeque::new(),
            transmits: VecDeque::new(),
            replies: VecDeque::new(),
            stats: NodeStats::default(),
            events: events::Events::default(),
        };
        if core.forced_out(id) {
            core.drop_forced_copies();
        }
        // Hints the store holds for nodes that are no primaries of their keys in the stored
        // ring: kept from before a ring change that the log's own rerouting did not outlive (a
        // buffered store that lost its unsynced writes gave them back), they would wait for good
        // for a node that left. Their keys' primaries get them, as at a ring change.
        if !core.view.ring_provisional {
            core.reroute_misaddressed_hints(now);
        }
        core.hand_over_foreign(now);
        core.publish_awaiting();
        core.publish_handoff();
        core.publish_hint_targets();
        core.gossip.handle_timeout(now);
        core.drain(now);
        Ok(core)
    }

    /// This node's zone: the configured one, or else the one the initial members' zones give
    /// it (as `dynamo serve` fills it in).
    pub(crate) fn own_zone(config: &NodeConfig, id: NodeId) -> Option<String> {
        config.zone.clone().or_else(|| {
            config
                .member_zones
                .iter()
                .find(|(m, _)| *m == id)
                .map(|(_, z)| z.clone())
        })
    }

    fn build_ring(
        config: &NodeConfig,
        members: &BTreeSet<NodeId>,
    ) -> Result<Ring<NodeId>, NodeError> {
        let ring_config = RingConfig {
            hash: HashFunction::Md5,
            strategy: Strategy::EqualPartitions {
                partitions: config.partitions,
            },
            replicas: config.n,
        };
        let zone_of = |m: NodeId| {
            config
                .member_zones
                .iter()
                .find(|(id, _)| *id == m)
                .map(|(_, z)| z.clone())
        };
        let specs = members.iter().map(|&m| {
            let spec = NodeSpec::new(m);
            match zone_of(m) {
                Some(zone) => spec.with_zone(zone),
                None => spec,
            }
        });
        Ring::new(ring_config, specs).map_err(|e| NodeError::Config(e.to_string()))
    }
}
