//! The nemesis: one fault at a time, on a schedule drawn from a seeded RNG. Process faults: a
//! node is SIGKILLed and restarted from its data directory, or SIGSTOPped and SIGCONTed. Network
//! faults (nodes in network namespaces): a node's link goes down, or the nodes split in two.

use std::fmt;
use std::time::Duration;

use dynamo_node::types::ReplayRng as StdRng;
use dynamo_node::NodeId;
use rand::Rng;
use tokio::time::{sleep, Instant};

use crate::cluster::Cluster;

/// Which faults to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Kills and pauses.
    Processes,
    /// Cut links and splits (the cluster must run in network namespaces).
    Network,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// SIGKILL, then a restart from the data directory.
    Kill,
    /// Every node SIGKILLed at the same instant, then all restarted: what an acknowledged write
    /// left only in a process's memory (not yet handed to the kernel) cannot survive, whichever
    /// node held it, and no surviving replica refills it before the check.
    KillAll,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// The node's link down, then up.
    Cut,
    /// The node and these others cannot reach the rest, then can.
    Split(Vec<NodeId>),
}

/// One fault, as it happened.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// When it started, from the start of the run.
    pub(crate) at: Duration,
    pub(crate) node: NodeId,
    pub(crate) kind: Kind,
    /// How long the node was down or frozen.
    pub(crate) down: Duration,
    /// How long it then took for every node to see every node up again.
    pub(crate) recovered: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            Kind::Kill => "SIGKILL, restarted".to_string(),
            Kind::KillAll => "SIGKILL with every other node at once, all restarted".to_string(),
            Kind::Pause => "SIGSTOP, SIGCONT".to_string(),
            Kind::Cut => "link down, up".to_string(),
            Kind::Split(with) => format!("split off with {with:?}, healed"),
        };
        write!(
            f,
            "{:6.1}s node {}: {what} after {:.1}s, all up {:.1}s later",
            self.at.as_secs_f64(),
            self.node,
            self.down.as_secs_f64(),
            self.recovered.as_secs_f64()
        )
    }
}

/// Injects faults until `run_for` has passed; each fault is healed, and every node seen up
/// again, before the next. Returns the faults.
pub(crate) async fn run(
    cluster: &mut Cluster,
    mode: Mode,
    rng: &mut StdRng,
    run_for: Duration,
) -> Result<Vec<Fault>, String> {
    let start = Instant::now();
    let mut faults = Vec::new();
    loop {
        // Every draw is made whatever happens next, so a seed gives one schedule.
        let gap = Duration::from_millis(rng.gen_range(1_000..3_000));
        let node = rng.gen_range(1..=cluster.n);
        let all = rng.gen_bool(0.2);
        let kind = match (mode, rng.gen_bool(0.5)) {
            (Mode::Processes, true) if all => Kind::KillAll,
            (Mode::Processes, true) => Kind::Kill,
            (Mode::Processes, false) => Kind::Pause,
            (Mode::Network, true) => Kind::Cut,
            (Mode::Network, false) => {
                // A minority: the node alone, or with one other.
                let other = rng.gen_range(1..=cluster.n);
                Kind::Split(if rng.gen_bool(0.5) && other != node {
                    vec![other]
                } else {
                    Vec::new()
                })
            }
        };
        let down = Duration::from_millis(match kind {
            Kind::Kill | Kind::KillAll => rng.gen_range(3_000..=8_000),
            Kind::Pause => rng.gen_range(2_000..=6_000),
            Kind::Cut | Kind::Split(_) => rng.gen_range(3_000..=10_000),
        });
        sleep(gap).await;
        if start.elapsed() >= run_for {
            return Ok(faults);
        }
        let at = start.elapsed();
        match &kind {
            Kind::Kill => {
                cluster.kill(node).await;
                sleep(down).await;
                cluster.restart(node);
            }
            Kind::KillAll => {
                cluster.kill_all().await;
                sleep(down).await;
                cluster.heal();
            }
            Kind::Pause => {
                cluster.pause(node);
                sleep(down).await;
                cluster.resume(node);
            }
            Kind::Cut | Kind::Split(_) => {
                let network = cluster.network().ok_or("network faults need namespaces")?;
                match &kind {
                    Kind::Split(with) => network.split(&[&[node], &with[..]].concat())?,
                    _ => network.cut(node)?,
                }
                sleep(down).await;
                cluster.heal();
            }
        }
        let healed = Instant::now();
        cluster
            .wait_all_up(Duration::from_secs(90))
            .await
            .map_err(|e| format!("after {kind:?} of node {node}: {e}"))?;
        let fault = Fault {
            at,
            node,
            kind,
            down,
            recovered: healed.elapsed(),
        };
        println!("faults: {fault}");
        faults.push(fault);
    }
}
