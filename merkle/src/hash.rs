//! The 256-bit hash values stored in tree nodes, and how keys and entries are hashed.
//!
//! Every hash is SHA-256. An entry `(key, digest)` is hashed with a domain tag and a length prefix
//! on the key, so `("ab", "c")` and `("a", "bc")` never share an input. A key's segment comes from
//! a separate, differently tagged hash of the key alone, so that the owner can place a key without
//! knowing its digest.

use core::fmt;
use core::ops::{BitXor, BitXorAssign};

use sha2::{Digest as _, Sha256};

/// Length in bytes of a [`struct@Hash`].
pub const HASH_LEN: usize = 32;

const ENTRY_TAG: &[u8] = b"dynamo-merkle/entry/v1";
const KEY_TAG: &[u8] = b"dynamo-merkle/key/v1";

/// A 256-bit node hash: the XOR of the entry hashes below that node.
///
/// The empty tree (and every empty subtree) has the all-zero hash, [`Hash::ZERO`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash of an empty node.
    pub const ZERO: Hash = Hash([0; HASH_LEN]);

    /// The hash of one `(key, digest)` entry: `SHA-256(tag || len(key) as u64 BE || key || digest)`.
    pub fn of_entry(key: &[u8], digest: &[u8]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(ENTRY_TAG);
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key);
        hasher.update(digest);
        Hash(hasher.finalize().into())
    }

    /// The hash of a key alone, used to place it in a segment: `SHA-256(tag || key)`.
    pub fn of_key(key: &[u8]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(KEY_TAG);
        hasher.update(key);
        Hash(hasher.finalize().into())
    }

    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Whether this is the hash of an empty node.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; HASH_LEN]
    }

    /// The first eight bytes read as a big-endian integer (used for segment placement).
    pub(crate) fn prefix_u64(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

impl BitXorAssign for Hash {
    fn bitxor_assign(&mut self, rhs: Hash) {
        for (a, b) in self.0.iter_mut().zip(rhs.0.iter()) {
            *a ^= *b;
        }
    }
}

impl BitXor for Hash {
    type Output = Hash;
    fn bitxor(mut self, rhs: Hash) -> Hash {
        self ^= rhs;
        self
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl fmt::Display for Hash {
    /// The first eight bytes in hex, enough to tell hashes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Hashes travel as byte strings (compact in MessagePack and bincode), not as 32 integers.
    use super::{Hash, HASH_LEN};
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for Hash {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }

    struct HashVisitor;

    impl<'de> Visitor<'de> for HashVisitor {
        type Value = Hash;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{HASH_LEN} bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Hash, E> {
            let bytes: [u8; HASH_LEN] = v
                .try_into()
                .map_err(|_| E::invalid_length(v.len(), &self))?;
            Ok(Hash(bytes))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hash, A::Error> {
            let mut bytes = [0u8; HASH_LEN];
            for (i, slot) in bytes.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(A::Error::invalid_length(HASH_LEN + 1, &self));
            }
            Ok(Hash(bytes))
        }
    }

    impl<'de> Deserialize<'de> for Hash {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
            deserializer.deserialize_bytes(HashVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_hash_separates_key_and_digest() {
        assert_ne!(Hash::of_entry(b"ab", b"c"), Hash::of_entry(b"a", b"bc"));
        assert_ne!(Hash::of_entry(b"a", b""), Hash::of_key(b"a"));
    }

    #[test]
    fn xor_is_an_involution() {
        let a = Hash::of_key(b"a");
        let b = Hash::of_key(b"b");
        assert_eq!(a ^ b ^ b, a);
        assert!((a ^ a).is_zero());
    }

    /// Pins the hash function: a change here changes every tree on disk and on the wire.
    #[test]
    fn test_vector() {
        let h = Hash::of_entry(b"key", b"digest");
        assert_eq!(h.to_string().len(), 16);
        assert_eq!(h, Hash::of_entry(b"key", b"digest"));
        let mut hasher = Sha256::new();
        hasher.update(b"dynamo-merkle/entry/v1");
        hasher.update([0, 0, 0, 0, 0, 0, 0, 3]);
        hasher.update(b"keydigest");
        assert_eq!(h.0, <[u8; 32]>::from(hasher.finalize()));
    }
}
