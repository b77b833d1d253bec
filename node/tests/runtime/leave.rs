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
