//! The node's configuration: one documented struct, defaults from the sources.

use serde::{Deserialize, Serialize};

use crate::types::{Millis, NodeId};

/// Sloppy or strict quorums: the quorum crate's [`Mode`](dynamo_quorum::Mode) under the node's
/// name. In a configuration file: `mode = "sloppy"` or `"strict"` (the capitalised names are
/// accepted too).
pub use dynamo_quorum::Mode as QuorumMode;

/// Everything a node needs to know to run (`docs/operations.md` has a reference table).
///
/// In a configuration file (the `[node]` table of `dynamo serve --config`), every field is
/// optional and an unknown field is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Cluster name: gossip from another cluster is ignored.
    pub cluster: String,
    /// Replication factor N (default 3).
    pub n: usize,
    /// Default read quorum R (default 2).
    pub r: usize,
    /// Default write quorum W (default 2).
    pub w: usize,
    /// Strategy 3 partition count Q, a power of two (default 64).
    pub partitions: u32,
    /// Default request timeout (default 1000 ms).
    pub request_timeout: Millis,
    /// Sloppy (default) or strict quorums.
    pub mode: QuorumMode,
    /// Gossip interval (default 500 ms: with the gossip crate's default failure detector every
    /// node marks a crashed node down within 9 to 12 s; at 1000 ms, which halves gossip traffic,
    /// it takes 17 to 22 s; see the `dynamo-gossip` README).
    pub gossip_interval: Millis,
    /// Phi-accrual threshold (default 8).
    pub phi_threshold: f64,
    /// Anti-entropy: one Merkle sync session (for the next partition this node replicates) every
    /// this often (default 1000 ms, so a node with 64 partitions compares each about once a
    /// minute; a session between equal trees is one round trip); `None` (or 0, in a
    /// configuration file: `sync_interval = 0`) turns it off.
    pub sync_interval: Option<Millis>,
    /// Read repair after gets (default on).
    pub read_repair: bool,
    /// How many replicas a get asks at once: `None` (the default) asks all N and the first R
    /// answers decide, as in the paper; `Some(k)` asks the first k replicas of the preference
    /// list (this node first when it is one; k is raised to a request's R and capped at N),
    /// another one for each answer that does not count, and the rest after
    /// [`read_hedge`](Self::read_hedge) without a decision. Fewer messages per get; read repair
    /// then compares only the replicas asked.
    pub read_fanout: Option<usize>,
    /// With [`read_fanout`](Self::read_fanout): how long a get waits for its first replicas
    /// before it asks the rest (default 50 ms).
    pub read_hedge: Millis,
    /// Hinted handoff (default on). Off, a sloppy write to a fallback is simply stored there.
    pub hinted_handoff: bool,
    /// Delay before hints are retried after a failed delivery to a node (default 1000 ms,
    /// doubling up to 5 min while the node stays unreachable).
    pub handoff_interval: Millis,
    /// Most bytes of hints (keys and versions) a node holds for other nodes (default 128 MiB).
    /// A sloppy write a full hint log cannot take does not count toward W. Lowered, it drops no
    /// hint held at the restart: the log takes no new one until deliveries bring it under.
    pub max_hint_bytes: usize,
    /// Largest accepted value (default 1 MiB).
    pub max_value_size: usize,
    /// Largest accepted key (default 8 KiB).
    pub max_key_size: usize,
    /// Largest accepted context, in bytes (default 64 KiB: about two thousand clock entries).
    /// A put whose context names actors the key does not know may not leave it a clock whose
    /// context (what a get returns) is larger: made-up actors in contexts would grow the key's
    /// record for good.
    pub max_context_size: usize,
    /// Most concurrent versions (siblings, tombstones included) a put may leave on a key
    /// (default 64). A put past it is refused: read the key and write with its context to
    /// reconcile the siblings.
    pub max_siblings: usize,
    /// Most bytes of values a put may leave on a key, all siblings together (default 4 MiB, a
    /// quarter of the frame limit, so that a read of a key written concurrently through every
    /// primary still fits in one reply).
    pub max_siblings_size: usize,
    /// Seed nodes contacted at start and now and then, with their addresses.
    pub seeds: Vec<(NodeId, String)>,
    /// Initial members of the ring when the cluster is created (every node must agree).
    pub initial_members: Vec<NodeId>,
    /// Zones (racks, data centres) of the initial members, for the ring a new cluster starts
    /// with; members not listed are in no zone. Every node of a new cluster must agree.
    pub member_zones: Vec<(NodeId, String)>,
    /// This node's zone. It reaches the ring when the node joins (the claimant reads it from
    /// gossip), and preference lists take distinct zones first once there are N of them.
    pub zone: Option<String>,
    /// A node that joins an existing cluster waits for an operator's `dynamo commit` (a staged
    /// join) instead of being added by the claimant as soon as it is up.
    pub wait_for_commit: bool,
    /// How long a down node stays in the ring before it is removed (default: never, `None`).
    ///
    /// A node so removed no longer holds up the reaping of tombstones: wipe its data directory
    /// before it starts again, or what it hands over on its return (versions older than deletes
    /// reaped meanwhile) brings deleted values back.
    pub remove_after: Option<Millis>,
    /// How long a tombstone is kept before it may be reaped (default 4 h; `None` keeps tombstones
    /// forever). A tombstone is reaped only once all N replicas hold exactly it, every member is
    /// up, and none holds hints for the key's replicas or hands its range over (see the reaper).
    pub tombstone_grace: Option<Millis>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cluster: "dynamo".into(),
            n: 3,
            r: 2,
            w: 2,
            partitions: 64,
            request_timeout: 1000,
            mode: QuorumMode::Sloppy,
            gossip_interval: 500,
            phi_threshold: 8.0,
            sync_interval: Some(1_000),
            read_repair: true,
            read_fanout: None,
            read_hedge: 50,
            hinted_handoff: true,
            handoff_interval: 1000,
            max_hint_bytes: 128 << 20,
            max_value_size: 1 << 20,
            max_key_size: 8 << 10,
            max_context_size: 64 << 10,
            max_siblings: 64,
            max_siblings_size: 4 << 20,
            seeds: Vec::new(),
            initial_members: Vec::new(),
            member_zones: Vec::new(),
            zone: None,
            wait_for_commit: false,
            remove_after: None,
            tombstone_grace: Some(4 * 3600 * 1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_file_says_modes_in_lower_case_and_turns_anti_entropy_off_with_0() {
        let config: NodeConfig =
            toml::from_str("mode = \"strict\"\nsync_interval = 0\n").expect("valid");
        assert_eq!(config.mode, QuorumMode::Strict);
        assert_eq!(config.sync_interval, Some(0));
        let old: NodeConfig = toml::from_str("mode = \"Sloppy\"\n").expect("valid");
        assert_eq!(old.mode, QuorumMode::Sloppy);
        assert!(toml::from_str::<NodeConfig>("rr = 2\n").is_err());
    }
}
