//! Key positions on the ring and the hash functions that compute them.

use md5::{Digest, Md5};
use sha1::Sha1;

/// A point on the ring: a 128-bit unsigned integer, ordered clockwise.
///
/// Keys are placed by hashing them ([`HashFunction::position`]); a caller that already holds a
/// position (computed once and cached, or received from a peer) can use it directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Position(pub u128);

impl Position {
    /// The first position of the ring.
    pub const MIN: Position = Position(0);
    /// The last position of the ring.
    pub const MAX: Position = Position(u128::MAX);
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The hash that maps keys to positions.
///
/// Both take the first 16 bytes of the digest as a big-endian integer, so positions are stable
/// across machines and versions of this crate (a test pins known values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum HashFunction {
    /// MD5, as in the Dynamo paper (section 4.2). The default.
    #[default]
    Md5,
    /// SHA-1, as Riak and several Dynamo reimplementations use.
    Sha1,
}

impl HashFunction {
    /// The position of `key` on the ring.
    ///
    /// ```
    /// use dynamo_ring::{HashFunction, Position};
    /// // MD5("") = d41d8cd98f00b204e9800998ecf8427e
    /// assert_eq!(
    ///     HashFunction::Md5.position(b""),
    ///     Position(0xd41d8cd98f00b204e9800998ecf8427e)
    /// );
    /// ```
    pub fn position(self, key: &[u8]) -> Position {
        let mut bytes = [0u8; 16];
        match self {
            HashFunction::Md5 => bytes.copy_from_slice(&Md5::digest(key)),
            HashFunction::Sha1 => bytes.copy_from_slice(&Sha1::digest(key)[..16]),
        }
        Position(u128::from_be_bytes(bytes))
    }
}
