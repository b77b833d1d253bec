//! Tests of the redb store: records, damage, crashes, truncation and upgrades.

use super::*;
use crate::on_disk::contract::{self, key, sibs, value, values};
use crate::on_disk::mark::REDB_MARK_FILE;
use dynamo_vclock::Value;

#[test]
fn a_content_type_is_stored_in_a_version_2_record_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut typed = Sibs::new();
    let ctx = typed.context();
    let object = crate::types::Object::typed(b"{}".to_vec(), Some("application/json".into()));
    typed.put(&ctx, (1, 0), 0, Value::Live(object.clone()));
    assert_eq!(encode_sibs(b"t", &typed).unwrap()[0], 2);
    assert_eq!(encode_sibs(b"p", &sibs(b"plain")).unwrap()[0], 1);
    {
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        store.put(b"t", &typed).unwrap();
        store.put(b"p", &sibs(b"plain")).unwrap();
        store.flush().unwrap();
    }
    let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    let back = store.get(b"t").unwrap().expect("stored");
    assert_eq!(back.live_values().collect::<Vec<_>>(), vec![&object]);
    assert_eq!(
        values(&store.get(b"p").unwrap().unwrap()),
        vec![b"plain".to_vec()]
    );
}

#[test]
fn writes_are_visible_at_once_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    contract::writes_are_visible_at_once_and_survive_reopen(dir.path(), |d| {
        RedbStore::open(d, Durability::Durable).unwrap()
    });
}

#[test]
fn buffered_mode_syncs_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    contract::buffered_mode_syncs_on_drop(dir.path(), |d, durability| {
        RedbStore::open(d, durability).unwrap()
    });
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    contract::second_open_of_same_dir_is_refused(dir.path(), |d| {
        RedbStore::open(d, Durability::Durable)
    });
}

#[test]
fn an_unreadable_set_aside_list_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    contract::an_unreadable_set_aside_list_fails_the_start(dir.path(), |d| {
        RedbStore::open(d, Durability::Durable)
    });
}

#[test]
fn flush_without_writes_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    let created = store.commits();
    store.flush().unwrap();
    assert_eq!(store.commits(), created);
    store.put(b"k", &sibs(b"v")).unwrap();
    store.put(b"k2", &sibs(b"v")).unwrap();
    store.flush().unwrap();
    assert_eq!(
        store.commits(),
        created + 1,
        "one group commit for the whole batch"
    );
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0xAB; 8192]).unwrap();
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

/// Writes raw bytes under `key` in `data`, as damage or another version would leave them.
fn write_raw(dir: &Path, key: &[u8], bytes: &[u8]) {
    let db = Database::create(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(DATA).unwrap().insert(key, bytes).unwrap();
    txn.commit().unwrap();
}

#[test]
fn unverifiable_value_is_missing_counted_and_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3);
    write_raw(dir.path(), b"k", b"\xc1not a record");
    let sealed_garbage = record::seal(Table::Data, b"k2", b"\xc1not msgpack");
    write_raw(dir.path(), b"k2", &sealed_garbage);
    {
        let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 2);
        assert_eq!(store.pending(), 0, "removed by the open");
        // Dropped before the node took them (its start failed, or it crashed).
    }
    {
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        assert_eq!(store.damaged(), 0, "gone from the file");
        // Still named to the node, which counts them as lost copies; once.
        assert_eq!(
            store.take_set_aside().unwrap(),
            vec![b"k".to_vec(), b"k2".to_vec()]
        );
        assert_eq!(store.take_set_aside().unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(store.get(b"k").unwrap(), None);
        assert_eq!(store.get(b"k2").unwrap(), None);
        assert!(store.get(&key(1)).unwrap().is_some());
        // The node persisted them its own way: the store forgets them with that flush.
        store.flush().unwrap();
    }
    let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(store.take_set_aside().unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn damage_found_by_a_read_is_removed_at_the_next_commit_unless_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    for k in [&b"a"[..], b"b"] {
        store.put(k, &sibs(b"v")).unwrap();
    }
    store.flush().unwrap();
    // Damage both records behind the store's back (as a bad disk would).
    {
        let txn = store.db.as_ref().unwrap().begin_write().unwrap();
        {
            let mut t = txn.open_table(DATA).unwrap();
            for k in [&b"a"[..], b"b"] {
                let mut bytes = t.get(k).unwrap().unwrap().value().to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                t.insert(k, bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"a").unwrap(), None, "a second read");
    let mut seen = Vec::new();
    store.scan(&mut |k, _| seen.push(k.to_vec())).unwrap();
    assert!(seen.is_empty());
    assert_eq!(store.damaged(), 2, "each damaged record counted once");
    assert_eq!(
        store.pending(),
        2,
        "their removal waits for the next commit"
    );
    // Read repair rewrites one of them before the commit.
    store.put(b"b", &sibs(b"repaired")).unwrap();
    store.flush().unwrap();
    assert_eq!(store.pending(), 0);
    drop(store);
    let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(store.damaged(), 0);
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(
        values(&store.get(b"b").unwrap().unwrap()),
        vec![b"repaired".to_vec()]
    );
}

#[test]
fn damaged_hint_is_skipped_counted_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        store.put_hint(1, b"hint one").unwrap();
        store.put_hint(2, b"hint two").unwrap();
    }
    flip_bit_in(dir.path(), b"hint two", 3);
    let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(store.damaged(), 1);
    assert_eq!(store.hints().unwrap(), vec![(1, b"hint one".to_vec())]);
}

#[test]
fn damaged_metadata_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
        store
            .put_meta("node-id", b"\x00\x00\x00\x00\x00\x00\x00\x07")
            .unwrap();
        store.flush().unwrap();
        // A later commit that leaves the metadata page shared by both commit slots.
        store.put(b"k", &sibs(b"v")).unwrap();
    }
    let db = Database::create(dir.path().join(DB_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(META).unwrap();
        let mut bytes = t.get("node-id").unwrap().unwrap().value().to_vec();
        bytes[12] ^= 0x10;
        t.insert("node-id", bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
    assert!(msg.contains("node-id") && msg.contains("damaged"), "{msg}");
}

/// Copies the database and manifest of `from` (open: a crash image) into `to`.
fn crash_image(from: &Path, to: &Path) {
    for f in [DB_FILE, MANIFEST_FILE] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn recovery_after_a_crash_keeps_every_commit() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut store = RedbStore::open(live.path(), Durability::Durable).unwrap();
    store.put(b"k", &sibs(b"v")).unwrap();
    store.flush().unwrap();
    crash_image(live.path(), image.path());
    let recovered = RedbStore::open(image.path(), Durability::Durable).unwrap();
    assert!(!recovered.lost_commits());
    assert!(recovered.is_durable());
    assert!(recovered.get(b"k").unwrap().is_some());
}

/// Twenty keys in one commit, then a commit of the metadata entry `after`, and a crash image
/// of them in `image` whose newest commit is damaged (`after`'s page, which only that commit
/// references: a torn write), so that redb's recovery falls back a commit. The live store is
/// left open.
fn torn_newest_commit(live: &Path, image: &Path) -> RedbStore {
    let mut store = RedbStore::open(live, Durability::Durable).unwrap();
    for i in 0..20 {
        store.put(&key(i), &sibs(&value(i))).unwrap();
    }
    store.flush().unwrap();
    store.put_meta("after", b"x").unwrap();
    store.flush().unwrap();
    crash_image(live, image);
    flip_bit_in(image, b"after", 2);
    store
}

#[test]
fn rollback_after_a_crash_is_reported_and_retires_durability() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _store = torn_newest_commit(live.path(), image.path());
    let recovered = RedbStore::open(image.path(), Durability::Durable).unwrap();
    assert!(recovered.lost_commits());
    assert!(!recovered.is_durable(), "the node must retire its epochs");
    assert_eq!(recovered.get_meta("after").unwrap(), None, "rolled back");
    assert!(
        recovered.get(&key(7)).unwrap().is_some(),
        "the commit before is whole"
    );
}

#[test]
fn manifest_is_written_and_another_database_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fill(a.path(), 5);
    fill(b.path(), 5);
    let text = std::fs::read_to_string(a.path().join(MANIFEST_FILE)).unwrap();
    assert!(text.contains("instance"), "{text}");
    std::fs::copy(b.path().join(DB_FILE), a.path().join(DB_FILE)).unwrap();
    let err = RedbStore::open(a.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("not the database"), "{err}");
    // A database of a version without a manifest is adopted: its manifest is written.
    std::fs::remove_file(b.path().join(MANIFEST_FILE)).unwrap();
    drop(RedbStore::open(b.path(), Durability::Durable).unwrap());
    assert!(b.path().join(MANIFEST_FILE).exists());
}

#[test]
fn format_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut data = txn.open_table(DATA).unwrap();
            for i in 0..(UPGRADE_CHUNK + 10) {
                let bytes = rmp_serde::to_vec(&sibs(&value(i))).unwrap();
                data.insert(key(i).as_slice(), bytes.as_slice()).unwrap();
            }
            txn.open_table(HINTS)
                .unwrap()
                .insert(3, &b"hint"[..])
                .unwrap();
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(FORMAT_KEY, FORMAT_V1).unwrap();
            meta.insert("epoch", &b"\x00\x00\x00\x00\x00\x00\x00\x05"[..])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(store.damaged(), 0);
    for i in [0, UPGRADE_CHUNK - 1, UPGRADE_CHUNK, UPGRADE_CHUNK + 9] {
        assert_eq!(
            values(&store.get(&key(i)).unwrap().unwrap()),
            vec![value(i)]
        );
    }
    assert_eq!(store.hints().unwrap(), vec![(3, b"hint".to_vec())]);
    assert_eq!(
        store.get_meta("epoch").unwrap(),
        Some(vec![0, 0, 0, 0, 0, 0, 0, 5])
    );
    assert_eq!(store.get_meta(FORMAT_KEY).unwrap(), Some(FORMAT.to_vec()));
}

/// The stored-record decoder against random and mutated bytes: never a panic, and never a
/// value from bytes that are not the ones written.
#[test]
fn record_decoder_fuzz() {
    use rand::{Rng, SeedableRng};
    let mut rng = crate::types::ReplayRng::seed_from_u64(0xD1_5EA5E);
    let samples: Vec<(Vec<u8>, Sibs)> = (0..8)
        .map(|i| {
            let mut s = sibs(&value(i));
            let ctx = Sibs::new().context();
            s.put(&ctx, (2, 9), 5, Value::Live(vec![i as u8; i * 7].into()));
            s.put(&s.context(), (3, 1), 6, Value::Tombstone);
            (key(i), s)
        })
        .collect();
    let mut accepted_garbage = 0;
    for round in 0..20_000 {
        let (k, s) = &samples[round % samples.len()];
        let good = encode_sibs(k, s).unwrap();
        let payload = good[record::HEADER..].to_vec();
        let case = round % 4;
        let bytes = match case {
            // Random bytes.
            0 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
            // A sealed record with a few mutations (flips, overwrites, cuts, growth).
            1 => mutate(&mut rng, good.clone()),
            // A valid checksum over a mutated payload: the payload decoder itself.
            2 => record::seal(Table::Data, k, &mutate(&mut rng, payload)),
            // A valid checksum over random bytes.
            _ => {
                let junk: Vec<u8> = (0..rng.gen_range(0..96)).map(|_| rng.gen()).collect();
                record::seal(Table::Data, k, &junk)
            }
        };
        let decoded = decode_sibs(k, &bytes);
        let _ = record::open(Table::Hints, k, &bytes);
        let _ = record::open(Table::Meta, k, &bytes);
        match (case, decoded) {
            (1, Ok(d)) => {
                assert_eq!(bytes, good, "round {round}: damaged bytes accepted");
                assert_eq!(&d, s);
            }
            (0, Ok(_)) => accepted_garbage += 1,
            _ => {}
        }
    }
    assert_eq!(accepted_garbage, 0, "random bytes passed the checksum");
}

fn mutate(rng: &mut impl rand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..4) {
            0 if !bytes.is_empty() => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !bytes.is_empty() => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            2 => {
                let n = rng.gen_range(0..=bytes.len());
                bytes.truncate(n);
            }
            _ => {
                for _ in 0..rng.gen_range(1..8) {
                    bytes.push(rng.gen());
                }
            }
        }
    }
    bytes
}

#[test]
fn data_dir_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = RedbStore::open(&file, Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("data directory"), "{err}");
}

/// Writes `n` keys `key-i` (values `value-i-` padded to 200 bytes) in one commit, then a
/// metadata entry in a second one, so that the data pages are shared by both commit slots.
fn fill(dir: &Path, n: usize) {
    let mut store = RedbStore::open(dir, Durability::Durable).unwrap();
    for i in 0..n {
        store.put(&key(i), &sibs(&value(i))).unwrap();
    }
    store.flush().unwrap();
    store.put_meta("after", b"x").unwrap();
    store.flush().unwrap();
}

fn truncate(dir: &Path, fraction: f64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(DB_FILE))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len((len as f64 * fraction) as u64).unwrap();
}

/// Opens in a separate thread so that a panic inside is a test failure with a message, not
/// an abort of the harness.
fn open_catching(dir: &Path) -> Result<Result<RedbStore, StoreError>, String> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || RedbStore::open(&dir, Durability::Durable))
        .join()
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

#[test]
fn truncated_to_half_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 150);
    truncate(dir.path(), 0.5);
    let err = match open_catching(dir.path()) {
        Err(panic) => panic!("open panicked: {panic}"),
        Ok(Ok(_)) => panic!("a truncated database opened"),
        Ok(Err(e)) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
    assert!(msg.contains(DB_FILE) && msg.contains("truncated"), "{msg}");
    assert!(
        msg.contains("redb-2") && msg.contains("page_manager.rs"),
        "where redb gave up: {msg}"
    );
}

#[test]
fn truncated_to_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 150);
    truncate(dir.path(), 0.0);
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(DB_FILE) && msg.contains("empty"), "{msg}");
    // Refusing must not have initialised the empty file either: a second try refuses too.
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn missing_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(DB_FILE) && msg.contains("missing"), "{msg}");
}

/// Flips one bit in the first copy of `needle` in the database file.
fn flip_bit_in(dir: &Path, needle: &[u8], offset_in_needle: usize) {
    let path = dir.join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("value not found in the file");
    bytes[at + offset_in_needle] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn flipped_bit_in_a_value_reads_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 150);
    flip_bit_in(dir.path(), &value(42)[..12], 9);
    let store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    assert_eq!(
        store.get(&key(42)).unwrap(),
        None,
        "a damaged value is served"
    );
    assert_eq!(store.damaged(), 1);
    assert_eq!(
        values(&store.get(&key(41)).unwrap().unwrap()),
        vec![value(41)]
    );
    let mut seen = 0;
    store
        .scan(&mut |k, s| {
            assert_ne!(k, key(42));
            assert_eq!(values(s).len(), 1);
            seen += 1;
        })
        .unwrap();
    assert_eq!(seen, 149);
}

/// Review of the stores (twenty-third session): redb's recovery fell back past a commit that
/// had been fsynced (its pages damaged after the commit returned), and the open went on with
/// the writes of that commit gone, acknowledged ones included (only a log line said so). The
/// store now keeps a durable mark beside the database, as the fjall store does, and refuses
/// the open.
#[test]
fn a_rollback_past_an_fsynced_commit_is_refused() {
    let (live, image) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _store = torn_newest_commit(live.path(), image.path());
    std::fs::copy(
        live.path().join(REDB_MARK_FILE),
        image.path().join(REDB_MARK_FILE),
    )
    .unwrap();
    for _ in 0..2 {
        let err = RedbStore::open(image.path(), Durability::Durable).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains(REDB_MARK_FILE), "{err}");
    }
}

/// Review of the stores (twenty-third session): an older copy of the database file put back
/// (a backup, a disk snapshot) opened without a word, every write acknowledged since the copy
/// gone and answered "not found". The durable mark beside it refuses the open.
#[test]
fn an_older_copy_of_the_database_file_is_refused() {
    let (dir, aside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    store.put(&key(1), &sibs(&value(1))).unwrap();
    store.flush().unwrap();
    drop(store);
    crash_image(dir.path(), aside.path());
    let mut store = RedbStore::open(dir.path(), Durability::Durable).unwrap();
    store.put(&key(2), &sibs(&value(2))).unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::copy(aside.path().join(DB_FILE), dir.path().join(DB_FILE)).unwrap();
    let err = RedbStore::open(dir.path(), Durability::Durable).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    // Ordinary reopens pass.
    let fresh = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let mut store = RedbStore::open(fresh.path(), Durability::Durable).unwrap();
        store.put(&key(i), &sibs(&value(i))).unwrap();
        store.flush().unwrap();
    }
    drop(
        RedbStore::open(
            fresh.path(),
            Durability::Buffered {
                sync_interval: std::time::Duration::ZERO,
            },
        )
        .unwrap(),
    );
    RedbStore::open(fresh.path(), Durability::Durable).unwrap();
}

/// Reads the raw bytes under `key` in `data`, past the store.
fn read_raw(dir: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let db = Database::create(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(DATA).unwrap();
    table.get(key).unwrap().map(|v| v.value().to_vec())
}

#[test]
fn a_store_of_another_format_is_refused_before_its_records_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    contract::a_store_of_another_format_is_refused_before_its_records_are_checked(
        dir.path(),
        |d| RedbStore::open(d, Durability::Durable),
        |d, key| {
            // A record of a version byte this binary does not know.
            let sealed = record::seal_version(3, Table::Data, key, b"\x90");
            write_raw(d, key, &sealed);
        },
        read_raw,
    );
}
