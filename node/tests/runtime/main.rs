//! Runtime tests: real TCP on loopback, in-process nodes and `dynamo` processes.
//!
//! Nothing here picks a "free" port by binding and releasing it: a released port may be taken by
//! anyone before the node binds it. In-process nodes are handed listeners bound before any node
//! starts ([`Spec::new`]); `dynamo` processes listen on a loopback address of their own
//! ([`private_loopback`]). And tests wait on readiness, never on time ([`wait_up`]).

mod bad_input;
mod browser;
mod cli;
mod client;
mod cluster;
mod console;
mod hostile;
mod http;
mod http_limits;
mod join;
mod leave;
mod storage;
mod webdriver;

mod process;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::runtime::{Node, RuntimeConfig};
use dynamo_node::{ClientOptions, NodeConfig, NodeId};

pub(crate) const SECRET: &str = "test-client-secret";
pub(crate) const PEER_SECRET: &str = "test-peer-secret";

/// The test nodes' request timeout. A CI machine with 2 cores and other builds running can stall
/// a debug build for hundreds of milliseconds; an idle run never waits this long (a request that
/// fails at once, as when a peer is unreachable, fails at once).
pub(crate) const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// The test clients' timeout: above [`REQUEST_TIMEOUT_MS`], so that a node's own answer (a quorum
/// failure at its deadline) reaches the client before the client gives up on the node.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`wait_up`] waits for each of its conditions before the test fails.
const READY_SECS: u64 = 60;

/// Timeout of one readiness probe read; a probe that times out is simply retried.
const PROBE_TIMEOUT_MS: u64 = 2_000;

/// The port every node of a process cluster listens on, each node on its own loopback address.
pub(crate) const PROCESS_PORT: u16 = 7000;

/// Process clusters laid out by this test process (see [`private_loopback`]).
static PROCESS_CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// Listen addresses for `n` nodes that run as separate processes (which cannot be handed a bound
/// listener): node `c` (1-based) listens on `127.a.b.c:`[`PROCESS_PORT`].
///
/// Linux routes all of 127.0.0.0/8 to the loopback interface, and a connection to any of these
/// addresses leaves from 127.0.0.1; so nobody's outgoing connection can take the port on
/// `127.a.b.c`, which a released "free" port on 127.0.0.1 cannot promise. `a.b` comes from this
/// process's id and a per-process counter, so concurrent test binaries and the tests within one
/// get distinct addresses. Each address is checked by binding it once (only a process that binds
/// this very address could take it meanwhile); if one is in use (say a leftover process of an
/// earlier run with the same pid), the next counter value is tried.
pub(crate) fn private_loopback(n: usize) -> Vec<SocketAddr> {
    assert!((1..=254).contains(&n), "{n} nodes: 1 to 254 per cluster");
    let pid = std::process::id();
    for _ in 0..64 {
        let counter = PROCESS_CLUSTERS.fetch_add(1, Ordering::Relaxed);
        // a in 1..=254 (127.0.x.x holds 127.0.0.1, which everyone uses), b in 0..=255.
        let a = 1 + ((pid + counter / 256) % 254) as u8;
        let b = (counter % 256) as u8;
        let addresses: Vec<SocketAddr> = (1..=n as u8)
            .map(|c| SocketAddr::from((Ipv4Addr::new(127, a, b, c), PROCESS_PORT)))
            .collect();
        let mut free = true;
        for address in &addresses {
            match TcpListener::bind(address) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    free = false;
                    break;
                }
                Err(e) => panic!(
                    "cannot bind {address}: {e} (these tests need 127.0.0.0/8 routed to the \
                     loopback interface, as on Linux)"
                ),
            }
        }
        if free {
            return addresses;
        }
    }
    panic!("no free loopback addresses for {n} nodes after 64 tries");
}

/// The nodes of a test cluster: ids 1..=n, each with a fixed address.
pub(crate) struct Spec {
    addresses: Vec<SocketAddr>,
    /// Listeners bound for in-process nodes, taken by [`Spec::runtime_config`].
    listeners: Mutex<Vec<Option<TcpListener>>>,
    pub(crate) dir: Option<PathBuf>,
}

impl Spec {
    /// A cluster of in-process nodes: binds every node's listener now (on 127.0.0.1:0), so that
    /// all addresses are known, and every peer can connect, before any node starts.
    pub(crate) fn new(n: usize, dir: Option<&Path>) -> Self {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        Spec {
            addresses: listeners.iter().map(|l| l.local_addr().unwrap()).collect(),
            listeners: Mutex::new(listeners.into_iter().map(Some).collect()),
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// A cluster of `dynamo` processes, on [`private_loopback`] addresses.
    pub(crate) fn processes(n: usize, dir: Option<&Path>) -> Self {
        Spec {
            addresses: private_loopback(n),
            listeners: Mutex::new(Vec::new()),
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// The number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Every node id.
    pub(crate) fn ids(&self) -> Vec<NodeId> {
        (1..=self.len() as u64).collect()
    }

    pub(crate) fn address(&self, id: NodeId) -> String {
        self.addresses[id as usize - 1].to_string()
    }

    pub(crate) fn addresses(&self) -> Vec<String> {
        self.ids().into_iter().map(|i| self.address(i)).collect()
    }

    pub(crate) fn node_config(&self) -> NodeConfig {
        let ids = self.ids();
        NodeConfig {
            seeds: ids.iter().map(|&i| (i, self.address(i))).collect(),
            initial_members: ids,
            gossip_interval: 200,
            handoff_interval: 200,
            sync_interval: Some(1000),
            request_timeout: REQUEST_TIMEOUT_MS,
            ..NodeConfig::default()
        }
    }

    /// Node `id`'s configuration; it carries the node's bound listener the first time (a node
    /// started again binds its address anew).
    pub(crate) fn runtime_config(&self, id: NodeId) -> RuntimeConfig {
        let mut rc = RuntimeConfig::new(id, self.node_config(), PEER_SECRET, SECRET);
        rc.listen = self.address(id);
        rc.listener = self
            .listeners
            .lock()
            .unwrap()
            .get_mut(id as usize - 1)
            .and_then(Option::take);
        rc.data_dir = self.dir.as_ref().map(|d| d.join(format!("node-{id}")));
        rc.seed = Some(id);
        rc
    }

    pub(crate) async fn start(&self, id: NodeId) -> Node {
        Node::start(self.runtime_config(id)).await.unwrap()
    }

    pub(crate) async fn start_all(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        for id in self.ids() {
            nodes.push(self.start(id).await);
        }
        nodes
    }

    pub(crate) fn client(&self) -> Client {
        let mut config = ClientConfig::new(self.addresses(), SECRET);
        config.timeout = CLIENT_TIMEOUT;
        Client::new(config)
    }

    pub(crate) fn client_of(&self, id: NodeId) -> Client {
        let mut config = ClientConfig::new(vec![self.address(id)], SECRET);
        config.timeout = CLIENT_TIMEOUT;
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

/// Waits until the whole cluster is ready: see [`wait_ready`].
pub(crate) async fn wait_up(spec: &Spec) {
    wait_ready(spec, &spec.ids()).await;
}

/// Waits until nodes `ids` are ready for a test: each answers, sees all of them up, and has
/// working links to and from each of the others. The last is shown by reads through every node
/// that need the answer of all N replicas, of keys whose replicas together are all of `ids`.
///
/// Seeing every node up proves little at start: a node counts the initial members as up until
/// gossip says otherwise. And when a node first tries to reach a peer that is not listening yet,
/// its link to that peer drops messages for a back-off interval; a read reply dropped this way
/// leaves the reading node waiting until its request timeout (the first get after start-up then
/// fails with `QuorumFailed { acknowledged: 1, required: 2 }`: only its own replica answered).
pub(crate) async fn wait_ready(spec: &Spec, ids: &[NodeId]) {
    for &id in ids {
        let ok = eventually(READY_SECS, || async {
            let status = spec.client_of(id).status().await.ok()?;
            let up: BTreeSet<NodeId> = status
                .members
                .iter()
                .filter(|m| m.up)
                .map(|m| m.id)
                .collect();
            ids.iter().all(|i| up.contains(i)).then_some(())
        })
        .await;
        assert!(ok.is_some(), "node {id} never saw all of {ids:?} up");
    }
    // Keys whose replicas (by the ring of the first node, which has every id as a member now)
    // cover every node.
    let first = ids[0];
    let probes = eventually(READY_SECS, || async {
        let ring = spec.client_of(first).ring().await.ok()?;
        let mut covered = BTreeSet::new();
        let mut probes = Vec::new();
        for i in 0..10_000 {
            if ids.iter().all(|id| covered.contains(id)) {
                return Some(probes);
            }
            let key = format!("readiness-probe-{i}");
            let replicas = replicas_of(&ring, key.as_bytes());
            if replicas.iter().any(|r| !covered.contains(r)) {
                covered.extend(replicas.iter().copied());
                probes.push((key, replicas.len()));
            }
        }
        None
    })
    .await
    .unwrap_or_else(|| panic!("the ring of node {first} never covered {ids:?}"));
    for &id in ids {
        for (key, replicas) in &probes {
            let options = ClientOptions {
                r: Some(*replicas),
                timeout: Some(PROBE_TIMEOUT_MS),
                ..ClientOptions::default()
            };
            let ok = eventually(READY_SECS, || async {
                spec.client_of(id)
                    .get_with(key.as_bytes(), options)
                    .await
                    .ok()
            })
            .await;
            assert!(
                ok.is_some(),
                "node {id} never read {key} from all {replicas} of its replicas"
            );
        }
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
    use dynamo_node::redb_store::Durability;
    use dynamo_node::runtime::open_store;
    use dynamo_node::Store;
    let mut stores = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(id) = name.strip_prefix("node-").filter(|_| path.is_dir()) {
            let id: NodeId = id.parse().unwrap();
            stores.insert(id, open_store(&path, None, Durability::Durable).unwrap());
        }
    }
    for (key, value) in written {
        for id in replicas_of(ring, key.as_bytes()) {
            let sibs = stores[&id]
                .get(key.as_bytes())
                .unwrap()
                .unwrap_or_else(|| panic!("node {id} lacks {key}"));
            let values: Vec<&Vec<u8>> = sibs.live_values().map(|o| &o.bytes).collect();
            assert_eq!(
                values,
                vec![&value.as_bytes().to_vec()],
                "node {id}, key {key}"
            );
        }
    }
}
