//! Dotted version vectors, in the compact "DVV set" form (Almeida, Baquero, Gonçalves, Preguiça,
//! Fonte: *Scalable and Accurate Causality Tracking for Eventually Consistent Stores*, 2014; the
//! representation behind Riak 2.0's `dvvset`).
//!
//! Every value carries a *dot*: the `(actor, counter)` pair of the write that created it. A client's
//! context (a version vector) discards exactly the values whose dots it covers, so a coordinator
//! that handles writes for many clients with server actor ids keeps only truly concurrent values.
//! Plain per-version clocks cannot tell such writes apart (see [`Siblings::put`]).
//!
//! [`Siblings::put`]: crate::Siblings::put

use crate::{Causality, VClock, Value};

/// One actor's part of a [`DvvSet`]: its counter and the values still alive among its writes.
///
/// `values[k]` is the value written with dot `(actor, counter - k)`: newest first, contiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DvvEntry<A, V> {
    /// The actor (coordinator).
    pub actor: A,
    /// Writes by `actor` this set has seen.
    pub counter: u64,
    /// Caller-supplied time of the latest of those writes, in milliseconds.
    pub timestamp: u64,
    /// Live values among the latest writes by `actor`, newest first. At most `counter` of them.
    pub values: Vec<V>,
}

/// Why a list of entries is not a valid [`DvvSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDvvSet {
    /// Entry `index` does not sort strictly after the previous one.
    #[error("entry {index}: actor not strictly greater than the previous one")]
    NotSorted {
        /// Position of the entry.
        index: usize,
    },
    /// Entry `index` holds more values than its counter allows dots for.
    #[error("entry {index}: {values} values but counter {counter}")]
    TooManyValues {
        /// Position of the entry.
        index: usize,
        /// Number of values.
        values: usize,
        /// Counter of the entry.
        counter: u64,
    },
}

/// The concurrent values of one key with their dots: a dotted version vector set.
///
/// Use it where a server coordinates writes for many clients under its own actor id (the node's
/// `(node_id, epoch)`): [`put`](DvvSet::put) with the client's context discards exactly what the
/// client read, so stale-context writers never create false siblings and never lose each other's
/// writes. Replicas [`merge`](DvvSet::merge) whole sets (commutative, associative, idempotent).
/// The [`context`](DvvSet::context) is a [`VClock`] (timestamps are metadata), so the same byte
/// encoding carries it to clients.
///
/// ```
/// use dynamo_vclock::{DvvSet, VClock};
///
/// let mut key: DvvSet<&str, &str> = DvvSet::new();
/// let empty = VClock::new();
/// // Two clients write through node "n" without having read anything: concurrent.
/// key.put(&empty, "n", 1, "a");
/// key.put(&empty, "n", 2, "b");
/// assert_eq!(key.len(), 2);
/// // A third client reads both and writes: it supersedes them.
/// let ctx = key.context();
/// key.put(&ctx, "n", 3, "c");
/// assert_eq!(key.values().collect::<Vec<_>>(), [&"c"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(
        try_from = "Vec<DvvEntry<A, V>>",
        bound(deserialize = "A: serde::Deserialize<'de> + Ord, V: serde::Deserialize<'de>")
    )
)]
pub struct DvvSet<A, V> {
    entries: Vec<DvvEntry<A, V>>,
}

impl<A, V> Default for DvvSet<A, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<A, V> DvvSet<A, V> {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of concurrent values.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.values.len()).sum()
    }

    /// Whether there is no value (the set may still remember counters).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| e.values.is_empty())
    }

    /// The concurrent values.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().flat_map(|e| e.values.iter())
    }

    /// The values with their dots `(actor, counter)`.
    pub fn dotted_values(&self) -> impl Iterator<Item = ((&A, u64), &V)> + '_ {
        self.entries.iter().flat_map(|e| {
            e.values
                .iter()
                .zip(0u64..)
                .map(move |(v, k)| ((&e.actor, e.counter - k), v))
        })
    }

    /// The entries, sorted by actor.
    #[must_use]
    pub fn entries(&self) -> &[DvvEntry<A, V>] {
        &self.entries
    }
}

impl<A, V> DvvSet<A, Value<V>> {
    /// Whether there is at least one value and all are tombstones.
    #[must_use]
    pub fn is_tombstone_only(&self) -> bool {
        !self.is_empty() && self.values().all(Value::is_tombstone)
    }

    /// The values that are not tombstones.
    pub fn live_values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values().filter_map(Value::as_live)
    }
}

/// Merge of one actor's entry from two sets (`dvvset:merge/5`): keep the values of the side with
/// the higher counter that the other side either has not seen or still holds.
fn merge_entry<A, V: Clone>(mine: &mut DvvEntry<A, V>, theirs: &DvvEntry<A, V>) {
    let (n1, n2) = (mine.counter, theirs.counter);
    let (l1, l2) = (mine.values.len() as u64, theirs.values.len() as u64);
    if n1 >= n2 {
        // Values of `mine` with dot > n2 - l2 survive.
        let keep = (n1 - n2).saturating_add(l2).min(l1);
        mine.values.truncate(keep as usize);
        if n1 == n2 {
            mine.timestamp = mine.timestamp.max(theirs.timestamp);
        }
    } else {
        let keep = (n2 - n1).saturating_add(l1).min(l2);
        mine.values = theirs.values.iter().take(keep as usize).cloned().collect();
        mine.counter = n2;
        mine.timestamp = theirs.timestamp;
    }
}

impl<A: Ord + Clone, V: Clone> DvvSet<A, V> {
    fn position(&self, actor: &A) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.actor.cmp(actor))
    }

    /// Merges another replica's set into this one (`dvvset:sync`). Commutative, associative and
    /// idempotent, as long as each dot names one value, which [`put`](Self::put) ensures for an
    /// actor that never issues a counter twice. Two sets that hold one dot with different values
    /// (an actor that did issue a counter twice, say after losing its state) merge to whichever
    /// this set holds: such sets never converge, and a store must not let an actor reuse a
    /// counter.
    pub fn merge(&mut self, other: &Self) {
        let mut out = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        crate::sorted::merge_sorted(
            core::mem::take(&mut self.entries),
            &other.entries,
            |e| &e.actor,
            merge_entry,
            &mut out,
        );
        self.entries = out;
    }

    /// The version vector of everything this set has seen: the context a get returns.
    #[must_use]
    pub fn context(&self) -> VClock<A> {
        self.entries
            .iter()
            .filter(|e| e.counter > 0)
            .map(|e| crate::Entry {
                actor: e.actor.clone(),
                counter: e.counter,
                timestamp: e.timestamp,
            })
            .collect()
    }

    /// Drops every value whose dot `context` covers (the discard step of [`put`](Self::put),
    /// without a new value): what remains is what a write with that context would not
    /// supersede. The counters stay as they were.
    ///
    /// ```
    /// use dynamo_vclock::{DvvSet, VClock};
    ///
    /// let mut set: DvvSet<&str, &str> = DvvSet::new();
    /// set.put(&VClock::new(), "a", 1, "old");
    /// let seen = set.context();
    /// let mut later = set.clone();
    /// later.put(&VClock::new(), "b", 2, "concurrent");
    /// later.discard(&seen);
    /// assert_eq!(later.values().collect::<Vec<_>>(), [&"concurrent"]);
    /// ```
    pub fn discard(&mut self, context: &VClock<A>) {
        for e in &mut self.entries {
            let seen = context.counter(&e.actor);
            let keep = e.counter.saturating_sub(seen).min(e.values.len() as u64);
            e.values.truncate(keep as usize);
        }
    }

    /// Applies a client's write coordinated by `actor` at `now` with the `context` the client read:
    /// discards every value whose dot the context covers, then adds `value` with the next dot of
    /// `actor`. Returns the new context (the set's, which covers the new value).
    ///
    /// Counters saturate at `u64::MAX`: an actor at it would give every later write the same dot,
    /// and a context covering that dot would discard writes its reader never saw. A context
    /// decoded from a client can carry any counter, so bound its counters before calling this (the
    /// node refuses contexts with counters above what its cluster issues).
    pub fn put(&mut self, context: &VClock<A>, actor: A, now: u64, value: V) -> VClock<A> {
        // discard: drop the values the client saw.
        self.discard(context);
        // The context's knowledge joins the set's (dvvset:update syncs with new(Context, V)).
        let known: DvvSet<A, V> = DvvSet {
            entries: context
                .entries()
                .map(|c| DvvEntry {
                    actor: c.actor.clone(),
                    counter: c.counter,
                    timestamp: c.timestamp,
                    values: Vec::new(),
                })
                .collect(),
        };
        self.merge(&known);
        // event: the next dot of `actor`.
        let i = match self.position(&actor) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(
                    i,
                    DvvEntry {
                        actor,
                        counter: 0,
                        timestamp: now,
                        values: Vec::new(),
                    },
                );
                i
            }
        };
        if let Some(e) = self.entries.get_mut(i) {
            e.counter = e.counter.saturating_add(1);
            e.timestamp = now;
            e.values.insert(0, value);
        }
        self.context()
    }

    /// Whether merging `other` into `self` would change nothing (timestamps aside): `self` has seen
    /// every write of `other` and holds every value of `other` it has not seen superseded. A replica
    /// that does not cover the merged result of a read is stale.
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        other
            .entries
            .iter()
            .all(|theirs| match self.position(&theirs.actor) {
                Ok(i) => self.entries.get(i).is_some_and(|mine| {
                    mine.counter >= theirs.counter
                        && mine.counter - mine.values.len() as u64
                            >= theirs.counter - theirs.values.len() as u64
                }),
                Err(_) => theirs.counter == 0,
            })
    }

    /// How this set's history relates to `other`'s, by their contexts.
    #[must_use]
    pub fn compare(&self, other: &Self) -> Causality {
        self.context().compare(&other.context())
    }
}

impl<A: Ord, V> TryFrom<Vec<DvvEntry<A, V>>> for DvvSet<A, V> {
    type Error = InvalidDvvSet;

    /// Accepts entries sorted by unique actor, each with at most `counter` values.
    fn try_from(entries: Vec<DvvEntry<A, V>>) -> Result<Self, Self::Error> {
        for (index, e) in entries.iter().enumerate() {
            if e.values.len() as u64 > e.counter {
                return Err(InvalidDvvSet::TooManyValues {
                    index,
                    values: e.values.len(),
                    counter: e.counter,
                });
            }
            if let Some(prev) = index.checked_sub(1).and_then(|p| entries.get(p)) {
                if prev.actor >= e.actor {
                    return Err(InvalidDvvSet::NotSorted { index });
                }
            }
        }
        Ok(Self { entries })
    }
}

impl<A, V> From<DvvSet<A, V>> for Vec<DvvEntry<A, V>> {
    fn from(set: DvvSet<A, V>) -> Self {
        set.entries
    }
}

/// Serializes the entries as a sequence, borrowed (the form deserialization reads back).
#[cfg(feature = "serde")]
impl<A: serde::Serialize, V: serde::Serialize> serde::Serialize for DvvSet<A, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter())
    }
}
