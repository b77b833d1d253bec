//! The nemesis: one node at a time is SIGKILLed and restarted from its data directory, or
//! SIGSTOPped and SIGCONTed, on a schedule drawn from a seeded RNG.

use std::fmt;
use std::time::Duration;

use dynamo_node::NodeId;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::{sleep, Instant};

use crate::cluster::Cluster;

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// SIGKILL, then a restart from the data directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
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
        let what = match self.kind {
            Kind::Kill => "SIGKILL, restarted",
            Kind::Pause => "SIGSTOP, SIGCONT",
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
    rng: &mut StdRng,
    run_for: Duration,
) -> Result<Vec<Fault>, String> {
    let start = Instant::now();
    let mut faults = Vec::new();
    loop {
        // Every draw is made whatever happens next, so a seed gives one schedule.
        let gap = Duration::from_millis(rng.gen_range(1_000..3_000));
        let node = rng.gen_range(1..=cluster.n);
        let kind = if rng.gen_bool(0.5) {
            Kind::Kill
        } else {
            Kind::Pause
        };
        let down = match kind {
            Kind::Kill => Duration::from_millis(rng.gen_range(3_000..=8_000)),
            Kind::Pause => Duration::from_millis(rng.gen_range(2_000..=6_000)),
        };
        sleep(gap).await;
        if start.elapsed() >= run_for {
            return Ok(faults);
        }
        let at = start.elapsed();
        match kind {
            Kind::Kill => {
                cluster.kill(node).await;
                sleep(down).await;
                cluster.restart(node);
            }
            Kind::Pause => {
                cluster.pause(node);
                sleep(down).await;
                cluster.resume(node);
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
