//! Ids that name two things at once: an anti-entropy session (its initiator and the initiator's
//! counter) and an ownership transfer (its partition and its receiver).
//!
//! Both travel on the wire (sessions in Merkle sync messages) or name stored values (transfer
//! checkpoints, `transfer-{id}`), so the layout is frozen: the first part above bit 40, the
//! second in the 40 bits below.

/// Node ids are below this (2^24): a session id holds its initiator's id above bit 40, and a
/// transfer id its receiver's in the 40 bits below (a larger id would make two nodes' ids
/// collide).
pub(crate) const NODE_ID_LIMIT: u64 = 1 << (64 - LOW_BITS);

/// Bits of an id's second part.
const LOW_BITS: u32 = 40;

/// The id of `high` and `low`: `high` above bit 40, the low 40 bits of `low` below.
pub(crate) fn pair_id(high: u64, low: u64) -> u64 {
    (high << LOW_BITS) | (low & ((1 << LOW_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned: transfer checkpoints are stored under names built from these ids.
    #[test]
    fn the_layout_is_frozen() {
        assert_eq!(pair_id(3, 5), 0x0000_0300_0000_0005);
        assert_eq!(pair_id(0, u64::MAX), 0x0000_00ff_ffff_ffff);
        // What the two schemes computed before they shared this function.
        for (high, low) in [(0u64, 1u64), (7, 12_345), (1 << 20, (1 << 40) - 1)] {
            assert_eq!(pair_id(high, low), (high << 40) ^ low, "session ids");
            assert_eq!(pair_id(high, low), (high << 40) | (low & ((1 << 40) - 1)));
        }
    }
}
