//! Stored formats: sealed records (data, hints, metadata), their payloads, the manifest, the ring
//! state and transfer checkpoints.

use super::wire::sibs;
use super::Table;
use crate::redb_store::record::{self, Table as Kind};
use crate::store::{MemoryStore, Store, StoreError};
use crate::types::{NodeId, Object};

const BREAKS_DATA: &str = "Data directories written by earlier versions hold the pinned bytes: \
    this change makes them unreadable (or misread). If the change is intended, give the new \
    encoding a new version (the record's version byte, the store's `format`, the manifest's \
    `format`), keep reading the old one, add vectors for the new version next to the old ones, \
    and keep the old ones.";

fn hint_record() -> dynamo_handoff::HintRecord<NodeId, Vec<u8>> {
    dynamo_handoff::HintRecord {
        id: dynamo_handoff::HintId(5),
        recorded_at: 1000,
        hint: dynamo_handoff::Hint::new(3, b"k".to_vec(), vec![0xaa]),
    }
}

#[test]
fn sealed_records_are_frozen() {
    let mut t = Table::new("sealed record", BREAKS_DATA);
    // version | checksum | payload
    let plain = sibs(Object::from(b"v".to_vec()));
    let sealed = crate::on_disk::encode_sibs(b"k", &plain).expect("encodes");
    t.bytes(
        "data, version 1",
        &sealed,
        "01 | 042766b62d9abe01 | 919492010001059181a44c697665c40176",
    );
    match crate::on_disk::decode_sibs(b"k", &sealed) {
        Ok(back) if back == plain => {}
        other => t.fail("data, version 1", format!("reads back as {other:?}")),
    }
    // Store format 2 wrote the value as an array of integers: still read.
    let old = super::decode_hex("01042766b62d9abe01919492010001059181a44c697665c40176");
    match crate::on_disk::decode_sibs(b"k", &old) {
        Ok(back) if back == plain => {}
        other => t.fail(
            "data, version 1, store format 2",
            format!("reads back as {other:?}"),
        ),
    }

    let typed = sibs(Object::typed(
        b"{}".to_vec(),
        Some("application/json".into()),
    ));
    let sealed = crate::on_disk::encode_sibs(b"k", &typed).expect("encodes");
    t.bytes(
        "data, version 2 (typed)",
        &sealed,
        "02 | 06e634953f42021a | 919492010001059181a44c69766582a162c4027b7d\
             a174b06170706c69636174696f6e2f6a736f6e",
    );
    match crate::on_disk::decode_sibs(b"k", &sealed) {
        Ok(back) if back == typed => {}
        other => t.fail(
            "data, version 2 (typed)",
            format!("reads back as {other:?}"),
        ),
    }
    let old = super::decode_hex(
        "0206e634953f42021a919492010001059181a44c69766582a162c4027b7da174b06170706c69636174696f6e2f6a736f6e",
    );
    match crate::on_disk::decode_sibs(b"k", &old) {
        Ok(back) if back == typed => {}
        other => t.fail(
            "data, version 2 (typed), store format 2",
            format!("reads back as {other:?}"),
        ),
    }

    let payload = rmp_serde::to_vec(&hint_record()).expect("encodes");
    let sealed = record::seal(Kind::Hints, &5u64.to_be_bytes(), &payload);
    t.bytes(
        "hint, version 1",
        &sealed,
        "01 | c4c0e1569f22564a | 9305cd03e89303916b91ccaa",
    );
    if record::open(Kind::Hints, &5u64.to_be_bytes(), &sealed) != Ok(&payload[..]) {
        t.fail("hint, version 1", "does not open".into());
    }

    let sealed = record::seal(Kind::Meta, b"generation", &42u64.to_be_bytes());
    t.bytes(
        "meta, version 1",
        &sealed,
        "01 | 3c32dffaf6c77e2b | 000000000000002a",
    );
    t.finish();
}

#[test]
fn record_payloads_are_frozen() {
    let mut t = Table::new("record payload", BREAKS_DATA);
    t.msgpack(
        "sibling set",
        &sibs(Object::from(b"v".to_vec())),
        "919492010001059181a44c697665c40176",
    );
    t.msgpack(
        "sibling set with a content type",
        &sibs(Object::typed(b"{}".to_vec(), Some("text/plain".into()))),
        "919492010001059181a44c69766582a162c4027b7da174aa746578742f706c61\
             696e",
    );
    t.decodes(
        "sibling set, store format 2",
        &sibs(Object::from(b"v".to_vec())),
        "919492010001059181a44c6976659176",
    );
    t.decodes(
        "sibling set with a content type, store format 2",
        &sibs(Object::typed(b"{}".to_vec(), Some("text/plain".into()))),
        "919492010001059181a44c69766582a162927b7da174aa746578742f706c6169\
             6e",
    );
    t.msgpack("hint record", &hint_record(), "9305cd03e89303916b91ccaa");
    let ring = dynamo_ring::Ring::new(
        dynamo_ring::RingConfig {
            hash: dynamo_ring::HashFunction::Md5,
            strategy: dynamo_ring::Strategy::EqualPartitions { partitions: 2 },
            replicas: 2,
        },
        [
            dynamo_ring::NodeSpec::new(1u64),
            dynamo_ring::NodeSpec::new(2u64),
        ],
    )
    .expect("a ring");
    t.msgpack(
        "ring state",
        &crate::core::membership::RingState {
            version: 3,
            claimant: 1,
            ring,
            forced: Default::default(),
        },
        "9303019593a34d643581af457175616c506172746974696f6e73910202929301\
             01c0930201c092c4107fffffffffffffffffffffffffffffffc410ffffffffff\
             ffffffffffffffffffffff92000100",
    );
    // version | key
    t.bytes(
        "transfer checkpoint",
        &crate::core::encode_checkpoint(b"k"),
        "01 | 6b",
    );
    t.finish();
}

#[test]
fn manifests_are_frozen() {
    use crate::manifest::{Kind as ManifestKind, Manifest};
    let mut t = Table::new("manifest", BREAKS_DATA);
    let fjall = ManifestKind {
        file: "MANIFEST",
        engine: Some("fjall"),
        database: "the database",
        header: "# h\n",
    };
    let redb = ManifestKind {
        engine: None,
        ..fjall
    };
    let m = Manifest::of(0xabc, 42);
    let pinned = [
        (
            "fjall",
            &fjall,
            "# h\nengine = \"fjall\"\ninstance = \"0000000000000abc\"\ncreated_unix_ms = 42\n",
        ),
        (
            "redb",
            &redb,
            "# h\ninstance = \"0000000000000abc\"\ncreated_unix_ms = 42\n",
        ),
    ];
    for (name, kind, expected) in pinned {
        let text = m.render(kind);
        t.text(name, &text, expected);
        if Manifest::parse(kind, &text).as_ref() != Ok(&m) {
            t.fail(name, "does not parse back".into());
        }
    }
    t.finish();
}

#[test]
fn a_transfer_checkpoint_of_another_version_is_refused_as_such() {
    use crate::core::decode_checkpoint;
    assert_eq!(decode_checkpoint(&[]), Ok(None));
    assert_eq!(decode_checkpoint(&[1, b'k']), Ok(Some(b"k".to_vec())));
    assert_eq!(decode_checkpoint(&[1]), Ok(Some(Vec::new())));
    assert!(matches!(
        decode_checkpoint(&[2, b'k']),
        Err(StoreError::UnknownVersion { found, .. }) if found == "2"
    ));
}

/// A store whose records have a later format stops the node with a typed error before anything
/// is read.
#[test]
fn a_store_of_another_record_format_is_refused_as_such() {
    for format in [1u64, 4] {
        let mut store = MemoryStore::new();
        store.put_meta("node-id", &1u64.to_be_bytes()).unwrap();
        store.put_meta("format", &format.to_be_bytes()).unwrap();
        let err = crate::core::StoredCore::new(
            1,
            "a:1".into(),
            crate::config::NodeConfig::default(),
            store,
            0,
            7,
        )
        .err()
        .expect("refused");
        assert!(
            matches!(
                &err,
                crate::core::NodeError::Store(StoreError::UnknownVersion { found, supported, .. })
                    if *found == format.to_string() && supported == "2 to 3"
            ),
            "{err:?}"
        );
    }
}

/// A store of format 2 (objects as arrays of integers) is read, and marked format 3 before the
/// node writes anything, so that an earlier version refuses it rather than take the byte
/// strings this version writes for damage.
#[test]
fn a_store_of_format_2_is_read_and_marked_3() {
    let mut store = MemoryStore::new();
    store.put_meta("node-id", &1u64.to_be_bytes()).unwrap();
    store.put_meta("format", &2u64.to_be_bytes()).unwrap();
    let old = super::decode_hex("919492010001059181a44c6976659176");
    let plain: crate::types::Sibs = crate::types::decode_msgpack(&old).expect("decodes");
    store.put(b"k", &plain).unwrap();
    let core = crate::core::StoredCore::new(
        1,
        "a:1".into(),
        crate::config::NodeConfig::default(),
        store,
        0,
        7,
    )
    .expect("a format 2 store is read");
    assert_eq!(
        core.store().get_meta("format").unwrap(),
        Some(3u64.to_be_bytes().to_vec())
    );
    assert_eq!(core.store().get(b"k").unwrap(), Some(plain));
}
