//! Put and get across whole clusters on loopback.

use crate::{wait_up, Spec};

async fn put_get(n: usize) {
    let spec = Spec::new(n, None);
    let nodes = spec.start_all().await;
    wait_up(&spec).await;

    // Writes through one node are read through every other.
    let mut writer = spec.client_of(1);
    for i in 0..20u32 {
        let key = format!("key-{i}");
        writer
            .put(key.as_bytes(), format!("value-{i}").into_bytes(), &[])
            .await
            .unwrap();
    }
    for id in 1..=n as u64 {
        let mut reader = spec.client_of(id);
        for i in 0..20u32 {
            let got = reader.get(format!("key-{i}").as_bytes()).await.unwrap();
            assert_eq!(
                got.values,
                vec![format!("value-{i}").into_bytes()],
                "node {id}"
            );
            assert!(got.replicas.len() >= 2, "R = 2 replicas answered");
        }
    }

    // Two writes without a context are concurrent: both come back as siblings; a write with the
    // context of a get that saw both supersedes them.
    let mut a = spec.client_of(2);
    let mut b = spec.client_of(3);
    a.put(b"cart", b"milk".to_vec(), &[]).await.unwrap();
    b.put(b"cart", b"eggs".to_vec(), &[]).await.unwrap();
    let got = a.get(b"cart").await.unwrap();
    let mut values = got.values.clone();
    values.sort();
    assert_eq!(values, vec![b"eggs".to_vec(), b"milk".to_vec()]);
    b.put(b"cart", b"milk+eggs".to_vec(), &got.context)
        .await
        .unwrap();
    assert_eq!(
        a.get(b"cart").await.unwrap().values,
        vec![b"milk+eggs".to_vec()]
    );

    // Delete with a context: the key is gone everywhere.
    let got = a.get(b"cart").await.unwrap();
    a.delete(b"cart", &got.context).await.unwrap();
    for id in 1..=n as u64 {
        assert!(spec
            .client_of(id)
            .get(b"cart")
            .await
            .unwrap()
            .values
            .is_empty());
    }

    // Status and ring answer.
    let mut c = spec.client();
    let status = c.status().await.unwrap();
    assert_eq!(status.members.len(), n);
    let mut puts = 0;
    for id in 1..=n as u64 {
        puts += spec.client_of(id).status().await.unwrap().counters.puts;
    }
    assert!(puts >= 20, "the nodes coordinated {puts} puts");
    let ring = c.ring().await.unwrap();
    assert!(!ring.is_empty());
    assert!(
        ring.iter().all(|r| r.replicas.len() == 3.min(n)),
        "{ring:?}"
    );

    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_across_three_nodes() {
    put_get(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_across_five_nodes() {
    put_get(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_when_its_node_is_down() {
    let spec = Spec::new(3, None);
    let mut nodes = spec.start_all().await;
    wait_up(&spec).await;
    let mut client = spec.client();
    client.put(b"k", b"v".to_vec(), &[]).await.unwrap();
    assert_eq!(client.connected_to(), Some(spec.address(1).as_str()));
    // Node 1 goes away: the client's next request goes to node 2.
    nodes.remove(0).kill().await;
    // The first request after the kill already reaches node 2 (its answer may be a quorum
    // failure while node 2 still waits on node 1; that is an answer, not a dead node).
    let _ = client.get(b"k").await;
    assert_eq!(client.connected_to(), Some(spec.address(2).as_str()));
    let got = crate::eventually(10, || {
        let mut c = spec.client();
        async move { c.get(b"k").await.ok() }
    })
    .await
    .expect("the value is readable through the surviving nodes");
    assert_eq!(got.values, vec![b"v".to_vec()]);
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
