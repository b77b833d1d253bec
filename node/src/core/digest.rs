//! Digests of sibling sets for the Merkle trees, and the byte forms stored and sent.

use sha2::{Digest, Sha256};

use crate::types::Sibs;

/// A digest of a key's versions that does not depend on the order in which the versions are
/// held: the SHA-256 of the sorted digests of each version (clock in its stable encoding, then a
/// tag and the value). Two replicas holding the same versions get the same digest.
pub fn siblings_digest(siblings: &Sibs) -> [u8; 32] {
    let mut parts: Vec<[u8; 32]> = siblings
        .iter()
        .map(|v| {
            let mut h = Sha256::new();
            h.update(v.clock.encode());
            match v.value.as_live() {
                Some(value) => {
                    h.update([1u8]);
                    h.update(value);
                }
                None => h.update([0u8]),
            }
            h.finalize().into()
        })
        .collect();
    parts.sort_unstable();
    let mut h = Sha256::new();
    for p in &parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Encodes a sibling set for a hint payload or a transfer.
pub fn encode_siblings(siblings: &Sibs) -> Vec<u8> {
    rmp_serde::to_vec(siblings).unwrap_or_default()
}

/// Decodes a sibling set; `None` if the bytes are not one.
pub fn decode_siblings(bytes: &[u8]) -> Option<Sibs> {
    rmp_serde::from_slice(bytes).ok()
}
