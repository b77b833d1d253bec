//! Checkers over a simulation's history and the replicas' final state.
//!
//! Definitions (all per key; "acknowledged" means the client got `Stored`):
//!
//! - **Stale read.** Let `W` be the put acknowledged last (latest completion) before a successful
//!   get `G` was invoked. `G` is stale if it returned neither `W`'s value nor the value of any put
//!   invoked after `W` was invoked (those may have superseded `W` or be concurrent with it). If a
//!   delete of the key was invoked after `W` was invoked and before `G` completed, an empty answer
//!   is not stale. Gets with no acknowledged put before them are not judged. Stale reads are
//!   allowed by Dynamo (sloppy quorums, R + W <= N); this is a measurement, not a failure.
//! - **Lost write.** Once faults are healed and repair has settled, an acknowledged put `W` whose
//!   new version has clock `C` (the context of its `Stored` reply) is lost unless
//!   (a) its value is among the live versions on some node, or
//!   (b) some version on some node (live or tombstone) has a clock that strictly dominates `C`
//!   (a causally later write saw it), or
//!   (c) some acknowledged delete of the key has a clock that strictly dominates `C` (the tombstone
//!   may since have been reaped, legitimately).
//!   A version with a clock *equal* to `C` but another value does not supersede `W`: that is a
//!   sibling re-stamped by the same put, or a reused counter (Riak's kv679).
//! - **Resurrected delete.** An acknowledged delete `D` with tombstone clock `T` is undone if a live
//!   version whose clock `T` strictly dominates is present at the end: the tombstone was lost or
//!   reaped too early and an older replica brought the value back.
//! - **Ineffective delete** (a measurement). A value the deleting client had read (in the get
//!   whose context `D` carried) is still live at the end. This is *not* a failure: with server
//!   actors, a put that did not see a version re-stamps it with its own, newer clock
//!   ([`Siblings::put`](dynamo_vclock::Siblings::put) keeps it rather than lose it), so a delete
//!   carrying an older context no longer covers it. Riak's "sibling explosion"; dotted version
//!   vectors fix it. Counting it shows how often that happens.
//!
//! Convergence is checked by the simulator itself (Merkle roots per partition), see
//! [`Sim::converged`](super::Sim::converged).

use std::collections::HashMap;
use std::fmt;

use super::workload::{value_op, History, Op, OpKind};
use crate::types::{Actor, Clock, NodeId, Sibs};

/// The versions the key's replicas hold at the end, by key index.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// For each key index, its primaries (by the final ring) that hold versions, and the versions.
    pub keys: HashMap<u32, Vec<(NodeId, Sibs)>>,
    /// (node, key index) pairs held by a node that is not one of the key's primaries: leftovers of
    /// fallbacks or former owners. Not judged (clients read from the primaries once they are up),
    /// only counted.
    pub strays: Vec<(NodeId, u32)>,
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

/// An acknowledged write that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrite {
    /// The put's id.
    pub op: u64,
    /// Its key index.
    pub key: u32,
    /// What the nodes hold for the key: (node, live value op ids, tombstones).
    pub found: Vec<(NodeId, Vec<u64>, usize)>,
}

/// A deleted value that came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resurrection {
    /// The delete's id.
    pub delete: u64,
    /// Its key index.
    pub key: u32,
    /// The put whose value is back.
    pub value_op: u64,
    /// A node that holds it.
    pub node: NodeId,
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

/// Everything the history-and-state checkers found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Stale reads (a measurement).
    pub stale: StaleReads,
    /// Acknowledged writes lost (must be empty).
    pub lost: Vec<LostWrite>,
    /// Deleted values back (must be empty).
    pub resurrected: Vec<Resurrection>,
    /// Values a deleting client had read that are still live (a measurement; see the module docs).
    pub ineffective_deletes: Vec<Resurrection>,
    /// Acknowledged puts checked.
    pub acked_puts: usize,
    /// Acknowledged deletes checked.
    pub acked_deletes: usize,
    /// Malformed contexts (must be empty).
    pub errors: Vec<CheckError>,
    /// Keys held by nodes that are not their primaries (a measurement).
    pub strays: usize,
}

impl Report {
    /// Whether no write was lost, no delete undone and every context decoded.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.resurrected.is_empty() && self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acked puts, {} acked deletes: {} lost, {} resurrected, {} errors; {} ineffective deletes, {} stray keys; stale reads {}/{} ({:.2}%)",
            self.acked_puts,
            self.acked_deletes,
            self.lost.len(),
            self.resurrected.len(),
            self.errors.len(),
            self.ineffective_deletes.len(),
            self.strays,
            self.stale.stale.len(),
            self.stale.judged,
            self.stale.ratio() * 100.0
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
                "; first resurrection: delete {} key {} value of op {} on node {}",
                r.delete, r.key, r.value_op, r.node
            )?;
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
        ..Report::default()
    };
    let (lost, puts, e1) = lost_writes(history, state);
    let (resurrected, deletes, e2) = resurrected_deletes(history, state);
    report.ineffective_deletes = ineffective_deletes(history, state);
    report.strays = state.strays.len();
    report.lost = lost;
    report.resurrected = resurrected;
    report.acked_puts = puts;
    report.acked_deletes = deletes;
    report.errors = e1.into_iter().chain(e2).collect();
    report
}

fn decode(op: &Op) -> Result<Clock, CheckError> {
    Clock::decode(&op.context).map_err(|e| CheckError::BadContext {
        op: op.id,
        reason: e.to_string(),
    })
}

/// Operations grouped by key, each group in invocation order.
fn by_key(history: &History) -> HashMap<u32, Vec<&Op>> {
    let mut m: HashMap<u32, Vec<&Op>> = HashMap::new();
    for op in history.ops() {
        m.entry(op.key).or_default().push(op);
    }
    m
}

/// Stale reads; see the [module docs](self).
pub fn stale_reads(history: &History) -> StaleReads {
    let mut out = StaleReads::default();
    for (_, ops) in by_key(history) {
        // Acknowledged puts by completion time.
        let mut acked: Vec<(u64, u64)> = ops
            .iter()
            .filter(|o| o.kind == OpKind::Put && o.is_ok())
            .filter_map(|o| o.complete.map(|c| (c, o.id)))
            .collect();
        acked.sort_unstable();
        // Delete invocation times, sorted (ops are in invocation order already).
        let deletes: Vec<u64> = ops
            .iter()
            .filter(|o| o.kind == OpKind::Delete)
            .map(|o| o.invoke)
            .collect();
        for g in ops.iter().filter(|o| o.kind == OpKind::Get && o.is_ok()) {
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
            if !fresh_value && !fresh_empty {
                out.stale.push(g.id);
            }
        }
    }
    out.stale.sort_unstable();
    out
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
    // Acknowledged delete clocks per key.
    let mut delete_clocks: HashMap<u32, Vec<Clock>> = HashMap::new();
    for op in history.ops() {
        if op.kind == OpKind::Delete && op.is_ok() {
            match decode(op) {
                Ok(c) => delete_clocks.entry(op.key).or_default().push(c),
                Err(e) => errors.push(e),
            }
        }
    }
    let empty = Vec::new();
    for op in history.ops() {
        if op.kind != OpKind::Put || !op.is_ok() {
            continue;
        }
        checked += 1;
        let clock = match decode(op) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let replicas = state.keys.get(&op.key).unwrap_or(&empty);
        let present = replicas
            .iter()
            .any(|(_, s)| s.live_values().any(|v| value_op(v) == Some(op.id)));
        let superseded = replicas
            .iter()
            .any(|(_, s)| s.iter().any(|v| v.clock.dominates(&clock)))
            || delete_clocks
                .get(&op.key)
                .is_some_and(|ds| ds.iter().any(|d| d.dominates(&clock)));
        if !present && !superseded {
            lost.push(LostWrite {
                op: op.id,
                key: op.key,
                found: summarize(replicas),
            });
        }
    }
    (lost, checked, errors)
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

/// Deletes undone; see the [module docs](self). Returns the resurrections, the number of
/// acknowledged deletes checked and contexts that could not be decoded.
pub fn resurrected_deletes(
    history: &History,
    state: &FinalState,
) -> (Vec<Resurrection>, usize, Vec<CheckError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    let empty = Vec::new();
    for op in history.ops() {
        if op.kind != OpKind::Delete || !op.is_ok() {
            continue;
        }
        checked += 1;
        let tomb = match decode(op) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for (node, sibs) in state.keys.get(&op.key).unwrap_or(&empty) {
            for v in sibs.iter() {
                let Some(value) = v.value.as_live() else {
                    continue;
                };
                let Some(writer) = value_op(value) else {
                    continue;
                };
                if tomb.dominates(&v.clock) {
                    out.push(Resurrection {
                        delete: op.id,
                        key: op.key,
                        value_op: writer,
                        node: *node,
                    });
                }
            }
        }
    }
    (out, checked, errors)
}

/// Values that the client of an acknowledged delete had read and that are still live at the end
/// (a measurement, not a failure: see the [module docs](self)).
pub fn ineffective_deletes(history: &History, state: &FinalState) -> Vec<Resurrection> {
    let mut out = Vec::new();
    let empty = Vec::new();
    for op in history.ops() {
        if op.kind != OpKind::Delete || !op.is_ok() {
            continue;
        }
        let seen: &[u64] = op
            .context_from
            .and_then(|g| history.get(g))
            .map_or(&[], |g| g.read.as_slice());
        for (node, sibs) in state.keys.get(&op.key).unwrap_or(&empty) {
            for writer in sibs.live_values().filter_map(|v| value_op(v)) {
                if seen.contains(&writer) {
                    out.push(Resurrection {
                        delete: op.id,
                        key: op.key,
                        value_op: writer,
                        node: *node,
                    });
                }
            }
        }
    }
    out
}

/// Decodes an actor-clock context (for tests and tools).
pub fn decode_context(bytes: &[u8]) -> Option<Clock> {
    dynamo_vclock::VClock::<Actor>::decode(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::RequestOptions;
    use crate::sim::workload::{value_for, Outcome};
    use crate::types::Ver;
    use dynamo_vclock::{Entry, VClock};

    fn clock(entries: &[((u64, u32), u64)]) -> Clock {
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
                options: RequestOptions::default(),
                invoke,
                complete: Some(complete),
                outcome: if ok { Outcome::Ok } else { Outcome::TimedOut },
                read: Vec::new(),
                context: Vec::new(),
                sent_context: Vec::new(),
                context_from: None,
                replicas: Vec::new(),
            })
        }
        fn write(&mut self, kind: OpKind, key: u32, t: (u64, u64), c: &Clock) -> u64 {
            let id = self.op(kind, key, t.0, t.1, true);
            if let Some(o) = self.0.get_mut(id) {
                o.context = c.encode();
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

    fn sibs(versions: Vec<Ver>) -> Sibs {
        versions.into_iter().collect()
    }

    #[test]
    fn stale_read_definition() {
        let mut h = H(History::new());
        let c = clock(&[((1, 1), 1)]);
        let w1 = h.write(OpKind::Put, 0, (0, 10), &c);
        let w2 = h.write(OpKind::Put, 0, (20, 30), &c);
        let fresh = h.read(0, (40, 50), vec![w2]);
        let stale = h.read(0, (41, 51), vec![w1]);
        let empty = h.read(0, (42, 52), vec![]);
        let w3 = h.op(OpKind::Put, 0, 25, 100, false); // invoked after w2: may supersede it
        let newer = h.read(0, (43, 53), vec![w3]);
        let early = h.read(1, (0, 1), vec![]); // nothing acknowledged before: not judged
        let r = stale_reads(&h.0);
        assert_eq!(r.judged, 4);
        assert_eq!(r.stale, vec![stale, empty]);
        let _ = (fresh, newer, early);
        // A delete after w2 makes an empty answer legitimate.
        h.op(OpKind::Delete, 0, 35, 36, true);
        let after_delete = h.read(0, (60, 70), vec![]);
        let r = stale_reads(&h.0);
        assert!(!r.stale.contains(&after_delete));
    }

    #[test]
    fn lost_write_present_superseded_or_lost() {
        let mut h = H(History::new());
        let c1 = clock(&[((1, 7), 1)]);
        let c2 = clock(&[((1, 7), 2)]);
        let kept = h.write(OpKind::Put, 0, (0, 1), &c1);
        let superseded = h.write(OpKind::Put, 1, (0, 1), &c1);
        let lost = h.write(OpKind::Put, 2, (0, 1), &c1);
        let deleted = h.write(OpKind::Put, 3, (0, 1), &c1);
        h.write(OpKind::Delete, 3, (2, 3), &c2);
        let mut state = FinalState::default();
        state.keys.insert(
            0,
            vec![(1, sibs(vec![Ver::live(c1.clone(), value_for(kept, 8))]))],
        );
        state.keys.insert(
            1,
            vec![(1, sibs(vec![Ver::live(c2.clone(), value_for(99, 8))]))],
        );
        // Same clock, other value (a reused counter): not superseded.
        state.keys.insert(
            2,
            vec![(1, sibs(vec![Ver::live(c1.clone(), value_for(98, 8))]))],
        );
        let (l, n, e) = lost_writes(&h.0, &state);
        assert!(e.is_empty());
        assert_eq!(n, 4);
        assert_eq!(l.iter().map(|l| l.op).collect::<Vec<_>>(), vec![lost]);
        assert_eq!(l[0].found, vec![(1, vec![98], 0)]);
        let _ = (superseded, deleted);
    }

    #[test]
    fn resurrection_by_clock_and_ineffective_deletes_by_history() {
        let mut h = H(History::new());
        let c1 = clock(&[((1, 7), 1)]);
        let c2 = clock(&[((1, 7), 2)]);
        let c3 = clock(&[((2, 7), 1)]);
        let w = h.write(OpKind::Put, 0, (0, 1), &c1);
        h.write(OpKind::Delete, 0, (2, 3), &c2);
        let mut state = FinalState::default();
        state.keys.insert(
            0,
            vec![(4, sibs(vec![Ver::live(c1.clone(), value_for(w, 8))]))],
        );
        let (r, n, _) = resurrected_deletes(&h.0, &state);
        assert_eq!(n, 1);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].value_op, r[0].node), (w, 4));
        // A concurrent sibling survives legitimately...
        let mut h2 = H(History::new());
        let w = h2.write(OpKind::Put, 0, (0, 1), &c3);
        let g = h2.read(0, (2, 3), vec![]);
        let d = h2.write(OpKind::Delete, 0, (4, 5), &c2);
        let mut state = FinalState::default();
        state.keys.insert(
            0,
            vec![(
                4,
                sibs(vec![
                    Ver::live(c3.clone(), value_for(w, 8)),
                    Ver::tombstone(c2.clone()),
                ]),
            )],
        );
        assert!(resurrected_deletes(&h2.0, &state).0.is_empty());
        // If the client had read it before deleting, the delete was ineffective (re-stamping),
        // which is measured, not a failure.
        if let Some(o) = h2.0.get_mut(g) {
            o.read = vec![w];
        }
        if let Some(o) = h2.0.get_mut(d) {
            o.context_from = Some(g);
        }
        assert!(resurrected_deletes(&h2.0, &state).0.is_empty());
        let report = check(&h2.0, &state);
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.ineffective_deletes.len(), 1);
        assert!(report.to_string().contains("1 ineffective"));
    }

    #[test]
    fn bad_contexts_are_reported() {
        let mut h = H(History::new());
        h.op(OpKind::Put, 0, 0, 1, true);
        let r = check(&h.0, &FinalState::default());
        assert_eq!(r.errors.len(), 1);
        assert!(!r.is_clean());
    }
}
