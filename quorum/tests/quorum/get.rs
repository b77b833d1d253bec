//! The get coordinator: exact outputs for the paper's cases (section 4.4 reconciliation, read
//! repair, not-found policies, deadlines).

use core::time::Duration;

use dynamo_quorum::ReplyError;
use dynamo_quorum::{
    Answer, FailureReason, Fanout, GetCoordinator, GetMessage, GetOutcome, GetReply,
    NotFoundPolicy, Plan, ReplicaRead, ReplicaWrite, RequestError, RequestOptions, Target,
};

use crate::support::{clock, drain_get, one, set, version, Set};

type Get = GetCoordinator<&'static str, Set>;

fn n3r2() -> RequestOptions {
    RequestOptions::new(3, 2, 2, Duration::from_millis(100)).unwrap()
}

fn answer(node: &'static str, at: u64, reply: GetReply<Set>) -> Answer<&'static str, Set> {
    Answer { node, at, reply }
}

fn repair(node: &'static str, siblings: &Set) -> (&'static str, GetMessage<&'static str, Set>) {
    (
        node,
        GetMessage::Repair(ReplicaWrite {
            siblings: siblings.clone(),
            hint: None,
        }),
    )
}

fn new_get(options: RequestOptions) -> Get {
    let mut get = GetCoordinator::new(options, Plan::primaries(["A", "B", "C"]), 0).unwrap();
    let read = GetMessage::Read(ReplicaRead);
    assert_eq!(
        drain_get(&mut get),
        [("A", read.clone()), ("B", read.clone()), ("C", read)]
    );
    get
}

#[test]
fn paper_4_4_concurrent_versions_are_returned_with_their_context_and_repaired() {
    // D3 = ([Sx,2],[Sy,1]) and D4 = ([Sx,2],[Sz,1]) are concurrent; replica C still has D2.
    let d2 = version(&[("Sx", 2)], "D2");
    let d3 = version(&[("Sx", 2), ("Sy", 1)], "D3");
    let d4 = version(&[("Sx", 2), ("Sz", 1)], "D4");
    let mut get = new_get(n3r2());
    get.handle_message(5, "A", GetReply::Found(one(&d3)))
        .unwrap();
    assert_eq!(get.poll_event(), None);
    get.handle_message(6, "B", GetReply::Found(one(&d4)))
        .unwrap();
    let both = set(&[d3.clone(), d4.clone()]);
    assert_eq!(
        get.poll_event(),
        Some(GetOutcome {
            result: Ok(()),
            siblings: both.clone(),
            context: clock(&[("Sx", 2), ("Sy", 1), ("Sz", 1)]),
            answers: vec![
                answer("A", 5, GetReply::Found(set(&[d3]))),
                answer("B", 6, GetReply::Found(set(&[d4]))),
            ],
            unreachable: 0,
            started: 0,
            decided: 6,
        })
    );
    // No repair before every target answered (or the deadline).
    assert_eq!(drain_get(&mut get), []);
    assert_eq!(get.poll_timeout(), Some(100));
    get.handle_message(9, "C", GetReply::Found(set(&[d2])))
        .unwrap();
    assert_eq!(get.late_answers(), 1);
    // Each replica held only part of the reconciliation: all three are repaired, in answer order.
    assert_eq!(
        drain_get(&mut get),
        [repair("A", &both), repair("B", &both), repair("C", &both)]
    );
    assert!(get.is_complete());
    assert_eq!(get.poll_timeout(), None);
    assert_eq!(get.poll_transmit(), None);
}

#[test]
fn only_stale_and_missing_replicas_are_repaired() {
    let d1 = version(&[("A", 1)], "D1");
    let d2 = version(&[("A", 2)], "D2");
    let mut get = new_get(n3r2());
    get.handle_message(1, "C", GetReply::NotFound).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d2)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    // With the default policy a not-found is an answer: R = 2 is C's nothing and B's D2.
    assert!(outcome.is_success());
    assert_eq!(outcome.siblings, one(&d2));
    get.handle_message(3, "A", GetReply::Found(set(&[d1])))
        .unwrap();
    let latest = set(&[d2]);
    assert_eq!(
        drain_get(&mut get),
        [repair("C", &latest), repair("A", &latest)]
    );
    assert_eq!(get.repaired().copied().collect::<Vec<_>>(), ["C", "A"]);
}

/// A replica that lost its copy neither counts toward R (its "nothing" is not a not-found) nor
/// is left without it: read repair refills it once R other replicas gave their copies (with
/// R + W > N they hold every write acknowledged with it), where a replica that failed gets
/// nothing.
#[test]
fn a_replica_that_lost_its_copy_does_not_count_and_is_repaired() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2());
    get.handle_message(1, "A", GetReply::Lost).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d)))
        .unwrap();
    assert_eq!(
        get.poll_event(),
        None,
        "one answer counts of the two needed"
    );
    get.handle_message(3, "C", GetReply::Found(one(&d)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    assert!(outcome.is_success());
    assert_eq!(drain_get(&mut get), [repair("A", &one(&d))]);
    assert!(get.is_complete());
}

/// With the last (thirty-fourth session of issue 20): a get that heard fewer than R copies
/// besides the lost one does not repair it. The repair ends the replica's lost copy, and one
/// other replica's copy may lack a write acknowledged by the lost replica and the replica that
/// did not answer.
#[test]
fn a_replica_that_lost_its_copy_is_not_repaired_from_fewer_than_r_copies() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2());
    get.handle_message(1, "A", GetReply::Lost).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d)))
        .unwrap();
    get.handle_message(3, "C", GetReply::Failed).unwrap();
    assert!(!get.poll_event().unwrap().is_success());
    assert_eq!(drain_get(&mut get), []);
    assert!(get.is_complete());
}

#[test]
fn up_to_date_replicas_get_no_repair() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2());
    for (i, node) in ["B", "A", "C"].iter().enumerate() {
        get.handle_message(i as u64, *node, GetReply::Found(one(&d)))
            .unwrap();
    }
    assert!(get.poll_event().unwrap().is_success());
    assert_eq!(drain_get(&mut get), []);
    assert!(get.is_complete());
}

#[test]
fn all_not_found_is_a_successful_not_found_without_repair() {
    let mut get = new_get(n3r2());
    get.handle_message(1, "A", GetReply::NotFound).unwrap();
    get.handle_message(2, "B", GetReply::Found(Set::new()))
        .unwrap(); // an empty set is not found too
    let outcome = get.poll_event().unwrap();
    assert!(outcome.is_not_found());
    assert_eq!(outcome.answers[1].reply, GetReply::NotFound);
    get.handle_message(3, "C", GetReply::NotFound).unwrap();
    assert_eq!(drain_get(&mut get), []);
    assert!(get.is_complete());
}

#[test]
fn not_found_as_failure_waits_for_r_found_answers() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2().with_not_found(NotFoundPolicy::Failure));
    get.handle_message(1, "A", GetReply::NotFound).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d)))
        .unwrap();
    assert_eq!(get.poll_event(), None);
    get.handle_message(3, "C", GetReply::Found(one(&d)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.siblings, one(&d));
    assert_eq!(drain_get(&mut get), [repair("A", &set(&[d]))]);
}

#[test]
fn not_found_as_failure_fails_with_not_found() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2().with_not_found(NotFoundPolicy::Failure));
    get.handle_message(1, "A", GetReply::NotFound).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d)))
        .unwrap();
    get.handle_message(3, "C", GetReply::Failed).unwrap();
    let outcome = get.poll_event().unwrap();
    assert_eq!(
        outcome.result,
        Err(FailureReason::NotFound {
            found: 1,
            not_found: 1,
            failed: 1,
            required: 2
        })
    );
    // A failed get still shows what exists, and repairs the replica that had nothing.
    assert_eq!(outcome.siblings, one(&d));
    assert_eq!(drain_get(&mut get), [repair("A", &set(&[d]))]);
}

#[test]
fn too_many_failures_and_deadline() {
    let mut get = new_get(n3r2());
    get.handle_message(1, "A", GetReply::Failed).unwrap();
    get.handle_message(2, "C", GetReply::Failed).unwrap();
    assert_eq!(
        get.poll_event().unwrap().result,
        Err(FailureReason::TooManyFailures {
            failed: 2,
            succeeded: 0,
            required: 2,
            n: 3
        })
    );

    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2());
    get.handle_message(10, "B", GetReply::Found(one(&d)))
        .unwrap();
    get.handle_timeout(100);
    let outcome = get.poll_event().unwrap();
    assert_eq!(
        outcome.result,
        Err(FailureReason::Deadline {
            succeeded: 1,
            required: 2
        })
    );
    assert_eq!(outcome.decided, 100);
    // Listening is over: nothing to repair (only B answered, and it is up to date).
    assert_eq!(drain_get(&mut get), []);
    assert!(get.is_complete());
    assert_eq!(
        get.handle_message(101, "A", GetReply::NotFound),
        Err(ReplyError::ListeningOver)
    );
    assert_eq!(get.ignored(), 1);
    assert_eq!(drain_get(&mut get), []);
}

#[test]
fn repair_at_the_deadline_after_success() {
    let d = version(&[("A", 1)], "D");
    let mut get = new_get(n3r2());
    get.handle_message(10, "B", GetReply::Found(one(&d)))
        .unwrap();
    get.handle_message(11, "C", GetReply::NotFound).unwrap();
    assert!(get.poll_event().unwrap().is_success());
    assert_eq!(drain_get(&mut get), []);
    get.handle_timeout(100); // A never answered
    assert_eq!(drain_get(&mut get), [repair("C", &set(&[d]))]);
    assert!(get.is_complete());
}

#[test]
fn repair_of_a_fallback_carries_its_hint() {
    let d = version(&[("B", 1)], "D");
    let plan = Plan {
        targets: vec![
            Target {
                node: "B",
                hint: None,
            },
            Target {
                node: "D",
                hint: Some("A"),
            },
        ],
        unreachable: vec!["A"],
    };
    let mut get: Get = GetCoordinator::new(n3r2(), plan, 0).unwrap();
    assert_eq!(drain_get(&mut get).len(), 2);
    get.handle_message(1, "D", GetReply::NotFound).unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&d)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    assert_eq!(outcome.unreachable, 1);
    assert_eq!(
        drain_get(&mut get),
        [(
            "D",
            GetMessage::Repair(ReplicaWrite {
                siblings: set(&[d]),
                hint: Some("A")
            })
        )]
    );
}

#[test]
fn tombstones_are_found_versions() {
    let live = version(&[("A", 1)], "D");
    let dead = dynamo_quorum::Version::tombstone(clock(&[("A", 2)]));
    let mut get = new_get(n3r2());
    get.handle_message(1, "A", GetReply::Found(set(&[live])))
        .unwrap();
    get.handle_message(2, "B", GetReply::Found(one(&dead)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    assert!(outcome.siblings.is_tombstone_only());
    assert!(!outcome.is_not_found());
    get.handle_message(3, "C", GetReply::Failed).unwrap();
    assert_eq!(drain_get(&mut get), [repair("A", &set(&[dead]))]);
}

fn first_two(hedge: u64) -> RequestOptions {
    n3r2().with_fanout(Fanout::First {
        reads: 2,
        hedge: Duration::from_millis(hedge),
    })
}

#[test]
fn a_get_asking_the_first_r_reads_nobody_else_when_they_answer() {
    let d1 = version(&[("A", 1)], "v1");
    let mut get = GetCoordinator::new(first_two(30), Plan::primaries(["A", "B", "C"]), 0).unwrap();
    let read = GetMessage::Read(ReplicaRead);
    assert_eq!(drain_get(&mut get), [("A", read.clone()), ("B", read)]);
    assert_eq!(get.asked(), 2);
    // The hedge comes before the deadline while undecided.
    assert_eq!(get.poll_timeout(), Some(30));
    get.handle_message(3, "A", GetReply::Found(one(&d1)))
        .unwrap();
    get.handle_message(4, "B", GetReply::Found(one(&d1)))
        .unwrap();
    assert!(get.poll_event().is_some_and(|o| o.is_success()));
    // Every target asked answered: listening is over, C was never asked and nothing is repaired.
    assert!(get.is_complete());
    assert_eq!(drain_get(&mut get), []);
    assert_eq!(get.poll_timeout(), None);
}

#[test]
fn an_answer_that_does_not_count_asks_the_next_target_and_a_stale_one_is_repaired() {
    let d1 = version(&[("A", 1)], "v1");
    let d2 = version(&[("A", 2)], "v2");
    let mut get = GetCoordinator::new(first_two(30), Plan::primaries(["A", "B", "C"]), 0).unwrap();
    drain_get(&mut get);
    get.handle_message(2, "A", GetReply::Failed).unwrap();
    assert_eq!(drain_get(&mut get), [("C", GetMessage::Read(ReplicaRead))]);
    assert_eq!(get.asked(), 3);
    get.handle_message(3, "B", GetReply::Found(one(&d1)))
        .unwrap();
    assert_eq!(get.poll_event(), None);
    get.handle_message(4, "C", GetReply::Found(one(&d2)))
        .unwrap();
    let outcome = get.poll_event().unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.siblings, one(&d2));
    assert_eq!(drain_get(&mut get), [repair("B", &one(&d2))]);
    assert!(get.is_complete());
}

#[test]
fn at_the_hedge_an_undecided_get_asks_every_remaining_target() {
    let d1 = version(&[("A", 1)], "v1");
    let mut get = GetCoordinator::new(first_two(30), Plan::primaries(["A", "B", "C"]), 0).unwrap();
    drain_get(&mut get);
    get.handle_message(5, "A", GetReply::Found(one(&d1)))
        .unwrap();
    get.handle_timeout(29);
    assert_eq!(drain_get(&mut get), []);
    get.handle_timeout(30);
    assert_eq!(drain_get(&mut get), [("C", GetMessage::Read(ReplicaRead))]);
    assert_eq!(get.poll_timeout(), Some(100));
    get.handle_message(31, "C", GetReply::Found(one(&d1)))
        .unwrap();
    assert!(get.poll_event().is_some_and(|o| o.is_success()));
    // B, asked first, may still answer (and be repaired) until the deadline.
    assert!(!get.is_complete());
    get.handle_message(40, "B", GetReply::NotFound).unwrap();
    assert_eq!(drain_get(&mut get), [repair("B", &one(&d1))]);
    assert!(get.is_complete());
}

#[test]
fn a_fanout_outside_r_to_n_is_refused() {
    for reads in [1, 4] {
        let options = n3r2().with_fanout(Fanout::First {
            reads,
            hedge: Duration::from_millis(10),
        });
        assert_eq!(
            options.validate(),
            Err(RequestError::FanoutOutOfRange { reads, r: 2, n: 3 })
        );
        assert!(GetCoordinator::<&str, Set>::new(options, Plan::primaries(["A"]), 0).is_err());
    }
}

/// Review, twentieth session of the project's issue 20: an answer handled at the hedge time,
/// before the hedge's timer ran, fired the hedge (every target counted as asked) and then
/// finished the get, so no read went to the third target; listening then waited for its answer
/// until the deadline, and the stale replica's read repair with it.
#[test]
fn an_answer_at_the_hedge_time_that_finishes_the_get_repairs_at_once() {
    let d1 = version(&[("A", 1)], "v1");
    let mut get = GetCoordinator::new(first_two(30), Plan::primaries(["A", "B", "C"]), 0).unwrap();
    let read = GetMessage::Read(ReplicaRead);
    assert_eq!(drain_get(&mut get), [("A", read.clone()), ("B", read)]);
    get.handle_message(5, "A", GetReply::Found(one(&d1)))
        .unwrap();
    get.handle_message(30, "B", GetReply::NotFound).unwrap();
    assert!(get.poll_event().is_some_and(|o| o.is_success()));
    assert_eq!(
        drain_get(&mut get),
        [repair("B", &one(&d1))],
        "B is repaired now, not at the deadline"
    );
    assert!(get.is_complete(), "nobody else was asked");
}

#[test]
fn unanswered_names_the_targets_sent_a_read_that_have_not_answered() {
    let d1 = version(&[("A", 1)], "v1");
    let mut get = GetCoordinator::new(first_two(30), Plan::primaries(["A", "B", "C"]), 0).unwrap();
    drain_get(&mut get);
    get.handle_message(3, "A", GetReply::Found(one(&d1)))
        .unwrap();
    // C was never asked: only B is silent.
    assert_eq!(get.unanswered().collect::<Vec<_>>(), [&"B"]);
}
