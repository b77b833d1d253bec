//! A node joins a running cluster and receives its ranges.

use crate::{eventually, replicas_of, wait_ready, wait_up, Spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_node_receives_its_ranges() {
    // Ports for four nodes; the first three form the cluster.
    let spec = Spec::new(4, None);
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        let mut rc = spec.runtime_config(id);
        rc.node.initial_members = vec![1, 2, 3];
        rc.node.sync_interval = Some(200);
        rc.node.seeds.retain(|(s, _)| *s != 4);
        nodes.push(dynamo_node::runtime::Node::start(rc).await.unwrap());
    }
    wait_ready(&spec, &[1, 2, 3]).await;
    let mut client = spec.client_of(1);
    let mut written = Vec::new();
    for i in 0..60 {
        let key = format!("key-{i}");
        client
            .put(key.as_bytes(), b"v".to_vec(), &[])
            .await
            .unwrap();
        written.push(key);
    }
    // Node 4 knows the seeds; the cluster learns of it through gossip.
    let mut rc = spec.runtime_config(4);
    rc.node.initial_members = vec![1, 2, 3];
    rc.node.sync_interval = Some(200);
    nodes.push(dynamo_node::runtime::Node::start(rc).await.unwrap());
    wait_up(&spec).await;
    let got = eventually(20, || async {
        let ring = spec.client_of(4).ring().await.ok()?;
        let want = written
            .iter()
            .filter(|k| replicas_of(&ring, k.as_bytes()).contains(&4))
            .count();
        let s = spec.client_of(4).status().await.ok()?;
        (want > 0 && s.keys >= want).then_some((s.keys, want))
    })
    .await;
    if got.is_none() {
        let ring = spec.client_of(4).ring().await.unwrap();
        let ring1 = spec.client_of(1).ring().await.unwrap();
        let want = written
            .iter()
            .filter(|k| replicas_of(&ring, k.as_bytes()).contains(&4))
            .count();
        let s = spec.client_of(4).status().await.unwrap();
        panic!(
            "node 4 never received its ranges: has {} of {want} keys; ring of 4 has it in {} ranges, ring of 1 in {}; {:?}",
            s.keys,
            ring.iter().filter(|r| r.replicas.contains(&4)).count(),
            ring1.iter().filter(|r| r.replicas.contains(&4)).count(),
            s.counters
        );
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
