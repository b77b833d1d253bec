//! Rings travel in gossip: they must come back equal, and a forged one must be refused.

use quickcheck_macros::quickcheck;

use crate::common::Setup;

#[quickcheck]
fn a_ring_survives_a_serde_roundtrip(setup: Setup) -> bool {
    let ring = setup.ring();
    let json = serde_json::to_string(&ring).expect("serialize");
    let back: dynamo_ring::Ring<u32> = serde_json::from_str(&json).expect("deserialize");
    back == ring
}

#[test]
fn a_ring_with_a_token_of_an_unknown_node_is_refused() {
    let ring = dynamo_ring::Ring::new(
        dynamo_ring::RingConfig::default(),
        (0..3u32).map(dynamo_ring::NodeSpec::new),
    )
    .expect("ring");
    let json = serde_json::to_string(&ring).expect("serialize");
    assert!(json.contains("\"owners\":[0,"), "{json}");
    let forged = json.replace("\"owners\":[0,", "\"owners\":[99,");
    let err = serde_json::from_str::<dynamo_ring::Ring<u32>>(&forged).expect_err("refused");
    assert!(err.to_string().contains("unknown node"), "{err}");
}

#[test]
fn a_decoded_ring_draws_the_same_tokens_as_the_original() {
    use dynamo_ring::{HashFunction, NodeSpec, Ring, RingConfig, Strategy};
    let config = RingConfig {
        hash: HashFunction::Md5,
        strategy: Strategy::RandomTokens {
            tokens_per_node: 4,
            seed: 7,
        },
        replicas: 2,
    };
    let ring = Ring::new(config, ["a", "b"].map(|n| NodeSpec::new(n.to_string()))).expect("ring");
    let json = serde_json::to_string(&ring).expect("serialize");
    // The generator travels as the count of words drawn (8 tokens of 4 words), one integer.
    assert!(json.contains("\"rng\":32"), "{json}");
    let back: Ring<String> = serde_json::from_str(&json).expect("deserialize");
    let grown = ring.join(NodeSpec::new("c".to_string())).expect("join");
    let grown_back = back.join(NodeSpec::new("c".to_string())).expect("join");
    assert_eq!(grown.ring, grown_back.ring);
}

/// Review of the ring crate, twenty-fifth session of issue 20: a ring whose tokens all belong to
/// one of its three nodes was accepted, and its preference lists then held one node where the
/// ring promises N distinct ones (the others in no list, not even as fallbacks).
#[test]
fn a_ring_with_a_node_that_owns_no_token_is_refused() {
    use dynamo_ring::{NodeSpec, Ring, RingConfig, Strategy};
    let config = RingConfig {
        strategy: Strategy::EqualPartitions { partitions: 4 },
        ..RingConfig::default()
    };
    let ring = Ring::new(config, (0..3u32).map(NodeSpec::new)).expect("ring");
    let json = serde_json::to_string(&ring).expect("serialize");
    let start = json.find("\"owners\":[").expect("owners") + "\"owners\":[".len();
    let end = start + json[start..].find(']').expect("the list's end");
    let forged = format!("{}0,0,0,0{}", &json[..start], &json[end..]);
    let err = serde_json::from_str::<Ring<u32>>(&forged).expect_err("refused");
    assert!(err.to_string().contains("owns no token"), "{err}");
}
