//! The simulator's own counters, and node statistics summed over nodes and incarnations.

use crate::core::{Counters, NodeStats};

/// What the simulator counted: network fate of messages, client outcomes, injected faults.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Peer messages handed to the network.
    pub messages_sent: u64,
    /// Peer messages delivered (duplicates included).
    pub messages_delivered: u64,
    /// Lost at random.
    pub messages_dropped: u64,
    /// Lost to a partition.
    pub messages_partitioned: u64,
    /// Delivered twice.
    pub messages_duplicated: u64,
    /// Sent to a node that was down (the sender is told the connection was refused).
    pub messages_refused: u64,
    /// In flight when their destination crashed.
    pub messages_lost_to_crash: u64,
    /// Client operations started.
    pub ops_invoked: u64,
    /// Completed successfully.
    pub ops_ok: u64,
    /// Answered with an error.
    pub ops_failed: u64,
    /// Given up by the client (node crashed or no answer in time).
    pub ops_timed_out: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Node statistics of crashed incarnations (their cores are gone).
    pub retired: NodeStats,
}

impl SimStats {
    /// Adds a crashed core's statistics to [`SimStats::retired`].
    pub fn retire(&mut self, stats: &NodeStats) {
        add_stats(&mut self.retired, stats);
    }
}

/// Adds `b` into `a`: counters summed, histograms merged.
pub fn add_stats(a: &mut NodeStats, b: &NodeStats) {
    add_counters(&mut a.counters, &b.counters);
    // Merging histograms of the same precision cannot fail; a failure would only lose samples.
    let _ = a.get_latency.add(&b.get_latency);
    let _ = a.put_latency.add(&b.put_latency);
}

/// Adds `b` into `a`, field by field (exhaustive: a new counter must be summed here too).
pub fn add_counters(a: &mut Counters, b: &Counters) {
    let Counters {
        gets,
        puts,
        deletes,
        failures,
        forwarded,
        replica_writes,
        replica_reads,
        read_repairs,
        hints_recorded,
        hints_delivered,
        hints_dropped,
        sync_sessions,
        sync_failures,
        sync_keys_repaired,
        sync_bytes,
        transfer_keys,
        bad_messages,
        late_answers,
    } = b;
    a.gets += gets;
    a.puts += puts;
    a.deletes += deletes;
    a.failures += failures;
    a.forwarded += forwarded;
    a.replica_writes += replica_writes;
    a.replica_reads += replica_reads;
    a.read_repairs += read_repairs;
    a.hints_recorded += hints_recorded;
    a.hints_delivered += hints_delivered;
    a.hints_dropped += hints_dropped;
    a.sync_sessions += sync_sessions;
    a.sync_failures += sync_failures;
    a.sync_keys_repaired += sync_keys_repaired;
    a.sync_bytes += sync_bytes;
    a.transfer_keys += transfer_keys;
    a.bad_messages += bad_messages;
    a.late_answers += late_answers;
}
