//! What each [`Target`](super::Target) does with an input: the decoder the node runs on bytes it
//! did not produce, then, when the bytes decode, the invariants a decoded value must keep.
//!
//! The invariants are the same for every serde-encoded type: re-encoding the decoded value gives
//! bytes that decode, and re-encoding those gives the same bytes again (decoding is a function of
//! the input, and the node never reads back something it cannot write). Hand-written formats
//! (contexts, stored records) are canonical: a decoded clock re-encodes to exactly its input.
//! Decoded sibling sets are also put through what a replica does with them (digest, context,
//! merge with itself), so a set that decodes but breaks a later step is found here too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::core::digest::{decode_siblings, siblings_digest};
use crate::core::membership::RingState;
use crate::on_disk::{decode_sibs, encode_sibs, Damaged};
use crate::redb_store::record::{self, Table};
use crate::runtime::frame::{
    self, handshake_conn, ClientFrame, Conn, FrameError, Handshake, NodeFrame, PeerFrame,
    DEFAULT_MAX_CLIENT_FRAME, DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME,
};
use crate::runtime::handshake::{self, NodeSecrets};
use crate::types::{Clock, NodeId, Sibs};
use crate::{ClientReply, ClientRequest, PeerMessage};

use super::{Outcome, Target};

/// A broken invariant: what the target expected and what it found.
pub(crate) type Violation = String;

/// The cluster name every generated handshake uses, and the accepting node of the handshake
/// target checks.
pub const CLUSTER: &str = "fuzz";
/// The peer secret of the generated handshakes and of the handshake target's node.
pub const PEER_SECRET: &[u8] = b"fuzz-peer-secret";
/// The client secret of the generated handshakes and of the handshake target's node.
pub const CLIENT_SECRET: &[u8] = b"fuzz-client-secret";
/// The id of the handshake target's accepting node.
pub const NODE_ID: NodeId = 1;
/// The key every stored-record input is checked under (the checksum covers it).
pub const RECORD_KEY: &[u8] = b"fuzz-key";

fn decoded(accepted: bool) -> Result<Outcome, Violation> {
    Ok(if accepted {
        Outcome::Accepted
    } else {
        Outcome::Rejected
    })
}

/// Re-encodes `value`, decodes that, and re-encodes again: the two encodings must be equal.
fn round_trip<F: Serialize + DeserializeOwned>(what: &str, value: &F) -> Result<(), Violation> {
    let once = rmp_serde::to_vec(value)
        .map_err(|e| format!("{what}: a decoded value does not encode: {e}"))?;
    let back: F = crate::types::decode_msgpack(&once)
        .map_err(|e| format!("{what}: its own encoding does not decode: {e}"))?;
    let twice = rmp_serde::to_vec(&back)
        .map_err(|e| format!("{what}: a decoded value does not encode: {e}"))?;
    if once != twice {
        return Err(format!(
            "{what}: re-encoding is not stable ({} then {} bytes)",
            once.len(),
            twice.len()
        ));
    }
    Ok(())
}

/// A context as the coordinator reads it: decoded clocks re-encode to their exact bytes.
fn check_context(bytes: &[u8]) -> Result<bool, Violation> {
    match Clock::decode(bytes) {
        Ok(clock) => {
            if clock.encode() != bytes {
                return Err("context: a decoded clock does not re-encode to its bytes".into());
            }
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// What a replica does with a sibling set it received or read: digest, context, merge.
fn check_sibs(what: &str, sibs: &Sibs) -> Result<(), Violation> {
    round_trip(what, sibs)?;
    let _ = siblings_digest(sibs);
    let context = sibs.context();
    match Clock::decode(&context.encode()) {
        Ok(c) if c == context => {}
        _ => return Err(format!("{what}: its context does not survive its encoding")),
    }
    let mut merged = sibs.clone();
    merged.merge(sibs);
    if &merged != sibs {
        return Err(format!("{what}: merging with itself changed it"));
    }
    if sibs.dotted_values().count() != sibs.len() {
        return Err(format!("{what}: dots and values disagree"));
    }
    Ok(())
}

fn check_request(request: &ClientRequest) -> Result<(), Violation> {
    match request {
        ClientRequest::Put { context, .. } | ClientRequest::Delete { context, .. } => {
            check_context(context)?;
        }
        ClientRequest::Get { .. } => {}
    }
    Ok(())
}

fn check_reply(reply: &ClientReply) -> Result<(), Violation> {
    match reply {
        ClientReply::Got { context, .. } | ClientReply::Stored { context, .. } => {
            check_context(context)?;
        }
        ClientReply::Failed(_) => {}
    }
    Ok(())
}

/// An encoded sibling set inside a hint or transfer: it decodes to a set that keeps the checks.
fn check_payload(what: &str, payload: &[u8]) -> Result<(), Violation> {
    if let Some(sibs) = decode_siblings(payload) {
        check_sibs(what, &sibs)?;
    }
    Ok(())
}

fn check_peer_message(msg: &PeerMessage) -> Result<(), Violation> {
    match msg {
        PeerMessage::Forward { request, .. } => check_request(request),
        PeerMessage::ForwardReply { reply, .. } => check_reply(reply),
        PeerMessage::Write { siblings, .. } => check_sibs("write", siblings),
        PeerMessage::ReadReply {
            siblings: Some(siblings),
            ..
        } => check_sibs("read reply", siblings),
        PeerMessage::Exchange { entries, .. } => entries
            .iter()
            .try_for_each(|(_, sibs)| check_sibs("exchange", sibs)),
        PeerMessage::Hints(batch) => batch
            .entries
            .iter()
            .try_for_each(|e| check_payload("hint", &e.payload)),
        PeerMessage::Transfer(batch) => batch
            .entries
            .iter()
            .try_for_each(|e| check_payload("transfer", &e.payload)),
        PeerMessage::Gossip(_) => {
            // A ring published in gossip is decoded as a stored one is: the `meta` target.
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Frame bodies of a client: `ClientFrame`, as a node decodes them after the handshake.
pub(crate) fn client(input: &[u8]) -> Result<Outcome, Violation> {
    match frame::decode::<ClientFrame>(input) {
        Ok(f) => {
            round_trip("client frame", &f)?;
            if let ClientFrame::Request { request, .. } = &f {
                check_request(request)?;
            }
            decoded(true)
        }
        Err(_) => decoded(false),
    }
}

/// Frame bodies of a node to a client: `NodeFrame`, as the client decodes them.
pub(crate) fn reply(input: &[u8]) -> Result<Outcome, Violation> {
    match frame::decode::<NodeFrame>(input) {
        Ok(f) => {
            round_trip("node frame", &f)?;
            if let NodeFrame::Reply { reply, .. } = &f {
                check_reply(reply)?;
            }
            decoded(true)
        }
        Err(_) => decoded(false),
    }
}

/// Frame bodies between peers: `PeerFrame`, with the sibling sets and payloads inside.
pub(crate) fn peer(input: &[u8]) -> Result<Outcome, Violation> {
    match frame::decode::<PeerFrame>(input) {
        Ok(f) => {
            round_trip("peer frame", &f)?;
            if let PeerFrame::Peer(msg) = &f {
                check_peer_message(msg)?;
            }
            decoded(true)
        }
        Err(_) => decoded(false),
    }
}

/// A client context: the bytes a client hands back with a put or delete.
pub(crate) fn context(input: &[u8]) -> Result<Outcome, Violation> {
    decoded(check_context(input)?)
}

/// An encoded sibling set: the payload of a hint or a transfer entry, as `decode_siblings` reads.
pub(crate) fn siblings(input: &[u8]) -> Result<Outcome, Violation> {
    match decode_siblings(input) {
        Some(sibs) => {
            check_sibs("sibling set", &sibs)?;
            decoded(true)
        }
        None => decoded(false),
    }
}

/// A stored data record (`redb_store`): the checksum check of every table, then the payload behind
/// a valid checksum (bytes 9.. of the input sealed under [`RECORD_KEY`]), since a mutation of a
/// sealed record almost never keeps its checksum.
pub(crate) fn record(input: &[u8]) -> Result<Outcome, Violation> {
    for table in [Table::Data, Table::Hints, Table::Meta] {
        let _ = record::open(table, RECORD_KEY, input);
    }
    let direct = decode_sibs(RECORD_KEY, input);
    let payload = input.get(record::HEADER..).unwrap_or(input);
    let sealed = record::seal(Table::Data, RECORD_KEY, payload);
    match record::open(Table::Data, RECORD_KEY, &sealed) {
        Ok(p) if p == payload => {}
        _ => return Err("record: a sealed record does not open to its payload".into()),
    }
    let accepted = match decode_sibs(RECORD_KEY, &sealed) {
        Ok(sibs) => {
            check_sibs("stored sibling set", &sibs)?;
            let again = encode_sibs(RECORD_KEY, &sibs)
                .map_err(|e| format!("record: a decoded set does not encode: {e}"))?;
            match decode_sibs(RECORD_KEY, &again) {
                Ok(back) if back == sibs => {}
                _ => return Err("record: a re-sealed set does not read back equal".into()),
            }
            true
        }
        Err(Damaged::Decode(_)) => false,
        Err(Damaged::Record(e)) => {
            return Err(format!(
                "record: a freshly sealed record fails verification: {e}"
            ))
        }
    };
    if let Ok(sibs) = direct {
        check_sibs("stored sibling set", &sibs)?;
    }
    decoded(accepted)
}

/// Metadata values and hint records of the store, and rings published in gossip: the ring state
/// (with a few lookups on a decoded ring), a hint record, an 8-byte counter.
pub(crate) fn meta(input: &[u8]) -> Result<Outcome, Violation> {
    let mut accepted = false;
    if let Ok(state) = RingState::decode(input) {
        accepted = true;
        round_trip("ring state", &state)?;
        let ring = &state.ring;
        for key in [&b""[..], b"k", input] {
            let list = ring.preference_list(key);
            if list.primaries().count() > ring.replicas() {
                return Err("ring state: more primaries than N".into());
            }
            let range = ring.range_index(ring.position(key));
            if range >= ring.range_count() {
                return Err("ring state: a key in no range".into());
            }
        }
    }
    if let Ok(hint) =
        crate::types::decode_msgpack::<dynamo_handoff::HintRecord<NodeId, Vec<u8>>>(input)
    {
        accepted = true;
        round_trip("hint record", &hint)?;
        check_payload("hint record", &hint.hint.payload)?;
    }
    // The node id, epochs and generation: 8 bytes, big-endian.
    accepted |= <[u8; 8]>::try_from(input).is_ok();
    decoded(accepted)
}

/// An in-memory byte stream: reads give the input in chunks of `chunk` bytes, writes vanish.
struct Feed<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl AsyncRead for Feed<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(self.chunk).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Feed<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Read sizes the stream targets cut their input into (a socket delivers any split).
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 64, 509, 4096, 1 << 20];

/// The byte stream of an established connection: `input[0]` picks the side (even: a node reading
/// a peer's [`PeerFrame`]s, limit [`DEFAULT_MAX_FRAME`]; odd: a node reading a client's
/// [`ClientFrame`]s, limit [`DEFAULT_MAX_CLIENT_FRAME`]) and the read size; the rest is the stream,
/// length prefixes and bodies, read and decoded by [`Conn`] until the first error (on which the
/// server closes the connection).
pub(crate) fn stream(input: &[u8]) -> Result<Outcome, Violation> {
    let Some((&mode, rest)) = input.split_first() else {
        return decoded(false);
    };
    let peer = mode % 2 == 0;
    let chunk = CHUNKS[usize::from(mode >> 1) % CHUNKS.len()];
    let mut conn = handshake_conn(Feed {
        data: rest,
        pos: 0,
        chunk,
    });
    let limit = if peer {
        DEFAULT_MAX_FRAME
    } else {
        DEFAULT_MAX_CLIENT_FRAME
    };
    conn.established(limit, limit, None);
    let mut frames = 0usize;
    // As the server does: frames until the first error, which closes the connection.
    let end = futures::executor::block_on(async {
        loop {
            let result = if peer {
                conn.recv::<PeerFrame>().await.map(drop)
            } else {
                conn.recv::<ClientFrame>().await.map(drop)
            };
            match result {
                Ok(()) => frames += 1,
                Err(e) => return e,
            }
        }
    });
    if frames.saturating_mul(4) > rest.len() {
        return Err(format!(
            "stream: {frames} frames out of {} bytes",
            rest.len()
        ));
    }
    match end {
        FrameError::Closed
        | FrameError::Io(_)
        | FrameError::TooLarge { .. }
        | FrameError::Decode(_) => decoded(frames > 0),
        other => Err(format!("stream: unexpected end of the stream: {other}")),
    }
}

thread_local! {
    /// The runtime the handshake target runs `accept` on (its refusal waits on a timer).
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

/// The fuzzed node's secrets, with per-node credentials (a fixed authority, see
/// [`crate::runtime::identity`]) or without.
pub(crate) fn secrets(credentials: bool) -> NodeSecrets {
    let (identity, authority) = if credentials {
        let authority = crate::runtime::identity::Authority::from_secret(AUTHORITY);
        (
            Some(authority.certify(CLUSTER, NODE_ID, [0x33; 32])),
            Some(authority.public()),
        )
    } else {
        (None, None)
    };
    NodeSecrets {
        cluster: CLUSTER.to_string(),
        peer_secret: PEER_SECRET.to_vec(),
        client_secret: CLIENT_SECRET.to_vec(),
        identity,
        authority,
    }
}

/// The fixed authority key of the fuzzed cluster.
pub(crate) const AUTHORITY: [u8; 32] = [0x5a; 32];

/// Before the handshake: the input decoded as one [`Handshake`] body, then fed as the byte stream
/// of a new connection to a node running [`handshake::accept`] (frames of at most
/// [`HANDSHAKE_MAX_FRAME`] bytes), once requiring encryption and once not. The node must refuse
/// every such stream, since no input can know the node's fresh challenge.
pub(crate) fn handshake(input: &[u8]) -> Result<Outcome, Violation> {
    let accepted = match frame::decode::<Handshake>(input) {
        Ok(h) => {
            round_trip("handshake frame", &h)?;
            true
        }
        Err(_) => false,
    };
    let chunk = CHUNKS[input.len() % CHUNKS.len()];
    // Without per-node credentials when the input's length is even, with them when odd (both
    // configurations, without doubling the cost of every input).
    let secrets = secrets(input.len() % 2 == 1);
    let outcome = RUNTIME.with(|rt| -> Result<(), Violation> {
        let Some(rt) = rt else {
            return Err("handshake: no runtime to run accept on".into());
        };
        for encrypt in [false, true] {
            let mut conn: Conn<Feed<'_>> = handshake_conn(Feed {
                data: input,
                pos: 0,
                chunk,
            });
            let result = rt.block_on(handshake::accept(
                &mut conn,
                &secrets,
                NODE_ID,
                encrypt,
                Default::default(),
            ));
            if let Ok(role) = result {
                return Err(format!("handshake: accepted a connection as {role:?}"));
            }
            if conn.max_frame() != HANDSHAKE_MAX_FRAME {
                return Err("handshake: the frame limit changed before authentication".into());
            }
        }
        Ok(())
    });
    outcome?;
    decoded(accepted)
}

/// What the node itself runs on an input of `target`, without the invariant checks (for timing).
pub(crate) fn decode_only(target: Target, input: &[u8]) {
    match target {
        // The stream as a socket delivers it, in reads of whatever has arrived (up to 64 KiB):
        // `stream` fuzzes reads of 1 to 509 bytes too, which time `Conn`'s overhead per read
        // call (about 50 ns, where a real read costs a system call) more than decoding.
        Target::Stream => {
            if let Some((&mode, _)) = input.split_first() {
                let mut fast = input.to_vec();
                fast[0] = (mode & 1) | (6 << 1);
                let _ = stream(&fast);
            }
        }
        // What a node runs on a new connection: `accept` (its decoder admits only handshake
        // frames of at most 4 KiB, and it reads at most two).
        Target::Handshake => {
            let _ = RUNTIME.with(|rt| {
                rt.as_ref().map(|rt| {
                    let mut conn = handshake_conn(Feed {
                        data: input,
                        pos: 0,
                        chunk: 1 << 16,
                    });
                    rt.block_on(handshake::accept(
                        &mut conn,
                        &secrets(false),
                        NODE_ID,
                        true,
                        Default::default(),
                    ))
                    .is_ok()
                })
            });
        }
        Target::Client => {
            // The coordinator decodes a put's context.
            if let Ok(ClientFrame::Request {
                request: ClientRequest::Put { context, .. } | ClientRequest::Delete { context, .. },
                ..
            }) = frame::decode::<ClientFrame>(input)
            {
                let _ = Clock::decode(&context);
            }
        }
        Target::Reply => {
            let _ = frame::decode::<NodeFrame>(input);
        }
        Target::Peer => {
            // A replica decodes the sibling sets in hints and transfers.
            match frame::decode::<PeerFrame>(input) {
                Ok(PeerFrame::Peer(PeerMessage::Hints(batch))) => {
                    for e in &batch.entries {
                        let _ = decode_siblings(&e.payload);
                    }
                }
                Ok(PeerFrame::Peer(PeerMessage::Transfer(batch))) => {
                    for e in &batch.entries {
                        let _ = decode_siblings(&e.payload);
                    }
                }
                _ => {}
            }
        }
        Target::Context => {
            let _ = Clock::decode(input);
        }
        Target::Siblings => {
            let _ = decode_siblings(input);
        }
        Target::Record => {
            // A read verifies the checksum; what passes it is decoded.
            let _ = decode_sibs(RECORD_KEY, input);
            let payload = input.get(record::HEADER..).unwrap_or(input);
            let _ = crate::types::decode_msgpack::<Sibs>(payload);
        }
        Target::Meta => {
            let _ = RingState::decode(input);
            let _ =
                crate::types::decode_msgpack::<dynamo_handoff::HintRecord<NodeId, Vec<u8>>>(input);
        }
    }
}
