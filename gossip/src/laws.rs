//! Quickcheck properties of the state merge: commutative, idempotent, monotone.

use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

use crate::message::Delta;
use crate::state::{NodeState, Status, Versioned};

/// One step of an owner's history.
#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8),
    Beat,
    Forward,
    Restart,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0..=4 => Op::Set(u8::arbitrary(g) % 5, u8::arbitrary(g)),
            5..=7 => Op::Beat,
            8 => Op::Forward,
            _ => Op::Restart,
        }
    }
}

/// Every state the owner went through, in order.
fn history(ops: &[Op]) -> Vec<NodeState<u16>> {
    let mut state = NodeState::new_owned(1, 7u16);
    let mut all = vec![state.clone()];
    for op in ops {
        match op {
            Op::Set(k, v) => {
                let version = state.bump();
                state
                    .app
                    .insert(format!("k{k}"), Versioned::new(version, vec![*v]));
            }
            Op::Beat => {
                let version = state.bump();
                state.heartbeat = Versioned::new(version, state.heartbeat.value + 1);
            }
            Op::Forward => {
                let next = match state.status.value {
                    Status::Joining => Status::Up,
                    Status::Up => Status::Leaving,
                    _ => Status::Left,
                };
                let version = state.bump();
                state.status = Versioned::new(version, next);
            }
            Op::Restart => state = NodeState::new_owned(state.generation + 1, 7),
        }
        all.push(state.clone());
    }
    all
}

/// A view of the owner as some member may hold it: a snapshot, possibly cut short by the size
/// bound (only a prefix of its entries arrived).
fn observer(history: &[NodeState<u16>], pick: usize, cut: usize) -> NodeState<u16> {
    let snapshot = &history[pick % history.len()];
    let delta = snapshot.delta(0u8, 0, cut % 6);
    match NodeState::from_delta(&delta) {
        Ok(state) => state,
        Err(_) => unreachable!("a delta from 0 always builds a state"),
    }
}

fn merge(a: &NodeState<u16>, b: &NodeState<u16>) -> NodeState<u16> {
    let mut merged = a.clone();
    let _ = merged.apply(&b.delta(0u8, 0, usize::MAX));
    merged
}

#[quickcheck]
fn merge_is_commutative(ops: Vec<Op>, picks: (usize, usize, usize, usize)) -> bool {
    let h = history(&ops);
    let a = observer(&h, picks.0, picks.1);
    let b = observer(&h, picks.2, picks.3);
    merge(&a, &b) == merge(&b, &a)
}

#[quickcheck]
fn merge_is_idempotent(ops: Vec<Op>, picks: (usize, usize, usize, usize)) -> bool {
    let h = history(&ops);
    let a = observer(&h, picks.0, picks.1);
    let b = observer(&h, picks.2, picks.3);
    let once = merge(&a, &b);
    merge(&a, &a) == a && merge(&once, &b) == once
}

#[quickcheck]
fn versions_never_go_backwards(ops: Vec<Op>, steps: Vec<(usize, usize, u8)>) -> bool {
    let h = history(&ops);
    let mut view = observer(&h, 0, usize::MAX);
    for (pick, cut, from) in steps {
        let source = &h[pick % h.len()];
        let from = u64::from(from) % (source.version() + 1);
        let delta: Delta<u8, u16> = source.delta(0, from, cut % 4);
        if delta.check().is_err() {
            return false;
        }
        let before = view.clone();
        if view.apply(&delta).is_err() {
            if view != before {
                return false;
            }
            continue;
        }
        if view.generation() < before.generation() {
            return false;
        }
        if view.generation() == before.generation() {
            let app_ok = before
                .app_states()
                .all(|(k, v)| view.app.get(k).is_some_and(|n| n.version >= v.version));
            if view.version() < before.version()
                || view.heartbeat.version < before.heartbeat.version
                || view.status.version < before.status.version
                || view.status() < before.status()
                || !app_ok
            {
                return false;
            }
        }
    }
    true
}

#[quickcheck]
fn merged_state_agrees_with_the_owner(ops: Vec<Op>, cuts: Vec<usize>) -> bool {
    // Delivering the owner's latest state in cut pieces, each from what is known, ends equal to
    // the owner's state.
    let h = history(&ops);
    let Some(owner) = h.last() else { return true };
    let mut view = observer(&h, 0, usize::MAX);
    let cuts = cuts.iter().map(|c| c % 3).chain([usize::MAX]);
    for cut in cuts {
        let from = if view.generation() == owner.generation() {
            view.version()
        } else {
            0
        };
        let _ = view.apply(&owner.delta(0u8, from, cut));
    }
    view == *owner
}
