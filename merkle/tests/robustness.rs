//! Sessions under messages they did not expect: errors, never panics.

use dynamo_merkle::{
    ChildHashes, DiffKind, Entry, Event, Hash, KeyDiff, Message, SegmentEntries, SyncConfig,
    SyncError, SyncSession, Tree, TreeConfig,
};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

use crate::harness::{key, Replica};

fn shape() -> TreeConfig {
    TreeConfig::new(4, 2).unwrap_or_default()
}

fn tree_with(keys: u32, digest: &[u8]) -> Tree {
    let mut r = Replica::new(shape());
    for i in 0..keys {
        r.put(&key(i), digest);
    }
    r.tree
}

fn events(session: &mut SyncSession) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn transmits(session: &mut SyncSession) -> Vec<Message> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

/// Asserts the session failed with `error`, told its owner and its peer.
fn assert_failed(session: &mut SyncSession, error: &SyncError) {
    assert!(session.is_done());
    assert_eq!(events(session).last(), Some(&Event::Failed(error.clone())));
    assert!(matches!(
        transmits(session).last(),
        Some(Message::Abort { .. })
    ));
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_message_from_the_future_fails_the_session() {
    let tree = tree_with(50, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Differences {
        session: 1,
        step: 3,
        keys: vec![],
    };
    let result = session.handle_message(0, &tree, msg);
    let Err(error) = result else {
        panic!("accepted a future step")
    };
    assert!(matches!(
        error,
        SyncError::Unexpected {
            step: 3,
            got: "Differences",
            ..
        }
    ));
    assert_failed(&mut session, &error);
}

#[test]
fn entries_for_a_segment_not_compared_fail_the_session() {
    let tree = tree_with(50, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Entries {
        session: 1,
        step: 1,
        segments: vec![SegmentEntries {
            segment: 3,
            entries: vec![],
        }],
    };
    let error = session.handle_message(0, &tree, msg).err();
    assert_eq!(error, Some(SyncError::SegmentNotRequested { segment: 3 }));
    assert_failed(&mut session, &SyncError::SegmentNotRequested { segment: 3 });
}

#[test]
fn children_of_a_node_not_sent_fail_the_session() {
    let tree = tree_with(50, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Hashes {
        session: 1,
        step: 1,
        level: 1,
        groups: vec![ChildHashes {
            parent: 2,
            hashes: vec![Hash::ZERO; 4],
        }],
    };
    let error = session.handle_message(0, &tree, msg).err();
    assert_eq!(
        error,
        Some(SyncError::UnknownParent {
            level: 0,
            parent: 2
        })
    );
    let msg = Message::Hashes {
        session: 1,
        step: 1,
        level: 1,
        groups: vec![ChildHashes {
            parent: 0,
            hashes: vec![Hash::ZERO; 3],
        }],
    };
    let mut fresh = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let error = fresh.handle_message(0, &tree, msg).err();
    assert_eq!(
        error,
        Some(SyncError::BadChildCount {
            expected: 4,
            got: 3
        })
    );
}

#[test]
fn another_session_or_shape_is_refused() {
    let tree = tree_with(10, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Differences {
        session: 2,
        step: 1,
        keys: vec![],
    };
    assert_eq!(
        session.handle_message(0, &tree, msg).err(),
        Some(SyncError::WrongSession {
            expected: 1,
            got: 2
        })
    );

    let other = Tree::new(TreeConfig::new(16, 1).unwrap_or_default());
    let mut hello = SyncSession::initiate(SyncConfig::default(), 5, 0, &other);
    let mut responder = SyncSession::respond(SyncConfig::default(), 5);
    let first = transmits(&mut hello).pop().unwrap_or(Message::Abort {
        session: 5,
        reason: String::new(),
    });
    let error = responder.handle_message(0, &tree, first).err();
    assert!(matches!(error, Some(SyncError::Shape(_))), "{error:?}");
    assert!(responder.is_done());
    // The initiator learns it from the abort.
    for msg in transmits(&mut responder) {
        let _ = hello.handle_message(0, &other, msg);
    }
    assert!(matches!(
        events(&mut hello).last(),
        Some(Event::Failed(SyncError::Aborted { .. }))
    ));
}

#[test]
fn a_silent_peer_times_out() {
    let tree = tree_with(10, b"v");
    let config = SyncConfig {
        timeout: core::time::Duration::from_millis(500),
        ..SyncConfig::default()
    };
    let mut session = SyncSession::initiate(config, 1, 1_000, &tree);
    assert_eq!(session.poll_timeout(), Some(1_500));
    session.handle_timeout(1_499);
    assert!(!session.is_done());
    session.handle_timeout(1_500);
    assert_failed(
        &mut session,
        &SyncError::TimedOut {
            after: core::time::Duration::from_millis(500),
        },
    );
}

/// Two sessions over trees whose 40 keys all differ, walked until one side asks its owner for
/// segments: that session, and the segments it asked for.
fn asked_for_segments() -> (SyncSession, Vec<u32>) {
    let a = tree_with(40, b"v1");
    let b = tree_with(40, b"v2");
    let mut left = SyncSession::initiate(SyncConfig::default(), 1, 0, &a);
    let mut right = SyncSession::respond(SyncConfig::default(), 1);
    for _ in 0..10 {
        for msg in transmits(&mut left) {
            let _ = right.handle_message(0, &b, msg);
        }
        let needed = segments_needed(&mut right);
        if !needed.is_empty() {
            return (right, needed);
        }
        for msg in transmits(&mut right) {
            let _ = left.handle_message(0, &a, msg);
        }
        let needed = segments_needed(&mut left);
        if !needed.is_empty() {
            return (left, needed);
        }
    }
    panic!("no segment asked")
}

#[test]
fn owner_answers_are_checked() {
    let (mut asked, needed) = asked_for_segments();
    let session = &mut asked;
    let segment = needed[0];
    // A key of another segment.
    let stray = (0..1000)
        .map(key)
        .find(|k| shape().segment_of(k) != segment)
        .unwrap_or_default();
    let actual = shape().segment_of(&stray);
    let error = session.supply(0, segment, [(stray, b"v".to_vec())]).err();
    assert_eq!(
        error,
        Some(SyncError::EntryOutsideSegment {
            listed: segment,
            actual
        })
    );
    assert!(session.is_done());
    assert_eq!(
        session
            .supply(0, segment, Vec::<(Vec<u8>, Vec<u8>)>::new())
            .err(),
        Some(SyncError::Closed)
    );
}

#[test]
fn after_the_end_only_duplicates_are_quiet() {
    let tree = tree_with(10, b"v");
    let mut left = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let mut right = SyncSession::respond(SyncConfig::default(), 1);
    let hello = transmits(&mut left);
    for msg in hello.clone() {
        assert_eq!(right.handle_message(0, &tree, msg), Ok(()));
    }
    assert_eq!(events(&mut right), vec![Event::Finished(vec![])]);
    for msg in hello {
        assert_eq!(right.handle_message(0, &tree, msg), Ok(()));
    }
    let late = Message::Differences {
        session: 1,
        step: 2,
        keys: vec![KeyDiff {
            key: key(1),
            kind: DiffKind::Different,
        }],
    };
    assert_eq!(right.handle_message(0, &tree, late), Err(SyncError::Closed));
    assert!(events(&mut right).is_empty());
    assert_eq!(right.stats().duplicates_ignored, 1);
}

/// Any message at all, with small numbers so that some of them fit.
#[derive(Clone, Debug)]
struct AnyMessage(Message);

impl Arbitrary for AnyMessage {
    fn arbitrary(g: &mut Gen) -> Self {
        let session = if bool::arbitrary(g) {
            1
        } else {
            u64::arbitrary(g)
        };
        let step = u32::from(u8::arbitrary(g) % 6);
        let hash = |g: &mut Gen| {
            if bool::arbitrary(g) {
                Hash::ZERO
            } else {
                Hash::of_key(&u8::arbitrary(g).to_be_bytes())
            }
        };
        let msg = match u8::arbitrary(g) % 5 {
            0 => Message::Hello {
                session,
                shape: if bool::arbitrary(g) {
                    shape()
                } else {
                    TreeConfig::default()
                },
                root: hash(g),
            },
            1 => Message::Hashes {
                session,
                step,
                level: u8::arbitrary(g) % 4,
                groups: (0..u8::arbitrary(g) % 4)
                    .map(|_| ChildHashes {
                        parent: u32::from(u8::arbitrary(g) % 20),
                        hashes: (0..u8::arbitrary(g) % 6).map(|_| hash(g)).collect(),
                    })
                    .collect(),
            },
            2 => Message::Entries {
                session,
                step,
                segments: (0..u8::arbitrary(g) % 3)
                    .map(|_| SegmentEntries {
                        segment: u32::from(u8::arbitrary(g) % 20),
                        entries: (0..u8::arbitrary(g) % 3)
                            .map(|_| {
                                Entry::new(key(u32::from(u8::arbitrary(g))), vec![u8::arbitrary(g)])
                            })
                            .collect(),
                    })
                    .collect(),
            },
            3 => Message::Differences {
                session,
                step,
                keys: vec![],
            },
            _ => Message::Abort {
                session,
                reason: String::arbitrary(g),
            },
        };
        AnyMessage(msg)
    }
}

/// Random messages to either role: each is accepted, ignored or refused; a refusal ends the
/// session with an event and an abort, and nothing panics.
#[quickcheck]
fn random_messages_never_panic(initiator: bool, msgs: Vec<AnyMessage>) -> bool {
    let tree = tree_with(30, b"v");
    let mut session = if initiator {
        SyncSession::initiate(SyncConfig::default(), 1, 0, &tree)
    } else {
        SyncSession::respond(SyncConfig::default(), 1)
    };
    let mut failed = false;
    for AnyMessage(msg) in msgs {
        let was_done = session.is_done();
        let result = session.handle_message(0, &tree, msg);
        for event in events(&mut session) {
            if let Event::SegmentNeeded(segment) = event {
                let _ = session.supply(
                    0,
                    segment,
                    Replica::from_store(shape(), Default::default()).segment(segment),
                );
            }
        }
        let _ = transmits(&mut session);
        if result.is_err() && !was_done {
            failed = true;
            if !session.is_done() {
                return false;
            }
        }
    }
    !failed || session.is_done()
}

#[test]
fn a_responder_wants_the_hello_first() {
    let tree = tree_with(10, b"v");
    let mut responder = SyncSession::respond(SyncConfig::default(), 1);
    let msg = Message::Hashes {
        session: 1,
        step: 0,
        level: 1,
        groups: vec![ChildHashes {
            parent: 0,
            hashes: vec![Hash::ZERO; 4],
        }],
    };
    let error = responder.handle_message(0, &tree, msg).err();
    assert!(
        matches!(error, Some(SyncError::Unexpected { got: "Hashes", .. })),
        "{error:?}"
    );
    assert!(responder.is_done());
}

#[test]
fn differences_outside_the_exchanged_segments_are_refused() {
    let tree = tree_with(10, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Differences {
        session: 1,
        step: 1,
        keys: vec![KeyDiff {
            key: key(3),
            kind: DiffKind::MissingLocally,
        }],
    };
    let segment = shape().segment_of(&key(3));
    assert_eq!(
        session.handle_message(0, &tree, msg).err(),
        Some(SyncError::SegmentNotRequested { segment })
    );
    assert!(session.is_done());
}

#[test]
fn an_abort_for_another_session_is_refused() {
    let tree = tree_with(10, b"v");
    let mut session = SyncSession::initiate(SyncConfig::default(), 1, 0, &tree);
    let msg = Message::Abort {
        session: 2,
        reason: "x".into(),
    };
    assert_eq!(
        session.handle_message(0, &tree, msg).err(),
        Some(SyncError::WrongSession {
            expected: 1,
            got: 2
        })
    );
}

/// A segment supplied twice by its owner is named as such: the error said the segment "was not
/// asked for", which sent the owner looking for the wrong bug.
#[test]
fn a_segment_supplied_twice_is_named_as_such() {
    let (mut session, needed) = asked_for_segments();
    assert!(needed.len() >= 2, "{needed:?}");
    let segment = needed[0];
    let entries = || {
        (0..40)
            .map(key)
            .filter(|k| shape().segment_of(k) == segment)
            .map(|k| (k, b"v".to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(session.supply(0, segment, entries()), Ok(()));
    assert_eq!(
        session.supply(0, segment, entries()),
        Err(SyncError::AlreadySupplied { segment })
    );
}

fn segments_needed(session: &mut SyncSession) -> Vec<u32> {
    events(session)
        .into_iter()
        .filter_map(|e| match e {
            Event::SegmentNeeded(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Review (the project's twenty-second session): a peer's `Differences` naming one key twice
/// was passed on to the owner as two differences of that key (`Finished` held a duplicate). It
/// fails the session as any other malformed message does.
#[test]
fn differences_naming_a_key_twice_are_refused() {
    let mut a = Replica::new(shape());
    let mut b = Replica::new(shape());
    for i in 0..10 {
        a.put(&key(i), b"v");
        b.put(&key(i), if i == 3 { b"w" } else { b"v" });
    }
    let mut left = SyncSession::initiate(SyncConfig::default(), 1, 0, &a.tree);
    let mut right = SyncSession::respond(SyncConfig::default(), 1);
    let tamper = |msg: Message| match msg {
        Message::Differences {
            session,
            step,
            mut keys,
        } => {
            keys.extend(keys.clone());
            Message::Differences {
                session,
                step,
                keys,
            }
        }
        other => other,
    };
    let mut outcome = Vec::new();
    for _ in 0..100 {
        for msg in transmits(&mut left) {
            let _ = right.handle_message(0, &b.tree, tamper(msg));
        }
        for msg in transmits(&mut right) {
            let _ = left.handle_message(0, &a.tree, tamper(msg));
        }
        for (session, replica) in [(&mut left, &a), (&mut right, &b)] {
            for event in events(session) {
                match event {
                    Event::SegmentNeeded(segment) => {
                        let _ = session.supply(0, segment, replica.segment(segment));
                    }
                    other => outcome.push(other),
                }
            }
        }
        if left.is_done() && right.is_done() {
            break;
        }
    }
    assert!(
        outcome
            .iter()
            .any(|e| matches!(e, Event::Failed(SyncError::DuplicateKey { .. }))),
        "{outcome:?}"
    );
    assert!(
        !outcome
            .iter()
            .any(|e| matches!(e, Event::Finished(keys) if keys.len() > 1)),
        "{outcome:?}"
    );
}
