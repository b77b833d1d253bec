//! What every on-disk [`Store`] must do, as test steps generic over the engine: the redb and the
//! fjall store's tests run each of them on their own files, so a new engine gets the same
//! checks by calling them with its `open`.

use std::path::Path;
use std::time::Duration;

use dynamo_vclock::Value;

use crate::redb_store::Durability;
use crate::store::{Store, StoreError};
use crate::types::Sibs;

/// A sibling set of one version holding `value`.
pub(crate) fn sibs(value: &[u8]) -> Sibs {
    let mut s = Sibs::new();
    let ctx = s.context();
    s.put(&ctx, (1, 0), 0, Value::Live(value.to_vec().into()));
    s
}

/// The live values of `s`.
pub(crate) fn values(s: &Sibs) -> Vec<Vec<u8>> {
    s.live_values().map(|o| o.bytes.clone()).collect()
}

/// The `i`th key of a filled store.
pub(crate) fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// The `i`th value of a filled store, padded to 200 bytes.
pub(crate) fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i:04}-").into_bytes();
    v.resize(200, b'v');
    v
}

/// Writes, removals, hints and metadata are visible at once, and what was flushed is there after
/// a reopen; a sync job (where the engine makes one) runs on another thread, as the driver runs
/// it.
pub(crate) fn writes_are_visible_at_once_and_survive_reopen<S: Store>(
    dir: &Path,
    open: impl Fn(&Path) -> S,
) {
    {
        let mut store = open(dir);
        assert!(!store.has_unflushed_writes());
        store.put(b"a", &sibs(b"1")).unwrap();
        assert!(store.has_unflushed_writes());
        store.put(b"c", &sibs(b"3")).unwrap();
        store.put_hint(7, b"hint").unwrap();
        store.put_meta("epoch", b"\x01").unwrap();
        assert_eq!(
            values(&store.get(b"a").unwrap().unwrap()),
            vec![b"1".to_vec()]
        );
        store.flush().unwrap();
        assert!(!store.has_unflushed_writes());
        store.put(b"b", &sibs(b"2")).unwrap();
        store.remove(b"c").unwrap();
        let mut seen = Vec::new();
        store.scan(&mut |k, _| seen.push(k.to_vec())).unwrap();
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
        if let Some(job) = store.start_flush().unwrap() {
            std::thread::spawn(job).join().unwrap().unwrap();
        }
        store.remove_hint(7).unwrap();
        store.put_hint(8, b"h8").unwrap();
        assert_eq!(store.hints().unwrap(), vec![(8, b"h8".to_vec())]);
        store.flush().unwrap();
        assert!(
            store.start_flush().unwrap().is_none(),
            "nothing left to sync"
        );
    }
    let store = open(dir);
    assert!(store.get(b"c").unwrap().is_none());
    assert_eq!(
        values(&store.get(b"b").unwrap().unwrap()),
        vec![b"2".to_vec()]
    );
    assert_eq!(store.hints().unwrap(), vec![(8, b"h8".to_vec())]);
    assert_eq!(store.get_meta("epoch").unwrap(), Some(vec![1]));
    assert_eq!(store.get_meta("absent").unwrap(), None);
}

/// A buffered store is not durable, and a write it holds survives a graceful close: dropping the
/// store syncs.
pub(crate) fn buffered_mode_syncs_on_drop<S: Store>(
    dir: &Path,
    open: impl Fn(&Path, Durability) -> S,
) {
    let durability = Durability::Buffered {
        sync_interval: Duration::from_secs(3600),
    };
    {
        let mut store = open(dir, durability);
        assert!(!store.is_durable());
        store.put(b"k", &sibs(b"v")).unwrap();
        assert!(store.start_flush().unwrap().is_none());
    }
    let store = open(dir, durability);
    assert!(store.get(b"k").unwrap().is_some());
}

/// A second open of a directory in use fails, and says so.
pub(crate) fn second_open_of_same_dir_is_refused<S: Store + std::fmt::Debug>(
    dir: &Path,
    open: impl Fn(&Path) -> Result<S, StoreError>,
) {
    let _first = open(dir).unwrap();
    let err = open(dir).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
}

/// Review of the storage layer, twenty-fifth session of issue 20: a set-aside list (the keys of
/// damaged records the open removed) that the store holds but cannot read was taken as empty,
/// and the node started answering "not found", a replica's answer toward R, for copies it had
/// lost. The start now fails and says why.
pub(crate) fn an_unreadable_set_aside_list_fails_the_start<S: Store>(
    dir: &Path,
    open: impl Fn(&Path) -> Result<S, StoreError>,
) {
    {
        let mut store = open(dir).unwrap();
        store.put(b"k", &sibs(b"v")).unwrap();
        // A well-formed record (its checksum holds) whose list does not decode.
        store
            .put_meta(crate::store::SET_ASIDE_KEY, &[0xc1])
            .unwrap();
        store.flush().unwrap();
    }
    let mut store = open(dir).unwrap();
    let config = crate::NodeConfig {
        initial_members: vec![1],
        ..crate::NodeConfig::default()
    };
    let Err(err) = crate::core::Boot::load(&mut store, 1, &config, 0, 7) else {
        panic!("a start on a set-aside list it cannot read fails");
    };
    assert!(err.to_string().contains("set-aside"), "{err}");
}

/// Review of the storage layer (the project's twenty-ninth session): the open checked every
/// record, and removed for good, with the keys set aside as lost copies, those it could not read,
/// before the node's start looked at the store's format and refused one written by a newer
/// version: a node rolled back to an older binary lost every record of the newer format (and a
/// cluster rolled back, every copy). The open now refuses a store of a format it cannot read
/// first, and removes nothing. `write_newer` leaves a record of another format under a key (the
/// store closed), `read_raw` reads a record's bytes past the store.
pub(crate) fn a_store_of_another_format_is_refused_before_its_records_are_checked<S: Store>(
    dir: &Path,
    open: impl Fn(&Path) -> Result<S, StoreError>,
    write_newer: impl Fn(&Path, &[u8]),
    read_raw: impl Fn(&Path, &[u8]) -> Option<Vec<u8>>,
) {
    use crate::core::{FORMAT, META_FORMAT, META_NODE_ID};
    {
        let mut store = open(dir).unwrap();
        store.put(b"a", &sibs(b"1")).unwrap();
        store.put_meta(META_NODE_ID, &1u64.to_be_bytes()).unwrap();
        store
            .put_meta(META_FORMAT, &(FORMAT + 1).to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    write_newer(dir, b"b");
    let written = read_raw(dir, b"b");
    assert!(written.is_some());
    match open(dir) {
        Err(e) => assert!(
            matches!(e, StoreError::UnknownVersion { .. }),
            "refused as a newer format: {e}"
        ),
        Ok(_) => panic!("a store of a newer format is refused"),
    }
    assert_eq!(read_raw(dir, b"b"), written, "the record is still there");
    assert!(read_raw(dir, b"a").is_some());
}
