//! Frozen encodings: every wire and stored format of the node, pinned byte for byte.
//!
//! Each table holds one representative value of every variant of a format, the bytes it must
//! encode to (hex, committed), and a check that those bytes decode back to the value. A peer of an
//! earlier version sends exactly these bytes, and a data directory of an earlier version holds
//! them: a vector that changes is a change that breaks old peers or old data.
//!
//! Where each format's version lives:
//!
//! | format | version | where | on an unknown version |
//! |---|---|---|---|
//! | frame header | none of its own: 4-byte big-endian length, frozen for every version | — | — |
//! | handshake frames | [`PROTOCOL_VERSION`] (3) | `version` of `Hello` and `Challenge` | [`HandshakeError::Version`] |
//! | client, node, peer frames and the messages inside | the handshake's [`PROTOCOL_VERSION`] (3) | negotiated once per connection | the handshake refuses the connection |
//! | sealed record (data, hints, meta) | byte 0: 1, or 2 for a typed sibling set | `redb_store::record` | `RecordError::Version` |
//! | hint record | its sealed record's version (1) | the `hints` table | as sealed records |
//! | the store's record format (objects as byte strings from 3) | meta `format`, u64 (3; reads 2) | `core` | [`StoreError::UnknownVersion`] |
//! | redb file format | meta `dynamo.format` (`dynamo-redb-2`) | `redb_store` | [`StoreError::UnknownVersion`] |
//! | manifest | `format` line, absent = 1 | `manifest` | [`StoreError::UnknownVersion`] |
//! | transfer checkpoint | byte 0 (1) | `core::transfer` | the transfer restarts from the range's start |
//! | ring state | the store's format (storage) and the protocol version (gossip) | meta `ring` | as those |
//!
//! To change a format on purpose: bump its version, keep a decoder for the old one (as sealed
//! records do for versions 1 and 2), add vectors for the new version and keep the old ones. Run
//! the failing test: it prints every changed vector with the bytes it now produces.
//!
//! [`PROTOCOL_VERSION`]: crate::runtime::frame::PROTOCOL_VERSION
//! [`HandshakeError::Version`]: crate::runtime::handshake::HandshakeError::Version
//! [`StoreError::UnknownVersion`]: crate::store::StoreError::UnknownVersion

mod storage;
mod wire;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` without the spaces and `|` that split a pinned vector into fields.
fn squeeze(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect()
}

/// A table of pinned vectors of one format; [`Table::finish`] fails with every changed one.
pub(crate) struct Table {
    format: &'static str,
    breaks: &'static str,
    failures: Vec<String>,
    names: Vec<&'static str>,
}

impl Table {
    /// A table of `format`'s vectors; `breaks` says what a change breaks and which version to
    /// bump.
    pub(crate) fn new(format: &'static str, breaks: &'static str) -> Self {
        Table {
            format,
            breaks,
            failures: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Pins `bytes` (what the format's encoder produced for vector `name`) to `expected`.
    pub(crate) fn bytes(&mut self, name: &'static str, bytes: &[u8], expected: &str) {
        assert!(!self.names.contains(&name), "two vectors named {name}");
        self.names.push(name);
        let actual = hex(bytes);
        if actual != squeeze(expected) {
            self.failures.push(format!(
                "{} vector `{name}` changed:\n  pinned: {}\n  now:    {actual}",
                self.format,
                squeeze(expected)
            ));
        }
    }

    /// Pins `text` (a text format's output for vector `name`) to `expected`.
    pub(crate) fn text(&mut self, name: &'static str, text: &str, expected: &str) {
        assert!(!self.names.contains(&name), "two vectors named {name}");
        self.names.push(name);
        if text != expected {
            self.failures.push(format!(
                "{} vector `{name}` changed:\n  pinned: {expected:?}\n  now:    {text:?}",
                self.format
            ));
        }
    }

    /// Pins the msgpack encoding of `value` (the runtime's and the stores' encoder) and checks
    /// that the pinned bytes decode back to `value` (compared by their `Debug` text, which every
    /// message type has).
    pub(crate) fn msgpack<T: Serialize + DeserializeOwned + std::fmt::Debug>(
        &mut self,
        name: &'static str,
        value: &T,
        expected: &str,
    ) {
        let encoded = rmp_serde::to_vec(value).expect("every vector encodes");
        self.bytes(name, &encoded, expected);
        self.check_decoded(name, value, expected, "pinned");
    }

    /// Checks that bytes an earlier version wrote (`pinned`, hex) still decode to `value`: a
    /// format's old version, kept readable after its encoder moved on.
    pub(crate) fn decodes<T: DeserializeOwned + std::fmt::Debug>(
        &mut self,
        name: &'static str,
        value: &T,
        pinned: &str,
    ) {
        assert!(!self.names.contains(&name), "two vectors named {name}");
        self.names.push(name);
        self.check_decoded(name, value, pinned, "old");
    }

    /// Records a failure unless `hex` decodes to `value` (compared by `Debug` text); `which`
    /// names the bytes in the message.
    fn check_decoded<T: DeserializeOwned + std::fmt::Debug>(
        &mut self,
        name: &'static str,
        value: &T,
        hex: &str,
        which: &str,
    ) {
        let bytes = decode_hex(&squeeze(hex));
        match crate::types::decode_msgpack::<T>(&bytes) {
            Ok(decoded) if format!("{decoded:?}") == format!("{value:?}") => {}
            Ok(decoded) => self.failures.push(format!(
                "{} vector `{name}`: the {which} bytes decode to {decoded:?}, not {value:?}",
                self.format
            )),
            Err(e) => self.failures.push(format!(
                "{} vector `{name}`: the {which} bytes no longer decode: {e}",
                self.format
            )),
        }
    }

    /// Records a failed check of vector `name` that is not a byte comparison.
    pub(crate) fn fail(&mut self, name: &'static str, why: String) {
        self.failures
            .push(format!("{} vector `{name}`: {why}", self.format));
    }

    /// Panics with every changed vector, if any.
    pub(crate) fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}\n\n{} of {} {} vectors changed. {}",
            self.failures.join("\n\n"),
            self.failures.len(),
            self.names.len(),
            self.format,
            self.breaks
        );
    }
}

/// The bytes of a hex string (without separators).
pub(crate) fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}
