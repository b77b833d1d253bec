//! Reaping tombstones: a deleted key is removed only when every one of its N replicas holds
//! exactly its tombstone, and only after a grace period.
//!
//! The first primary of a key checks, once the tombstone is older than the grace period, with a
//! get that must hear from all N primaries (strict, R = N). If every replica answered with the same
//! tombstone-only set, it asks them all to reap; each drops what the tombstone's context covers
//! (the tombstone, and the deleted values a store that came back older than it holds again) and
//! removes the key if nothing is left: a write concurrent with the check stays.
//!
//! A reaped tombstone fences its key for a while ([`Reaper::fence`]): every merge drops the
//! versions its context covers, which a read repair, a hint, an exchange or a transfer may still
//! carry (sent before the tombstone reached their sender); stored, they would come back as new.
//! A replica that missed the Reap keeps its tombstone: the first exchange that brings it to a
//! fenced replica is answered with the Reap.
//!
//! No older version may come back from a fallback once the tombstone is gone. A hint lives until
//! its node takes it (or for `HintLogConfig::max_age`, hours), however long a partition keeps
//! them apart: dropping it earlier would lose a write that only fallbacks acknowledged. So every
//! node publishes in gossip the nodes it holds hints for ([`HINTS_KEY`]), and the reaper checks
//! no key while a member is down (it may hold hints nobody knows of) or holds hints for one of
//! the key's primaries. A hint is always for a primary of its key: one whose node a ring change
//! takes off the key's primaries goes to the new ones (`membership::reroute_misaddressed_hints`).
//!
//! Nor may a copy kept by a former owner: after a ring change, a node hands the partitions it no
//! longer replicates over by ownership transfer, which takes as long as the new owners take to be
//! reachable, with no bound. Every node publishes in gossip the digest of the ring it uses and the
//! partitions it still hands over (`membership::HANDOFF_KEY`); the reaper checks no key of a
//! partition some member still hands over, and none while some member uses another ring (it may
//! not know yet what it must hand over) or, being in the ring, published nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use dynamo_quorum::{GetCoordinator, GetOutcome, GetReply, Mode, RequestOptions};

use super::requests::{Origin, Pending};
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::message::PeerMessage;
use crate::types::{Clock, Key, Millis, NodeId, Sibs};

/// Most reap checks started per tick.
const REAP_BATCH: usize = 64;

/// When the newest event of a tombstone-only set happened, or `None` if the set holds a value.
pub(crate) fn tombstone_time(siblings: &Sibs) -> Option<Millis> {
    if !siblings.is_tombstone_only() {
        return None;
    }
    siblings.entries().iter().map(|e| e.timestamp).max()
}

/// How often the reaper looks for old tombstones: a quarter of the grace period, within 0.1-60 s.
fn reap_interval(grace: Millis) -> Millis {
    (grace / 4).clamp(100, 60_000)
}

/// The reaper's state: which keys hold only a tombstone and since when, which have a check in
/// flight, and when to look next. The node tells it about every write ([`Reaper::track`]) and
/// removal ([`Reaper::forget`]); it answers which keys are due for a check.
#[derive(Debug, Default)]
pub(crate) struct Reaper {
    /// The grace period; `None`: tombstones are kept forever.
    grace: Option<Millis>,
    /// Tombstone-only keys: when the tombstone was written (its coordinator's clock), and
    /// when its grace began here (this node's clock; see [`Reaper::track_found`]).
    tombstones: BTreeMap<Key, (Millis, Millis)>,
    /// Keys with a reap check in flight.
    reaping: BTreeSet<Key>,
    next: Option<Millis>,
    /// The contexts of tombstones reaped here lately, by key, with when each fence goes (see
    /// [`Reaper::fence`]).
    fences: BTreeMap<Key, (Clock, Millis)>,
    /// The fenced keys in the order they were fenced, with when each fence may go.
    fence_order: VecDeque<(Millis, Key)>,
    /// The fences' bytes ([`fence_weight`]), against [`MAX_FENCE_BYTES`].
    fence_bytes: usize,
}

/// How long a reaped tombstone's context fences the versions it covers: far past any message's
/// delay (request timeouts are seconds). Dropping a covered version later would still be right
/// (the tombstone superseded it for good); the bound is for memory.
const FENCE_TTL: Millis = 10 * 60 * 1000;

/// Most fences held; the oldest go first past it.
const MAX_FENCES: usize = 1 << 20;
/// Most bytes of fences held (keys and clocks, about as in memory); the oldest go first past it.
const MAX_FENCE_BYTES: usize = 64 << 20;

/// About how much memory a fence of `key` with `clock` holds.
fn fence_weight(key: &[u8], clock: &Clock) -> usize {
    64 + key.len() + clock.len() * 48
}

impl Reaper {
    /// A reaper started at `now` that reaps tombstones older than `grace`.
    pub(crate) fn new(grace: Option<Millis>, now: Millis) -> Self {
        Reaper {
            grace,
            next: grace.map(|g| now + reap_interval(g)),
            ..Reaper::default()
        }
    }

    /// The tombstone of `key`, with context `clock`, is reaped here at `now`. A version it
    /// covers may still be on its way (an anti-entropy exchange, a read repair or a hint sent
    /// before the tombstone reached its sender): stored now, it would be taken for a new one and
    /// bring the deleted value back everywhere. For a while such versions are dropped instead
    /// ([`Reaper::unfenced`]).
    pub(crate) fn fence(&mut self, key: &[u8], clock: &Clock, now: Millis) {
        self.sweep_fences(now);
        if self.fence_order.len() >= MAX_FENCES {
            self.drop_oldest_fence();
        }
        let until = now.saturating_add(FENCE_TTL);
        let before = self
            .fences
            .get(key)
            .map_or(0, |(c, _)| fence_weight(key, c));
        let fence = self
            .fences
            .entry(key.to_vec())
            .or_insert_with(|| (Clock::new(), until));
        fence.0.merge(clock);
        fence.1 = until;
        let after = fence_weight(key, &fence.0);
        self.fence_bytes = self.fence_bytes.saturating_sub(before) + after;
        self.fence_order.push_back((until, key.to_vec()));
        // The newest fence stays, whatever its size.
        while self.fence_bytes > MAX_FENCE_BYTES && self.fence_order.len() > 1 {
            self.drop_oldest_fence();
        }
    }

    /// Drops the fences whose time is over.
    pub(crate) fn sweep_fences(&mut self, now: Millis) {
        while self
            .fence_order
            .front()
            .is_some_and(|(until, _)| *until <= now)
        {
            self.drop_oldest_fence();
        }
    }

    /// Drops the oldest entry of the fence order, and its fence unless a later reap renewed it.
    fn drop_oldest_fence(&mut self) {
        if let Some((until, key)) = self.fence_order.pop_front() {
            if self.fences.get(&key).is_some_and(|(_, u)| *u == until) {
                if let Some((clock, _)) = self.fences.remove(&key) {
                    self.fence_bytes = self.fence_bytes.saturating_sub(fence_weight(&key, &clock));
                }
            }
        }
    }

    /// The context fencing `key`, if a tombstone of it was reaped here lately.
    pub(crate) fn fence_of(&self, key: &[u8]) -> Option<&Clock> {
        if self.fences.is_empty() {
            return None;
        }
        self.fences.get(key).map(|(clock, _)| clock)
    }

    /// `siblings` of `key` without the versions a fence covers; `None` if nothing is left.
    pub(crate) fn unfenced(&self, key: &[u8], mut siblings: Sibs) -> Option<Sibs> {
        let Some(clock) = self.fence_of(key) else {
            return Some(siblings);
        };
        siblings.discard(clock);
        (!siblings.is_empty()).then_some(siblings)
    }

    /// `key` holds `siblings` from `now` on.
    pub(crate) fn track(&mut self, key: &[u8], siblings: &Sibs, now: Millis) {
        self.track_found(key, tombstone_time(siblings), now);
    }

    /// `key` holds, from `now` on, only a tombstone its coordinator wrote at `tombstone` on its
    /// own clock, or (`None`) something else. The grace runs from the later of the two: a
    /// coordinator whose clock runs behind this node's must not make its tombstones due early,
    /// and one found in the store at start has its grace run again from the start (when it came
    /// here is not stored). The same tombstone tracked again keeps its time.
    pub(crate) fn track_found(&mut self, key: &[u8], tombstone: Option<Millis>, now: Millis) {
        match tombstone {
            Some(t) => {
                let since = t.max(now);
                match self.tombstones.get_mut(key) {
                    Some((written, _)) if *written == t => {}
                    Some(entry) => *entry = (t, since),
                    None => {
                        self.tombstones.insert(key.to_vec(), (t, since));
                    }
                }
            }
            None => {
                self.tombstones.remove(key);
            }
        }
    }

    /// `key` is gone.
    pub(crate) fn forget(&mut self, key: &[u8]) {
        self.tombstones.remove(key);
    }

    /// When [`Reaper::due`] next has something to say.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        self.next
    }

    /// At the reaper's tick, the keys whose tombstones outlived the grace period and that have
    /// no check in flight; `None` before the tick.
    pub(crate) fn due(&mut self, now: Millis) -> Option<Vec<Key>> {
        let grace = self.grace?;
        if self.next.is_none_or(|t| t > now) {
            return None;
        }
        self.next = Some(now + reap_interval(grace));
        let keys = self
            .tombstones
            .iter()
            .filter(|(_, &(_, since))| since.saturating_add(grace) <= now)
            .map(|(k, _)| k.clone())
            .filter(|k| !self.reaping.contains(k))
            .collect();
        Some(keys)
    }

    /// A check of `key` started.
    pub(crate) fn checking(&mut self, key: Key) {
        self.reaping.insert(key);
    }

    /// The check of `key` ended.
    pub(crate) fn checked(&mut self, key: &[u8]) {
        self.reaping.remove(key);
    }
}

/// The gossip key under which a node publishes the nodes it holds hints for: a version byte (1)
/// and the node ids, 8 bytes each, big-endian, in order.
pub(crate) const HINTS_KEY: &str = "hints";

/// A hints entry for `nodes`.
pub(crate) fn encode_hint_targets(nodes: &BTreeSet<NodeId>) -> Vec<u8> {
    let mut out = vec![1u8];
    for n in nodes {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

/// The nodes a hints entry names; `None` if the bytes are not one.
pub(crate) fn decode_hint_targets(bytes: &[u8]) -> Option<BTreeSet<NodeId>> {
    let (&version, rest) = bytes.split_first()?;
    if version != 1 || !rest.len().is_multiple_of(8) {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    )
}

impl NodeCore {
    /// Publishes the nodes this node holds hints for, if they changed.
    pub(crate) fn publish_hint_targets(&mut self) {
        // Most inputs change nothing here: compare with what was published before building it.
        let published = &self.view.hints_published;
        if published.first() == Some(&1)
            && published[1..]
                .chunks_exact(8)
                .map(|c| {
                    let mut id = [0u8; 8];
                    id.copy_from_slice(c);
                    NodeId::from_be_bytes(id)
                })
                .eq(self
                    .hints
                    .nodes()
                    .filter(|(_, s)| s.hints > 0)
                    .map(|(&id, _)| id))
        {
            return;
        }
        let targets: BTreeSet<NodeId> = self
            .hints
            .nodes()
            .filter(|(_, s)| s.hints > 0)
            .map(|(&id, _)| id)
            .collect();
        let entry = encode_hint_targets(&targets);
        if entry != self.view.hints_published {
            let _ = self.gossip.set_app_state(HINTS_KEY, entry.clone());
            self.view.hints_published = entry;
        }
    }

    /// Every node some member holds hints for, or `None` if a member may hold hints nobody
    /// knows of: it is down, or published no hints entry. Members that left, or that were taken
    /// out of the ring while down ([`Self::forced_out`]), do not count.
    pub(crate) fn hint_targets(&self) -> Option<BTreeSet<NodeId>> {
        let mut targets: BTreeSet<NodeId> = self
            .hints
            .nodes()
            .filter(|(_, s)| s.hints > 0)
            .map(|(&id, _)| id)
            .collect();
        for (id, state) in self.gossip.members() {
            if *id == self.id
                || state.status() == dynamo_gossip::Status::Left
                || self.forced_out(*id)
            {
                continue;
            }
            if !self.is_up(*id) {
                return None;
            }
            targets.extend(state.app_state(HINTS_KEY).and_then(decode_hint_targets)?);
        }
        Some(targets)
    }

    /// Starts reap checks for old tombstones of keys this node is the first primary of.
    pub(crate) fn start_reaps(&mut self, now: Millis) {
        self.reaper.sweep_fences(now);
        let Some(due) = self.reaper.due(now) else {
            return;
        };
        // A partition a former owner still hands over (or any, while the members disagree on
        // the ring) may still bring older versions to the primaries.
        let Some(pending) = self.handoffs_pending() else {
            return;
        };
        let Some(hinted) = self.hint_targets() else {
            return;
        };
        let due: Vec<Key> = due
            .into_iter()
            .filter(|k| !pending.contains(&self.partition_of(k)))
            .filter(|k| {
                !self
                    .view
                    .ring
                    .preference_list(k)
                    .primaries()
                    .any(|p| hinted.contains(p))
            })
            .filter(|k| {
                self.view
                    .ring
                    .preference_list(k)
                    .primaries()
                    .next()
                    .is_some_and(|&first| first == self.id)
            })
            .take(REAP_BATCH)
            .collect();
        for key in due {
            let n = self.config.n;
            let timeout = Duration::from_millis(self.config.request_timeout);
            let Ok(options) = RequestOptions::new(n, n, 1, timeout) else {
                return;
            };
            let options = options.with_mode(Mode::Strict);
            let plan = self.plan_for(&key, &options);
            if !plan.unreachable.is_empty() {
                continue;
            }
            if let Ok(coord) = GetCoordinator::new(options, plan, now) {
                self.reaper.checking(key.clone());
                let req = self.requests.start(Pending::Get {
                    origin: Origin::Reap,
                    key,
                    started: now,
                    coord,
                });
                self.pump(now, req);
            }
        }
    }

    /// The outcome of a reap check: reap everywhere if all N replicas hold the same tombstone.
    pub(crate) fn reap_decision(
        &mut self,
        now: Millis,
        key: &[u8],
        outcome: &GetOutcome<NodeId, Sibs>,
    ) {
        self.reaper.checked(key);
        let n = self.config.n;
        let agreed = outcome.result.is_ok()
            && outcome.siblings.is_tombstone_only()
            && outcome.answers.len() >= n
            && outcome.answers.iter().all(|a| match &a.reply {
                GetReply::Found(s) => {
                    s.is_tombstone_only()
                        && s.covers(&outcome.siblings)
                        && outcome.siblings.covers(s)
                }
                _ => false,
            });
        if !agreed {
            return;
        }
        let clock = outcome.siblings.context();
        for node in self.key_primaries(key) {
            if node == self.id {
                self.reap(now, key, &clock);
            } else {
                self.transmits.push_back((
                    node,
                    PeerMessage::Reap {
                        key: key.to_vec(),
                        clock: clock.clone(),
                    },
                ));
            }
        }
    }

    /// Drops what the reaped tombstone's context `clock` covers of `key`, removing the key if
    /// nothing is left ([`super::storage::reaped`]; a storage op: the store reads and writes in
    /// one step).
    pub(crate) fn reap(&mut self, now: Millis, key: &[u8], clock: &Clock) {
        // Of a key a put may write, with a clock a key may hold (N times the context limit, as
        // for a replica's write): anything else is no reap of this cluster's, and would only
        // take room among the fences.
        let n = self.config.n.max(1);
        if key.len() > self.config.max_key_size
            || super::coordinator::vclock_past(
                clock,
                self.config.max_context_size.saturating_mul(n),
            )
            .is_some()
        {
            self.stats.counters.bad_messages += 1;
            return;
        }
        self.reaper.fence(key, clock, now);
        // This node's epochs in the tombstone are not counted on again (see `epochs`).
        for entry in clock.entries() {
            if entry.actor.0 == self.id {
                self.epochs.retire(entry.actor.1);
            }
        }
        self.store_op(
            StorageOp::RemoveIf {
                key: key.to_vec(),
                clock: clock.clone(),
            },
            Then::Reaped { key: key.to_vec() },
        );
    }

    /// The store removed `key`'s tombstone.
    pub(crate) fn reaped(&mut self, key: &[u8]) {
        let p = self.partition_of(key);
        self.holdings.removed(p, key);
        self.reaper.forget(key);
        self.stats.counters.tombstones_reaped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(counter: u64) -> Clock {
        let mut sibs = Sibs::new();
        for _ in 0..counter {
            let ctx = sibs.context();
            sibs.put(&ctx, (1, 0), 0, dynamo_vclock::Value::Tombstone);
        }
        sibs.context()
    }

    /// A tombstone-only set of one tombstone written at `at` on its coordinator's clock.
    fn tombstone_at(at: Millis) -> Sibs {
        let mut sibs = Sibs::new();
        sibs.put(&Clock::new(), (1, 0), at, dynamo_vclock::Value::Tombstone);
        sibs
    }

    /// Review of the thirty-first session: the grace period was measured from the tombstone's
    /// timestamp, read on its coordinator's clock. A coordinator whose clock ran behind this
    /// node's by the grace period made its tombstones due at the first tick here, before the
    /// hints and hand-overs the grace waits for had their time. The grace runs on this node's
    /// clock, from when it first held the tombstone (or from its own start, for one it found
    /// in its store).
    #[test]
    fn the_grace_runs_on_this_nodes_clock() {
        let grace = 4_000;
        let now = 10_000_000;
        let mut reaper = Reaper::new(Some(grace), now);
        // Written by a coordinator whose clock reads an hour behind this node's.
        reaper.track(b"behind", &tombstone_at(now - 3_600_000), now);
        // Found in the store at start (written who knows when, on whose clock).
        reaper.track_found(b"found", Some(now - 3_600_000), now);
        // Written by a coordinator whose clock reads ahead: its own timestamp holds.
        reaper.track(b"ahead", &tombstone_at(now + 10_000), now);
        let first_tick = now + reap_interval(grace);
        assert_eq!(reaper.due(first_tick), Some(Vec::new()));
        let after_grace = now + grace + reap_interval(grace);
        assert_eq!(
            reaper.due(after_grace),
            Some(vec![b"behind".to_vec(), b"found".to_vec()])
        );
        let after_its_own = now + 10_000 + grace + reap_interval(grace);
        assert_eq!(
            reaper.due(after_its_own),
            Some(vec![
                b"ahead".to_vec(),
                b"behind".to_vec(),
                b"found".to_vec()
            ])
        );
        // A later tombstone of the same key restarts its grace; the same one does not.
        reaper.track(b"behind", &tombstone_at(now - 3_600_000), after_its_own);
        let again = after_its_own + reap_interval(grace) * 2;
        assert!(reaper
            .due(again)
            .is_some_and(|k| k.contains(&b"behind".to_vec())));
    }

    /// Review of the seventeenth session of issue 20: fences were bounded in number only (a
    /// million), each as large as a peer's `Reap` made it (a key and a clock of any size), so
    /// `Reap`s of large made-up clocks held gigabytes for ten minutes. Fences are bounded in
    /// bytes too; the oldest go first.
    #[test]
    fn fences_are_bounded_in_bytes() {
        let mut reaper = Reaper::new(Some(1_000), 0);
        let big: Clock = (0..10_000u64)
            .map(|i| dynamo_vclock::Entry {
                actor: (i, i),
                counter: 1,
                timestamp: 0,
            })
            .collect();
        for k in 0..1_000u32 {
            reaper.fence(&k.to_be_bytes(), &big, 0);
        }
        let held: usize = reaper
            .fences
            .iter()
            .map(|(k, (c, _))| fence_weight(k, c))
            .sum();
        assert!(held <= MAX_FENCE_BYTES, "{held} bytes of fences");
        assert!(
            reaper.fence_of(&999u32.to_be_bytes()).is_some(),
            "the newest fence is kept"
        );
        assert_eq!(reaper.fence_bytes, held, "the count agrees with the fences");
    }

    quickcheck::quickcheck! {
        /// Whatever the fences, renewals and sweeps, the byte count is the fences' bytes, and
        /// past the bound only the newest fence is left (the bound itself is reached in
        /// `fences_are_bounded_in_bytes`).
        fn the_fence_bytes_are_the_fences_bytes(ops: Vec<(u8, u16, u8)>) -> bool {
            let mut reaper = Reaper::new(Some(1_000), 0);
            let mut now = 0;
            for (key, entries, step) in ops {
                now += u64::from(step) * 10_000;
                if step % 5 == 0 {
                    reaper.sweep_fences(now);
                    continue;
                }
                let clock: Clock = (0..u64::from(entries % 2_048))
                    .map(|i| dynamo_vclock::Entry {
                        actor: (i, u64::from(key)),
                        counter: 1,
                        timestamp: 0,
                    })
                    .collect();
                reaper.fence(&[key % 16], &clock, now);
                let held: usize = reaper
                    .fences
                    .iter()
                    .map(|(k, (c, _))| fence_weight(k, c))
                    .sum();
                if reaper.fence_bytes != held
                    || (held > MAX_FENCE_BYTES && reaper.fences.len() > 1)
                {
                    return false;
                }
            }
            true
        }
    }

    /// A key reaped again renews its fence: the first reap's time running out does not take the
    /// second's fence with it (review of the fence: it did, a minute after the second reap).
    #[test]
    fn a_fence_renewed_by_a_second_reap_outlives_the_first() {
        let mut reaper = Reaper::new(Some(1_000), 0);
        reaper.fence(b"k", &clock(1), 0);
        reaper.fence(b"k", &clock(2), 9 * 60 * 1000);
        reaper.sweep_fences(FENCE_TTL + 1);
        assert!(reaper.fence_of(b"k").is_some(), "the renewed fence is gone");
        reaper.sweep_fences(9 * 60 * 1000 + FENCE_TTL);
        assert!(
            reaper.fence_of(b"k").is_none(),
            "the fence outlived its time"
        );
    }
}
