//! Dotted version vector sets: merge laws, exact supersession, and the false-sibling test.

use dynamo_vclock::{DvvSet, Siblings, VClock, Value};
use quickcheck_macros::quickcheck;

use crate::suite::arb::DvvHistory;

fn merged(a: &DvvSet<u8, u32>, b: &DvvSet<u8, u32>) -> DvvSet<u8, u32> {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn sorted(s: &DvvSet<u8, u32>) -> Vec<u32> {
    let mut v: Vec<u32> = s.values().copied().collect();
    v.sort_unstable();
    v
}

#[quickcheck]
fn merge_is_commutative(h: DvvHistory) -> bool {
    let [a, b, _] = &h.0;
    merged(a, b) == merged(b, a)
}

#[quickcheck]
fn merge_is_associative(h: DvvHistory) -> bool {
    let [a, b, c] = &h.0;
    merged(&merged(a, b), c) == merged(a, &merged(b, c))
}

#[quickcheck]
fn merge_is_idempotent(h: DvvHistory) -> bool {
    let [a, b, _] = &h.0;
    let m = merged(a, b);
    merged(a, a) == *a && merged(&m, b) == m && merged(&m, a) == m
}

#[quickcheck]
fn covers_iff_merge_changes_nothing(h: DvvHistory) -> bool {
    let [a, b, _] = &h.0;
    let m = merged(a, b);
    m.covers(a)
        && m.covers(b)
        && a.covers(b)
            == (sorted(&m) == sorted(a)
                && m.context().compare(&a.context()) == dynamo_vclock::Causality::Equal)
}

/// Discarding with a read's context drops what a put with that context would supersede, and
/// nothing else; none of the values the read saw is left.
#[quickcheck]
fn discard_drops_exactly_what_was_read(h: DvvHistory, reader: usize, target: usize) -> bool {
    let read = &h.0[reader % 3];
    let mut set = h.0[target % 3].clone();
    let seen = sorted(read);
    set.discard(&read.context());
    let after = sorted(&set);
    let ctx = read.context();
    let mut put = h.0[target % 3].clone();
    put.put(&ctx, 9, 99, u32::MAX);
    let put_kept: Vec<u32> = sorted(&put)
        .into_iter()
        .filter(|&v| v != u32::MAX)
        .collect();
    after == put_kept && seen.iter().all(|v| !after.contains(v))
}

/// A put with the context of a read supersedes exactly the values that read saw.
#[quickcheck]
fn put_supersedes_exactly_what_was_read(h: DvvHistory, reader: usize, writer: usize) -> bool {
    let read = &h.0[reader % 3];
    let mut target = h.0[writer % 3].clone();
    let before = sorted(&target);
    let seen = sorted(read);
    let ctx = read.context();
    target.put(&ctx, (writer % 3) as u8, 99, u32::MAX);
    let after = sorted(&target);
    let ok_seen = seen.iter().all(|v| !after.contains(v));
    // A value the reader did not see (its dot is not in the context) survives.
    let unseen: Vec<u32> = h.0[writer % 3]
        .dotted_values()
        .filter(|((actor, n), _)| ctx.counter(actor) < *n)
        .map(|(_, v)| *v)
        .collect();
    let ok_unseen = unseen.iter().all(|v| after.contains(v));
    let ok_rest = before
        .iter()
        .all(|v| after.contains(v) == unseen.contains(v));
    ok_seen && ok_unseen && ok_rest && after.contains(&u32::MAX) && target.context().descends(&ctx)
}

/// The test: two clients write repeatedly through one coordinator, each with the context
/// returned by its own previous write (so always missing the other's latest write). With plain
/// per-node clocks the sibling count grows with every write; with DVV it stays at the true number
/// of concurrent writes, 2.
#[test]
fn stale_contexts_false_siblings_vs_dvv() {
    const NODE: u8 = 1;
    let rounds = 10;

    let mut plain: Siblings<u8, String> = Siblings::new();
    let mut ctx_a = VClock::new();
    let mut ctx_b = VClock::new();
    let mut plain_sizes = Vec::new();
    for round in 0..rounds {
        plain.put(&ctx_a, NODE, round * 2, Value::Live(format!("a{round}")));
        ctx_a = plain.context();
        plain.put(
            &ctx_b,
            NODE,
            round * 2 + 1,
            Value::Live(format!("b{round}")),
        );
        ctx_b = plain.context();
        plain_sizes.push(plain.len());
    }

    let mut dvv: DvvSet<u8, String> = DvvSet::new();
    let mut ctx_a = VClock::new();
    let mut ctx_b = VClock::new();
    let mut dvv_sizes = Vec::new();
    for round in 0..rounds {
        ctx_a = dvv.put(&ctx_a, NODE, round * 2, format!("a{round}"));
        ctx_b = dvv.put(&ctx_b, NODE, round * 2 + 1, format!("b{round}"));
        dvv_sizes.push(dvv.len());
        // Exactly each client's latest write survives.
        let mut values: Vec<&String> = dvv.values().collect();
        values.sort();
        assert_eq!(values, [&format!("a{round}"), &format!("b{round}")]);
    }

    // Plain clocks: every write adds a sibling (the writer's own superseded value stays).
    assert_eq!(
        plain_sizes,
        (1..=rounds).map(|r| 2 * r as usize).collect::<Vec<_>>()
    );
    assert_eq!(plain.len(), 2 * rounds as usize);
    // DVV: never more than the two truly concurrent writes.
    assert!(dvv_sizes.iter().all(|&n| n == 2), "{dvv_sizes:?}");
}

#[test]
fn replicas_converge_and_keep_concurrent_values() {
    let mut r1: DvvSet<u8, &str> = DvvSet::new();
    let mut r2: DvvSet<u8, &str> = DvvSet::new();
    let base = r1.put(&VClock::new(), 1, 1, "v0");
    r2.merge(&r1);
    r1.put(&base, 1, 2, "x");
    r2.put(&base, 2, 3, "y");
    let mut m1 = r1.clone();
    m1.merge(&r2);
    let mut m2 = r2.clone();
    m2.merge(&r1);
    assert_eq!(m1, m2);
    let mut values: Vec<_> = m1.values().copied().collect();
    values.sort_unstable();
    assert_eq!(values, ["x", "y"]);
    assert!(m1.covers(&r1) && m1.covers(&r2));
    assert!(!r1.covers(&m1));
    let ctx = m1.context();
    m1.put(&ctx, 2, 4, "z");
    assert_eq!(m1.values().collect::<Vec<_>>(), [&"z"]);
}

#[test]
fn tombstones_in_dvv() {
    let mut s: DvvSet<u8, Value<&str>> = DvvSet::new();
    let ctx = s.put(&VClock::new(), 1, 1, Value::Live("v"));
    assert!(!s.is_tombstone_only());
    s.put(&ctx, 1, 2, Value::Tombstone);
    assert!(s.is_tombstone_only());
}

#[test]
fn try_from_validates() {
    use dynamo_vclock::{DvvEntry, InvalidDvvSet};
    let e = |actor: u8, counter: u64, values: Vec<u8>| DvvEntry {
        actor,
        counter,
        timestamp: 0,
        values,
    };
    assert!(DvvSet::try_from(vec![e(1, 2, vec![1, 2]), e(2, 1, vec![])]).is_ok());
    assert_eq!(
        DvvSet::try_from(vec![e(1, 1, vec![1, 2])]),
        Err(InvalidDvvSet::TooManyValues {
            index: 0,
            values: 2,
            counter: 1
        })
    );
    assert_eq!(
        DvvSet::try_from(vec![e(2, 1, vec![]), e(2, 1, vec![])]),
        Err(InvalidDvvSet::NotSorted { index: 1 })
    );
}
