//! `dynamo leave` names its node and never fails over to another one.

use std::time::Duration;

use tokio::process::Command;

use crate::{wait_up, Spec, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_of_a_node_that_is_down_fails_and_moves_no_other_node() {
    let spec = Spec::new(3, None);
    let mut nodes = spec.start_all().await;
    wait_up(&spec).await;
    let first = nodes.remove(0);
    first.kill().await;
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .arg("leave")
        .arg("--node")
        .arg(spec.address(1))
        .arg("--nodes")
        .arg(spec.addresses().join(","))
        .arg("--timeout")
        .arg("2")
        .env("DYNAMO_SECRET", SECRET)
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success(), "leave of a dead node must fail");
    // Nodes 2 and 3 stay members: nobody else was asked to leave.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [2, 3] {
        let status = spec.client_of(id).status().await.expect("status");
        let members: Vec<u64> = status.members.iter().map(|m| m.id).collect();
        assert!(members.contains(&2) && members.contains(&3), "{members:?}");
    }
}

/// The library's `Client::leave` asks its node and no other: a first node that accepts the
/// connection and never answers makes the leave fail; before, the client moved on to the next
/// address and that node left the cluster instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leave_never_moves_to_another_node() {
    use dynamo_node::client::{Client, ClientConfig, Error};
    let spec = Spec::new(4, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    // Accepts connections and says nothing (the accepted streams are kept open).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let silent_address = silent.local_addr().expect("address").to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let mut config = ClientConfig::new(vec![silent_address, spec.address(4)], SECRET);
    config.timeout = Duration::from_secs(2);
    let outcome = Client::new(config).leave().await;
    assert!(
        matches!(outcome, Err(Error::Unavailable { .. })),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = spec.client_of(4).status().await.expect("status");
    assert!(
        !status.leaving,
        "node 4 was asked to leave in the silent node's place"
    );
    held.abort();
}

/// Review of operator procedures, twenty-eighth session of issue 20: `dynamo members` told the
/// operator that a node out of the ring "can be stopped once its transfers and hints are 0",
/// which the docs say is not enough (each receiver must acknowledge the hand-over's end), and
/// its output did not show `handed_over`. It now marks a node out of the ring `*` while it
/// hands over and `=` once it is handed over, and says only the latter may be stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_says_when_a_leaving_node_may_be_stopped() {
    let spec = Spec::new(4, None);
    let nodes = spec.start_all().await;
    wait_up(&spec).await;
    spec.client_of(4).leave().await.expect("node 4 leaves");
    let done = crate::eventually(120, || async {
        let status = spec.client_of(4).status().await.ok()?;
        status.handed_over.then_some(())
    })
    .await;
    assert!(done.is_some(), "node 4 hands over");
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo"))
        .args(["members", "--nodes", &spec.addresses().join(",")])
        .env("DYNAMO_CLIENT_SECRET", SECRET)
        .output()
        .await
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&spec.address(4)))
        .unwrap_or_default();
    assert!(line.contains(" 4="), "{text}");
    assert!(
        text.contains("=: out of the ring and handed over"),
        "{text}"
    );
    assert!(!text.contains("transfers and hints are 0"), "{text}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
