//! The byte encoding of a context: pinned format, round trips, and typed errors on bad input.

use dynamo_vclock::{DecodeError, Entry, VClock};
use quickcheck_macros::quickcheck;

use crate::suite::arb::Clock;

fn node_clock() -> VClock<(u64, u32)> {
    VClock::from_entries([
        Entry {
            actor: (1, 0),
            counter: 3,
            timestamp: 1000,
        },
        Entry {
            actor: (300, 2),
            counter: 1,
            timestamp: 5,
        },
    ])
}

/// Format version 1, pinned: changing it breaks every context held by a client.
#[test]
fn test_vector_v1() {
    let bytes = node_clock().encode();
    let expected: [u8; 12] = [
        0x01, // format version
        0x02, // two entries
        0x01, 0x00, // actor (1, 0)
        0x03, // counter 3
        0xe8, 0x07, // timestamp 1000
        0xac, 0x02, 0x02, // actor (300, 2)
        0x01, // counter 1
        0x05, // timestamp 5
    ];
    assert_eq!(bytes, expected);
    assert_eq!(VClock::<(u64, u32)>::decode(&expected), Ok(node_clock()));
    assert_eq!(VClock::<u64>::new().encode(), [0x01, 0x00]);
}

#[test]
fn string_and_bytes_actors() {
    let mut c: VClock<String> = VClock::new();
    c.increment("node-a".to_owned(), 7);
    c.increment("é".to_owned(), u64::MAX);
    let bytes = c.encode();
    assert_eq!(VClock::<String>::decode(&bytes), Ok(c));

    let mut c: VClock<Vec<u8>> = VClock::new();
    c.increment(vec![0xff, 0], 1);
    assert_eq!(VClock::<Vec<u8>>::decode(&c.encode()), Ok(c));

    let mut c: VClock<(u8, u16, u32)> = VClock::new();
    c.increment((1, 2, 3), 4);
    assert_eq!(VClock::<(u8, u16, u32)>::decode(&c.encode()), Ok(c));
}

#[test]
fn typed_errors() {
    type C = VClock<(u64, u32)>;
    let good = node_clock().encode();
    assert!(matches!(
        C::decode(&[]),
        Err(DecodeError::UnexpectedEnd { at: 0, .. })
    ));
    assert_eq!(
        C::decode(&[0x02, 0x00]),
        Err(DecodeError::UnknownVersion {
            found: 2,
            expected: 1
        })
    );
    assert!(matches!(
        C::decode(&good[..good.len() - 1]),
        Err(DecodeError::UnexpectedEnd { .. })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        C::decode(&trailing),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    // A count far beyond the input: rejected before allocating.
    assert!(matches!(
        C::decode(&[0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::TooManyEntries { .. })
    ));
    // Varint of 11 bytes, and one overflowing u64.
    let mut long = vec![0x01];
    long.extend([0x80; 10]);
    long.push(0x00);
    assert!(matches!(
        C::decode(&long),
        Err(DecodeError::BadVarint { at: 1 })
    ));
    let mut overflow = vec![0x01];
    overflow.extend([0xff; 9]);
    overflow.push(0x02);
    assert!(matches!(
        C::decode(&overflow),
        Err(DecodeError::BadVarint { at: 1 })
    ));
    // Overlong varints (a shorter form exists): the entry count, then an actor's part. Found by
    // fuzzing: they decoded, so one clock had many encodings.
    assert!(matches!(
        C::decode(&[0x01, 0x81, 0x00, 0x01, 0x00, 0x01, 0x00]),
        Err(DecodeError::BadVarint { at: 1 })
    ));
    let canonical = node_clock().encode();
    let mut overlong = canonical[..2].to_vec();
    overlong.extend([0x81, 0x00]);
    overlong.extend(&canonical[3..]);
    assert_eq!(canonical[2], 0x01, "the first actor's node id is 1");
    assert!(matches!(
        C::decode(&overlong),
        Err(DecodeError::BadVarint { at: 2 })
    ));
    // Forged: entries out of order, duplicate actor, zero counter.
    assert_eq!(
        VClock::<u8>::decode(&[0x01, 0x02, 0x05, 0x01, 0x00, 0x04, 0x01, 0x00]),
        Err(DecodeError::NotSorted { index: 1 })
    );
    assert_eq!(
        VClock::<u8>::decode(&[0x01, 0x02, 0x05, 0x01, 0x00, 0x05, 0x01, 0x00]),
        Err(DecodeError::NotSorted { index: 1 })
    );
    assert_eq!(
        VClock::<u8>::decode(&[0x01, 0x01, 0x05, 0x00, 0x00]),
        Err(DecodeError::ZeroCounter { index: 0 })
    );
    // Actor out of range for its type, and a string that is not UTF-8.
    assert!(matches!(
        VClock::<u32>::decode(&[0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x00]),
        Err(DecodeError::InvalidActor { at: 2, .. })
    ));
    assert!(matches!(
        VClock::<String>::decode(&[0x01, 0x01, 0x01, 0xff, 0x01, 0x00]),
        Err(DecodeError::InvalidActor { at: 3, .. })
    ));
    // Errors say what is wrong.
    assert_eq!(
        DecodeError::ZeroCounter { index: 0 }.to_string(),
        "entry 0: counter is zero"
    );
}

#[quickcheck]
fn round_trip(c: Clock) -> bool {
    VClock::<u8>::decode(&c.0.encode()) == Ok(c.0.clone())
}

#[quickcheck]
fn arbitrary_bytes_never_panic_and_accepted_bytes_are_canonical(bytes: Vec<u8>) -> bool {
    let mut input = vec![0x01];
    input.extend(bytes);
    [
        VClock::<(u64, u32)>::decode(&input).map(|c| c.encode()),
        VClock::<String>::decode(&input).map(|c| c.encode()),
        VClock::<u8>::decode(&input).map(|c| c.encode()),
    ]
    .into_iter()
    .all(|r| r.map_or(true, |again| again == input))
}

#[quickcheck]
fn mangled_contexts_never_panic(c: Clock, pos: usize, byte: u8, cut: usize) -> bool {
    let mut bytes = c.0.encode();
    let n = bytes.len();
    if let Some(b) = bytes.get_mut(pos % n) {
        *b = byte;
    }
    bytes.truncate(n - cut % n);
    VClock::<u8>::decode(&bytes).map_or(true, |d| d.encode() == bytes)
}
