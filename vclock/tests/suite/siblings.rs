//! Laws of sibling sets and of a put with the context of a read.

use dynamo_vclock::{Causality, Siblings, VClock, Value, Version};
use quickcheck::TestResult;
use quickcheck_macros::quickcheck;

use crate::suite::arb::{Clock, Sibs};

fn merged(a: &Siblings<u8, u8>, b: &Siblings<u8, u8>) -> Siblings<u8, u8> {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn is_antichain(s: &Siblings<u8, u8>) -> bool {
    s.iter().all(|a| {
        s.iter().all(|b| {
            let c = a.clock.compare(&b.clock);
            c == Causality::Concurrent
                || (c == Causality::Equal && (std::ptr::eq(a, b) || a.value != b.value))
        })
    })
}

#[quickcheck]
fn merge_is_commutative(a: Sibs, b: Sibs) -> bool {
    merged(&a.0, &b.0) == merged(&b.0, &a.0)
}

#[quickcheck]
fn merge_is_associative(a: Sibs, b: Sibs, c: Sibs) -> bool {
    merged(&merged(&a.0, &b.0), &c.0) == merged(&a.0, &merged(&b.0, &c.0))
}

#[quickcheck]
fn merge_is_idempotent(a: Sibs, b: Sibs) -> bool {
    let m = merged(&a.0, &b.0);
    let mut again = m.clone();
    merged(&a.0, &a.0) == a.0 && !again.merge(&b.0) && again == m
}

#[quickcheck]
fn merge_keeps_invariant_and_covers_inputs(a: Sibs, b: Sibs) -> bool {
    let m = merged(&a.0, &b.0);
    is_antichain(&m) && m.covers(&a.0) && m.covers(&b.0)
}

#[quickcheck]
fn covers_iff_merge_adds_nothing(a: Sibs, b: Sibs) -> bool {
    let m = merged(&a.0, &b.0);
    // Timestamps aside, merging changes the set exactly when `a` does not cover `b`.
    a.0.covers(&b.0) == (m.len() == a.0.len() && a.0.covers(&m))
}

#[quickcheck]
fn insert_drops_dominated_and_is_dropped_if_dominated(a: Sibs, c: Clock, v: u8) -> bool {
    let mut s = a.0.clone();
    let version = Version::live(c.0.clone(), v);
    let dominated_by_known = a.0.iter().any(|k| k.clock.dominates(&c.0));
    let changed = s.insert(version.clone());
    if dominated_by_known {
        !changed && s == a.0
    } else {
        s.iter()
            .any(|k| k.value == version.value && k.clock.compare(&c.0) == Causality::Equal)
            && s.iter().all(|k| !c.0.dominates(&k.clock))
            && is_antichain(&s)
    }
}

/// "A put with the context of a read supersedes all read versions and nothing else."
#[quickcheck]
fn put_supersedes_exactly_what_was_read(stored: Sibs, read_mask: u8, actor: u8) -> TestResult {
    // Give every stored version a distinct value so that we can follow it.
    let stored: Siblings<u8, u32> = stored
        .0
        .iter()
        .zip(0u32..)
        .map(|(v, i)| Version::live(v.clock.clone(), i))
        .collect();
    let read: Vec<&Version<u8, u32>> = stored
        .iter()
        .enumerate()
        .filter(|(i, _)| read_mask & (1 << (i % 8)) != 0)
        .map(|(_, v)| v)
        .collect();
    let mut ctx = VClock::new();
    for v in &read {
        ctx.merge(&v.clock);
    }
    let mut after = stored.clone();
    let new_clock = after.put(&ctx, actor % 8, 1_000, Value::Live(u32::MAX));
    let present = |value: u32| after.iter().any(|v| v.value == Value::Live(value));

    // The new version is there and descends every read version.
    let ok_new = present(u32::MAX) && read.iter().all(|v| new_clock.dominates(&v.clock));
    // Read versions (and anything in their past) are gone; everything else survives.
    let ok_old = stored.iter().all(|v| {
        let value = *v.value.as_live().unwrap_or(&0);
        present(value) != ctx.descends(&v.clock)
    });
    TestResult::from_bool(ok_new && ok_old)
}

#[test]
fn equal_clocks_with_different_values_stay_siblings() {
    // A reused counter (a node that lost its state) must not silently drop a write: kv679.
    let mut c = VClock::new();
    c.increment(1u8, 10);
    let mut s = Siblings::new();
    assert!(s.insert(Version::live(c.clone(), 1u8)));
    assert!(s.insert(Version::live(c.clone(), 2u8)));
    assert_eq!(s.len(), 2);
    assert!(!s.insert(Version::live(c.clone(), 1u8)));
    // Same version seen later with a later timestamp: merged, not duplicated.
    let mut later = VClock::new();
    later.increment(1u8, 20);
    assert!(s.insert(Version::live(later, 1u8)));
    assert_eq!(s.len(), 2);
}

#[test]
fn put_without_context_is_concurrent_with_other_writers() {
    let mut s: Siblings<u8, &str> = Siblings::new();
    s.put(&VClock::new(), 1, 1, Value::Live("a"));
    s.put(&VClock::new(), 2, 2, Value::Live("b"));
    assert_eq!(s.len(), 2);
    let ctx = s.context();
    s.put(&ctx, 1, 3, Value::Live("c"));
    assert_eq!(s.live_values().collect::<Vec<_>>(), [&"c"]);
}

#[test]
fn put_never_reuses_a_counter() {
    // The context the client holds is behind what the coordinator already issued.
    let mut s: Siblings<u8, &str> = Siblings::new();
    let c1 = s.put(&VClock::new(), 1, 1, Value::Live("a"));
    let c2 = s.put(&c1, 1, 2, Value::Live("b"));
    let c3 = s.put(&c1, 1, 3, Value::Live("c")); // stale: did not see "b"
    assert_eq!(c2.counter(&1), 2);
    assert_eq!(c3.counter(&1), 3);
    // "b" was not read: kept as a sibling of "c".
    let mut values: Vec<_> = s.live_values().copied().collect();
    values.sort_unstable();
    assert_eq!(values, ["b", "c"]);
}

#[test]
fn covers_detects_a_stale_replica() {
    let mut fresh: Siblings<u8, &str> = Siblings::new();
    fresh.put(&VClock::new(), 1, 1, Value::Live("a"));
    let stale = fresh.clone();
    fresh.put(&fresh.context(), 2, 2, Value::Live("b"));
    assert!(fresh.covers(&stale));
    assert!(!stale.covers(&fresh));
    let empty = Siblings::new();
    assert!(!empty.covers(&fresh));
    assert!(fresh.covers(&empty));
}

#[test]
fn unseen_concurrent_version_keeps_its_own_clock() {
    let mut s: Siblings<u8, &str> = Siblings::new();
    let w = s.put(&VClock::new(), 1, 1, Value::Live("w"));
    let mut elsewhere: Siblings<u8, &str> = Siblings::new();
    let u = elsewhere.put(&VClock::new(), 2, 2, Value::Live("u"));
    s.merge(&elsewhere);
    // The client read only "w" and writes through node 1.
    let c = s.put(&w, 1, 3, Value::Live("c"));
    assert_eq!(c.compare(&u), Causality::Concurrent);
    assert!(s
        .iter()
        .any(|v| v.clock == u && v.value == Value::Live("u")));
    // A writer holding only the new clock still has not seen "u".
    s.put(&c, 1, 4, Value::Live("d"));
    let mut values: Vec<_> = s.live_values().copied().collect();
    values.sort_unstable();
    assert_eq!(values, ["d", "u"]);
}
