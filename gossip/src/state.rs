//! The versioned state of one node, as every member holds it, and how deltas merge into it.
//!
//! Versions follow scuttlebutt: the owner of a state draws every version from one counter that
//! only grows within a generation, so "I know this node up to version v" says exactly which
//! entries a peer still lacks. A new generation (a restart) replaces the whole state.

use std::collections::BTreeMap;

use crate::message::Delta;

/// A value with the owner's version at which it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Versioned<T> {
    /// The owner's version counter when the value was written.
    pub version: u64,
    /// The value.
    pub value: T,
}

impl<T> Versioned<T> {
    /// Pairs a value with its version.
    pub fn new(version: u64, value: T) -> Self {
        Self { version, value }
    }
}

/// The status a node announces about itself. It only moves forward: joining, up, leaving, left.
///
/// Whether a node is *down* is not part of its state: every member judges it locally with the
/// failure detector ([`Gossip::is_up`](crate::Gossip::is_up)). *Removed* is local too: a node
/// down for too long, or gone for a while after leaving, is dropped from the view
/// ([`Event::Removed`](crate::Event::Removed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Status {
    /// Started, not yet serving (the initial status; the owner calls `set_status(Up)`).
    Joining,
    /// Serving.
    Up,
    /// Handing its data off before leaving.
    Leaving,
    /// Left the cluster gracefully; members remove it after a grace period.
    Left,
}

/// Everything the cluster knows about one node: generation, heartbeat, status, address and
/// application state, each part versioned by the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState<A> {
    pub(crate) generation: u64,
    pub(crate) version: u64,
    pub(crate) heartbeat: Versioned<u64>,
    pub(crate) status: Versioned<Status>,
    pub(crate) address: Versioned<A>,
    pub(crate) app: BTreeMap<String, Versioned<Vec<u8>>>,
}

/// What changed when a delta was merged into a state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The delta carried a newer generation and replaced the state.
    pub restarted: bool,
    /// On a restart, the generation and version held of the state it replaced.
    pub replaced: (u64, u64),
    /// The heartbeat moved forward (evidence that the node is alive).
    pub heartbeat_advanced: bool,
    /// The new status, when it changed.
    pub status: Option<Status>,
    /// The address changed.
    pub address_changed: bool,
    /// Application keys whose value changed (or vanished, on a restart).
    pub keys: Vec<String>,
}

/// Why a delta was not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Older generation than the one held.
    StaleGeneration,
    /// The delta starts after what is known, or a new state does not start at version 0.
    Gap,
}

impl<A: Clone + PartialEq> NodeState<A> {
    /// The first state of a node that starts with `generation` at `address`.
    pub(crate) fn new_owned(generation: u64, address: A) -> Self {
        Self {
            generation,
            version: 3,
            heartbeat: Versioned::new(1, 0),
            status: Versioned::new(2, Status::Joining),
            address: Versioned::new(3, address),
            app: BTreeMap::new(),
        }
    }

    /// Builds a state from a delta that starts at version 0.
    pub(crate) fn from_delta<Id>(delta: &Delta<Id, A>) -> Result<Self, Refused> {
        if delta.from_version != 0 {
            return Err(Refused::Gap);
        }
        Ok(Self {
            generation: delta.generation,
            version: delta.to_version,
            heartbeat: delta.heartbeat.clone(),
            status: delta.status.clone(),
            address: delta.address.clone(),
            app: delta.app.iter().cloned().collect(),
        })
    }

    /// The generation: bumped by the owner at every restart.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Everything of this state up to this version is known here.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The owner's heartbeat counter (one per gossip interval).
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.value
    }

    /// The status the owner announced.
    pub fn status(&self) -> Status {
        self.status.value
    }

    /// The owner's address.
    pub fn address(&self) -> &A {
        &self.address.value
    }

    /// The value of one application key.
    pub fn app_state(&self, key: &str) -> Option<&[u8]> {
        self.app.get(key).map(|v| v.value.as_slice())
    }

    /// All application entries, by key, with their versions.
    pub fn app_states(&self) -> impl Iterator<Item = (&str, &Versioned<Vec<u8>>)> {
        self.app.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The highest version of any part held here (at least `version()`).
    pub(crate) fn max_version(&self) -> u64 {
        let app = self.app.values().map(|v| v.version).max().unwrap_or(0);
        self.version
            .max(self.heartbeat.version)
            .max(self.status.version)
            .max(self.address.version)
            .max(app)
    }

    /// Owner side: the next version.
    pub(crate) fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// The delta a peer that knows this state up to `from` (same generation) is missing,
    /// application entries in version order, cut after `max_entries` entries. The header
    /// (heartbeat, status, address) always travels.
    pub(crate) fn delta<Id>(&self, id: Id, from: u64, max_entries: usize) -> Delta<Id, A> {
        let from = if from > self.version {
            self.version
        } else {
            from
        };
        let mut entries: Vec<(&String, &Versioned<Vec<u8>>)> =
            self.app.iter().filter(|(_, v)| v.version > from).collect();
        entries.sort_by_key(|(_, v)| v.version);
        let mut to_version = self.version;
        if entries.len() > max_entries {
            entries.truncate(max_entries);
            // Everything up to the last entry sent is complete; the rest comes next round.
            to_version = entries.last().map_or(from, |(_, v)| v.version);
        }
        Delta {
            id,
            generation: self.generation,
            from_version: from,
            to_version,
            heartbeat: self.heartbeat.clone(),
            status: self.status.clone(),
            address: self.address.clone(),
            app: entries
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Merges a (validated) delta about the same node.
    pub(crate) fn apply<Id>(&mut self, delta: &Delta<Id, A>) -> Result<Applied, Refused> {
        if delta.generation < self.generation {
            return Err(Refused::StaleGeneration);
        }
        if delta.generation > self.generation {
            let fresh = Self::from_delta(delta)?;
            let mut keys: Vec<String> = self
                .app
                .iter()
                .filter(|(k, v)| fresh.app.get(*k).map(|f| &f.value) != Some(&v.value))
                .map(|(k, _)| k.clone())
                .collect();
            keys.extend(
                fresh
                    .app
                    .keys()
                    .filter(|k| !self.app.contains_key(*k))
                    .cloned(),
            );
            let applied = Applied {
                restarted: true,
                replaced: (self.generation, self.version),
                heartbeat_advanced: true,
                status: (fresh.status.value != self.status.value).then_some(fresh.status.value),
                address_changed: fresh.address.value != self.address.value,
                keys,
            };
            *self = fresh;
            return Ok(applied);
        }
        if delta.from_version > self.version {
            return Err(Refused::Gap);
        }
        let mut applied = Applied::default();
        if delta.heartbeat.version > self.heartbeat.version {
            applied.heartbeat_advanced = delta.heartbeat.value > self.heartbeat.value;
            self.heartbeat = delta.heartbeat.clone();
        }
        if delta.status.version > self.status.version {
            if delta.status.value != self.status.value {
                applied.status = Some(delta.status.value);
            }
            self.status = delta.status.clone();
        }
        if delta.address.version > self.address.version {
            applied.address_changed = delta.address.value != self.address.value;
            self.address = delta.address.clone();
        }
        for (key, entry) in &delta.app {
            let newer = self
                .app
                .get(key)
                .is_none_or(|cur| entry.version > cur.version);
            if newer {
                let changed = self.app.get(key).map(|c| &c.value) != Some(&entry.value);
                self.app.insert(key.clone(), entry.clone());
                if changed {
                    applied.keys.push(key.clone());
                }
            }
        }
        self.version = self.version.max(delta.to_version);
        Ok(applied)
    }
}
