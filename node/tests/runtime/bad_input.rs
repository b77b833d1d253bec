//! Bad input on the wire.
