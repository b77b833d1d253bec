//! Option validation: typed errors, never panics.

use core::time::Duration;

use dynamo_quorum::{
    Fanout, GetCoordinator, Mode, NotFoundPolicy, Plan, PutCoordinator, RequestError,
    RequestOptions,
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
