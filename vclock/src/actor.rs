//! The [`Actor`] trait: actor ids that have a stable byte encoding, so that clocks can be handed to
//! clients as opaque contexts (see [`VClock::encode`](crate::VClock::encode)).

use crate::encoding::{read_varint, write_varint, Reader};
use crate::DecodeError;

/// An actor id with a stable, self-delimiting byte encoding.
///
/// The causal operations of [`VClock`](crate::VClock) only need `Ord + Clone`; this trait is needed
/// for [`VClock::encode`](crate::VClock::encode) / [`VClock::decode`](crate::VClock::decode).
/// Implemented for unsigned integers (LEB128 varints, `u8` as one byte), `String` and `Vec<u8>`
/// (varint length then bytes) and tuples of actors up to three elements (fields in order), so the
/// node's `(node_id, epoch)` actor works out of the box.
///
/// An implementation must round-trip (`decode` of `encode` gives the value back and consumes
/// exactly the bytes written) and must return an error, never panic, on any input.
pub trait Actor: Ord + Clone {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one actor from the front of `input`, advancing it past the bytes read.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the bytes are not a valid encoding.
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! varint_actor {
    ($($t:ty),*) => {$(
        impl Actor for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                write_varint(out, u64::from(*self));
            }

            fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let at = input.position();
                let v = read_varint(input)?;
                <$t>::try_from(v).map_err(|_| DecodeError::InvalidActor {
                    at,
                    reason: concat!("integer out of range for ", stringify!($t)),
                })
            }
        }
    )*};
}

varint_actor!(u16, u32, u64);

impl Actor for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.byte()
    }
}

impl Actor for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.len() as u64);
        out.extend_from_slice(self);
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = read_varint(input)?;
        Ok(input.take(len)?.to_vec())
    }
}

impl Actor for String {
    fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = read_varint(input)?;
        let at = input.position();
        let bytes = input.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidActor {
            at,
            reason: "string actor is not UTF-8",
        })
    }
}

impl<X: Actor, Y: Actor> Actor for (X, Y) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((X::decode(input)?, Y::decode(input)?))
    }
}

impl<X: Actor, Y: Actor, Z: Actor> Actor for (X, Y, Z) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((X::decode(input)?, Y::decode(input)?, Z::decode(input)?))
    }
}
