//! The serde feature: round trips, and validation of untrusted input.

use dynamo_vclock::{DvvEntry, DvvSet, Entry, Siblings, VClock, Value, Version};
use quickcheck_macros::quickcheck;

use crate::suite::arb::{Clock, DvvHistory, Sibs};

#[test]
fn round_trips() {
    let mut c: VClock<(u64, u32)> = VClock::new();
    c.increment((1, 0), 5);
    c.increment((2, 1), 6);
    let json = serde_json::to_string(&c).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<VClock<(u64, u32)>>(&json).ok(),
        Some(c.clone())
    );

    let mut s: Siblings<u64, String> = Siblings::new();
    s.put(&VClock::new(), 1, 1, Value::Live("a".into()));
    s.put(&VClock::new(), 2, 2, Value::Tombstone);
    let json = serde_json::to_string(&s).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Siblings<u64, String>>(&json).ok(),
        Some(s)
    );

    let mut d: DvvSet<u64, String> = DvvSet::new();
    d.put(&VClock::new(), 1, 1, "x".into());
    d.put(&VClock::new(), 1, 2, "y".into());
    let json = serde_json::to_string(&d).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<DvvSet<u64, String>>(&json).ok(),
        Some(d)
    );
}

#[test]
fn invalid_input_is_rejected() {
    let unsorted =
        r#"[{"actor":2,"counter":1,"timestamp":0},{"actor":1,"counter":1,"timestamp":0}]"#;
    assert!(serde_json::from_str::<VClock<u64>>(unsorted).is_err());
    let zero = r#"[{"actor":1,"counter":0,"timestamp":0}]"#;
    assert!(serde_json::from_str::<VClock<u64>>(zero).is_err());
    let too_many = r#"[{"actor":1,"counter":1,"timestamp":0,"values":["a","b"]}]"#;
    assert!(serde_json::from_str::<DvvSet<u64, String>>(too_many).is_err());
    // A sibling set with a dominated version is normalized, not trusted.
    let dominated = r#"[{"clock":[{"actor":1,"counter":1,"timestamp":0}],"value":{"Live":"old"}},
                        {"clock":[{"actor":1,"counter":2,"timestamp":0}],"value":{"Live":"new"}}]"#;
    let s: Siblings<u64, String> = serde_json::from_str(dominated).unwrap_or_default();
    assert_eq!(s.live_values().collect::<Vec<_>>(), [&"new".to_owned()]);
}

// Each set serializes as the sequence of its entries, borrowed: exactly the bytes of that
// sequence as a `Vec` (the form these types serialized through before, and the one
// deserialization reads), and it reads back to an equal set.

#[quickcheck]
fn a_clock_serializes_as_its_entries(c: Clock) -> bool {
    let entries: Vec<Entry<u8>> = c.0.clone().into();
    let json = serde_json::to_string(&c.0).ok();
    json.is_some()
        && json == serde_json::to_string(&entries).ok()
        && json.and_then(|j| serde_json::from_str::<VClock<u8>>(&j).ok()) == Some(c.0)
}

#[quickcheck]
fn a_dvv_set_serializes_as_its_entries(h: DvvHistory) -> bool {
    h.0.iter().all(|d| {
        let entries: Vec<DvvEntry<u8, u32>> = d.clone().into();
        let json = serde_json::to_string(d).ok();
        json.is_some()
            && json == serde_json::to_string(&entries).ok()
            && json.and_then(|j| serde_json::from_str::<DvvSet<u8, u32>>(&j).ok())
                == Some(d.clone())
    })
}

#[quickcheck]
fn a_sibling_set_serializes_as_its_versions(s: Sibs) -> bool {
    let versions: Vec<Version<u8, u8>> = s.0.clone().into();
    let json = serde_json::to_string(&s.0).ok();
    let back = json
        .as_deref()
        .and_then(|j| serde_json::from_str::<Siblings<u8, u8>>(j).ok());
    json.is_some() && json == serde_json::to_string(&versions).ok() && back == Some(s.0)
}
