//! [`VersionSet`]: what a quorum coordinator needs of a key's versions, whichever model keeps them.

use crate::{DvvSet, Siblings, VClock};

/// The concurrent versions of one key, as replicas exchange and reconcile them: implemented by
/// [`Siblings`] (a vector clock per version) and [`DvvSet`] (dotted version vectors).
///
/// A quorum coordinator reconciles replicas' answers with [`merge`](VersionSet::merge), tells a
/// stale replica with [`covers`](VersionSet::covers), and hands the client the
/// [`context`](VersionSet::context); it never needs to know how versions are stamped.
///
/// ```
/// use dynamo_vclock::{DvvSet, VClock, VersionSet};
///
/// fn reconcile<S: VersionSet>(answers: &[S]) -> S {
///     let mut all = S::default();
///     for a in answers {
///         all.merge(a);
///     }
///     all
/// }
///
/// let mut a: DvvSet<u8, &str> = DvvSet::new();
/// a.put(&VClock::new(), 1, 10, "x");
/// let b: DvvSet<u8, &str> = DvvSet::new();
/// let all = reconcile(&[a.clone(), b.clone()]);
/// assert!(all.covers(&a) && all.covers(&b) && !b.covers(&all));
/// ```
pub trait VersionSet: Clone + Default {
    /// The actor ids of the clocks.
    type Actor: Ord + Clone + core::fmt::Debug;

    /// Whether the set holds no version at all (the key reads as not found).
    fn is_empty(&self) -> bool;

    /// Merges another replica's set into this one: commutative, associative, idempotent.
    fn merge(&mut self, other: &Self);

    /// Whether merging `other` into `self` would change nothing (timestamps aside).
    fn covers(&self, other: &Self) -> bool;

    /// What a get hands the client: a put with this context supersedes exactly these versions.
    fn context(&self) -> VClock<Self::Actor>;
}

impl<A: Ord + Clone + core::fmt::Debug, V: Clone + PartialEq> VersionSet for Siblings<A, V> {
    type Actor = A;

    fn is_empty(&self) -> bool {
        Siblings::is_empty(self)
    }

    fn merge(&mut self, other: &Self) {
        let _ = Siblings::merge(self, other);
    }

    fn covers(&self, other: &Self) -> bool {
        Siblings::covers(self, other)
    }

    fn context(&self) -> VClock<A> {
        Siblings::context(self)
    }
}

impl<A: Ord + Clone + core::fmt::Debug, V: Clone> VersionSet for DvvSet<A, V> {
    type Actor = A;

    /// No entry at all: a set that remembers counters but holds no value still counts, since
    /// merging it discards what those counters saw.
    fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn merge(&mut self, other: &Self) {
        DvvSet::merge(self, other);
    }

    fn covers(&self, other: &Self) -> bool {
        DvvSet::covers(self, other)
    }

    fn context(&self) -> VClock<A> {
        DvvSet::context(self)
    }
}
