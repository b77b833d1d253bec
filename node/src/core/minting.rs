//! Minting a put's dot: one put per key at a time reads the key, mints the next dot of this
//! node's actor over what it holds (leasing a fresh actor epoch when needed) and, on a primary,
//! stores the new versions before the put goes out (see the `coordinator` module docs).

use dynamo_quorum::RequestOptions;
use dynamo_vclock::{Entry, VClock, Value as Versioned};

use super::requests::Origin;
use super::storage::{StorageOp, Then};
use super::NodeCore;
use crate::message::{ClientError, ClientReply};
use crate::store::StoreError;
use crate::types::{Actor, Key, Millis, Object, Sibs};

/// A put waiting to mint its dot: it reads the key, mints over what this node holds, and, on a
/// primary, stores the dot before the put goes out. One put per key mints at a time (the others
/// wait in `NodeCore::minting`): two reads of the same copy would issue the same dot.
#[derive(Debug)]
pub(crate) struct Minting {
    /// When the put arrived (its latency counts from then).
    pub(super) arrived: Millis,
    pub(super) origin: Origin,
    pub(super) key: Key,
    pub(super) value: Versioned<Object>,
    pub(super) context: VClock<Actor>,
    pub(super) options: RequestOptions,
    pub(super) primary: bool,
}

/// What is left at `now` of `timeout`, counted from `since` (zero once it passed).
pub(crate) fn time_left(
    timeout: std::time::Duration,
    since: Millis,
    now: Millis,
) -> std::time::Duration {
    timeout.saturating_sub(std::time::Duration::from_millis(now.saturating_sub(since)))
}

/// A put whose dot is minted: the versions to send, the context to answer with.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(super) arrived: Millis,
    pub(super) origin: Origin,
    pub(super) key: Key,
    pub(super) siblings: Sibs,
    pub(super) clock: VClock<Actor>,
    pub(super) options: RequestOptions,
    pub(super) primary: bool,
}

impl NodeCore {
    pub(super) fn read_to_mint(&mut self, minting: Minting) {
        self.store_op(
            StorageOp::Read {
                keys: vec![minting.key.clone()],
            },
            Then::Mint(Box::new(minting)),
        );
    }

    /// The next put of `key` waiting to mint reads it (every write of the dot before is queued
    /// ahead of the read).
    fn mint_next(&mut self, key: &[u8]) {
        let next = self.minting.get_mut(key).and_then(|q| q.pop_front());
        match next {
            Some(minting) => self.read_to_mint(minting),
            None => {
                self.minting.remove(key);
            }
        }
    }

    /// Mints a put's dot over the versions `current` this node holds of the key. A put whose
    /// timeout passed while it waited (behind other puts of the key, or for the store) is turned
    /// down instead: nothing of it is applied, and its client, which sends it to another node
    /// about then, may have done so already.
    pub(crate) fn mint(&mut self, now: Millis, m: Minting, current: Option<Sibs>) {
        let key = m.key.clone();
        let Some(m) = self.in_time(now, m) else {
            self.mint_next(&key);
            return;
        };
        let leased = self.mint_over(now, m, current.unwrap_or_default());
        if !leased {
            self.mint_next(&key);
        }
    }

    /// [`Self::mint`]; returns whether the key stays held for a new epoch lease.
    fn mint_over(&mut self, now: Millis, m: Minting, mut siblings: Sibs) -> bool {
        // A context that knows more of our epoch than our own copy does comes from elsewhere (a
        // forged context, or a copy this node lost): counting on under that epoch could issue a
        // dot twice, so take a fresh one. So does an epoch counted up to the bound a context may
        // carry (only a forged context gets it there): counted past it, every context of the
        // key would be refused.
        let reused = if m.primary {
            self.epochs.reusable(self.id, &siblings).filter(|&e| {
                let own = own_counter(&siblings, (self.id, e));
                m.context.counter(&(self.id, e)) <= own && own < MAX_COUNTER
            })
        } else {
            None
        };
        let (epoch, lease) = match reused {
            Some(e) => (e, None),
            None => match self.epochs.fresh() {
                Ok(Some(fresh)) => fresh,
                Ok(None) => {
                    // A lease is being written: mint when it is durable.
                    self.lease_waiters.push_back((m, siblings));
                    return true;
                }
                Err(e) => {
                    self.reply(
                        m.origin,
                        ClientReply::Failed(ClientError::Unavailable(e.to_string())),
                    );
                    return false;
                }
            },
        };
        let actor = (self.id, epoch);
        let adds_actors = self.context_adds_actors(&siblings, &m.context);
        siblings.put(&m.context, actor, now, m.value);
        let checked = self
            .check_siblings(&siblings)
            .and_then(|()| self.check_clock(adds_actors, &siblings));
        if let Err(e) = checked {
            if lease.is_some() {
                // No lease is written for a refused put: give the one it took up (its epoch
                // unused), or every later fresh epoch would wait for it for good.
                self.epochs.leased(false);
            }
            self.reply(m.origin, ClientReply::Failed(e));
            return false;
        }
        let clock = own_context(&siblings, m.context, actor, now);
        let minted = Minted {
            arrived: m.arrived,
            origin: m.origin,
            key: m.key,
            siblings,
            clock,
            options: m.options,
            primary: m.primary,
        };
        match lease {
            Some(lease) => {
                self.store_op(lease.write(), Then::Lease(Box::new(minted)));
                true
            }
            None => {
                self.store_minted(now, minted);
                false
            }
        }
    }

    /// A new lease of epochs was written (or failed): the put that took its first epoch goes on
    /// (or fails), then the puts that waited for the lease mint.
    pub(crate) fn leased(&mut self, now: Millis, minted: Minted, result: Result<(), StoreError>) {
        self.epochs.leased(result.is_ok());
        let key = minted.key.clone();
        match result {
            Ok(()) => self.store_minted(now, minted),
            Err(e) => self.reply(
                minted.origin,
                ClientReply::Failed(ClientError::Unavailable(e.to_string())),
            ),
        }
        self.mint_next(&key);
        for (m, siblings) in std::mem::take(&mut self.lease_waiters) {
            let key = m.key.clone();
            let minted = match self.in_time(now, m) {
                Some(m) => self.mint_over(now, m, siblings),
                None => false,
            };
            if !minted {
                self.mint_next(&key);
            }
        }
    }

    /// `m`, unless its timeout passed while it waited to mint (behind other puts of its key, for
    /// the store, for an epoch lease): then it is turned down ("unavailable": nothing of it is
    /// applied, and its client, which sends it to another node about then, may have done so).
    fn in_time(&mut self, now: Millis, m: Minting) -> Option<Minting> {
        if !time_left(m.options.timeout, m.arrived, now).is_zero() {
            return Some(m);
        }
        let waited = now.saturating_sub(m.arrived);
        self.reply(
            m.origin,
            ClientReply::Failed(ClientError::Unavailable(format!(
                "the put waited {waited} ms to be minted, past its timeout: not applied"
            ))),
        );
        None
    }

    /// The dot must be in this node's store before anything carries it away, or a later put
    /// could count from an older copy and issue it again: a primary stores it first.
    fn store_minted(&mut self, now: Millis, minted: Minted) {
        if minted.primary {
            let (key, siblings) = (minted.key.clone(), minted.siblings.clone());
            self.merge(key, siblings, Then::Minted(Box::new(minted)));
        } else {
            self.minted(now, minted, true);
        }
    }
}

/// Counters above this are refused in contexts: no key sees 2^40 writes through one actor epoch,
/// and a counter near `u64::MAX` could not be counted past.
pub(super) const MAX_COUNTER: u64 = 1 << 40;

/// The counter `actor` has reached in `set` (0 if it has no entry).
fn own_counter(set: &Sibs, actor: Actor) -> u64 {
    set.entries()
        .iter()
        .find(|e| e.actor == actor)
        .map_or(0, |e| e.counter)
}

/// The context a put answers with: the client's context and the new dot, when that covers no other
/// value of the set (the client may then overwrite its own write without a get). When it would
/// also cover a concurrent value minted by the same actor, the client's own context is returned:
/// a later put with it makes a sibling rather than silently superseding a value nobody read.
fn own_context(set: &Sibs, context: VClock<Actor>, actor: Actor, now: Millis) -> VClock<Actor> {
    let Some(dot) = set
        .entries()
        .iter()
        .find(|e| e.actor == actor)
        .map(|e| e.counter)
    else {
        return context;
    };
    let mut own = context.clone();
    own.merge(&VClock::from_entries([Entry {
        actor,
        counter: dot,
        timestamp: now,
    }]));
    let covers_other = set
        .dotted_values()
        .any(|((a, n), _)| !(*a == actor && n == dot) && n <= own.counter(a));
    if covers_other {
        context
    } else {
        own
    }
}
