//! A small deterministic mutation engine: from one seed, the same corpus gives the same inputs.
//!
//! Each mutated input is a corpus entry with one to eight stacked edits: bit and byte flips,
//! random bytes, "interesting" integers (0, 1, 0x7f, 0x80, 0xff, `u16`/`u32`/`u64` extremes, in
//! both byte orders), msgpack markers with huge lengths (`0xdc`/`0xdd` arrays, `0xde`/`0xdf`
//! maps, `0xc4`-`0xc6` bins, `0xd9`-`0xdb` strings), long LEB128 varints, inserted, deleted,
//! duplicated and repeated ranges (which grow an input towards the size limit, the shape of the
//! worst decoding times), truncation, and splices with a second entry.

use crate::types::ReplayRng;
use rand::{Rng, SeedableRng};

/// Byte values that sit at edges: zero, one, sign bits, all ones, and msgpack markers.
const BYTES: [u8; 24] = [
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x90, 0x91, 0x9f, 0x80, 0x81, 0x8f, 0xa0, 0xbf, 0xc0, 0xc2,
    0xc3, 0xc1, 0xcc, 0xcd, 0xce, 0xcf, 0xd3, 0xe0,
];

/// Integers at edges, written in big or little endian over 2, 4 or 8 bytes.
const INTS: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX,
];

/// msgpack markers that announce a length, with the size of that length in bytes.
const LENGTH_MARKERS: [(u8, usize); 9] = [
    (0xdc, 2), // array 16
    (0xdd, 4), // array 32
    (0xde, 2), // map 16
    (0xdf, 4), // map 32
    (0xc4, 1), // bin 8
    (0xc5, 2), // bin 16
    (0xc6, 4), // bin 32
    (0xda, 2), // str 16
    (0xdb, 4), // str 32
];

/// The mutation engine: a seeded RNG and the size limit of the inputs it makes.
#[derive(Debug, Clone)]
pub struct Mutator {
    rng: ReplayRng,
    max_len: usize,
}

impl Mutator {
    /// A mutator whose every choice follows from `seed`, making inputs of at most `max_len`
    /// bytes.
    pub fn new(seed: u64, max_len: usize) -> Self {
        Mutator {
            rng: ReplayRng::seed_from_u64(seed),
            max_len: max_len.max(1),
        }
    }

    /// The RNG, for the caller's own choices (which entry to mutate next).
    pub fn rng(&mut self) -> &mut ReplayRng {
        &mut self.rng
    }

    /// A mutated copy of `base`; `other` is a second entry to splice from.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        let edits = 1 + self
            .rng
            .gen_range(0..8usize)
            .min(self.rng.gen_range(0..8usize));
        for _ in 0..edits {
            self.edit(&mut out, other);
        }
        out.truncate(self.max_len);
        out
    }

    fn pos(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            self.rng.gen_range(0..len)
        }
    }

    /// A random range of `bytes`: mostly short, sometimes up to the whole input.
    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.pos(len);
        let most = len - start;
        let n = if self.rng.gen_bool(0.8) {
            most.min(self.rng.gen_range(1..=16))
        } else {
            self.rng.gen_range(0..=most)
        };
        (start, start + n)
    }

    fn write_int(&mut self, out: &mut Vec<u8>, at: usize, v: u64, width: usize) {
        let be = self.rng.gen_bool(0.7);
        let bytes = if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let bytes = if be {
            &bytes[8 - width..]
        } else {
            &bytes[..width]
        };
        let end = (at + width).min(out.len());
        out.splice(at..end, bytes.iter().copied());
    }

    fn edit(&mut self, out: &mut Vec<u8>, other: &[u8]) {
        let len = out.len();
        match self.rng.gen_range(0..16u32) {
            0 if len > 0 => {
                let i = self.pos(len);
                out[i] ^= 1 << self.rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = self.pos(len);
                out[i] = self.rng.gen();
            }
            2 if len > 0 => {
                let i = self.pos(len);
                out[i] = BYTES[self.rng.gen_range(0..BYTES.len())];
            }
            3 => {
                let at = self.pos(len + 1);
                let v = INTS[self.rng.gen_range(0..INTS.len())];
                let width = [1, 2, 4, 8][self.rng.gen_range(0..4)];
                let v = if self.rng.gen_bool(0.2) {
                    v.wrapping_add(self.rng.gen_range(0..3)).wrapping_sub(1)
                } else {
                    v
                };
                self.write_int(out, at, v, width);
            }
            4 => {
                // A msgpack length marker announcing far more than follows (or exactly a small
                // amount), inserted or written over.
                let at = self.pos(len + 1);
                let (marker, width) = LENGTH_MARKERS[self.rng.gen_range(0..LENGTH_MARKERS.len())];
                let n = match self.rng.gen_range(0..3) {
                    0 => u64::MAX,
                    1 => self.rng.gen_range(0..64),
                    _ => self.rng.gen(),
                };
                let mut bytes = vec![marker];
                let be = n.to_be_bytes();
                bytes.extend_from_slice(&be[8 - width..]);
                if self.rng.gen_bool(0.5) {
                    out.splice(at..at, bytes);
                } else {
                    let end = (at + bytes.len()).min(len);
                    out.splice(at..end, bytes);
                }
            }
            5 => {
                // A long or overlong LEB128 varint (contexts).
                let at = self.pos(len + 1);
                let n = self.rng.gen_range(1..=12);
                let mut bytes = vec![0xff; n];
                bytes.push(self.rng.gen_range(0..4));
                out.splice(at..at, bytes);
            }
            6 => {
                let at = self.pos(len + 1);
                let n = self.rng.gen_range(1..=32);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.gen()).collect();
                out.splice(at..at, bytes);
            }
            7 | 8 if len > 0 => {
                let (a, b) = self.range(len);
                out.drain(a..b);
            }
            9 if len > 0 => {
                // Duplicate a range somewhere else.
                let (a, b) = self.range(len);
                let piece = out[a..b].to_vec();
                let at = self.pos(len + 1);
                out.splice(at..at, piece);
            }
            10 if len > 0 => {
                // Repeat a range many times in place: grows lists and nests towards the limit.
                let (a, b) = self.range(len.min(64));
                let piece = out[a..b].to_vec();
                if piece.is_empty() {
                    return;
                }
                let room = self.max_len.saturating_sub(len) / piece.len();
                let most = 1usize << self.rng.gen_range(1..16);
                let times = self.rng.gen_range(0..=room.min(most));
                let grown: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * times)
                    .collect();
                out.splice(b..b, grown);
            }
            11 if len > 0 => {
                let at = self.pos(len);
                out.truncate(at);
            }
            12 | 13 if !other.is_empty() => {
                // Splice: a prefix of this entry, then a suffix of the other (or a piece of it
                // inserted).
                let (a, b) = self.range(other.len());
                let at = self.pos(len + 1);
                if self.rng.gen_bool(0.5) {
                    out.truncate(at);
                    out.extend_from_slice(&other[a..]);
                } else {
                    out.splice(at..at, other[a..b].iter().copied());
                }
            }
            14 if len > 1 => {
                // Swap two bytes (reorders fields, actors).
                let i = self.pos(len);
                let j = self.pos(len);
                out.swap(i, j);
            }
            _ if len > 0 => {
                // Add or subtract a small amount at a byte (off-by-one lengths and counters).
                let i = self.pos(len);
                let d: u8 = self.rng.gen_range(1..=4);
                out[i] = if self.rng.gen_bool(0.5) {
                    out[i].wrapping_add(d)
                } else {
                    out[i].wrapping_sub(d)
                };
            }
            _ => out.push(self.rng.gen()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs() {
        let base = b"\x92\xa3abc\xc4\x02xy".to_vec();
        let mut a = Mutator::new(7, 1024);
        let mut b = Mutator::new(7, 1024);
        for _ in 0..1000 {
            assert_eq!(a.mutate(&base, b"other"), b.mutate(&base, b"other"));
        }
    }

    #[test]
    fn inputs_stay_under_the_limit_and_vary() {
        let mut m = Mutator::new(1, 300);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            let out = m.mutate(b"\x81\xa1k\x93\x01\x02\x03", b"\x91\xc0");
            assert!(out.len() <= 300);
            seen.insert(out);
        }
        assert!(seen.len() > 2000, "{}", seen.len());
    }
}
