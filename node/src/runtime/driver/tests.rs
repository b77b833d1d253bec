//! The driver's hold on outputs, against a durable store whose fsyncs wait at a gate: what a
//! reply may show, and when it may leave.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Driver;
use crate::config::NodeConfig;
use crate::core::StoredCore;
use crate::fjall_store::FjallStore;
use crate::message::{ClientOptions, ClientReply, ClientRequest, PeerMessage};
use crate::redb_store::Durability;
use crate::runtime::handshake::Credentials;
use crate::runtime::peers::LinkContext;
use crate::runtime::{Clock, Input};
use crate::store::MemoryStore;
use crate::store::{Store, StoreError, SyncJob};
use crate::types::Sibs;

/// Opened once: every fsync job waits for it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }

    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = changed.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Opens the gate when dropped: a failing test must not leave an fsync job waiting, since the
/// runtime's shutdown waits for its blocking threads.
struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// What an fsync job runs first: it may wait, and it may fail the job.
type BeforeSync = Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// A store whose flushes' fsyncs first run `before_sync` (if any: a gate to wait at, say),
/// counting the reads of stored keys.
struct Gated<S = FjallStore> {
    inner: S,
    before_sync: Option<BeforeSync>,
    gets: Arc<std::sync::atomic::AtomicUsize>,
    /// Every inline sync fails once this is set.
    sync_fails: Arc<std::sync::atomic::AtomicBool>,
}

impl<S: Store> Store for Gated<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Sibs>, StoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], siblings: &Sibs) -> Result<(), StoreError> {
        self.inner.put(key, siblings)
    }
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &Sibs)) -> Result<(), StoreError> {
        self.inner.scan(visit)
    }
    fn put_hint(&mut self, id: u64, record: &[u8]) -> Result<(), StoreError> {
        self.inner.put_hint(id, record)
    }
    fn remove_hint(&mut self, id: u64) -> Result<(), StoreError> {
        self.inner.remove_hint(id)
    }
    fn hints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.hints()
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(name)
    }
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(name, value)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn start_flush(&mut self) -> Result<Option<SyncJob>, StoreError> {
        let Some(before) = self.before_sync.clone() else {
            return self.inner.start_flush();
        };
        Ok(self.inner.start_flush()?.map(|job| -> SyncJob {
            Box::new(move || {
                before()?;
                job()
            })
        }))
    }
    fn has_unflushed_writes(&self) -> bool {
        self.inner.has_unflushed_writes()
    }
    fn has_unsynced_write(&self, key: &[u8]) -> bool {
        self.inner.has_unsynced_write(key)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.sync_fails.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Io("fsync failed".into()));
        }
        self.inner.sync()
    }
}

/// A one-node cluster (N = R = W = 1) on a gated store, its driver running.
fn start(dir: &std::path::Path, gate: Gate) -> mpsc::Sender<Input> {
    run(Gated {
        inner: FjallStore::open(dir, Durability::Durable).expect("opens"),
        before_sync: Some(Arc::new(move || {
            gate.wait();
            Ok(())
        })),
        gets: Arc::default(),
        sync_fails: Arc::default(),
    })
}

/// A one-node cluster (N = R = W = 1) on `store`, its driver running.
fn run<S: Store + Send + 'static>(store: S) -> mpsc::Sender<Input> {
    run_in(store, vec![1])
}

/// Node 1 of a ring of `members` (N = R = W = 1) on `store`, its driver running.
fn run_in<S: Store + Send + 'static>(store: S, members: Vec<u64>) -> mpsc::Sender<Input> {
    run_with_generation(store, members).0
}

/// [`run_in`], with the generation the driver's links name in their handshakes.
fn run_with_generation<S: Store + Send + 'static>(
    store: S,
    members: Vec<u64>,
) -> (mpsc::Sender<Input>, Arc<std::sync::atomic::AtomicU64>) {
    let config = NodeConfig {
        n: 1,
        r: 1,
        w: 1,
        partitions: 8,
        seeds: members.iter().map(|&m| (m, format!("n{m}"))).collect(),
        initial_members: members,
        sync_interval: None,
        tombstone_grace: None,
        ..NodeConfig::default()
    };
    let clock = Clock::new();
    let core = StoredCore::new(1, "n1".into(), config, store, clock.now(), 7).expect("starts");
    let (tx, rx) = mpsc::channel(64);
    let link_ctx = LinkContext {
        creds: Credentials {
            cluster: "test".into(),
            secret: b"secret".to_vec(),
            identity: None,
            authority: None,
        },
        encrypt: false,
        me: 1,
        my_address: "n1".into(),
        generation: Default::default(),
        max_frame: 1 << 20,
        idle: Duration::from_secs(60),
        write_timeout: Duration::from_secs(30),
        inputs: tx.clone(),
    };
    let generation = Arc::clone(&link_ctx.generation);
    tokio::spawn(Driver::new(core, clock, link_ctx, 64, None).run(rx));
    (tx, generation)
}

async fn send(
    inputs: &mpsc::Sender<Input>,
    request: ClientRequest,
) -> oneshot::Receiver<ClientReply> {
    let (reply, rx) = oneshot::channel();
    inputs
        .send(Input::Client {
            request,
            reply: reply.into(),
        })
        .await
        .expect("the driver runs");
    rx
}

fn get(key: &[u8]) -> ClientRequest {
    ClientRequest::Get {
        key: key.to_vec(),
        options: ClientOptions::default(),
    }
}

/// Long enough for a loaded machine; only a failing test waits for it.
async fn reply(rx: oneshot::Receiver<ClientReply>, what: &str) -> ClientReply {
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .unwrap_or_else(|_| panic!("no reply to {what}"))
        .unwrap_or_else(|_| panic!("{what}: the driver dropped the request"))
}

#[tokio::test]
async fn a_get_of_a_key_with_no_unsynced_write_does_not_wait_for_an_fsync_of_others() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let gate = Gate::default();
    let _open = OpenOnDrop(gate.clone());
    let inputs = start(dir.path(), gate.clone());
    let put = ClientRequest::Put {
        key: b"k1".to_vec(),
        value: b"v1".to_vec(),
        context: Vec::new(),
        options: ClientOptions::default(),
        content_type: None,
    };
    let mut stored = send(&inputs, put).await;
    let mut read_back = send(&inputs, get(b"k1")).await;
    let other = send(&inputs, get(b"k2")).await;

    // k2 was never written: its reply leaves while the fsync of k1 waits at the gate.
    match reply(other, "the get of k2").await {
        ClientReply::Got { values, .. } => assert!(values.is_empty()),
        r => panic!("expected an empty get, got {r:?}"),
    }
    // The driver takes inputs in order, so both earlier requests have been handled by now: the
    // put is not acknowledged and the get of k1 does not show v1 before v1 is durable.
    assert!(
        stored.try_recv().is_err(),
        "the put was acknowledged before its fsync"
    );
    assert!(
        read_back.try_recv().is_err(),
        "a get showed a write before its fsync"
    );

    gate.open();
    assert!(matches!(
        reply(stored, "the put").await,
        ClientReply::Stored { .. }
    ));
    match reply(read_back, "the get of k1").await {
        ClientReply::Got { values, .. } => assert_eq!(values, vec![b"v1".to_vec()]),
        r => panic!("expected v1, got {r:?}"),
    }
    let _ = inputs.send(Input::Shutdown).await;
}

/// A one-node cluster (N = R = W = 1) on a memory store holding `keys` keys, its driver running.
fn start_with_keys(keys: u32) -> mpsc::Sender<Input> {
    run(store_with_keys(keys))
}

/// A memory store holding keys `0..keys` (big-endian), each one 100-byte value.
fn store_with_keys(keys: u32) -> crate::store::MemoryStore {
    let mut store = crate::store::MemoryStore::new();
    for i in 0..keys {
        let mut sibs = Sibs::default();
        sibs.put(
            &dynamo_vclock::VClock::new(),
            (1, 1),
            u64::from(i) + 1,
            dynamo_vclock::Value::Live(crate::types::Object::typed(vec![7; 100], None)),
        );
        store.put(&i.to_be_bytes(), &sibs).expect("memory");
    }
    store
}

/// Measuring partition sizes reads every stored key (any client may ask): the driver does it a
/// few keys at a time between other work, so a get that arrives behind it is answered before it
/// ends, instead of after a scan of the whole store.
#[tokio::test(flavor = "current_thread")]
async fn a_get_behind_a_partition_size_scan_is_answered_before_the_scan_ends() {
    use crate::runtime::{AdminReply, AdminRequest};
    let inputs = start_with_keys(20_000);
    let (sizes, mut sized) = oneshot::channel();
    inputs
        .send(Input::Admin {
            request: AdminRequest::PartitionSizes,
            reply: sizes,
        })
        .await
        .expect("the driver runs");
    let got = send(&inputs, get(&5u32.to_be_bytes())).await;
    assert!(matches!(
        reply(got, "the get").await,
        ClientReply::Got { .. }
    ));
    assert!(
        matches!(sized.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "the scan ended before the get behind it was answered"
    );
    let Ok(AdminReply::PartitionSizes(sizes)) =
        tokio::time::timeout(Duration::from_secs(60), sized)
            .await
            .expect("the scan ends")
    else {
        panic!("no sizes");
    };
    assert_eq!(sizes.iter().map(|s| s.keys).sum::<u64>(), 20_000);
    let bytes: u64 = sizes.iter().map(|s| s.bytes).sum();
    assert!(bytes > 20_000 * 100, "{bytes}");
}

/// Partition-size measures asked while one runs share it, and a measure nobody waits for any
/// more stops: a client asking again and again, and hanging up, made the node read its whole
/// store once per request, every measure stepping after each batch of inputs.
#[tokio::test(flavor = "current_thread")]
async fn partition_size_measures_share_one_scan_and_stop_when_nobody_waits() {
    use crate::runtime::{AdminReply, AdminRequest};
    const KEYS: u32 = 5_000;
    let inner = store_with_keys(KEYS);
    let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inputs = run(Gated {
        inner,
        before_sync: None,
        gets: gets.clone(),
        sync_fails: Arc::default(),
    });
    // Forty measures whose askers hang up at once, then ten that wait.
    for _ in 0..40 {
        let (reply, _) = oneshot::channel();
        let request = AdminRequest::PartitionSizes;
        let _ = inputs.send(Input::Admin { request, reply }).await;
    }
    let mut waiting = Vec::new();
    for _ in 0..10 {
        let (reply, answer) = oneshot::channel();
        let request = AdminRequest::PartitionSizes;
        let _ = inputs.send(Input::Admin { request, reply }).await;
        waiting.push(answer);
    }
    for answer in waiting {
        let Ok(Ok(AdminReply::PartitionSizes(sizes))) =
            tokio::time::timeout(Duration::from_secs(60), answer).await
        else {
            panic!("no sizes");
        };
        assert!(sizes.iter().map(|s| s.keys).sum::<u64>() <= u64::from(KEYS));
    }
    let read = gets.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read <= 2 * KEYS as usize + 100,
        "{read} reads for measures of {KEYS} keys"
    );
    let _ = inputs.send(Input::Shutdown).await;
}

/// Review, twentieth session of issue 20: a leave (and a commit) is written with an inline
/// fsync, but its result only bumped a counter: when the fsync failed, the operator was told
/// "leaving" (or "committed") and the node then stopped at its next flush and came back without
/// it. Now the reply is not sent, and the node stops at once.
#[tokio::test]
async fn a_leave_whose_fsync_failed_is_not_confirmed() {
    use crate::runtime::{AdminReply, AdminRequest};
    let dir = tempfile::tempdir().expect("a directory");
    let sync_fails = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = Gated {
        inner: FjallStore::open(dir.path(), Durability::Durable).expect("opens"),
        before_sync: None,
        gets: Arc::default(),
        sync_fails: Arc::clone(&sync_fails),
    };
    let inputs = run_in(store, vec![1, 2]);
    sync_fails.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reply, rx) = oneshot::channel();
    inputs
        .send(Input::Admin {
            request: AdminRequest::Leave,
            reply,
        })
        .await
        .expect("the driver runs");
    let answer = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("the driver answers or stops");
    assert!(
        !matches!(answer, Ok(AdminReply::Leaving)),
        "confirmed a leave it could not make durable: {answer:?}"
    );
}

/// Review of the handshake's generation, twenty-seventh session: the generation links name was
/// refreshed only when a link was made, so a link that already existed went on naming the
/// generation from before gossip raised it (peers knew a later incarnation of this id), and a
/// peer holding the earlier incarnation's connection refused it as an older one.
#[tokio::test]
async fn links_name_the_generation_gossip_raised() {
    use dynamo_gossip::{Body, Digest, Message};
    let (inputs, generation) = run_with_generation(MemoryStore::new(), vec![1, 2]);
    let syn = |id: u64, generation: u64| Input::Peer {
        from: 2,
        msg: PeerMessage::Gossip(Message {
            cluster: NodeConfig::default().cluster,
            sender_address: "n2".into(),
            body: Body::Syn {
                digests: vec![Digest {
                    id,
                    generation,
                    version: 40,
                }],
                complete: false,
            },
        }),
    };
    // Node 2's exchange: the answer makes the link to node 2.
    inputs.send(syn(2, 1)).await.expect("the driver runs");
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let g = generation.load(std::sync::atomic::Ordering::Relaxed);
            if g > 0 {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the link names a generation");
    // Then node 2 tells of this node's earlier incarnation, a day later than this start.
    let earlier = started + 86_400_000;
    inputs.send(syn(1, earlier)).await.expect("the driver runs");
    let raised = tokio::time::timeout(Duration::from_secs(60), async {
        while generation.load(std::sync::atomic::Ordering::Relaxed) <= earlier {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        raised.is_ok(),
        "the link names generation {} after gossip raised it past {earlier}",
        generation.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn put(key: &[u8], value: &[u8]) -> ClientRequest {
    ClientRequest::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        context: Vec::new(),
        options: ClientOptions::default(),
        content_type: None,
    }
}

/// Review, thirty-third session of issue 20 (the simulator's stores are durable at once, so only
/// the driver's own tests can see an acknowledgement that leaves before its fsync): a put that
/// arrives while another put's fsync runs does not ride along with it; it is acknowledged only
/// once an fsync that started after it succeeds, and never when that fsync fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_during_another_puts_fsync_waits_for_its_own_and_a_failed_one_acknowledges_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (step, steps) = std::sync::mpsc::channel();
    // A job still waiting when the test ends runs (the runtime's shutdown waits for it): the
    // step sender goes with the test.
    // Each fsync job says it started, then waits for the test's word: `true` lets it run,
    // `false` fails it.
    let steps = Mutex::new(steps);
    let inputs = run(Gated {
        inner: FjallStore::open(dir.path(), Durability::Durable).expect("opens"),
        before_sync: Some(Arc::new(move || {
            let _ = started_tx.send(());
            let go = steps.lock().unwrap_or_else(|e| e.into_inner()).recv();
            if go.unwrap_or(true) {
                Ok(())
            } else {
                Err(StoreError::Io("fsync failed".into()))
            }
        })),
        gets: Arc::default(),
        sync_fails: Arc::default(),
    });
    let limit = Duration::from_secs(60);
    // The start's own writes: every fsync runs until a get is answered.
    let mut probe = send(&inputs, get(b"k3")).await;
    loop {
        tokio::select! {
            _ = &mut probe => break,
            Some(()) = started.recv() => step.send(true).expect("a job waits"),
            () = tokio::time::sleep(limit) => panic!("the node never answered"),
        }
    }
    let mut first = send(&inputs, put(b"k1", b"v1")).await;
    tokio::time::timeout(limit, started.recv())
        .await
        .expect("the first put's fsync started");
    // The second put arrives while that fsync runs.
    let mut second = send(&inputs, put(b"k2", b"v2")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    step.send(true).expect("the first fsync waits");
    // Every fsync runs until the first put is answered; whether one that started after the
    // second put was sent has run is kept (another of the node's writes may come first).
    let mut covered = false;
    loop {
        tokio::select! {
            stored = &mut first => {
                assert!(matches!(stored, Ok(ClientReply::Stored { .. })), "{stored:?}");
                break;
            }
            Some(()) = started.recv() => {
                covered = true;
                step.send(true).expect("a job waits");
            }
            () = tokio::time::sleep(limit) => panic!("no answer to the first put"),
        }
    }
    // The next fsync fails; the second put is acknowledged only if an fsync that started after
    // it succeeded before that.
    tokio::select! {
        answer = &mut second => assert!(
            covered || !matches!(answer, Ok(ClientReply::Stored { .. })),
            "the second put rode along with the fsync in progress when it arrived: {answer:?}"
        ),
        Some(()) = started.recv() => {
            assert!(
                covered || second.try_recv().is_err(),
                "the second put was acknowledged before an fsync that covers it"
            );
            step.send(false).expect("the job waits");
            match tokio::time::timeout(limit, second).await {
                Ok(Ok(ClientReply::Stored { .. })) if !covered => {
                    panic!("a put was acknowledged though its fsync failed")
                }
                Ok(_) => {}
                Err(_) => panic!("no answer to the second put"),
            }
        }
        () = tokio::time::sleep(limit) => panic!("the second put's fsync never started"),
    }
    drop(step);
}
