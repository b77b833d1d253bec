//! Growing and shrinking a cluster of real processes under write load, with a SIGKILL in the
//! middle of each ownership transfer.
//!
//! Five nodes are configured, 1-3 start as the cluster; 4 and 5 are configured to join through a
//! staged change (seeds, no initial members, `wait_for_commit`). A few thousand keys of about
//! 1 KiB are preloaded, so that transfers carry real bytes, then the eight workload clients (of
//! `main`) write while: 4 and 5 start and are committed (3 -> 5), then 1 and 2 are committed out
//! (5 -> 3, the data must end on 3, 4 and 5). During each transfer one node taking part (sender or
//! receiver, by the seed) is SIGKILLed and restarted 3 s later. Each change is over when the
//! nodes of the new ring agree on its version and members and nothing is transferring or awaited
//! anywhere. Then the history is judged, every preloaded key is read from each of 3, 4 and 5, and
//! the bytes moved are compared with the minimum: for each replica copy the plan moves, the bytes
//! of its range at its largest replica before the change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_node::client::Client;
use dynamo_node::history::History;
use dynamo_node::types::ReplayRng as StdRng;
use dynamo_node::{ChangePlan, ChangeRequest, ClientOptions, NodeId, NodeStatus};
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, Instant};

use crate::cluster::{Cluster, State};
use crate::workload::{self, Worker, CLIENT_TIMEOUT};
use crate::{env_u64, node_of, CLIENTS, SERIAL};

/// Nodes configured.
const CAPACITY: u64 = 5;
/// Nodes the cluster starts with.
const INITIAL: u64 = 3;
/// Keys preloaded before the workload starts.
const PRELOAD: usize = 2_400;
/// Bytes of a preloaded value.
const VALUE_BYTES: usize = 1_000;
/// How long a killed node stays down.
const DOWN: Duration = Duration::from_secs(3);

fn preload_key(i: usize) -> Vec<u8> {
    format!("bulk-{i:05}").into_bytes()
}

/// A unique value for preloaded key `i`, padded to [`VALUE_BYTES`].
fn preload_value(seed: u64, i: usize) -> Vec<u8> {
    let mut v = format!("bulk-{seed}-{i}-").into_bytes();
    let fill = (i % 26) as u8 + b'a';
    v.resize(VALUE_BYTES, fill);
    v
}

/// What one membership change did.
struct ChangeReport {
    label: String,
    version: u64,
    copies: usize,
    minimum: u64,
    moved: u64,
    took: Duration,
    killed: Option<(NodeId, &'static str, Duration)>,
}

impl ChangeReport {
    fn line(&self) -> String {
        let ratio = self.moved as f64 / self.minimum.max(1) as f64;
        let killed = match self.killed {
            Some((id, role, at)) => {
                format!(
                    "node {id} ({role}) SIGKILLed {:.1} s after commit",
                    at.as_secs_f64()
                )
            }
            None => "no node killed (no transfer seen)".into(),
        };
        format!(
            "{}: committed at ring version {}, {} replica copies planned, moved {} bytes \
             (minimum {}, ratio {ratio:.2}), {:.1} s from commit to agreement; {killed}",
            self.label,
            self.version,
            self.copies,
            self.moved,
            self.minimum,
            self.took.as_secs_f64()
        )
    }
}

fn client(cluster: &Cluster, id: NodeId) -> Client {
    cluster.client_of(id, CLIENT_TIMEOUT)
}

/// The status of each of `ids` that answers.
async fn statuses(cluster: &Cluster, ids: &[NodeId]) -> BTreeMap<NodeId, NodeStatus> {
    let mut out = BTreeMap::new();
    for &id in ids {
        if let Ok(s) = client(cluster, id).status().await {
            out.insert(id, s);
        }
    }
    out
}

fn running(cluster: &Cluster) -> Vec<NodeId> {
    (1..=cluster.n)
        .filter(|&id| cluster.state(id) == State::Running)
        .collect()
}

/// Writes every preloaded key once (eight clients over the initial members).
async fn preload(cluster: &Cluster, seed: u64) {
    let tasks: Vec<_> = (0..8usize)
        .map(|t| {
            let mut c = cluster.client_of(t as u64 % INITIAL + 1, CLIENT_TIMEOUT);
            tokio::spawn(async move {
                for i in (t..PRELOAD).step_by(8) {
                    let mut tries = 0;
                    while let Err(e) = c.put(&preload_key(i), preload_value(seed, i), &[]).await {
                        tries += 1;
                        assert!(tries < 5, "preload of key {i} failed: {e}");
                        sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Every preloaded key, read from each of `nodes` with R = N, must hold its value alone.
/// Returns the problems found (at most a few listed).
async fn check_preloaded(cluster: &Cluster, nodes: &[NodeId], seed: u64) -> Vec<String> {
    let options = ClientOptions {
        r: Some(3),
        ..ClientOptions::default()
    };
    let tasks: Vec<_> = nodes
        .iter()
        .map(|&id| {
            let mut c = cluster.client_of(id, CLIENT_TIMEOUT);
            tokio::spawn(async move {
                let mut bad = Vec::new();
                for i in 0..PRELOAD {
                    let want = preload_value(seed, i);
                    let mut got = c.get_with(&preload_key(i), options).await;
                    if got.is_err() {
                        got = c.get_with(&preload_key(i), options).await; // once more
                    }
                    match got {
                        Ok(g) if !g.values.is_empty() && g.values.iter().all(|v| *v == want) => {}
                        Ok(g) => bad.push(format!(
                            "node {id}: key {i}: {} values, {} of them right",
                            g.values.len(),
                            g.values.iter().filter(|v| **v == want).count()
                        )),
                        Err(e) => bad.push(format!("node {id}: key {i}: {e}")),
                    }
                }
                bad
            })
        })
        .collect();
    let mut bad = Vec::new();
    for t in tasks {
        bad.extend(t.await.unwrap());
    }
    bad
}

/// Plans `request` (asking `ask`) until the plan can be made and names a claimant, then commits
/// it there. Returns the plan, the minimum of bytes to move (measured before the commit) and when
/// the commit was sent. A commit whose answer is lost may have been applied: once `ask` shows a
/// ring of exactly `after`, the last plan sent is the one committed.
async fn plan_and_commit(
    cluster: &Cluster,
    ask: NodeId,
    request: &ChangeRequest,
    after: &[NodeId],
    bound: Duration,
) -> Result<(ChangePlan, u64, Instant), String> {
    let deadline = Instant::now() + bound;
    let mut sent: Option<(ChangePlan, u64, Instant)> = None;
    loop {
        if let Some(sent) = &sent {
            if let Ok(s) = client(cluster, ask).status().await {
                let members: Vec<NodeId> = s.members.iter().map(|m| m.id).collect();
                if members == after && s.ring_version > sent.0.version {
                    println!("faults: the commit went through, its answer was lost");
                    return Ok(sent.clone());
                }
            }
        }
        let attempt = async {
            let plan = client(cluster, ask)
                .plan(request.clone())
                .await
                .map_err(|e| format!("plan at node {ask}: {e}"))?;
            let claimant = plan.claimant.ok_or("no claimant")?;
            // The minimum: each copy that moves, at the size of its range's largest replica.
            let mut sizes: BTreeMap<(NodeId, usize), u64> = BTreeMap::new();
            for m in plan.members.iter().filter(|m| m.copies_before > 0) {
                let got = client(cluster, m.id)
                    .partition_sizes()
                    .await
                    .map_err(|e| format!("partition sizes of node {}: {e}", m.id))?;
                for s in got {
                    sizes.insert((m.id, s.range), s.bytes);
                }
            }
            let minimum: u64 = plan
                .moves
                .iter()
                .map(|mv| {
                    mv.from
                        .iter()
                        .map(|f| sizes.get(&(*f, mv.range)).copied().unwrap_or(0))
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            let at = Instant::now();
            sent = Some((plan.clone(), minimum, at));
            let committed = client(cluster, claimant)
                .commit(plan.version, request.clone())
                .await
                .map_err(|e| format!("commit at node {claimant}: {e}"))?;
            Ok::<_, String>((committed, minimum, at))
        };
        match attempt.await {
            Ok(done) => return Ok(done),
            Err(e) if Instant::now() > deadline => return Err(format!("after {bound:?}: {e}")),
            Err(e) => {
                println!("faults: {e}; again");
                sleep(Duration::from_millis(300)).await
            }
        }
    }
}

/// Bytes pushed by transfers since a phase started, across kills (a restarted node counts from
/// zero again).
#[derive(Default)]
struct Moved {
    base: BTreeMap<NodeId, u64>,
    banked: u64,
}

impl Moved {
    fn start(all: &BTreeMap<NodeId, NodeStatus>) -> Moved {
        Moved {
            base: all
                .iter()
                .map(|(&id, s)| (id, s.counters.transfer_bytes))
                .collect(),
            banked: 0,
        }
    }

    /// `id` is about to be killed, having counted `count`.
    fn bank(&mut self, id: NodeId, count: u64) {
        self.banked += count.saturating_sub(self.base.get(&id).copied().unwrap_or(0));
        self.base.insert(id, 0);
    }

    fn total(&self, all: &BTreeMap<NodeId, NodeStatus>) -> u64 {
        self.banked
            + all
                .iter()
                .map(|(id, s)| {
                    let base = self.base.get(id).copied().unwrap_or(0);
                    s.counters.transfer_bytes.saturating_sub(base)
                })
                .sum::<u64>()
    }
}

/// Commits `request`, SIGKILLs a node taking part in the transfers (a receiver if
/// `kill_receiver`, else a sender; the other kind if none of the wanted kind is seen), restarts it
/// [`DOWN`] later, and waits until `after` agree on a ring of exactly `after` at the committed
/// version or later, and no running node transfers or awaits a range.
async fn change(
    cluster: &mut Cluster,
    label: &str,
    request: ChangeRequest,
    after: &[NodeId],
    kill_receiver: bool,
    rng: &mut StdRng,
) -> Result<ChangeReport, String> {
    let bound = Duration::from_secs(150);
    let ask = after[0];
    let before = statuses(cluster, &running(cluster)).await;
    let (plan, minimum, committed_at) =
        plan_and_commit(cluster, ask, &request, after, bound).await?;
    let version = plan.version + 1;
    let mut moved = Moved::start(&before);
    let deadline = committed_at + bound;
    let mut killed = None;
    let mut rings: BTreeMap<NodeId, (u64, Vec<NodeId>)> = BTreeMap::new();
    loop {
        let all = statuses(cluster, &running(cluster)).await;
        for s in all.values() {
            let ring = (s.ring_version, s.members.iter().map(|m| m.id).collect());
            if rings.get(&s.id) != Some(&ring) {
                println!(
                    "faults: {label}: {:.1} s: node {} at ring v{} {:?}",
                    committed_at.elapsed().as_secs_f64(),
                    s.id,
                    ring.0,
                    ring.1
                );
                rings.insert(s.id, ring);
            }
        }
        if killed.is_none() {
            let senders: Vec<&NodeStatus> =
                all.values().filter(|s| s.transfers_running > 0).collect();
            let receivers: Vec<&NodeStatus> =
                all.values().filter(|s| s.partitions_incoming > 0).collect();
            let (wanted, role) = match kill_receiver {
                true if !receivers.is_empty() => (receivers, "receiver"),
                false if !senders.is_empty() => (senders, "sender"),
                true => (senders, "sender"),
                false => (receivers, "receiver"),
            };
            if !wanted.is_empty() {
                let victim = wanted[rng.gen_range(0..wanted.len())];
                let id = victim.id;
                println!(
                    "faults: {label}: SIGKILL node {id} ({role}: {} transfers running, {} \
                     partitions incoming)",
                    victim.transfers_running, victim.partitions_incoming
                );
                moved.bank(id, victim.counters.transfer_bytes);
                killed = Some((id, role, committed_at.elapsed()));
                cluster.kill(id).await;
                sleep(DOWN).await;
                cluster.restart(id);
                continue;
            }
        }
        let ring_ok = after.iter().all(|id| {
            all.get(id).is_some_and(|s| {
                s.ring_version >= version
                    && s.ring_version == all[&after[0]].ring_version
                    && s.members.iter().map(|m| m.id).collect::<BTreeSet<_>>()
                        == after.iter().copied().collect()
            })
        });
        // A node leaving is done (and stopped after) once it holds nothing for anyone: no
        // transfer, no hint (a fallback's hints may be the only copies of acknowledged writes).
        let quiet = all.len() == running(cluster).len()
            && all.values().all(|s| {
                s.transfers_running == 0
                    && s.partitions_incoming == 0
                    && (after.contains(&s.id) || s.handed_over)
            });
        if ring_ok && quiet {
            return Ok(ChangeReport {
                label: label.to_owned(),
                version,
                copies: plan.moves.len(),
                minimum,
                moved: moved.total(&all),
                took: committed_at.elapsed(),
                killed,
            });
        }
        if Instant::now() > deadline {
            let summary: Vec<String> = all
                .values()
                .map(|s| {
                    format!(
                        "node {}: ring v{} {:?}, {} transfers, {} incoming",
                        s.id,
                        s.ring_version,
                        s.members.iter().map(|m| m.id).collect::<Vec<_>>(),
                        s.transfers_running,
                        s.partitions_incoming
                    )
                })
                .collect();
            return Err(format!(
                "{label}: not done {bound:?} after the commit: {}",
                summary.join("; ")
            ));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// 3 -> 5 (4 and 5 join), then 5 -> 3 (1 and 2 leave); the first kill hits a receiver on even
/// seeds, a sender on odd ones, the second the other kind.
async fn grow_and_shrink(
    cluster: &mut Cluster,
    seed: u64,
    rng: &mut StdRng,
) -> Result<Vec<ChangeReport>, String> {
    let grow = change(
        cluster,
        "grow 3->5",
        ChangeRequest {
            joins: vec![4, 5],
            leaves: Vec::new(),
        },
        &[1, 2, 3, 4, 5],
        seed.is_multiple_of(2),
        rng,
    )
    .await?;
    println!("faults: {}", grow.line());
    let shrink = change(
        cluster,
        "shrink 5->3",
        ChangeRequest {
            joins: Vec::new(),
            leaves: vec![1, 2],
        },
        &[3, 4, 5],
        seed % 2 == 1,
        rng,
    )
    .await?;
    println!("faults: {}", shrink.line());
    Ok(vec![grow, shrink])
}

/// Waits until each of `ids` answers and sees every member of its ring up.
async fn wait_up(cluster: &Cluster, ids: &[NodeId], bound: Duration) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    loop {
        let all = statuses(cluster, ids).await;
        let up = ids
            .iter()
            .all(|id| all.get(id).is_some_and(|s| s.members.iter().all(|m| m.up)));
        if up {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nodes {ids:?} not all up after {bound:?}"));
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_growing_and_shrinking() {
    let _serial = SERIAL.lock().await;
    let seed = env_u64("FAULTS_SEED", 1);
    let test = "acknowledged_writes_survive_growing_and_shrinking";
    let replay =
        format!("FAULTS_SEED={seed} cargo test -p dynamo-node --test faults {test} -- --nocapture");
    println!("faults: replay: {replay}");
    let mut cluster = Cluster::start_partial(CAPACITY, INITIAL);
    println!(
        "faults: nodes 1-{INITIAL} of {CAPACITY} at {} .., data in {}",
        cluster.address(1),
        cluster.dir().display()
    );
    let start = Instant::now();
    let initial: Vec<NodeId> = (1..=INITIAL).collect();
    wait_up(&cluster, &initial, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the cluster never came up: {e}"));
    preload(&cluster, seed).await;
    println!(
        "faults: preloaded {PRELOAD} keys of {VALUE_BYTES} bytes in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let history = Arc::new(Mutex::new(History::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (1..=CLIENTS)
        .map(|c| {
            let worker = Worker::new(c, node_of(c), &cluster, seed, history.clone());
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect();

    let mut rng = StdRng::seed_from_u64(seed);
    for id in INITIAL + 1..=CAPACITY {
        cluster.start_node(id);
    }
    let outcome = grow_and_shrink(&mut cluster, seed, &mut rng).await;
    if outcome.is_ok() {
        cluster.stop(1).await;
        cluster.stop(2).await;
    }
    // Let the workers go on a little against the final ring.
    sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let remaining: Vec<NodeId> = vec![3, 4, 5];
    let settled = workload::settle(&cluster, &remaining, &history, Duration::from_secs(120)).await;
    let report = history.lock().unwrap().check();
    let bad = check_preloaded(&cluster, &remaining, seed).await;
    let last = statuses(&cluster, &remaining).await;
    let rings: BTreeSet<(u64, Vec<NodeId>)> = last
        .values()
        .map(|s| (s.ring_version, s.members.iter().map(|m| m.id).collect()))
        .collect();
    println!(
        "faults: writes acknowledged {} / failed {} / timed out {}; lost {}, resurrected {}, \
         phantoms {}; settled: {settled:?}; preloaded keys wrong: {}; rings of 3-5: {rings:?}; \
         {:.1} s in all",
        report.puts.ok + report.deletes.ok,
        report.puts.failed + report.deletes.failed,
        report.puts.timed_out + report.deletes.timed_out,
        report.lost.len(),
        report.resurrected.len(),
        report.phantoms.len(),
        bad.len(),
        start.elapsed().as_secs_f64()
    );
    println!("faults: {report}");
    for b in bad.iter().take(10) {
        println!("faults: preloaded: {b}");
    }
    let agreed = last.len() == remaining.len()
        && rings.len() == 1
        && rings.iter().all(|(_, m)| *m == remaining);
    let failures = cluster.node_failures();
    for f in &failures {
        println!("faults: {f}");
    }
    let ok = outcome.is_ok()
        && settled.is_ok()
        && report.is_clean()
        && bad.is_empty()
        && agreed
        && failures.is_empty();
    if !ok {
        let dir = cluster.keep_dir();
        println!(
            "faults: kept {} (data directories, node logs)",
            dir.display()
        );
    }
    if let Ok(changes) = &outcome {
        for c in changes {
            println!("faults: {}", c.line());
        }
    }
    println!("faults: replay: {replay}");
    assert!(
        ok,
        "changes: {:?}\nsettled: {settled:?}\n{report}preloaded keys wrong: {}\nrings: {rings:?}\n\
         node failures: {failures:?}\nreplay: {replay}",
        outcome.as_ref().err(),
        bad.len()
    );
    assert!(report.puts.ok > 0, "nothing was tested: {report}");
}
