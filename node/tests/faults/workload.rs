//! Client tasks: read-modify-writes, blind puts and deletes with unique values, every operation
//! recorded in a [`History`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig, Error};
use dynamo_node::history::{History, OpRef, Outcome, WriteId};
use dynamo_node::{ClientOptions, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{error::Elapsed, timeout};

use crate::cluster::Cluster;

/// Keys the clients write.
pub(crate) const KEYS: usize = 20;

/// Keys each client writes once and deletes once at most (see [`Worker::once`]).
const MAX_ONCE: usize = 40;

/// How long a client waits for its node (a loaded machine, fsync on every write).
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound on one request, above the client's own (connect, then exchange).
const BOUND: Duration = Duration::from_secs(30);

pub(crate) fn key(i: usize) -> Vec<u8> {
    format!("key-{i:02}").into_bytes()
}

pub(crate) type Shared = Arc<Mutex<History>>;

/// How a failed request ended: one the client never sent (it could not connect) was not
/// applied. (Not told by the last error alone: a request sent on a connection that then closed
/// is tried again on a new one, and that try's `connect` error is the one reported.)
fn outcome(e: &Error) -> Outcome {
    match e {
        Error::Unavailable { sent: false, .. } => Outcome::NotSent,
        // Refused before anything was stored (an invalid context, a limit, a node shedding
        // load): not applied, so it accounts for nothing it would have superseded.
        Error::Failed(e) if e.applied_nothing() => Outcome::NotSent,
        Error::Unavailable { .. } => Outcome::TimedOut,
        _ => Outcome::Failed,
    }
}

/// One client, talking to node `node` only.
pub(crate) struct Worker {
    id: u64,
    node: NodeId,
    client: Client,
    rng: StdRng,
    history: Shared,
    address: String,
    op: u64,
    /// The last request failed: pause a little (a killed node refuses at once).
    backoff: bool,
    /// Keys written once so far (see [`Worker::once`]).
    onces: usize,
    /// Gets and puts with strict quorums (R + W > N): its gets must see every strict put
    /// acknowledged before they were sent (see `History::strict`).
    strict: bool,
}

fn client(address: &str) -> Client {
    let mut config = ClientConfig::new(vec![address.to_string()], crate::cluster::SECRET);
    config.timeout = CLIENT_TIMEOUT;
    Client::new(config)
}

impl Worker {
    pub(crate) fn new(
        id: u64,
        node: NodeId,
        cluster: &Cluster,
        seed: u64,
        history: Shared,
    ) -> Self {
        let address = cluster.address(node);
        Worker {
            id,
            node,
            client: client(&address),
            rng: StdRng::seed_from_u64(seed ^ (id << 32)),
            history,
            address,
            op: 0,
            backoff: false,
            onces: 0,
            strict: id.is_multiple_of(2),
        }
    }

    /// Strict quorums for a strict worker; the nodes' defaults (R = W = 2 of N = 3) otherwise.
    fn options(&self) -> ClientOptions {
        ClientOptions {
            strict: self.strict.then_some(true),
            ..ClientOptions::default()
        }
    }

    fn record<T>(&self, f: impl FnOnce(&mut History) -> T) -> T {
        f(&mut self.history.lock().unwrap())
    }

    /// Judges a request run under [`BOUND`]; past the bound the connection may be mid-frame, so
    /// the client is replaced.
    fn judge<T>(&mut self, result: Result<Result<T, Error>, Elapsed>) -> Result<T, Outcome> {
        self.backoff = !matches!(result, Ok(Ok(_)));
        match result {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(outcome(&e)),
            Err(_) => {
                self.client = client(&self.address);
                Err(Outcome::TimedOut)
            }
        }
    }

    /// A get, recorded; `None` if it failed.
    async fn get(&mut self, key: &[u8]) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
        let op = self.record(|h| h.invoke_get(self.id, key));
        if self.strict {
            self.record(|h| h.strict(op));
        }
        let result = timeout(BOUND, self.client.get_with(key, self.options())).await;
        match self.judge(result) {
            Ok(got) => {
                self.record(|h| h.get_ok(op, got.values.clone(), got.context.clone()));
                Some((got.values, got.context))
            }
            Err(o) => {
                self.record(|h| h.complete(op, o));
                None
            }
        }
    }

    /// A put of a fresh id with `context` from a get that returned `seen`; whether it was
    /// acknowledged.
    async fn put(&mut self, key: &[u8], seen: &[Vec<u8>], context: &[u8]) -> bool {
        self.op += 1;
        let value = WriteId::new(self.id, self.op).to_value();
        let op = self.record(|h| h.invoke_put(self.id, key, value.clone(), seen, context));
        if self.strict {
            self.record(|h| h.strict(op));
        }
        let options = self.options();
        let result = timeout(BOUND, self.client.put_with(key, value, context, options)).await;
        let result = self.judge(result);
        let acked = result.is_ok();
        self.finish(op, result.map(|_| ()));
        acked
    }

    async fn delete(&mut self, key: &[u8], seen: &[Vec<u8>], context: &[u8]) {
        let op = self.record(|h| h.invoke_delete(self.id, key, seen, context));
        let result = timeout(BOUND, self.client.delete(key, context)).await;
        let result = self.judge(result);
        self.finish(op, result.map(|_| ()));
    }

    /// A key of its own (`once-CLIENT-N`) written once, read, deleted with what the read saw,
    /// and never touched again: what comes back of it at the end was resurrected, with no later
    /// write to hide it (the shared keys are rewritten until the end).
    async fn once(&mut self) {
        // A few per client, since the final reads go through every one of them on every node;
        // past them, a blind put to a shared key.
        if self.onces >= MAX_ONCE {
            let shared = key(self.rng.gen_range(0..KEYS));
            self.put(&shared, &[], &[]).await;
            return;
        }
        self.onces += 1;
        let key = format!("once-{}-{}", self.id, self.op + 1).into_bytes();
        if self.put(&key, &[], &[]).await {
            if let Some((values, context)) = self.get(&key).await {
                self.delete(&key, &values, &context).await;
            }
        }
    }

    fn finish(&self, op: OpRef, result: Result<(), Outcome>) {
        let outcome = result.err().unwrap_or(Outcome::Ok);
        self.record(|h| h.complete(op, outcome));
    }

    /// Read-modify-writes (55%), blind puts (20%), deletes (20%) and keys written and deleted
    /// once (5%, [`once`](Self::once)) until `stop`.
    pub(crate) async fn run(mut self, stop: Arc<AtomicBool>) -> (u64, NodeId) {
        while !stop.load(Ordering::Relaxed) {
            if std::mem::take(&mut self.backoff) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let key = key(self.rng.gen_range(0..KEYS));
            match self.rng.gen_range(0..100) {
                0..55 => {
                    if let Some((values, context)) = self.get(&key).await {
                        self.put(&key, &values, &context).await;
                    }
                }
                55..75 => {
                    self.put(&key, &[], &[]).await;
                }
                75..80 => self.once().await,
                _ => {
                    if let Some((values, context)) = self.get(&key).await {
                        self.delete(&key, &values, &context).await;
                    }
                }
            }
        }
        (self.id, self.node)
    }
}

/// After healing: reads every key from every node of `nodes` with R = N until two rounds in a
/// row, with no hint pending on any of them, find every node agreeing with every other on every
/// key (and with the previous round); at most `bound`. Records the last round's reads as the final
/// reads.
pub(crate) async fn settle(
    cluster: &Cluster,
    nodes: &[NodeId],
    history: &Shared,
    bound: Duration,
) -> Result<u32, String> {
    let deadline = tokio::time::Instant::now() + bound;
    let options = ClientOptions {
        r: Some(3),
        ..ClientOptions::default()
    };
    let mut clients: Vec<(NodeId, Client)> = nodes
        .iter()
        .map(|&id| (id, cluster.client_of(id, CLIENT_TIMEOUT)))
        .collect();
    // The shared keys, and every key written once (see `Worker::once`).
    let mut keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    keys.extend(
        history
            .lock()
            .unwrap()
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(b"once-")),
    );
    let mut previous: Option<Vec<Vec<Vec<u8>>>> = None;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut problem = None;
        for (id, client) in clients.iter_mut() {
            match client.status().await {
                Ok(s) if s.hints_pending > 0 => {
                    problem = Some(format!("node {id} holds {} hints", s.hints_pending))
                }
                Ok(_) => {}
                Err(e) => problem = Some(format!("node {id} status: {e}")),
            }
        }
        let mut agreed = Vec::new();
        for key in &keys {
            let k = String::from_utf8_lossy(key);
            let mut sets = Vec::new();
            for (id, client) in clients.iter_mut() {
                match client.get_with(key, options).await {
                    Ok(got) => {
                        let mut values = got.values.clone();
                        values.sort();
                        history.lock().unwrap().final_read(key, *id, got.values);
                        sets.push(values);
                    }
                    Err(e) => {
                        problem.get_or_insert(format!("node {id} get {k}: {e}"));
                    }
                }
            }
            sets.dedup();
            if sets.len() != 1 {
                problem.get_or_insert(format!("nodes disagree on key {k}"));
            }
            agreed.push(sets.pop().unwrap_or_default());
        }
        match problem {
            None if previous.as_ref() == Some(&agreed) => return Ok(rounds),
            None => previous = Some(agreed),
            Some(p) => {
                previous = None;
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "not settled after {bound:?} ({rounds} rounds): {p}"
                    ));
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not settled after {bound:?} ({rounds} rounds): still changing"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
