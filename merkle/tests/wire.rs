//! Frozen formats: hashes, segment placement and (with `serde`) messages. A change that breaks
//! existing trees or peers fails here. The values were checked against Python's `hashlib`.

use dynamo_merkle::{Hash, Tree, TreeConfig};

fn hex(hash: &Hash) -> String {
    hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn entry_and_key_hashes_are_frozen() {
    assert_eq!(
        hex(&Hash::of_entry(b"key", b"digest")),
        "c5e81b385dee10046b8d3a63d2caed71b6649740290aa1ad59e140b8e37688a0"
    );
    assert_eq!(
        hex(&Hash::of_key(b"key")),
        "c3483c9fb6b4385ee32de343c99b7d84be806d3b0e8a8f02a638ce24f5251d57"
    );
    assert_eq!(TreeConfig::default().segment_of(b"key"), 49992);
    let tree = Tree::from_entries(TreeConfig::default(), [("a", "1"), ("b", "2")]);
    assert_eq!(
        hex(&tree.root()),
        "3a487ea4a9fb88c6d7e61707bb4053c1fa19b2248d8c640ade12d48a51ecf4fd"
    );
}

#[cfg(feature = "serde")]
#[test]
fn messages_round_trip_through_serde() {
    use dynamo_merkle::{ChildHashes, DiffKind, Entry, KeyDiff, Message, SegmentEntries};
    let messages = vec![
        Message::Hello {
            session: 9,
            shape: TreeConfig::default(),
            root: Hash::of_key(b"r"),
        },
        Message::Hashes {
            session: 9,
            step: 1,
            level: 1,
            groups: vec![ChildHashes {
                parent: 0,
                hashes: vec![Hash::ZERO, Hash::of_key(b"x")],
            }],
        },
        Message::Entries {
            session: 9,
            step: 2,
            segments: vec![SegmentEntries {
                segment: 4,
                entries: vec![Entry::new("k", [1u8, 2])],
            }],
        },
        Message::Differences {
            session: 9,
            step: 3,
            keys: vec![KeyDiff {
                key: b"k".to_vec(),
                kind: DiffKind::Different,
            }],
        },
        Message::Abort {
            session: 9,
            reason: "no".into(),
        },
    ];
    for msg in messages {
        let json = serde_json::to_string(&msg).unwrap_or_default();
        let back: Result<Message, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(msg), "{json}");
    }
}

/// A shape read with serde is checked as `TreeConfig::new` checks it: before, any fan-out and
/// depth were taken, and a tree of fan-out 2 and depth 31 allocated 128 GiB, fan-out 256 and depth
/// 5 overflowed a shift.
#[cfg(feature = "serde")]
#[test]
fn a_shape_read_with_serde_is_checked() {
    for bad in [
        r#"{"fanout":256,"depth":5}"#,
        r#"{"fanout":2,"depth":31}"#,
        r#"{"fanout":3,"depth":2}"#,
    ] {
        assert!(serde_json::from_str::<TreeConfig>(bad).is_err(), "{bad}");
    }
    let good: TreeConfig = serde_json::from_str(r#"{"fanout":4,"depth":8}"#).expect("valid");
    assert_eq!(good, TreeConfig::default());
    let json = serde_json::to_string(&good).expect("encodes");
    assert_eq!(json, r#"{"fanout":4,"depth":8}"#);
}
