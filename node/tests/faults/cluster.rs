//! `dynamo serve` processes, each on its own loopback address (or in its own network namespace,
//! see [`crate::netns`]), that can be killed, restarted, paused and resumed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::NodeId;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::netns::Network;

pub(crate) const SECRET: &str = "faults-secret";

/// The port every node listens on, each on its own loopback address.
const PORT: u16 = 7400;

/// A loopback network 127.a.b.0 of this test process: a and b from the process id and a
/// counter, so that concurrent test processes and clusters do not collide (Linux routes all of
/// 127/8 to lo). Nothing is bound and released to find it.
pub(crate) fn loopback_net() -> (u8, u8) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = std::process::id()
        .wrapping_mul(31)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed) * 7919)
        % (254 * 256);
    (1 + (n / 256) as u8, (n % 256) as u8)
}

/// How a node's process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Paused,
    Killed,
    /// Not running by design: not started yet, or stopped after leaving the ring.
    Stopped,
}

struct Proc {
    child: Option<Child>,
    state: State,
}

/// N nodes, ids 1..=N, each with a data directory under one temporary directory.
pub(crate) struct Cluster {
    /// Nodes configured (ids 1..=n).
    pub(crate) n: u64,
    /// Nodes 1..=initial make the cluster; the others join it (with seeds, no initial members,
    /// waiting for an operator's commit).
    initial: u64,
    net: (u8, u8),
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
    /// With network namespaces: each node in its own (dropped last, once the processes are
    /// killed).
    network: Option<Network>,
    /// Nodes that exited by themselves for another reason than a port not free yet: a panic,
    /// an abort, a refusal to open their data (each restarted, and reported as a failure).
    unexpected_exits: Vec<String>,
}

impl Cluster {
    /// Writes each node's configuration and starts every node, on loopback addresses.
    pub(crate) fn start(n: u64) -> Cluster {
        Cluster::start_on(n, None)
    }

    /// The same, each node in its own network namespace of `network`.
    pub(crate) fn start_in(network: Network, n: u64) -> Cluster {
        Cluster::start_on(n, Some(network))
    }

    fn start_on(n: u64, network: Option<Network>) -> Cluster {
        Cluster::start_partial_on(n, n, network)
    }

    /// `capacity` nodes configured, only 1..=`initial` started (the cluster's initial members);
    /// the others are [`State::Stopped`], configured to join through a staged change (seeds of
    /// the cluster, no initial members, `wait_for_commit`), and started by [`Cluster::start_node`].
    pub(crate) fn start_partial(capacity: u64, initial: u64) -> Cluster {
        Cluster::start_partial_on(capacity, initial, None)
    }

    fn start_partial_on(n: u64, initial: u64, network: Option<Network>) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("dynamo-faults-")
            .tempdir()
            .unwrap();
        let mut cluster = Cluster {
            n,
            initial,
            net: loopback_net(),
            dir,
            procs: Vec::new(),
            network,
            unexpected_exits: Vec::new(),
        };
        for id in 1..=n {
            cluster.write_config(id);
        }
        for id in 1..=n {
            let (child, state) = if id <= initial {
                (Some(cluster.spawn(id)), State::Running)
            } else {
                (None, State::Stopped)
            };
            cluster.procs.push(Proc { child, state });
        }
        cluster
    }

    pub(crate) fn address(&self, id: NodeId) -> String {
        match &self.network {
            Some(network) => format!("{}:{PORT}", network.ip(id)),
            None => format!("127.{}.{}.{id}:{PORT}", self.net.0, self.net.1),
        }
    }

    /// The network of namespaces, if the nodes run in one.
    pub(crate) fn network(&mut self) -> Option<&mut Network> {
        self.network.as_mut()
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the temporary directory (data directories and logs) after the test.
    pub(crate) fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    /// The initial members know each other; a joining node has them as seeds, no members, and
    /// waits for a commit.
    fn write_config(&self, id: NodeId) {
        let peers: Vec<String> = (1..=self.initial)
            .map(|p| format!("[{p}, \"{}\"]", self.address(p)))
            .collect();
        let joining = id > self.initial;
        let members: Vec<String> = match joining {
            true => Vec::new(),
            false => (1..=self.initial).map(|i| i.to_string()).collect(),
        };
        // `FAULTS_READ_FANOUT=K`: gets ask K replicas at once (`read_fanout`).
        let fanout = std::env::var("FAULTS_READ_FANOUT")
            .ok()
            .and_then(|k| k.parse::<usize>().ok())
            .map(|k| format!("read_fanout = {k}\n"))
            .unwrap_or_default();
        // Tombstones are reaped after `FAULTS_REAP_MS` (default 3000; 0: the default four
        // hours, never within a run), so that reaping, its fences and a replica that missed a
        // reap meet kills and pauses of real processes.
        let grace = std::env::var("FAULTS_REAP_MS")
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(3_000);
        let reap = if grace > 0 {
            format!("tombstone_grace = {grace}\n")
        } else {
            String::new()
        };
        // `FAULTS_STORAGE=redb` and `FAULTS_DURABILITY=buffered` change the nodes' store: a
        // buffered store still loses nothing acknowledged when its process is killed (what it
        // flushed is in the OS), only a crash of the machine could.
        let mut store = String::new();
        for (var, key) in [
            ("FAULTS_STORAGE", "storage"),
            ("FAULTS_DURABILITY", "durability"),
        ] {
            if let Ok(value) = std::env::var(var) {
                store.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        let config = format!(
            "id = {id}\nlisten = \"{}\"\ndata_dir = \"{}\"\n{store}\n[node]\ninitial_members = [{}]\n\
             seeds = [{}]\ngossip_interval = 200\nhandoff_interval = 200\nsync_interval = 200\n\
             request_timeout = 2000\nwait_for_commit = {joining}\n{fanout}{reap}",
            self.address(id),
            self.dir().join(format!("node-{id}")).display(),
            members.join(", "),
            peers.join(", "),
        );
        std::fs::write(self.dir().join(format!("node-{id}.toml")), config).unwrap();
    }

    /// Starts node `id` with the same command every time; its log goes to `node-ID.log`.
    fn spawn(&self, id: NodeId) -> Child {
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join(format!("node-{id}.log")))
            .unwrap();
        let exe = env!("CARGO_BIN_EXE_dynamo");
        let mut command = match &self.network {
            Some(network) => {
                let mut c = Command::new("ip"); // execs the node: same pid
                c.args(["netns", "exec", &network.namespace(id), exe]);
                c
            }
            None => Command::new(exe),
        };
        command
            .arg("serve")
            .arg("--config")
            .arg(self.dir().join(format!("node-{id}.toml")))
            .env("DYNAMO_CLIENT_SECRET", SECRET)
            .env("DYNAMO_PEER_SECRET", "faults-peer-secret")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn proc(&mut self, id: NodeId) -> &mut Proc {
        &mut self.procs[id as usize - 1]
    }

    pub(crate) fn state(&self, id: NodeId) -> State {
        self.procs[id as usize - 1].state
    }

    /// SIGKILL: no shutdown, no final commit. Returns once the process is gone.
    pub(crate) async fn kill(&mut self, id: NodeId) {
        self.note_exit(id);
        let proc = self.proc(id);
        if let Some(mut child) = proc.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        proc.state = State::Killed;
    }

    /// SIGKILLs every running node at once (each signal sent before any exit is awaited), as a
    /// power cut takes every process down while requests are in flight on all of them.
    pub(crate) async fn kill_all(&mut self) {
        let mut dying = Vec::new();
        for id in 1..=self.n {
            self.note_exit(id);
            let proc = self.proc(id);
            if let Some(mut child) = proc.child.take() {
                let _ = child.start_kill();
                dying.push(child);
            }
            proc.state = State::Killed;
        }
        for mut child in dying {
            let _ = child.wait().await;
        }
    }

    /// Starts a killed node again from its data directory.
    pub(crate) fn restart(&mut self, id: NodeId) {
        assert_eq!(self.state(id), State::Killed, "node {id} is not killed");
        self.start_node(id);
    }

    /// Starts a node that is killed or stopped (or was never started).
    pub(crate) fn start_node(&mut self, id: NodeId) {
        assert!(
            matches!(self.state(id), State::Killed | State::Stopped),
            "node {id} is running"
        );
        let child = self.spawn(id);
        let proc = self.proc(id);
        proc.child = Some(child);
        proc.state = State::Running;
    }

    fn signal(&self, id: NodeId, signal: &str) {
        let pid = self.procs[id as usize - 1]
            .child
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("node {id} has no process"));
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// SIGKILL, and the node stays down: it is no longer part of the test's cluster.
    pub(crate) async fn stop(&mut self, id: NodeId) {
        self.kill(id).await;
        self.proc(id).state = State::Stopped;
    }

    /// SIGSTOP: the process freezes, its connections stay open.
    pub(crate) fn pause(&mut self, id: NodeId) {
        self.signal(id, "-STOP");
        self.proc(id).state = State::Paused;
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self, id: NodeId) {
        self.signal(id, "-CONT");
        self.proc(id).state = State::Running;
    }

    /// Restarts what is killed, resumes what is paused, undoes network faults.
    pub(crate) fn heal(&mut self) {
        if let Some(network) = self.network.as_mut() {
            network.heal().unwrap();
        }
        for id in 1..=self.n {
            match self.state(id) {
                State::Running | State::Stopped => {}
                State::Paused => self.resume(id),
                State::Killed => self.restart(id),
            }
        }
    }

    /// Restarts any node whose process exited by itself, and says which. A node that could not
    /// bind its port yet (the killed process's socket not released) is expected; any other exit
    /// is recorded in [`unexpected_exits`](Self::unexpected_exits).
    fn respawn_exited(&mut self) -> Vec<NodeId> {
        let mut exited = Vec::new();
        for id in 1..=self.n {
            if self.note_exit(id) {
                self.restart(id);
                exited.push(id);
            }
        }
        exited
    }

    /// Whether node `id`, marked running, has exited by itself; if so it is marked killed, and
    /// the exit is recorded in [`unexpected_exits`](Self::unexpected_exits) unless the node's
    /// last words were that it could not bind its port (which a killed process may hold a
    /// moment longer).
    fn note_exit(&mut self, id: NodeId) -> bool {
        let proc = self.proc(id);
        if proc.state != State::Running {
            return false;
        }
        let status = match proc.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => e.to_string(),
            Some(Ok(None)) | None => return false,
        };
        proc.child = None;
        proc.state = State::Killed;
        let last = self.last_log_line(id);
        if !last.contains("cannot listen") {
            self.unexpected_exits
                .push(format!("node {id} exited by itself ({status}): {last}"));
        }
        true
    }

    /// The last line of node `id`'s log (a node's last words before it exits).
    fn last_log_line(&self, id: NodeId) -> String {
        let text =
            std::fs::read_to_string(self.dir().join(format!("node-{id}.log"))).unwrap_or_default();
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string()
    }

    /// What went wrong in the nodes themselves: exits of their own (see
    /// [`note_exit`](Self::note_exit)) and panics in any node's log.
    pub(crate) fn node_failures(&mut self) -> Vec<String> {
        for id in 1..=self.n {
            self.note_exit(id);
        }
        let mut failures = self.unexpected_exits.clone();
        for id in 1..=self.n {
            let text = std::fs::read_to_string(self.dir().join(format!("node-{id}.log")))
                .unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("panicked")) {
                failures.push(format!("node {id} panicked: {line}"));
            }
        }
        failures
    }

    /// A client of node `id` alone (no failover to other nodes).
    pub(crate) fn client_of(&self, id: NodeId, timeout: Duration) -> Client {
        let mut config = ClientConfig::new(vec![self.address(id)], SECRET);
        config.timeout = timeout;
        Client::new(config)
    }

    /// Waits until every running node answers and sees every node up; at most `bound`.
    pub(crate) async fn wait_all_up(&mut self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        loop {
            for id in self.respawn_exited() {
                eprintln!("faults: node {id} had exited; restarted it");
            }
            match self.all_up().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("not all up after {bound:?}: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn all_up(&self) -> Result<(), String> {
        for id in (1..=self.n).filter(|&id| self.state(id) == State::Running) {
            let status = self
                .client_of(id, Duration::from_secs(5))
                .status()
                .await
                .map_err(|e| format!("node {id}: {e}"))?;
            let down: Vec<NodeId> = status
                .members
                .iter()
                .filter(|m| !m.up)
                .map(|m| m.id)
                .collect();
            if status.members.len() < self.n as usize || !down.is_empty() {
                return Err(format!(
                    "node {id} sees {} members, down: {down:?}",
                    status.members.len()
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            if let Some(child) = proc.child.as_mut() {
                let _ = child.start_kill(); // SIGKILL ends a stopped process too
            }
        }
    }
}
