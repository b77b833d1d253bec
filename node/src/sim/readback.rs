//! Reading every key back through the client path once a run has settled: [`Sim::read_back`].
//!
//! The lost-write and convergence checks look at the stores; a bug on the read path (a get that
//! drops a sibling, answers "not found" from a replica that lost its copy, or keeps a value a
//! tombstone covers) passes them. After settling, every replica of a key holds the same
//! versions, so a get through any node must answer exactly the live values they hold.

use std::collections::BTreeSet;

use super::Sim;
use crate::message::ClientReply;

impl Sim {
    /// Gets every key the history names through every running node (by the client path, with
    /// the nodes' default options; the gets are recorded and checked like any other), and
    /// compares each answer with the live values the key's primaries hold. Call it once the run
    /// has settled ([`Sim::settle`]).
    pub fn read_back(&mut self) -> ReadBack {
        let keys: BTreeSet<u32> = self
            .history
            .ops()
            .map(|o| o.key)
            .filter(|&k| k != u32::MAX)
            .collect();
        let state = self.final_state();
        let mut back = ReadBack::default();
        for node in self.running() {
            for &key in &keys {
                let held: BTreeSet<Vec<u8>> = state
                    .keys
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .flat_map(|(_, sibs)| sibs.live_values().map(|o| o.bytes.to_vec()))
                    .collect();
                back.gets += 1;
                // A node restarted late may turn reads down until it has compared its ring
                // with a peer's: a failed get is tried again, twice, a second apart.
                let mut answered = Err(String::new());
                for attempt in 0..3 {
                    if attempt > 0 {
                        self.run_for(1_000);
                    }
                    answered = match self.get(node, key) {
                        Some(ClientReply::Got { values, .. }) => Ok(values
                            .into_iter()
                            .map(|v| v.to_vec())
                            .collect::<BTreeSet<_>>()),
                        Some(ClientReply::Failed(e)) => Err(e.to_string()),
                        Some(other) => Err(format!("{other:?}")),
                        None => Err("no answer".to_owned()),
                    };
                    if answered.is_ok() {
                        break;
                    }
                }
                match answered {
                    Ok(got) if got == held => {}
                    Ok(got) => back.differ.push(format!(
                        "key {key} through node {node}: {} values, the primaries hold {} ({} \
                         missing, {} extra)",
                        got.len(),
                        held.len(),
                        held.difference(&got).count(),
                        got.difference(&held).count()
                    )),
                    Err(e) => back
                        .failed
                        .push(format!("key {key} through node {node}: {e}")),
                }
            }
        }
        back
    }
}

/// What [`Sim::read_back`] found.
#[derive(Debug, Clone, Default)]
pub struct ReadBack {
    /// Gets sent.
    pub gets: usize,
    /// Answers whose values differ from what the key's primaries hold.
    pub differ: Vec<String>,
    /// Gets that failed or got no answer (on a failing disk, some reads fail).
    pub failed: Vec<String>,
}
