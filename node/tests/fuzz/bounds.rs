//! Maximum-size frames of the worst shapes decode within a time proportional to their size, and
//! end in a value or a typed error, never a panic.
//!
//! Issue 15 found a 4.3 MB sibling set taking 243 s to decode (quadratic). These frames are each
//! at their phase's limit and made of the smallest items a decoder visits one by one. A test
//! that asserts a duration is an exception to the rule (DESIGN.md: "a test never asserts a
//! duration"): the bound is far above what linear decoding takes, so that only a super-linear
//! decoder can fail it, even in a debug build on a loaded 2-core CI machine.

use std::time::{Duration, Instant};

use dynamo_node::fuzz::Target;
use dynamo_node::runtime::frame::{
    self, ClientFrame, Handshake, NodeFrame, PeerFrame, Role, DEFAULT_MAX_CLIENT_FRAME,
    DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
use dynamo_node::{ClientOptions, ClientReply, ClientRequest, Clock, PeerMessage, Sibs};
use dynamo_vclock::{DvvEntry, Entry, Value};

/// The bound, per MiB of input. Measured in a debug build on the 2-core machine with other work
/// running: 140 (a context of 650k entries) to 550 ms/MiB (a 16 MiB reply of empty values;
/// 260-390 for the peer frames, 385 for the 4 MiB client frame); release builds: under 10 in the
/// fuzz runs. About 22 times the worst, so that only a decoder worse than linear fails (the
/// quadratic sibling-set decoder of issue 15 took 59,000 ms/MiB in a release build).
const BOUND_MS_PER_MIB: f64 = 12_000.0;
/// Fixed allowance per decode (the handshake frame is 4 KiB: its time is mostly fixed costs).
const FLOOR_MS: f64 = 200.0;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Times `decode` on `bytes` and checks the bound.
fn within_bound<T>(what: &str, bytes: &[u8], decode: impl FnOnce(&[u8]) -> T) -> T {
    let start = Instant::now();
    let out = decode(bytes);
    let took = start.elapsed();
    let bound = Duration::from_secs_f64((BOUND_MS_PER_MIB * mib(bytes.len()) + FLOOR_MS) / 1e3);
    println!(
        "{what}: {} bytes in {:.1} ms ({:.1} ms/MiB; bound {:.0} ms)",
        bytes.len(),
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / mib(bytes.len()),
        bound.as_secs_f64() * 1e3
    );
    assert!(took <= bound, "{what}: {took:?} exceeds {bound:?}");
    out
}

/// `body` with the first occurrence of `needle` replaced (frames are built by encoding a small
/// message and splicing the many items in as raw msgpack: encoding them one by one in a debug
/// build would take longer than decoding them).
fn splice(mut body: Vec<u8>, needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = body
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle");
    body.splice(at..at + needle.len(), with.iter().copied());
    body
}

/// A msgpack array32 header of `n` items.
fn array(n: usize) -> Vec<u8> {
    let mut out = vec![0xdd];
    out.extend_from_slice(&(n as u32).to_be_bytes());
    out
}

/// A `PeerFrame::Write` body of at most `limit` bytes whose sibling set is as many entries as fit,
/// each `[[actor, 0], 1, 0, [{"Live": []}]]`; actors in order, or, when `sorted` is false, the
/// last one out of order (so decoding fails at the very end).
fn write_frame(limit: usize, sorted: bool) -> Vec<u8> {
    let body = frame::encode(&PeerFrame::Peer(PeerMessage::Write {
        req: Some(1),
        key: b"k".to_vec(),
        siblings: Sibs::new(),
        hint: None,
    }))
    .expect("encodes");
    const ENTRY: usize = 22;
    let n = (limit - body.len() - 5) / ENTRY;
    let mut set = array(n);
    set.reserve(n * ENTRY);
    for i in 0..n as u64 {
        let actor = if sorted || i + 1 < n as u64 { i } else { 0 };
        set.extend_from_slice(&[0x94, 0x92, 0xcf]);
        set.extend_from_slice(&actor.to_be_bytes());
        set.extend_from_slice(&[0x00, 0x01, 0x00, 0x91, 0x81, 0xa4]);
        set.extend_from_slice(b"Live");
        set.push(0x90);
    }
    // The empty set is the last empty array (before the hint's nil).
    let at = body.iter().rposition(|&b| b == 0x90).expect("empty set");
    let mut out = body;
    out.splice(at..=at, set);
    assert!(out.len() <= limit);
    out
}

#[test]
fn a_peer_frame_of_tiny_siblings_at_the_limit() {
    let body = write_frame(DEFAULT_MAX_FRAME, true);
    let frame = within_bound("16 MiB write of tiny siblings", &body, |b| {
        frame::decode::<PeerFrame>(b)
    });
    match frame {
        Ok(PeerFrame::Peer(PeerMessage::Write { siblings, .. })) => {
            assert!(siblings.len() > 500_000)
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let bad = write_frame(DEFAULT_MAX_FRAME, false);
    let frame = within_bound("16 MiB write, unsorted at the end", &bad, |b| {
        frame::decode::<PeerFrame>(b)
    });
    assert!(frame.is_err());
}

#[test]
fn a_peer_frame_of_one_value_of_single_byte_items() {
    // Values travel as byte strings, and decoders still read the arrays of integers of earlier
    // versions: a value of 16M one-byte items is the most items a value can hold.
    let body = frame::encode(&PeerFrame::Peer(PeerMessage::Write {
        req: None,
        key: Vec::new(),
        siblings: Sibs::try_from(vec![DvvEntry {
            actor: (1u64, 1u64),
            counter: 1,
            timestamp: 0,
            values: vec![Value::Live(vec![7, 7, 7].into())],
        }])
        .expect("a set"),
        hint: None,
    }))
    .expect("encodes");
    let n = DEFAULT_MAX_FRAME - body.len() - 8;
    let mut items = array(n);
    items.resize(5 + n, 0x07);
    let body = splice(body, &[0xc4, 3, 7, 7, 7], &items);
    assert!(body.len() <= DEFAULT_MAX_FRAME, "{}", body.len());
    let frame = within_bound("16 MiB value of one-byte items", &body, |b| {
        frame::decode::<PeerFrame>(b)
    });
    assert!(frame.is_ok());
}

#[test]
fn client_frames_and_contexts_at_the_limit() {
    let put = |value: Vec<u8>, context: Vec<u8>| {
        frame::encode(&ClientFrame::Request {
            id: 1,
            request: ClientRequest::Put {
                key: b"k".to_vec(),
                value,
                context,
                options: ClientOptions::default(),
                content_type: None,
            },
        })
        .expect("encodes")
    };
    let small = put(vec![7, 7, 7], Vec::new());
    let n = DEFAULT_MAX_CLIENT_FRAME - small.len() - 8;
    let mut items = array(n);
    items.resize(5 + n, 0x07);
    let body = splice(small, &[0xc4, 3, 7, 7, 7], &items);
    assert!(body.len() <= DEFAULT_MAX_CLIENT_FRAME);
    let frame = within_bound("4 MiB put of one-byte items", &body, |b| {
        frame::decode::<ClientFrame>(b)
    });
    assert!(frame.is_ok());

    // A context with as many entries as 4 MiB holds (4 bytes each).
    let entries = (1..=(DEFAULT_MAX_CLIENT_FRAME as u64 - 16) / 4 / 2).map(|i| Entry {
        actor: (i % 100 + 1, 0),
        counter: 1,
        timestamp: 0,
    });
    // Distinct sorted actors: (node, epoch) with small varints.
    let clock = Clock::from_entries(entries.enumerate().map(|(i, mut e)| {
        e.actor = (i as u64 / 64 + 1, i as u64 % 64);
        e
    }));
    let context = clock.encode();
    assert!(clock.len() > 100_000, "{}", clock.len());
    let decoded = within_bound("a context of the most entries", &context, Clock::decode);
    assert_eq!(decoded.as_ref().ok(), Some(&clock));
    let mut forged = context.clone();
    let last = forged.len() - 1;
    forged[last] = 0x80; // an unterminated varint at the very end
    assert!(within_bound("the same, broken at the end", &forged, Clock::decode).is_err());

    // A reply of the most tiny values a client reads.
    let reply = frame::encode(&NodeFrame::Reply {
        id: 1,
        reply: ClientReply::Got {
            values: vec![vec![7]],
            context: Vec::new(),
            replicas: vec![1, 2, 3],
            content_types: Vec::new(),
        },
    })
    .expect("encodes");
    let n = DEFAULT_MAX_FRAME - reply.len() - 8;
    let mut values = array(n);
    values.resize(5 + n, 0x90);
    let reply = splice(reply, &[0x91, 0xc4, 0x01, 0x07], &values);
    let frame = within_bound("16 MiB reply of empty values", &reply, |b| {
        frame::decode::<NodeFrame>(b)
    });
    assert!(frame.is_ok());
}

#[test]
fn handshake_frames_at_the_limit() {
    let hello = |cluster: String| {
        frame::encode(&Handshake::Hello {
            version: PROTOCOL_VERSION,
            cluster,
            role: Role::Peer {
                id: 2,
                address: "a".into(),
                generation: 0,
            },
            encrypt: true,
            nonce: [7; 32],
            identity: None,
        })
        .expect("encodes")
    };
    let size = hello(String::new()).len();
    let body = hello("c".repeat(HANDSHAKE_MAX_FRAME - size - 2));
    assert!(body.len() <= HANDSHAKE_MAX_FRAME, "{}", body.len());
    // A 4 KiB array of nils, the most items a handshake frame holds.
    let mut nils = vec![0xdc, 0x0f, 0xf0];
    nils.resize(3 + 0x0ff0, 0xc0);
    for (what, body) in [("4 KiB hello", body), ("4 KiB of nils", nils)] {
        let mut stream = (body.len() as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&body);
        within_bound(what, &stream, |s| {
            let verdict = Target::Handshake.run(s);
            assert!(!verdict.is_failure(), "{what}: {verdict:?}");
        });
    }
}
