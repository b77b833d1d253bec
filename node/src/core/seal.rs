//! Sealed contexts: the causal context a get or put hands its client is the key's clock and a
//! tag, so that a put or delete can only carry a context this cluster issued for that key.
//!
//! A context is client input that reaches causality: the versions it covers are superseded by
//! the write it comes with. Before contexts were sealed, one put with a made-up context could
//! claim counters no node had issued yet: a counter of a coordinator's next epoch made the dot it
//! minted too large for any later context to be taken (the key could never be deleted), and a
//! large counter of another node's actor covered that node's later acknowledged writes, which
//! every replica then dropped as superseded. A context of another key planted that key's actors.
//!
//! The tag is HMAC-SHA-256, cut to [`TAG_LEN`] bytes, over the user key and the clock's bytes,
//! under a key every node of the cluster derives from the peer secret ([`ContextSeal::from_secret`];
//! clients never hold it). A node given no secret (the simulator, tests) seals with
//! [`ContextSeal::unkeyed`]: its tags still bind a context to its key and catch damage, but
//! anyone can make them. An empty context is still taken, as a blind write's.
//!
//! ```
//! use dynamo_node::core::ContextSeal;
//! use dynamo_node::Clock;
//!
//! let seal = ContextSeal::from_secret(b"the cluster's peer secret");
//! let mut clock = Clock::new();
//! clock.increment((1, 7), 0);
//! let context = seal.seal(b"cart", &clock);
//! assert_eq!(seal.open(b"cart", &context), Ok(clock.clone()));
//! // Not for another key, nor from another cluster.
//! assert!(seal.open(b"wishlist", &context).is_err());
//! assert!(ContextSeal::unkeyed().open(b"cart", &context).is_err());
//! // Tools read the clock without the key.
//! assert_eq!(ContextSeal::clock_of(&context), Some(clock));
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::types::Clock;

/// Bytes of a context's tag, after its clock.
pub const TAG_LEN: usize = 16;

/// Why a context was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// Shorter than a tag.
    #[error("a context of {0} bytes is too short to be one this cluster issued")]
    Short(usize),
    /// Its tag is not this cluster's for this key: made up, damaged, of another key or from
    /// another cluster.
    #[error("the context was not issued by this cluster for this key (read the key again and write with the context that read returns)")]
    NotIssued,
    /// Its tag holds but its clock does not decode (a cluster of another format).
    #[error("the context's clock does not decode: {0}")]
    Malformed(String),
}

/// The key contexts are sealed with. See the [module docs](self).
#[derive(Clone)]
pub struct ContextSeal {
    /// HMAC keyed once: each tag clones it rather than preparing the key again (on every get
    /// and put).
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for ContextSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextSeal(..)")
    }
}

impl Default for ContextSeal {
    fn default() -> Self {
        ContextSeal::unkeyed()
    }
}

impl ContextSeal {
    /// The seal of a cluster whose nodes share `secret` (the peer secret).
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = Self::mac_with(secret);
        mac.update(b"dynamo-node context seal v1");
        ContextSeal {
            keyed: Self::mac_with(&mac.finalize().into_bytes()),
        }
    }

    /// The seal of nodes given no secret: binds contexts to their keys and catches damage, but
    /// anyone can make its tags.
    pub fn unkeyed() -> Self {
        ContextSeal::from_secret(&[])
    }

    fn mac_with(key: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA-256 takes keys of every length"),
        }
    }

    fn mac(&self, key: &[u8], clock: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(&(key.len() as u64).to_be_bytes());
        mac.update(key);
        mac.update(clock);
        mac
    }

    /// The context of `clock` for `key`: the clock's bytes and their tag.
    pub fn seal(&self, key: &[u8], clock: &Clock) -> Vec<u8> {
        let mut bytes = clock.encode();
        let tag = self.mac(key, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        bytes
    }

    /// The clock of `context`, if this seal made it for `key` (an empty context, a blind
    /// write's, is the empty clock).
    ///
    /// # Errors
    ///
    /// A context this seal did not make for `key`, or whose clock does not decode.
    pub fn open(&self, key: &[u8], context: &[u8]) -> Result<Clock, ContextError> {
        if context.is_empty() {
            return Ok(Clock::new());
        }
        let Some(split) = context.len().checked_sub(TAG_LEN) else {
            return Err(ContextError::Short(context.len()));
        };
        let (clock, tag) = context.split_at(split);
        self.mac(key, clock)
            .verify_truncated_left(tag)
            .map_err(|_| ContextError::NotIssued)?;
        Clock::decode(clock).map_err(|e| ContextError::Malformed(e.to_string()))
    }

    /// The clock a context carries, its tag not checked (for tools and the simulator's
    /// checker); `None` if it is not a context.
    pub fn clock_of(context: &[u8]) -> Option<Clock> {
        if context.is_empty() {
            return Some(Clock::new());
        }
        let split = context.len().checked_sub(TAG_LEN)?;
        Clock::decode(&context[..split]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    fn clock_of_entries(entries: &[(u8, u8, u8)]) -> Clock {
        let mut clock = Clock::new();
        for &(node, epoch, times) in entries {
            for _ in 0..times % 4 {
                clock.increment((u64::from(node % 5), u64::from(epoch % 3)), 0);
            }
        }
        clock
    }

    /// A sealed context opens to its clock under its key, and under no other key or seal.
    #[quickcheck]
    fn a_context_opens_only_for_its_key_and_cluster(
        entries: Vec<(u8, u8, u8)>,
        key: Vec<u8>,
        other: Vec<u8>,
    ) -> bool {
        let seal = ContextSeal::from_secret(b"peer secret");
        let clock = clock_of_entries(&entries);
        let context = seal.seal(&key, &clock);
        let mine = seal.open(&key, &context) == Ok(clock.clone());
        let others = (key == other || seal.open(&other, &context).is_err())
            && ContextSeal::unkeyed().open(&key, &context).is_err();
        mine && others && ContextSeal::clock_of(&context) == Some(clock)
    }

    /// Any byte of a context changed, it no longer opens.
    #[quickcheck]
    fn a_damaged_context_is_refused(entries: Vec<(u8, u8, u8)>, at: usize, flip: u8) -> bool {
        let seal = ContextSeal::unkeyed();
        let clock = clock_of_entries(&entries);
        let mut context = seal.seal(b"k", &clock);
        if flip == 0 {
            return true;
        }
        let at = at % context.len();
        context[at] ^= flip;
        seal.open(b"k", &context).is_err()
    }

    #[test]
    fn a_short_context_is_refused() {
        let seal = ContextSeal::unkeyed();
        assert_eq!(seal.open(b"k", &[1, 2, 3]), Err(ContextError::Short(3)));
    }
}
