//! Laws of the vector clock, checked against a naive map-based reference.

use std::collections::BTreeMap;

use dynamo_vclock::{Causality, Entry, VClock};
use quickcheck_macros::quickcheck;

use crate::suite::arb::Clock;

fn reference(a: &VClock<u8>, b: &VClock<u8>) -> Causality {
    let ma: BTreeMap<u8, u64> = a.entries().map(|e| (e.actor, e.counter)).collect();
    let mb: BTreeMap<u8, u64> = b.entries().map(|e| (e.actor, e.counter)).collect();
    let ge = mb
        .iter()
        .all(|(k, v)| ma.get(k).copied().unwrap_or(0) >= *v);
    let le = ma
        .iter()
        .all(|(k, v)| mb.get(k).copied().unwrap_or(0) >= *v);
    match (ge, le) {
        (true, true) => Causality::Equal,
        (true, false) => Causality::After,
        (false, true) => Causality::Before,
        (false, false) => Causality::Concurrent,
    }
}

#[quickcheck]
fn compare_matches_reference(a: Clock, b: Clock) -> bool {
    a.0.compare(&b.0) == reference(&a.0, &b.0)
}

#[quickcheck]
fn compare_is_antisymmetric(a: Clock, b: Clock) -> bool {
    a.0.compare(&b.0) == b.0.compare(&a.0).reverse()
}

#[quickcheck]
fn compare_consistent_with_descends(a: Clock, b: Clock) -> bool {
    let c = a.0.compare(&b.0);
    a.0.descends(&b.0) == matches!(c, Causality::After | Causality::Equal)
        && b.0.descends(&a.0) == matches!(c, Causality::Before | Causality::Equal)
        && (a.0.descends(&b.0) && b.0.descends(&a.0)) == (c == Causality::Equal)
        && a.0.dominates(&b.0) == (c == Causality::After)
}

#[quickcheck]
fn merge_is_commutative(a: Clock, b: Clock) -> bool {
    a.0.merged(&b.0) == b.0.merged(&a.0)
}

#[quickcheck]
fn merge_is_associative(a: Clock, b: Clock, c: Clock) -> bool {
    a.0.merged(&b.0).merged(&c.0) == a.0.merged(&b.0.merged(&c.0))
}

#[quickcheck]
fn merge_is_idempotent(a: Clock, b: Clock) -> bool {
    let m = a.0.merged(&b.0);
    a.0.merged(&a.0) == a.0 && m.merged(&b.0) == m
}

#[quickcheck]
fn merge_descends_both_and_is_least(a: Clock, b: Clock, c: Clock) -> bool {
    let m = a.0.merged(&b.0);
    let least = !(c.0.descends(&a.0) && c.0.descends(&b.0)) || c.0.descends(&m);
    m.descends(&a.0) && m.descends(&b.0) && least
}

#[quickcheck]
fn increment_makes_after(a: Clock, actor: u8, now: u64) -> bool {
    let mut b = a.0.clone();
    let before = a.0.counter(&actor);
    let n = b.increment(actor, now);
    n == before + 1
        && b.compare(&a.0) == Causality::After
        && a.0.compare(&b) == Causality::Before
        && b.get(&actor).map(|e| e.timestamp) == Some(now)
}

#[quickcheck]
fn entries_stay_sorted_unique_nonzero(a: Clock, b: Clock, actor: u8) -> bool {
    let mut m = a.0.merged(&b.0);
    m.increment(actor % 10, 1);
    let e: Vec<_> = m.entries().collect();
    e.windows(2).all(|w| w[0].actor < w[1].actor) && e.iter().all(|x| x.counter > 0)
}

#[test]
fn empty_clock_is_descended_by_all() {
    let empty: VClock<u8> = VClock::new();
    let mut one = VClock::new();
    one.increment(3u8, 0);
    assert_eq!(empty.compare(&empty), Causality::Equal);
    assert_eq!(one.compare(&empty), Causality::After);
    assert_eq!(empty.compare(&one), Causality::Before);
}

#[test]
fn merge_takes_timestamp_of_higher_counter() {
    let a = VClock::from_entries([Entry {
        actor: 1u8,
        counter: 5,
        timestamp: 10,
    }]);
    let b = VClock::from_entries([Entry {
        actor: 1u8,
        counter: 3,
        timestamp: 99,
    }]);
    let m = a.merged(&b);
    assert_eq!(m.get(&1).map(|e| (e.counter, e.timestamp)), Some((5, 10)));
}

#[test]
fn try_from_rejects_non_canonical() {
    let e = |actor: u8, counter| Entry {
        actor,
        counter,
        timestamp: 0,
    };
    assert!(VClock::try_from(vec![e(1, 1), e(2, 1)]).is_ok());
    assert_eq!(
        VClock::try_from(vec![e(2, 1), e(1, 1)]),
        Err(dynamo_vclock::InvalidClock::NotSorted { index: 1 })
    );
    assert_eq!(
        VClock::try_from(vec![e(1, 1), e(1, 2)]),
        Err(dynamo_vclock::InvalidClock::NotSorted { index: 1 })
    );
    assert_eq!(
        VClock::try_from(vec![e(1, 0)]),
        Err(dynamo_vclock::InvalidClock::ZeroCounter { index: 0 })
    );
}

#[test]
fn node_epoch_actors_work() {
    // The node's actor: (node id, epoch). A new epoch is a new actor: no counter reuse.
    let mut c: VClock<(u64, u32)> = VClock::new();
    c.increment((7, 0), 1);
    let old = c.clone();
    c.increment((7, 1), 2);
    assert_eq!(c.compare(&old), Causality::After);
    assert_eq!(c.len(), 2);
}
