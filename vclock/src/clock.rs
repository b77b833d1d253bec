//! The vector clock itself: a sorted small vector of `(actor, counter, timestamp)` entries and the
//! causal comparison between two clocks.

use core::cmp::Ordering;
use core::fmt;

use smallvec::SmallVec;

/// Entries stored inline before a clock spills to the heap. Four covers N = 3 replicas plus one
/// fallback, the common case, without an allocation per clone.
const INLINE: usize = 4;

/// One entry of a [`VClock`]: how many events `actor` has coordinated, and when the latest one
/// happened.
///
/// The counter is what causality is computed from. The timestamp is metadata the caller passes to
/// [`VClock::increment`] (milliseconds since an epoch of the caller's choice; this crate never reads
/// a wall clock) and is used only by [pruning](crate::PrunePolicy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Entry<A> {
    /// Who coordinated the events (a node, or a node and an epoch, or a client id).
    pub actor: A,
    /// Number of events coordinated by `actor` that this clock has seen. Never zero inside a clock.
    pub counter: u64,
    /// Caller-supplied time of `actor`'s latest event seen, in milliseconds.
    pub timestamp: u64,
}

/// How two clocks (and the versions they stamp) are causally related.
///
/// Read `a.compare(&b)` as "a is `Before`/`After`/`Equal` to/`Concurrent` with b".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Causality {
    /// `a` happened before `b`: `b` descends `a` and they differ. `a` is obsolete.
    Before,
    /// `a` happened after `b`: `a` descends `b` and they differ. `b` is obsolete.
    After,
    /// Same counters for every actor (timestamps are not compared).
    Equal,
    /// Neither descends the other: conflicting versions, both kept as siblings.
    Concurrent,
}

impl Causality {
    /// The relation seen from the other side: `Before` <-> `After`.
    #[must_use]
    pub fn reverse(self) -> Self {
        match self {
            Self::Before => Self::After,
            Self::After => Self::Before,
            other => other,
        }
    }
}

/// A vector clock: for every actor that coordinated a write in a version's history, how many such
/// writes it coordinated (section 4.4 of the Dynamo paper).
///
/// Entries are kept sorted by actor with no duplicates and no zero counters, so comparison and
/// merge are single linear passes and two clocks with the same history are equal values. Up to four
/// entries live inline (no allocation); a clone of such a clock is a `memcpy`.
///
/// `A` is the actor id. Anything `Ord + Clone` works for the causal operations; the byte
/// [encoding](VClock::encode) needs [`Actor`](crate::Actor). A storage node should use an actor that
/// is never reused with a reset counter, e.g. `(node_id, epoch)` where the epoch changes whenever the
/// node may have lost its counters (the lesson of Riak's kv679 bug).
///
/// Equality (`==`) compares timestamps too; causal equality is `compare(..) == Causality::Equal`.
///
/// ```
/// use dynamo_vclock::{Causality, VClock};
///
/// let mut a = VClock::new();
/// a.increment("sx", 1_000);
/// let mut b = a.clone();
/// b.increment("sy", 2_000);
/// a.increment("sz", 3_000);
/// assert_eq!(a.compare(&b), Causality::Concurrent);
///
/// let mut merged = a.clone();
/// merged.merge(&b);
/// assert!(merged.descends(&a) && merged.descends(&b));
/// assert_eq!(merged.compare(&a), Causality::After);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(
        try_from = "Vec<Entry<A>>",
        bound(deserialize = "A: serde::Deserialize<'de> + Ord")
    )
)]
pub struct VClock<A> {
    entries: SmallVec<[Entry<A>; INLINE]>,
}

impl<A> Default for VClock<A> {
    fn default() -> Self {
        Self {
            entries: SmallVec::new(),
        }
    }
}

impl<A: fmt::Debug> fmt::Debug for VClock<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|e| (&e.actor, (e.counter, e.timestamp))),
            )
            .finish()
    }
}

impl<A> VClock<A> {
    /// The empty clock: the history of a key nobody wrote. Every clock descends it.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries (actors).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the clock has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, sorted by actor.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Entry<A>> + '_ {
        self.entries.iter()
    }

    /// Consumes the clock into its sorted entries.
    #[must_use]
    pub fn into_entries(self) -> Vec<Entry<A>> {
        self.entries.into_vec()
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&mut Entry<A>) -> bool) {
        self.entries.retain(keep);
    }
}

impl<A: Ord + Clone> VClock<A> {
    /// Builds a clock from entries in any order. Entries of the same actor are merged (highest
    /// counter wins) and zero counters are dropped, so any input gives a valid clock.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry<A>>) -> Self {
        let mut clock = Self::new();
        for e in entries {
            if e.counter > 0 {
                clock.witness(e);
            }
        }
        clock
    }

    /// Records a new event coordinated by `actor` at time `now` (milliseconds, caller-defined
    /// epoch) and returns the actor's new counter. The result is `After` the clock before the call.
    ///
    /// The counter saturates at `u64::MAX`: 2^64 writes by one actor never happen, but a clock
    /// decoded from untrusted bytes may start there, so bound decoded counters first (see
    /// [`DvvSet::put`](crate::DvvSet::put)).
    pub fn increment(&mut self, actor: A, now: u64) -> u64 {
        match self.entries.binary_search_by(|e| e.actor.cmp(&actor)) {
            Ok(i) => match self.entries.get_mut(i) {
                Some(e) => {
                    e.counter = e.counter.saturating_add(1);
                    e.timestamp = now;
                    e.counter
                }
                None => 0,
            },
            Err(i) => {
                self.entries.insert(
                    i,
                    Entry {
                        actor,
                        counter: 1,
                        timestamp: now,
                    },
                );
                1
            }
        }
    }

    /// The counter of `actor`, 0 if absent.
    #[must_use]
    pub fn counter(&self, actor: &A) -> u64 {
        self.get(actor).map_or(0, |e| e.counter)
    }

    /// The entry of `actor`, if any.
    #[must_use]
    pub fn get(&self, actor: &A) -> Option<&Entry<A>> {
        self.entries
            .binary_search_by(|e| e.actor.cmp(actor))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// Merges one entry: the higher `(counter, timestamp)` wins.
    fn witness(&mut self, entry: Entry<A>) {
        match self.entries.binary_search_by(|e| e.actor.cmp(&entry.actor)) {
            Ok(i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    if (entry.counter, entry.timestamp) > (e.counter, e.timestamp) {
                        e.counter = entry.counter;
                        e.timestamp = entry.timestamp;
                    }
                }
            }
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Makes `self` the least upper bound of `self` and `other`: for each actor the highest counter
    /// (and with it that entry's timestamp; on equal counters the later timestamp). Commutative,
    /// associative and idempotent; the result descends both inputs.
    pub fn merge(&mut self, other: &Self) {
        // Fast path, the common one: same actors (replicas of one key), update in place.
        if self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(other.entries.iter())
                .all(|(a, b)| a.actor == b.actor)
        {
            for (a, b) in self.entries.iter_mut().zip(other.entries.iter()) {
                if (b.counter, b.timestamp) > (a.counter, a.timestamp) {
                    a.counter = b.counter;
                    a.timestamp = b.timestamp;
                }
            }
            return;
        }
        let mut out: SmallVec<[Entry<A>; INLINE]> =
            SmallVec::with_capacity(self.entries.len() + other.entries.len());
        crate::sorted::merge_sorted(
            core::mem::take(&mut self.entries),
            &other.entries,
            |e| &e.actor,
            |a, b| {
                if (b.counter, b.timestamp) > (a.counter, a.timestamp) {
                    a.counter = b.counter;
                    a.timestamp = b.timestamp;
                }
            },
            &mut out,
        );
        self.entries = out;
    }

    /// The merge of `self` and `other` as a new clock.
    #[must_use]
    pub fn merged(&self, other: &Self) -> Self {
        let mut m = self.clone();
        m.merge(other);
        m
    }

    /// Whether `self` has seen every event `other` has seen (`self >= other` counter-wise). True for
    /// `After` and `Equal`.
    #[must_use]
    pub fn descends(&self, other: &Self) -> bool {
        matches!(self.compare(other), Causality::After | Causality::Equal)
    }

    /// Whether `self` descends `other` and differs from it.
    #[must_use]
    pub fn dominates(&self, other: &Self) -> bool {
        self.compare(other) == Causality::After
    }

    /// The causal relation between `self` and `other`, in one pass over both entry lists.
    #[must_use]
    pub fn compare(&self, other: &Self) -> Causality {
        let (mut greater, mut less) = (false, false);
        let (a, b) = (&self.entries[..], &other.entries[..]);
        let (mut i, mut j) = (0, 0);
        while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            match x.actor.cmp(&y.actor) {
                Ordering::Less => {
                    greater = true;
                    i += 1;
                }
                Ordering::Greater => {
                    less = true;
                    j += 1;
                }
                Ordering::Equal => {
                    match x.counter.cmp(&y.counter) {
                        Ordering::Greater => greater = true,
                        Ordering::Less => less = true,
                        Ordering::Equal => {}
                    }
                    i += 1;
                    j += 1;
                }
            }
            if greater && less {
                return Causality::Concurrent;
            }
        }
        greater |= i < a.len();
        less |= j < b.len();
        match (greater, less) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }
}

/// Why a list of entries is not a valid clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidClock {
    /// Entry `index` does not sort strictly after the previous one (unsorted or duplicate actor).
    #[error("entry {index}: actor not strictly greater than the previous one")]
    NotSorted {
        /// Position of the offending entry.
        index: usize,
    },
    /// Entry `index` has counter 0, which a clock never stores.
    #[error("entry {index}: counter is zero")]
    ZeroCounter {
        /// Position of the offending entry.
        index: usize,
    },
}

impl<A: Ord> TryFrom<Vec<Entry<A>>> for VClock<A> {
    type Error = InvalidClock;

    /// Accepts exactly the canonical form (sorted, unique actors, non-zero counters), as produced by
    /// [`VClock::into_entries`]. Used when deserializing untrusted input.
    fn try_from(entries: Vec<Entry<A>>) -> Result<Self, Self::Error> {
        for (index, e) in entries.iter().enumerate() {
            if e.counter == 0 {
                return Err(InvalidClock::ZeroCounter { index });
            }
            if let Some(prev) = index.checked_sub(1).and_then(|p| entries.get(p)) {
                if prev.actor >= e.actor {
                    return Err(InvalidClock::NotSorted { index });
                }
            }
        }
        Ok(Self {
            entries: SmallVec::from_vec(entries),
        })
    }
}

impl<A> From<VClock<A>> for Vec<Entry<A>> {
    fn from(clock: VClock<A>) -> Self {
        clock.into_entries()
    }
}

impl<A: Ord + Clone> FromIterator<Entry<A>> for VClock<A> {
    fn from_iter<I: IntoIterator<Item = Entry<A>>>(iter: I) -> Self {
        Self::from_entries(iter)
    }
}

/// Serializes the entries as a sequence, borrowed (the form deserialization reads back).
#[cfg(feature = "serde")]
impl<A: serde::Serialize> serde::Serialize for VClock<A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter())
    }
}
