//! What a transfer session sends, and what the receiver answers.

/// Identifies one transfer session (one pass over a key range to one new owner), chosen by the
/// owner. Acknowledgements are matched by it and by the interval they cover, and a later pass
/// over the same range sends the same intervals: give each session an id no earlier session of
/// the range had (a fresh one for every pass, and after a restart), or a late acknowledgement of
/// an earlier pass's batch completes the new pass before its own batches, which may carry newer
/// versions, arrived. Resuming from a checkpoint needs no particular id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferId(pub u64);

/// One key of the range and its versions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferEntry<K, P> {
    /// The key.
    pub key: K,
    /// Its versions (for the node: the encoded sibling set).
    pub payload: P,
}

/// A run of consecutive keys of a range: every key of the range greater than `after` and up to
/// the last entry's key (or to the end of the range when `last` is set).
///
/// The receiver merges every entry into its store and answers with [`TransferBatch::ack`].
/// Merging is idempotent, so receiving a batch twice is harmless. A batch with `last` set tells
/// the receiver that it now holds the whole range.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferBatch<K, P> {
    /// The transfer.
    pub transfer: TransferId,
    /// Exclusive lower bound: `None` for the start of the range.
    pub after: Option<K>,
    /// The keys, strictly increasing.
    pub entries: Vec<TransferEntry<K, P>>,
    /// Whether this batch reaches the end of the range.
    pub last: bool,
}

impl<K: Clone, P> TransferBatch<K, P> {
    /// The key through which this batch covers the range (`None` if it carries no entry).
    pub fn through(&self) -> Option<&K> {
        self.entries.last().map(|e| &e.key)
    }

    /// The acknowledgement to send back once every entry is applied durably.
    pub fn ack(&self) -> TransferAck<K> {
        TransferAck {
            transfer: self.transfer,
            after: self.after.clone(),
            through: self.through().cloned(),
            last: self.last,
        }
    }
}

/// The receiver's statement that it holds every key of the range in the interval
/// `(after, through]` (to the end of the range if `last`).
///
/// Because the acknowledgement names the interval rather than a sequence number, it stays true
/// across restarts of either side for the keys the batch carried: an acknowledgement from an
/// earlier attempt never makes the sender skip keys of that interval that it had read. Keys
/// written after the batch was read are another matter, new keys as much as newer versions: an
/// earlier attempt's acknowledgement (a batch sent again after [`peer_down`] and
/// [`peer_up`] covers the same interval) also matches the batch read again, which may hold a key
/// written meanwhile that never arrived. The owner forwards writes made after a batch was read
/// (see the crate's consistency notes), or starts a pass with an id of its own after them: see
/// [`TransferId`].
///
/// [`peer_down`]: crate::TransferSession::peer_down
/// [`peer_up`]: crate::TransferSession::peer_up
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TransferAck<K> {
    /// The transfer.
    pub transfer: TransferId,
    /// Exclusive lower bound of the batch.
    pub after: Option<K>,
    /// Inclusive upper bound of the batch (its last key), `None` if it was empty.
    pub through: Option<K>,
    /// Whether the batch reached the end of the range.
    pub last: bool,
}
