//! Checkers over a simulation's history and the replicas' final state.
//!
//! Every put writes a unique value (its op id, see [`value_op`]), so histories are judged on
//! values, never on clocks: a checker that trusted the clocks would share the node's blind spots.
//! Definitions (all per key; "acknowledged" means the client got `Stored`):
//!
//! - **Superseded.** A value `v` is superseded by a put or delete `X` when `X` carried the
//!   context of a get that returned `v` (the client saw `v` and replaced it). `X` may have failed
//!   or timed out and still have been applied, so any outcome counts for "may be gone"; only an
//!   acknowledged `X` makes `v` *must be gone*.
//! - **Stale read.** Let `W` be the put acknowledged last (latest completion) before a successful
//!   get `G` was invoked. `G` is stale if it returned neither `W`'s value nor the value of any put
//!   invoked after `W` was invoked (those may have superseded `W` or be concurrent with it). If a
//!   delete of the key was invoked after `W` was invoked and before `G` completed, an empty answer
//!   is not stale; nor is an answer once `W`'s value was superseded (see above) by a write `X`
//!   invoked before `G` completed, if it holds a value and none that `X` superseded too. A get
//!   that returns a value which a write acknowledged before `G` was invoked had superseded is
//!   stale, whatever else it returned. Other gets with no acknowledged put before them are not
//!   judged. Stale reads are allowed by Dynamo (sloppy quorums, R + W <= N); this is a
//!   measurement, not a failure.
//! - **Missed write.** A successful get `G` misses an acknowledged put `P` (acknowledged before
//!   `G` was invoked) if it returned no value `P` wrote, and no write invoked before `G`
//!   completed superseded `P`'s value. A put concurrent with `P` (blind, or from a context that
//!   did not hold `P`'s value) leaves `P` a sibling, so this judges every acknowledged put, not
//!   only the latest as a stale read does. Under strict quorums (R + W > N, no sloppy routing)
//!   a read quorum meets every acknowledged write's quorum: a missed write is a wrong answer.
//!   Under sloppy quorums it is a measurement.
//! - **Accounted for.** A put's value is accounted for at the end if it is live on one of the
//!   key's primaries, or a delete (of any outcome) or an acknowledged put superseded it, or a put
//!   superseded it whose own value is accounted for: an unacknowledged put that replaced `v` and
//!   left no trace either was not applied (then `v` must remain) or was applied and lost.
//! - **Lost write.** Once faults are healed and repair has settled, an acknowledged put is lost if
//!   its value is not accounted for. So is a put of any other outcome (not turned down) that a
//!   successful get returned: it was applied, and a value a replica held does not vanish, unless
//!   a copy of its key was lost after that get began (see [`FinalState::lost_copies`]). With
//!   W = 2 a defect that drops one copy rarely loses an acknowledged write; a put that timed out
//!   with its only copy on one node shows it.
//! - **Resurrected value.** A value superseded by an applied put or delete (acknowledged, or a
//!   put whose value a node holds at the end or a get returned, on a key none of whose copies
//!   was lost during the run: see [`FinalState::lost_copies`]) that is still live
//!   in the final state: on a primary, or on a *stray* (a copy on a node that is not a primary)
//!   whose versions the primaries' do not discard when merged, since such a copy can come back
//!   through a read, a hint or a later ring change.
//! - **Reused dot.** Two different versions under one dot `(actor, counter)`, anywhere in the final
//!   state. A dot names one write: a dotted version vector set keeps one of two versions with the
//!   same dot and drops the other, so a coordinator that issues a dot twice can lose a write (or
//!   leave replicas that never converge) without any clock looking wrong.
//!
//! Convergence is checked by the simulator itself (Merkle roots per partition), see
//! [`Sim::converged`](super::Sim::converged).

use std::collections::BTreeMap;
use std::fmt;

mod answers;
pub use answers::{contradictory_reads, divergent, ContradictoryRead, CopySummary, Divergence};

use super::workload::{value_op, written_value, History, Op, OpKind};
use crate::types::{Actor, Clock, NodeId, Sibs};

/// The versions the key's replicas hold at the end, by key index.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// For each key index, its primaries (by the final ring) that hold versions, and the versions.
    pub keys: BTreeMap<u32, Vec<(NodeId, Sibs)>>,
    /// Copies held by a node that is not one of the key's primaries (leftovers of former owners):
    /// (node, key index, versions). Judged for resurrections, and counted.
    pub strays: Vec<(NodeId, u32, Sibs)>,
    /// Keys of which some node lost its copy during the run (a record found damaged, a disk
    /// lost), with when it last did (µs of virtual time): an unacknowledged put that a get before
    /// then returned may have lived only in that copy, so such a get is no evidence that it is
    /// still applied.
    pub lost_copies: BTreeMap<u32, u64>,
    /// Keys whose running primaries hold different versions although the replicas converged by
    /// their Merkle trees (see [`answers`]); only looked for when they did.
    pub divergent: Vec<Divergence>,
}

/// The stale-read measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleReads {
    /// Successful gets that could be judged.
    pub judged: usize,
    /// Ids of the stale ones.
    pub stale: Vec<u64>,
}

impl StaleReads {
    /// Stale fraction of the judged gets.
    pub fn ratio(&self) -> f64 {
        if self.judged == 0 {
            0.0
        } else {
            self.stale.len() as f64 / self.judged as f64
        }
    }
}

/// An acknowledged write that is gone, or one a get returned (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrite {
    /// The put's id.
    pub op: u64,
    /// Its key index.
    pub key: u32,
    /// What the nodes hold for the key: (node, live value op ids, tombstones).
    pub found: Vec<(NodeId, Vec<u64>, usize)>,
}

/// A superseded value that came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resurrection {
    /// The acknowledged put or delete that superseded it.
    pub delete: u64,
    /// Its key index.
    pub key: u32,
    /// The put whose value is back.
    pub value_op: u64,
    /// A node that holds it.
    pub node: NodeId,
}

/// Two different versions found under one dot: a coordinator issued the dot twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReusedDot {
    /// The key index.
    pub key: u32,
    /// The dot's actor.
    pub actor: Actor,
    /// The dot's counter.
    pub counter: u64,
    /// The two versions: the node holding each and the put that wrote it (`None`: a tombstone).
    pub versions: [(NodeId, Option<u64>); 2],
}

/// Writes that superseded each value, by the value's op id: (writer op id, acknowledged).
fn superseders(history: &History) -> BTreeMap<u64, Vec<(u64, bool)>> {
    let mut out: BTreeMap<u64, Vec<(u64, bool)>> = BTreeMap::new();
    for op in history.ops().filter(|o| o.is_write() && !turned_down(o)) {
        let Some(get) = op.context_from.and_then(|g| history.get(g)) else {
            continue;
        };
        for &v in &get.read {
            out.entry(v).or_default().push((op.id, op.is_ok()));
        }
    }
    out
}

/// Whether `op` certainly applied nothing ([`ClientError::applied_nothing`]: a node turned it
/// down, or was down and refused the connection): such a write supersedes nothing.
///
/// [`ClientError::applied_nothing`]: crate::message::ClientError::applied_nothing
fn turned_down(op: &Op) -> bool {
    matches!(&op.outcome, super::workload::Outcome::Failed(e) if e.applied_nothing())
}

/// Problems found by the checkers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// An acknowledged write's context could not be decoded as a clock.
    #[error("operation {op}: undecodable context ({reason})")]
    BadContext {
        /// The operation.
        op: u64,
        /// The decoder's complaint.
        reason: String,
    },
}

/// A value no put to its key wrote, returned by a get or held at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhantomValue {
    /// Its key index.
    pub key: u32,
    /// The get that returned it, if one did.
    pub get: Option<u64>,
    /// The node holding it at the end, if one does.
    pub node: Option<NodeId>,
    /// The value's first bytes (up to 16).
    pub value: Vec<u8>,
}

/// Values no put to their key wrote: returned by gets, or live in the final state. A put its
/// node [turned down](turned_down) wrote nothing either: its value anywhere is a phantom too (a
/// node that says it applied nothing and applies the write later lies to its client, who may
/// act on the refusal).
pub fn phantom_values(history: &History, state: &FinalState) -> Vec<PhantomValue> {
    let mut out = Vec::new();
    let head = |v: &[u8]| v.iter().take(16).copied().collect::<Vec<u8>>();
    let refused = |id: u64| history.get(id).is_some_and(turned_down);
    for get in history.ops().filter(|o| o.kind == OpKind::Get) {
        for value in &get.phantoms {
            out.push(PhantomValue {
                key: get.key,
                get: Some(get.id),
                node: None,
                value: head(value),
            });
        }
        for &id in get.read.iter().filter(|&&id| refused(id)) {
            out.push(PhantomValue {
                key: get.key,
                get: Some(get.id),
                node: None,
                value: id.to_le_bytes().to_vec(),
            });
        }
    }
    let held = state
        .keys
        .iter()
        .flat_map(|(key, held)| held.iter().map(move |(node, sibs)| (*key, *node, sibs)))
        .chain(
            state
                .strays
                .iter()
                .map(|(node, key, sibs)| (*key, *node, sibs)),
        );
    for (key, node, sibs) in held {
        for value in sibs.live_values() {
            if written_value(history, key, value).is_none_or(refused) {
                out.push(PhantomValue {
                    key,
                    get: None,
                    node: Some(node),
                    value: head(value),
                });
            }
        }
    }
    out
}

/// Everything the history-and-state checkers found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Stale reads (a measurement).
    pub stale: StaleReads,
    /// Gets that missed an acknowledged put, by id (a measurement; wrong under strict quorums).
    pub missed: Vec<u64>,
    /// Acknowledged writes lost (must be empty).
    pub lost: Vec<LostWrite>,
    /// Superseded values back (must be empty).
    pub resurrected: Vec<Resurrection>,
    /// Acknowledged puts checked.
    pub acked_puts: usize,
    /// Acknowledged deletes checked.
    pub acked_deletes: usize,
    /// Malformed contexts (must be empty).
    pub errors: Vec<CheckError>,
    /// Keys held by nodes that are not their primaries (a measurement).
    pub strays: usize,
    /// Dots that name two different versions (must be empty).
    pub reused_dots: Vec<ReusedDot>,
    /// Values no put to their key wrote (must be empty).
    pub phantoms: Vec<PhantomValue>,
    /// Gets whose answer held a value and a write that superseded it, or a value twice (must be
    /// empty).
    pub contradictions: Vec<ContradictoryRead>,
    /// Keys whose primaries' copies differ after they converged (must be empty).
    pub divergent: Vec<Divergence>,
}

impl Report {
    /// Whether no write was lost, no delete undone and every context decoded.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.resurrected.is_empty()
            && self.errors.is_empty()
            && self.reused_dots.is_empty()
            && self.phantoms.is_empty()
            && self.contradictions.is_empty()
            && self.divergent.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acked puts, {} acked deletes: {} lost, {} resurrected, {} errors, {} dots reused, {} phantom values, {} contradictory reads, {} divergent keys; {} stray keys; stale reads {}/{} ({:.2}%), {} missed writes",
            self.acked_puts,
            self.acked_deletes,
            self.lost.len(),
            self.resurrected.len(),
            self.errors.len(),
            self.reused_dots.len(),
            self.phantoms.len(),
            self.contradictions.len(),
            self.divergent.len(),
            self.strays,
            self.stale.stale.len(),
            self.stale.judged,
            self.stale.ratio() * 100.0,
            self.missed.len()
        )?;
        if let Some(l) = self.lost.first() {
            write!(
                f,
                "; first lost: op {} key {} found {:?}",
                l.op, l.key, l.found
            )?;
        }
        if let Some(r) = self.resurrected.first() {
            write!(
                f,
                "; first resurrection: write {} key {} value of op {} on node {}",
                r.delete, r.key, r.value_op, r.node
            )?;
        }
        if let Some(d) = self.reused_dots.first() {
            write!(
                f,
                "; first reused dot: key {} dot {:?}:{} names {:?} on node {} and {:?} on node {}",
                d.key,
                d.actor,
                d.counter,
                d.versions[0].1,
                d.versions[0].0,
                d.versions[1].1,
                d.versions[1].0
            )?;
        }
        if let Some(p) = self.phantoms.first() {
            write!(f, "; first phantom: {p:?}")?;
        }
        if let Some(c) = self.contradictions.first() {
            write!(f, "; first contradictory read: {c:?}")?;
        }
        if let Some(d) = self.divergent.first() {
            write!(f, "; first divergent key: {d:?}")?;
        }
        if let Some(e) = self.errors.first() {
            write!(f, "; first error: {e}")?;
        }
        Ok(())
    }
}

/// Runs every history checker.
pub fn check(history: &History, state: &FinalState) -> Report {
    let mut report = Report {
        stale: stale_reads(history),
        missed: missed_writes(history),
        ..Report::default()
    };
    let (lost, puts, e1) = lost_writes(history, state);
    let (resurrected, deletes, e2) = resurrected_deletes(history, state);
    report.strays = state.strays.len();
    report.lost = lost;
    report.resurrected = resurrected;
    report.acked_puts = puts;
    report.acked_deletes = deletes;
    report.errors = e1.into_iter().chain(e2).collect();
    report.reused_dots = reused_dots(state);
    report.phantoms = phantom_values(history, state);
    report.contradictions = contradictory_reads(history);
    report.divergent = state.divergent.clone();
    report
}

/// Dots that name two different versions across the final state (primaries' copies and strays).
pub fn reused_dots(state: &FinalState) -> Vec<ReusedDot> {
    type Version = dynamo_vclock::Value<crate::types::Object>;
    let tag = |v: &Version| v.as_live().and_then(|o| value_op(o));
    let copies = state
        .keys
        .iter()
        .flat_map(|(key, held)| held.iter().map(move |(node, sibs)| (*key, *node, sibs)))
        .chain(
            state
                .strays
                .iter()
                .map(|(node, key, sibs)| (*key, *node, sibs)),
        );
    let mut seen: BTreeMap<(u32, Actor, u64), (NodeId, &Version)> = BTreeMap::new();
    let mut out = Vec::new();
    for (key, node, sibs) in copies {
        for ((actor, counter), version) in sibs.dotted_values() {
            let (first, earlier) = *seen
                .entry((key, *actor, counter))
                .or_insert((node, version));
            if earlier != version {
                out.push(ReusedDot {
                    key,
                    actor: *actor,
                    counter,
                    versions: [(first, tag(earlier)), (node, tag(version))],
                });
            }
        }
    }
    out
}

/// The clock of a write's context, as its node sealed it (the simulator's nodes seal with
/// [`ContextSeal::unkeyed`](crate::core::ContextSeal::unkeyed)). A write that succeeded always
/// has one (its own dot at least).
fn decode(op: &Op) -> Result<Clock, CheckError> {
    let bad = |reason: String| CheckError::BadContext { op: op.id, reason };
    if op.context.is_empty() {
        return Err(bad("no context".into()));
    }
    crate::core::ContextSeal::unkeyed()
        .open(&super::workload::key_bytes(op.key), &op.context)
        .map_err(|e| bad(e.to_string()))
}

/// Operations grouped by key, each group in invocation order.
fn by_key(history: &History) -> BTreeMap<u32, Vec<&Op>> {
    let mut m: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        m.entry(op.key).or_default().push(op);
    }
    m
}

/// The acknowledged puts among `ops`, as (completion time, id), by completion time.
fn acked_by_completion(ops: &[&Op]) -> Vec<(u64, u64)> {
    let mut acked: Vec<(u64, u64)> = ops
        .iter()
        .filter(|o| o.kind == OpKind::Put && o.is_ok())
        .filter_map(|o| o.complete.map(|c| (c, o.id)))
        .collect();
    acked.sort_unstable();
    acked
}

/// Stale reads; see the [module docs](self).
pub fn stale_reads(history: &History) -> StaleReads {
    let mut out = StaleReads::default();
    let superseded = superseders(history);
    for (_, ops) in by_key(history) {
        let acked = acked_by_completion(&ops);
        // Invocation times of the deletes that may have been applied, sorted (ops are in
        // invocation order already).
        let deletes: Vec<u64> = ops
            .iter()
            .filter(|o| o.kind == OpKind::Delete && !turned_down(o))
            .map(|o| o.invoke)
            .collect();
        for g in ops.iter().filter(|o| o.kind == OpKind::Get && o.is_ok()) {
            // A value some write acknowledged before the get was invoked had replaced.
            let replaced = g.read.iter().any(|v| {
                superseded.get(v).is_some_and(|by| {
                    by.iter().any(|&(x, acked)| {
                        acked
                            && history
                                .get(x)
                                .and_then(|x| x.complete)
                                .is_some_and(|c| c < g.invoke)
                    })
                })
            });
            if replaced {
                out.judged += 1;
                out.stale.push(g.id);
                continue;
            }
            let before = acked.partition_point(|&(c, _)| c < g.invoke);
            let Some(&(_, w_id)) = before.checked_sub(1).and_then(|i| acked.get(i)) else {
                continue;
            };
            let Some(w) = history.get(w_id) else { continue };
            out.judged += 1;
            let fresh_value = g.read.iter().any(|&v| {
                history
                    .get(v)
                    .is_some_and(|p| p.key == g.key && p.invoke >= w.invoke)
            });
            let complete = g.complete.unwrap_or(u64::MAX);
            let first_delete = deletes.partition_point(|&t| t < w.invoke);
            let delete_between = deletes.get(first_delete).is_some_and(|&t| t < complete);
            let fresh_empty = g.read.is_empty() && delete_between;
            // `w` replaced (by a write `x` of any outcome, which may have been applied) before
            // the get completed: the answer need not hold it, if it holds what `x` left (a
            // sibling `x`'s context did not cover). Nothing, or only values `x` replaced too, is
            // what a replica that lost `w` answers.
            let overtaken = superseded.get(&w.id).is_some_and(|by| {
                by.iter().any(|&(x, _)| {
                    history.get(x).is_some_and(|x| x.invoke < complete)
                        && !g.read.is_empty()
                        && !g.read.iter().any(|v| {
                            superseded
                                .get(v)
                                .is_some_and(|by_v| by_v.iter().any(|&(y, _)| y == x))
                        })
                })
            });
            if !fresh_value && !fresh_empty && !overtaken {
                out.stale.push(g.id);
            }
        }
    }
    out.stale.sort_unstable();
    out
}

/// Gets that missed an acknowledged put (see the [module docs](self)), by id, sorted.
pub fn missed_writes(history: &History) -> Vec<u64> {
    let superseded = superseders(history);
    let mut out = Vec::new();
    for (_, ops) in by_key(history) {
        let acked = acked_by_completion(&ops);
        for g in ops.iter().filter(|o| o.kind == OpKind::Get && o.is_ok()) {
            let before = acked.partition_point(|&(c, _)| c < g.invoke);
            let missed = acked[..before]
                .iter()
                .any(|&(_, p)| !g.read.contains(&p) && !replaced_in(history, &superseded, p, g));
            if missed {
                out.push(g.id);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Whether get `g`, which did not return put `p`'s value, returned what replaced it: the value
/// of a put that superseded `p` (or superseded one that did, and so on), or any answer once a
/// delete among those was invoked before `g` completed (a tombstone leaves nothing to return, and
/// a put after it may not name the values it replaced). A write that superseded `p` but whose
/// value `g` did not return excuses nothing: applied on a replica `g` read, its version (or a
/// later one) would be in the answer, since it replaces `p` wherever it meets it.
fn replaced_in(
    history: &History,
    superseded: &BTreeMap<u64, Vec<(u64, bool)>>,
    p: u64,
    g: &Op,
) -> bool {
    let complete = g.complete.unwrap_or(u64::MAX);
    let mut seen = std::collections::BTreeSet::from([p]);
    let mut next = vec![p];
    while let Some(v) = next.pop() {
        for &(x, _) in superseded.get(&v).into_iter().flatten() {
            let Some(op) = history.get(x) else { continue };
            if op.invoke >= complete {
                continue;
            }
            if op.kind == OpKind::Delete || g.read.contains(&x) {
                return true;
            }
            if seen.insert(x) {
                next.push(x);
            }
        }
    }
    false
}

/// Lost acknowledged writes; see the [module docs](self). Returns the losses, the number of
/// acknowledged puts checked and contexts that could not be decoded.
pub fn lost_writes(
    history: &History,
    state: &FinalState,
) -> (Vec<LostWrite>, usize, Vec<CheckError>) {
    let mut lost = Vec::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    let superseded = superseders(history);
    let empty = Vec::new();
    let mut present: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    for replicas in state.keys.values() {
        for (_, sibs) in replicas {
            present.extend(sibs.live_values().filter_map(|v| value_op(v)));
        }
    }
    let accounted = accounted_for(history, &superseded, &present);
    let observed = observed(history, state);
    for op in history.ops() {
        if op.kind != OpKind::Put {
            continue;
        }
        if op.is_ok() {
            checked += 1;
            if let Err(e) = decode(op) {
                errors.push(e);
            }
        } else if turned_down(op) || !observed.contains(&op.id) {
            continue;
        }
        let replicas = state.keys.get(&op.key).unwrap_or(&empty);
        if accounted.get(&op.id) == Some(&false) {
            lost.push(LostWrite {
                op: op.id,
                key: op.key,
                found: summarize(replicas),
            });
        }
    }
    (lost, checked, errors)
}

/// Puts a successful get returned, unless a copy of the key was lost after that get began (the
/// value may have lived only in that copy).
fn observed(history: &History, state: &FinalState) -> std::collections::BTreeSet<u64> {
    let lost_since = |o: &Op| {
        state
            .lost_copies
            .get(&o.key)
            .is_some_and(|&at| at > o.invoke)
    };
    history
        .ops()
        .filter(|o| o.kind == OpKind::Get && o.is_ok() && !lost_since(o))
        .flat_map(|o| o.read.iter().copied())
        .collect()
}

/// Which puts' values are accounted for at the end (see the [module docs](self)), by op id:
/// live on a primary, or superseded by a delete or an acknowledged put, or by a put whose own
/// value is accounted for. Worked out from the latest put back: a put's superseders come after it.
fn accounted_for(
    history: &History,
    superseded: &BTreeMap<u64, Vec<(u64, bool)>>,
    present: &std::collections::BTreeSet<u64>,
) -> BTreeMap<u64, bool> {
    let mut puts: Vec<u64> = history
        .ops()
        .filter(|o| o.kind == OpKind::Put)
        .map(|o| o.id)
        .collect();
    puts.sort_unstable();
    let mut accounted = BTreeMap::new();
    for &id in puts.iter().rev() {
        let replaced = superseded
            .get(&id)
            .into_iter()
            .flatten()
            .any(|&(by, acked)| {
                acked
                    || match history.get(by) {
                        Some(w) if w.kind == OpKind::Put => {
                            accounted.get(&by).copied().unwrap_or(true)
                        }
                        _ => true,
                    }
            });
        accounted.insert(id, present.contains(&id) || replaced);
    }
    accounted
}

fn summarize(replicas: &[(NodeId, Sibs)]) -> Vec<(NodeId, Vec<u64>, usize)> {
    replicas
        .iter()
        .map(|(n, s)| {
            let live: Vec<u64> = s.live_values().filter_map(|v| value_op(v)).collect();
            (*n, live, s.len() - s.live_values().count())
        })
        .collect()
}

/// Superseded values back; see the [module docs](self). Returns the resurrections, the number of
/// acknowledged deletes checked and contexts that could not be decoded.
pub fn resurrected_deletes(
    history: &History,
    state: &FinalState,
) -> (Vec<Resurrection>, usize, Vec<CheckError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    for op in history.ops() {
        if op.kind == OpKind::Delete && op.is_ok() {
            checked += 1;
            if let Err(e) = decode(op) {
                errors.push(e);
            }
        }
    }
    let superseded = superseders(history);
    // Puts seen applied: a get returned them (unless a copy of their key was lost after the get
    // began: it may have been their only one), or a node holds them at the end.
    let mut seen = observed(history, state);
    for replicas in state.keys.values() {
        for (_, sibs) in replicas {
            seen.extend(sibs.live_values().filter_map(|v| value_op(v)));
        }
    }
    for (_, _, sibs) in &state.strays {
        seen.extend(sibs.live_values().filter_map(|v| value_op(v)));
    }
    let applied = |by: u64, acked: bool| {
        acked || (seen.contains(&by) && history.get(by).is_some_and(|w| w.kind == OpKind::Put))
    };
    let mut judge = |node: NodeId, key: u32, sibs: &Sibs| {
        for writer in sibs.live_values().filter_map(|v| value_op(v)) {
            let by = superseded
                .get(&writer)
                .and_then(|ws| ws.iter().find(|&&(by, acked)| applied(by, acked)));
            if let Some(&(by, _)) = by {
                out.push(Resurrection {
                    delete: by,
                    key,
                    value_op: writer,
                    node,
                });
            }
        }
    };
    let mut primaries: BTreeMap<u32, Sibs> = BTreeMap::new();
    for (key, replicas) in &state.keys {
        for (node, sibs) in replicas {
            judge(*node, *key, sibs);
            primaries.entry(*key).or_default().merge(sibs);
        }
    }
    for (node, key, sibs) in &state.strays {
        let mut merged = primaries.get(key).cloned().unwrap_or_default();
        merged.merge(sibs);
        judge(*node, *key, &merged);
    }
    out.sort_by_key(|r| (r.key, r.value_op, r.node));
    out.dedup_by_key(|r| (r.key, r.value_op));
    (out, checked, errors)
}

/// Decodes a context's clock, its seal not checked (for tests and tools).
pub fn decode_context(bytes: &[u8]) -> Option<Clock> {
    crate::core::ContextSeal::clock_of(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ClientOptions;
    use crate::sim::workload::{value_for, Outcome};
    use dynamo_vclock::{Entry, VClock};

    fn clock(entries: &[((u64, u64), u64)]) -> Clock {
        VClock::from_entries(entries.iter().map(|&(actor, counter)| Entry {
            actor,
            counter,
            timestamp: 0,
        }))
    }

    struct H(History);

    impl H {
        fn op(&mut self, kind: OpKind, key: u32, invoke: u64, complete: u64, ok: bool) -> u64 {
            self.0.invoke(Op {
                id: 0,
                client: 0,
                node: 0,
                kind,
                key,
                options: ClientOptions::default(),
                invoke,
                complete: Some(complete),
                outcome: if ok { Outcome::Ok } else { Outcome::TimedOut },
                read: Vec::new(),
                context: Vec::new(),
                sent_context: Vec::new(),
                context_from: None,
                replicas: Vec::new(),
                phantoms: Vec::new(),
            })
        }
        fn write(&mut self, kind: OpKind, key: u32, t: (u64, u64), c: &Clock) -> u64 {
            let id = self.op(kind, key, t.0, t.1, true);
            if let Some(o) = self.0.get_mut(id) {
                o.context = crate::core::ContextSeal::unkeyed()
                    .seal(&crate::sim::workload::key_bytes(key), c);
            }
            id
        }
        fn read(&mut self, key: u32, t: (u64, u64), read: Vec<u64>) -> u64 {
            let id = self.op(OpKind::Get, key, t.0, t.1, true);
            if let Some(o) = self.0.get_mut(id) {
                o.read = read;
            }
            id
        }
    }

    /// A set holding `values` as concurrent siblings (each written blind through its own node).
    fn sibs(values: &[u64]) -> Sibs {
        let mut s = Sibs::new();
        for (i, &v) in values.iter().enumerate() {
            s.put(
                &VClock::new(),
                (i as u64 + 1, 7),
                0,
                dynamo_vclock::Value::Live(value_for(v, 8).into()),
            );
        }
        s
    }

    /// Marks `write` as carrying the context of `get`.
    fn saw(h: &mut H, write: u64, get: u64) {
        if let Some(o) = h.0.get_mut(write) {
            o.context_from = Some(get);
        }
    }

    #[test]
    fn lost_write_present_superseded_or_lost() {
        let mut h = H(History::new());
        let c1 = clock(&[((1, 7), 1)]);
        let kept = h.write(OpKind::Put, 0, (0, 1), &c1);
        let replaced = h.write(OpKind::Put, 1, (0, 1), &c1);
        let lost = h.write(OpKind::Put, 2, (0, 1), &c1);
        let deleted = h.write(OpKind::Put, 3, (0, 1), &c1);
        // key 1: a read saw `replaced`, then a put with that context (it timed out: may be applied).
        let g1 = h.read(1, (2, 3), vec![replaced]);
        let over = h.op(OpKind::Put, 1, 4, 5, false);
        saw(&mut h, over, g1);
        // key 3: a read saw `deleted`, then a delete with that context.
        let g3 = h.read(3, (2, 3), vec![deleted]);
        let d = h.write(OpKind::Delete, 3, (4, 5), &c1);
        saw(&mut h, d, g3);
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(1, sibs(&[kept]))]);
        state.keys.insert(1, vec![(1, sibs(&[over]))]);
        // Another value with the same clock as `lost` (a reused counter) does not excuse it.
        state.keys.insert(2, vec![(1, sibs(&[98]))]);
        let (l, n, e) = lost_writes(&h.0, &state);
        assert!(e.is_empty());
        assert_eq!(n, 4);
        assert_eq!(l.iter().map(|l| l.op).collect::<Vec<_>>(), vec![lost]);
        assert_eq!(l[0].found, vec![(1, vec![98], 0)]);
        // Without a trace of `over` either: it was not applied (`replaced` must remain) or was
        // applied and lost; `replaced` is lost either way.
        state.keys.remove(&1);
        let (l, _, _) = lost_writes(&h.0, &state);
        assert_eq!(
            l.iter().map(|l| l.op).collect::<Vec<_>>(),
            vec![replaced, lost]
        );
    }

    /// Review of the checkers (thirtieth session): a get that returned a value together with
    /// the write that replaced it was only a stale read, counted when the write had been
    /// acknowledged before the get began, and the final read-back, once the replicas agree,
    /// cannot see it. Any outcome of the replacing write makes such an answer wrong; so does a
    /// value returned twice.
    #[test]
    fn a_get_that_returns_a_value_and_its_replacement_contradicts_itself() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let v = h.write(OpKind::Put, 0, (0, 1), &c);
        let g = h.read(0, (2, 3), vec![v]);
        // Replaced by a put that timed out (it may still be applied).
        let x = h.op(OpKind::Put, 0, 4, 5, false);
        saw(&mut h, x, g);
        let concurrent = h.write(OpKind::Put, 0, (4, 5), &c);
        let fine = h.read(0, (6, 7), vec![x, concurrent]);
        let both = h.read(0, (6, 7), vec![v, x]);
        let twice = h.read(0, (6, 7), vec![concurrent, concurrent]);
        let found = contradictory_reads(&h.0);
        assert_eq!(
            found,
            vec![
                ContradictoryRead {
                    get: both,
                    key: 0,
                    value_op: v,
                    replaced_by: Some(x),
                },
                ContradictoryRead {
                    get: twice,
                    key: 0,
                    value_op: concurrent,
                    replaced_by: None,
                },
            ]
        );
        assert!(found.iter().all(|c| c.get != fine));
        let report = check(&h.0, &FinalState::default());
        assert!(!report.is_clean(), "{report}");
    }

    /// Copies that differ are found whatever differs: a value, a version, or no copy at all.
    #[test]
    fn divergent_copies_are_found() {
        let (a, b) = (sibs(&[1, 2]), sibs(&[1]));
        let copies = vec![
            (0, vec![(1, Some(&a)), (2, Some(&a)), (3, Some(&a))]),
            (1, vec![(1, Some(&a)), (2, Some(&b))]),
            (2, vec![(1, Some(&a)), (2, None)]),
            (3, vec![(1, None), (2, None)]),
        ];
        let found = divergent(copies);
        assert_eq!(found.iter().map(|d| d.key).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(found[1].copies[1], (2, None));
    }

    /// Review of the checkers (thirtieth session): only acknowledged puts were judged lost. A
    /// put that timed out and that a get returned was applied; its value must stay accounted for
    /// as an acknowledged one's, unless a copy of the key was lost after that get began.
    #[test]
    fn a_put_a_get_returned_is_judged_as_an_acknowledged_one() {
        let mut h = H(History::new());
        let timed_out = h.op(OpKind::Put, 0, 0, 1, false);
        let unseen = h.op(OpKind::Put, 1, 0, 1, false);
        h.read(0, (2, 3), vec![timed_out]);
        let mut state = FinalState::default();
        let (l, checked, _) = lost_writes(&h.0, &state);
        assert_eq!(checked, 0, "only acknowledged puts are counted");
        assert_eq!(l.iter().map(|l| l.op).collect::<Vec<_>>(), vec![timed_out]);
        assert!(l.iter().all(|l| l.op != unseen));
        // Held at the end: accounted for.
        state.keys.insert(0, vec![(1, sibs(&[timed_out]))]);
        assert!(lost_writes(&h.0, &state).0.is_empty());
        // A copy of the key lost after the get began excuses it.
        state.keys.clear();
        state.lost_copies.insert(0, 3);
        assert!(lost_writes(&h.0, &state).0.is_empty());
    }

    /// Review of the checkers, twenty-fifth session of issue 20: any delete made from a get that
    /// read a value excused that value's absence at the end, even one a node turned down
    /// ("unavailable": nothing applied) or that never reached a node. Only a delete that may
    /// have been applied does.
    #[test]
    fn a_delete_turned_down_excuses_no_loss() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let g = h.read(0, (2, 3), vec![w]);
        let d = h.op(OpKind::Delete, 0, 4, 5, false);
        saw(&mut h, d, g);
        if let Some(o) = h.0.get_mut(d) {
            o.outcome = Outcome::Failed(crate::message::ClientError::Unavailable(
                "turned down".into(),
            ));
        }
        let state = FinalState::default();
        let (l, _, _) = lost_writes(&h.0, &state);
        assert_eq!(l.iter().map(|l| l.op).collect::<Vec<_>>(), vec![w]);
        // One that timed out may have been applied: it excuses.
        if let Some(o) = h.0.get_mut(d) {
            o.outcome = Outcome::TimedOut;
        }
        assert!(lost_writes(&h.0, &state).0.is_empty());
    }

    /// A put that timed out but was read back was applied: what it replaced must be gone, unless
    /// a copy of the key was lost after the read.
    #[test]
    fn a_value_superseded_by_a_put_seen_applied_must_not_come_back() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let g = h.read(0, (2, 3), vec![w]);
        let over = h.op(OpKind::Put, 0, 4, 5, false);
        saw(&mut h, over, g);
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(4, sibs(&[w]))]);
        // Not seen applied: `w` may remain.
        assert!(resurrected_deletes(&h.0, &state).0.is_empty());
        h.read(0, (6, 7), vec![over]);
        let (r, _, _) = resurrected_deletes(&h.0, &state);
        assert_eq!((r.len(), r[0].value_op, r[0].delete), (1, w, over));
        // But a put seen only by a get, on a key of which a copy was lost after the get began (a
        // record found damaged, a lost disk), may have lived only there, and what it replaced may
        // come back (seed 370736 of the failing-disk sweep: put 185 timed out with its
        // coordinator's copy alone, a get read it there, that record was found damaged at the
        // node's restart, and the value 185 had replaced was judged resurrected). A put the final
        // state still holds, or an acknowledged one, counts as before.
        // A copy lost before the get began: the get still saw `over` applied after it.
        state.lost_copies.insert(0, 5);
        assert_eq!(resurrected_deletes(&h.0, &state).0.len(), 1);
        // Lost after: `over` may have lived only there.
        state.lost_copies.insert(0, 8);
        assert!(resurrected_deletes(&h.0, &state).0.is_empty());
        // Held at the end by a stray copy: applied and not lost, so `w` must be gone.
        state.strays.push((5, 0, sibs(&[over])));
        assert_eq!(resurrected_deletes(&h.0, &state).0.len(), 1);
        state.strays.clear();
        // Acknowledged: `w` must be gone, lost copies or not.
        if let Some(o) = h.0.get_mut(over) {
            o.outcome = Outcome::Ok;
        }
        assert_eq!(resurrected_deletes(&h.0, &state).0.len(), 1);
    }

    /// Under strict quorums a get cannot return a value an acknowledged write replaced before the
    /// get began, even when a later write replaced that write in turn.
    #[test]
    fn a_get_returning_a_value_replaced_before_it_began_is_stale() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let v0 = h.write(OpKind::Put, 0, (0, 1), &c);
        let g0 = h.read(0, (2, 3), vec![v0]);
        let w = h.write(OpKind::Put, 0, (4, 5), &c);
        saw(&mut h, w, g0);
        let g1 = h.read(0, (6, 7), vec![w]);
        let d = h.write(OpKind::Delete, 0, (8, 9), &c);
        saw(&mut h, d, g1);
        let back = h.read(0, (10, 11), vec![v0]);
        assert_eq!(stale_reads(&h.0).stale, vec![back]);
    }

    /// A get that returns the latest acknowledged put but not an earlier one concurrent with it
    /// missed that one, though it is not stale; once a write replaced the earlier one (invoked
    /// before the get completed), leaving it out is no miss.
    #[test]
    fn a_get_without_an_earlier_acknowledged_sibling_missed_it() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let first = h.write(OpKind::Put, 0, (0, 1), &c);
        let second = h.write(OpKind::Put, 0, (2, 3), &c);
        let both = h.read(0, (4, 5), vec![first, second]);
        let one = h.read(0, (6, 7), vec![second]);
        assert!(!stale_reads(&h.0).stale.contains(&one));
        assert_eq!(missed_writes(&h.0), vec![one]);
        // A put from `both`'s context replaces both; a get completing after it began may leave
        // them out for it (and the put itself is not acknowledged before the get).
        let replace = h.write(OpKind::Put, 0, (8, 12), &c);
        saw(&mut h, replace, both);
        let during = h.read(0, (9, 10), vec![replace]);
        let after = h.read(0, (13, 14), vec![replace]);
        assert_eq!(missed_writes(&h.0), vec![one]);
        assert!(![during, after]
            .iter()
            .any(|g| missed_writes(&h.0).contains(g)));
        // Review of the checkers, twenty-eighth session of issue 20: a get that returned neither
        // an acknowledged put nor the write replacing it missed it, whatever that write's fate
        // (any write superseding `first` excused it, even one never applied).
        let neither = h.read(0, (9, 11), vec![second]);
        assert_eq!(missed_writes(&h.0), vec![one, neither]);
        // Nor what replaced the write that replaced it.
        let again = h.read(0, (15, 16), vec![replace]);
        let last = h.write(OpKind::Put, 0, (17, 20), &c);
        saw(&mut h, last, again);
        let later = h.read(0, (18, 19), vec![last]);
        assert!(!missed_writes(&h.0).contains(&later));
        // A delete that replaced it excuses any answer.
        let gone = h.op(OpKind::Delete, 0, 21, 24, false);
        saw(&mut h, gone, later);
        let empty = h.read(0, (22, 23), vec![]);
        assert!(!missed_writes(&h.0).contains(&empty));
        // A get that began before `second` was acknowledged need not hold it.
        let early = h.read(0, (2, 4), vec![first]);
        assert!(!missed_writes(&h.0).contains(&early));
    }

    /// A value no put to its key wrote, in a get's answer or in the final state, is a phantom.
    #[test]
    fn values_no_put_wrote_are_phantoms() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let other = h.write(OpKind::Put, 1, (0, 1), &c);
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(1, sibs(&[w]))]);
        assert!(phantom_values(&h.0, &state).is_empty());
        // Key 1's value on key 0.
        state.keys.insert(0, vec![(1, sibs(&[w, other]))]);
        assert_eq!(phantom_values(&h.0, &state).len(), 1);
        // A value of a put id with other padding.
        let mut odd = Sibs::new();
        let mut bytes = value_for(w, 8);
        bytes.push(0);
        odd.put(
            &VClock::new(),
            (3, 7),
            0,
            dynamo_vclock::Value::Live(bytes.into()),
        );
        state.keys.insert(0, vec![(1, odd)]);
        assert_eq!(phantom_values(&h.0, &state).len(), 1);
        // A get's answer the driver found no put wrote.
        state.keys.clear();
        let g = h.read(0, (2, 3), vec![]);
        if let Some(o) = h.0.get_mut(g) {
            o.phantoms = vec![b"".to_vec()];
        }
        assert_eq!(phantom_values(&h.0, &state)[0].get, Some(g));
    }

    /// Review of the checkers, twenty-eighth session of issue 20: a put its node turned down
    /// ("unavailable": nothing applied) was trusted to be absent, so a node that refused a put
    /// and applied it later (a queued request run after its refusal) went unseen.
    #[test]
    fn the_value_of_a_put_turned_down_is_a_phantom() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let refused = h.op(OpKind::Put, 0, 2, 3, false);
        if let Some(o) = h.0.get_mut(refused) {
            o.outcome = Outcome::Failed(crate::message::ClientError::Unavailable(
                "turned down".into(),
            ));
        }
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(1, sibs(&[w]))]);
        assert!(phantom_values(&h.0, &state).is_empty());
        // Held at the end.
        state.keys.insert(0, vec![(1, sibs(&[w, refused]))]);
        assert_eq!(phantom_values(&h.0, &state).len(), 1);
        // Read by a get.
        state.keys.insert(0, vec![(1, sibs(&[w]))]);
        let g = h.read(0, (4, 5), vec![w, refused]);
        assert_eq!(phantom_values(&h.0, &state)[0].get, Some(g));
        // One that timed out may have been applied.
        if let Some(o) = h.0.get_mut(refused) {
            o.outcome = Outcome::TimedOut;
        }
        assert!(phantom_values(&h.0, &state).is_empty());
    }

    #[test]
    fn a_value_superseded_by_an_acknowledged_write_must_not_come_back() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let g = h.read(0, (2, 3), vec![w]);
        let d = h.write(OpKind::Delete, 0, (4, 5), &c);
        saw(&mut h, d, g);
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(4, sibs(&[w]))]);
        let (r, n, _) = resurrected_deletes(&h.0, &state);
        assert_eq!(n, 1);
        assert_eq!((r[0].value_op, r[0].node, r[0].delete), (w, 4, d));
        assert!(!check(&h.0, &state).is_clean());
        // A concurrent blind write is not superseded: it may stay beside the tombstone.
        let blind = h.write(OpKind::Put, 0, (6, 7), &c);
        state.keys.insert(0, vec![(4, sibs(&[blind]))]);
        assert!(resurrected_deletes(&h.0, &state).0.is_empty());
        // A stray copy of `w` that the primaries do not discard is judged too.
        let mut stray = Sibs::new();
        stray.put(
            &VClock::new(),
            (9, 7),
            0,
            dynamo_vclock::Value::Live(value_for(w, 8).into()),
        );
        state.strays.push((9, 0, stray));
        let (r, _, _) = resurrected_deletes(&h.0, &state);
        assert_eq!((r.len(), r[0].node), (1, 9));
    }

    #[test]
    fn a_value_superseded_only_by_a_failed_write_may_remain() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c);
        let g = h.read(0, (2, 3), vec![w]);
        let d = h.op(OpKind::Delete, 0, 4, 5, false);
        saw(&mut h, d, g);
        let mut state = FinalState::default();
        state.keys.insert(0, vec![(4, sibs(&[w]))]);
        let report = check(&h.0, &state);
        assert!(report.is_clean(), "{report}");
        // ...and may be gone.
        state.keys.clear();
        assert!(check(&h.0, &state).is_clean());
    }

    #[test]
    fn a_dot_that_names_two_versions_is_reported() {
        let h = History::new();
        let mut state = FinalState::default();
        // The same write on two primaries and a stray: one dot, one version.
        state.keys.insert(0, vec![(1, sibs(&[5])), (2, sibs(&[5]))]);
        state.strays.push((3, 0, sibs(&[5])));
        assert!(check(&h, &state).reused_dots.is_empty());
        // Another key may use the same dot for another write.
        state.keys.insert(1, vec![(1, sibs(&[6]))]);
        assert!(reused_dots(&state).is_empty());
        // A third primary holds another write under that dot.
        state.keys.entry(0).or_default().push((4, sibs(&[7])));
        let reused = reused_dots(&state);
        assert_eq!(reused.len(), 1);
        assert_eq!(
            (reused[0].key, reused[0].actor, reused[0].counter),
            (0, (1, 7), 1)
        );
        assert_eq!(reused[0].versions, [(1, Some(5)), (4, Some(7))]);
        assert!(!check(&h, &state).is_clean());
        // A tombstone under the dot of a value is a reuse too.
        let mut tombstone = Sibs::new();
        tombstone.put(&VClock::new(), (1, 7), 0, dynamo_vclock::Value::Tombstone);
        state.keys.insert(1, vec![(1, sibs(&[6])), (2, tombstone)]);
        assert_eq!(reused_dots(&state).len(), 2);
    }

    #[test]
    fn bad_contexts_are_reported() {
        let mut h = H(History::new());
        h.op(OpKind::Put, 0, 0, 1, true);
        let r = check(&h.0, &FinalState::default());
        assert_eq!(r.errors.len(), 1);
        assert!(!r.is_clean());
    }

    /// Seed 361066 under strict quorums: a delete that carried the context of a get returning
    /// `w` failed (no quorum) but was applied at two replicas, and a later get returned only an
    /// older concurrent sibling the delete's context did not cover. The read is not stale: `w`
    /// was superseded (by a write of any outcome) before the get completed. Before, only an
    /// empty answer was excused by a delete.
    #[test]
    fn a_read_after_a_write_superseded_it_is_not_stale() {
        let mut h = H(History::new());
        let c = clock(&[((1, 7), 1)]);
        let older = h.write(OpKind::Put, 0, (0, 1), &c);
        let w = h.write(OpKind::Put, 0, (2, 3), &c);
        let g = h.read(0, (4, 5), vec![w]);
        let d = h.op(OpKind::Delete, 0, 6, 7, false);
        saw(&mut h, d, g);
        let after = h.read(0, (8, 9), vec![older]);
        assert!(!stale_reads(&h.0).stale.contains(&after));
        // Without the delete's context, the same answer is stale.
        let mut blind = H(History::new());
        let older = blind.write(OpKind::Put, 0, (0, 1), &c);
        let w = blind.write(OpKind::Put, 0, (2, 3), &c);
        let _ = blind.read(0, (4, 5), vec![w]);
        let _ = blind.op(OpKind::Delete, 0, 6, 7, false);
        let after = blind.read(0, (8, 9), vec![older]);
        assert_eq!(stale_reads(&blind.0).stale, vec![after]);
    }

    /// Review of the experiments (twenty-fourth session): once the last acknowledged value was
    /// superseded by a write of any outcome, every answer passed, "not found" and values that
    /// write had superseded too: a checker blind to a lost write's read. An answer passes then
    /// only if it holds something, none of it superseded by that write.
    #[test]
    fn a_read_after_a_write_superseded_it_still_needs_what_that_write_left() {
        for answer in ["nothing", "what it superseded"] {
            let mut h = H(History::new());
            let c = clock(&[((1, 7), 1)]);
            let older = h.write(OpKind::Put, 0, (0, 1), &c);
            let w = h.write(OpKind::Put, 0, (2, 3), &c);
            let g = h.read(0, (4, 5), vec![older, w]);
            let x = h.op(OpKind::Put, 0, 6, 7, false);
            saw(&mut h, x, g);
            let read = if answer == "nothing" {
                Vec::new()
            } else {
                vec![older]
            };
            let after = h.read(0, (8, 9), read);
            assert!(stale_reads(&h.0).stale.contains(&after), "{answer}");
        }
    }
}
