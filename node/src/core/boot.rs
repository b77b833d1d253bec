//! What a node starts from: [`Boot::load`] reads (and, for the node's identity, epoch lease and
//! generation, writes) its store once, before the core exists. This is the driver's side: after
//! it, the core reaches its store only through [`StorageOp`](super::StorageOp)s.

use std::collections::{BTreeMap, BTreeSet};

use dynamo_handoff::HintRecord;
use rand::SeedableRng;

use super::epochs::Epochs;
use super::membership::{self, RingState};
use super::reaper::tombstone_time;
use super::transfer::decode_checkpoint;
use super::transfers::{checkpoint_name, INCOMING_KEY, REFILL_KEY, TRANSFERS_KEY, WHOLE_KEY};
use super::META_NODE_ID;
use super::{
    decode_u64, siblings_digest, NodeError, FORMAT, META_FORMAT, META_GENERATION, OLDEST_FORMAT,
};
use crate::config::NodeConfig;
use crate::store::{Store, StoreError};
use crate::types::{Key, Millis, NodeId, ReplayRng};

/// Refuses a store whose records are of a format this version cannot read (written by a newer
/// version, or by one from before dotted version vectors). The on-disk stores call it at open,
/// before they check their records: a record this version cannot read is not damage there, and
/// removed as damage it would be lost for the version that wrote it.
pub(crate) fn check_format<S: Store + ?Sized>(store: &S) -> Result<(), StoreError> {
    let format = match store.get_meta(META_FORMAT)? {
        Some(bytes) => decode_u64(&bytes)?,
        // A store that holds a node but no format is of format 1; a new one has no format yet.
        None if store.get_meta(META_NODE_ID)?.is_some() => 1,
        None => return Ok(()),
    };
    if (OLDEST_FORMAT..=FORMAT).contains(&format) {
        return Ok(());
    }
    Err(StoreError::UnknownVersion {
        what: "the store's records".into(),
        found: format.to_string(),
        supported: format!("{OLDEST_FORMAT} to {FORMAT}"),
        advice: if format < OLDEST_FORMAT {
            "format 1 holds a vector clock per version, from before dotted version vectors: \
             start the node on an empty data directory and let anti-entropy refill it"
        } else {
            "it was written by a newer version: run that version on it"
        }
        .into(),
    })
}

/// One stored key as the core indexes it.
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    pub(crate) key: Key,
    pub(crate) digest: [u8; 32],
    /// When its tombstone was written, if it holds only a tombstone.
    pub(crate) tombstone: Option<Millis>,
}

/// A node's state as its store kept it, and the generator its choices start from.
pub struct Boot {
    pub(crate) rng: ReplayRng,
    pub(crate) epochs: Epochs,
    pub(crate) generation: u64,
    /// The ring it had, if any.
    pub(crate) ring: Option<RingState>,
    /// The members of the ring before the one it had (see `membership::PREVIOUS_MEMBERS_KEY`).
    pub(crate) previous_members: Option<BTreeSet<NodeId>>,
    /// Former members that may still hand copies over (see `View::former`).
    pub(crate) former: BTreeSet<NodeId>,
    /// Whether a ring change took it out before it said it left.
    pub(crate) removed: bool,
    /// Whether it was asked to leave (it may still be in the ring, waiting for the claimant).
    pub(crate) leave_asked: bool,
    /// The partitions it awaited (see `Transfers::incoming`).
    pub(crate) incoming: BTreeSet<usize>,
    /// Those of them only anti-entropy ends (see `Transfers::since`).
    pub(crate) refill: BTreeSet<usize>,
    /// The partitions it handed over whole (see `Transfers::whole`).
    pub(crate) whole: BTreeSet<usize>,
    /// The keys whose records it lost (see `Holdings::lost`).
    pub(crate) lost: BTreeSet<Key>,
    /// The transfers (partition, receiver) pending at the last persisted point.
    pub(crate) transfers: BTreeSet<(usize, NodeId)>,
    /// Their checkpoints, by transfer id.
    pub(crate) checkpoints: BTreeMap<u64, Key>,
    pub(crate) keys: Vec<StoredKey>,
    pub(crate) hints: Vec<HintRecord<NodeId, Vec<u8>>>,
    /// Whether every flush of the store survives a crash ([`Store::is_durable`]).
    pub(crate) durable: bool,
    /// Whether the store is new (no epoch: lost, or never had, the node's data) or was when
    /// its node stopped before it heard how old the cluster's data is (see `fresh`).
    pub(crate) new_store: bool,
    /// When the store began (see `fresh`).
    pub(crate) birth: Millis,
    /// How far the node's runs got, as the store recorded it (see `restored`).
    pub(crate) reached: Option<(u64, u64)>,
    /// The gossip generation the last run started in, as the store recorded it.
    pub(crate) started: Option<u64>,
    /// The generation the store held before this start.
    pub(crate) previous_generation: u64,
}

impl std::fmt::Debug for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boot")
            .field("generation", &self.generation)
            .field("keys", &self.keys.len())
            .field("hints", &self.hints.len())
            .finish_non_exhaustive()
    }
}

impl Boot {
    /// Reads what node `id` needs to start from `store`: checks that the store is this node's
    /// and of a format this version reads, takes a new lease of actor epochs and a new gossip
    /// generation (written and flushed), and reads the ring, the pending transfers, every key's
    /// digest and every hint.
    pub fn load<S: Store>(
        store: &mut S,
        id: NodeId,
        config: &NodeConfig,
        now: Millis,
        seed: u64,
    ) -> Result<Boot, NodeError> {
        ids_checked(id, config)?;
        config_checked(id, config)?;
        let rng = ReplayRng::seed_from_u64(seed ^ id.rotate_left(17));
        if let Some(stored) = store.get_meta(META_NODE_ID)? {
            let stored_id = decode_u64(&stored)?;
            if stored_id != id {
                return Err(NodeError::Config(format!(
                    "the store belongs to node {stored_id}, not {id}"
                )));
            }
        }
        // (The stores check it at open already; a memory store, here.)
        check_format(store)?;
        store.put_meta(META_FORMAT, &FORMAT.to_be_bytes())?;
        // A store without an epoch has lost (or never had) the node's data: a fresh random base,
        // so that no dot handed out before can be issued again (kv679; see `epochs`). It is drawn
        // with the start time mixed in: a runtime given a fixed seed would otherwise draw the
        // base of the node's earlier life again.
        let mut base = ReplayRng::seed_from_u64(
            seed ^ id.rotate_left(17) ^ now.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let new_store = Epochs::is_new(store)?;
        // When the store began: now for a new one; for one of a version that did not record
        // it, long ago. A new store is unsure until its node hears how old the cluster's data
        // is, and stays so over restarts until then (see `fresh`). Both written before the
        // epochs' lease, whose sync makes them durable with it: a crash between would leave a
        // store that looks old and sure.
        let birth = match store.get_meta(super::fresh::BIRTH_META)? {
            Some(bytes) => decode_u64(&bytes)?,
            None => {
                let birth = if new_store { now } else { 0 };
                store.put_meta(super::fresh::BIRTH_META, &birth.to_be_bytes())?;
                birth
            }
        };
        if new_store {
            store.put_meta(super::fresh::UNSURE_META, &[1])?;
        }
        let unsure = store.get_meta(super::fresh::UNSURE_META)?.as_deref() == Some(&[1][..]);
        let epochs = Epochs::load(store, &mut base)?;
        let previous = match store.get_meta(META_GENERATION)? {
            Some(bytes) => decode_u64(&bytes)?,
            None => 0,
        };
        let reached = super::restored::read_reached(store)?;
        let started = match store.get_meta(super::restored::STARTED_META)? {
            Some(bytes) => Some(decode_u64(&bytes)?),
            None => None,
        };
        let generation = (previous + 1).max(now);
        store.put_meta(META_GENERATION, &generation.to_be_bytes())?;
        store.put_meta(super::restored::STARTED_META, &generation.to_be_bytes())?;
        store.put_meta(META_NODE_ID, &id.to_be_bytes())?;
        store.flush()?;

        let ring = match store.get_meta(membership::RING_KEY)? {
            Some(bytes) => Some(RingState::decode(&bytes)?),
            None => None,
        };
        // (A list it cannot read is as none: a tie then counts as a change, as before this was
        // kept.)
        let previous_members = match &ring {
            Some(_) => store
                .get_meta(membership::PREVIOUS_MEMBERS_KEY)?
                .and_then(|bytes| rmp_serde::from_slice::<Option<Vec<NodeId>>>(&bytes).ok())
                .flatten()
                .map(|m| m.into_iter().collect()),
            None => None,
        };
        // A list it cannot read is as none (the reaper then waits for what gossip knows).
        let former: BTreeSet<NodeId> = meta_set(store, membership::FORMER_KEY)?;
        let removed = meta_flag(store, membership::REMOVED_KEY)?;
        let leave_asked = meta_flag(store, membership::LEAVE_KEY)?;
        // Transfers pending at the last persisted point; a damaged list resumes none (each
        // partition held but not replicated is handed over again).
        let transfers: BTreeSet<(usize, NodeId)> = meta_set(store, TRANSFERS_KEY)?;
        // Partitions awaited: a list this node cannot read fails the start (it would answer
        // reads of partitions it has not received).
        let incoming: BTreeSet<usize> =
            meta_set_strict(store, INCOMING_KEY, "the awaited partitions")?;
        // A damaged list ends these waits as a hand-over ends any other.
        let refill: BTreeSet<usize> = meta_set(store, REFILL_KEY)?;
        // A damaged list (or none, from an older build) says no hand-over is whole: receivers
        // then wait for anti-entropy instead of trusting this node's copy.
        let whole: BTreeSet<usize> = meta_set(store, WHOLE_KEY)?;
        // Keys whose copies this node lost: a list it cannot read fails the start (it would
        // answer "not found", toward R, for each of them).
        let mut lost: BTreeSet<Key> =
            meta_set_strict(store, super::holdings::LOST_KEY, "the lost keys")?;
        // Records the store found damaged as it opened are lost copies, as damage found by a
        // read is; persisted at once, since the store no longer holds them.
        let set_aside = store.take_set_aside()?;
        if !set_aside.is_empty() {
            lost.extend(set_aside);
            let bytes = super::holdings::encode_lost(&lost);
            store.put_meta(super::holdings::LOST_KEY, &bytes)?;
            store.flush()?;
        }
        let mut checkpoints = BTreeMap::new();
        for &(p, to) in &transfers {
            let id = super::ids::pair_id(p as u64, to);
            // A checkpoint this version cannot read (or none) restarts the range from its
            // start: sending keys the receiver has is harmless, merging is idempotent.
            let key = store
                .get_meta(&checkpoint_name(dynamo_handoff::TransferId(id)))
                .ok()
                .flatten()
                .and_then(|v| decode_checkpoint(&v).ok().flatten());
            if let Some(key) = key {
                checkpoints.insert(id, key);
            }
        }
        let mut keys = Vec::new();
        store.scan(&mut |key, siblings| {
            keys.push(StoredKey {
                key: key.to_vec(),
                digest: siblings_digest(siblings),
                tombstone: tombstone_time(siblings),
            });
        })?;
        // A hint record that passed the store's checksum but does not decode, or whose versions
        // do not (sealed from damaged bytes by an upgrade, or written by a later version), is set
        // aside as a damaged data record is: failing the start would not bring it back, and
        // would stop the node at every start.
        let mut hints = Vec::new();
        for (id, bytes) in store.hints()? {
            let record = crate::types::decode_msgpack::<HintRecord<NodeId, Vec<u8>>>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|r| match super::digest::decode_siblings(&r.hint.payload) {
                    Some(_) => Ok(r),
                    None => Err("its versions do not decode".into()),
                });
            match record {
                Ok(record) => hints.push(record),
                Err(why) => {
                    tracing::warn!(hint = id, %why, "a damaged hint record was set aside");
                    store.remove_hint(id)?;
                }
            }
        }
        Ok(Boot {
            rng,
            epochs,
            generation,
            ring,
            previous_members,
            former,
            removed,
            leave_asked,
            incoming,
            refill,
            whole,
            new_store: unsure,
            birth,
            reached,
            started,
            previous_generation: previous,
            lost,
            transfers,
            checkpoints,
            keys,
            hints,
            durable: store.is_durable(),
        })
    }
}

/// Refuses quorum sizes no request could meet.
/// Whether the store meta value `name` is set (to 1).
fn meta_flag<S: Store + ?Sized>(store: &S, name: &str) -> Result<bool, StoreError> {
    Ok(store.get_meta(name)?.is_some_and(|v| v == [1]))
}

/// The list the store meta value `name` holds (msgpack); empty if there is none or it does not
/// decode.
fn meta_set<T: serde::de::DeserializeOwned + Ord, S: Store + ?Sized>(
    store: &S,
    name: &str,
) -> Result<BTreeSet<T>, StoreError> {
    Ok(store
        .get_meta(name)?
        .and_then(|bytes| rmp_serde::from_slice::<Vec<T>>(&bytes).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default())
}

/// [`meta_set`] for a list whose loss would make the node answer for data it does not hold: one
/// it cannot read is an error that names `what`.
fn meta_set_strict<T: serde::de::DeserializeOwned + Ord, S: Store + ?Sized>(
    store: &S,
    name: &str,
    what: &str,
) -> Result<BTreeSet<T>, StoreError> {
    match store.get_meta(name)? {
        Some(bytes) if !bytes.is_empty() => rmp_serde::from_slice::<Vec<T>>(&bytes)
            .map(|v| v.into_iter().collect())
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))),
        _ => Ok(BTreeSet::new()),
    }
}

/// Node ids must fit the room anti-entropy session ids give them ([`super::ids::NODE_ID_LIMIT`]):
/// this node's and every initial member's and seed's.
pub(crate) fn ids_checked(id: NodeId, config: &NodeConfig) -> Result<(), NodeError> {
    let limit = super::ids::NODE_ID_LIMIT;
    let named = std::iter::once(id)
        .chain(config.initial_members.iter().copied())
        .chain(config.seeds.iter().map(|(s, _)| *s));
    for other in named {
        if other >= limit {
            return Err(NodeError::Config(format!(
                "node id {other}: node ids must be below {limit}"
            )));
        }
    }
    Ok(())
}

/// The longest request timeout a node takes: a day, in milliseconds.
const MAX_REQUEST_TIMEOUT: Millis = 24 * 3600 * 1000;

/// Settings of node `this` that cannot work together, refused at start.
pub(crate) fn config_checked(this: NodeId, config: &NodeConfig) -> Result<(), NodeError> {
    if config.n == 0 || config.r == 0 || config.w == 0 || config.r > config.n || config.w > config.n
    {
        return Err(NodeError::Config(format!(
            "N={}, R={}, W={}: need 1 <= R, W <= N",
            config.n, config.r, config.w
        )));
    }
    // Limits under which no put could ever be stored. (`max_context_size = 0` still takes
    // blind puts: write-once keys.)
    if config.max_siblings == 0 {
        return Err(NodeError::Config(
            "max_siblings = 0: need at least 1 (no put could be stored)".into(),
        ));
    }
    if config.max_value_size > config.max_siblings_size {
        return Err(NodeError::Config(format!(
            "max_value_size = {} is above max_siblings_size = {}: a value between them would \
             be taken and then refused as too many sibling bytes; raise max_siblings_size",
            config.max_value_size, config.max_siblings_size
        )));
    }
    // Every request's deadline, and the anti-entropy and transfer timeouts derived from it (up
    // to ten times it), must come after the request and stay within a day of it.
    if config.request_timeout == 0 || config.request_timeout > MAX_REQUEST_TIMEOUT {
        return Err(NodeError::Config(format!(
            "request_timeout = {} ms: need 1 to {MAX_REQUEST_TIMEOUT} ms",
            config.request_timeout
        )));
    }
    // A node reaches its initial members through addresses it is given or through their
    // gossip: with no seed, it waits for them to reach it (they may hold it as their seed).
    let others = |id: &NodeId| *id != this;
    if config.initial_members.iter().any(others) && !config.seeds.iter().map(|(s, _)| s).any(others)
    {
        tracing::warn!(
            node = this,
            "initial members but no seed: this node waits for the others to reach it"
        );
    }
    if let Some(reads) = config.read_fanout {
        if reads < config.r || reads > config.n {
            return Err(NodeError::Config(format!(
                "read_fanout = {reads} with R={}, N={}: need R <= read_fanout <= N",
                config.r, config.n
            )));
        }
    }
    Ok(())
}
