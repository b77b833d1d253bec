//! Input from the wrong cluster, malformed or stale input: ignored, counted, never a panic.

use dynamo_gossip::{
    Body, Config, Delta, Digest, Gossip, Message, MessageError, Status, Versioned,
};

fn node(id: u32, cluster: &str) -> Gossip<u32, u32> {
    let config = Config {
        cluster_name: cluster.into(),
        ..Config::default()
    };
    Gossip::new(config, id, id, 1, vec![]).unwrap()
}

fn delta(id: u32, generation: u64, from: u64, to: u64) -> Delta<u32, u32> {
    Delta {
        id,
        generation,
        from_version: from,
        to_version: to,
        heartbeat: Versioned::new(1, 5),
        status: Versioned::new(2, Status::Up),
        address: Versioned::new(3, id),
        app: vec![("k".into(), Versioned::new(4, vec![1]))],
    }
}

fn ack2(cluster: &str, deltas: Vec<Delta<u32, u32>>) -> Message<u32, u32> {
    Message {
        cluster: cluster.into(),
        sender_address: 9,
        body: Body::Ack2 { deltas },
    }
}

#[test]
fn message_of_another_cluster_is_ignored_and_counted() {
    let mut a = node(1, "prod");
    assert_eq!(
        a.handle_message(0, 2, ack2("test", vec![delta(2, 1, 0, 4)])),
        Err(MessageError::WrongCluster {
            expected: "prod".into(),
            got: "test".into()
        })
    );
    assert_eq!(a.stats().ignored_wrong_cluster, 1);
    assert_eq!(a.members().count(), 1);
}

#[test]
fn malformed_deltas_are_ignored_and_counted() {
    let mut a = node(1, "c");
    let mut backwards = delta(2, 1, 5, 4);
    backwards.app.clear();
    let mut out_of_range = delta(2, 1, 0, 3);
    out_of_range.app = vec![("k".into(), Versioned::new(9, vec![]))];
    let mut unordered = delta(2, 1, 0, 9);
    unordered.app = vec![
        ("a".into(), Versioned::new(6, vec![])),
        ("b".into(), Versioned::new(5, vec![])),
    ];
    let mut zero_header = delta(2, 1, 0, 4);
    zero_header.heartbeat.version = 0;
    for bad in [backwards, out_of_range, unordered, zero_header] {
        // One bad delta spoils the whole message, good ones included.
        let refused = a.handle_message(0, 2, ack2("c", vec![delta(3, 1, 0, 4), bad]));
        assert!(matches!(refused, Err(MessageError::Malformed { .. })));
    }
    assert_eq!(a.stats().ignored_malformed, 4);
    assert_eq!(a.members().count(), 1);
}

#[test]
fn stale_generation_and_gaps_are_ignored() {
    let mut a = node(1, "c");
    a.handle_message(0, 2, ack2("c", vec![delta(2, 5, 0, 4)]))
        .unwrap();
    assert_eq!(a.node_state(&2).unwrap().generation(), 5);
    a.handle_message(1, 2, ack2("c", vec![delta(2, 4, 0, 4)]))
        .unwrap();
    assert_eq!(a.stats().ignored_stale_generation, 1);
    assert_eq!(a.node_state(&2).unwrap().generation(), 5);
    // A delta that starts after what is known would leave a hole: ignored.
    let mut gap = delta(2, 5, 10, 12);
    gap.app.clear();
    a.handle_message(2, 2, ack2("c", vec![gap])).unwrap();
    // A first delta about an unknown node must be complete.
    let mut partial = delta(3, 1, 2, 4);
    partial.app.clear();
    a.handle_message(3, 3, ack2("c", vec![partial])).unwrap();
    assert_eq!(a.stats().ignored_gap, 2);
    assert_eq!(a.node_state(&2).unwrap().version(), 4);
    assert!(a.node_state(&3).is_none());
}

#[test]
fn news_about_self_from_others_is_never_taken() {
    let mut a = node(1, "c");
    // A later generation of this node: it takes one past it, once (a node that lost its
    // persisted generation would otherwise stay down everywhere).
    a.handle_message(0, 2, ack2("c", vec![delta(1, 9, 0, 4)]))
        .unwrap();
    assert_eq!(a.stats().raised_generation, 1);
    assert_eq!(a.local_state().generation(), 10);
    // Its own state is never taken from others, and it raises its generation once only.
    a.handle_message(0, 2, ack2("c", vec![delta(1, 10, 0, 9)]))
        .unwrap();
    a.handle_message(0, 2, ack2("c", vec![delta(1, 20, 0, 4)]))
        .unwrap();
    assert_eq!(a.stats().ignored_conflicting_self, 2);
    assert_eq!(a.stats().raised_generation, 1);
    assert_eq!(a.local_state().generation(), 10);
    assert_eq!(
        a.handle_message(0, 1, ack2("c", vec![])),
        Err(MessageError::FromSelf)
    );
    assert_eq!(a.stats().ignored_from_self, 1);
}

#[test]
fn syn_from_a_stranger_is_answered_at_its_address() {
    let mut a = node(1, "c");
    a.handle_timeout(0);
    while a.poll_transmit().is_some() {}
    let syn = Message {
        cluster: "c".into(),
        sender_address: 77,
        body: Body::Syn {
            digests: vec![Digest {
                id: 2,
                generation: 1,
                version: 3,
            }],
            complete: true,
        },
    };
    a.handle_message(10, 2, syn).unwrap();
    let reply = a.poll_transmit().unwrap();
    assert_eq!((reply.to, reply.address), (2, 77));
    match reply.message.body {
        Body::Ack { requests, deltas } => {
            assert_eq!(
                requests,
                vec![Digest {
                    id: 2,
                    generation: 0,
                    version: 0
                }]
            );
            assert_eq!(deltas.len(), 1);
            assert_eq!(deltas[0].id, 1);
        }
        other => panic!("expected an Ack, got {other:?}"),
    }
}

fn bounded(id: u32, max_members: usize) -> Gossip<u32, u32> {
    let config = Config {
        cluster_name: "c".into(),
        max_members,
        ..Config::default()
    };
    Gossip::new(config, id, id, 1, vec![]).unwrap()
}

#[test]
fn a_peer_cannot_grow_the_view_past_its_bound() {
    let mut a = bounded(1, 8);
    // One message naming 20 nodes this one never heard of: 8 are taken, the rest counted.
    let deltas = (100..120).map(|id| delta(id, 1, 0, 4)).collect();
    a.handle_message(0, 2, ack2("c", deltas)).unwrap();
    assert_eq!(a.members().count(), 1 + 8);
    assert_eq!(a.stats().ignored_view_full, 12);
    // News about nodes already in the view still gets in.
    let mut newer = delta(100, 1, 4, 6);
    newer.heartbeat = Versioned::new(5, 6);
    newer.app.clear();
    a.handle_message(1, 2, ack2("c", vec![newer])).unwrap();
    assert_eq!(a.node_state(&100).unwrap().heartbeat(), 6);
    // A full view asks for no unknown node either.
    while a.poll_transmit().is_some() {}
    let syn = Message {
        cluster: "c".into(),
        sender_address: 2,
        body: Body::Syn {
            digests: (200..300)
                .map(|id| Digest {
                    id,
                    generation: 1,
                    version: 4,
                })
                .collect(),
            complete: false,
        },
    };
    a.handle_message(2, 2, syn).unwrap();
    while let Some(t) = a.poll_transmit() {
        if let Body::Ack { requests, .. } = t.message.body {
            assert!(
                requests.is_empty(),
                "asked for {} unknown nodes",
                requests.len()
            );
        }
    }
}

/// A full view still takes the news that a node it never knew has left (reported, so that an
/// application counting members from elsewhere drops it), and keeps at most `max_members`
/// tombstones: a peer naming ever more departed nodes cannot grow the table.
#[test]
fn a_full_view_still_hears_of_departures_within_its_bound() {
    let mut a = bounded(1, 4);
    let deltas = (100..104).map(|id| delta(id, 1, 0, 4)).collect();
    a.handle_message(0, 2, ack2("c", deltas)).unwrap();
    while a.poll_event().is_some() {}
    let left = |id| {
        let mut d = delta(id, 1, 0, 4);
        d.status = Versioned::new(4, Status::Left);
        d.app.clear();
        d
    };
    a.handle_message(1, 2, ack2("c", (200..210).map(left).collect()))
        .unwrap();
    let mut reported = Vec::new();
    while let Some(event) = a.poll_event() {
        if let dynamo_gossip::Event::Left { id } = event {
            reported.push(id);
        }
    }
    assert_eq!(reported, (200..210).collect::<Vec<_>>());
    // Six of the ten tombstones made room for later ones.
    assert_eq!(a.stats().ignored_view_full, 6);
    // The last four are remembered: stale news of them is refused.
    let mut stale = delta(209, 1, 0, 3);
    stale.app.clear();
    a.handle_message(2, 2, ack2("c", vec![stale])).unwrap();
    assert!(a.node_state(&209).is_none());
    assert_eq!(a.stats().ignored_removed, 1);
}

#[test]
fn status_only_moves_forward() {
    let mut a = node(1, "c");
    a.set_status(Status::Up).unwrap();
    assert!(a.set_status(Status::Joining).is_err());
    a.set_status(Status::Leaving).unwrap();
    a.leave().unwrap();
    assert!(a.leave().is_err());
    assert!(!a.is_up(&1));
}

#[test]
fn bad_config_is_refused() {
    let bad = Config {
        gossip_interval: core::time::Duration::ZERO,
        ..Config::default()
    };
    assert!(Gossip::<u32, u32>::new(bad, 1, 1, 1, vec![]).is_err());
    let bad = Config {
        phi_threshold: f64::NAN,
        ..Config::default()
    };
    assert!(Gossip::<u32, u32>::new(bad, 1, 1, 1, vec![]).is_err());
    // An interval so long that rounds and the failure detector overflowed ("attempt to add with
    // overflow" in the second round).
    let bad = Config {
        gossip_interval: core::time::Duration::from_millis(1 << 63),
        ..Config::default()
    };
    assert!(matches!(
        Gossip::<u32, u32>::new(bad, 1, 1, 1, vec![]),
        Err(dynamo_gossip::ConfigError::IntervalTooLong { .. })
    ));
    let longest = Config {
        gossip_interval: dynamo_gossip::MAX_INTERVAL,
        ..Config::default()
    };
    let mut a = Gossip::<u32, u32>::new(longest, 1, 1, 1, vec![(2, 2)]).expect("valid");
    for t in [0, u64::MAX / 4, u64::MAX / 2, u64::MAX] {
        a.handle_timeout(t);
        while a.poll_transmit().is_some() {}
    }
}

/// Arbitrary, mostly nonsensical input for a machine.
#[derive(Debug, Clone)]
struct Garbage(Vec<(u8, Message<u32, u32>)>);

impl quickcheck::Arbitrary for Garbage {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let small = |g: &mut quickcheck::Gen| u64::from(u8::arbitrary(g) % 12);
        let mut messages = Vec::new();
        for _ in 0..usize::arbitrary(g) % 12 {
            let id = |g: &mut quickcheck::Gen| u32::from(u8::arbitrary(g) % 5);
            let ranges: Vec<(u64, u64)> = (0..usize::arbitrary(g) % 4)
                .map(|_| {
                    let from = small(g) % 4;
                    (from, from + small(g))
                })
                .collect();
            let deltas = ranges
                .into_iter()
                .map(|(from, to)| Delta {
                    id: id(g),
                    generation: small(g) % 3,
                    from_version: from,
                    to_version: to,
                    heartbeat: Versioned::new(small(g), small(g)),
                    status: Versioned::new(
                        small(g),
                        *g.choose(&[Status::Joining, Status::Up, Status::Leaving, Status::Left])
                            .unwrap(),
                    ),
                    address: Versioned::new(small(g), id(g)),
                    app: (0..usize::arbitrary(g) % 3)
                        .map(|_| {
                            (
                                format!("k{}", u8::arbitrary(g) % 3),
                                Versioned::new(small(g), vec![1]),
                            )
                        })
                        .collect(),
                })
                .collect();
            let body = match u8::arbitrary(g) % 3 {
                0 => Body::Syn {
                    digests: (0..usize::arbitrary(g) % 4)
                        .map(|_| Digest {
                            id: id(g),
                            generation: small(g) % 3,
                            version: small(g),
                        })
                        .collect(),
                    complete: bool::arbitrary(g),
                },
                1 => Body::Ack {
                    requests: (0..usize::arbitrary(g) % 3)
                        .map(|_| Digest {
                            id: id(g),
                            generation: small(g) % 3,
                            version: small(g),
                        })
                        .collect(),
                    deltas,
                },
                _ => Body::Ack2 { deltas },
            };
            let cluster = if u8::arbitrary(g) % 8 == 0 {
                "other"
            } else {
                "c"
            };
            let message = Message {
                cluster: cluster.into(),
                sender_address: id(g),
                body,
            };
            messages.push((u8::arbitrary(g) % 5, message));
        }
        Garbage(messages)
    }
}

#[quickcheck_macros::quickcheck]
fn garbage_never_panics_nor_moves_versions_back(input: Garbage) -> bool {
    let mut a = node(1, "c");
    a.set_app_state("mine", vec![9]).unwrap();
    let own = a.local_state().clone();
    let mut seen: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for (step, (from, msg)) in input.0.into_iter().enumerate() {
        let now = step as u64 * 300;
        // Arbitrary input: refusals are expected.
        let _ = a.handle_message(now, u32::from(from), msg);
        a.handle_timeout(now);
        while a.poll_transmit().is_some() {}
        while a.poll_event().is_some() {}
        for (id, state) in a.members() {
            let now_at = (state.generation(), state.version());
            if let Some(before) = seen.insert(*id, now_at) {
                if now_at < before {
                    return false;
                }
            }
        }
    }
    // Nobody else can change this node's own state; news of a later incarnation of it moves
    // its generation past that one, once.
    let mine = a.local_state();
    let generation_kept = match a.stats().raised_generation {
        0 => mine.generation() == own.generation(),
        1 => mine.generation() > own.generation(),
        _ => false,
    };
    generation_kept && mine.app_state("mine") == Some(&[9u8][..])
}

/// Whatever nodes peers name, up or left, a view bounded to two other nodes never holds more,
/// and every departure of a node it did not hold is still reported.
#[quickcheck_macros::quickcheck]
fn a_bounded_view_never_holds_more_than_its_bound(news: Vec<(u8, bool)>) -> bool {
    let mut a = bounded(1, 2);
    let mut departed = std::collections::BTreeSet::new();
    for (step, (id, left)) in news.into_iter().enumerate() {
        let id = 2 + u32::from(id % 40);
        let mut d = delta(id, 1, 0, 4);
        if left {
            d.status = Versioned::new(4, Status::Left);
            d.app.clear();
        }
        let known = a.node_state(&id).is_some();
        let _ = a.handle_message(step as u64, 99, ack2("c", vec![d]));
        let mut reported_left = false;
        while let Some(event) = a.poll_event() {
            reported_left |= matches!(event, dynamo_gossip::Event::Left { id: l } if l == id);
        }
        if a.members().count() > 3 || (left && !known && !departed.contains(&id) && !reported_left)
        {
            return false;
        }
        if reported_left {
            departed.insert(id);
        }
    }
    true
}

#[cfg(feature = "serde")]
#[test]
fn messages_and_config_round_trip_through_serde() {
    let message = ack2("c", vec![delta(2, 1, 0, 4)]);
    let json = serde_json::to_string(&message).unwrap();
    let back: Message<u32, u32> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, message);
    // A partial configuration file takes the defaults for what it leaves out.
    let config: Config = serde_json::from_str(r#"{"cluster_name":"prod"}"#).unwrap();
    assert_eq!(config.cluster_name, "prod");
    let expected = Config {
        cluster_name: "prod".to_owned(),
        ..Config::default()
    };
    assert_eq!(config, expected);
    let exponential: Config = serde_json::from_str(r#"{"phi_model":"Exponential"}"#).unwrap();
    assert_eq!(exponential.phi_model, dynamo_gossip::PhiModel::Exponential);
}

/// A seeded run replays: the first rounds' partners are pinned, so a change of generator (or of
/// its version, of the choice arithmetic or of the id hash) fails here rather than as a silently different run.
#[test]
fn first_partners_of_a_seeded_run_are_pinned() {
    let config = Config {
        cluster_name: "c".into(),
        rng_seed: 2012,
        ..Config::default()
    };
    let seeds: Vec<(u32, u32)> = (2..=9).map(|i| (i, i)).collect();
    let mut a = Gossip::new(config, 1u32, 1u32, 1, seeds).unwrap();
    let mut partners = Vec::new();
    for round in 0..6u64 {
        a.handle_timeout(round * 500);
        while let Some(t) = a.poll_transmit() {
            partners.push(t.to);
        }
    }
    assert_eq!(partners, vec![3, 8, 6, 7, 5, 2]);
}

/// A `Syn` listing thousands of unknown ids, or one id many times, is answered within the
/// message bound: every listed id became a request, so one message of 20,000 digests made an
/// answer of about 640 KB against a bound of 256 KiB.
#[test]
fn a_syn_of_many_unknown_or_repeated_ids_is_answered_within_the_bound() {
    let config = Config::default();
    for digests in [
        (10..20_010).collect::<Vec<u32>>(),
        std::iter::repeat_n(7, 20_000).collect(),
    ] {
        let mut a = node(1, "c");
        let syn = Message {
            cluster: "c".into(),
            sender_address: 2,
            body: Body::Syn {
                digests: digests
                    .iter()
                    .map(|&id| Digest {
                        id,
                        generation: 1,
                        version: 5,
                    })
                    .collect(),
                complete: false,
            },
        };
        a.handle_message(0, 2, syn).unwrap();
        let reply = a.poll_transmit().expect("an answer");
        let size = reply
            .message
            .size_estimate(config.id_size_estimate, config.address_size_estimate);
        assert!(size <= config.max_message_bytes, "{size} bytes");
        if let Body::Ack { requests, .. } = &reply.message.body {
            let mut ids: Vec<u32> = requests.iter().map(|r| r.id).collect();
            ids.dedup();
            assert_eq!(ids.len(), requests.len(), "an id asked for twice");
        }
    }
}

/// A probe opens an exchange with the peer named, outside the rounds, and the peer, whose
/// heartbeat moved on since, answers it; a node it does not know is not probed.
#[test]
fn a_probe_asks_a_known_peer_for_a_sign_of_life() {
    let mut a = node(1, "c");
    a.handle_message(0, 2, ack2("c", vec![delta(2, 1, 0, 4)]))
        .unwrap();
    while a.poll_transmit().is_some() {}
    a.probe(&99);
    assert!(a.poll_transmit().is_none(), "an unknown node is not probed");
    a.probe(&2);
    let syn = a.poll_transmit().expect("a probe");
    assert_eq!(syn.to, 2);
    assert!(matches!(syn.message.body, Body::Syn { .. }));
    let mut b = node(2, "c");
    for round in 0..10 {
        b.handle_timeout(round * 1_000);
    }
    while b.poll_transmit().is_some() {}
    b.handle_message(10_000, 1, syn.message).unwrap();
    let answer = b.poll_transmit().expect("an answer");
    assert_eq!(answer.to, 1);
    assert!(matches!(answer.message.body, Body::Ack { .. }));
}

/// Review, twenty-sixth session of issue 20 (the node's lost-disk check relies on it): a node
/// whose peers hold a later incarnation of it took a generation past theirs only when a delta of
/// itself reached it, which follows only its own exchanges. A peer's exchange that lists it at
/// the later generation tells as much: it takes a generation past that one at once.
#[test]
fn a_peer_s_digest_of_a_later_incarnation_raises_the_generation() {
    let mut a = node(1, "c");
    assert_eq!(a.local_state().generation(), 1);
    let syn = Message {
        cluster: "c".into(),
        sender_address: 9,
        body: Body::Syn {
            digests: vec![
                Digest {
                    id: 2,
                    generation: 1,
                    version: 4,
                },
                Digest {
                    id: 1,
                    generation: 100,
                    version: 40,
                },
            ],
            complete: true,
        },
    };
    a.handle_message(0, 2, syn).unwrap();
    assert!(a.local_state().generation() > 100);
    assert_eq!(a.stats().raised_generation, 1);
}

/// Review of the departed-node tombstone (the project's twenty-ninth session): the tombstone of
/// a node that left answers a digest naming an older state of it; one naming a newer state (the
/// node restarted, with a new generation) is asked for, as before the tombstone kept its state.
#[test]
fn a_digest_newer_than_a_left_node_s_tombstone_is_asked_for() {
    let mut a = node(1, "c");
    let mut left = delta(3, 1, 0, 5);
    left.status = Versioned::new(5, Status::Left);
    a.handle_message(0, 2, ack2("c", vec![left])).unwrap();
    assert!(a.node_state(&3).is_none(), "buried at once: it left");
    while a.poll_transmit().is_some() {}
    let syn = |generation: u64, version: u64| Message {
        cluster: "c".into(),
        sender_address: 9,
        body: Body::Syn {
            digests: vec![Digest {
                id: 3,
                generation,
                version,
            }],
            complete: false,
        },
    };
    // An older state of it: the peer hears that it left.
    a.handle_message(1, 2, syn(1, 2)).unwrap();
    let Some(t) = a.poll_transmit() else {
        panic!("an answer")
    };
    let Body::Ack { requests, deltas } = t.message.body else {
        panic!("an Ack")
    };
    assert!(requests.is_empty());
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].status.value, Status::Left);
    // A later incarnation: asked for.
    a.handle_message(2, 2, syn(2, 3)).unwrap();
    let Some(t) = a.poll_transmit() else {
        panic!("an answer")
    };
    let Body::Ack { requests, .. } = t.message.body else {
        panic!("an Ack")
    };
    assert_eq!(requests.len(), 1, "the restarted node is asked for");
    assert_eq!(requests[0].id, 3);
}
