//! Limits on keys, contexts and the versions a put leaves on a key: a write past a limit is
//! refused with a clear error, and a key never becomes unreadable.

use dynamo_node::{ClientError, ClientOptions, ClientReply, ClientRequest, NodeConfig};
use dynamo_vclock::{Entry, VClock};

use crate::Cluster;

/// `clock` as a context of `key` (the in-process nodes seal with `ContextSeal::unkeyed`): the
/// limits below hold for contexts the cluster issued too (or whose maker knows its key).
fn sealed(key: &str, clock: &VClock<dynamo_node::Actor>) -> Vec<u8> {
    dynamo_node::core::ContextSeal::unkeyed().seal(key.as_bytes(), clock)
}

fn refused(reply: &ClientReply) -> Option<&ClientError> {
    match reply {
        ClientReply::Failed(e) => Some(e),
        _ => None,
    }
}

#[test]
fn oversized_keys_and_contexts_are_refused() {
    let config = NodeConfig {
        max_key_size: 16,
        max_context_size: 64,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.advance(300);
    let reply = c.put(1, &"k".repeat(17), "v", vec![]);
    assert!(
        matches!(refused(&reply), Some(ClientError::LimitExceeded { what, size: 17, limit: 16 }) if what == "key bytes"),
        "{reply:?}"
    );
    let reply = c.request(
        2,
        ClientRequest::Get {
            key: vec![b'k'; 17],
            options: ClientOptions::default(),
        },
    );
    assert!(refused(&reply).is_some(), "{reply:?}");
    let reply = c.put(1, "k", "v", vec![0; 65]);
    assert!(
        matches!(refused(&reply), Some(ClientError::LimitExceeded { what, .. }) if what == "context bytes"),
        "{reply:?}"
    );
    // Within the limits all is well.
    assert!(matches!(
        c.put(1, "k", "v", vec![]),
        ClientReply::Stored { .. }
    ));
}

#[test]
fn a_context_with_counters_no_node_issues_is_refused() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    let key = "forged";
    assert!(matches!(
        c.put(1, key, "v1", vec![]),
        ClientReply::Stored { .. }
    ));
    let stored = dynamo_node::Store::get(c.nodes[&1].store(), key.as_bytes())
        .expect("store")
        .expect("the key");
    let actors: Vec<(u64, u64)> = stored.entries().iter().map(|e| e.actor).collect();
    let forged = sealed(
        key,
        &VClock::from_entries(actors.iter().map(|&actor| Entry {
            actor,
            counter: u64::MAX,
            timestamp: 0,
        })),
    );
    let reply = c.put(1, key, "v2", forged);
    assert!(
        matches!(refused(&reply), Some(ClientError::InvalidContext(_))),
        "{reply:?}"
    );
    // The key goes on as before: a read-modify-write supersedes v1.
    let (_, ctx) = c.get(2, key);
    assert!(matches!(
        c.put(3, key, "v3", ctx),
        ClientReply::Stored { .. }
    ));
    assert_eq!(c.get(1, key).0, vec![b"v3".to_vec()]);
}

#[test]
fn concurrent_writes_past_the_sibling_limits_are_refused_and_the_key_stays_readable() {
    let config = NodeConfig {
        max_siblings: 3,
        max_siblings_size: 3 << 10,
        // No larger than the key's budget (a node refuses to start with a larger one).
        max_value_size: 2 << 10,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.advance(300);
    let key = "crowded";
    let big = "x".repeat(1 << 10);
    let mut stored = 0;
    let mut limited = 0;
    for i in 0..12 {
        let value = format!("{i}{big}");
        match c.put(1 + i % 3, key, &value, vec![]) {
            ClientReply::Stored { .. } => stored += 1,
            ClientReply::Failed(ClientError::LimitExceeded { .. }) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        stored >= 2 && limited >= 1,
        "{stored} stored, {limited} refused"
    );
    // Readable, and a write with the context reconciles.
    let (values, ctx) = c.get(2, key);
    assert_eq!(values.len(), stored);
    assert!(matches!(
        c.put(2, key, "merged", ctx),
        ClientReply::Stored { .. }
    ));
    assert_eq!(c.get(3, key).0, vec![b"merged".to_vec()]);
}

/// Review of the seventeenth session of issue 20: a client's context was checked for its size and
/// counters only, and a put merges every actor of its context into the key's clock, so puts with
/// contexts of thousands of made-up actors grew the key's record without bound (every later
/// read and merge decodes it; past a frame, no replica can send it). Past the context limit a
/// get's context could not even be sent back, so the key could no longer be updated. A put that
/// would leave the key a clock larger than a context may be is refused.
#[test]
fn a_put_may_not_grow_a_keys_clock_past_what_a_context_can_carry() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    let key = "made-up-actors";
    let limit = NodeConfig::default().max_context_size;
    let mut refusals = 0;
    for round in 0..8u64 {
        // 2,000 actors no node is, each seen once: about 12 KiB of context.
        let forged = sealed(
            key,
            &VClock::from_entries((0..2_000u64).map(|i| Entry {
                actor: (1_000 + round, i),
                counter: 1,
                timestamp: 0,
            })),
        );
        assert!(forged.len() < limit, "each context is within the limit");
        match c.put(1, key, "v", forged) {
            ClientReply::Stored { .. } => {}
            reply => {
                assert!(
                    matches!(refused(&reply), Some(ClientError::LimitExceeded { .. })),
                    "{reply:?}"
                );
                refusals += 1;
            }
        }
    }
    assert!(refusals > 0, "the clock's growth is refused at some point");
    // The key stays usable: its context can be sent back, and a read-modify-write goes through.
    let (_, ctx) = c.get(2, key);
    assert!(ctx.len() <= limit, "a get's context of {} bytes", ctx.len());
    assert!(matches!(
        c.put(3, key, "after", ctx),
        ClientReply::Stored { .. }
    ));
    assert_eq!(c.get(1, key).0, vec![b"after".to_vec()]);
}

/// With the last (the review of its first version): a clock past the context limit that grew
/// without made-up actors (a fresh epoch for each put a node coordinated while no primary was
/// up, one per restart) must not make the key unwritable: a put whose context adds no actor the
/// key's copy does not know is taken whatever the clock's size.
#[test]
fn a_key_whose_clock_grew_past_the_limit_stays_writable() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    let key = "old-and-busy";
    // 8,000 actors, each with a dot covered by the clock (history, no live value).
    let mut grown = dynamo_node::Sibs::new();
    let history = VClock::from_entries((0..8_000u64).map(|i| Entry {
        actor: (1 + i % 3, (1 << 60) + i),
        counter: 1,
        timestamp: 0,
    }));
    grown.put(
        &history,
        (1, 9_999_999),
        1,
        dynamo_vclock::Value::Live(b"old".to_vec().into()),
    );
    assert!(grown.context().encode().len() > NodeConfig::default().max_context_size);
    for node in c.nodes.values_mut() {
        dynamo_node::Store::put(node.store_mut(), key.as_bytes(), &grown).expect("stored");
    }
    let reply = c.put(1, key, "new", vec![]);
    assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
}

/// Review of the thirty-first session: a put's context was taken as any clock a client sent. One
/// put whose context claimed a counter of a coordinator's next epochs past any issued made the
/// dot it minted too large for a later context to be taken (the key could never be deleted);
/// one that claimed a large counter of another node's actor covered that node's later
/// acknowledged writes, which the replicas then dropped as superseded; a context of another key
/// planted that key's actors. A put or delete now carries only a context the cluster issued for
/// its key (`ContextSeal`): anything else is refused, and the key's values are untouched.
#[test]
fn a_context_the_cluster_did_not_issue_for_the_key_is_refused() {
    let mut c = Cluster::new(3, NodeConfig::default());
    c.advance(300);
    for (key, value) in [("a", "v1"), ("b", "w1")] {
        assert!(matches!(
            c.put(1, key, value, vec![]),
            ClientReply::Stored { .. }
        ));
    }
    let (_, issued) = c.get(2, "a");
    let clock = dynamo_node::core::ContextSeal::clock_of(&issued).expect("a context");
    // Counters no node has issued, for the next epochs of every actor the key's clock names.
    let forged = VClock::from_entries(clock.entries().flat_map(|e| {
        (1..=50u64).map(move |next| Entry {
            actor: (e.actor.0, e.actor.1 + next),
            counter: 1 << 40,
            timestamp: 0,
        })
    }));
    let mut damaged = issued.clone();
    damaged[0] ^= 1;
    for (key, context, what) in [
        ("b", issued.clone(), "the context of another key"),
        ("a", forged.encode(), "a made-up clock"),
        ("a", damaged, "a damaged context"),
    ] {
        let reply = c.put(1, key, "forged", context);
        assert!(
            matches!(refused(&reply), Some(ClientError::InvalidContext(_))),
            "{what}: {reply:?}"
        );
    }
    assert_eq!(c.get(3, "b").0, vec![b"w1".to_vec()]);
    // The context the cluster issued for the key is taken, through any node; the key's context
    // goes on being taken.
    assert!(matches!(
        c.put(3, "a", "v2", issued),
        ClientReply::Stored { .. }
    ));
    assert_eq!(c.get(1, "a").0, vec![b"v2".to_vec()]);
    c.delete(2, "a");
    assert!(c.get(3, "a").0.is_empty());
}

/// Review of the thirty-first session's sealed contexts: a put that adds actors was refused
/// only past a clock of `max_context_size` bytes, and the seal adds its tag to what a get
/// returns: a key whose clock ended within a tag of the limit had a context no put or delete
/// would take (past the limit), and only blind writes. A clock must leave room for the tag.
#[test]
fn a_keys_context_is_taken_back_however_near_the_limit_its_clock_grew() {
    let limit = 200;
    let config = NodeConfig {
        max_context_size: limit,
        ..NodeConfig::default()
    };
    let mut c = Cluster::new(3, config);
    c.advance(300);
    let key = "near-the-limit";
    // One made-up actor more each time, until a put is refused for the clock it would leave.
    for i in 0..200u64 {
        let forged = sealed(
            key,
            &VClock::from_entries((0..=i).map(|a| Entry {
                actor: (1_000, a),
                counter: 1,
                timestamp: 0,
            })),
        );
        if forged.len() > limit {
            break;
        }
        if !matches!(c.put(1, key, "v", forged), ClientReply::Stored { .. }) {
            break;
        }
    }
    let (_, ctx) = c.get(2, key);
    assert!(ctx.len() <= limit, "a get's context of {} bytes", ctx.len());
    let reply = c.put(3, key, "after", ctx);
    assert!(matches!(reply, ClientReply::Stored { .. }), "{reply:?}");
    assert_eq!(c.get(1, key).0, vec![b"after".to_vec()]);
}
