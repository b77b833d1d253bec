//! What a hint or a transferred entry carries, and how its size is counted against the bounds.

/// An opaque value carried by a hint or a transfer batch. The node puts its encoded sibling set
/// here; this crate only needs its size, to enforce byte bounds and batch sizes.
pub trait Payload {
    /// Size in bytes counted against the configured byte limits.
    fn size(&self) -> usize;
}

impl Payload for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Payload for Box<[u8]> {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Payload for String {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Payload for () {
    fn size(&self) -> usize {
        0
    }
}
