//! Two replicas in one process, a lossless in-order link that may duplicate messages.

use std::collections::BTreeMap;

use dynamo_merkle::{
    DiffKind, Event, KeyDiff, Message, SyncConfig, SyncError, SyncSession, SyncStats, Tree,
    TreeConfig,
};

/// A replica of one range: the owner's store and its tree, kept in step.
#[derive(Clone, Debug)]
pub struct Replica {
    pub store: BTreeMap<Vec<u8>, Vec<u8>>,
    pub tree: Tree,
}

impl Replica {
    pub fn new(config: TreeConfig) -> Self {
        Replica {
            store: BTreeMap::new(),
            tree: Tree::new(config),
        }
    }

    pub fn from_store(config: TreeConfig, store: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        let tree = Tree::from_entries(config, &store);
        Replica { store, tree }
    }

    /// Puts `digest` for `key`, updating the tree incrementally.
    pub fn put(&mut self, key: &[u8], digest: &[u8]) {
        match self.store.insert(key.to_vec(), digest.to_vec()) {
            Some(old) => self.tree.update(key, &old, digest),
            None => self.tree.insert(key, digest),
        }
    }

    pub fn delete(&mut self, key: &[u8]) {
        if let Some(old) = self.store.remove(key) {
            self.tree.remove(key, &old);
        }
    }

    pub fn segment(&self, segment: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let config = self.tree.config();
        self.store
            .iter()
            .filter(|(k, _)| config.segment_of(k) == segment)
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect()
    }
}

/// The keys that differ, from `a`'s side: what a session must find.
pub fn expected_diff(a: &Replica, b: &Replica) -> Vec<KeyDiff> {
    let mut out = Vec::new();
    for (k, d) in &a.store {
        match b.store.get(k) {
            None => out.push(KeyDiff {
                key: k.clone(),
                kind: DiffKind::MissingRemotely,
            }),
            Some(e) if e != d => out.push(KeyDiff {
                key: k.clone(),
                kind: DiffKind::Different,
            }),
            Some(_) => {}
        }
    }
    for k in b.store.keys() {
        if !a.store.contains_key(k) {
            out.push(KeyDiff {
                key: k.clone(),
                kind: DiffKind::MissingLocally,
            });
        }
    }
    out.sort();
    out
}

/// What a run produced on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub a: Result<Vec<KeyDiff>, SyncError>,
    pub b: Result<Vec<KeyDiff>, SyncError>,
    pub stats_a: SyncStats,
    pub stats_b: SyncStats,
    /// Every message in the order it was sent, tagged with the sender (true = a).
    pub transcript: Vec<(bool, Message)>,
}

/// Answers the owner's events; returns the final result once there is one.
fn drain(
    session: &mut SyncSession,
    replica: &Replica,
    result: &mut Option<Result<Vec<KeyDiff>, SyncError>>,
) {
    while let Some(event) = session.poll_event() {
        match event {
            Event::SegmentNeeded(segment) => {
                let _ = session.supply(0, segment, replica.segment(segment));
            }
            Event::Finished(keys) => *result = Some(Ok(keys)),
            Event::Failed(error) => *result = Some(Err(error)),
            other => panic!("unknown event {other:?}"),
        }
    }
}

/// Runs one session, `a` initiating. With `duplicate`, every message is delivered twice.
pub fn sync(a: &Replica, b: &Replica, duplicate: bool) -> Outcome {
    sync_with(a, b, duplicate, SyncConfig::default(), 7)
}

/// Runs one session with `config` and id `session`, `a` initiating.
pub fn sync_with(
    a: &Replica,
    b: &Replica,
    duplicate: bool,
    config: SyncConfig,
    session: u64,
) -> Outcome {
    let mut left = SyncSession::initiate(config, session, 0, &a.tree);
    let mut right = SyncSession::respond(config, session);
    let (mut res_a, mut res_b) = (None, None);
    let mut transcript = Vec::new();
    for _round in 0..1000 {
        let mut moved = false;
        while let Some(msg) = left.poll_transmit() {
            moved = true;
            transcript.push((true, msg.clone()));
            if duplicate {
                let _ = right.handle_message(0, &b.tree, msg.clone());
            }
            let _ = right.handle_message(0, &b.tree, msg);
        }
        drain(&mut right, b, &mut res_b);
        while let Some(msg) = right.poll_transmit() {
            moved = true;
            transcript.push((false, msg.clone()));
            if duplicate {
                let _ = left.handle_message(0, &a.tree, msg.clone());
            }
            let _ = left.handle_message(0, &a.tree, msg);
        }
        drain(&mut left, a, &mut res_a);
        if !moved {
            break;
        }
    }
    Outcome {
        a: res_a.unwrap_or(Err(SyncError::Closed)),
        b: res_b.unwrap_or(Err(SyncError::Closed)),
        stats_a: *left.stats(),
        stats_b: *right.stats(),
        transcript,
    }
}

/// Flips a diff to the other side's point of view.
pub fn flipped(keys: &[KeyDiff]) -> Vec<KeyDiff> {
    let mut out: Vec<KeyDiff> = keys
        .iter()
        .map(|d| KeyDiff {
            key: d.key.clone(),
            kind: d.kind.flip(),
        })
        .collect();
    out.sort();
    out
}

pub fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}
