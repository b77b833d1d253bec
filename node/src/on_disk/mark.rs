//! The durable mark: what tells a store that lost durable writes from one cut short by a crash.
//!
//! Both engines recover from a crash by dropping what was not complete, without an error: after
//! a crash that is right (those writes were never made durable, so never acknowledged), after
//! damage it silently loses acknowledged writes. fjall's journal recovery takes an entry it
//! cannot read (a damaged tag or length, a file cut short) for the torn tail of a crash and
//! drops it with every batch after it; redb falls back to the commit before a newest one that
//! fails its checksums. So the stores number their batches or commits (fjall every batch, under
//! [`META_SEQ`] in the metadata keyspace; redb every commit), and after each fsync
//! that succeeded the store writes the number of the last batch it covered to a mark file
//! beside the database ([`MARK_FILE`] for fjall, [`REDB_MARK_FILE`] for redb), without an fsync
//! of its own: the mark never runs ahead of what is durable (a crash may leave it older, never
//! newer). An open that recovers a number below the mark lost writes that were durable (or runs
//! on an older copy of the database put back without its mark), and is refused.
//!
//! fjall numbered one batch in sixteen until the thirtieth session, and its check missed damage
//! that dropped only the batches after the last numbered one. Neither check sees a whole data
//! directory put back from an older copy, mark included.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Mutex;

use crate::redb_store::record::{self, Table};
use crate::store::StoreError;

/// The metadata key under which a batch stores its number.
pub(crate) const META_SEQ: &str = "fjall-batch-number";

/// The fjall store's mark file, beside the database's folder.
pub(crate) const MARK_FILE: &str = "durable-mark";

/// The redb store's mark file, beside the database's file.
pub(crate) const REDB_MARK_FILE: &str = "redb-durable-mark";

/// The record of batch number `seq`, as stored in fjall's metadata keyspace and in a mark file
/// (of either store: the record's name is the one fjall's batches use).
pub(crate) fn seal(seq: u64) -> Vec<u8> {
    record::seal(Table::Meta, META_SEQ.as_bytes(), &seq.to_be_bytes())
}

/// The number in a record [`seal`] made, if it verifies.
pub(crate) fn unseal(bytes: &[u8]) -> Option<u64> {
    let payload = record::open(Table::Meta, META_SEQ.as_bytes(), bytes).ok()?;
    Some(u64::from_be_bytes(payload.try_into().ok()?))
}

/// The mark's file and the highest number written to it: it never goes back (a sync job that
/// finishes after a later one, or the final sync of a store whose open was refused, would
/// otherwise lower it, and the next open would pass).
#[derive(Debug)]
pub(crate) struct Mark {
    file: Mutex<(File, u64)>,
}

impl Mark {
    /// Records that batch `seq` and every one before it are durable (no fsync: see the module
    /// docs), unless the mark is already there. A failed write only leaves an older mark, which
    /// checks less.
    pub(crate) fn write(&self, seq: u64) {
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        let (file, high) = &mut *guard;
        if seq <= *high {
            return;
        }
        match file.write_all_at(&seal(seq), 0) {
            Ok(()) => *high = seq,
            Err(e) => tracing::warn!(error = %e, "cannot write the durable mark"),
        }
    }
}

/// Opens (or creates) the mark `name` in `dir`; returns it with the number it holds (`None`: no
/// mark yet, or one that does not verify: logged, and the check is skipped).
pub(crate) fn open(dir: &Path, name: &str) -> Result<(Mark, Option<u64>), StoreError> {
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
    let bytes = std::fs::read(&path)
        .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", path.display())))?;
    let seq = if bytes.is_empty() {
        None
    } else {
        let seq = unseal(&bytes);
        if seq.is_none() {
            tracing::warn!(path = %path.display(), "the durable mark is damaged; not checked this time");
        }
        seq
    };
    let mark = Mark {
        file: Mutex::new((file, seq.unwrap_or(0))),
    };
    Ok((mark, seq))
}

/// An open of `engine` that recovered batch `recovered` where the mark `name` says `marked`
/// was durable: the store lost durable batches, `how` (the engine's way of losing them).
pub(crate) fn check(
    engine: &Path,
    name: &str,
    recovered: u64,
    marked: Option<u64>,
    how: &str,
) -> Result<(), StoreError> {
    match marked {
        Some(marked) if marked > recovered => Err(StoreError::Corrupt(format!(
            "{}: the store recovered batch {recovered}, but batch {marked} had been made \
             durable: {how}, and writes this node acknowledged are gone. If the files cannot \
             be restored, remove the data directory (or move it aside) and start the node \
             empty: its replicas refill it; if you put an older copy of the database back on \
             purpose, remove {name} beside it",
            engine.display(),
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mark only grows: a sync job that finishes after a later one, or the final sync of a
    /// store with a lower number, leaves it where it is.
    #[test]
    fn the_mark_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mark, found) = open(dir.path(), MARK_FILE).unwrap();
        assert_eq!(found, None, "no mark yet");
        mark.write(5);
        mark.write(3);
        drop(mark);
        let (mark, found) = open(dir.path(), MARK_FILE).unwrap();
        assert_eq!(found, Some(5));
        mark.write(4);
        drop(mark);
        assert_eq!(open(dir.path(), MARK_FILE).unwrap().1, Some(5));
    }

    /// A mark that does not verify is skipped, not trusted; an open that recovered less than a
    /// good one is refused, one that recovered as much passes.
    #[test]
    fn a_damaged_mark_is_skipped_and_a_good_one_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MARK_FILE), b"not a mark").unwrap();
        assert_eq!(open(dir.path(), MARK_FILE).unwrap().1, None);
        let check = |recovered, marked| check(dir.path(), MARK_FILE, recovered, marked, "lost");
        assert!(check(3, Some(4)).is_err());
        assert!(check(4, Some(4)).is_ok());
        assert!(check(0, None).is_ok());
    }
}
