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
    /// Pauses injected ([`Sim::pause`](super::Sim::pause)).
    pub pauses: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Times a node handled three timeouts in a row after each of which its next deadline was
    /// still due: it would handle timeouts in a busy loop (its runtime re-arms its timer in the
    /// past). Once is a change that made work due as the timeout ended.
    pub still_due: u64,
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
    let _ = a.write_round_trip.add(&b.write_round_trip);
    let _ = a.read_round_trip.add(&b.read_round_trip);
    let _ = a.write_service.add(&b.write_service);
}

/// Adds `b` into `a` (see [`Counters::absorb`]).
pub fn add_counters(a: &mut Counters, b: &Counters) {
    a.absorb(b);
}
