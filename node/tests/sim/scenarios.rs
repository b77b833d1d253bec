//! Plain scenarios from the paper: hinted handoff (section 4.6), joins and leaves (section 4.8).

use dynamo_node::sim::dist::Dist;
use dynamo_node::sim::workload::{key_bytes, value_op, Outcome, Workload};
use dynamo_node::sim::{Sim, SimConfig};
use dynamo_node::{ClientReply, NodeConfig, NodeId, Store};

fn quiet_cluster(nodes: usize, seed: u64) -> Sim {
    Sim::new(quiet_config(nodes, seed)).expect("cluster starts")
}

fn quiet_config(nodes: usize, seed: u64) -> SimConfig {
    SimConfig {
        seed,
        nodes,
        node: NodeConfig {
            partitions: 16,
            gossip_interval: 200,
            handoff_interval: 200,
            // Anti-entropy off, so that only the mechanism under test can move data.
            sync_interval: None,
            ..NodeConfig::default()
        },
        workload: Workload {
            clients: 0,
            ..Workload::default()
        },
        ..SimConfig::default()
    }
}

/// [`quiet_cluster`] with anti-entropy every `sync_ms`.
fn quiet_cluster_with_sync(nodes: usize, seed: u64, sync_ms: u64) -> Sim {
    let quiet = quiet_config(nodes, seed);
    Sim::new(SimConfig {
        node: NodeConfig {
            sync_interval: Some(sync_ms),
            ..quiet.node.clone()
        },
        ..quiet
    })
    .expect("cluster starts")
}

fn primaries(sim: &Sim, via: NodeId, key: u32) -> Vec<NodeId> {
    let core = sim.node(via).expect("node running");
    core.ring()
        .preference_list(&key_bytes(key))
        .primaries()
        .copied()
        .collect()
}

/// The live values of `key` in `node`'s store, as writer op ids.
fn stored(sim: &Sim, node: NodeId, key: u32) -> Vec<u64> {
    let Some(core) = sim.node(node) else {
        return Vec::new();
    };
    core.store()
        .get(&key_bytes(key))
        .ok()
        .flatten()
        .map(|s| s.live_values().filter_map(|v| value_op(v)).collect())
        .unwrap_or_default()
}

fn stored_context(reply: Option<ClientReply>) -> (Vec<u8>, Vec<NodeId>) {
    match reply {
        Some(ClientReply::Stored { context, replicas }) => (context, replicas),
        other => panic!("put failed: {other:?}"),
    }
}

#[test]
fn a_write_succeeds_through_a_fallback_and_the_hint_reaches_the_node_when_it_returns() {
    let mut sim = quiet_cluster(5, 11);
    sim.run_for(2_000);
    let key = 7;
    let pref = primaries(&sim, 0, key);
    assert_eq!(pref.len(), 3);
    let victim = pref[2];
    let coordinator = pref[0];
    sim.crash(victim, true);
    // Long enough for gossip's failure detector to call it down: the coordinator then writes to
    // the first N healthy nodes, a fallback among them.
    let mut waited = 0;
    while sim.node(coordinator).expect("running").is_up(victim) && waited < 60_000 {
        sim.run_for(500);
        waited += 500;
    }
    assert!(
        !sim.node(coordinator).expect("running").is_up(victim),
        "node {coordinator} still believes {victim} up {waited} ms after its crash"
    );
    let id = sim.next_op_id();
    let (_, replicas) = stored_context(sim.put(coordinator, key, Vec::new()));
    assert!(!replicas.contains(&victim), "{replicas:?}");
    // The paper's section 4.6: the replica meant for the victim went to a fallback, which keeps
    // it with a hint (in its hint log, not among its own keys) until the victim returns.
    sim.run_for(500);
    let fallbacks: Vec<NodeId> = replicas
        .iter()
        .copied()
        .filter(|n| !pref.contains(n))
        .collect();
    let fallback = sim.running().into_iter().find(|&n| {
        !pref.contains(&n)
            && sim
                .node(n)
                .is_some_and(|c| !c.store().hints().unwrap_or_default().is_empty())
    });
    assert!(
        fallback.is_some(),
        "a fallback holds a hint: acknowledging replicas {replicas:?} (fallbacks among them {fallbacks:?}), primaries {pref:?}, counters {:?}",
        sim.node_stats().counters
    );
    assert!(sim.node_stats().counters.hints_recorded >= 1);
    assert!(!stored(&sim, coordinator, key).is_empty());
    sim.restart(victim).expect("restarts");
    sim.run_for(10_000);
    assert!(
        stored(&sim, victim, key).contains(&id),
        "the hint reached node {victim}"
    );
    assert!(sim.node_stats().counters.hints_delivered >= 1);
    let report = sim.check();
    assert!(report.is_clean(), "{report}");
}

/// Review of the thirty-first session: on buffered stores (`--buffered`) a node acknowledged
/// the hints it took back after a flush that was not synced; the fallback then deleted its
/// hint, and a power loss of the node took the write back: a copy the fallback had made durable
/// was gone from both. (Its other primaries still held it here; a write only fallbacks took is
/// then gone for good.) The acknowledgement waits for a sync now.
#[test]
fn a_hint_taken_by_a_buffered_node_survives_its_power_loss() {
    let mut sim = Sim::new(SimConfig {
        // Buffered stores that sync only when the test says.
        buffered: Some(u64::MAX),
        ..quiet_config(5, 11)
    })
    .expect("cluster starts");
    sim.run_for(2_000);
    let key = 7;
    let pref = primaries(&sim, 0, key);
    let (victim, coordinator) = (pref[2], pref[0]);
    sim.crash(victim, true);
    let mut waited = 0;
    while sim.node(coordinator).is_some_and(|c| c.is_up(victim)) && waited < 60_000 {
        sim.run_for(500);
        waited += 500;
    }
    let id = sim.next_op_id();
    stored_context(sim.put(coordinator, key, Vec::new()));
    sim.run_for(500);
    let holds_hint = |sim: &Sim, n: NodeId| {
        sim.node(n)
            .is_some_and(|c| !c.store().hints().unwrap_or_default().is_empty())
    };
    let fallback = sim
        .running()
        .into_iter()
        .find(|&n| !pref.contains(&n) && holds_hint(&sim, n))
        .expect("a fallback holds a hint");
    // Everything so far is durable everywhere: the hint on the fallback.
    for n in sim.running() {
        sim.sync(n);
    }
    sim.restart(victim).expect("restarts");
    let mut waited = 0;
    while holds_hint(&sim, fallback) && waited < 30_000 {
        sim.run_for(200);
        waited += 200;
    }
    assert!(!holds_hint(&sim, fallback), "the hint was delivered");
    assert!(stored(&sim, victim, key).contains(&id));
    // Power goes before the victim's store synced on its own.
    sim.power_loss_keeping(victim, Some(0));
    sim.restart(victim).expect("restarts");
    sim.run_for(2_000);
    assert!(
        stored(&sim, victim, key).contains(&id) || holds_hint(&sim, fallback),
        "the write is gone from node {victim} and from the fallback {fallback}'s hints"
    );
}

/// An operator put a node's data directory back from a backup taken before the node
/// acknowledged a write. Nothing in the store tells that it is behind, and the node served as a
/// full replica: a read through it and the replica that missed the write found nothing, though
/// the write was acknowledged by two of three. Peers remember how far its last run got (its
/// gossip generation and version): it answers no read until one has told it, and one that
/// knew it further than its store records makes it await its ranges until anti-entropy with
/// the other replicas has refilled them.
#[test]
fn a_node_restored_from_a_backup_of_its_last_run_serves_no_read_until_refilled() {
    restored_from_a_backup(false);
}

/// As above, with a backup taken before the node's last restart (judged by the generation).
#[test]
fn a_node_restored_from_a_backup_of_an_earlier_run_serves_no_read_until_refilled() {
    restored_from_a_backup(true);
}

fn restored_from_a_backup(restart_after_backup: bool) {
    let mut sim = quiet_cluster_with_sync(3, 13, 5_000);
    sim.run_for(2_000);
    let key = 7;
    let (restored, other, missed) = (0, 1, 2);
    let backup = sim.backup(restored).expect("running");
    if restart_after_backup {
        sim.crash(restored, true);
        sim.restart(restored).expect("restarts");
        sim.run_for(1_000);
    } else {
        // The node runs on past its backup.
        sim.run_for(10_000);
    }
    // A plain restart finds its store current: it awaits nothing.
    assert_eq!(
        sim.node(restored)
            .expect("running")
            .status()
            .partitions_incoming,
        0
    );
    sim.partition(&[missed], &[restored, other]);
    let id = sim.next_op_id();
    stored_context(sim.put(restored, key, Vec::new()));
    assert!(stored(&sim, other, key).contains(&id));
    sim.crash(restored, true);
    sim.restore(restored, backup);
    sim.restart(restored).expect("restarts");
    sim.heal();
    // The reads through `missed` ask the restored node and itself: at once (before any peer
    // told the restored node anything), and after a few gossip rounds.
    sim.partition(&[other], &[missed]);
    for wait in [0, 1_000] {
        sim.run_for(wait);
        match sim.get(missed, key) {
            Some(ClientReply::Got { values, .. }) => assert!(
                values.iter().any(|v| value_op(v) == Some(id)),
                "a read through the restored node {wait} ms after its start found {} values, \
                 not the acknowledged write",
                values.len()
            ),
            Some(ClientReply::Failed(_)) | None => {}
            Some(other) => panic!("a get answered {other:?}"),
        }
    }
    sim.heal();
    sim.run_for(300_000);
    assert!(stored(&sim, restored, key).contains(&id), "refilled");
    assert_eq!(
        sim.node(restored)
            .expect("running")
            .status()
            .partitions_incoming,
        0,
        "the wait ended"
    );
    assert!(
        matches!(sim.get(missed, key), Some(ClientReply::Got { values, .. })
            if values.iter().any(|v| value_op(v) == Some(id))),
        "the write is read once the restored node is refilled"
    );
}

/// A restored node that alone replicates its ranges (N = 1) has nobody to refill them: it
/// awaits none (review of the restored-backup change: it awaited them for good, refusing every
/// read of its keys).
#[test]
fn a_restored_node_alone_in_its_ranges_awaits_nothing() {
    let quiet = quiet_config(2, 14);
    let mut sim = Sim::new(SimConfig {
        node: NodeConfig {
            n: 1,
            r: 1,
            w: 1,
            sync_interval: Some(1_000),
            ..quiet.node.clone()
        },
        ..quiet
    })
    .expect("cluster starts");
    sim.run_for(2_000);
    let backup = sim.backup(0).expect("running");
    sim.run_for(10_000);
    sim.crash(0, true);
    sim.restore(0, backup);
    sim.restart(0).expect("restarts");
    sim.run_for(5_000);
    let core = sim.node(0).expect("running");
    assert!(!core.unsure());
    assert_eq!(core.status().partitions_incoming, 0);
}

/// A plain restart (its store current) answers reads again as soon as the members alive have
/// told it how far its last run got, not after its failure detector took a member that was
/// down before it started for down (review of the restored-backup change: a member down was
/// waited for as long as it was deemed up, about the detector's grace).
#[test]
fn a_restart_with_a_member_down_answers_reads_within_a_few_rounds() {
    let mut sim = quiet_cluster_with_sync(5, 16, 5_000);
    sim.run_for(2_000);
    sim.crash(4, true);
    let mut waited = 0;
    while (0..4).any(|n| sim.node(n).is_some_and(|c| c.is_up(4))) && waited < 60_000 {
        sim.run_for(500);
        waited += 500;
    }
    sim.crash(0, true);
    sim.restart(0).expect("restarts");
    // Five gossip rounds.
    sim.run_for(1_000);
    let core = sim.node(0).expect("running");
    assert!(
        !core.unsure(),
        "node 0 still in doubt five rounds after its restart"
    );
    assert_eq!(core.status().partitions_incoming, 0);
}

#[test]
fn a_joining_node_receives_its_ranges() {
    let mut sim = quiet_cluster(4, 12);
    sim.run_for(2_000);
    let keys = 60;
    let mut written = Vec::new();
    for key in 0..keys {
        let id = sim.next_op_id();
        stored_context(sim.put((key % 4) as NodeId, key, Vec::new()));
        written.push((key, id));
    }
    sim.run_for(1_000);
    let new = sim.add_node().expect("joins");
    sim.run_for(20_000);
    let mut owned = 0;
    for &(key, id) in &written {
        for n in 0..5 {
            let pref = primaries(&sim, n, key);
            assert_eq!(
                pref,
                primaries(&sim, 0, key),
                "every node agrees on the ring"
            );
        }
        let pref = primaries(&sim, new, key);
        if pref.contains(&new) {
            owned += 1;
            assert!(
                stored(&sim, new, key).contains(&id),
                "new node {new} holds key {key} of which it is a primary"
            );
        }
        for &p in &pref {
            assert!(
                stored(&sim, p, key).contains(&id),
                "primary {p} holds key {key}"
            );
        }
    }
    assert!(owned > 0, "the new node took over some ranges");
}

#[test]
fn a_leaving_node_hands_its_ranges_over() {
    let mut sim = quiet_cluster(5, 13);
    sim.run_for(2_000);
    let keys = 60;
    let mut written = Vec::new();
    for key in 0..keys {
        let id = sim.next_op_id();
        stored_context(sim.put((key % 5) as NodeId, key, Vec::new()));
        written.push((key, id));
    }
    sim.run_for(1_000);
    let leaver: NodeId = 2;
    let had: usize = written
        .iter()
        .filter(|(k, _)| primaries(&sim, 0, *k).contains(&leaver))
        .count();
    assert!(had > 0);
    sim.leave(leaver);
    sim.run_for(20_000);
    // Once it has handed over, the node goes away for good, disk and all.
    sim.crash(leaver, false);
    for &(key, id) in &written {
        let pref = primaries(&sim, 0, key);
        assert!(!pref.contains(&leaver), "node {leaver} left the ring");
        for &p in &pref {
            assert_eq!(primaries(&sim, p, key), pref, "node {p} agrees on the ring");
            assert!(
                stored(&sim, p, key).contains(&id),
                "primary {p} holds key {key}"
            );
        }
    }
    let report = sim.check();
    assert!(report.is_clean(), "{report}");
}

/// The largest number of versions any replica holds for one key after `ops` operations.
fn widest_sibling_set(read_before_write: bool) -> usize {
    let mut sim = Sim::new(SimConfig {
        seed: 3,
        nodes: 4,
        workload: Workload {
            clients: 1,
            keys: 20,
            deletes: 0.0,
            read_before_write,
            ..Workload::default()
        },
        keep_history: false,
        ..SimConfig::default()
    })
    .expect("cluster starts");
    sim.run_ops(2_000);
    (0..4)
        .filter_map(|n| sim.node(n))
        .map(|core| {
            let mut widest = 0;
            core.store()
                .scan(&mut |_, s| widest = widest.max(s.len()))
                .expect("scan");
            widest
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_single_read_modify_write_client_never_makes_siblings_and_blind_writes_do() {
    assert_eq!(widest_sibling_set(true), 1);
    assert!(widest_sibling_set(false) > 1);
}

/// A reply already on its way to the client when its coordinator crashes still arrives, as the
/// bytes a process wrote to its socket before it died do: the operation is answered, not timed
/// out. (Counting it as timed out took the writes acknowledged just before a crash, the ones most
/// at risk, out of the lost-write check.)
#[test]
fn a_reply_on_its_way_when_the_coordinator_crashes_still_reaches_the_client() {
    let mut sim = Sim::new(SimConfig {
        seed: 7,
        nodes: 3,
        node: NodeConfig {
            partitions: 16,
            sync_interval: None,
            ..NodeConfig::default()
        },
        workload: Workload {
            clients: 1,
            reads: 0.0,
            writes: 1.0,
            deletes: 0.0,
            // The first request reaches its node at 20 ms, is answered a few ms later, and the
            // answer reaches the client at about 45 ms.
            client_latency: Dist::Constant(20.0),
            think_time: Dist::Constant(10_000.0),
            ..Workload::default()
        },
        ..SimConfig::default()
    })
    .expect("cluster starts");
    sim.run_for(35);
    let op = sim
        .history()
        .ops()
        .next()
        .cloned()
        .expect("the client sent a put");
    assert_eq!(
        op.outcome,
        Outcome::Pending,
        "its answer is still on its way"
    );
    sim.crash(op.node, true);
    sim.run_for(100);
    let op = sim.history().get(op.id).cloned().expect("recorded");
    assert_eq!(op.outcome, Outcome::Ok, "{op:?}");
}

/// A replica on a buffered store reaps a tombstone it had only just received (through
/// anti-entropy, after it was away past the grace period), and loses power before its store
/// synced on its own: everything since the last sync is lost, its fence with its memory. It
/// restarts after `down` ms. Returns the simulation, the key and the deleted value's writer.
///
/// Its disk held the value, not the tombstone, so it came back with the deleted value, which
/// no tombstone anywhere covered any more; a replica on a store that may lose flushed writes
/// now makes a tombstone durable before its read answer can count toward a reap.
fn reaped_then_power_lost(down: u64) -> (Sim, u32, u64) {
    let grace = 4_000;
    let mut sim = Sim::new(SimConfig {
        seed: 5,
        nodes: 3,
        node: NodeConfig {
            partitions: 16,
            gossip_interval: 200,
            handoff_interval: 200,
            sync_interval: Some(150),
            tombstone_grace: Some(grace),
            ..NodeConfig::default()
        },
        workload: Workload {
            clients: 0,
            ..Workload::default()
        },
        // Buffered stores that sync only when the test says.
        buffered: Some(u64::MAX),
        ..SimConfig::default()
    })
    .expect("cluster starts");
    sim.run_for(2_000);
    let key = 3;
    let (victim, coordinator) = (2, 0);
    let value = sim.next_op_id();
    stored_context(sim.put(coordinator, key, Vec::new()));
    sim.run_for(1_000);
    let context = match sim.get(coordinator, key) {
        Some(ClientReply::Got { context, .. }) => context,
        other => panic!("get failed: {other:?}"),
    };
    assert_eq!(stored(&sim, victim, key), vec![value]);
    for n in 0..3 {
        sim.sync(n);
    }
    // The delete reaches the victim only after the grace period, through anti-entropy.
    sim.isolate(victim);
    stored_context(sim.delete(coordinator, key, context));
    sim.run_for(grace + 2_000);
    sim.heal();
    let held = |sim: &Sim| {
        sim.node(victim)
            .and_then(|c| c.store().get(&key_bytes(key)).ok())
            .flatten()
    };
    let mut tombstone = false;
    let mut reaped = false;
    for _ in 0..600 {
        sim.run_for(50);
        match held(&sim) {
            Some(s) => tombstone |= s.is_tombstone_only(),
            None if tombstone => {
                reaped = true;
                break;
            }
            None => {}
        }
    }
    assert!(reaped, "the victim got the tombstone and reaped it");
    // Power goes before the victim's store synced the tombstone or the reap.
    sim.power_loss_keeping(victim, Some(0));
    sim.run_for(down);
    sim.restart(victim).expect("restarts");
    (sim, key, value)
}

/// [`reaped_then_power_lost`], back at once: it holds the tombstone it synced before it
/// answered the reaper, not the value, and the cluster converges without it. (Before that sync,
/// it came back with the value, and only the Reap the other replicas' fences answer with took
/// it away, d6d0914's fix: the checker could not see either while its disks were durable at
/// every step.)
#[test]
fn a_replica_that_loses_power_after_a_reap_does_not_keep_the_deleted_value() {
    let (mut sim, key, _) = reaped_then_power_lost(0);
    let back = sim
        .node(2)
        .and_then(|c| c.store().get(&key_bytes(key)).ok())
        .flatten();
    assert!(
        back.as_ref().is_some_and(|s| s.is_tombstone_only()),
        "the tombstone survived the power loss: {back:?}"
    );
    sim.run_for(5_000);
    assert!(sim.settle(60_000, 250).is_some(), "converged");
    assert_eq!(stored(&sim, 2, key), Vec::<u64>::new());
    let report = sim.check();
    assert!(report.is_clean(), "{report}");
}

/// [`reaped_then_power_lost`], back after the other replicas' fences expired: nothing may take
/// the deleted value for a new one.
#[test]
fn a_replica_back_from_a_power_loss_after_the_fences_expired_does_not_bring_the_value_back() {
    let (mut sim, key, _) = reaped_then_power_lost(11 * 60_000);
    sim.run_for(5_000);
    assert!(sim.settle(60_000, 250).is_some(), "converged");
    for n in 0..3 {
        assert_eq!(stored(&sim, n, key), Vec::<u64>::new(), "node {n}");
    }
    let report = sim.check();
    assert!(report.is_clean(), "{report}");
}

/// A paused node (a stopped process) answers nothing while paused and then answers what waited,
/// its clock jumped ahead; a pause ended early leaves the next one to run its whole course.
#[test]
fn a_paused_node_answers_what_waited_once_it_resumes() {
    let mut sim = quiet_cluster(3, 11);
    sim.run_for(2_000);
    assert!(matches!(
        sim.put(0, 1, Vec::new()),
        Some(ClientReply::Stored { .. })
    ));
    let timeout = sim.config().workload.client_timeout;
    sim.pause(0, 3 * timeout);
    assert!(sim.paused(0));
    // Nothing comes back while it is paused: the client gives up.
    assert_eq!(sim.get(0, 1), None);
    assert!(sim.paused(0));
    // Once it resumes on its own, it answers.
    sim.run_for(2 * timeout + 100);
    assert!(!sim.paused(0));
    assert!(matches!(sim.get(0, 1), Some(ClientReply::Got { .. })));
    // A pause ended early, then another: the first one's scheduled end leaves the second be.
    sim.pause(0, 1_000);
    sim.resume(0);
    sim.pause(0, 10_000);
    sim.run_for(2_000);
    assert!(sim.paused(0), "the first pause's end cut the second short");
    sim.resume_all();
    assert!(!sim.paused(0));
    assert_eq!(sim.stats().pauses, 3);
}
