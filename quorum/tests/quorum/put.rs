//! The put coordinator: exact outputs for the paper's cases.

use core::time::Duration;

use dynamo_quorum::ReplyError;
use dynamo_quorum::{
    plan, FailureReason, Mode, Plan, PutCoordinator, PutOutcome, PutReply, ReplicaWrite,
    RequestOptions, Timed, Value,
};

use crate::support::{clock, drain_put, set, version, Set};

type Put = PutCoordinator<&'static str, Set>;

fn timed(node: &'static str, at: u64) -> Timed<&'static str> {
    Timed { node, at }
}

fn n3w2() -> RequestOptions {
    RequestOptions::new(3, 2, 2, Duration::from_millis(100)).unwrap()
}

#[test]
fn writes_one_version_per_target_and_succeeds_at_w() {
    let v = version(&[("A", 1)], "v1");
    let mut put: Put =
        PutCoordinator::new(n3w2(), Plan::primaries(["A", "B", "C"]), v.clone(), 0).unwrap();
    let write = ReplicaWrite {
        siblings: set(&[v]),
        hint: None,
    };
    assert_eq!(
        drain_put(&mut put),
        [("A", write.clone()), ("B", write.clone()), ("C", write)]
    );
    assert_eq!(put.poll_timeout(), Some(100));
    put.handle_message(3, "A", PutReply::Ack).unwrap();
    assert_eq!(put.poll_event(), None);
    assert!(!put.is_finished());
    put.handle_message(8, "C", PutReply::Ack).unwrap();
    assert_eq!(
        put.poll_event(),
        Some(PutOutcome {
            result: Ok(()),
            acks: vec![timed("A", 3), timed("C", 8)],
            failures: vec![],
            unreachable: 0,
            started: 0,
            decided: 8,
        })
    );
    assert_eq!(put.poll_event(), None);
    assert!(put.is_finished() && !put.is_complete());
    // The third replica answers late: counted, nothing emitted.
    put.handle_message(12, "B", PutReply::Ack).unwrap();
    assert_eq!(put.late_acks(), 1);
    assert!(put.is_complete());
    assert_eq!(put.poll_timeout(), None);
    assert_eq!(put.poll_transmit(), None);
    assert_eq!(put.poll_event(), None);
}

#[test]
fn sloppy_fallback_gets_the_hint() {
    let p = plan(
        [("A", true), ("B", true), ("C", true), ("D", false)],
        |n| *n != "A",
        3,
        Mode::Sloppy,
    );
    let v = version(&[("B", 1)], "v1");
    let mut put: Put = PutCoordinator::new(n3w2(), p, v.clone(), 0).unwrap();
    let sent = drain_put(&mut put);
    let hints: Vec<_> = sent.iter().map(|(to, w)| (*to, w.hint)).collect();
    assert_eq!(hints, [("B", None), ("C", None), ("D", Some("A"))]);
    // The fallback's acknowledgement counts toward W like any other.
    put.handle_message(1, "D", PutReply::Ack).unwrap();
    put.handle_message(2, "B", PutReply::Ack).unwrap();
    assert!(put.poll_event().unwrap().is_success());
}

#[test]
fn fails_as_soon_as_w_is_out_of_reach() {
    let mut put: Put = PutCoordinator::new(
        n3w2(),
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        0,
    )
    .unwrap();
    assert_eq!(drain_put(&mut put).len(), 3);
    put.handle_message(4, "B", PutReply::Failed).unwrap();
    put.handle_message(5, "A", PutReply::Ack).unwrap();
    assert_eq!(put.poll_event(), None);
    put.handle_message(6, "C", PutReply::Failed).unwrap();
    assert_eq!(
        put.poll_event(),
        Some(PutOutcome {
            result: Err(FailureReason::TooManyFailures {
                failed: 2,
                succeeded: 1,
                required: 2,
                n: 3
            }),
            acks: vec![timed("A", 5)],
            failures: vec![timed("B", 4), timed("C", 6)],
            unreachable: 0,
            started: 0,
            decided: 6,
        })
    );
    assert!(put.is_complete());
}

#[test]
fn fails_at_the_deadline_with_the_acks_it_had() {
    let mut put: Put = PutCoordinator::new(
        n3w2(),
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        10,
    )
    .unwrap();
    // The deadline is the creation time plus the timeout.
    assert_eq!(put.deadline(), 110);
    drain_put(&mut put);
    put.handle_message(20, "A", PutReply::Ack).unwrap();
    put.handle_timeout(109); // early: nothing
    assert_eq!(put.poll_event(), None);
    put.handle_timeout(110);
    let outcome = put.poll_event().unwrap();
    assert_eq!(
        outcome.result,
        Err(FailureReason::Deadline {
            succeeded: 1,
            required: 2
        })
    );
    assert_eq!(outcome.acks, [timed("A", 20)]);
    assert_eq!((outcome.started, outcome.decided), (10, 110));
    assert!(put.is_complete());
    // An ack after the deadline is late, not a success.
    put.handle_message(111, "B", PutReply::Ack).unwrap();
    assert_eq!(put.late_acks(), 1);
    assert_eq!(put.poll_event(), None);
}

#[test]
fn an_ack_at_the_deadline_comes_after_it() {
    let mut put: Put = PutCoordinator::new(
        n3w2(),
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        0,
    )
    .unwrap();
    drain_put(&mut put);
    put.handle_message(50, "A", PutReply::Ack).unwrap();
    put.handle_message(100, "B", PutReply::Ack).unwrap(); // the deadline fires first
    let outcome = put.poll_event().unwrap();
    assert_eq!(
        outcome.result,
        Err(FailureReason::Deadline {
            succeeded: 1,
            required: 2
        })
    );
    assert_eq!(put.late_acks(), 1);
}

#[test]
fn strict_quorum_with_two_primaries_down_fails_at_once_and_sends_nothing() {
    let options = n3w2().with_mode(Mode::Strict);
    let p = plan(
        [("A", true), ("B", true), ("C", true), ("D", false)],
        |n| *n == "A" || *n == "D",
        3,
        Mode::Strict,
    );
    let mut put: Put = PutCoordinator::new(options, p, version(&[], "v"), 7).unwrap();
    assert_eq!(drain_put(&mut put), []);
    assert_eq!(
        put.poll_event(),
        Some(PutOutcome {
            result: Err(FailureReason::TooManyFailures {
                failed: 2,
                succeeded: 0,
                required: 2,
                n: 3
            }),
            acks: vec![],
            failures: vec![],
            unreachable: 2,
            started: 7,
            decided: 7,
        })
    );
    assert!(put.is_complete());
    assert_eq!(put.poll_timeout(), None);
}

#[test]
fn strict_quorum_with_one_primary_down_still_reaches_w() {
    let options = n3w2().with_mode(Mode::Strict);
    let p = plan(
        [("A", true), ("B", true), ("C", true), ("D", false)],
        |n| *n != "B",
        3,
        Mode::Strict,
    );
    let mut put: Put = PutCoordinator::new(options, p, version(&[], "v"), 0).unwrap();
    let to: Vec<_> = drain_put(&mut put).into_iter().map(|(n, _)| n).collect();
    assert_eq!(to, ["A", "C"]);
    put.handle_message(1, "C", PutReply::Ack).unwrap();
    put.handle_message(2, "A", PutReply::Ack).unwrap();
    let outcome = put.poll_event().unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.unreachable, 1);
}

#[test]
fn unknown_and_repeated_replies_are_ignored() {
    let mut put: Put = PutCoordinator::new(
        n3w2(),
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        0,
    )
    .unwrap();
    drain_put(&mut put);
    put.handle_message(1, "A", PutReply::Ack).unwrap();
    assert_eq!(
        put.handle_message(2, "A", PutReply::Ack),
        Err(ReplyError::AlreadyAnswered { position: 0 })
    );
    assert_eq!(
        put.handle_message(3, "A", PutReply::Failed),
        Err(ReplyError::AlreadyAnswered { position: 0 })
    );
    assert_eq!(
        put.handle_message(4, "Z", PutReply::Ack),
        Err(ReplyError::NotATarget)
    );
    assert_eq!(put.ignored(), 3);
    assert_eq!(put.poll_event(), None);
}

#[test]
fn a_known_down_link_before_sending_skips_that_write() {
    let mut put: Put = PutCoordinator::new(
        n3w2(),
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        0,
    )
    .unwrap();
    put.handle_message(0, "B", PutReply::Failed).unwrap();
    let to: Vec<_> = drain_put(&mut put).into_iter().map(|(n, _)| n).collect();
    assert_eq!(to, ["A", "C"]);
}

#[test]
fn w1_succeeds_on_the_local_write() {
    let options = RequestOptions::new(3, 1, 1, Duration::from_millis(100)).unwrap();
    let mut put: Put = PutCoordinator::new(
        options,
        Plan::primaries(["A", "B", "C"]),
        version(&[], "v"),
        0,
    )
    .unwrap();
    drain_put(&mut put);
    put.handle_message(0, "A", PutReply::Ack).unwrap();
    assert!(put.poll_event().unwrap().is_success());
}

#[test]
fn delete_is_a_put_of_a_tombstone() {
    let ctx = clock(&[("A", 2)]);
    let mut put: Put =
        PutCoordinator::delete(n3w2(), Plan::primaries(["A", "B", "C"]), ctx.clone(), 0).unwrap();
    let sent = drain_put(&mut put);
    assert_eq!(sent.len(), 3);
    for (_, write) in sent {
        let versions = write.siblings.into_versions();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].value, Value::Tombstone);
        assert_eq!(versions[0].clock, ctx);
    }
}

#[test]
fn with_siblings_replicates_the_whole_set() {
    // After Siblings::put re-stamps an unseen version, both must travel.
    let s = set(&[version(&[("A", 2)], "new"), version(&[("B", 1)], "other")]);
    let mut put: Put =
        PutCoordinator::with_siblings(n3w2(), Plan::primaries(["A", "B"]), s.clone(), 0).unwrap();
    for (_, write) in drain_put(&mut put) {
        assert_eq!(write.siblings, s);
    }
}

/// Paper section 4.6: a target that fails after the plan was made hands its copy to the next
/// healthy node of the preference list, with a hint naming the primary it was meant for.
#[test]
fn a_target_that_fails_hands_its_copy_to_the_next_healthy_node_once() {
    let v = version(&[("A", 1)], "v1");
    let preference = ["A", "B", "C", "D", "E"];
    let mut put: Put =
        PutCoordinator::new(n3w2(), Plan::primaries(["A", "B", "C"]), v.clone(), 0).unwrap();
    drain_put(&mut put);
    put.handle_message(3, "A", PutReply::Ack).unwrap();
    put.handle_message(4, "C", PutReply::Failed).unwrap();
    // D is down: E takes C's copy, as a hint for C.
    assert_eq!(
        put.hand_off(&"C", preference, |n| *n != "D"),
        Some((
            "E",
            ReplicaWrite {
                siblings: set(std::slice::from_ref(&v)),
                hint: Some("C"),
            }
        ))
    );
    // Once per failed target; an acknowledged target has nothing to hand off.
    assert_eq!(put.hand_off(&"C", preference, |_| true), None);
    assert_eq!(put.hand_off(&"A", preference, |_| true), None);
    // The copy is not a target: W still needs B.
    assert_eq!(put.poll_event(), None);
    put.handle_message(5, "B", PutReply::Failed).unwrap();
    // D is back up; E already holds a copy for this put.
    assert_eq!(
        put.hand_off(&"B", preference, |_| true),
        Some((
            "D",
            ReplicaWrite {
                siblings: set(&[v]),
                hint: Some("B"),
            }
        ))
    );
    assert!(put.poll_event().is_some_and(|o| !o.is_success()));
}

#[test]
fn a_failed_fallback_hands_on_the_hint_it_carried_and_strict_puts_hand_off_nothing() {
    let v = version(&[("A", 1)], "v1");
    let preference = [
        ("A", true),
        ("B", true),
        ("C", true),
        ("D", false),
        ("E", false),
    ];
    let sloppy = plan(preference, |n| *n != "B", 3, Mode::Sloppy);
    let mut put: Put = PutCoordinator::new(n3w2(), sloppy, v.clone(), 0).unwrap();
    drain_put(&mut put);
    // D stood in for B; it fails too: E takes the copy, still for B.
    put.handle_message(2, "D", PutReply::Failed).unwrap();
    let nodes = preference.map(|(n, _)| n);
    let (to, write) = put.hand_off(&"D", nodes, |n| *n != "B").expect("E is up");
    assert_eq!((to, write.hint), ("E", Some("B")));

    let strict_options = n3w2().with_mode(Mode::Strict);
    let strict = plan(preference, |_| true, 3, Mode::Strict);
    let mut put: Put = PutCoordinator::new(strict_options, strict, v, 0).unwrap();
    drain_put(&mut put);
    put.handle_message(2, "C", PutReply::Failed).unwrap();
    assert_eq!(put.hand_off(&"C", nodes, |_| true), None);
}

/// A W far above the plan's targets: the coordinator reserved room for W acknowledgements up
/// front, and `usize::MAX` panicked ("capacity overflow"). It now fails for want of acks.
#[test]
fn a_huge_w_does_not_reserve_room_for_it() {
    let options =
        RequestOptions::new(usize::MAX, 1, usize::MAX, Duration::from_millis(100)).unwrap();
    let put = Put::new(
        options,
        Plan::primaries(["A"]),
        version(&[("A", 1)], "v"),
        0,
    );
    assert!(put.is_ok());
}

#[test]
fn unanswered_names_the_targets_sent_a_write_that_have_not_answered() {
    let v = version(&[("A", 1)], "v1");
    let mut put: Put = PutCoordinator::new(n3w2(), Plan::primaries(["A", "B", "C"]), v, 0).unwrap();
    // Nothing sent yet: nobody is silent.
    assert_eq!(put.unanswered().count(), 0);
    drain_put(&mut put);
    put.handle_message(3, "A", PutReply::Ack).unwrap();
    put.handle_message(4, "C", PutReply::Failed).unwrap();
    assert_eq!(put.unanswered().collect::<Vec<_>>(), [&"B"]);
    put.handle_timeout(100);
    assert_eq!(put.unanswered().collect::<Vec<_>>(), [&"B"]);
}
