use std::slice::from_ref;

use crate::types::ReplayRng;
use rand::{Rng, SeedableRng};

use super::*;

fn id(client: u64, op: u64) -> Vec<u8> {
    WriteId::new(client, op).to_value()
}

/// Records a get that returned `values`.
fn get(h: &mut History, client: u64, key: &[u8], values: &[Vec<u8>]) {
    let op = h.invoke_get(client, key);
    h.get_ok(op, values.to_vec(), b"ctx".to_vec());
}

/// Records a put of `value` whose context saw `seen`, ending with `outcome`.
fn put(h: &mut History, key: &[u8], value: &[u8], seen: &[Vec<u8>], outcome: Outcome) -> OpRef {
    let client = WriteId::parse(value).map_or(0, |w| w.client);
    let op = h.invoke_put(client, key, value.to_vec(), seen, b"ctx");
    h.complete(op, outcome);
    op
}

fn delete(h: &mut History, key: &[u8], seen: &[Vec<u8>], outcome: Outcome) {
    let op = h.invoke_delete(9, key, seen, b"ctx");
    h.complete(op, outcome);
}

/// Every node of 1..=3 read `values`.
fn finals(h: &mut History, key: &[u8], values: &[Vec<u8>]) {
    for node in 1..=3 {
        h.final_read(key, node, values.to_vec());
    }
}

#[test]
fn write_ids_round_trip_and_other_values_are_not_ids() {
    let w = WriteId::new(12, 345);
    assert_eq!(w.to_string(), "client-12-op-345");
    assert_eq!(WriteId::parse(&w.to_value()), Some(w));
    for bad in [
        &b"client-01-op-2"[..],
        b"client-+1-op-2",
        b"client-1-op-",
        b"client--op-1",
        b"client-1-op-2 ",
        b"xclient-1-op-2",
        b"milk",
        b"",
        &[0xff, 0xfe],
    ] {
        assert_eq!(WriteId::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn read_modify_write_chain_is_clean() {
    let mut h = History::new();
    let (a, b, c) = (id(1, 1), id(2, 1), id(3, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", from_ref(&a));
    put(&mut h, b"k", &b, &[a], Outcome::Ok);
    get(&mut h, 3, b"k", from_ref(&b));
    put(&mut h, b"k", &c, &[b], Outcome::Ok);
    finals(&mut h, b"k", &[c]);
    let report = h.check();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.puts.ok, 3);
    assert_eq!(report.gets.ok, 2);
    assert_eq!(report.keys_judged, 1);
}

#[test]
fn an_acknowledged_put_missing_at_the_end_is_lost() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, &[], Outcome::Ok); // blind: concurrent with a, supersedes nothing
    finals(&mut h, b"k", &[b]);
    let report = h.check();
    assert!(!report.is_clean());
    assert_eq!(report.lost.len(), 1, "{report}");
    assert_eq!(report.lost[0].key, b"k".to_vec());
    assert_eq!(report.lost[0].write.kind, WriteKind::Put(a));
    assert_eq!(report.lost[0].write.outcome, Some(Outcome::Ok));
    assert!(report
        .to_string()
        .contains("lost: key \"k\": client 1 put client-1-op-1"));
}

#[test]
fn a_put_superseded_on_another_key_is_still_lost() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"other", &id(2, 1), &[a], Outcome::Ok);
    finals(&mut h, b"k", &[]);
    finals(&mut h, b"other", &[id(2, 1)]);
    assert_eq!(h.check().lost.len(), 1);
}

#[test]
fn a_value_deleted_by_an_acknowledged_delete_must_not_come_back() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", from_ref(&a));
    delete(&mut h, b"k", from_ref(&a), Outcome::Ok);
    finals(&mut h, b"k", from_ref(&a));
    let report = h.check();
    assert!(!report.is_clean());
    assert_eq!(report.resurrected.len(), 1, "{report}");
    let r = &report.resurrected[0];
    assert_eq!((r.value.clone(), r.nodes.clone()), (a, vec![1, 2, 3]));
    assert_eq!(r.by.kind, WriteKind::Delete);
    assert_eq!(
        r.written.as_ref().map(|w| w.outcome),
        Some(Some(Outcome::Ok))
    );
    assert!(report.lost.is_empty());
}

#[test]
fn a_value_overwritten_by_an_acknowledged_put_must_not_come_back() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, from_ref(&a), Outcome::Ok);
    h.final_read(b"k", 1, vec![b.clone()]);
    h.final_read(b"k", 2, vec![a.clone(), b.clone()]);
    let report = h.check();
    assert_eq!(report.resurrected.len(), 1, "{report}");
    assert_eq!(report.resurrected[0].nodes, vec![2]);
    assert_eq!(report.divergent, vec![b"k".to_vec()]);
}

#[test]
fn concurrent_blind_puts_are_both_kept_as_siblings() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, &[], Outcome::Ok);
    get(&mut h, 3, b"k", &[b.clone(), a.clone()]);
    finals(&mut h, b"k", &[b, a]);
    let report = h.check();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_delete_that_saw_every_value_leaves_the_key_absent() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, &[], Outcome::Ok);
    get(&mut h, 3, b"k", &[a.clone(), b.clone()]);
    delete(&mut h, b"k", &[a, b], Outcome::Ok);
    finals(&mut h, b"k", &[]);
    let report = h.check();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.deletes.ok, 1);
}

#[test]
fn unacknowledged_writes_may_or_may_not_be_applied() {
    let mut h = History::new();
    let (a, b, c, d) = (id(1, 1), id(2, 1), id(3, 1), id(4, 1));
    put(&mut h, b"k", &a, &[], Outcome::TimedOut); // absent: fine
    put(&mut h, b"k", &b, &[], Outcome::Failed); // present: fine
    put(&mut h, b"k", &c, &[], Outcome::Ok);
    h.invoke_put(4, b"k", d.clone(), from_ref(&c), b"ctx"); // never completed: maybe applied
    finals(&mut h, b"k", &[b, d]); // `d` applied, `c` replaced by it
    let report = h.check();
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.puts,
        OutcomeCounts {
            ok: 1,
            failed: 1,
            timed_out: 1,
            unfinished: 1,
            not_sent: 0
        }
    );
}

#[test]
fn a_value_superseded_only_by_a_failed_write_may_remain_or_go() {
    for gone in [false, true] {
        let mut h = History::new();
        let (a, b) = (id(1, 1), id(2, 1));
        put(&mut h, b"k", &a, &[], Outcome::Ok);
        put(&mut h, b"k", &b, from_ref(&a), Outcome::TimedOut);
        delete(&mut h, b"k", from_ref(&a), Outcome::Failed);
        finals(&mut h, b"k", if gone { &[] } else { from_ref(&a) });
        let report = h.check();
        assert!(report.is_clean(), "gone: {gone}: {report}");
    }
}

#[test]
fn superseding_is_not_undone_by_a_later_write() {
    // a, then b over a, then a delete over b: all gone is fine, and so is a lost b's
    // supersession: a is superseded by b even though b is gone.
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, &[a], Outcome::Ok);
    delete(&mut h, b"k", &[b], Outcome::Ok);
    finals(&mut h, b"k", &[]);
    assert!(h.check().is_clean());
}

#[test]
fn values_nobody_wrote_are_phantoms() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"j", &id(5, 5), &[], Outcome::Ok);
    get(&mut h, 2, b"k", &[a.clone(), id(7, 7)]);
    finals(&mut h, b"k", &[a, id(5, 5), b"milk".to_vec()]);
    finals(&mut h, b"j", &[id(5, 5)]);
    let report = h.check();
    assert!(!report.is_clean());
    let phantoms: Vec<(Vec<u8>, Vec<u64>, usize)> = report
        .phantoms
        .iter()
        .map(|p| (p.value.clone(), p.nodes.clone(), p.gets))
        .collect();
    assert_eq!(
        phantoms,
        vec![
            (id(5, 5), vec![1, 2, 3], 0),
            (id(7, 7), vec![], 1),
            (b"milk".to_vec(), vec![1, 2, 3], 0)
        ],
        "{report}"
    );
}

#[test]
fn written_keys_must_be_read_at_the_end() {
    let mut h = History::new();
    put(&mut h, b"k", &id(1, 1), &[], Outcome::TimedOut);
    let report = h.check();
    assert_eq!(report.unread, vec![b"k".to_vec()]);
    assert!(!report.is_clean());
}

#[test]
fn a_later_final_read_replaces_an_earlier_one() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    finals(&mut h, b"k", &[]);
    finals(&mut h, b"k", from_ref(&a));
    assert!(h.check().is_clean());
}

#[test]
fn duplicate_siblings_are_counted_not_failed() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    finals(&mut h, b"k", &[a.clone(), a]);
    let report = h.check();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.duplicates, 3);
}

#[test]
fn malformed_histories_are_reported() {
    let mut h = History::new();
    let a = id(1, 1);
    let op = put(&mut h, b"k", &a, &[], Outcome::Ok);
    h.complete(op, Outcome::Failed);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    finals(&mut h, b"k", &[a]);
    let report = h.check();
    assert_eq!(report.errors.len(), 2, "{report}");
    assert!(!report.is_clean());
}

/// A correct store in memory: per key, the set of live values; a write removes exactly what its
/// context saw. Clients read, then write with that read's context, interleaved at random;
/// unacknowledged writes are applied or not at random. Its histories must be clean, and removing
/// or restoring one value at the end must be seen.
#[test]
fn histories_of_a_correct_store_are_clean_and_damage_is_seen() {
    const KEYS: usize = 3;
    for seed in 0..300u64 {
        let mut rng = ReplayRng::seed_from_u64(seed);
        let mut h = History::new();
        let mut store: Vec<Vec<Vec<u8>>> = vec![Vec::new(); KEYS];
        // Per client: a get's (key, values) awaiting its write.
        let mut pending: Vec<Option<(usize, Vec<Vec<u8>>)>> = vec![None; 4];
        let mut acked: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut superseded_by_ack: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut superseded: Vec<(usize, Vec<u8>)> = Vec::new();
        for op in 0..rng.gen_range(1..60u64) {
            let client = rng.gen_range(0..pending.len());
            let (key, seen) = match pending[client].take() {
                None if rng.gen_bool(0.7) => {
                    let key = rng.gen_range(0..KEYS);
                    get(&mut h, client as u64, &[key as u8], &store[key]);
                    pending[client] = Some((key, store[key].clone()));
                    continue;
                }
                None => (rng.gen_range(0..KEYS), Vec::new()), // blind put
                Some(p) => p,
            };
            let outcome = match rng.gen_range(0..4) {
                0 => Outcome::Failed,
                1 => Outcome::TimedOut,
                _ => Outcome::Ok,
            };
            let applied = outcome == Outcome::Ok || rng.gen_bool(0.5);
            let value = id(client as u64, op);
            let is_delete = !seen.is_empty() && rng.gen_bool(0.3);
            if is_delete {
                delete(&mut h, &[key as u8], &seen, outcome);
            } else {
                put(&mut h, &[key as u8], &value, &seen, outcome);
            }
            for v in &seen {
                superseded.push((key, v.clone()));
                if outcome == Outcome::Ok {
                    superseded_by_ack.push((key, v.clone()));
                }
            }
            if applied {
                store[key].retain(|v| !seen.contains(v));
                if !is_delete {
                    store[key].push(value.clone());
                }
            }
            if outcome == Outcome::Ok && !is_delete {
                acked.push((key, value));
            }
        }
        for (key, values) in store.iter().enumerate() {
            finals(&mut h, &[key as u8], values);
        }
        let report = h.check();
        assert!(report.is_clean(), "seed {seed}: {report}");

        // Damage: drop an acknowledged, never superseded value.
        let victim = acked.iter().find(|w| !superseded.contains(w));
        if let Some((key, value)) = victim {
            let mut damaged = h.clone();
            let values: Vec<Vec<u8>> = store[*key]
                .iter()
                .filter(|v| *v != value)
                .cloned()
                .collect();
            finals(&mut damaged, &[*key as u8], &values);
            assert_eq!(damaged.check().lost.len(), 1, "seed {seed}");
        }
        // Damage: bring back a value an acknowledged write superseded.
        if let Some((key, value)) = superseded_by_ack.first() {
            let mut damaged = h.clone();
            let mut values = store[*key].clone();
            values.push(value.clone());
            finals(&mut damaged, &[*key as u8], &values);
            assert_eq!(damaged.check().resurrected.len(), 1, "seed {seed}");
        }
    }
}

/// A value replaced by a write that may not have been applied must stay unless that write's own
/// effect did: `a` acknowledged, `b` over it timed out, and neither is anywhere at the end. Either
/// `b` was applied (then `b` is lost) or not (then `a` is).
#[test]
fn a_value_replaced_by_a_put_that_left_no_trace_is_lost() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", from_ref(&a));
    put(&mut h, b"k", &b, from_ref(&a), Outcome::TimedOut);
    finals(&mut h, b"k", &[]);
    let report = h.check();
    assert_eq!(
        report
            .lost
            .iter()
            .map(|l| l.write.kind.clone())
            .collect::<Vec<_>>(),
        vec![WriteKind::Put(a.clone())],
        "{report}"
    );
    // The same with the chain longer: `c` over `b` over `a`, `c` acknowledged and present.
    let mut h = History::new();
    let c = id(3, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, from_ref(&a), Outcome::Failed);
    put(&mut h, b"k", &c, from_ref(&b), Outcome::Ok);
    finals(&mut h, b"k", from_ref(&c));
    assert!(h.check().is_clean());
}

/// A write its client never sent (it could not connect) replaced nothing.
#[test]
fn a_write_never_sent_excuses_no_loss() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    delete(&mut h, b"k", from_ref(&a), Outcome::NotSent);
    finals(&mut h, b"k", &[]);
    assert_eq!(h.check().lost.len(), 1);
    assert_eq!(h.check().deletes.not_sent, 1);
}

/// Review of the checkers, twenty-eighth session of issue 20: a put that never left its client,
/// or that every node turned down (each applied nothing), was trusted to be absent; its value
/// read back (a node that refused a put and applied it later) went unseen.
#[test]
fn the_value_of_a_put_never_applied_is_a_phantom() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(1, 2));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, &[], Outcome::NotSent);
    get(&mut h, 2, b"k", &[a.clone(), b.clone()]);
    finals(&mut h, b"k", &[a, b.clone()]);
    let report = h.check();
    let phantoms: Vec<(Vec<u8>, Vec<u64>, usize)> = report
        .phantoms
        .iter()
        .map(|p| (p.value.clone(), p.nodes.clone(), p.gets))
        .collect();
    assert_eq!(phantoms, vec![(b, vec![1, 2, 3], 1)], "{report}");
}

/// A put that timed out but was read back was applied: what it replaced must be gone.
#[test]
fn a_value_replaced_by_a_put_seen_applied_is_resurrected_if_present() {
    let mut h = History::new();
    let (a, b) = (id(1, 1), id(2, 1));
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", from_ref(&a));
    put(&mut h, b"k", &b, from_ref(&a), Outcome::TimedOut);
    get(&mut h, 3, b"k", from_ref(&b));
    finals(&mut h, b"k", &[a.clone(), b.clone()]);
    let report = h.check();
    assert_eq!(
        report
            .resurrected
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        vec![a.clone()],
        "{report}"
    );
    // Seen in the final reads alone proves it applied too.
    let mut h = History::new();
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    put(&mut h, b"k", &b, from_ref(&a), Outcome::Failed);
    h.final_read(b"k", 1, vec![a.clone()]);
    h.final_read(b"k", 2, vec![a, b]);
    assert_eq!(h.check().resurrected.len(), 1);
}

/// Clients write only write ids: any other value read back (a tombstone leaking as an empty
/// value, bytes of another key, a damaged value) is a phantom.
#[test]
fn a_value_that_is_no_write_id_is_a_phantom() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", &[b"".to_vec()]);
    delete(&mut h, b"k", from_ref(&a), Outcome::Ok);
    finals(&mut h, b"k", &[b"".to_vec()]);
    let report = h.check();
    assert_eq!(report.phantoms.len(), 1, "{report}");
    assert_eq!(report.phantoms[0].gets, 1);
    assert_eq!(report.phantoms[0].nodes, vec![1, 2, 3]);
}

/// An acknowledged value whose only superseder is a delete that was not acknowledged may be gone
/// (the delete may have been applied), or lost (it may not have been): not a loss, but counted,
/// so that a run shows how many judgements that blind spot took.
#[test]
fn a_value_excused_only_by_an_unacknowledged_delete_is_counted() {
    let mut h = History::new();
    let a = id(1, 1);
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    get(&mut h, 2, b"k", from_ref(&a));
    delete(&mut h, b"k", from_ref(&a), Outcome::TimedOut);
    finals(&mut h, b"k", &[]);
    let report = h.check();
    assert!(report.lost.is_empty(), "{report}");
    assert_eq!(report.excused_by_unacknowledged_deletes, 1, "{report}");
    // An acknowledged delete accounts for it for sure.
    let mut h = History::new();
    put(&mut h, b"k", &a, &[], Outcome::Ok);
    delete(&mut h, b"k", from_ref(&a), Outcome::Ok);
    finals(&mut h, b"k", &[]);
    assert_eq!(h.check().excused_by_unacknowledged_deletes, 0);
}

/// A strict put acknowledged, then a strict get sent: returning [`id`]s of `returned`, after
/// `between` ran (writes over the put, as `(value or None for a delete, outcome)`).
fn strict_read_after(
    returned: &[Vec<u8>],
    between: &[(Option<Vec<u8>>, Outcome)],
    get_strict: bool,
) -> Report {
    let mut h = History::new();
    let a = id(1, 1);
    let p = h.invoke_put(1, b"k", a.clone(), &[], b"");
    h.strict(p);
    h.complete(p, Outcome::Ok);
    let mut last = a.clone();
    for (value, outcome) in between {
        match value {
            Some(v) => {
                put(&mut h, b"k", v, from_ref(&last), *outcome);
                last = v.clone();
            }
            None => delete(&mut h, b"k", from_ref(&last), *outcome),
        }
    }
    let g = h.invoke_get(2, b"k");
    if get_strict {
        h.strict(g);
    }
    h.get_ok(g, returned.to_vec(), b"ctx".to_vec());
    finals(&mut h, b"k", from_ref(&last));
    h.check()
}

#[test]
fn a_strict_get_that_misses_an_acknowledged_strict_put_is_reported() {
    let report = strict_read_after(&[], &[], true);
    assert_eq!(report.missed.len(), 1, "{report}");
    assert_eq!(report.strict_gets_judged, 1);
    assert!(!report.is_clean());
    assert!(report.to_string().contains("missed: key \"k\""), "{report}");
    // A blind put's value alone does not stand for it either.
    let report = strict_read_after(&[id(3, 1)], &[], true);
    assert_eq!(report.missed.len(), 1, "{report}");
}

#[test]
fn a_strict_get_that_sees_the_put_or_what_superseded_it_is_clean() {
    assert!(strict_read_after(&[id(1, 1)], &[], true).missed.is_empty());
    // A chain of writes over it, even ones that failed (they may have been applied).
    let chain = [
        (Some(id(3, 1)), Outcome::Failed),
        (Some(id(3, 2)), Outcome::Ok),
    ];
    assert!(strict_read_after(&[id(3, 2)], &chain, true)
        .missed
        .is_empty());
    assert!(strict_read_after(&[id(3, 1)], &chain, true)
        .missed
        .is_empty());
    // A delete over it, acknowledged or not, may leave nothing.
    let deleted = [(None, Outcome::TimedOut)];
    assert!(strict_read_after(&[], &deleted, true).missed.is_empty());
}

#[test]
fn a_sloppy_get_that_misses_a_put_is_not_judged() {
    let report = strict_read_after(&[], &[], false);
    assert!(report.missed.is_empty(), "{report}");
    assert_eq!(report.strict_gets_judged, 0);
}

#[test]
fn a_strict_get_sent_before_the_put_was_acknowledged_may_miss_it() {
    let mut h = History::new();
    let a = id(1, 1);
    let p = h.invoke_put(1, b"k", a.clone(), &[], b"");
    h.strict(p);
    let g = h.invoke_get(2, b"k");
    h.strict(g);
    h.complete(p, Outcome::Ok);
    h.get_ok(g, Vec::new(), b"ctx".to_vec());
    finals(&mut h, b"k", from_ref(&a));
    let report = h.check();
    assert!(report.is_clean(), "{report}");
}
