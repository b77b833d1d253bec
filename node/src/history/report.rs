//! What [`History::check`](super::History::check) finds.

use std::fmt;

use super::{show, OpRef, Outcome, WriteId};

/// How many operations of one kind ended how.
///
/// ```
/// use dynamo_node::history::OutcomeCounts;
/// let c = OutcomeCounts { ok: 5, failed: 1, timed_out: 2, unfinished: 0, not_sent: 1 };
/// assert_eq!((c.total(), c.maybe_applied()), (9, 3));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Acknowledged (gets: answered).
    pub ok: usize,
    /// Failed.
    pub failed: usize,
    /// Timed out.
    pub timed_out: usize,
    /// Invoked, never completed.
    pub unfinished: usize,
    /// Never sent (the client reached no node).
    pub not_sent: usize,
}

impl OutcomeCounts {
    pub(super) fn add(&mut self, outcome: Option<Outcome>) {
        match outcome {
            Some(Outcome::Ok) => self.ok += 1,
            Some(Outcome::Failed) => self.failed += 1,
            Some(Outcome::TimedOut) => self.timed_out += 1,
            Some(Outcome::NotSent) => self.not_sent += 1,
            None => self.unfinished += 1,
        }
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.ok + self.failed + self.timed_out + self.unfinished + self.not_sent
    }

    /// Those that were not acknowledged (for writes: maybe applied).
    pub fn maybe_applied(&self) -> usize {
        self.failed + self.timed_out + self.unfinished
    }
}

impl fmt::Display for OutcomeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} timed out",
            self.ok, self.failed, self.timed_out
        )?;
        if self.unfinished > 0 {
            write!(f, ", {} unfinished", self.unfinished)?;
        }
        if self.not_sent > 0 {
            write!(f, ", {} not sent", self.not_sent)?;
        }
        Ok(())
    }
}

/// What a write wrote.
///
/// ```
/// use dynamo_node::history::WriteKind;
/// assert_eq!(WriteKind::Put(b"client-1-op-2".to_vec()).to_string(), "put client-1-op-2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// A put of this value.
    Put(Vec<u8>),
    /// A delete.
    Delete,
}

impl fmt::Display for WriteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteKind::Put(v) => write!(f, "put {}", value_text(v)),
            WriteKind::Delete => f.write_str("delete"),
        }
    }
}

/// A write of the history, for reports.
///
/// ```
/// use dynamo_node::history::{History, Outcome, WriteId};
/// let mut h = History::new();
/// let op = h.invoke_put(4, b"k", WriteId::new(4, 9).to_value(), &[], b"");
/// h.complete(op, Outcome::Ok);
/// h.final_read(b"k", 1, vec![]);
/// let lost = &h.check().lost[0];
/// assert_eq!(lost.write.to_string(), "client 4 put client-4-op-9 (ok; events 1..2)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteInfo {
    /// The operation.
    pub op: OpRef,
    /// The client that sent it.
    pub client: u64,
    /// Put or delete.
    pub kind: WriteKind,
    /// The values its context came from.
    pub seen: Vec<Vec<u8>>,
    /// How it ended (`None`: never completed).
    pub outcome: Option<Outcome>,
    /// Event number of its invocation.
    pub invoked: u64,
    /// Event number of its completion.
    pub completed: Option<u64>,
}

impl fmt::Display for WriteInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} {}", self.client, self.kind)?;
        if !self.seen.is_empty() {
            let seen: Vec<String> = self.seen.iter().map(|v| value_text(v)).collect();
            write!(f, " over [{}]", seen.join(", "))?;
        }
        match (self.outcome, self.completed) {
            (Some(o), Some(t)) => write!(f, " ({o}; events {}..{t})", self.invoked),
            _ => write!(f, " (unfinished; invoked at event {})", self.invoked),
        }
    }
}

/// An acknowledged put whose value is gone, and not accounted for (see the [module
/// docs](super)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The key.
    pub key: Vec<u8>,
    /// The put.
    pub write: WriteInfo,
    /// The unacknowledged puts that superseded it and left no trace themselves.
    pub replaced_by: Vec<WriteInfo>,
}

/// A value still present at the end although an acknowledged write superseded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resurrected {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The nodes whose final read returned it.
    pub nodes: Vec<u64>,
    /// The put that wrote it (`None`: nobody did; it is also a phantom).
    pub written: Option<WriteInfo>,
    /// The first acknowledged write (by invocation) whose context saw it.
    pub by: WriteInfo,
}

/// A value nobody wrote to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phantom {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The nodes whose final read returned it.
    pub nodes: Vec<u64>,
    /// How many gets returned it.
    pub gets: usize,
}

impl Phantom {
    pub(super) fn new(key: &[u8], value: &[u8]) -> Self {
        Phantom {
            key: key.to_vec(),
            value: value.to_vec(),
            nodes: Vec::new(),
            gets: 0,
        }
    }
}

/// The verdict on a history. See the [module docs](super) for the definitions.
///
/// ```
/// use dynamo_node::history::History;
/// let report = History::new().check();
/// assert!(report.is_clean());
/// println!("{report}"); // a summary line, then examples of each problem
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Gets, by outcome.
    pub gets: OutcomeCounts,
    /// Puts, by outcome.
    pub puts: OutcomeCounts,
    /// Deletes, by outcome.
    pub deletes: OutcomeCounts,
    /// Keys with final reads.
    pub keys_judged: usize,
    /// Lost writes.
    pub lost: Vec<Lost>,
    /// Resurrected values.
    pub resurrected: Vec<Resurrected>,
    /// Values nobody wrote.
    pub phantoms: Vec<Phantom>,
    /// Strict gets that missed an acknowledged strict put.
    pub missed: Vec<super::Missed>,
    /// Strict gets answered after some strict put of their key was acknowledged: those judged
    /// for `missed`.
    pub strict_gets_judged: usize,
    /// Keys whose final reads differ between nodes.
    pub divergent: Vec<Vec<u8>>,
    /// Keys written but never read at the end: not judged.
    pub unread: Vec<Vec<u8>>,
    /// A value twice among the siblings of one final read (a retried put; not an error).
    pub duplicates: usize,
    /// Acknowledged puts gone at the end that only deletes without an acknowledgement account
    /// for: each such delete may have been applied (then the value is rightly gone) or not
    /// (then it was lost), which the history cannot tell. Not a failure; the count says how
    /// much the check could not judge.
    pub excused_by_unacknowledged_deletes: usize,
    /// Malformed history: an id written twice, an operation completed twice.
    pub errors: Vec<String>,
}

impl Report {
    /// No lost, resurrected or phantom value, no strict get that missed a write, every key
    /// converged and read, a well-formed history.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.resurrected.is_empty()
            && self.phantoms.is_empty()
            && self.missed.is_empty()
            && self.divergent.is_empty()
            && self.unread.is_empty()
            && self.errors.is_empty()
    }

    /// One line: writes by outcome and the count of each problem.
    pub fn summary(&self) -> String {
        format!(
            "puts: {}; deletes: {}; gets: {}; keys judged: {}; lost: {}, resurrected: {}, \
             phantoms: {}, strict gets that missed a write: {} of {}, divergent keys: {}, unread \
             keys: {}, duplicate siblings: {}, history errors: {}; gone with only an \
             unacknowledged delete over them: {}",
            self.puts,
            self.deletes,
            self.gets,
            self.keys_judged,
            self.lost.len(),
            self.resurrected.len(),
            self.phantoms.len(),
            self.missed.len(),
            self.strict_gets_judged,
            self.divergent.len(),
            self.unread.len(),
            self.duplicates,
            self.errors.len(),
            self.excused_by_unacknowledged_deletes,
        )
    }
}

/// At most this many examples of each problem are displayed.
const EXAMPLES: usize = 5;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        for l in self.lost.iter().take(EXAMPLES) {
            writeln!(f, "  lost: key {}: {}", show(&l.key), l.write)?;
            for by in &l.replaced_by {
                writeln!(f, "    replaced by, without a trace: {by}")?;
            }
        }
        for r in self.resurrected.iter().take(EXAMPLES) {
            writeln!(
                f,
                "  resurrected: key {}: {} on nodes {:?}, superseded by {}",
                show(&r.key),
                value_text(&r.value),
                r.nodes,
                r.by
            )?;
            if let Some(w) = &r.written {
                writeln!(f, "    written by {w}")?;
            }
        }
        for p in self.phantoms.iter().take(EXAMPLES) {
            writeln!(
                f,
                "  phantom: key {}: {} on nodes {:?}, in {} gets",
                show(&p.key),
                value_text(&p.value),
                p.nodes,
                p.gets
            )?;
        }
        for m in self.missed.iter().take(EXAMPLES) {
            let returned: Vec<String> = m.returned.iter().map(|v| value_text(v)).collect();
            writeln!(
                f,
                "  missed: key {}: a strict get (events {}..{}) returned [{}], not {}",
                show(&m.key),
                m.events.0,
                m.events.1,
                returned.join(", "),
                m.write
            )?;
        }
        for k in self.divergent.iter().take(EXAMPLES) {
            writeln!(f, "  divergent: key {}", show(k))?;
        }
        for k in self.unread.iter().take(EXAMPLES) {
            writeln!(f, "  unread: key {}", show(k))?;
        }
        for e in self.errors.iter().take(EXAMPLES) {
            writeln!(f, "  history error: {e}")?;
        }
        Ok(())
    }
}

/// A value for humans: its write id, or its bytes.
fn value_text(value: &[u8]) -> String {
    match WriteId::parse(value) {
        Some(id) => id.to_string(),
        None => show(value),
    }
}
