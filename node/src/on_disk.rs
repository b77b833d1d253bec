//! What both on-disk stores (redb and fjall) share: the checked record codec of a sibling set,
//! panics of a storage engine turned into errors, and small error and formatting helpers.

#[cfg(test)]
pub(crate) mod contract;
pub(crate) mod mark;

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::redb_store::record::{self, RecordError, Table};
use crate::store::StoreError;
use crate::types::Sibs;

/// An I/O failure, said with what was being done.
pub(crate) fn io(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{context}: {e}"))
}

/// Why a stored sibling set could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Damaged {
    /// The record failed verification.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The checksum holds but the payload does not decode (written by an incompatible version).
    #[error("the payload cannot be decoded: {0}")]
    Decode(String),
}

/// Decodes the record stored under `key` in `data`: the stored-record decoder that reads trust.
/// Any bytes at all give a value or an error, never a panic (fuzzed in the tests).
pub(crate) fn decode_sibs(key: &[u8], bytes: &[u8]) -> Result<Sibs, Damaged> {
    let payload = record::open(Table::Data, key, bytes)?;
    crate::types::decode_msgpack(payload).map_err(|e| Damaged::Decode(e.to_string()))
}

/// Seals `sibs` as the record stored under `key` in `data` (a typed record only when a version
/// has a content type).
pub(crate) fn encode_sibs(key: &[u8], sibs: &Sibs) -> Result<Vec<u8>, StoreError> {
    let payload = rmp_serde::to_vec(sibs).map_err(|e| io("encoding a sibling set", e))?;
    // A set without content types is byte for byte what earlier versions wrote.
    if sibs.live_values().any(|o| o.content_type.is_some()) {
        return Ok(record::seal_version(
            record::VERSION_TYPED,
            Table::Data,
            key,
            &payload,
        ));
    }
    Ok(record::seal(Table::Data, key, &payload))
}

/// Up to 64 bytes of `bytes` in hex, for logs and errors.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

thread_local! {
    /// Whether this thread is inside [`catch_panic`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The last panic caught on this thread, as the hook saw it (with its location).
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f` and turns a panic inside it into `Err(what the panic said)`.
///
/// The panic hook is chained once per process: outside `catch_panic` it calls the previous hook
/// unchanged; inside, it keeps the message for the error instead of printing it.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let message = payload_message(info.payload());
                let caught = match info.location() {
                    Some(at) => format!("{message}, at {}:{}", short_path(at.file()), at.line()),
                    None => message,
                };
                CAUGHT.with(|c| *c.borrow_mut() = Some(caught));
            } else {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| payload_message(payload.as_ref()))
    })
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// A source path from the crate's directory on (`redb-2.6.4/src/...`), not the registry's.
fn short_path(file: &str) -> &str {
    match file.find("/src/index.crates.io-") {
        Some(i) => file[i + "/src/".len()..]
            .split_once('/')
            .map(|(_, rest)| rest)
            .unwrap_or(file),
        None => file,
    }
}

/// A store found damaged: `path`, what was found there (`detail`), and what to do about it
/// (`remedy`, a clause in lower case that becomes its own sentence).
pub(crate) fn damaged(path: &Path, detail: std::fmt::Arguments<'_>, remedy: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{}: {detail}. {}",
        path.display(),
        capitalized(remedy)
    ))
}

/// `s` with its first letter in upper case.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_names_the_path_then_what_was_found_then_the_remedy_as_a_sentence() {
        let e = damaged(
            Path::new("/data/node-1"),
            format_args!("cannot open the database ({})", "eof"),
            "remove the data directory",
        );
        assert_eq!(
            e,
            StoreError::Corrupt(
                "/data/node-1: cannot open the database (eof). Remove the data directory".into()
            )
        );
    }
}
