//! The stable byte encoding of a clock: what a client carries from a get to its next put.
//!
//! # Format (version 1)
//!
//! ```text
//! clock   = 0x01 count:varint entry{count}
//! entry   = actor counter:varint timestamp:varint
//! varint  = unsigned LEB128 in its shortest form, at most 10 bytes, no value above u64::MAX
//! ```
//!
//! Actors are written by their [`Actor`] implementation. Entries appear sorted by actor with unique
//! actors and non-zero counters; the decoder rejects anything else, including trailing bytes, so each
//! clock has exactly one encoding and `decode(encode(c)) == c`. The format is pinned by a test vector
//! in `tests/encoding.rs`.
//!
//! Decoding never panics and allocates at most in proportion to the input length. It checks that
//! the bytes are *a* well-formed clock, not that they are one this system issued: a client can still
//! forge a valid context claiming to have seen versions it never read (and so overwrite them). If
//! that matters, authenticate the bytes (for example an HMAC in the node) before decoding.

use crate::{Actor, Entry, VClock};

/// First byte of every encoded clock.
pub const FORMAT_VERSION: u8 = 1;

/// Why a byte string is not an encoded clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is empty or ends in the middle of a field.
    #[error("unexpected end of input at byte {at}: {needed} more byte(s) needed")]
    UnexpectedEnd {
        /// Offset where more bytes were needed.
        at: usize,
        /// How many more bytes were needed (at least).
        needed: u64,
    },
    /// The first byte is not a known format version.
    #[error("unknown format version {found} (expected {expected})")]
    UnknownVersion {
        /// Version byte found.
        found: u8,
        /// Version this decoder reads.
        expected: u8,
    },
    /// A varint is longer than 10 bytes, exceeds `u64::MAX`, or is not in its shortest form.
    #[error("malformed varint at byte {at}")]
    BadVarint {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// The entry count cannot fit in the remaining bytes.
    #[error("entry count {count} exceeds what {remaining} remaining byte(s) can hold")]
    TooManyEntries {
        /// Count announced.
        count: u64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// An actor's bytes are invalid for the actor type.
    #[error("invalid actor at byte {at}: {reason}")]
    InvalidActor {
        /// Offset of the actor (or of its invalid part).
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Entry `index` does not sort strictly after the previous one (unsorted or duplicate actor).
    #[error("entry {index}: actor not strictly greater than the previous one")]
    NotSorted {
        /// Position of the entry.
        index: usize,
    },
    /// Entry `index` has counter 0.
    #[error("entry {index}: counter is zero")]
    ZeroCounter {
        /// Position of the entry.
        index: usize,
    },
    /// Bytes remain after the last entry.
    #[error("{count} trailing byte(s) after the clock")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
}

/// A cursor over input bytes, handed to [`Actor::decode`]. Every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Offset of the next byte to read.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Reads one byte.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedEnd`] at the end of input.
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: 1,
            })?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `len` bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedEnd`] if fewer remain.
    pub fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: len.saturating_sub(self.remaining() as u64),
            })?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: len,
            })?;
        self.pos = end;
        Ok(out)
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint of at most 10 bytes that fits in a `u64`.
pub(crate) fn read_varint(input: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let at = input.position();
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = input.byte()?;
        let bits = u64::from(b & 0x7f);
        // The 10th byte may only carry the top bit of a u64.
        if i == 9 && bits > 1 {
            return Err(DecodeError::BadVarint { at });
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after the first is an overlong form of a shorter varint: refused,
            // so that every clock has exactly one encoding (found by fuzzing).
            if i > 0 && b == 0 {
                return Err(DecodeError::BadVarint { at });
            }
            return Ok(v);
        }
    }
    Err(DecodeError::BadVarint { at })
}

impl<A: Actor> VClock<A> {
    /// Encodes the clock in the stable [format](crate::encoding) (version 1).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.len() * 8);
        out.push(FORMAT_VERSION);
        write_varint(&mut out, self.len() as u64);
        for e in self.entries() {
            e.actor.encode(&mut out);
            write_varint(&mut out, e.counter);
            write_varint(&mut out, e.timestamp);
        }
        out
    }

    /// Decodes a clock produced by [`encode`](VClock::encode), typically a context a client sent
    /// back. Rejects anything that is not exactly one canonical encoded clock.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming what is wrong and where; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.byte()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let count = read_varint(&mut r)?;
        // Every entry takes at least two bytes (two varints), whatever the actor.
        if count > (r.remaining() / 2) as u64 {
            return Err(DecodeError::TooManyEntries {
                count,
                remaining: r.remaining(),
            });
        }
        let mut entries: Vec<Entry<A>> = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let actor = A::decode(&mut r)?;
            let counter = read_varint(&mut r)?;
            let timestamp = read_varint(&mut r)?;
            if counter == 0 {
                return Err(DecodeError::ZeroCounter { index });
            }
            if entries.last().is_some_and(|prev| prev.actor >= actor) {
                return Err(DecodeError::NotSorted { index });
            }
            entries.push(Entry {
                actor,
                counter,
                timestamp,
            });
        }
        if r.remaining() > 0 {
            return Err(DecodeError::TrailingBytes {
                count: r.remaining(),
            });
        }
        VClock::try_from(entries).map_err(|e| match e {
            crate::InvalidClock::NotSorted { index } => DecodeError::NotSorted { index },
            crate::InvalidClock::ZeroCounter { index } => DecodeError::ZeroCounter { index },
        })
    }
}
