//! Option validation: typed errors, never panics.

use core::time::Duration;

use dynamo_quorum::{
    Fanout, GetCoordinator, Mode, NotFoundPolicy, Plan, PutCoordinator, RequestError,
    RequestOptions, Target,
};

use crate::support::version;

#[test]
fn valid_options_keep_defaults() {
    let o = RequestOptions::new(3, 2, 2, Duration::from_millis(100)).unwrap();
    assert_eq!(o.mode, Mode::Sloppy);
    assert_eq!(o.not_found, NotFoundPolicy::Answer);
    let o = o
        .with_mode(Mode::Strict)
        .with_not_found(NotFoundPolicy::Failure);
    assert_eq!(
        (o.mode, o.not_found),
        (Mode::Strict, NotFoundPolicy::Failure)
    );
}

#[test]
fn invalid_options_are_typed_errors() {
    assert_eq!(
        RequestOptions::new(0, 1, 1, Duration::from_millis(0)),
        Err(RequestError::ZeroN)
    );
    assert_eq!(
        RequestOptions::new(3, 0, 1, Duration::from_millis(0)),
        Err(RequestError::ZeroR)
    );
    assert_eq!(
        RequestOptions::new(3, 1, 0, Duration::from_millis(0)),
        Err(RequestError::ZeroW)
    );
    assert_eq!(
        RequestOptions::new(3, 4, 1, Duration::from_millis(0)),
        Err(RequestError::RLargerThanN { r: 4, n: 3 })
    );
    assert_eq!(
        RequestOptions::new(3, 1, 5, Duration::from_millis(0)),
        Err(RequestError::WLargerThanN { w: 5, n: 3 })
    );
}

#[test]
fn coordinators_refuse_literal_invalid_options_and_plans() {
    let bad = RequestOptions {
        n: 2,
        r: 3,
        w: 1,
        timeout: Duration::from_millis(10),
        mode: Mode::Sloppy,
        not_found: NotFoundPolicy::Answer,
        fanout: Fanout::All,
    };
    let plan = Plan::primaries(["a", "b"]);
    let err =
        GetCoordinator::<&str, dynamo_vclock::Siblings<&str, &str>>::new(bad, plan.clone(), 0)
            .unwrap_err();
    assert_eq!(err, RequestError::RLargerThanN { r: 3, n: 2 });
    let err = PutCoordinator::new(bad, plan, version(&[("a", 1)], "v"), 0).unwrap_err();
    assert_eq!(err, RequestError::RLargerThanN { r: 3, n: 2 });

    let ok = RequestOptions::new(2, 1, 1, Duration::from_millis(10)).unwrap();
    let err = PutCoordinator::new(ok, Plan::primaries(["a", "b", "c"]), version(&[], "v"), 0)
        .unwrap_err();
    assert_eq!(err, RequestError::TooManyTargets { targets: 3, n: 2 });
    let err = GetCoordinator::<&str, dynamo_vclock::Siblings<&str, &str>>::new(
        ok,
        Plan::primaries(["a", "a"]),
        0,
    )
    .unwrap_err();
    assert_eq!(
        err,
        RequestError::DuplicateTarget {
            first: 0,
            second: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "the plan names the same node at positions 0 and 1"
    );
}

/// Review of the quorum crate (the project's twenty-ninth session): a hand-built plan with a
/// fallback standing in for a node that is itself a target, or two fallbacks standing in for
/// the same node, was taken: W = 2 was met by a primary and a hint meant for that same primary
/// (one replica held the write, the client heard two), or by two hints for one node. Refused
/// now, as a node named twice is.
#[test]
fn a_plan_whose_fallbacks_overlap_is_refused() {
    let ok = RequestOptions::new(3, 2, 2, Duration::from_millis(10)).unwrap();
    let t = |node: &'static str, hint: Option<&'static str>| Target { node, hint };
    let cases = [
        // d stands in for a, which is a target.
        (vec![t("a", None), t("d", Some("a")), t("c", None)], (0, 1)),
        // d stands in for e, which comes later.
        (vec![t("d", Some("e")), t("e", None)], (0, 1)),
        // d and f both stand in for b.
        (
            vec![t("a", None), t("d", Some("b")), t("f", Some("b"))],
            (1, 2),
        ),
        // d stands in for itself.
        (vec![t("d", Some("d"))], (0, 0)),
    ];
    for (targets, (first, second)) in cases {
        let plan = Plan {
            targets: targets.clone(),
            unreachable: vec![],
        };
        let err = PutCoordinator::new(ok, plan, version(&[], "v"), 0).unwrap_err();
        assert_eq!(
            err,
            RequestError::OverlappingHint { first, second },
            "{targets:?}"
        );
    }
    // A plan of the crate's own stays fine: b down, d stands in for it.
    let plan = dynamo_quorum::plan(
        [("a", true), ("b", true), ("c", true), ("d", false)],
        |node| *node != "b",
        3,
        Mode::Sloppy,
    );
    assert_eq!(plan.targets[2], t("d", Some("b")));
    assert!(PutCoordinator::new(ok, plan, version(&[], "v"), 0).is_ok());
}

/// The documented order at the deadline: an answer handled at `now >= deadline` comes after it,
/// and is refused (the coordinator stopped listening), not recorded.
#[test]
fn an_answer_at_the_deadline_is_refused() {
    use dynamo_quorum::{GetReply, ReplyError};
    let ok = RequestOptions::new(3, 2, 2, Duration::from_millis(100)).unwrap();
    let mut get = GetCoordinator::<&str, dynamo_vclock::Siblings<&str, &str>>::new(
        ok,
        Plan::primaries(["a", "b", "c"]),
        0,
    )
    .unwrap();
    while get.poll_transmit().is_some() {}
    get.handle_message(10, "a", GetReply::NotFound).unwrap();
    get.handle_message(20, "b", GetReply::NotFound).unwrap();
    assert_eq!(
        get.handle_message(100, "c", GetReply::NotFound),
        Err(ReplyError::ListeningOver)
    );
}
