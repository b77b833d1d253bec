//! Arcs of the ring.

use crate::Position;

/// A half-open arc of the ring, `(start, end]`, walking clockwise from `start`.
///
/// When `start >= end` the arc wraps past the top of the ring; `start == end` is the whole ring
/// (the range of a ring with a single token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyRange {
    /// Exclusive start.
    pub start: Position,
    /// Inclusive end.
    pub end: Position,
}

impl KeyRange {
    /// The arc `(start, end]`.
    pub fn new(start: Position, end: Position) -> Self {
        KeyRange { start, end }
    }

    /// Whether `pos` lies on this arc.
    ///
    /// ```
    /// use dynamo_ring::{KeyRange, Position};
    /// let r = KeyRange::new(Position(10), Position(20));
    /// assert!(r.contains(Position(20)) && !r.contains(Position(10)));
    /// let wrapping = KeyRange::new(Position(u128::MAX - 1), Position(5));
    /// assert!(wrapping.contains(Position(0)) && wrapping.contains(Position(u128::MAX)));
    /// ```
    pub fn contains(&self, pos: Position) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => self.start < pos && pos <= self.end,
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => pos > self.start || pos <= self.end,
        }
    }

    /// The number of positions on the arc, as a fraction of the ring (in `(0, 1]`).
    pub fn fraction(&self) -> f64 {
        if self.start == self.end {
            return 1.0;
        }
        let len = self.end.0.wrapping_sub(self.start.0);
        len as f64 / 2f64.powi(128)
    }

    /// Whether this arc ends exactly where `next` starts.
    pub fn is_followed_by(&self, next: &KeyRange) -> bool {
        self.end == next.start
    }
}
