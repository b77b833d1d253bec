//! What a sync session cost: messages, round trips and bytes.

/// Counters of one [`crate::SyncSession`], from its side. Bytes are [`crate::Message::encoded_len`]
/// estimates, so they are deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Messages this side sent (including a final `Abort`).
    pub messages_sent: u64,
    /// Messages this side accepted (duplicates not counted).
    pub messages_received: u64,
    /// Estimated bytes sent.
    pub bytes_sent: u64,
    /// Estimated bytes accepted.
    pub bytes_received: u64,
    /// Estimated bytes of the tree part (`Hello` and `Hashes`), both directions.
    pub tree_bytes: u64,
    /// Node hashes sent and received.
    pub hashes: u64,
    /// Entries sent and received in `Entries` messages.
    pub entries: u64,
    /// Messages dropped as duplicates.
    pub duplicates_ignored: u64,
    /// Segments found differing.
    pub differing_segments: u64,
    /// Differing segments this side left for a later session: their entries or differences
    /// were past [`crate::SyncConfig::max_entries_bytes`].
    pub segments_deferred: u64,
}

impl SyncStats {
    /// Messages exchanged in both directions.
    pub fn messages(&self) -> u64 {
        self.messages_sent + self.messages_received
    }

    /// Round trips: the sides alternate, so each pair of messages is one round trip (a trailing
    /// one-way message counts as a whole one). Equal on both sides once a session is finished.
    pub fn round_trips(&self) -> u64 {
        self.messages().div_ceil(2)
    }

    /// Estimated bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}
