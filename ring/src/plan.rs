//! Membership changes and the transfer plans they produce.

use std::fmt::Debug;

use crate::{KeyRange, Position, Ring};

/// The result of a membership change: the new ring and what must move to realise it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(bound(
        serialize = "N: serde::Serialize + Clone",
        deserialize = "N: serde::Deserialize<'de> + Ord + Clone + Debug"
    ))
)]
pub struct Change<N> {
    /// The ring after the change.
    pub ring: Ring<N>,
    /// The key ranges to copy from their old replicas to their new ones.
    pub plan: TransferPlan<N>,
}

/// One key range to copy from a node that holds it to a node that becomes one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Transfer<N> {
    /// The keys whose position lies on this arc.
    pub range: KeyRange,
    /// A node that held the range before the change (preferably one that stops holding it).
    pub from: N,
    /// A node that holds the range after the change and did not before.
    pub to: N,
}

/// Everything a membership change moves: for every arc whose N replicas changed, a transfer from
/// an old replica to each new one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferPlan<N> {
    /// Transfers in ring order; adjacent arcs with the same endpoints are merged.
    pub transfers: Vec<Transfer<N>>,
}

impl<N: PartialEq> TransferPlan<N> {
    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.transfers.is_empty()
    }

    /// The transfers that `node` receives.
    pub fn incoming<'a>(&'a self, node: &'a N) -> impl Iterator<Item = &'a Transfer<N>> + 'a {
        self.transfers.iter().filter(move |t| &t.to == node)
    }

    /// The transfers that `node` sends.
    pub fn outgoing<'a>(&'a self, node: &'a N) -> impl Iterator<Item = &'a Transfer<N>> + 'a {
        self.transfers.iter().filter(move |t| &t.from == node)
    }

    /// The fraction of the key space copied, counting an arc once per receiving node.
    pub fn moved_fraction(&self) -> f64 {
        self.transfers.iter().map(|t| t.range.fraction()).sum()
    }
}

/// Compares the primaries of every arc of `old` and `next` (cut at the tokens of both) and plans
/// a copy to every node that became a replica, from a node that stopped being one when there is
/// one (it holds the data and is about to drop it), else from the first old replica.
pub(crate) fn change<N: Ord + Clone + Debug>(old: &Ring<N>, next: Ring<N>) -> Change<N> {
    let mut bounds: Vec<u128> = old
        .positions
        .iter()
        .chain(next.positions.iter())
        .copied()
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut transfers: Vec<Transfer<N>> = Vec::new();
    let mut old_set: Vec<&N> = Vec::new();
    let mut new_set: Vec<&N> = Vec::new();
    for (i, &end) in bounds.iter().enumerate() {
        let start = if i == 0 {
            bounds[bounds.len() - 1]
        } else {
            bounds[i - 1]
        };
        let range = KeyRange::new(Position(start), Position(end));
        old_set.clear();
        old_set.extend(old.preference_list_at(Position(end)).primaries());
        new_set.clear();
        new_set.extend(next.preference_list_at(Position(end)).primaries());
        let mut departed = old_set.iter().filter(|n| !new_set.contains(n));
        for (k, to) in new_set.iter().filter(|n| !old_set.contains(n)).enumerate() {
            let Some(from) = departed
                .next()
                .or_else(|| old_set.get(k % old_set.len().max(1)))
            else {
                continue;
            };
            push_merged(
                &mut transfers,
                Transfer {
                    range,
                    from: (*from).clone(),
                    to: (*to).clone(),
                },
            );
        }
    }
    Change {
        ring: next,
        plan: TransferPlan { transfers },
    }
}

fn push_merged<N: PartialEq>(transfers: &mut Vec<Transfer<N>>, t: Transfer<N>) {
    // Only the latest few entries can be adjacent to the new one (one per receiving node).
    for prev in transfers.iter_mut().rev().take(crate::config::MAX_REPLICAS) {
        if prev.from == t.from && prev.to == t.to && prev.range.is_followed_by(&t.range) {
            prev.range.end = t.range.end;
            return;
        }
    }
    transfers.push(t);
}
