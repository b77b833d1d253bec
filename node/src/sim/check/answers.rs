//! Checks that need no judgement of time: a get's answer against itself, and the replicas'
//! copies against each other once they say they agree.
//!
//! - **Contradictory read.** A successful get that returned a value together with a write that
//!   superseded it (the writer carried the context of a get that returned the value: its
//!   version descends the value's, whatever the writer's outcome), or one value twice. A
//!   coordinator merges the replicas' answers, and a merge keeps no version that another one
//!   descends: such an answer is wrong under any quorum, at any time, and the final read-back
//!   cannot see it once the replicas agree. (The stale-read measurement counts it only when the
//!   superseding write was acknowledged before the get began.)
//! - **Divergent copies.** Once the replicas have converged by their Merkle trees (the
//!   simulator's [`converged`](crate::sim::Sim::converged)), every running primary of a key holds
//!   the same versions. A node whose tree does not follow its store (a write digested wrong, a
//!   partition with no tree) passes the convergence check with copies that differ; the lost-write
//!   check needs a value on one primary only, and a get merges the replicas' copies: neither
//!   sees it.

use super::super::workload::{History, OpKind};
use super::superseders;
use crate::types::{NodeId, Sibs};

/// A get whose answer contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContradictoryRead {
    /// The get.
    pub get: u64,
    /// Its key index.
    pub key: u32,
    /// The put whose value it returned.
    pub value_op: u64,
    /// The write that superseded that value, also returned (`None`: the value came twice).
    pub replaced_by: Option<u64>,
}

/// Successful gets whose answer holds a value and a write that superseded it, or a value twice.
pub fn contradictory_reads(history: &History) -> Vec<ContradictoryRead> {
    let superseded = superseders(history);
    let mut out = Vec::new();
    for get in history.ops().filter(|o| o.kind == OpKind::Get && o.is_ok()) {
        for (i, &v) in get.read.iter().enumerate() {
            if get.read[..i].contains(&v) {
                out.push(ContradictoryRead {
                    get: get.id,
                    key: get.key,
                    value_op: v,
                    replaced_by: None,
                });
            }
            let by = superseded
                .get(&v)
                .into_iter()
                .flatten()
                .map(|&(by, _)| by)
                .find(|by| get.read.contains(by));
            if let Some(by) = by {
                out.push(ContradictoryRead {
                    get: get.id,
                    key: get.key,
                    value_op: v,
                    replaced_by: Some(by),
                });
            }
        }
    }
    out
}

/// What one primary holds of a key: the put ids of its live values and its number of versions
/// (`None`: no copy).
pub type CopySummary = Option<(Vec<u64>, usize)>;

/// A key whose running primaries hold different versions although their trees agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The key index.
    pub key: u32,
    /// Each running primary: its id, the put ids of the live values it holds, and how many
    /// versions in all (`None`: it holds no copy).
    pub copies: Vec<(NodeId, CopySummary)>,
}

/// The keys among `copies` (per key, each running primary and its copy) whose copies differ.
pub fn divergent<'a>(
    copies: impl IntoIterator<Item = (u32, Vec<(NodeId, Option<&'a Sibs>)>)>,
) -> Vec<Divergence> {
    copies
        .into_iter()
        .filter(|(_, held)| held.windows(2).any(|w| w[0].1 != w[1].1))
        .map(|(key, held)| Divergence {
            key,
            copies: held
                .into_iter()
                .map(|(node, sibs)| {
                    let summary = sibs.map(|s| {
                        let live = s.live_values().filter_map(|v| super::value_op(v)).collect();
                        (live, s.len())
                    });
                    (node, summary)
                })
                .collect(),
        })
        .collect()
}
