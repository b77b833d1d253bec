//! Target planning: which nodes of a preference list a request contacts.

use crate::Mode;

/// One node a request contacts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Target<Id> {
    /// The node to contact.
    pub node: Id,
    /// For a fallback in a sloppy quorum, the down primary it stands in for (the hint it stores
    /// the write under, to hand it off later). `None` for a primary.
    pub hint: Option<Id>,
}

/// The nodes a request contacts, from [`plan`].
///
/// Fields are public so a caller can also build a plan by hand (a test, a node with its own
/// policy); the coordinators check that it has at most N targets and no node twice. Every one of
/// the N slots without a target counts as a failure from the start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Plan<Id> {
    /// The nodes to contact, in preference-list order: at most N.
    pub targets: Vec<Target<Id>>,
    /// Down primaries that no target stands in for (in strict mode: every down primary).
    /// Informational: the coordinators count the missing slots, `N - targets.len()`.
    pub unreachable: Vec<Id>,
}

impl<Id> Plan<Id> {
    /// A plan contacting exactly these nodes, as primaries (no hints).
    pub fn primaries(nodes: impl IntoIterator<Item = Id>) -> Self {
        Self {
            targets: nodes
                .into_iter()
                .map(|node| Target { node, hint: None })
                .collect(),
            unreachable: Vec::new(),
        }
    }
}

/// Chooses the targets of a request.
///
/// `preference` is the key's preference list as the ring yields it: `(node, is_primary)`, the N
/// primaries first, then fallbacks. A node listed twice is taken once. `is_up` is the caller's
/// view of health (gossip, open links).
///
/// - [`Mode::Sloppy`] (paper section 4.6): the first N healthy nodes of the list. The first
///   `N` nodes flagged primary are the primaries; each fallback taken carries a hint naming a
///   down primary, in list order (the first fallback stands in for the first down primary).
///   Down primaries left without a fallback are `unreachable`.
/// - [`Mode::Strict`]: the healthy ones of the first N primaries; every down primary is
///   `unreachable`, and counts as a failure in the coordinators.
///
/// ```
/// use dynamo_quorum::{plan, Mode, Target};
///
/// let preference = [("a", true), ("b", true), ("c", true), ("d", false), ("e", false)];
/// let up = |n: &&str| *n != "b";
/// let sloppy = plan(preference, up, 3, Mode::Sloppy);
/// assert_eq!(sloppy.targets[2], Target { node: "d", hint: Some("b") });
/// let strict = plan(preference, up, 3, Mode::Strict);
/// assert_eq!(strict.targets.len(), 2);
/// assert_eq!(strict.unreachable, ["b"]);
/// ```
pub fn plan<Id: Clone + PartialEq>(
    preference: impl IntoIterator<Item = (Id, bool)>,
    is_up: impl Fn(&Id) -> bool,
    n: usize,
    mode: Mode,
) -> Plan<Id> {
    // (node, counts as a primary, up); the list is short (N plus a few fallbacks).
    let mut nodes: Vec<(Id, bool, bool)> = Vec::new();
    let mut primaries = 0;
    for (node, primary) in preference {
        if nodes.iter().any(|(seen, _, _)| *seen == node) {
            continue;
        }
        let primary = primary && primaries < n;
        primaries += usize::from(primary);
        let up = is_up(&node);
        nodes.push((node, primary, up));
    }
    let mut out = Plan {
        targets: Vec::with_capacity(n.min(nodes.len())),
        unreachable: Vec::new(),
    };
    match mode {
        Mode::Strict => {
            for (node, primary, up) in nodes {
                if !primary {
                    continue;
                }
                if up {
                    out.targets.push(Target { node, hint: None });
                } else {
                    out.unreachable.push(node);
                }
            }
        }
        Mode::Sloppy => {
            let mut down: Vec<Id> = nodes
                .iter()
                .filter(|(_, primary, up)| *primary && !*up)
                .map(|(node, _, _)| node.clone())
                .collect();
            down.reverse(); // pop() yields them in list order
            for (node, primary, up) in nodes {
                if !up || out.targets.len() == n {
                    continue;
                }
                let hint = if primary { None } else { down.pop() };
                out.targets.push(Target { node, hint });
            }
            down.reverse();
            out.unreachable = down;
        }
    }
    out
}

/// Checks options and plan together before a coordinator starts.
pub(crate) fn check<Id: PartialEq>(
    options: &crate::RequestOptions,
    plan: &Plan<Id>,
) -> Result<(), crate::RequestError> {
    options.validate()?;
    if plan.targets.len() > options.n {
        return Err(crate::RequestError::TooManyTargets {
            targets: plan.targets.len(),
            n: options.n,
        });
    }
    for (second, t) in plan.targets.iter().enumerate() {
        if let Some(first) = plan.targets[..second]
            .iter()
            .position(|other| other.node == t.node)
        {
            return Err(crate::RequestError::DuplicateTarget { first, second });
        }
    }
    // Each node is one replica: named once, as a target or as the node a fallback stands in for.
    fn stands_for<Id>(t: &Target<Id>) -> &Id {
        t.hint.as_ref().unwrap_or(&t.node)
    }
    for (second, t) in plan.targets.iter().enumerate() {
        let Some(hint) = &t.hint else { continue };
        if *hint == t.node {
            return Err(crate::RequestError::OverlappingHint {
                first: second,
                second,
            });
        }
        for (other, o) in plan.targets.iter().enumerate() {
            if other != second && (o.node == *hint || stands_for(o) == hint) {
                let (first, second) = (other.min(second), other.max(second));
                return Err(crate::RequestError::OverlappingHint { first, second });
            }
        }
    }
    Ok(())
}
