//! Failure detection in the simulator (paper section 4.8): a crashed node is marked down by every
//! live node within the gossip failure detector's bound, however early in the run it crashed.

use dynamo_node::sim::dist::Dist;
use dynamo_node::sim::net::LinkConfig;
use dynamo_node::sim::workload::Workload;
use dynamo_node::sim::{Sim, SimConfig};
use dynamo_node::{NodeConfig, NodeId};

fn cluster(nodes: usize, seed: u64) -> Sim {
    Sim::new(SimConfig {
        seed,
        nodes,
        node: NodeConfig {
            n: 5,
            r: 1,
            w: 3,
            ..NodeConfig::default()
        },
        link: LinkConfig {
            latency: Dist::Normal {
                mean: 10.0,
                std_dev: 1.0,
            },
            ..LinkConfig::default()
        },
        workload: Workload {
            clients: 0,
            ..Workload::default()
        },
        ..SimConfig::default()
    })
    .expect("cluster starts")
}

/// Live nodes that still believe one of `crashed` is up.
fn believers(sim: &Sim, crashed: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut v = Vec::new();
    for live in sim.running() {
        for &c in crashed {
            if sim.node(live).is_some_and(|core| core.is_up(c)) {
                v.push((live, c));
            }
        }
    }
    v
}

#[test]
fn a_node_crashed_after_it_was_heard_is_marked_down_by_every_live_node() {
    let mut sim = cluster(10, 3);
    sim.run_for(5_000);
    sim.crash(1, true);
    sim.crash(2, true);
    sim.run_for(15_000);
    assert_eq!(believers(&sim, &[1, 2]), vec![]);
}

#[test]
fn a_node_crashed_before_anyone_heard_from_it_is_marked_down_by_every_live_node() {
    // The seed experiments crashed nodes at the first instant of the run, before a single gossip
    // round: the live nodes knew the crashed ones only from their initial member list.
    let mut sim = cluster(10, 3);
    sim.crash(1, true);
    sim.crash(2, true);
    sim.run_for(15_000);
    assert_eq!(believers(&sim, &[1, 2]), vec![]);
}
