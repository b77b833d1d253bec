//! Pruning policies, and what pruning can do wrong, made visible by the report.

use dynamo_vclock::{Causality, Entry, PrunePolicy, Siblings, VClock, Value, Version};

fn clock(entries: &[(u8, u64, u64)]) -> VClock<u8> {
    VClock::from_entries(entries.iter().map(|&(actor, counter, timestamp)| Entry {
        actor,
        counter,
        timestamp,
    }))
}

#[test]
fn paper_policy_keeps_ten_dropping_oldest() {
    let mut c = VClock::new();
    for actor in 0..12u8 {
        // Actor 11 is the oldest, then 10, ...
        c.increment(actor, 100 - u64::from(actor));
    }
    let report = c.prune(&PrunePolicy::default(), 1_000);
    assert_eq!(c.len(), 10);
    let removed: Vec<u8> = report.removed.iter().map(|e| e.actor).collect();
    assert_eq!(removed, [11, 10]);
    assert!(c.prune(&PrunePolicy::paper(), 1_000).is_empty());
}

#[test]
fn riak_policy_defaults() {
    let policy = PrunePolicy::riak();
    let day = 86_400_000;
    // At most `small` (50) entries: never pruned, however old.
    let mut small = VClock::new();
    for a in 0..50u8 {
        small.increment(a, 0);
    }
    assert!(small.prune(&policy, 10 * day).is_empty());

    // 60 entries, all younger than `young` (20 s): kept.
    let mut big = VClock::new();
    for a in 0..60u8 {
        big.increment(a, day + u64::from(a));
    }
    assert!(big.clone().prune(&policy, day + 10_000).is_empty());
    // Older than `young`: pruned down to `big` (50), oldest first.
    let report = big.prune(&policy, day + 60_000);
    assert_eq!(big.len(), 50);
    assert_eq!(
        report.removed.iter().map(|e| e.actor).collect::<Vec<_>>(),
        (0..10).collect::<Vec<u8>>()
    );

    // 55 entries within `big` but 5 older than `old` (1 day): those 5 go.
    let mut old = VClock::new();
    for a in 0..55u8 {
        old.increment(a, if a < 5 { 0 } else { 2 * day });
    }
    let report = old.prune(&policy, 2 * day + 60_000);
    assert_eq!(report.removed.len(), 5);
    assert_eq!(old.len(), 50);
}

/// Harmless: a pruned clock makes a newer version look concurrent with its ancestor (a sibling).
#[test]
fn pruning_can_turn_a_descendant_into_a_sibling() {
    let ancestor = clock(&[(1, 1, 10), (2, 1, 20)]);
    let mut newer = ancestor.clone();
    newer.increment(3, 30);
    assert_eq!(newer.compare(&ancestor), Causality::After);

    let report = newer.prune(&PrunePolicy::Paper { max_entries: 2 }, 40);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(newer.compare(&ancestor), Causality::Concurrent);

    let mut s = Siblings::new();
    s.insert(Version::live(ancestor, "old"));
    s.insert(Version::live(newer, "new"));
    assert_eq!(s.len(), 2, "the obsolete version comes back as a sibling");
}

/// Worst case: the actor of the newest event had a lagging clock, its entry looks oldest and is
/// pruned, and the newer version looks dominated by its own ancestor: a lost update. The report
/// shows it.
#[test]
fn pruning_can_lose_an_update_and_reports_it() {
    let ancestor = clock(&[(1, 1, 10), (2, 1, 200), (3, 1, 300)]);
    let mut newer = ancestor.clone();
    newer.increment(1, 50); // node 1's wall clock lags behind
    assert_eq!(newer.compare(&ancestor), Causality::After);

    let mut pruned = newer.clone();
    let report = pruned.prune(&PrunePolicy::Paper { max_entries: 2 }, 400);
    assert_eq!(
        report.removed,
        [Entry {
            actor: 1,
            counter: 2,
            timestamp: 50
        }]
    );
    assert_eq!(pruned.compare(&ancestor), Causality::Before);

    // In a sibling set the newer value is discarded, and Siblings::prune counts it.
    let mut s: Siblings<u8, &str> = Siblings::new();
    s.insert(Version::live(newer, "new"));
    let mut other = Siblings::new();
    other.insert(Version::live(ancestor.clone(), "old"));
    let mut both = s.clone();
    both.merge(&other);
    assert_eq!(both.live_values().collect::<Vec<_>>(), [&"new"]);
    s.prune(&PrunePolicy::Paper { max_entries: 2 }, 400);
    s.merge(&other);
    assert_eq!(s.live_values().collect::<Vec<_>>(), [&"old"], "lost update");

    let mut set: Siblings<u8, &str> = Siblings::new();
    set.insert(Version::live(clock(&[(1, 2, 50), (2, 1, 200)]), "a"));
    set.insert(Version::live(clock(&[(1, 1, 10), (2, 2, 300)]), "b"));
    let report = set.prune(&PrunePolicy::Paper { max_entries: 1 }, 400);
    assert_eq!(report.versions_dropped, 1);
    assert_eq!(set.live_values().collect::<Vec<_>>(), [&"b"]);
}

/// A version that pruning makes look dominated by another version holding the same value loses
/// nothing: the value is still there, and the report does not count it as a lost update.
#[test]
fn pruning_that_drops_a_copy_of_a_surviving_value_reports_no_loss() {
    let policy = PrunePolicy::Paper { max_entries: 1 };
    let mut set: Siblings<u8, &str> = Siblings::new();
    set.insert(Version::live(clock(&[(1, 2, 50), (2, 1, 200)]), "a"));
    set.insert(Version::live(clock(&[(1, 1, 10), (2, 2, 300)]), "a"));
    assert_eq!(set.len(), 2);
    let report = set.prune(&policy, 400);
    assert_eq!(set.live_values().collect::<Vec<_>>(), [&"a"]);
    assert_eq!(report.versions_dropped, 0, "{report:?}");

    // A tombstone that pruning drops under a live value is a lost delete: counted.
    let mut set: Siblings<u8, &str> = Siblings::new();
    set.insert(Version::tombstone(clock(&[(1, 2, 50), (2, 1, 200)])));
    set.insert(Version::live(clock(&[(1, 1, 10), (2, 2, 300)]), "a"));
    let report = set.prune(&policy, 400);
    assert_eq!(set.live_values().collect::<Vec<_>>(), [&"a"]);
    assert_eq!(report.versions_dropped, 1);
}

#[test]
fn never_policy_and_value_option() {
    let mut c = clock(&[(1, 1, 0), (2, 1, 0)]);
    assert!(c.prune(&PrunePolicy::Never, 1 << 40).is_empty());
    assert_eq!(Value::from(None::<u8>), Value::Tombstone);
}
