//! Properties over arbitrary orders, losses and delays of replica answers, plus planning and
//! option validation laws.

use core::time::Duration;

use dynamo_quorum::{
    plan, Fanout, GetCoordinator, GetMessage, GetReply, Mode, NotFoundPolicy, Plan, PutCoordinator,
    PutReply, RequestOptions, Target,
};
use dynamo_vclock::{Siblings, VClock, Version};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

const DEADLINE: u64 = 50;
/// A node that is never a target: its replies must be ignored.
const STRANGER: u8 = 200;

type Set = Siblings<u8, u8>;

fn below(g: &mut Gen, n: u64) -> u64 {
    u64::arbitrary(g) % n
}

fn arbitrary_set(g: &mut Gen) -> Set {
    let len = 1 + below(g, 3);
    (0..len)
        .map(|_| {
            let mut clock = VClock::new();
            for actor in 0..3u8 {
                for _ in 0..below(g, 3) {
                    clock.increment(actor, 0);
                }
            }
            Version::live(clock, u8::arbitrary(g) % 3)
        })
        .collect()
}

/// What one replica (or a stranger) does.
#[derive(Debug, Clone)]
enum Fate {
    Ack,
    NotFound,
    Found(Set),
    Fail,
}

/// A run: options, how many of the N slots have a target, and the replies with their times
/// (a reply may be lost, duplicated, or come from a stranger).
#[derive(Debug, Clone)]
struct Run {
    n: usize,
    required: usize,
    targets: usize,
    not_found_fails: bool,
    /// Whether the driver calls `handle_timeout` when `poll_timeout` is due, or lets replies at or
    /// past the deadline arrive first.
    fire_timeouts: bool,
    replies: Vec<(u64, u8, Fate)>,
}

impl Arbitrary for Run {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = 1 + below(g, 5) as usize;
        let required = 1 + below(g, n as u64) as usize;
        let targets = if bool::arbitrary(g) {
            n
        } else {
            below(g, n as u64 + 1) as usize
        };
        let mut replies = Vec::new();
        for node in 0..targets as u8 {
            let copies = match below(g, 8) {
                0 | 1 => 0, // lost
                2 => 2,     // duplicated
                _ => 1,
            };
            for _ in 0..copies {
                let fate = match below(g, 4) {
                    0 => Fate::Fail,
                    1 => Fate::NotFound,
                    _ if bool::arbitrary(g) => Fate::Ack,
                    _ => Fate::Found(arbitrary_set(g)),
                };
                replies.push((below(g, 2 * DEADLINE), node, fate));
            }
        }
        if below(g, 4) == 0 {
            replies.push((below(g, 2 * DEADLINE), STRANGER, Fate::Ack));
        }
        // Stable sort by time: ties keep the arbitrary generation order.
        replies.sort_by_key(|(t, _, _)| *t);
        Self {
            n,
            required,
            targets,
            not_found_fails: bool::arbitrary(g),
            fire_timeouts: bool::arbitrary(g),
            replies,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let me = self.clone();
        Box::new((0..self.replies.len()).rev().map(move |i| {
            let mut smaller = me.clone();
            smaller.replies.remove(i);
            smaller
        }))
    }
}

impl Run {
    fn options(&self, r: usize, w: usize) -> RequestOptions {
        let policy = if self.not_found_fails {
            NotFoundPolicy::Failure
        } else {
            NotFoundPolicy::Answer
        };
        RequestOptions::new(self.n, r, w, Duration::from_millis(DEADLINE))
            .unwrap()
            .with_not_found(policy)
    }

    fn plan(&self) -> Plan<u8> {
        Plan::primaries(0..self.targets as u8)
    }

    /// The replies the coordinator accepts: the first from each target, before the deadline.
    fn accepted(&self) -> Vec<(u64, u8, Fate)> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (t, node, fate) in &self.replies {
            if *node == STRANGER || seen.contains(node) || *t >= DEADLINE {
                continue;
            }
            seen.push(*node);
            out.push((*t, *node, fate.clone()));
        }
        out
    }
}

#[quickcheck]
fn put_succeeds_iff_w_acks_before_the_deadline(run: Run) -> bool {
    let w = run.required;
    let mut put: PutCoordinator<u8, Siblings<u8, u8>> = PutCoordinator::new(
        run.options(1, w),
        run.plan(),
        Version::live(VClock::new(), 1),
        0,
    )
    .unwrap();
    let mut outcomes = Vec::new();
    let mut sent = Vec::new();
    let mut drain = |put: &mut PutCoordinator<u8, Siblings<u8, u8>>, outcomes: &mut Vec<_>| {
        outcomes.extend(std::iter::from_fn(|| put.poll_event()));
        while let Some((to, _)) = put.poll_transmit() {
            assert!(!put.is_finished(), "transmit after finishing");
            sent.push(to);
        }
        assert!(put.poll_transmit().is_none() || !put.is_finished());
    };
    drain(&mut put, &mut outcomes);
    for (t, node, fate) in &run.replies {
        if run.fire_timeouts {
            if let Some(d) = put.poll_timeout().filter(|d| d <= t) {
                put.handle_timeout(d);
                drain(&mut put, &mut outcomes);
            }
        }
        let reply = match fate {
            Fate::Ack | Fate::Found(_) => PutReply::Ack,
            Fate::Fail | Fate::NotFound => PutReply::Failed,
        };
        // Strangers and second replies are refused (and counted): part of the run.
        let _ = put.handle_message(*t, *node, reply);
        drain(&mut put, &mut outcomes);
    }
    put.handle_timeout(2 * DEADLINE);
    drain(&mut put, &mut outcomes);

    let acks: Vec<(u64, u8)> = run
        .accepted()
        .into_iter()
        .filter(|(_, _, f)| matches!(f, Fate::Ack | Fate::Found(_)))
        .map(|(t, node, _)| (t, node))
        .collect();
    let [outcome] = outcomes.as_slice() else {
        return false;
    };
    let got: Vec<(u64, u8)> = outcome.acks.iter().map(|a| (a.at, a.node)).collect();
    // A put that is impossible from the start sends nothing.
    let expected_sent: Vec<u8> = if run.n - run.targets > run.n - w {
        Vec::new()
    } else {
        (0..run.targets as u8).collect()
    };
    outcome.is_success() == (acks.len() >= w)
        && (!outcome.is_success() || got == acks[..w])
        && sent == expected_sent
        && put.is_complete()
        && put.poll_timeout().is_none()
}

fn reconcile<'a>(sets: impl IntoIterator<Item = &'a Set>) -> Set {
    let mut out = Set::new();
    for s in sets {
        out.merge(s);
    }
    out
}

#[quickcheck]
fn get_answers_the_first_r_and_repairs_exactly_the_stale(run: Run) -> bool {
    let ok = get_property(&run);
    if !ok {
        eprintln!("failing run: {run:?}");
    }
    ok
}

fn get_property(run: &Run) -> bool {
    let r = run.required;
    let options = run.options(r, 1);
    let mut get: GetCoordinator<u8, Siblings<u8, u8>> =
        GetCoordinator::new(options, run.plan(), 0).unwrap();
    let mut outcomes = Vec::new();
    let mut repairs: Vec<(u8, Set)> = Vec::new();
    let mut drain = |get: &mut GetCoordinator<u8, Siblings<u8, u8>>, outcomes: &mut Vec<_>| {
        outcomes.extend(std::iter::from_fn(|| get.poll_event()));
        while let Some((to, msg)) = get.poll_transmit() {
            match msg {
                GetMessage::Read(_) => assert!(!get.is_finished(), "read after finishing"),
                GetMessage::Repair(write) => {
                    assert!(get.is_finished(), "repair before the outcome");
                    repairs.push((to, write.siblings));
                }
                _ => unreachable!(),
            }
        }
    };
    drain(&mut get, &mut outcomes);
    for (t, node, fate) in &run.replies {
        if run.fire_timeouts {
            if let Some(d) = get.poll_timeout().filter(|d| d <= t) {
                get.handle_timeout(d);
                drain(&mut get, &mut outcomes);
            }
        }
        let reply = match fate {
            Fate::Found(set) => GetReply::Found(set.clone()),
            Fate::NotFound | Fate::Ack => GetReply::NotFound,
            Fate::Fail => GetReply::Failed,
        };
        // Strangers and second replies are refused (and counted): part of the run.
        let _ = get.handle_message(*t, *node, reply);
        drain(&mut get, &mut outcomes);
    }
    get.handle_timeout(2 * DEADLINE);
    drain(&mut get, &mut outcomes);

    // A get that is impossible from the start sends nothing and listens to nothing.
    let accepted = if run.n - run.targets > run.n - r {
        Vec::new()
    } else {
        run.accepted()
    };
    let counted: Vec<Option<&Set>> = accepted
        .iter()
        .filter_map(|(_, _, fate)| match fate {
            Fate::Found(s) => Some(Some(s)),
            Fate::NotFound | Fate::Ack if !run.not_found_fails => Some(None),
            _ => None,
        })
        .collect();
    let [outcome] = outcomes.as_slice() else {
        return false;
    };
    let success = counted.len() >= r;
    if outcome.is_success() != success {
        return false;
    }
    if success {
        let expected = reconcile(counted[..r].iter().flatten().copied());
        if outcome.siblings != expected || outcome.context != expected.context() {
            return false;
        }
    }
    // Read repair: every accepted answer that was not found or does not cover everything seen.
    let merged = reconcile(accepted.iter().filter_map(|(_, _, f)| match f {
        Fate::Found(s) => Some(s),
        _ => None,
    }));
    let expected_repairs: Vec<(u8, Set)> = if merged.is_empty() {
        Vec::new()
    } else {
        accepted
            .iter()
            .filter(|(_, _, f)| match f {
                Fate::Found(s) => !s.covers(&merged),
                Fate::NotFound | Fate::Ack => true,
                Fate::Fail => false,
            })
            .map(|(_, node, _)| (*node, merged.clone()))
            .collect()
    };
    let answers_match = get
        .answers()
        .iter()
        .map(|a| a.node)
        .eq(accepted.iter().map(|(_, node, _)| *node));
    let replies_match = get.answers().iter().zip(&accepted).all(|(a, (t, _, f))| {
        a.at == *t
            && match (&a.reply, f) {
                (GetReply::Found(s), Fate::Found(x)) => s == x,
                (GetReply::NotFound, Fate::NotFound | Fate::Ack) => true,
                (GetReply::Failed, Fate::Fail) => true,
                _ => false,
            }
    });
    repairs == expected_repairs && answers_match && replies_match && get.is_complete()
}

#[quickcheck]
fn option_validation_never_panics(n: u8, r: u8, w: u8) -> bool {
    let (n, r, w) = (usize::from(n % 8), usize::from(r % 10), usize::from(w % 10));
    let valid = n >= 1 && (1..=n).contains(&r) && (1..=n).contains(&w);
    RequestOptions::new(n, r, w, Duration::from_millis(0)).is_ok() == valid
}

#[quickcheck]
fn plans_contact_healthy_distinct_nodes(list: Vec<(u8, bool)>, down: Vec<u8>, n: u8) -> bool {
    let n = usize::from(n % 6);
    let list: Vec<(u8, bool)> = list.into_iter().map(|(id, p)| (id % 12, p)).collect();
    let down: Vec<u8> = down.into_iter().map(|id| id % 12).collect();
    let is_up = |id: &u8| !down.contains(id);
    let mut primaries: Vec<u8> = Vec::new();
    for (i, (id, p)) in list.iter().enumerate() {
        // Only a node's first listing counts.
        if list.iter().position(|(x, _)| x == id) == Some(i) && *p && primaries.len() < n {
            primaries.push(*id);
        }
    }
    let down_primaries: Vec<u8> = primaries.iter().copied().filter(|p| !is_up(p)).collect();
    let mut ok = true;
    for mode in [Mode::Sloppy, Mode::Strict] {
        let p = plan(list.iter().copied(), is_up, n, mode);
        let nodes: Vec<u8> = p.targets.iter().map(|t| t.node).collect();
        ok &= p.targets.len() <= n;
        ok &= nodes.iter().all(is_up);
        ok &= nodes
            .iter()
            .enumerate()
            .all(|(i, x)| !nodes[..i].contains(x));
        let hints: Vec<u8> = p.targets.iter().filter_map(|t| t.hint).collect();
        // Each hint names a distinct down primary; primaries carry none.
        ok &= hints.iter().all(|h| down_primaries.contains(h));
        ok &= hints
            .iter()
            .enumerate()
            .all(|(i, h)| !hints[..i].contains(h));
        ok &= p
            .targets
            .iter()
            .all(|Target { node, hint }| hint.is_none() || !primaries.contains(node));
        // Every down primary is either stood in for or unreachable, never both.
        ok &= down_primaries
            .iter()
            .all(|d| hints.contains(d) != p.unreachable.contains(d));
        if mode == Mode::Strict {
            ok &= nodes.iter().all(|x| primaries.contains(x)) && hints.is_empty();
            ok &= p.unreachable == down_primaries;
        }
    }
    ok
}

/// Hand-off laws (paper 4.6), over arbitrary preference lists, health views and failures: a
/// copy goes only to a healthy node that is neither a target nor the failed node nor a node
/// already given one, carries the hint of the primary the failed target was meant for, is handed
/// at most once per failed target, and never in strict mode or for a target that acknowledged.
#[quickcheck]
fn hand_off_goes_once_to_a_fresh_healthy_node(
    extra: u8,
    down_mask: u16,
    fates: Vec<bool>,
    strict: bool,
) -> bool {
    let nodes: Vec<u8> = (0..3 + extra % 5).collect();
    let up = |n: &u8| down_mask & (1 << n) == 0;
    let mode = if strict { Mode::Strict } else { Mode::Sloppy };
    let options = RequestOptions::new(3, 1, 2, Duration::from_millis(DEADLINE))
        .expect("valid")
        .with_mode(mode);
    let preference: Vec<(u8, bool)> = nodes.iter().map(|&n| (n, n < 3)).collect();
    let planned = plan(preference.clone(), up, 3, mode);
    let targets: Vec<Target<u8>> = planned.targets.clone();
    let Ok(mut put) = PutCoordinator::<u8, Set>::with_siblings(options, planned, Set::default(), 0)
    else {
        return true;
    };
    while put.poll_transmit().is_some() {}
    let mut given: Vec<u8> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let ok = fates.get(i).copied().unwrap_or(false);
        let reply = if ok { PutReply::Ack } else { PutReply::Failed };
        let _ = put.handle_message(1, t.node, reply);
        for attempt in 0..2 {
            let handed = put.hand_off(&t.node, nodes.iter().copied(), up);
            let Some((to, write)) = handed else { continue };
            let intended = t.hint.unwrap_or(t.node);
            let fresh = up(&to)
                && to != t.node
                && to != intended
                && !targets.iter().any(|x| x.node == to)
                && !given.contains(&to);
            if strict || ok || attempt > 0 || !fresh || write.hint != Some(intended) {
                return false;
            }
            given.push(to);
        }
    }
    true
}

/// A get asking its first `reads` targets ([`Fanout::First`]), driven by replicas that answer only
/// once asked: each after its own delay, or never.
#[derive(Clone, Debug)]
struct FanoutRun {
    n: usize,
    r: usize,
    reads: usize,
    hedge: u64,
    not_found_fails: bool,
    /// Per target: the delay of its answer once asked (`None`: lost), and the answer.
    replicas: Vec<(Option<u64>, Fate)>,
}

impl Arbitrary for FanoutRun {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = 1 + below(g, 5) as usize;
        let r = 1 + below(g, n as u64) as usize;
        let reads = r + below(g, (n - r) as u64 + 1) as usize;
        let replicas = (0..n)
            .map(|_| {
                let delay = (below(g, 5) != 0).then(|| below(g, DEADLINE));
                let fate = match below(g, 4) {
                    0 => Fate::Fail,
                    1 => Fate::NotFound,
                    _ => Fate::Found(arbitrary_set(g)),
                };
                (delay, fate)
            })
            .collect();
        Self {
            n,
            r,
            reads,
            hedge: below(g, 2 * DEADLINE),
            not_found_fails: bool::arbitrary(g),
            replicas,
        }
    }
}

impl FanoutRun {
    fn counts(&self, fate: &Fate) -> bool {
        match fate {
            Fate::Found(_) => true,
            Fate::NotFound | Fate::Ack => !self.not_found_fails,
            Fate::Fail => false,
        }
    }
}

/// Reads go to a prefix of the plan: `reads` at once, one more per answer that does not count,
/// all of them at the hedge, none after the outcome; the get succeeds iff R answers that count
/// arrive before the deadline; when nothing failed and the hedge did not pass first, exactly
/// `reads` targets are asked.
#[quickcheck]
fn a_get_with_a_fanout_asks_a_prefix_and_one_more_per_answer_that_does_not_count(
    run: FanoutRun,
) -> bool {
    let policy = if run.not_found_fails {
        NotFoundPolicy::Failure
    } else {
        NotFoundPolicy::Answer
    };
    let options = RequestOptions::new(run.n, run.r, 1, Duration::from_millis(DEADLINE))
        .unwrap()
        .with_not_found(policy)
        .with_fanout(Fanout::First {
            reads: run.reads,
            hedge: Duration::from_millis(run.hedge),
        });
    let mut get: GetCoordinator<u8, Set> =
        GetCoordinator::new(options, Plan::primaries(0..run.n as u8), 0).unwrap();
    let mut asked: Vec<u8> = Vec::new();
    // Answers due: (time, target).
    let mut due: Vec<(u64, u8)> = Vec::new();
    let mut outcome = None;
    let mut not_counting = 0;
    let mut now = 0;
    loop {
        while let Some((to, msg)) = get.poll_transmit() {
            if let GetMessage::Read(_) = msg {
                if outcome.is_some() || asked.contains(&to) || usize::from(to) != asked.len() {
                    return false;
                }
                asked.push(to);
                if let (Some(delay), _) = &run.replicas[usize::from(to)] {
                    due.push((now + delay, to));
                }
            }
        }
        if outcome.is_none() {
            outcome = get.poll_event();
            let expected = if now >= run.hedge {
                run.n
            } else {
                (run.reads + not_counting).min(run.n)
            };
            if outcome.is_none() && asked.len() != expected {
                return false;
            }
        }
        due.sort();
        let next_answer = due.first().map(|(t, _)| *t);
        let next = match (next_answer, get.poll_timeout()) {
            (Some(a), Some(t)) if t < a => {
                now = t;
                get.handle_timeout(t);
                continue;
            }
            (Some(a), _) => a,
            (None, Some(t)) => {
                now = t;
                get.handle_timeout(t);
                continue;
            }
            (None, None) => break,
        };
        let (_, node) = due.remove(0);
        now = next;
        let fate = &run.replicas[usize::from(node)].1;
        if get.poll_event().is_none() && outcome.is_none() && !run.counts(fate) {
            not_counting += 1;
        }
        let reply = match fate {
            Fate::Found(set) => GetReply::Found(set.clone()),
            Fate::NotFound | Fate::Ack => GetReply::NotFound,
            Fate::Fail => GetReply::Failed,
        };
        let _ = get.handle_message(now, node, reply);
    }
    let Some(outcome) = outcome else {
        return false;
    };
    let counting = get
        .answers()
        .iter()
        .filter(|a| a.at < DEADLINE && run.counts(&fate_of(&a.reply)))
        .count();
    let clean = run
        .replicas
        .iter()
        .take(run.reads)
        .all(|(delay, fate)| delay.is_some_and(|d| d < run.hedge) && run.counts(fate));
    outcome.is_success() == (counting >= run.r)
        && (!clean || asked.len() == run.reads)
        && get.is_complete()
}

fn fate_of(reply: &GetReply<Set>) -> Fate {
    match reply {
        GetReply::Found(set) => Fate::Found(set.clone()),
        GetReply::NotFound => Fate::NotFound,
        _ => Fate::Fail,
    }
}
