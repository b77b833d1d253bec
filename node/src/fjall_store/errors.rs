//! How the fjall store turns fjall's errors into [`StoreError`]s, and its directory lock.

use std::path::Path;

use super::{LOCK_FILE, REBUILD};
use crate::on_disk::{damaged, io};
use crate::store::StoreError;

/// The I/O error behind `e`, if there is one.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// An error of fjall, as a [`StoreError`]: damage is [`StoreError::Corrupt`], the rest I/O.
pub(super) fn fjall_err(dir: &Path, context: &str, e: fjall::Error) -> StoreError {
    let is_damage = match &e {
        fjall::Error::Poisoned | fjall::Error::KeyspaceDeleted | fjall::Error::Locked => false,
        other => match io_kind(other) {
            Some(std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData) => true,
            Some(_) => false,
            None => true,
        },
    };
    if let fjall::Error::InvalidVersion(found) = &e {
        return StoreError::UnknownVersion {
            what: format!("the fjall database in {}", dir.display()),
            found: found.map_or_else(|| "unknown".to_string(), |v| format!("fjall {v}")),
            supported: "fjall 3".to_string(),
            advice: format!(
                "a data directory written by fjall 2 (this project before it moved to fjall 3) \
                 can be converted with fjall's migrate-v2-v3 tool; otherwise, {REBUILD}"
            ),
        };
    }
    if matches!(e, fjall::Error::Poisoned) {
        // fjall logs the failure that poisoned it, and then answers only this.
        return StoreError::Io(format!(
            "{}: {context}: fjall takes no more writes since an earlier write to its journal \
             failed (fjall's error, logged just before, says why: most often no space left on \
             the device). Free space or mend the disk, then start the node again: with durable \
             storage (the default) every write it acknowledged was synced before the failure",
            dir.display()
        ));
    }
    if is_damage {
        damaged(
            dir,
            format_args!("{context}: the files are damaged or truncated (fjall: {e})"),
            REBUILD,
        )
    } else {
        StoreError::Io(format!("{}: {context}: {e}", dir.display()))
    }
}

/// Locks the data directory for this process (fjall does not): a second node on the same
/// directory is refused instead of corrupting it. The lock goes with the file.
pub(super) fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(&format!("cannot open {}", path.display()), e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            StoreError::Io(format!(
                "{}: the database is already open (is another node using this data directory?)",
                dir.display()
            ))
        },
    )?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poisoned engine (a journal write failed, most often on a full disk) is named as such,
    /// with what to do, not only as fjall's one word.
    #[test]
    fn a_poisoned_engine_says_what_happened_and_what_to_do() {
        let e = fjall_err(
            Path::new("/data/fjall"),
            "syncing the journal",
            fjall::Error::Poisoned,
        );
        let text = e.to_string();
        assert!(matches!(e, StoreError::Io(_)), "{e:?}");
        for part in [
            "/data/fjall",
            "syncing the journal",
            "no space left",
            "start the node again",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text:?}");
        }
    }
}
