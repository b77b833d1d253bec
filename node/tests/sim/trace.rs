//! The simulator's replica log: when each replica received a write and answered a read.

use dynamo_node::sim::dist::Dist;
use dynamo_node::sim::net::LinkConfig;
use dynamo_node::sim::trace::ReplicaEvent;
use dynamo_node::sim::workload::{key_bytes, Workload};
use dynamo_node::sim::{Sim, SimConfig};
use dynamo_node::{ClientOptions, ClientReply, ClientRequest, NodeConfig, NodeId};

#[test]
fn a_replica_answer_holds_the_put_exactly_when_the_write_reached_it_first() {
    let mut sim = Sim::new(SimConfig {
        seed: 5,
        nodes: 5,
        node: NodeConfig {
            n: 3,
            r: 3,
            w: 1,
            read_repair: false,
            sync_interval: None,
            ..NodeConfig::default()
        },
        link: LinkConfig {
            latency: Dist::Normal {
                mean: 10.0,
                std_dev: 4.0,
            },
            ..LinkConfig::default()
        },
        workload: Workload {
            clients: 0,
            ..Workload::default()
        },
        ..SimConfig::default()
    })
    .expect("cluster starts");
    sim.run_for(2_000);
    sim.record_replicas(true);
    let (mut reads, mut fresh, mut stale) = (0, 0, 0);
    for key in 0..40u32 {
        let primaries: Vec<NodeId> = sim
            .node(0)
            .expect("running")
            .ring()
            .preference_list(&key_bytes(key))
            .primaries()
            .copied()
            .collect();
        let outsider = (0..5).find(|n| !primaries.contains(n)).expect("5 > N");
        let op = sim.next_op_id();
        let put = sim.put(primaries[0], key, Vec::new());
        assert!(matches!(put, Some(ClientReply::Stored { .. })), "{put:?}");
        let get = ClientRequest::Get {
            key: key_bytes(key),
            options: ClientOptions::default(),
        };
        let reply = sim.call(outsider, get, 5_000);
        assert!(matches!(reply, Some(ClientReply::Got { .. })), "{reply:?}");
        let events = sim.take_replica_events();
        for e in &events {
            let ReplicaEvent::Read {
                answered,
                arrived,
                replica,
                coordinator,
                key: k,
                ops,
            } = e
            else {
                continue;
            };
            assert_eq!((*coordinator, *k), (outsider, key));
            assert!(answered <= arrived);
            reads += 1;
            let written_before = events.iter().any(|w| {
                matches!(w, ReplicaEvent::Write { at, replica: r, key: wk, ops }
                    if r == replica && *wk == key && at <= answered && ops.contains(&op))
            }) || *replica == primaries[0];
            assert_eq!(
                ops.contains(&op),
                written_before,
                "replica {replica} key {key}"
            );
            if ops.contains(&op) {
                fresh += 1;
            } else {
                stale += 1;
            }
        }
    }
    assert_eq!(reads, 40 * 3, "every replica's answer is logged");
    assert!(fresh > 0 && stale > 0, "fresh {fresh}, stale {stale}");
}
