//! The corpus: loading and saving it, and generating it from real traffic.
//!
//! [`generate`] runs a small cluster of [`NodeCore`](crate::core::NodeCore)s (the same cores the runtime drives) through
//! puts, gets, concurrent writes, deletes, a node that is unreachable and then lossy (hinted
//! handoff, read repair, anti-entropy), a join and a leave, and encodes what they say exactly as
//! the runtime does: every peer message as a [`PeerFrame`] body, every request as a
//! [`ClientFrame`], every reply as a [`NodeFrame`]; the contexts of the replies; the sibling sets
//! in writes and payloads; each store's records sealed as the redb store seals them, its ring
//! state, hint records and counters. Handshakes are real runs of `connect` against `accept`.
//! Everything is deterministic: the same code gives the same corpus.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::targets::{CLIENT_SECRET, CLUSTER, NODE_ID, PEER_SECRET, RECORD_KEY};
use super::{content_name, Target};
use crate::on_disk::encode_sibs;
use crate::runtime::frame::{
    self, handshake_conn, AdminReply, ClientFrame, Handshake, NodeFrame, PeerFrame, Role,
};
use crate::runtime::handshake::{accept, connect, Credentials};
use crate::{
    ClientOptions, ClientReply, ClientRequest, MemoryStore, NodeConfig, NodeId, PeerMessage, Store,
    StoredCore,
};

/// Entries kept per target.
pub const MAX_ENTRIES: usize = 48;
/// Largest entry kept (the checked-in corpus stays small).
pub const MAX_ENTRY_LEN: usize = 16 << 10;

/// Reads `dir/<target>/*`: one input per file, in file-name order. A missing directory is an
/// empty corpus.
pub fn load(dir: &Path, target: Target) -> io::Result<Vec<Vec<u8>>> {
    let sub = dir.join(target.name());
    if !sub.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<_> = std::fs::read_dir(&sub)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .map(std::fs::read)
        .collect()
}

/// Writes `entries` as `dir/<target>/<hash>`, replacing what was there.
pub fn save(dir: &Path, target: Target, entries: &[Vec<u8>]) -> io::Result<()> {
    let sub = dir.join(target.name());
    if sub.exists() {
        std::fs::remove_dir_all(&sub)?;
    }
    std::fs::create_dir_all(&sub)?;
    for e in entries {
        std::fs::write(sub.join(content_name(e)), e)?;
    }
    Ok(())
}

/// Captured inputs, grouped by target and by kind (a message variant, a role) so that the
/// selection keeps every kind.
#[derive(Default)]
struct Capture {
    by_target: BTreeMap<Target, BTreeMap<String, BTreeSet<Vec<u8>>>>,
}

impl Capture {
    fn add(&mut self, target: Target, kind: &str, bytes: Vec<u8>) {
        if bytes.len() > MAX_ENTRY_LEN {
            return;
        }
        self.by_target
            .entry(target)
            .or_default()
            .entry(kind.to_string())
            .or_default()
            .insert(bytes);
    }

    /// At most [`MAX_ENTRIES`] per target: round-robin over kinds, from each kind entries spread
    /// over its sizes.
    fn select(self) -> BTreeMap<Target, Vec<Vec<u8>>> {
        let mut out = BTreeMap::new();
        for (target, kinds) in self.by_target {
            let mut lists: Vec<VecDeque<Vec<u8>>> = kinds
                .into_values()
                .map(|set| {
                    let mut v: Vec<Vec<u8>> = set.into_iter().collect();
                    v.sort_by_key(|e| e.len());
                    spread(v)
                })
                .collect();
            let mut chosen = Vec::new();
            while chosen.len() < MAX_ENTRIES && lists.iter().any(|l| !l.is_empty()) {
                for l in lists.iter_mut() {
                    if chosen.len() < MAX_ENTRIES {
                        if let Some(e) = l.pop_front() {
                            chosen.push(e);
                        }
                    }
                }
            }
            out.insert(target, chosen);
        }
        out
    }
}

/// Reorders entries sorted by size so that any prefix covers the sizes evenly: smallest,
/// largest, middle, quarters...
fn spread(sorted: Vec<Vec<u8>>) -> VecDeque<Vec<u8>> {
    let n = sorted.len();
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut step = n.max(1);
    while order.len() < n {
        let mut i = 0;
        while i < n {
            if !seen[i] {
                seen[i] = true;
                order.push(i);
            }
            i += step;
        }
        if let Some(last) = n.checked_sub(1) {
            if !seen[last] {
                seen[last] = true;
                order.push(last);
            }
        }
        step = (step / 2).max(1);
    }
    let mut slots: Vec<Option<Vec<u8>>> = sorted.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

fn variant<T: std::fmt::Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    let end = text
        .find(|c: char| !c.is_alphanumeric() && c != '_')
        .unwrap_or(text.len());
    text[..end].to_string()
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A cluster of cores with lossless delivery, recording everything they say.
struct Traffic {
    nodes: BTreeMap<NodeId, StoredCore<MemoryStore>>,
    /// Messages to these nodes are lost (never delivered, the sender not told).
    lossy: BTreeSet<NodeId>,
    /// These nodes are down: messages to them are undelivered (the sender is told).
    down: BTreeSet<NodeId>,
    now: u64,
    next_req: u64,
    replies: BTreeMap<u64, ClientReply>,
    capture: Capture,
    /// Recent peer and client frames, for the stream target.
    peer_stream: Vec<u8>,
    client_stream: Vec<u8>,
}

impl Traffic {
    fn new(config: &NodeConfig, ids: &[NodeId]) -> Option<Self> {
        let nodes = ids
            .iter()
            .map(|&i| {
                StoredCore::new(i, format!("n{i}"), config.clone(), MemoryStore::new(), 1, i)
                    .ok()
                    .map(|c| (i, c))
            })
            .collect::<Option<_>>()?;
        Some(Traffic {
            nodes,
            lossy: BTreeSet::new(),
            down: BTreeSet::new(),
            now: 1,
            next_req: 1,
            replies: BTreeMap::new(),
            capture: Capture::default(),
            peer_stream: Vec::new(),
            client_stream: Vec::new(),
        })
    }

    fn record_peer(&mut self, msg: &PeerMessage) {
        let kind = variant(msg);
        let frame = PeerFrame::Peer(msg.clone());
        let Ok(body) = frame::encode(&frame) else {
            return;
        };
        self.flush_stream(false, &body);
        self.capture.add(Target::Peer, &kind, body);
        let mut sibs = Vec::new();
        match msg {
            PeerMessage::Write { siblings, .. } => sibs.push(siblings.clone()),
            PeerMessage::ReadReply {
                siblings: Some(s), ..
            } => sibs.push(s.clone()),
            PeerMessage::Exchange { entries, .. } => {
                sibs.extend(entries.iter().map(|(_, s)| s.clone()));
            }
            PeerMessage::Hints(batch) => {
                for e in &batch.entries {
                    self.capture
                        .add(Target::Siblings, "hint", e.payload.clone());
                }
            }
            PeerMessage::Transfer(batch) => {
                for e in &batch.entries {
                    self.capture
                        .add(Target::Siblings, "transfer", e.payload.clone());
                }
            }
            PeerMessage::Forward { request, .. } => self.record_context_of(request),
            _ => {}
        }
        for s in sibs {
            let kind = format!("{}-{}", s.len(), s.entries().len());
            if let Ok(bytes) = rmp_serde::to_vec(&s) {
                self.capture.add(Target::Siblings, &kind, bytes);
            }
            self.capture
                .add(Target::Context, "sibs", s.context().encode());
            if let Ok(record) = encode_sibs(RECORD_KEY, &s) {
                self.capture.add(Target::Record, &kind, record);
            }
        }
    }

    fn record_context_of(&mut self, request: &ClientRequest) {
        if let ClientRequest::Put { context, .. } | ClientRequest::Delete { context, .. } = request
        {
            if !context.is_empty() {
                self.capture
                    .add(Target::Context, "request", context.clone());
            }
        }
    }

    /// Appends a frame to the stream of its kind; a stream of a few frames becomes an entry.
    fn flush_stream(&mut self, client: bool, body: &[u8]) {
        let (stream, mode) = if client {
            (&mut self.client_stream, 1u8)
        } else {
            (&mut self.peer_stream, 0u8)
        };
        if stream.is_empty() {
            // The read size: varies with what came before.
            stream.push(mode | ((body.len() as u8 % 8) << 1));
        }
        stream.extend_from_slice(&framed(body));
        if stream.len() > 2048 || body.len() > 1024 {
            let entry = std::mem::take(stream);
            self.capture.add(
                Target::Stream,
                if client { "client" } else { "peer" },
                entry,
            );
        }
    }

    fn settle(&mut self) {
        let mut queue: VecDeque<(NodeId, NodeId, PeerMessage)> = VecDeque::new();
        loop {
            for (&id, node) in self.nodes.iter_mut() {
                while let Some((to, msg)) = node.poll_transmit() {
                    queue.push_back((id, to, msg));
                }
                while let Some((req, reply)) = node.poll_reply() {
                    self.replies.insert(req, reply);
                }
            }
            let Some((from, to, msg)) = queue.pop_front() else {
                break;
            };
            self.record_peer(&msg);
            if self.lossy.contains(&to) {
                continue;
            }
            if self.down.contains(&to) || !self.nodes.contains_key(&to) {
                if let Some(n) = self.nodes.get_mut(&from) {
                    n.undelivered(self.now, to, msg);
                }
                continue;
            }
            if let Some(n) = self.nodes.get_mut(&to) {
                n.handle_message(self.now, from, msg);
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            for (id, node) in self.nodes.iter_mut() {
                if self.down.contains(id) {
                    continue;
                }
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
            self.settle();
        }
    }

    fn request(&mut self, at: NodeId, request: ClientRequest) -> Option<ClientReply> {
        let id = self.next_req;
        self.next_req += 1;
        let frame = ClientFrame::Request {
            id,
            request: request.clone(),
        };
        if let Ok(body) = frame::encode(&frame) {
            self.flush_stream(true, &body);
            self.capture.add(Target::Client, &variant(&request), body);
        }
        self.record_context_of(&request);
        self.nodes
            .get_mut(&at)?
            .handle_client(self.now, id, request);
        self.settle();
        let mut waited = 0;
        while !self.replies.contains_key(&id) && waited < 5_000 {
            self.advance(10);
            waited += 10;
        }
        let reply = self.replies.remove(&id)?;
        if let ClientReply::Got { context, .. } | ClientReply::Stored { context, .. } = &reply {
            self.capture.add(Target::Context, "reply", context.clone());
        }
        let frame = NodeFrame::Reply {
            id,
            reply: reply.clone(),
        };
        if let Ok(body) = frame::encode(&frame) {
            self.capture.add(Target::Reply, &variant(&reply), body);
        }
        Some(reply)
    }

    fn put(&mut self, at: NodeId, key: &[u8], value: Vec<u8>, context: Vec<u8>) -> Vec<u8> {
        let request = ClientRequest::Put {
            key: key.to_vec(),
            value,
            context,
            options: ClientOptions::default(),
            content_type: None,
        };
        match self.request(at, request) {
            Some(ClientReply::Stored { context, .. }) => context,
            _ => Vec::new(),
        }
    }

    fn get(&mut self, at: NodeId, key: &[u8], options: ClientOptions) -> Vec<u8> {
        let request = ClientRequest::Get {
            key: key.to_vec(),
            options,
        };
        match self.request(at, request) {
            Some(ClientReply::Got { context, .. }) => context,
            _ => Vec::new(),
        }
    }

    /// What each node's store holds, as the redb store writes it and as the node reads it back.
    fn record_stores(&mut self) {
        for node in self.nodes.values() {
            let store = node.store();
            let mut sets = Vec::new();
            let _ = store.scan(&mut |_, sibs| sets.push(sibs.clone()));
            for s in sets {
                if let Ok(record) = encode_sibs(RECORD_KEY, &s) {
                    let kind = format!("{}-{}", s.len(), s.entries().len());
                    self.capture.add(Target::Record, &kind, record);
                }
            }
            for (_, hint) in store.hints().unwrap_or_default() {
                self.capture.add(Target::Meta, "hint", hint);
            }
            for name in [
                "ring",
                "node-id",
                "epoch",
                "epoch-lease",
                "generation",
                "format",
            ] {
                if let Ok(Some(bytes)) = store.get_meta(name) {
                    self.capture.add(Target::Meta, name, bytes);
                }
            }
            let status = NodeFrame::AdminReply {
                id: 1,
                reply: AdminReply::Status(Box::new(node.status())),
            };
            if let Ok(body) = frame::encode(&status) {
                self.capture.add(Target::Reply, "status", body);
            }
        }
        let peer = std::mem::take(&mut self.peer_stream);
        let client = std::mem::take(&mut self.client_stream);
        self.capture.add(Target::Stream, "peer", peer);
        self.capture.add(Target::Stream, "client", client);
    }
}

/// The traffic of a small cluster's life (see the module docs).
fn cluster_traffic(capture: Capture) -> Option<Capture> {
    let ids: Vec<NodeId> = vec![1, 2, 3, 4];
    let config = NodeConfig {
        initial_members: ids.clone(),
        seeds: ids.iter().map(|&i| (i, format!("n{i}"))).collect(),
        gossip_interval: 100,
        sync_interval: Some(500),
        partitions: 8,
        ..NodeConfig::default()
    };
    let mut t = Traffic::new(&config, &ids)?;
    t.capture = capture;
    t.advance(1_000);
    for i in 0..24u32 {
        let value = vec![b'v'; [1, 7, 100, 1000, 3000][i as usize % 5]];
        let at = NodeId::from(i % 4 + 1);
        t.put(at, format!("key-{i}").as_bytes(), value, Vec::new());
    }
    // Siblings, a superseding put, a delete.
    t.put(1, b"cart", b"milk".to_vec(), Vec::new());
    t.put(2, b"cart", b"eggs".to_vec(), Vec::new());
    t.put(3, b"cart", b"flour".to_vec(), Vec::new());
    let ctx = t.get(4, b"cart", ClientOptions::default());
    let ctx = t.put(4, b"cart", b"milk+eggs+flour".to_vec(), ctx);
    t.put(1, b"cart", b"butter".to_vec(), Vec::new());
    let strict = ClientOptions {
        r: Some(3),
        timeout: Some(2_000),
        strict: Some(true),
        ..ClientOptions::default()
    };
    let ctx2 = t.get(2, b"cart", strict);
    t.request(
        3,
        ClientRequest::Delete {
            key: b"cart".to_vec(),
            context: if ctx2.is_empty() { ctx } else { ctx2 },
            options: ClientOptions::default(),
        },
    );
    // A node down: hinted handoff, then its return.
    t.down.insert(4);
    for i in 0..8u32 {
        t.put(
            1,
            format!("hinted-{i}").as_bytes(),
            b"h".to_vec(),
            Vec::new(),
        );
    }
    t.record_stores();
    t.down.remove(&4);
    t.advance(3_000);
    // A lossy node: its copies fall behind; reads repair, anti-entropy exchanges.
    t.lossy.insert(3);
    for i in 0..12u32 {
        t.put(
            2,
            format!("lost-{i}").as_bytes(),
            vec![b'l'; i as usize * 10],
            Vec::new(),
        );
    }
    t.lossy.remove(&3);
    for i in 0..4u32 {
        t.get(3, format!("lost-{i}").as_bytes(), ClientOptions::default());
    }
    t.advance(5_000);
    // A join and a leave: ownership transfers.
    let newcomer =
        StoredCore::new(5, "n5".into(), config.clone(), MemoryStore::new(), t.now, 5).ok()?;
    t.nodes.insert(5, newcomer);
    t.advance(8_000);
    if let Some(n) = t.nodes.get_mut(&2) {
        n.leave(t.now);
    }
    t.advance(8_000);
    t.record_stores();
    Some(t.capture)
}

/// A byte stream that records what is written through it.
struct Tee<T> {
    inner: T,
    written: Arc<Mutex<Vec<u8>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tee<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tee<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if let Ok(mut w) = self.written.lock() {
                w.extend_from_slice(&buf[..*n]);
            }
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Splits a stream of length-prefixed frames into bodies (up to the first incomplete one).
fn bodies(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((len, rest)) = stream.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some((body, rest)) = rest.split_at_checked(len) else {
            break;
        };
        out.push(body.to_vec());
        stream = rest;
    }
    out
}

/// Real handshakes between `connect` and `accept`: the connecting side's stream and every frame
/// body of both sides, for clients and peers, with and without encryption, with the right
/// secret and a wrong one.
fn handshake_traffic(capture: &mut Capture) -> Option<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok()?;
    let peer = Role::Peer {
        id: 2,
        address: "127.0.0.1:7002".into(),
        generation: 0,
    };
    let authority = crate::runtime::identity::Authority::from_secret(super::targets::AUTHORITY);
    for (role, secret, credentials) in [
        (Role::Client, CLIENT_SECRET, false),
        (peer.clone(), PEER_SECRET, false),
        (peer.clone(), PEER_SECRET, true),
        (peer, CLIENT_SECRET, false),
        (Role::Client, &b"wrong"[..], false),
    ] {
        let secrets = super::targets::secrets(credentials);
        for encrypt in [true, false] {
            let (a, b) = tokio::io::duplex(1 << 16);
            let sent = Arc::new(Mutex::new(Vec::new()));
            let answered = Arc::new(Mutex::new(Vec::new()));
            let mut ca = handshake_conn(Tee {
                inner: a,
                written: sent.clone(),
            });
            let mut cb = handshake_conn(Tee {
                inner: b,
                written: answered.clone(),
            });
            let creds = Credentials {
                cluster: CLUSTER.to_string(),
                secret: secret.to_vec(),
                identity: credentials.then(|| authority.certify(CLUSTER, 2, [0x44; 32])),
                authority: credentials.then(|| authority.public()),
            };
            let _ = rt.block_on(async {
                tokio::join!(
                    connect(&mut ca, &creds, role.clone(), Some(NODE_ID), encrypt),
                    accept(&mut cb, &secrets, NODE_ID, encrypt, Default::default())
                )
            });
            let sent = sent.lock().ok()?.clone();
            let answered = answered.lock().ok()?.clone();
            for body in bodies(&sent).into_iter().chain(bodies(&answered)) {
                let kind = frame::decode::<Handshake>(&body)
                    .map(|h| variant(&h))
                    .unwrap_or_default();
                capture.add(Target::Handshake, &kind, body);
            }
            capture.add(Target::Handshake, "stream", sent);
        }
    }
    Some(())
}

/// The corpus of every target, from real traffic (see the module docs); `None` if the cluster or
/// the handshakes could not run.
pub fn generate() -> Option<BTreeMap<Target, Vec<Vec<u8>>>> {
    let mut capture = Capture::default();
    handshake_traffic(&mut capture)?;
    let capture = cluster_traffic(capture)?;
    Some(capture.select())
}
