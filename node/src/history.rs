//! A checker for histories of clients talking to a real cluster, judged on **values**.
//!
//! The simulator's checkers ([`sim::check`](crate::sim::check)) apply the same definitions to the
//! replicas' stored versions, which a simulator can read directly. This checker needs only what
//! clients see, so it judges real clusters too, and it knows nothing of the node's causality
//! model: contexts are opaque bytes to it. Instead, every put writes a unique id as its value
//! ([`WriteId`], `client-C-op-N`), and every write records the values its context came from (the
//! live values returned by the get whose context it passed; none for a blind put).
//!
//! Definitions, per key (every put writes a write id; a value read that is none is a phantom):
//!
//! - A value `v` is **superseded** by a write (put or delete, of any outcome but
//!   [`Outcome::NotSent`]) whose context came from a get that returned `v`. Nothing else
//!   supersedes `v`; in particular a later write that supersedes the superseding write does not
//!   bring `v` back.
//! - A value is **accounted for** if it is in some node's final read, or a delete or an
//!   acknowledged put superseded it, or a put superseded it whose own value is accounted for. An
//!   unacknowledged put that replaced `v` and left no trace either was not applied (then `v` must
//!   remain) or was applied and lost (it cannot be: a replica replaces `v` only with a durable
//!   copy, which spreads).
//! - **Lost**: a put acknowledged to its client whose value is not accounted for.
//! - **Resurrected**: a value in a final read that an *applied* write superseded: one
//!   acknowledged, or a put whose value a get or a final read returned (it reached a replica, and
//!   its version replaces `v` wherever it goes). A value superseded only by failed, timed-out or
//!   unfinished writes never seen may legitimately remain: such a write may not have been applied.
//! - **Phantom**: a value, in a final read or returned by a get, that no client wrote to the key
//!   (write ids of other keys, of nobody, of a put [`Outcome::NotSent`], and values that are no
//!   write id).
//! - **Divergent**: a key whose final reads differ from node to node (the cluster did not
//!   converge), and **unread**: a key that was written but has no final read at all (it cannot be
//!   judged).
//!
//! - **Missed**: a get marked [`strict`](History::strict) (strict quorums, R + W > N) that
//!   returned neither the value of a strict put acknowledged before the get was sent nor any
//!   write that superseded it (sent before the get completed), and no delete superseded it.
//!
//! A failed or timed-out write is treated as *maybe applied*: it may be absent from the end
//! state, and it supersedes what its context saw. Other stale reads are not errors (Dynamo is
//! only eventually consistent: sloppy quorums, or R + W <= N) and are not judged.
//!
//! ```
//! use dynamo_node::history::{History, Outcome, WriteId};
//!
//! let mut h = History::new();
//! let a = WriteId::new(1, 1).to_value();
//! let put = h.invoke_put(1, b"k", a.clone(), &[], b"");           // a blind put
//! h.complete(put, Outcome::Ok);
//!
//! let get = h.invoke_get(2, b"k");
//! h.get_ok(get, vec![a.clone()], b"ctx".to_vec());
//! let b = WriteId::new(2, 1).to_value();
//! let rmw = h.invoke_put(2, b"k", b.clone(), &[a.clone()], b"ctx"); // supersedes `a`
//! h.complete(rmw, Outcome::Ok);
//!
//! h.final_read(b"k", 1, vec![b.clone()]);
//! h.final_read(b"k", 2, vec![b]);
//! assert!(h.check().is_clean());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod missed;
mod report;
/// Whether write `by`, which superseded a value, accounts for it being gone: acknowledged; a put
/// whose own value is accounted for (or not judged yet); a delete, any if `any_delete`, else only
/// an acknowledged one (an unacknowledged delete may not have been applied).
fn accounts(by: &Op, accounted: &BTreeMap<WriteId, bool>, any_delete: bool) -> bool {
    let acked = by.outcome() == Some(Outcome::Ok);
    match &by.kind {
        Kind::Put(_) if acked => true,
        Kind::Put(value) => WriteId::parse(value)
            .and_then(|v| accounted.get(&v).copied())
            .unwrap_or(true),
        Kind::Delete => any_delete || acked,
        Kind::Get => true,
    }
}

#[cfg(test)]
mod tests;

pub use missed::Missed;
pub use report::{Lost, OutcomeCounts, Phantom, Report, Resurrected, WriteInfo, WriteKind};

/// The unique id a put carries as its value: `client-C-op-N`.
///
/// ```
/// use dynamo_node::history::WriteId;
///
/// let id = WriteId::new(3, 17);
/// assert_eq!(id.to_value(), b"client-3-op-17".to_vec());
/// assert_eq!(WriteId::parse(b"client-3-op-17"), Some(id));
/// assert_eq!(WriteId::parse(b"milk"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId {
    /// The writing client.
    pub client: u64,
    /// The client's operation number.
    pub op: u64,
}

impl WriteId {
    /// The id of client `client`'s operation `op`.
    pub fn new(client: u64, op: u64) -> Self {
        WriteId { client, op }
    }

    /// The value bytes carrying this id.
    pub fn to_value(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The id a value carries, if it is one (in canonical form: no sign, no leading zeros).
    pub fn parse(value: &[u8]) -> Option<WriteId> {
        let text = std::str::from_utf8(value).ok()?;
        let (client, op) = text.strip_prefix("client-")?.split_once("-op-")?;
        let number = |s: &str| -> Option<u64> {
            let n: u64 = s.parse().ok()?;
            (n.to_string() == s).then_some(n)
        };
        Some(WriteId::new(number(client)?, number(op)?))
    }
}

impl fmt::Display for WriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client-{}-op-{}", self.client, self.op)
    }
}

/// How a request ended, as its client saw it.
///
/// ```
/// use dynamo_node::history::Outcome;
/// assert!(Outcome::TimedOut.maybe_applied() && !Outcome::Ok.maybe_applied());
/// assert!(!Outcome::NotSent.maybe_applied());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Acknowledged (a get: answered).
    Ok,
    /// The cluster or the connection reported a failure. A write may still have been applied.
    Failed,
    /// No answer in time. A write may have been applied.
    TimedOut,
    /// The request never left its client (it could reach no node): a write was not applied.
    NotSent,
}

impl Outcome {
    /// Whether a write that ended so may or may not have been applied (failed or timed out).
    pub fn maybe_applied(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::TimedOut)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::NotSent => "not sent",
        })
    }
}

/// A reference to an invoked operation, to complete it with.
///
/// ```
/// use dynamo_node::history::{History, Outcome};
/// let mut h = History::new();
/// let op = h.invoke_get(1, b"k");
/// h.complete(op, Outcome::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRef(usize);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Get,
    Put(Vec<u8>),
    Delete,
}

#[derive(Debug, Clone)]
struct Op {
    client: u64,
    key: Vec<u8>,
    kind: Kind,
    /// Writes: the values the context came from. Gets: the values returned.
    values: Vec<Vec<u8>>,
    /// Writes: the context passed. Gets: the context returned. Kept for the record only.
    #[allow(dead_code)]
    context: Vec<u8>,
    invoked: u64,
    completed: Option<(u64, Outcome)>,
    /// Sent with strict quorums where R + W > N (see [`History::strict`]).
    strict: bool,
}

impl Op {
    fn is_write(&self) -> bool {
        self.kind != Kind::Get
    }

    fn outcome(&self) -> Option<Outcome> {
        self.completed.map(|(_, o)| o)
    }

    fn info(&self, op: usize) -> WriteInfo {
        WriteInfo {
            op: OpRef(op),
            client: self.client,
            kind: match &self.kind {
                Kind::Put(v) => WriteKind::Put(v.clone()),
                Kind::Get | Kind::Delete => WriteKind::Delete,
            },
            seen: self.values.clone(),
            outcome: self.outcome(),
            invoked: self.invoked,
            completed: self.completed.map(|(t, _)| t),
        }
    }
}

/// Invocations and completions of gets, puts and deletes, and the final reads after healing.
///
/// Events are numbered in the order they are recorded; record an invocation before sending the
/// request and its completion after the answer. Clients running concurrently share one history
/// (behind a mutex: no method blocks or awaits). See the [module docs](self) for an example.
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Op>,
    /// Per key, per node: the values of the latest final read.
    finals: BTreeMap<Vec<u8>, BTreeMap<u64, Vec<Vec<u8>>>>,
    events: u64,
    errors: Vec<String>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn invoke(
        &mut self,
        client: u64,
        key: &[u8],
        kind: Kind,
        values: &[Vec<u8>],
        context: &[u8],
    ) -> OpRef {
        self.events += 1;
        self.ops.push(Op {
            client,
            key: key.to_vec(),
            kind,
            values: values.to_vec(),
            context: context.to_vec(),
            invoked: self.events,
            completed: None,
            strict: false,
        });
        OpRef(self.ops.len() - 1)
    }

    /// Every key an operation was recorded for, once each, in order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let keys: std::collections::BTreeSet<&Vec<u8>> = self.ops.iter().map(|o| &o.key).collect();
        keys.into_iter().cloned().collect()
    }

    /// Client `client` sends a get of `key`.
    pub fn invoke_get(&mut self, client: u64, key: &[u8]) -> OpRef {
        self.invoke(client, key, Kind::Get, &[], &[])
    }

    /// The get `op` answered `values` (every live sibling) and `context`.
    pub fn get_ok(&mut self, op: OpRef, values: Vec<Vec<u8>>, context: Vec<u8>) {
        if self.finish(op, Outcome::Ok) {
            if let Some(o) = self.ops.get_mut(op.0) {
                o.values = values;
                o.context = context;
            }
        }
    }

    /// Client `client` sends a put of `value` to `key`, with `context` from a get that returned
    /// `seen` (for a blind put: an empty context and nothing seen).
    pub fn invoke_put(
        &mut self,
        client: u64,
        key: &[u8],
        value: Vec<u8>,
        seen: &[Vec<u8>],
        context: &[u8],
    ) -> OpRef {
        self.invoke(client, key, Kind::Put(value), seen, context)
    }

    /// Client `client` sends a delete of `key`, with `context` from a get that returned `seen`.
    pub fn invoke_delete(
        &mut self,
        client: u64,
        key: &[u8],
        seen: &[Vec<u8>],
        context: &[u8],
    ) -> OpRef {
        self.invoke(client, key, Kind::Delete, seen, context)
    }

    /// The operation `op` was sent with strict quorums whose read and write quorums overlap
    /// (R + W > N): a strict get must see every strict put acknowledged before it was sent, or
    /// what superseded it (see "missed" in the [module docs](self)).
    ///
    /// ```
    /// use dynamo_node::history::{History, Outcome, WriteId};
    ///
    /// let mut h = History::new();
    /// let a = WriteId::new(1, 1).to_value();
    /// let put = h.invoke_put(1, b"k", a.clone(), &[], b"");
    /// h.strict(put);
    /// h.complete(put, Outcome::Ok);
    /// let get = h.invoke_get(2, b"k");
    /// h.strict(get);
    /// h.get_ok(get, vec![], Vec::new()); // missed the acknowledged put
    /// h.final_read(b"k", 1, vec![a]);
    /// assert_eq!(h.check().missed.len(), 1);
    /// ```
    pub fn strict(&mut self, op: OpRef) {
        if let Some(o) = self.ops.get_mut(op.0) {
            o.strict = true;
        }
    }

    /// The operation `op` ended with `outcome` (for a successful get use [`History::get_ok`]).
    /// A write never completed counts as maybe applied.
    pub fn complete(&mut self, op: OpRef, outcome: Outcome) {
        self.finish(op, outcome);
    }

    fn finish(&mut self, op: OpRef, outcome: Outcome) -> bool {
        self.events += 1;
        let event = self.events;
        match self.ops.get_mut(op.0) {
            Some(o) if o.completed.is_none() => {
                o.completed = Some((event, outcome));
                true
            }
            Some(_) => {
                self.errors
                    .push(format!("operation {} completed twice", op.0));
                false
            }
            None => {
                self.errors
                    .push(format!("operation {} was never invoked", op.0));
                false
            }
        }
    }

    /// After healing: node `node` read `values` for `key` (every live sibling; empty if absent).
    /// A later final read of the same key from the same node replaces the earlier one.
    pub fn final_read(&mut self, key: &[u8], node: u64, values: Vec<Vec<u8>>) {
        self.finals
            .entry(key.to_vec())
            .or_default()
            .insert(node, values);
    }

    /// Judges the history; see the [module docs](self) for the definitions.
    ///
    /// ```
    /// use dynamo_node::history::{History, Outcome, WriteId};
    ///
    /// let mut h = History::new();
    /// let put = h.invoke_put(1, b"k", WriteId::new(1, 1).to_value(), &[], b"");
    /// h.complete(put, Outcome::Ok);
    /// h.final_read(b"k", 1, vec![]);                   // the acknowledged value is gone
    /// let report = h.check();
    /// assert_eq!(report.lost.len(), 1);
    /// assert!(!report.is_clean());
    /// ```
    pub fn check(&self) -> Report {
        let mut report = Report {
            errors: self.errors.clone(),
            ..Report::default()
        };
        let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            by_key.entry(&op.key).or_default().push(i);
            let counts = match op.kind {
                Kind::Get => &mut report.gets,
                Kind::Put(_) => &mut report.puts,
                Kind::Delete => &mut report.deletes,
            };
            counts.add(op.outcome());
        }
        for key in self.finals.keys() {
            by_key.entry(key).or_default();
        }
        for (key, ops) in by_key {
            self.check_key(key, &ops, &mut report);
        }
        report
    }

    fn check_key(&self, key: &[u8], ops: &[usize], report: &mut Report) {
        // The put of each id, and the writes that superseded each id.
        let mut written: BTreeMap<WriteId, usize> = BTreeMap::new();
        let mut superseded: BTreeMap<WriteId, Vec<usize>> = BTreeMap::new();
        // Values gets returned (a put's value read back was applied).
        let mut seen: BTreeSet<WriteId> = BTreeSet::new();
        for &i in ops {
            let op = &self.ops[i];
            if let Kind::Put(value) = &op.kind {
                if let Some(id) = WriteId::parse(value) {
                    if written.insert(id, i).is_some() {
                        report
                            .errors
                            .push(format!("{id} was written twice to {}", show(key)));
                    }
                }
            }
            if op.is_write() && op.outcome() != Some(Outcome::NotSent) {
                for id in op.values.iter().filter_map(|v| WriteId::parse(v)) {
                    superseded.entry(id).or_default().push(i);
                }
            }
        }

        // Phantoms: values nobody wrote to this key, returned by gets or in final reads.
        let mut phantoms: BTreeMap<Vec<u8>, Phantom> = BTreeMap::new();
        // A put that was never sent, or that every node turned down, wrote nothing.
        let written_here = |value: &[u8]| {
            WriteId::parse(value).filter(|id| {
                written
                    .get(id)
                    .is_some_and(|&i| self.ops[i].outcome() != Some(Outcome::NotSent))
            })
        };
        for &i in ops {
            let op = &self.ops[i];
            if op.kind == Kind::Get && op.outcome() == Some(Outcome::Ok) {
                for value in &op.values {
                    match written_here(value) {
                        Some(id) => {
                            seen.insert(id);
                        }
                        None => {
                            phantoms
                                .entry(value.clone())
                                .or_insert_with(|| Phantom::new(key, value))
                                .gets += 1;
                        }
                    }
                }
            }
        }
        let (missed, judged) = missed::missed(key, &self.ops, ops, &written, &superseded);
        report.missed.extend(missed);
        report.strict_gets_judged += judged;
        let judged = self.judge_finals(key, ops, &written, &superseded, &seen, report);
        if let Some(present) = judged {
            for (value, nodes) in present
                .into_iter()
                .filter(|(value, _)| written_here(value).is_none())
            {
                phantoms
                    .entry(value.clone())
                    .or_insert_with(|| Phantom::new(key, &value))
                    .nodes = nodes;
            }
        }
        report.phantoms.extend(phantoms.into_values());
    }

    /// Lost, resurrected, divergent: judged on the final reads, which it returns (values, with
    /// the nodes that returned them); `None` if the key has none.
    fn judge_finals(
        &self,
        key: &[u8],
        ops: &[usize],
        written: &BTreeMap<WriteId, usize>,
        superseded: &BTreeMap<WriteId, Vec<usize>>,
        seen: &BTreeSet<WriteId>,
        report: &mut Report,
    ) -> Option<BTreeMap<Vec<u8>, Vec<u64>>> {
        let finals = self.finals.get(key);
        let Some(finals) = finals.filter(|f| !f.is_empty()) else {
            if ops.iter().any(|&i| self.ops[i].is_write()) {
                report.unread.push(key.to_vec());
            }
            return None;
        };
        report.keys_judged += 1;

        // Final values, with the nodes that returned them.
        let mut values: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
        let mut sets = BTreeSet::new();
        for (&node, read) in finals {
            let mut set = BTreeSet::new();
            for value in read {
                if !set.insert(value.clone()) {
                    report.duplicates += 1;
                }
                values.entry(value.clone()).or_default().push(node);
            }
            sets.insert(set);
        }
        if sets.len() > 1 {
            report.divergent.push(key.to_vec());
        }
        for nodes in values.values_mut() {
            nodes.dedup();
        }
        let present: BTreeMap<WriteId, &Vec<u64>> = values
            .iter()
            .filter_map(|(v, nodes)| WriteId::parse(v).map(|id| (id, nodes)))
            .collect();

        // Accounted for, from the latest put back: a put's superseders come after it.
        let mut accounted: BTreeMap<WriteId, bool> = BTreeMap::new();
        let mut by_position: Vec<(usize, WriteId)> =
            written.iter().map(|(id, &i)| (i, *id)).collect();
        by_position.sort_unstable();
        for &(_, id) in by_position.iter().rev() {
            // A put acknowledged over `id` accounts for it whatever became of the put (its own
            // loss is reported as its own).
            let replaced = superseded
                .get(&id)
                .into_iter()
                .flatten()
                .any(|&w| accounts(&self.ops[w], &accounted, true));
            accounted.insert(id, present.contains_key(&id) || replaced);
        }

        // Gone, and accounted for only by deletes that were not acknowledged (counted: the
        // history cannot tell whether they were applied).
        for (id, &i) in written {
            let op = &self.ops[i];
            if op.outcome() != Some(Outcome::Ok)
                || present.contains_key(id)
                || accounted.get(id) != Some(&true)
            {
                continue;
            }
            let surely = superseded
                .get(id)
                .into_iter()
                .flatten()
                .any(|&w| accounts(&self.ops[w], &accounted, false));
            if !surely {
                report.excused_by_unacknowledged_deletes += 1;
            }
        }

        // Lost: acknowledged, not accounted for.
        for (id, &i) in written {
            let op = &self.ops[i];
            if op.outcome() == Some(Outcome::Ok) && accounted.get(id) == Some(&false) {
                let replaced_by = superseded
                    .get(id)
                    .into_iter()
                    .flatten()
                    .map(|&w| w.to_owned())
                    .map(|w| self.ops[w].info(w))
                    .collect();
                report.lost.push(Lost {
                    key: key.to_vec(),
                    write: op.info(i),
                    replaced_by,
                });
            }
        }

        // Resurrected: present, yet superseded by an applied write (acknowledged, or a put whose
        // value was read back).
        let applied = |op: &Op| {
            op.outcome() == Some(Outcome::Ok)
                || matches!(&op.kind, Kind::Put(v) if WriteId::parse(v)
                    .is_some_and(|by| seen.contains(&by) || present.contains_key(&by)))
        };
        for (id, nodes) in &present {
            let by = superseded
                .get(id)
                .into_iter()
                .flatten()
                .map(|&i| (i, &self.ops[i]))
                .filter(|(_, op)| applied(op))
                .min_by_key(|(_, op)| op.invoked);
            if let Some((i, op)) = by {
                report.resurrected.push(Resurrected {
                    key: key.to_vec(),
                    value: id.to_value(),
                    nodes: (*nodes).clone(),
                    written: written.get(id).map(|&w| self.ops[w].info(w)),
                    by: op.info(i),
                });
            }
        }
        Some(values)
    }
}

/// A key for humans: text if it is UTF-8, else its bytes.
fn show(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("{key:?}"),
    }
}
