//! Runtime tests: real TCP on loopback, in-process nodes and `dynamo` processes.

mod bad_input;
mod cluster;
mod hostile;
mod join;

mod process;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::runtime::{Node, RuntimeConfig};
use dynamo_node::{NodeConfig, NodeId};

pub(crate) const SECRET: &str = "test-client-secret";
pub(crate) const PEER_SECRET: &str = "test-peer-secret";

/// Free loopback ports, below the ephemeral range (32768 and up on Linux): the tests that open
/// thousands of connections take ephemeral ports, and a listen port picked from that range could
/// be taken as a connection's source port before its node binds it. Each port is bound and
/// released, and never handed out twice by this process.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start somewhere different in each test process.
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1000) as u16 * 10,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut ports = Vec::new();
    while ports.len() < n {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// The nodes of a test cluster: ids 1..=n on fixed ports.
pub(crate) struct Spec {
    pub(crate) ports: Vec<u16>,
    pub(crate) dir: Option<PathBuf>,
}

impl Spec {
    pub(crate) fn new(n: usize, dir: Option<&Path>) -> Self {
        Spec {
            ports: free_ports(n),
            dir: dir.map(Path::to_path_buf),
        }
    }

    pub(crate) fn address(&self, id: NodeId) -> String {
        format!("127.0.0.1:{}", self.ports[id as usize - 1])
    }

    pub(crate) fn addresses(&self) -> Vec<String> {
        (1..=self.ports.len() as u64)
            .map(|i| self.address(i))
            .collect()
    }

    pub(crate) fn node_config(&self) -> NodeConfig {
        let ids: Vec<NodeId> = (1..=self.ports.len() as u64).collect();
        NodeConfig {
            seeds: ids.iter().map(|&i| (i, self.address(i))).collect(),
            initial_members: ids,
            gossip_interval: 200,
            handoff_interval: 200,
            sync_interval: Some(1000),
            request_timeout: 1000,
            ..NodeConfig::default()
        }
    }

    pub(crate) fn runtime_config(&self, id: NodeId) -> RuntimeConfig {
        let mut rc = RuntimeConfig::new(id, self.node_config(), PEER_SECRET, SECRET);
        rc.listen = self.address(id);
        rc.data_dir = self.dir.as_ref().map(|d| d.join(format!("node-{id}")));
        rc.seed = Some(id);
        rc
    }

    pub(crate) async fn start(&self, id: NodeId) -> Node {
        Node::start(self.runtime_config(id)).await.unwrap()
    }

    pub(crate) async fn start_all(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        for id in 1..=self.ports.len() as u64 {
            nodes.push(self.start(id).await);
        }
        nodes
    }

    pub(crate) fn client(&self) -> Client {
        let mut config = ClientConfig::new(self.addresses(), SECRET);
        config.timeout = Duration::from_secs(3);
        Client::new(config)
    }

    pub(crate) fn client_of(&self, id: NodeId) -> Client {
        let mut config = ClientConfig::new(vec![self.address(id)], SECRET);
        config.timeout = Duration::from_secs(3);
        Client::new(config)
    }
}

/// Retries `f` until it returns `Some`, for up to `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return Some(t);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node sees every node up.
pub(crate) async fn wait_up(spec: &Spec) {
    let n = spec.ports.len();
    for id in 1..=n as u64 {
        let ok = eventually(15, || async {
            let status = spec.client_of(id).status().await.ok()?;
            (status.members.iter().filter(|m| m.up).count() >= n).then_some(())
        })
        .await;
        assert!(ok.is_some(), "node {id} never saw all {n} nodes up");
    }
}

/// The primary replicas of `key` according to a node's ring.
pub(crate) fn replicas_of(ring: &[dynamo_node::runtime::RangeInfo], key: &[u8]) -> Vec<NodeId> {
    let pos = dynamo_ring::HashFunction::Md5.position(key).0;
    let end = |r: &dynamo_node::runtime::RangeInfo| u128::from_str_radix(&r.end, 16).unwrap();
    ring.iter()
        .filter(|r| end(r) >= pos)
        .min_by_key(|r| end(r))
        .or_else(|| ring.iter().min_by_key(|r| end(r)))
        .map(|r| r.replicas.clone())
        .unwrap_or_default()
}

/// Waits until every node holds at least the keys it replicates (by its status), then checks
/// the data directories after a graceful stop: every key on each of its primaries, with its value.
pub(crate) fn check_stores(
    dir: &Path,
    ring: &[dynamo_node::runtime::RangeInfo],
    written: &[(String, String)],
) {
    use dynamo_node::redb_store::{Durability, RedbStore};
    use dynamo_node::Store;
    let mut stores = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(id) = name.strip_prefix("node-").filter(|_| path.is_dir()) {
            let id: NodeId = id.parse().unwrap();
            stores.insert(id, RedbStore::open(&path, Durability::Durable).unwrap());
        }
    }
    for (key, value) in written {
        for id in replicas_of(ring, key.as_bytes()) {
            let sibs = stores[&id]
                .get(key.as_bytes())
                .unwrap()
                .unwrap_or_else(|| panic!("node {id} lacks {key}"));
            let values: Vec<&Vec<u8>> = sibs.live_values().collect();
            assert_eq!(
                values,
                vec![&value.as_bytes().to_vec()],
                "node {id}, key {key}"
            );
        }
    }
}
