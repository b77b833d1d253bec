//! Preference lists: the nodes that hold a key, in the order a coordinator tries them.

use std::fmt::Debug;

use crate::config::MAX_REPLICAS;
use crate::Ring;

/// Whether a node of a preference list is one of the key's N replicas or a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Role {
    /// One of the first N distinct nodes: a replica of the key.
    Primary,
    /// A further node, to stand in for an unreachable primary in a sloppy quorum.
    Fallback,
}

/// One entry of a preference list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Replica<'a, N> {
    /// The physical node.
    pub node: &'a N,
    /// Primary or fallback.
    pub role: Role,
}

impl<N> Replica<'_, N> {
    /// Whether this entry is a primary.
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }
}

/// Iterator over a key's preference list, returned by [`Ring::preference_list`].
///
/// The N primaries come first. When the ring has at least as many zones as needed they are in
/// distinct zones (zones first, then distinct nodes); otherwise they are the first N distinct nodes
/// clockwise from the key. Then every other node follows once, in ring order, as a fallback. The
/// iterator keeps the primaries in an inline array and tells a first visit of a node from a repeat
/// with a precomputed table, so it allocates nothing.
#[derive(Debug, Clone)]
pub struct PreferenceList<'a, N> {
    ring: &'a Ring<N>,
    start: usize,
    primaries: [u32; MAX_REPLICAS],
    primary_count: usize,
    next_primary: usize,
    offset: usize,
}

impl<'a, N: Ord + Clone + Debug> PreferenceList<'a, N> {
    pub(crate) fn new(ring: &'a Ring<N>, start: usize) -> Self {
        let mut list = PreferenceList {
            ring,
            start,
            primaries: [0; MAX_REPLICAS],
            primary_count: 0,
            next_primary: 0,
            offset: 0,
        };
        list.choose_primaries();
        list
    }

    /// The token index `offset` steps clockwise from the start, and whether this is the first
    /// time the walk meets its owner.
    #[inline]
    fn step(&self, offset: usize) -> (u32, bool) {
        let t = self.ring.owners.len();
        let mut j = self.start + offset;
        if j >= t {
            j -= t;
        }
        (
            self.ring.owners[j],
            self.ring.prev_dist[j] as usize > offset,
        )
    }

    fn is_primary(&self, node: u32) -> bool {
        self.primaries[..self.primary_count].contains(&node)
    }

    fn choose_primaries(&mut self) {
        let ring = self.ring;
        let t = ring.owners.len();
        let want = ring.config.replicas.min(ring.nodes.len());
        let zone_goal = want.min(ring.zone_count);
        if zone_goal > 1 {
            for offset in 0..t {
                if self.primary_count == zone_goal {
                    break;
                }
                let (node, first) = self.step(offset);
                let zone = ring.zone_of[node as usize];
                if first
                    && !self.primaries[..self.primary_count]
                        .iter()
                        .any(|&p| ring.zone_of[p as usize] == zone)
                {
                    self.primaries[self.primary_count] = node;
                    self.primary_count += 1;
                }
            }
        }
        for offset in 0..t {
            if self.primary_count == want {
                break;
            }
            let (node, first) = self.step(offset);
            if first && !self.is_primary(node) {
                self.primaries[self.primary_count] = node;
                self.primary_count += 1;
            }
        }
    }

    /// The primaries only (the first N entries).
    pub fn primaries(self) -> impl Iterator<Item = &'a N> {
        let ring = self.ring;
        let count = self.primary_count;
        let primaries = self.primaries;
        (0..count).map(move |i| &ring.nodes[primaries[i] as usize].id)
    }
}

impl<'a, N: Ord + Clone + Debug> Iterator for PreferenceList<'a, N> {
    type Item = Replica<'a, N>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_primary < self.primary_count {
            let node = self.primaries[self.next_primary];
            self.next_primary += 1;
            return Some(Replica {
                node: &self.ring.nodes[node as usize].id,
                role: Role::Primary,
            });
        }
        while self.offset < self.ring.owners.len() {
            let (node, first) = self.step(self.offset);
            self.offset += 1;
            if first && !self.is_primary(node) {
                return Some(Replica {
                    node: &self.ring.nodes[node as usize].id,
                    role: Role::Fallback,
                });
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let primaries_left = self.primary_count - self.next_primary;
        (primaries_left, Some(self.ring.nodes.len()))
    }
}
