//! The node's msgpack codec for what a get moves: a key's sibling set as stored and as carried
//! by a `ReadReply`, with a 100-byte value. The baseline, measured in the same run, is the form
//! earlier versions wrote (every byte of a value an element of an array of integers); the node
//! now writes values, keys and contexts as byte strings (`dynamo_node::types::bytes`) and still
//! reads the old form.
//!
//! `cargo bench -p dynamo-bench --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use dynamo_node::message::PeerMessage;
use dynamo_node::types::{decode_msgpack, Actor, Object, Sibs};
use dynamo_vclock::{DvvSet, Value};

/// A sibling set as earlier versions encoded it: the value a plain byte vector.
type OldSibs = DvvSet<Actor, Value<Vec<u8>>>;

/// The same one-version sibling set in both forms.
fn sets(len: usize) -> (Sibs, OldSibs) {
    let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    let mut new = Sibs::new();
    let ctx = new.context();
    new.put(
        &ctx,
        (2, 7),
        1_000,
        Value::Live(Object::from(value.clone())),
    );
    let mut old = OldSibs::new();
    let ctx = old.context();
    old.put(&ctx, (2, 7), 1_000, Value::Live(value));
    (new, old)
}

fn stored(c: &mut Criterion) {
    let (new, old) = sets(100);
    let new_bytes = rmp_serde::to_vec(&new).expect("encodes");
    let old_bytes = rmp_serde::to_vec(&old).expect("encodes");
    assert_eq!(decode_msgpack::<Sibs>(&old_bytes).expect("decodes"), new);
    let mut g = c.benchmark_group("sibling set, 100-byte value");
    g.bench_function("decode, byte string", |b| {
        b.iter(|| decode_msgpack::<Sibs>(black_box(&new_bytes)))
    });
    g.bench_function("decode, integer array (baseline)", |b| {
        b.iter(|| decode_msgpack::<Sibs>(black_box(&old_bytes)))
    });
    g.bench_function("encode, byte string", |b| {
        b.iter(|| rmp_serde::to_vec(black_box(&new)))
    });
    g.bench_function("encode, integer array (baseline)", |b| {
        b.iter(|| rmp_serde::to_vec(black_box(&old)))
    });
    g.finish();
}

fn read_reply(c: &mut Criterion) {
    let (new, old) = sets(100);
    let reply = PeerMessage::ReadReply {
        req: 12_345,
        siblings: Some(new),
    };
    let bytes = rmp_serde::to_vec(&reply).expect("encodes");
    // The same message with the value as an integer array: what version 2 peers sent.
    #[derive(serde::Serialize)]
    enum OldMessage {
        ReadReply { req: u64, siblings: Option<OldSibs> },
    }
    let old_bytes = rmp_serde::to_vec(&OldMessage::ReadReply {
        req: 12_345,
        siblings: Some(old),
    })
    .expect("encodes");
    let mut g = c.benchmark_group("ReadReply, 100-byte value");
    g.bench_function("encode and decode, byte string", |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec(black_box(&reply)).expect("encodes");
            decode_msgpack::<PeerMessage>(&bytes)
        })
    });
    g.bench_function("decode, byte string", |b| {
        b.iter(|| decode_msgpack::<PeerMessage>(black_box(&bytes)))
    });
    g.bench_function("decode, integer array (baseline)", |b| {
        b.iter(|| decode_msgpack::<PeerMessage>(black_box(&old_bytes)))
    });
    g.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    stored(&mut c);
    read_reply(&mut c);
}

criterion_main!(benches);
