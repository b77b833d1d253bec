//! Tests of the fjall store: the redb store's cases, on fjall's files.

use std::path::Path;

use super::*;
use crate::on_disk::contract::{self, key, sibs, value, values};
use fjall::KeyspaceCreateOptions;

/// Writes `n` keys, flushed into sorted tables (not only the journal).
fn fill(dir: &Path, n: usize) {
    let mut store = FjallStore::open(dir, Durability::Durable).unwrap();
    for i in 0..n {
        store.put(&key(i), &sibs(&value(i))).unwrap();
    }
    store.flush().unwrap();
    store.data.rotate_memtable_and_wait().unwrap();
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn writes_are_visible_at_once_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    contract::writes_are_visible_at_once_and_survive_reopen(dir.path(), |d| {
        FjallStore::open(d, Durability::Durable).unwrap()
    });
}

#[test]
fn buffered_mode_syncs_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    contract::buffered_mode_syncs_on_drop(dir.path(), |d, durability| {
        FjallStore::open(d, durability).unwrap()
    });
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    contract::second_open_of_same_dir_is_refused(dir.path(), |d| {
        FjallStore::open(d, Durability::Durable)
    });
}

#[test]
fn an_unreadable_set_aside_list_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    contract::an_unreadable_set_aside_list_fails_the_start(dir.path(), |d| {
        FjallStore::open(d, Durability::Durable)
    });
}

#[test]
fn one_flush_is_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
    let before = store.commits();
    store.flush().unwrap();
    assert_eq!(store.commits(), before);
    store.put(b"k", &sibs(b"v")).unwrap();
    store.put(b"k2", &sibs(b"v")).unwrap();
    store.flush().unwrap();
    assert_eq!(store.commits(), before + 1);
}

#[test]
fn a_flipped_bit_in_a_value_reads_as_missing_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 50);
    // Flip a bit in every copy of value 7 (journal and table; tables are lz4-compressed, so
    // the value may only be found in the journal: flip there and in the table's blocks).
    let mut all = Vec::new();
    files(&dir.path().join(FJALL_DIR), &mut all);
    let needle = value(7);
    let mut hit = 0;
    for f in &all {
        let mut bytes = std::fs::read(f).unwrap();
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(12).position(|w| w == &needle[..12]) {
            bytes[at + i + 5] ^= 0x04;
            hit += 1;
            at += i + 12;
        }
        std::fs::write(f, bytes).unwrap();
    }
    assert!(hit > 0, "the value is in the files");
    match FjallStore::open(dir.path(), Durability::Durable) {
        // fjall's own block or journal checksum caught it: a clear error.
        Err(e) => assert!(matches!(e, StoreError::Corrupt(_)), "{e}"),
        // Or ours: the record reads as missing, is counted, and the others are intact.
        Ok(store) => {
            assert!(store.get(&key(7)).unwrap().is_none());
            assert!(store.get(&key(8)).unwrap().is_some());
            // Dropped before the node took it (its start failed, or it crashed): named to the
            // node at the next open, which counts it as a lost copy; once that start flushed,
            // never again.
            drop(store);
            let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
            assert_eq!(store.take_set_aside().unwrap(), vec![key(7)]);
            store.flush().unwrap();
            drop(store);
            let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
            assert_eq!(store.take_set_aside().unwrap(), Vec::<Vec<u8>>::new());
        }
    }
}

#[test]
fn truncated_tables_are_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 500);
    let mut all = Vec::new();
    files(&dir.path().join(FJALL_DIR), &mut all);
    let mut cut = 0;
    for f in &all {
        let len = std::fs::metadata(f).unwrap().len();
        let in_tables = f.components().any(|c| c.as_os_str() == "tables");
        if in_tables && len > 64 {
            let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
            file.set_len(len / 2).unwrap();
            cut += 1;
        }
    }
    assert!(cut > 0, "no table file to truncate in {all:?}");
    let dir2 = dir.path().to_path_buf();
    let opened = std::thread::spawn(move || {
        let store = FjallStore::open(&dir2, Durability::Durable)?;
        // Some damage only shows on reading.
        store.scan(&mut |_, _| {})?;
        Ok::<_, StoreError>(())
    })
    .join()
    .expect("no panic");
    let err = opened.expect_err("a truncated table opened and read");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains(FJALL_DIR), "names the path: {err}");
}

/// Review, thirty-third session of issue 20: fjall deletes at open a keyspace folder that lacks
/// its version marker (it takes it for one whose creation was cut short), and a keyspace whose
/// folder is gone is created anew, empty: a store whose data keyspace lost its marker or its
/// folder opened with no keys and no key lost, and its node answered "not found" for every key
/// it held, counted toward R. Both are refused, and the refusal deletes nothing.
#[test]
fn a_keyspace_that_lost_its_marker_or_its_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    let keyspaces = dir.path().join(FJALL_DIR).join("keyspaces");
    let folders: Vec<std::path::PathBuf> = std::fs::read_dir(&keyspaces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "0"))
        .collect();
    assert!(!folders.is_empty(), "no keyspace folder in {keyspaces:?}");
    for folder in &folders {
        let marker = folder.join("current");
        let kept = std::fs::read(&marker).unwrap();
        std::fs::remove_file(&marker).unwrap();
        for _ in 0..2 {
            let err = FjallStore::open(dir.path(), Durability::Durable)
                .expect_err("a keyspace without its marker opened");
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
            assert!(folder.exists(), "the refusal deleted {folder:?}");
        }
        std::fs::write(&marker, kept).unwrap();
        let aside = dir.path().join("aside");
        std::fs::rename(folder, &aside).unwrap();
        let err = FjallStore::open(dir.path(), Durability::Durable)
            .expect_err("a store whose keyspace folder is gone opened");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        std::fs::rename(&aside, folder).unwrap();
    }
    let store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
    assert!(
        store.get(&key(3)).unwrap().is_some(),
        "restored, it opens whole"
    );
}

#[test]
fn an_emptied_or_replaced_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    let engine = dir.path().join(FJALL_DIR);
    std::fs::rename(&engine, dir.path().join("aside")).unwrap();
    let err = FjallStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("missing or empty"), "{err}");
    // Refusing created nothing: a second try refuses too.
    let err = FjallStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("missing or empty"), "{err}");
    // Another database in its place.
    let other = tempfile::tempdir().unwrap();
    fill(other.path(), 1);
    std::fs::rename(other.path().join(FJALL_DIR), &engine).unwrap();
    let err = FjallStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("not the database"), "{err}");
}

/// A database in another fjall format (fjall 2's, written by this project before it moved to
/// fjall 3) is refused as an unknown version, with what to do, not as damage.
#[test]
fn a_database_of_another_fjall_format_is_an_unknown_version() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    let marker = dir.path().join(FJALL_DIR).join("version");
    let mut bytes = std::fs::read(&marker).unwrap();
    assert_eq!(&bytes[..4], b"FJL\x03", "fjall 3's version marker");
    bytes[3] = 2;
    std::fs::write(&marker, &bytes).unwrap();
    let err = FjallStore::open(dir.path(), Durability::Durable).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::UnknownVersion { .. }), "{err:?}");
    for part in [FJALL_DIR, "fjall 2", "fjall 3", "migrate-v2-v3"] {
        assert!(text.contains(part), "{part:?} missing from {text:?}");
    }
}

#[test]
fn damaged_metadata_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        store.put_meta("epoch", b"x").unwrap();
        store.flush().unwrap();
        // A value written past the record format, as damage would leave it.
        store
            .meta
            .insert("epoch", b"\x01garbage-garbage".to_vec())
            .unwrap();
        store.db.persist(PersistMode::SyncAll).unwrap();
    }
    let err = FjallStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("\"epoch\" is damaged"), "{err}");
}

/// The row cache agrees with fjall through reads, overwrites, removals and a reopen: every get
/// answers what the last committed (or buffered) write left.
#[test]
fn reads_through_the_row_cache_see_every_committed_change() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.get(b"k").unwrap(), None); // cached as absent
        store.put(b"k", &sibs(b"1")).unwrap();
        store.flush().unwrap();
        assert_eq!(
            store.get(b"k").unwrap().map(|s| values(&s)),
            Some(vec![b"1".to_vec()])
        );
        store.put(b"k", &sibs(b"2")).unwrap();
        assert_eq!(
            store.get(b"k").unwrap().map(|s| values(&s)),
            Some(vec![b"2".to_vec()])
        );
        store.flush().unwrap();
        assert_eq!(
            store.get(b"k").unwrap().map(|s| values(&s)),
            Some(vec![b"2".to_vec()])
        );
        store.put(b"gone", &sibs(b"x")).unwrap();
        store.flush().unwrap();
        assert!(store.get(b"gone").unwrap().is_some());
        store.remove(b"gone").unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(b"gone").unwrap(), None);
    }
    let store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(
        store.get(b"k").unwrap().map(|s| values(&s)),
        Some(vec![b"2".to_vec()])
    );
    assert_eq!(store.get(b"gone").unwrap(), None);
}

/// Buffered mode hands each flush to the OS (review of issue 20's fifteenth session): a killed
/// process loses nothing it flushed, only a crash of the machine within the sync interval may.
/// Before, a flush stayed in fjall's journal buffer, in the process, until the background sync.
#[test]
fn a_buffered_flush_reaches_the_os_before_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(
        dir.path(),
        Durability::Buffered {
            sync_interval: std::time::Duration::from_secs(3600),
        },
    )
    .unwrap();
    // A first flush starts the interval's one background sync; the second must wait for the next.
    store.put(b"first", &sibs(b"v")).unwrap();
    store.flush().unwrap();
    let marker = b"a value only this test writes, 0123456789";
    store.put(b"k", &sibs(marker)).unwrap();
    store.flush().unwrap();
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    let found = all.iter().any(|p| {
        std::fs::read(p).is_ok_and(|bytes| bytes.windows(marker.len()).any(|w| w == marker))
    });
    assert!(found, "the flushed value is in no file");
    drop(store);
}

/// Review, twentieth session of issue 20: a hint key of the wrong length was noted as damaged
/// hint 0, so the next commit removed hint 0 (perhaps the only copy of an acknowledged write)
/// and left the malformed entry, found again at every open. The malformed entry goes; hint 0
/// stays.
#[test]
fn a_hint_key_of_the_wrong_length_is_removed_and_not_hint_0() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        store.put_hint(0, b"the first hint").unwrap();
        store.flush().unwrap();
        store.hints.insert("abc", b"junk".to_vec()).unwrap();
        store.db.persist(PersistMode::SyncAll).unwrap();
    }
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 1);
        assert_eq!(
            store.hints().unwrap(),
            vec![(0, b"the first hint".to_vec())]
        );
        store.flush().unwrap();
    }
    let store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(store.damaged(), 0, "the malformed entry is gone");
    assert_eq!(
        store.hints().unwrap(),
        vec![(0, b"the first hint".to_vec())]
    );
}

/// A durable store of `batches` batches of one put each, closed: its directory, its newest
/// journal (which holds the batches) and how many of that journal's bytes are used.
fn journal_of_batches(batches: usize) -> (tempfile::TempDir, std::path::PathBuf, usize) {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        for i in 0..batches {
            store.put(&key(i), &sibs(&value(i))).unwrap();
            store.flush().unwrap();
        }
    }
    let mut all = Vec::new();
    files(&dir.path().join(FJALL_DIR), &mut all);
    let journal = all
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jnl"))
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .cloned()
        .unwrap_or_else(|| panic!("no journal in {all:?}"));
    let bytes = std::fs::read(&journal).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    (dir, journal, used)
}

/// Review of the stores (twenty-second session): fjall's journal recovery takes a damaged or
/// cut entry for the torn tail of a crash and drops it with every batch after it, without an
/// error; the store opened with acknowledged writes gone and nothing said. The store now keeps a
/// mark of the last batch it knows durable beside the database, and an open that recovers less
/// than the mark is refused.
#[test]
fn a_journal_that_lost_durable_batches_is_refused() {
    let (dir, journal, used) = journal_of_batches(200);
    // Cut it at 40 % of what it holds.
    assert!(used > 1_000, "the journal holds the batches: {used} bytes");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len((used * 2 / 5) as u64)
        .unwrap();
    // Refused, and again at the next try (a refused open must not lower the mark).
    for attempt in 0..2 {
        match FjallStore::open(dir.path(), Durability::Durable) {
            Err(err) => {
                assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
            }
            Ok(store) => {
                let missing = (0..200)
                    .filter(|&i| store.get(&key(i)).ok().flatten().is_none())
                    .count();
                panic!("open {attempt}: {missing} of 200 acknowledged keys gone, and no error");
            }
        }
    }
}

/// Review of the stores (thirtieth session): only one batch in sixteen stored its number, so a
/// journal that lost its last few durable batches (damage near its end) recovered the same
/// number the mark held and opened with those acknowledged writes gone and nothing said. Every
/// batch stores its number now: losing the last one is refused too.
#[test]
fn a_journal_that_lost_only_its_last_durable_batches_is_refused() {
    let batches = 200;
    let (dir, journal, used) = journal_of_batches(batches);
    // Cut inside the batch before the last: two batches gone.
    let per_batch = used / batches;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len((used - per_batch * 3 / 2) as u64)
        .unwrap();
    match FjallStore::open(dir.path(), Durability::Durable) {
        Err(err) => assert!(matches!(err, StoreError::Corrupt(_)), "{err}"),
        Ok(store) => {
            let missing: Vec<usize> = (0..batches)
                .filter(|&i| store.get(&key(i)).ok().flatten().is_none())
                .collect();
            panic!("acknowledged keys {missing:?} gone, and no error");
        }
    }
}

/// Reopened after ordinary stops, a store passes its durable mark every time.
#[test]
fn ordinary_reopens_pass_the_durable_mark() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
        for i in 0..40 {
            store.put(&key(round * 40 + i), &sibs(&value(i))).unwrap();
            store.flush().unwrap();
        }
    }
    let store = FjallStore::open(dir.path(), Durability::Durable).unwrap();
    assert!(store.get(&key(119)).unwrap().is_some());
}

/// Reads the raw bytes under `key` in `data`, past the store.
fn read_raw(dir: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let db = Database::builder(dir.join(FJALL_DIR)).open().unwrap();
    let data = db.keyspace("data", KeyspaceCreateOptions::default).unwrap();
    data.get(key).unwrap().map(|v| v.to_vec())
}

#[test]
fn a_store_of_another_format_is_refused_before_its_records_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    contract::a_store_of_another_format_is_refused_before_its_records_are_checked(
        dir.path(),
        |d| FjallStore::open(d, Durability::Durable),
        |d, key| {
            // A record of a version byte this binary does not know.
            let sealed = record::seal_version(3, Table::Data, key, b"\x90");
            let db = Database::builder(d.join(FJALL_DIR)).open().unwrap();
            let data = db.keyspace("data", KeyspaceCreateOptions::default).unwrap();
            data.insert(key, sealed).unwrap();
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        },
        read_raw,
    );
}
