//! Quickcheck properties of trees and sessions.

use std::collections::BTreeMap;

use dynamo_merkle::{Tree, TreeConfig};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

use crate::harness::{expected_diff, flipped, sync, sync_with, Replica};

/// A small random shape (fan-out 2, 4 or 16; up to 256 segments) so collisions of segments and
/// nodes are frequent.
#[derive(Clone, Copy, Debug)]
struct Shape(TreeConfig);

impl Arbitrary for Shape {
    fn arbitrary(g: &mut Gen) -> Self {
        let (fanout, max_depth) = *g.choose(&[(2u32, 8u8), (4, 4), (16, 2)]).unwrap_or(&(4, 4));
        let depth = u8::arbitrary(g) % (max_depth + 1);
        Shape(TreeConfig::new(fanout, depth).unwrap_or_default())
    }
}

/// A base store and a list of changes applied to one copy of it.
#[derive(Clone, Debug)]
struct Drift {
    base: BTreeMap<Vec<u8>, Vec<u8>>,
    changes: Vec<Change>,
}

#[derive(Clone, Debug)]
enum Change {
    Put(u16, u8),
    Delete(u16),
}

impl Arbitrary for Drift {
    fn arbitrary(g: &mut Gen) -> Self {
        let base = Vec::<(u16, u8)>::arbitrary(g)
            .into_iter()
            .map(|(k, d)| ((k % 1024).to_be_bytes().to_vec(), vec![d]))
            .collect();
        let changes = Vec::<(bool, u16, u8)>::arbitrary(g)
            .into_iter()
            .take(g.size() / 4)
            .map(|(put, k, d)| {
                if put {
                    Change::Put(k % 512, d)
                } else {
                    Change::Delete(k % 512)
                }
            })
            .collect();
        Drift { base, changes }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let base = self.base.clone();
        let changes = self.changes.clone();
        Box::new((0..changes.len()).rev().map(move |n| Drift {
            base: base.clone(),
            changes: changes.iter().take(n).cloned().collect(),
        }))
    }
}

fn replicas(shape: TreeConfig, drift: &Drift) -> (Replica, Replica) {
    let a = Replica::from_store(shape, drift.base.clone());
    let mut b = a.clone();
    for change in &drift.changes {
        match change {
            Change::Put(k, d) => b.put(&k.to_be_bytes(), &[*d]),
            Change::Delete(k) => b.delete(&k.to_be_bytes()),
        }
    }
    (a, b)
}

#[quickcheck]
fn session_ends_with_exactly_the_symmetric_difference(shape: Shape, drift: Drift) -> bool {
    let (a, b) = replicas(shape.0, &drift);
    let expected = expected_diff(&a, &b);
    let out = sync(&a, &b, false);
    out.a == Ok(expected.clone()) && out.b == Ok(flipped(&expected))
}

#[quickcheck]
fn incremental_updates_equal_a_fresh_build(shape: Shape, drift: Drift) -> bool {
    let (_, b) = replicas(shape.0, &drift);
    // Built from the store in reverse (unsorted) order as well as sorted.
    let fresh = Tree::from_entries(shape.0, &b.store);
    let reversed = Tree::from_entries(shape.0, b.store.iter().rev());
    let mut extended = Tree::new(shape.0);
    extended.extend(&b.store);
    b.tree == fresh && fresh == reversed && fresh == extended && b.tree.root() == fresh.root()
}

#[quickcheck]
fn identical_trees_end_after_one_round_trip(shape: Shape, drift: Drift) -> bool {
    let a = Replica::from_store(shape.0, drift.base.clone());
    let out = sync(&a, &a.clone(), false);
    out.a == Ok(vec![])
        && out.b == Ok(vec![])
        && out.stats_a.round_trips() == 1
        && out.stats_b.round_trips() == 1
}

#[quickcheck]
fn sessions_are_deterministic(shape: Shape, drift: Drift) -> bool {
    let (a, b) = replicas(shape.0, &drift);
    sync(&a, &b, false) == sync(&a, &b, false)
}

#[quickcheck]
fn duplicated_messages_change_nothing(shape: Shape, drift: Drift) -> bool {
    let (a, b) = replicas(shape.0, &drift);
    let once = sync(&a, &b, false);
    let twice = sync(&a, &b, true);
    once.a == twice.a
        && once.b == twice.b
        && once.transcript == twice.transcript
        && twice.stats_a.duplicates_ignored + twice.stats_b.duplicates_ignored
            == twice.transcript.len() as u64
}

#[quickcheck]
fn both_sides_agree_on_the_cost(shape: Shape, drift: Drift) -> bool {
    let (a, b) = replicas(shape.0, &drift);
    let out = sync(&a, &b, false);
    let (sa, sb) = (out.stats_a, out.stats_b);
    sa.messages() == sb.messages()
        && sa.bytes_sent == sb.bytes_received
        && sb.bytes_sent == sa.bytes_received
        && sa.tree_bytes == sb.tree_bytes
        && sa.round_trips() == sb.round_trips()
        && sa.messages() == out.transcript.len() as u64
}

/// With a bound on what a session sends, each session finds differences in whole segments only,
/// both sides agree on them, every `Entries` and `Differences` message stays within the bound
/// (or holds one segment), and sessions that repair what they found make the replicas equal.
#[quickcheck]
fn bounded_sessions_converge_within_their_budget(shape: Shape, drift: Drift, budget: u16) -> bool {
    let (a, mut b) = replicas(shape.0, &drift);
    let config = dynamo_merkle::SyncConfig {
        max_entries_bytes: usize::from(budget % 512),
        ..dynamo_merkle::SyncConfig::default()
    };
    let segments = shape.0.segments() as u64;
    for session in 0..segments * 4 + 1 {
        let expected = expected_diff(&a, &b);
        if expected.is_empty() {
            return a.tree.root() == b.tree.root();
        }
        let out = sync_with(&a, &b, false, config, session);
        let Ok(found) = out.a else { return false };
        if out.b != Ok(flipped(&found)) || found.is_empty() {
            return false;
        }
        // Exactly the expected differences of the segments it covered.
        let covered: std::collections::BTreeSet<u32> =
            found.iter().map(|d| shape.0.segment_of(&d.key)).collect();
        let of_covered: Vec<_> = expected
            .iter()
            .filter(|d| covered.contains(&shape.0.segment_of(&d.key)))
            .cloned()
            .collect();
        if found != of_covered {
            return false;
        }
        for (_, msg) in &out.transcript {
            let one_segment = match msg {
                dynamo_merkle::Message::Entries { segments, .. } => segments.len() <= 1,
                dynamo_merkle::Message::Differences { keys, .. } => {
                    keys.iter()
                        .map(|d| shape.0.segment_of(&d.key))
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                        <= 1
                }
                _ => true,
            };
            if !one_segment && msg.encoded_len() > config.max_entries_bytes + 16 {
                return false;
            }
        }
        // Repair: b takes a's versions of what was found.
        for d in &found {
            match a.store.get(&d.key) {
                Some(digest) => b.put(&d.key, digest),
                None => b.delete(&d.key),
            }
        }
    }
    false
}
