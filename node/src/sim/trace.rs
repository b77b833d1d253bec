//! An opt-in log of what replicas did, for measurements that need the instant each replica
//! acted: when a write of a key reached a replica, and when a replica answered a read and what
//! its answer held. Off by default (it costs a map insert per read); turn it on with
//! [`Sim::record_replicas`].
//!
//! Only messages are seen: a coordinator that is itself a replica of the key reads and writes its
//! own store without a message, and those local accesses are not logged.

use std::collections::BTreeMap;

use super::net::Micros;
use super::workload::{key_index, value_op};
use super::Sim;
use crate::message::PeerMessage;
use crate::types::{NodeId, RequestId, Sibs};

/// One replica action, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaEvent {
    /// Versions of `key` reached `replica` (a coordinated put, a read repair, or a fallback's
    /// copy) at `at` (µs of virtual time).
    Write {
        /// When the write arrived.
        at: Micros,
        /// The node that received it.
        replica: NodeId,
        /// The key index (see [`key_index`]).
        key: u32,
        /// The writes (operation ids) whose values it carried.
        ops: Vec<u64>,
    },
    /// `replica` answered `coordinator`'s read of `key`.
    Read {
        /// When the replica received the read and answered it (it answers at once).
        answered: Micros,
        /// When the answer reached the coordinator.
        arrived: Micros,
        /// The replica.
        replica: NodeId,
        /// The coordinator.
        coordinator: NodeId,
        /// The key index.
        key: u32,
        /// The writes (operation ids) whose values the answer held.
        ops: Vec<u64>,
    },
}

/// The log and the reads awaiting their answer.
#[derive(Debug, Default)]
pub(super) struct ReplicaLog {
    events: Vec<ReplicaEvent>,
    /// Reads delivered to a replica, by (coordinator, request, replica): when, which key.
    asked: BTreeMap<(NodeId, RequestId, NodeId), (Micros, u32)>,
}

fn ops_of(siblings: &Sibs) -> Vec<u64> {
    let mut ops: Vec<u64> = siblings.live_values().filter_map(|v| value_op(v)).collect();
    ops.sort_unstable();
    ops
}

impl ReplicaLog {
    /// Notes `msg`, delivered from `from` to `to` at `now`.
    pub(super) fn delivered(&mut self, now: Micros, from: NodeId, to: NodeId, msg: &PeerMessage) {
        match msg {
            PeerMessage::Write { key, siblings, .. } => {
                if let Some(key) = key_index(key) {
                    self.events.push(ReplicaEvent::Write {
                        at: now,
                        replica: to,
                        key,
                        ops: ops_of(siblings),
                    });
                }
            }
            PeerMessage::Read { req, key, .. } => {
                if let Some(key) = key_index(key) {
                    self.asked.insert((from, *req, to), (now, key));
                }
            }
            PeerMessage::ReadReply { req, siblings } => {
                if let Some((answered, key)) = self.asked.remove(&(to, *req, from)) {
                    self.events.push(ReplicaEvent::Read {
                        answered,
                        arrived: now,
                        replica: from,
                        coordinator: to,
                        key,
                        ops: siblings.as_ref().map(ops_of).unwrap_or_default(),
                    });
                }
            }
            _ => {}
        }
    }
}

impl Sim {
    /// Starts (or stops, with `false`) logging replica actions; see the [module docs](self).
    pub fn record_replicas(&mut self, on: bool) {
        self.replica_log = on.then(ReplicaLog::default);
    }

    /// The replica actions logged since [`Sim::record_replicas`] or the last
    /// [`Sim::take_replica_events`].
    pub fn replica_events(&self) -> &[ReplicaEvent] {
        self.replica_log.as_ref().map_or(&[], |l| &l.events)
    }

    /// Takes the replica actions logged so far, leaving the log on and empty.
    pub fn take_replica_events(&mut self) -> Vec<ReplicaEvent> {
        self.replica_log
            .as_mut()
            .map(|l| std::mem::take(&mut l.events))
            .unwrap_or_default()
    }
}
