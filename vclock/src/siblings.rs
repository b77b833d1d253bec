//! Sibling sets: the concurrent versions of one key, each stamped with its own vector clock.
//!
//! This is the paper's model (section 4.4): a replica keeps every version no other version
//! descends from ("syntactic reconciliation"), a get returns them all with their merged clock as the
//! context, and a put with that context supersedes them.

use crate::{Causality, PrunePolicy, PruneReport, VClock};

/// The payload of a version: a value or a deletion marker.
///
/// A delete is a put of a [`Tombstone`](Value::Tombstone): it supersedes what the client read, as
/// a value would, and is reconciled like one, so a stale replica cannot resurrect the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Value<V> {
    /// A written value.
    Live(V),
    /// A deletion.
    Tombstone,
}

impl<V> Value<V> {
    /// Whether this is a tombstone.
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Tombstone)
    }

    /// The value, or `None` for a tombstone.
    #[must_use]
    pub fn as_live(&self) -> Option<&V> {
        match self {
            Self::Live(v) => Some(v),
            Self::Tombstone => None,
        }
    }
}

impl<V> From<Option<V>> for Value<V> {
    /// `Some(v)` is a value, `None` a tombstone.
    fn from(v: Option<V>) -> Self {
        v.map_or(Self::Tombstone, Self::Live)
    }
}

/// One version of a key: a value (or tombstone) and the clock of its history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(bound(
        serialize = "A: serde::Serialize, V: serde::Serialize",
        deserialize = "A: serde::Deserialize<'de> + Ord, V: serde::Deserialize<'de>"
    ))
)]
pub struct Version<A, V> {
    /// The version's causal history.
    pub clock: VClock<A>,
    /// The value or tombstone.
    pub value: Value<V>,
}

impl<A, V> Version<A, V> {
    /// A version holding `value`.
    #[must_use]
    pub fn live(clock: VClock<A>, value: V) -> Self {
        Self {
            clock,
            value: Value::Live(value),
        }
    }

    /// A tombstone version.
    #[must_use]
    pub fn tombstone(clock: VClock<A>) -> Self {
        Self {
            clock,
            value: Value::Tombstone,
        }
    }
}

/// The versions of one key that no other known version descends from.
///
/// Invariant: no version's clock dominates another's. Two versions may have causally equal clocks
/// only if their values differ: that happens when a counter was reused (a node that lost its state
/// and restarted with the same actor id, Riak's kv679) or when [`put`](Siblings::put) keeps unseen
/// versions; both are kept as siblings rather than one silently dropped.
///
/// Operations:
/// - [`insert`](Siblings::insert) a version received from a coordinator or replica;
/// - [`merge`](Siblings::merge) another replica's set (commutative, associative, idempotent);
/// - [`context`](Siblings::context): what a get hands to the client;
/// - [`put`](Siblings::put): what a coordinator does with a client's put;
/// - [`covers`](Siblings::covers): whether a replica's set already contains another (read repair);
/// - [`prune`](Siblings::prune) the clocks.
///
/// Equality (`==`) is set equality: the order of versions does not matter.
///
/// ```
/// use dynamo_vclock::{Siblings, VClock, Value};
///
/// let mut key: Siblings<&str, &str> = Siblings::new();
/// // Client 1 writes without a context, through node "a".
/// key.put(&VClock::new(), "a", 10, Value::Live("v1"));
/// // Client 2 reads, gets the context, and writes through node "b".
/// let ctx = key.context();
/// key.put(&ctx, "b", 20, Value::Live("v2"));
/// assert_eq!(key.live_values().collect::<Vec<_>>(), [&"v2"]);
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(
        from = "Vec<Version<A, V>>",
        bound(
            deserialize = "A: serde::Deserialize<'de> + Ord + Clone, V: serde::Deserialize<'de> + PartialEq"
        )
    )
)]
pub struct Siblings<A, V> {
    versions: Vec<Version<A, V>>,
}

impl<A, V> Default for Siblings<A, V> {
    fn default() -> Self {
        Self {
            versions: Vec::new(),
        }
    }
}

impl<A, V> Siblings<A, V> {
    /// An empty set: a key nobody wrote (or whose tombstones were reaped).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of versions (siblings, tombstones included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether there is no version at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The versions, in insertion order.
    pub fn iter(&self) -> core::slice::Iter<'_, Version<A, V>> {
        self.versions.iter()
    }

    /// The values of the versions that are not tombstones.
    pub fn live_values(&self) -> impl Iterator<Item = &V> + '_ {
        self.versions.iter().filter_map(|v| v.value.as_live())
    }

    /// Whether the set is non-empty and every version is a tombstone: the key reads as deleted.
    #[must_use]
    pub fn is_tombstone_only(&self) -> bool {
        !self.versions.is_empty() && self.versions.iter().all(|v| v.value.is_tombstone())
    }

    /// Consumes the set into its versions.
    #[must_use]
    pub fn into_versions(self) -> Vec<Version<A, V>> {
        self.versions
    }
}

impl<A: Ord + Clone, V: PartialEq> Siblings<A, V> {
    /// Adds `version` unless a known version descends it, dropping every version it dominates.
    /// Returns whether the set changed.
    ///
    /// A version causally equal to a known one with the same value is the same version (their
    /// timestamps are merged); with a different value it is kept as a sibling.
    pub fn insert(&mut self, version: Version<A, V>) -> bool {
        self.insert_dropping(version, &mut Vec::new())
    }

    /// [`insert`](Self::insert) that hands every version it discards to `dropped`: the known
    /// versions `version` dominates, or `version` itself when a known one descends it or is it.
    fn insert_dropping(
        &mut self,
        version: Version<A, V>,
        dropped: &mut Vec<Version<A, V>>,
    ) -> bool {
        let mut dominated = Vec::new();
        for (i, known) in self.versions.iter_mut().enumerate() {
            match version.clock.compare(&known.clock) {
                Causality::Before => {
                    dropped.push(version);
                    return false;
                }
                Causality::Equal if known.value == version.value => {
                    let before = known.clock.clone();
                    known.clock.merge(&version.clock);
                    let changed = known.clock != before;
                    dropped.push(version);
                    return changed;
                }
                Causality::After => dominated.push(i),
                Causality::Equal | Causality::Concurrent => {}
            }
        }
        for i in dominated.into_iter().rev() {
            dropped.push(self.versions.remove(i));
        }
        self.versions.push(version);
        true
    }

    /// Merges another replica's set into this one (as if inserting each of its versions). Returns
    /// whether this set changed. Commutative, associative and idempotent up to set equality.
    pub fn merge(&mut self, other: &Self) -> bool
    where
        A: Clone,
        V: Clone,
    {
        let mut changed = false;
        for v in &other.versions {
            changed |= self.insert(v.clone());
        }
        changed
    }

    /// Whether merging `other` into `self` would add no version: every version of `other` is
    /// dominated by, or the same as, a version of `self`. Timestamps are ignored. A replica whose
    /// set does not cover the merged result of a read is stale and gets read repair.
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        other.versions.iter().all(|theirs| {
            self.versions
                .iter()
                .any(|mine| match mine.clock.compare(&theirs.clock) {
                    Causality::After => true,
                    Causality::Equal => mine.value == theirs.value,
                    Causality::Before | Causality::Concurrent => false,
                })
        })
    }

    /// The merged clock of every version: the context a get returns with the siblings. A put with
    /// this context supersedes exactly these versions.
    #[must_use]
    pub fn context(&self) -> VClock<A> {
        let mut ctx = VClock::new();
        for v in &self.versions {
            ctx.merge(&v.clock);
        }
        ctx
    }

    /// Applies a client's put (or delete, with [`Value::Tombstone`]) coordinated by `actor` at time
    /// `now`, given the `context` the client read. Returns the new version's clock.
    ///
    /// 1. Every version the context descends (the client saw it) is superseded and removed.
    /// 2. The new clock is the context incremented at `actor`, with `actor`'s counter first raised
    ///    to the highest it has in any remaining version: a counter is never minted twice for a key
    ///    whose set holds every counter issued. After [`prune`](Self::prune) dropped `actor`'s
    ///    entry, its counters start again, and the new clock may equal one a replica that did not
    ///    prune still holds (for another value: a later put with that clock's context then
    ///    supersedes a value its writer never saw, a lost update). Prune only entries of actors
    ///    that write the key no more, or give an actor a new identity after pruning it.
    /// 3. A remaining version (one the client did not see) that the new clock would dominate is
    ///    re-stamped with the new clock and kept as a sibling: nothing the client did not read is
    ///    lost. Remaining versions concurrent with the new clock keep their clock.
    ///
    /// With server actors (node ids, as in the paper), step 3 is what Riak did before dotted
    /// version vectors: clients writing with stale contexts through one coordinator accumulate
    /// siblings that the writers had in fact superseded ("sibling explosion"). [`DvvSet`] keeps
    /// exactly the concurrent values instead. To replicate, send the whole resulting set, not only
    /// the new version: re-stamped versions must travel with it.
    ///
    /// [`DvvSet`]: crate::DvvSet
    pub fn put(&mut self, context: &VClock<A>, actor: A, now: u64, value: Value<V>) -> VClock<A> {
        let unseen: Vec<Version<A, V>> = core::mem::take(&mut self.versions)
            .into_iter()
            .filter(|v| !context.descends(&v.clock))
            .collect();
        // The context, with `actor`'s counter raised past every counter it issued for this key.
        let mut clock = context.clone();
        let issued = unseen
            .iter()
            .map(|v| v.clock.counter(&actor))
            .max()
            .unwrap_or(0);
        if issued > clock.counter(&actor) {
            clock.merge(&VClock::from_entries([crate::Entry {
                actor: actor.clone(),
                counter: issued,
                timestamp: now,
            }]));
        }
        clock.increment(actor, now);
        for mut v in unseen {
            if clock.dominates(&v.clock) {
                v.clock = clock.clone();
            }
            self.insert(v);
        }
        self.insert(Version {
            clock: clock.clone(),
            value,
        });
        clock
    }

    /// Prunes every version's clock (see [`VClock::prune`]) and restores the invariant. The
    /// report lists the removed entries and counts the versions that pruning made look dominated
    /// and whose value (or tombstone) no surviving version holds: possible lost updates. A dropped
    /// copy of a value that survives in another version loses nothing and is not counted.
    pub fn prune(&mut self, policy: &PrunePolicy, now: u64) -> PruneReport<A> {
        let mut report = PruneReport::default();
        let versions = core::mem::take(&mut self.versions);
        let mut pruned = Vec::with_capacity(versions.len());
        for mut v in versions {
            report.absorb(v.clock.prune(policy, now));
            pruned.push(v);
        }
        let mut dropped = Vec::new();
        for v in pruned {
            self.insert_dropping(v, &mut dropped);
        }
        report.versions_dropped = dropped
            .iter()
            .filter(|d| !self.versions.iter().any(|kept| kept.value == d.value))
            .count();
        report
    }
}

impl<A: Ord + Clone, V: PartialEq> FromIterator<Version<A, V>> for Siblings<A, V> {
    fn from_iter<I: IntoIterator<Item = Version<A, V>>>(iter: I) -> Self {
        let mut set = Self::new();
        for v in iter {
            set.insert(v);
        }
        set
    }
}

impl<A: Ord + Clone, V: PartialEq> From<Vec<Version<A, V>>> for Siblings<A, V> {
    /// Builds a valid set from any list (dominated versions are dropped), e.g. after decoding.
    fn from(versions: Vec<Version<A, V>>) -> Self {
        versions.into_iter().collect()
    }
}

impl<A, V> From<Siblings<A, V>> for Vec<Version<A, V>> {
    fn from(set: Siblings<A, V>) -> Self {
        set.versions
    }
}

impl<'a, A, V> IntoIterator for &'a Siblings<A, V> {
    type Item = &'a Version<A, V>;
    type IntoIter = core::slice::Iter<'a, Version<A, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.versions.iter()
    }
}

impl<A: PartialEq, V: PartialEq> PartialEq for Siblings<A, V> {
    fn eq(&self, other: &Self) -> bool {
        self.versions.len() == other.versions.len()
            && self.versions.iter().all(|v| other.versions.contains(v))
    }
}

impl<A: Eq, V: Eq> Eq for Siblings<A, V> {}

/// Serializes the versions as a sequence, borrowed (the form deserialization reads back).
#[cfg(feature = "serde")]
impl<A: serde::Serialize, V: serde::Serialize> serde::Serialize for Siblings<A, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.versions.iter())
    }
}
