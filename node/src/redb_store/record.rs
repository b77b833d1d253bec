//! The checksummed record format of the redb store: every value in the `data`, `hints` and
//! `meta` tables is a *sealed* record.
//!
//! ```text
//! byte 0      format version: 1, or 2 for a sibling set holding an object with a content type
//!             (its payload uses the map form of `types::Object`, which version 1 readers cannot
//!             decode: the version byte makes them refuse it as such rather than as damage)
//! bytes 1..9  checksum: the first 8 bytes (big-endian) of
//!             SHA-256("dynamo-record" · version · table · len(name) as u64 BE · name · payload)
//! bytes 9..   payload (a sibling set or hint record encoded with rmp-serde; a metadata value)
//! ```
//!
//! The checksum covers the entry's table and name (its key) as well as the payload, so a flipped
//! bit anywhere in a record, or a record found under another key, fails verification. redb keeps
//! its own page checksums, but checks them only when it repairs a file, never on a read: without
//! this one a damaged value would be served as if it were true.
//!
//! SHA-256 because the workspace already depends on it (and it uses the CPU's SHA extensions
//! where present); 64 bits of it make an undetected random corruption practically impossible.

use sha2::{Digest, Sha256};

/// The version of every record but a sibling set with content types.
const VERSION: u8 = 1;
/// The version of a sibling set holding an object with a content type.
pub(crate) const VERSION_TYPED: u8 = 2;
/// Version byte plus checksum.
pub(crate) const HEADER: usize = 9;

/// The table an entry lives in: part of what the checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// Key → sibling set.
    Data,
    /// Hint id → hint record.
    Hints,
    /// Name → metadata value.
    Meta,
}

impl Table {
    fn tag(self) -> u8 {
        match self {
            Table::Data => 1,
            Table::Hints => 2,
            Table::Meta => 3,
        }
    }

    /// The table's name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Data => "data",
            Table::Hints => "hints",
            Table::Meta => "meta",
        }
    }
}

/// Why a stored record failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// Fewer bytes than the header.
    #[error("record of {len} bytes is shorter than its {HEADER}-byte header")]
    Short {
        /// The record's length.
        len: usize,
    },
    /// A version byte this code does not know.
    #[error("unknown record version {0} (this version reads {VERSION} and {VERSION_TYPED})")]
    Version(u8),
    /// The bytes are not the ones that were written.
    #[error("checksum mismatch (stored {stored:016x}, computed {computed:016x})")]
    Checksum {
        /// The checksum in the header.
        stored: u64,
        /// The checksum of the bytes found.
        computed: u64,
    },
}

fn checksum(version: u8, table: Table, name: &[u8], payload: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"dynamo-record");
    h.update([version, table.tag()]);
    h.update((name.len() as u64).to_be_bytes());
    h.update(name);
    h.update(payload);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The record storing `payload` under `name` in `table`.
pub(crate) fn seal(table: Table, name: &[u8], payload: &[u8]) -> Vec<u8> {
    seal_version(VERSION, table, name, payload)
}

/// [`seal`] with a given version byte ([`VERSION_TYPED`] for a sibling set with content types).
pub(crate) fn seal_version(version: u8, table: Table, name: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(version);
    out.extend_from_slice(&checksum(version, table, name, payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a record read from `table` under `name`, if it verifies.
pub(crate) fn open<'a>(
    table: Table,
    name: &[u8],
    record: &'a [u8],
) -> Result<&'a [u8], RecordError> {
    if record.len() < HEADER {
        return Err(RecordError::Short { len: record.len() });
    }
    let version = record[0];
    if version != VERSION && !(version == VERSION_TYPED && table == Table::Data) {
        return Err(RecordError::Version(version));
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&record[1..HEADER]);
    let stored = u64::from_be_bytes(stored);
    let payload = &record[HEADER..];
    let computed = checksum(version, table, name, payload);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = seal(Table::Data, b"k", b"payload");
        assert_eq!(r.len(), HEADER + 7);
        assert_eq!(open(Table::Data, b"k", &r), Ok(&b"payload"[..]));
        assert_eq!(
            open(Table::Data, b"k", &seal(Table::Data, b"k", b"")),
            Ok(&b""[..])
        );
    }

    /// A frozen record: a change of the format fails here before it fails on someone's disk.
    #[test]
    fn format_is_frozen() {
        let r = seal(Table::Meta, b"epoch", &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(r[0], 1);
        assert_eq!(r.len(), HEADER + 8);
        let again = seal(Table::Meta, b"epoch", &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(r, again);
        let hex: String = r[1..HEADER].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, FROZEN_CHECKSUM, "the record format changed");
    }

    const FROZEN_CHECKSUM: &str = "839f04b6a400178e";

    #[test]
    fn every_flipped_bit_is_detected() {
        let r = seal(Table::Data, b"key", b"some value");
        for i in 0..r.len() * 8 {
            let mut bad = r.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(open(Table::Data, b"key", &bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn a_record_under_another_name_or_table_is_rejected() {
        let r = seal(Table::Data, b"a", b"v");
        assert!(matches!(
            open(Table::Data, b"b", &r),
            Err(RecordError::Checksum { .. })
        ));
        assert!(open(Table::Hints, b"a", &r).is_err());
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert_eq!(
            open(Table::Data, b"k", b""),
            Err(RecordError::Short { len: 0 })
        );
        assert_eq!(
            open(Table::Data, b"k", &[1; 8]),
            Err(RecordError::Short { len: 8 })
        );
        let mut r = seal(Table::Data, b"k", b"v");
        r[0] = 3;
        assert_eq!(open(Table::Data, b"k", &r), Err(RecordError::Version(3)));
        let mut r = seal(Table::Meta, b"k", b"v");
        r[0] = VERSION_TYPED;
        assert_eq!(
            open(Table::Meta, b"k", &r),
            Err(RecordError::Version(VERSION_TYPED))
        );
    }

    #[test]
    fn a_typed_record_opens_and_its_version_is_checked() {
        let r = seal_version(VERSION_TYPED, Table::Data, b"k", b"v");
        assert_eq!(r[0], 2);
        assert_eq!(open(Table::Data, b"k", &r), Ok(&b"v"[..]));
        // The version byte is covered by the checksum: relabelling a record fails.
        let mut relabelled = r.clone();
        relabelled[0] = VERSION;
        assert!(matches!(
            open(Table::Data, b"k", &relabelled),
            Err(RecordError::Checksum { .. })
        ));
    }
}
