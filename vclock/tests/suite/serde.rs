//! The serde feature: round trips, and validation of untrusted input.

use dynamo_vclock::{DvvSet, Siblings, VClock, Value};

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
