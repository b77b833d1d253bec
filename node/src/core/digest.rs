//! Digests of sibling sets for the Merkle trees, and the byte forms stored and sent.

use sha2::{Digest, Sha256};

use crate::types::Sibs;

/// A digest of a key's versions: SHA-256 over every entry of the DVV set (sorted by actor): the
/// actor, its counter, and its values in dot order (a tag, the content type if any, then the
/// value). Timestamps are left
/// out: two replicas that hold the same dots and values get the same digest.
pub fn siblings_digest(siblings: &Sibs) -> [u8; 32] {
    let mut h = Sha256::new();
    for e in siblings.entries() {
        h.update(e.actor.0.to_be_bytes());
        h.update(e.actor.1.to_be_bytes());
        h.update(e.counter.to_be_bytes());
        h.update((e.values.len() as u64).to_be_bytes());
        for v in &e.values {
            match v.as_live() {
                // An object without a content type digests as the plain values of earlier versions.
                Some(object) => {
                    if let Some(t) = &object.content_type {
                        h.update([2u8]);
                        h.update((t.len() as u64).to_be_bytes());
                        h.update(t.as_bytes());
                    } else {
                        h.update([1u8]);
                    }
                    h.update((object.bytes.len() as u64).to_be_bytes());
                    h.update(&object.bytes);
                }
                None => h.update([0u8]),
            }
        }
    }
    h.finalize().into()
}

/// Encodes a sibling set for a hint payload or a transfer.
pub fn encode_siblings(siblings: &Sibs) -> Vec<u8> {
    rmp_serde::to_vec(siblings).unwrap_or_default()
}

/// Decodes a sibling set; `None` if the bytes are not one.
pub fn decode_siblings(bytes: &[u8]) -> Option<Sibs> {
    crate::types::decode_msgpack(bytes).ok()
}
