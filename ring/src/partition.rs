//! Strategy 3: Q equal partitions and the moves that keep their assignment fair.
//!
//! Every node has a fair share of the Q partitions, `Q * weight / total weight`. A membership change
//! moves partitions only to or from the node that changed: a joining node (or one whose weight
//! grew) takes partitions until it holds its share rounded to the nearest integer, always from the
//! node furthest above its own share; a leaving node (or one whose weight shrank) gives partitions
//! to the node furthest below its share. Nodes more than one partition away from their share are
//! served first. When that is not enough to keep every node within one partition of its share
//! (a leave raises every other node's share), partitions also move between other nodes, from the
//! one furthest above its share to the one furthest below, until it is (`balance`). Every node
//! keeps at least one partition, however light (one that owned none would be in no preference
//! list); when some share is below one partition, that floor comes first, and the others may
//! end further than one partition from theirs.
//!
//! Among the candidate partitions we prefer, in order: one whose new owner differs from the owners
//! of the N-1 partitions on either side and whose zone does too (when there are at least N zones);
//! one that only keeps nodes distinct; any. The first rule is what keeps any N consecutive
//! partitions on N distinct nodes, so that a preference list's primaries lie within N partitions.
//! It cannot always hold (three nodes, N = 3 and Q = 64 is not divisible by 3): then the
//! preference list simply walks further.

use std::fmt::Debug;

use crate::{Position, Ring};

/// The last position of partition `p` out of `q` (a power of two).
pub(crate) fn partition_end(p: u32, q: u32) -> u128 {
    let shift = 128 - q.trailing_zeros();
    u128::from(p + 1)
        .checked_shl(shift)
        .unwrap_or(0)
        .wrapping_sub(1)
}

/// The partition holding `pos`, out of `q` (a power of two).
pub(crate) fn partition_of(pos: Position, q: u32) -> usize {
    let shift = 128 - q.trailing_zeros();
    pos.0.checked_shr(shift).unwrap_or(0) as usize
}

/// Distance of every node from its fair share, scaled by the total weight to stay in integers:
/// `count * W - Q * weight`. Positive is above the share; one partition is `W`.
struct Shares {
    excess: Vec<i128>,
    unit: i128,
}

impl Shares {
    fn new(owners: &[u32], weights: &[u64]) -> Self {
        let unit: i128 = weights.iter().map(|&w| i128::from(w)).sum::<i128>().max(1);
        let q = owners.len() as i128;
        let mut excess: Vec<i128> = weights.iter().map(|&w| -q * i128::from(w)).collect();
        for &o in owners {
            excess[o as usize] += unit;
        }
        Shares { excess, unit }
    }

    fn moved(&mut self, from: usize, to: usize) {
        self.excess[from] -= self.unit;
        self.excess[to] += self.unit;
    }
}

fn window<N>(ring: &Ring<N>, nodes: usize) -> Window<'_> {
    Window {
        owners: &ring.owners,
        zone_of: &ring.zone_of,
        span: ring.config.replicas.min(nodes),
        zones_matter: ring.zone_count >= ring.config.replicas,
    }
}

fn weights<N>(ring: &Ring<N>, zero: Option<usize>) -> Vec<u64> {
    ring.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if Some(i) == zero {
                0
            } else {
                u64::from(n.weight)
            }
        })
        .collect()
}

/// How many partitions each of `nodes` nodes owns.
fn owned_counts(owners: &[u32], nodes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; nodes];
    for &o in owners {
        if let Some(c) = counts.get_mut(o as usize) {
            *c += 1;
        }
    }
    counts
}

/// Node `x` takes partitions from the nodes furthest above their share until it holds its own
/// share rounded to the nearest integer (a join, or a weight increase), and at least one
/// partition however light it is: a node that owns none is in no preference list. A donor keeps
/// at least one.
///
/// Each move takes the partition that is least by `(donor within a partition of its share,
/// tier for x, taking it repairs nothing, donor's excess reversed, partition)`. The donor's
/// part of that key is the same for all its partitions, so each donor keeps its partitions in a
/// heap by the rest, `(tier, repairs nothing, partition)`, and a move compares the donors' best:
/// O(S log Q) a move rather than a scan of every partition (a join at Q = 2^16 took 25 s). A move
/// only ever makes a partition's key worse (x enters its window; its owner's run shortens), so a
/// heap's top is checked when it comes up and pushed back if it changed.
pub(crate) fn take<N: Ord + Clone + Debug>(ring: &mut Ring<N>, x: usize) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    /// A move's key: donor within a partition of its share, tier, repairs nothing, donor's
    /// excess reversed, partition.
    type Key = (bool, u8, bool, Reverse<i128>, usize);
    let mut shares = Shares::new(&ring.owners, &weights(ring, None));
    let nodes = ring.nodes.len();
    let mut owned = owned_counts(&ring.owners, nodes);
    let mut heaps: Vec<BinaryHeap<Reverse<(u8, bool, usize)>>> = vec![BinaryHeap::new(); nodes];
    {
        let w = window(ring, nodes);
        for p in 0..ring.owners.len() {
            let d = ring.owners[p] as usize;
            if d != x {
                if let Some(heap) = heaps.get_mut(d) {
                    heap.push(Reverse((w.tier(p, x as u32), !w.crowded(p), p)));
                }
            }
        }
    }
    while -2 * shares.excess[x] > shares.unit || owned[x] == 0 {
        let w = window(ring, nodes);
        let mut best: Option<(Key, usize)> = None;
        for (d, heap) in heaps.iter_mut().enumerate() {
            let e = shares.excess[d];
            if d == x || owned[d] <= 1 || !(e > 0 || owned[x] == 0) {
                continue;
            }
            // The donor's best partition, its key checked afresh.
            let top = loop {
                let Some(&Reverse(stored)) = heap.peek() else {
                    break None;
                };
                let p = stored.2;
                heap.pop();
                if ring.owners[p] as usize != d {
                    continue;
                }
                let fresh = (w.tier(p, x as u32), !w.crowded(p), p);
                heap.push(Reverse(fresh));
                if fresh == stored {
                    break Some(fresh);
                }
            };
            let Some((tier, repairs_nothing, p)) = top else {
                continue;
            };
            let key = (e < shares.unit, tier, repairs_nothing, Reverse(e), p);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, d));
            }
        }
        let Some(((.., p), donor)) = best else { break };
        if let Some(heap) = heaps.get_mut(donor) {
            heap.pop();
        }
        ring.owners[p] = x as u32;
        shares.moved(donor, x);
        owned[donor] -= 1;
        owned[x] += 1;
    }
}

/// [`take`] as it was written first, a scan of every partition for each move: the reference the
/// heaps must agree with.
#[cfg(test)]
pub(crate) fn take_by_scan<N: Ord + Clone + Debug>(ring: &mut Ring<N>, x: usize) {
    let mut shares = Shares::new(&ring.owners, &weights(ring, None));
    let mut owned = owned_counts(&ring.owners, ring.nodes.len());
    while -2 * shares.excess[x] > shares.unit || owned[x] == 0 {
        let w = window(ring, ring.nodes.len());
        let best = (0..ring.owners.len())
            .filter(|&p| {
                let d = ring.owners[p] as usize;
                d != x && owned[d] > 1 && (shares.excess[d] > 0 || owned[x] == 0)
            })
            .min_by_key(|&p| {
                let d = ring.owners[p] as usize;
                let e = shares.excess[d];
                (
                    e < shares.unit,
                    w.tier(p, x as u32),
                    !w.crowded(p),
                    std::cmp::Reverse(e),
                    p,
                )
            });
        let Some(p) = best else { break };
        let donor = ring.owners[p] as usize;
        ring.owners[p] = x as u32;
        shares.moved(donor, x);
        owned[donor] -= 1;
        owned[x] += 1;
    }
}

/// Node `x` gives partitions to the nodes furthest below their share: all of them when it leaves,
/// else until it holds its share rounded to the nearest integer (a weight decrease), keeping at
/// least one.
pub(crate) fn give<N: Ord + Clone + Debug>(ring: &mut Ring<N>, x: usize, leaving: bool) {
    let mut shares = Shares::new(&ring.owners, &weights(ring, leaving.then_some(x)));
    let others = ring.nodes.len() - usize::from(leaving);
    let mut kept = owned_counts(&ring.owners, ring.nodes.len())[x];
    for p in 0..ring.owners.len() {
        if ring.owners[p] as usize != x {
            continue;
        }
        if !leaving && (2 * shares.excess[x] <= shares.unit || kept <= 1) {
            break;
        }
        let w = window(ring, others);
        let receiver = (0..ring.nodes.len()).filter(|&i| i != x).min_by_key(|&i| {
            let e = shares.excess[i];
            let class = if e <= -shares.unit {
                0 // a whole partition or more below its share
            } else if e < 0 {
                1
            } else {
                2
            };
            (class, w.tier(p, i as u32), e, i)
        });
        let Some(r) = receiver else { return };
        ring.owners[p] = r as u32;
        shares.moved(x, r);
        kept = kept.saturating_sub(1);
    }
}

/// Moves partitions between other nodes while any node is more than one partition from its
/// share. A change that moves only to or from the node that changed cannot always keep every
/// share: a leave raises the share of every other node, of heavier ones by more, and the leaver's
/// partitions may not cover the nodes that were already below. Each move goes from the node
/// furthest above its share to the one furthest below, preferring a partition whose new owner
/// keeps N consecutive partitions distinct. Usually nothing moves.
pub(crate) fn balance<N: Ord + Clone + Debug>(ring: &mut Ring<N>) {
    let mut shares = Shares::new(&ring.owners, &weights(ring, None));
    let nodes = ring.nodes.len();
    let mut owned = owned_counts(&ring.owners, nodes);
    // Each move lowers the sum of squared distances; the bound only guards the loop.
    for _ in 0..ring.owners.len().saturating_mul(nodes) {
        let by_excess = |i: &usize| shares.excess[*i];
        // A node's last partition stays (see `take`).
        let (Some(low), Some(high)) = (
            (0..nodes).min_by_key(by_excess),
            (0..nodes).filter(|&i| owned[i] > 1).max_by_key(by_excess),
        ) else {
            return;
        };
        if shares.excess[low] >= -shares.unit && shares.excess[high] <= shares.unit {
            return;
        }
        // A move that would not bring the two closer (the heavy ones are all at their floor).
        if shares.excess[high] - shares.excess[low] <= shares.unit {
            return;
        }
        let w = window(ring, nodes);
        let best = (0..ring.owners.len())
            .filter(|&p| ring.owners[p] as usize == high)
            .min_by_key(|&p| (w.tier(p, low as u32), !w.crowded(p), p));
        let Some(p) = best else { return };
        ring.owners[p] = low as u32;
        shares.moved(high, low);
        owned[high] -= 1;
        owned[low] += 1;
    }
}

/// The N-1 partitions on either side of a candidate partition.
struct Window<'a> {
    owners: &'a [u32],
    zone_of: &'a [u32],
    span: usize,
    zones_matter: bool,
}

impl Window<'_> {
    /// Whether the owner of `p` also owns one of its N-1 neighbours on either side.
    fn crowded(&self, p: usize) -> bool {
        let q = self.owners.len();
        let owner = self.owners[p];
        (1..self.span.min(q))
            .any(|d| self.owners[(p + d) % q] == owner || self.owners[(p + q - d) % q] == owner)
    }

    /// 0: node and zone distinct from its neighbours, 1: node distinct, 2: neither.
    fn tier(&self, p: usize, node: u32) -> u8 {
        let q = self.owners.len();
        let mut node_ok = true;
        let mut zone_ok = self.zones_matter;
        for d in 1..self.span.min(q) {
            for n in [self.owners[(p + d) % q], self.owners[(p + q - d) % q]] {
                if n == node {
                    node_ok = false;
                }
                if self.zone_of[n as usize] == self.zone_of[node as usize] {
                    zone_ok = false;
                }
            }
        }
        match (node_ok, zone_ok) {
            (true, true) => 0,
            (true, false) => 1,
            _ => 2,
        }
    }
}

/// Assigns every partition at once, for a ring built from a list of nodes: smooth weighted
/// round-robin spreads each node's partitions evenly, then a local search swaps owners until no
/// swap removes a repeated owner within N consecutive partitions.
pub(crate) fn assign_all<N: Ord + Clone + Debug>(ring: &mut Ring<N>) {
    let weights = weights(ring, None);
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    for p in 0..ring.owners.len() {
        for (c, &w) in current.iter_mut().zip(&weights) {
            *c += w as i64;
        }
        let best = (0..current.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= total;
        ring.owners[p] = best as u32;
    }
    // A node whose share rounds to none still gets one (see `take`, which needs the zones).
    ring.reindex();
    for x in 0..ring.nodes.len() {
        if owned_counts(&ring.owners, ring.nodes.len())[x] == 0 {
            take(ring, x);
        }
    }
    repair(&mut ring.owners, ring.config.replicas.min(ring.nodes.len()));
}

/// Number of the N-1 partitions on either side of `p` that have the same owner as `p`.
fn local_conflicts(owners: &[u32], span: usize, p: usize) -> usize {
    let q = owners.len();
    (1..span.min(q))
        .filter(|&d| owners[(p + d) % q] == owners[p])
        .count()
        + (1..span.min(q))
            .filter(|&d| owners[(p + q - d) % q] == owners[p])
            .count()
}

fn repair(owners: &mut [u32], span: usize) {
    let q = owners.len();
    // Every accepted swap lowers the number of conflicting pairs, so this ends.
    loop {
        let mut improved = false;
        for p in 0..q {
            if local_conflicts(owners, span, p) == 0 {
                continue;
            }
            for p2 in 0..q {
                if owners[p2] == owners[p] {
                    continue;
                }
                let before = local_conflicts(owners, span, p) + local_conflicts(owners, span, p2);
                owners.swap(p, p2);
                let after = local_conflicts(owners, span, p) + local_conflicts(owners, span, p2);
                if after < before {
                    improved = true;
                    break;
                }
                owners.swap(p, p2);
            }
        }
        if !improved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use quickcheck_macros::quickcheck;

    use crate::{NodeSpec, Ring, RingConfig, Strategy};

    /// A ring of strategy 3 from small numbers: Q = 2^(3..9), N = 1..4, up to 7 nodes of weight
    /// 1..4, some in one of three zones.
    fn ring(q: u8, n: u8, nodes: &[(u8, u8)]) -> Option<Ring<u32>> {
        let config = RingConfig {
            strategy: Strategy::EqualPartitions {
                partitions: 1 << (3 + q % 6),
            },
            replicas: 1 + usize::from(n % 4),
            ..RingConfig::default()
        };
        let specs = nodes.iter().take(7).enumerate().map(|(i, &(w, z))| {
            let spec = NodeSpec::new(i as u32).with_weight(1 + u32::from(w % 4));
            if z % 4 == 3 {
                spec
            } else {
                spec.with_zone(format!("z{}", z % 4))
            }
        });
        Ring::new(config, specs).ok()
    }

    /// The heaps choose exactly the partitions the scan of every partition chose, for a node
    /// joining (or one whose weight grew) a ring of any shape.
    #[quickcheck]
    fn take_agrees_with_the_scan(q: u8, n: u8, nodes: Vec<(u8, u8)>, joiner: (u8, u8)) -> bool {
        let Some(before) = ring(q, n, &nodes) else {
            return true;
        };
        let mut next = before.clone();
        let idx = next.nodes.len();
        let mut spec = NodeSpec::new(1000).with_weight(1 + u32::from(joiner.0 % 4));
        if joiner.1 % 4 != 3 {
            spec = spec.with_zone(format!("z{}", joiner.1 % 4));
        }
        next.nodes.push(spec);
        next.reindex();
        let mut by_scan = next.clone();
        super::take(&mut next, idx);
        super::take_by_scan(&mut by_scan, idx);
        next.owners == by_scan.owners
    }
}
