//! Target planning (paper section 4.6, sloppy quorum and hinted handoff).

use dynamo_quorum::{plan, Mode, Plan, Target};

fn t(node: &'static str, hint: Option<&'static str>) -> Target<&'static str> {
    Target { node, hint }
}

const PREF: [(&str, bool); 5] = [
    ("A", true),
    ("B", true),
    ("C", true),
    ("D", false),
    ("E", false),
];

#[test]
fn all_up_contacts_the_primaries() {
    for mode in [Mode::Sloppy, Mode::Strict] {
        let p = plan(PREF, |_| true, 3, mode);
        assert_eq!(
            p,
            Plan {
                targets: vec![t("A", None), t("B", None), t("C", None)],
                unreachable: vec![]
            }
        );
    }
}

#[test]
fn paper_example_a_down_d_holds_hint_for_a() {
    // "if node A is temporarily down ... a replica that would normally have lived on A will now be
    // sent to node D ... The replica sent to D will have a hint in its metadata that suggests
    // which node was the intended recipient (in this case A)."
    let p = plan(PREF, |n| *n != "A", 3, Mode::Sloppy);
    assert_eq!(p.targets, [t("B", None), t("C", None), t("D", Some("A"))]);
    assert!(p.unreachable.is_empty());
}

#[test]
fn fallbacks_stand_in_for_down_primaries_in_order() {
    let p = plan(PREF, |n| *n != "A" && *n != "C", 3, Mode::Sloppy);
    assert_eq!(
        p.targets,
        [t("B", None), t("D", Some("A")), t("E", Some("C"))]
    );
    // A down fallback is skipped.
    let p = plan(PREF, |n| *n != "A" && *n != "D", 3, Mode::Sloppy);
    assert_eq!(p.targets, [t("B", None), t("C", None), t("E", Some("A"))]);
}

#[test]
fn not_enough_healthy_nodes_leaves_primaries_unreachable() {
    let p = plan(PREF, |n| *n == "B" || *n == "D", 3, Mode::Sloppy);
    assert_eq!(p.targets, [t("B", None), t("D", Some("A"))]);
    assert_eq!(p.unreachable, ["C"]);
}

#[test]
fn strict_counts_down_primaries_as_unreachable() {
    let p = plan(PREF, |n| *n != "A" && *n != "C", 3, Mode::Strict);
    assert_eq!(p.targets, [t("B", None)]);
    assert_eq!(p.unreachable, ["A", "C"]);
}

#[test]
fn duplicates_and_extra_primaries_are_dropped() {
    let pref = [
        ("A", true),
        ("A", true),
        ("B", true),
        ("C", true),
        ("X", true),
        ("D", false),
    ];
    let p = plan(pref, |n| *n != "C", 3, Mode::Sloppy);
    // X is flagged primary but is the fourth: a fallback, it stands in for C.
    assert_eq!(p.targets, [t("A", None), t("B", None), t("X", Some("C"))]);
    let p = plan(pref, |n| *n != "C", 3, Mode::Strict);
    assert_eq!(p.targets, [t("A", None), t("B", None)]);
    assert_eq!(p.unreachable, ["C"]);
}

/// An N far above the preference list plans what the list holds: the plan reserved room for N
/// targets up front, and `usize::MAX` panicked ("capacity overflow").
#[test]
fn a_huge_n_plans_what_the_list_holds() {
    // Sloppy: every node of the list; strict: the primaries the list marks.
    for (mode, targets) in [(Mode::Sloppy, 5), (Mode::Strict, 3)] {
        let p = plan(PREF, |_| true, usize::MAX, mode);
        assert_eq!(p.targets.len(), targets);
    }
}
