//! The wire: frame header, handshake frames, client and node frames, peer messages.

use super::Table;
use crate::message::{ClientError, ClientOptions, ClientReply, ClientRequest, PeerMessage};
use crate::runtime::frame::{
    AdminReply, AdminRequest, ClientFrame, Handshake, NodeFrame, PeerFrame, RangeInfo, Role,
};
use crate::types::{Clock, Object, Sibs};

const BREAKS_PEERS: &str = "Nodes and clients of the same PROTOCOL_VERSION send the pinned \
    bytes: this change breaks a rolling upgrade and every client built before it. If the change \
    is intended, bump runtime::frame::PROTOCOL_VERSION and re-pin the vectors (the bytes each \
    now encodes to are printed above).";

/// A sibling set of one version: `v` written by actor (1, 0) at 5 ms.
pub(crate) fn sibs(object: Object) -> Sibs {
    let mut s = Sibs::new();
    let ctx = s.context();
    s.put(&ctx, (1, 0), 5, dynamo_vclock::Value::Live(object));
    s
}

fn tombstone() -> Sibs {
    let mut s = Sibs::new();
    let ctx = s.context();
    s.put(&ctx, (2, 7), 9, dynamo_vclock::Value::Tombstone);
    s
}

fn clock() -> Clock {
    let mut c = Clock::new();
    c.increment((2, 7), 9);
    c
}

fn options() -> ClientOptions {
    ClientOptions {
        r: Some(2),
        w: None,
        timeout: Some(500),
        strict: Some(true),
    }
}

fn client_requests() -> Vec<(&'static str, ClientRequest, &'static str)> {
    vec![
        (
            "Get",
            ClientRequest::Get {
                key: b"k".to_vec(),
                options: options(),
            },
            "81a347657492c4016b9402c0cd01f4c3",
        ),
        (
            "Put",
            ClientRequest::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                context: vec![1, 2],
                options: ClientOptions::default(),
                content_type: None,
            },
            "81a350757495c4016bc40176c402010294c0c0c0c0c0",
        ),
        (
            "Put with a content type",
            ClientRequest::Put {
                key: b"k".to_vec(),
                value: b"{}".to_vec(),
                context: Vec::new(),
                options: ClientOptions::default(),
                content_type: Some("application/json".into()),
            },
            "81a350757495c4016bc4027b7dc40094c0c0c0c0b06170706c69636174696f6e\
             2f6a736f6e",
        ),
        (
            "Delete",
            ClientRequest::Delete {
                key: b"k".to_vec(),
                context: vec![3],
                options: ClientOptions::default(),
            },
            "81a644656c65746593c4016bc4010394c0c0c0c0",
        ),
    ]
}

fn client_errors() -> Vec<(&'static str, ClientError, &'static str)> {
    vec![
        (
            "QuorumFailed",
            ClientError::QuorumFailed {
                acknowledged: 1,
                required: 2,
            },
            "81a64661696c656481ac51756f72756d4661696c6564920102",
        ),
        (
            "Timeout",
            ClientError::Timeout {
                acknowledged: 0,
                required: 2,
            },
            "81a64661696c656481a754696d656f7574920002",
        ),
        (
            "InvalidOptions",
            ClientError::InvalidOptions("R>N".into()),
            "81a64661696c656481ae496e76616c69644f7074696f6e73a3523e4e",
        ),
        (
            "ValueTooLarge",
            ClientError::ValueTooLarge { size: 9, limit: 8 },
            "81a64661696c656481ad56616c7565546f6f4c61726765920908",
        ),
        (
            "InvalidContext",
            ClientError::InvalidContext("x".into()),
            "81a64661696c656481ae496e76616c6964436f6e74657874a178",
        ),
        (
            "Storage",
            ClientError::Storage("disk".into()),
            "81a64661696c656481a753746f72616765a46469736b",
        ),
        (
            "Unavailable",
            ClientError::Unavailable("busy".into()),
            "81a64661696c656481ab556e617661696c61626c65a462757379",
        ),
        (
            "LimitExceeded",
            ClientError::LimitExceeded {
                what: "siblings".into(),
                size: 3,
                limit: 2,
            },
            "81a64661696c656481ad4c696d6974457863656564656493a87369626c696e67\
             730302",
        ),
    ]
}

fn client_replies() -> Vec<(&'static str, ClientReply, &'static str)> {
    let mut replies = vec![
        (
            "Got",
            ClientReply::Got {
                values: vec![b"v".to_vec()],
                context: vec![1, 2],
                replicas: vec![1, 2],
                content_types: vec![None],
            },
            "81a3476f749491c40176c402010292010291c0",
        ),
        (
            "Got with a content type",
            ClientReply::Got {
                values: vec![b"{}".to_vec()],
                context: Vec::new(),
                replicas: vec![3],
                content_types: vec![Some("application/json".into())],
            },
            "81a3476f749491c4027b7dc400910391b06170706c69636174696f6e2f6a736f6e",
        ),
        (
            "Stored",
            ClientReply::Stored {
                context: vec![4],
                replicas: vec![1],
            },
            "81a653746f72656492c401049101",
        ),
    ];
    for (name, error, hex) in client_errors() {
        replies.push((name, ClientReply::Failed(error), hex));
    }
    replies
}

fn gossip() -> dynamo_gossip::Message<crate::types::NodeId, String> {
    dynamo_gossip::Message {
        cluster: "c".into(),
        sender_address: "a:1".into(),
        body: dynamo_gossip::Body::Syn {
            digests: vec![dynamo_gossip::Digest {
                id: 1,
                generation: 2,
                version: 3,
            }],
            complete: true,
        },
    }
}

fn peer_messages() -> Vec<(&'static str, PeerMessage, &'static str)> {
    use dynamo_handoff::{
        BatchId, HintAck, HintBatch, HintEntry, HintId, TransferAck, TransferBatch, TransferEntry,
        TransferId,
    };
    vec![
        (
            "Gossip",
            PeerMessage::Gossip(gossip()),
            "81a6476f7373697093a163a3613a3181a353796e929193010203c3",
        ),
        (
            "Forward",
            PeerMessage::Forward {
                req: 7,
                request: client_requests().remove(0).1,
            },
            "81a7466f7277617264920781a347657492c4016b9402c0cd01f4c3",
        ),
        (
            "ForwardReply",
            PeerMessage::ForwardReply {
                req: 7,
                reply: ClientReply::Stored {
                    context: vec![4],
                    replicas: vec![1],
                },
            },
            "81ac466f72776172645265706c79920781a653746f72656492c401049101",
        ),
        (
            "Write",
            PeerMessage::Write {
                req: Some(7),
                key: b"k".to_vec(),
                siblings: sibs(Object::from(b"v".to_vec())),
                hint: Some(3),
            },
            "81a557726974659407c4016b919492010001059181a44c697665c4017603",
        ),
        (
            "Write (read repair) of a typed object",
            PeerMessage::Write {
                req: None,
                key: b"k".to_vec(),
                siblings: sibs(Object::typed(
                    b"{}".to_vec(),
                    Some("application/json".into()),
                )),
                hint: None,
            },
            "81a5577269746594c0c4016b919492010001059181a44c69766582a162c4027b\
             7da174b06170706c69636174696f6e2f6a736f6ec0",
        ),
        (
            "WriteAck",
            PeerMessage::WriteAck { req: 7, ok: true },
            "81a8577269746541636b9207c3",
        ),
        (
            "Read",
            PeerMessage::Read {
                req: 7,
                key: b"k".to_vec(),
                primary: true,
            },
            "81a4526561649307c4016bc3",
        ),
        (
            "ReadReply",
            PeerMessage::ReadReply {
                req: 7,
                siblings: Some(tombstone()),
            },
            "81a9526561645265706c7992079194920207010991a9546f6d6273746f6e65",
        ),
        (
            "ReadReply (not found)",
            PeerMessage::ReadReply {
                req: 7,
                siblings: None,
            },
            "81a9526561645265706c799207c0",
        ),
        (
            "Hints",
            PeerMessage::Hints(HintBatch {
                batch_id: BatchId(4),
                entries: vec![HintEntry {
                    id: HintId(5),
                    key: b"k".to_vec(),
                    payload: vec![0xaa],
                }],
            }),
            "81a548696e74739204919305916b91ccaa",
        ),
        (
            "HintsAck",
            PeerMessage::HintsAck(HintAck {
                batch_id: BatchId(4),
                refused: vec![HintId(5)],
            }),
            "81a848696e747341636b92049105",
        ),
        (
            "Sync",
            PeerMessage::Sync {
                partition: 3,
                msg: dynamo_merkle::Message::Abort {
                    session: 9,
                    reason: "r".into(),
                },
            },
            "81a453796e63920381a541626f72749209a172",
        ),
        (
            "Exchange",
            PeerMessage::Exchange {
                partition: 3,
                entries: vec![(b"k".to_vec(), sibs(Object::from(b"v".to_vec())))],
                want: vec![b"w".to_vec()],
            },
            "81a845786368616e676593039192c4016b919492010001059181a44c697665c4\
             017691c40177",
        ),
        (
            "Reap",
            PeerMessage::Reap {
                key: b"k".to_vec(),
                clock: clock(),
            },
            "81a45265617092c4016b91939202070109",
        ),
        (
            "Transfer",
            PeerMessage::Transfer(TransferBatch {
                transfer: TransferId(6),
                after: Some(b"a".to_vec()),
                entries: vec![TransferEntry {
                    key: b"k".to_vec(),
                    payload: vec![0xbb],
                }],
                last: false,
            }),
            "81a85472616e73666572940691619192916b91ccbbc2",
        ),
        (
            "TransferAck",
            PeerMessage::TransferAck(TransferAck {
                transfer: TransferId(6),
                after: None,
                through: Some(b"k".to_vec()),
                last: true,
            }),
            "81ab5472616e7366657241636b9406c0916bc3",
        ),
        (
            "ReadRefused",
            PeerMessage::ReadRefused { req: 7 },
            "81ab52656164526566757365649107",
        ),
        (
            "ReadLost",
            PeerMessage::ReadLost { req: 7 },
            "81a8526561644c6f73749107",
        ),
        (
            "TransferDone",
            PeerMessage::TransferDone {
                partition: 3,
                version: 12,
            },
            "81ac5472616e73666572446f6e6592030c",
        ),
        (
            "TransferDoneAck",
            PeerMessage::TransferDoneAck {
                partition: 3,
                version: 12,
            },
            "81af5472616e73666572446f6e6541636b92030c",
        ),
    ]
}

/// Every variant of [`PeerMessage`] has a vector: a new variant must add one.
fn covered(m: &PeerMessage) {
    match m {
        PeerMessage::Gossip(_)
        | PeerMessage::Forward { .. }
        | PeerMessage::ForwardReply { .. }
        | PeerMessage::Write { .. }
        | PeerMessage::WriteAck { .. }
        | PeerMessage::Read { .. }
        | PeerMessage::ReadReply { .. }
        | PeerMessage::Hints(_)
        | PeerMessage::HintsAck(_)
        | PeerMessage::Sync { .. }
        | PeerMessage::Exchange { .. }
        | PeerMessage::Reap { .. }
        | PeerMessage::Transfer(_)
        | PeerMessage::TransferAck(_)
        | PeerMessage::ReadRefused { .. }
        | PeerMessage::ReadLost { .. }
        | PeerMessage::TransferDone { .. }
        | PeerMessage::TransferDoneAck { .. } => {}
    }
}

fn handshakes() -> Vec<(&'static str, Handshake, &'static str)> {
    vec![
        (
            "Hello from a peer",
            Handshake::Hello {
                version: 2,
                cluster: "c".into(),
                role: Role::Peer {
                    id: 1,
                    address: "a:1".into(),
                    generation: 0,
                },
                encrypt: true,
                nonce: [0x11; 32],
                identity: None,
            },
            "81a548656c6c6f9602a16381a4506565729301a3613a3100c3dc00201111111111\
             111111111111111111111111111111111111111111111111111111c0",
        ),
        (
            "Hello from a client",
            Handshake::Hello {
                version: 2,
                cluster: "c".into(),
                role: Role::Client,
                encrypt: false,
                nonce: [0x11; 32],
                identity: None,
            },
            "81a548656c6c6f9602a163a6436c69656e74c2dc002011111111111111111111\
             11111111111111111111111111111111111111111111c0",
        ),
        (
            "Challenge",
            Handshake::Challenge {
                version: 2,
                node: 3,
                nonce: [0x22; 32],
                identity: None,
                max_frame: 1 << 20,
            },
            "81a94368616c6c656e6765950203dc0020222222222222222222222222222222\
             2222222222222222222222222222222222c0ce00100000",
        ),
        (
            "Proof",
            Handshake::Proof {
                mac: [0x33; 32],
                key_exchange: vec![1, 2],
            },
            "81a550726f6f6692dc0020333333333333333333333333333333333333333333\
             3333333333333333333333c4020102",
        ),
        (
            "Welcome",
            Handshake::Welcome {
                mac: [0x44; 32],
                key_exchange: Vec::new(),
            },
            "81a757656c636f6d6592dc002044444444444444444444444444444444444444\
             44444444444444444444444444c400",
        ),
        (
            "Error",
            Handshake::Error {
                reason: "no".into(),
            },
            "81a54572726f7291a26e6f",
        ),
    ]
}

fn client_frames() -> Vec<(&'static str, ClientFrame, &'static str)> {
    vec![
        (
            "Request",
            ClientFrame::Request {
                id: 1,
                request: client_requests().remove(0).1,
            },
            "81a752657175657374920181a347657492c4016b9402c0cd01f4c3",
        ),
        (
            "Admin Status",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::Status,
            },
            "81a541646d696e9202a6537461747573",
        ),
        (
            "Admin Ring",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::Ring,
            },
            "81a541646d696e9202a452696e67",
        ),
        (
            "Admin Leave",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::Leave,
            },
            "81a541646d696e9202a54c65617665",
        ),
        (
            "Admin Plan",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::Plan(crate::core::ChangeRequest {
                    joins: vec![4],
                    leaves: vec![],
                }),
            },
            "81a541646d696e920281a4506c616e92910490",
        ),
        (
            "Admin Commit",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::Commit {
                    version: 5,
                    change: crate::core::ChangeRequest {
                        joins: vec![],
                        leaves: vec![1],
                    },
                },
            },
            "81a541646d696e920281a6436f6d6d6974920592909101",
        ),
        (
            "Admin PartitionSizes",
            ClientFrame::Admin {
                id: 2,
                request: AdminRequest::PartitionSizes,
            },
            "81a541646d696e9202ae506172746974696f6e53697a6573",
        ),
        (
            "Error",
            ClientFrame::Error {
                reason: "bye".into(),
            },
            "81a54572726f7291a3627965",
        ),
    ]
}

/// A plan that takes node 3 out of a ring of nodes 1 to 3 (`forced`: taken out unhanded).
fn plan(forced: Vec<crate::types::NodeId>) -> crate::core::ChangePlan {
    crate::core::ChangePlan {
        request: crate::core::ChangeRequest {
            joins: vec![],
            leaves: vec![3],
        },
        version: 4,
        claimant: Some(1),
        members: vec![crate::core::PlannedMember {
            id: 3,
            address: "n3".into(),
            zone: None,
            copies_before: 8,
            copies_after: 0,
        }],
        moves: vec![crate::core::PlannedMove {
            range: 0,
            from: vec![1, 3],
            to: 2,
        }],
        copies: 24,
        zones_after: 0,
        forced,
    }
}

fn node_frames() -> Vec<(&'static str, NodeFrame, &'static str)> {
    vec![
        (
            "Reply",
            NodeFrame::Reply {
                id: 1,
                reply: ClientReply::Stored {
                    context: vec![4],
                    replicas: vec![1],
                },
            },
            "81a55265706c79920181a653746f72656492c401049101",
        ),
        (
            "AdminReply Ring",
            NodeFrame::AdminReply {
                id: 2,
                reply: AdminReply::Ring(vec![RangeInfo {
                    index: 0,
                    start: "00".into(),
                    end: "ff".into(),
                    fraction: 0.5,
                    replicas: vec![1, 2],
                }]),
            },
            "81aa41646d696e5265706c79920281a452696e67919500a23030a26666cb3fe0\
             000000000000920102",
        ),
        (
            // Seven fields with no leaver forced out: what an earlier node sends.
            "AdminReply Plan",
            NodeFrame::AdminReply {
                id: 2,
                reply: AdminReply::Plan(Box::new(plan(vec![]))),
            },
            "81aa41646d696e5265706c79920281a4506c616e97929091030401919503a26e33c008009193\
             00920103021800",
        ),
        (
            "AdminReply Plan with a leaver forced out",
            NodeFrame::AdminReply {
                id: 2,
                reply: AdminReply::Plan(Box::new(plan(vec![3]))),
            },
            "81aa41646d696e5265706c79920281a4506c616e98929091030401919503a26e33c008009193\
             009201030218009103",
        ),
        (
            "AdminReply Leaving",
            NodeFrame::AdminReply {
                id: 2,
                reply: AdminReply::Leaving,
            },
            "81aa41646d696e5265706c799202a74c656176696e67",
        ),
        (
            "AdminReply Failed",
            NodeFrame::AdminReply {
                id: 2,
                reply: AdminReply::Failed("disk".into()),
            },
            "81aa41646d696e5265706c79920281a64661696c6564a46469736b",
        ),
        (
            "Error",
            NodeFrame::Error {
                reason: "bye".into(),
            },
            "81a54572726f7291a3627965",
        ),
    ]
}

#[test]
fn client_requests_are_frozen() {
    let mut t = Table::new("ClientRequest", BREAKS_PEERS);
    for (name, value, hex) in client_requests() {
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn client_replies_are_frozen() {
    let mut t = Table::new("ClientReply", BREAKS_PEERS);
    for (name, value, hex) in client_replies() {
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn peer_messages_are_frozen() {
    let mut t = Table::new("PeerMessage", BREAKS_PEERS);
    for (name, value, hex) in peer_messages() {
        covered(&value);
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn handshake_frames_are_frozen() {
    let mut t = Table::new("Handshake", BREAKS_PEERS);
    for (name, value, hex) in handshakes() {
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn client_frames_are_frozen() {
    let mut t = Table::new("ClientFrame", BREAKS_PEERS);
    for (name, value, hex) in client_frames() {
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn node_frames_are_frozen() {
    let mut t = Table::new("NodeFrame", BREAKS_PEERS);
    for (name, value, hex) in node_frames() {
        t.msgpack(name, &value, hex);
    }
    t.finish();
}

#[test]
fn peer_frames_are_frozen() {
    let mut t = Table::new("PeerFrame", BREAKS_PEERS);
    t.msgpack(
        "Peer",
        &PeerFrame::Peer(PeerMessage::ReadRefused { req: 7 }),
        "81a45065657281ab52656164526566757365649107",
    );
    t.msgpack(
        "Error",
        &PeerFrame::Error {
            reason: "bye".into(),
        },
        "81a54572726f7291a3627965",
    );
    t.finish();
}

/// The frame header is the one part of the wire no version can change: a node reads a hello's
/// length before it knows the other side's version.
#[test]
fn the_frame_header_is_frozen() {
    use tokio::io::AsyncReadExt;
    let mut t = Table::new(
        "frame header",
        "Every version reads a hello's length prefix before it knows the other side's \
         version: the header cannot change.",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let written = rt.block_on(async {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut conn = crate::runtime::frame::handshake_conn(a);
        conn.send(&Handshake::Error {
            reason: "no".into(),
        })
        .await
        .expect("sends");
        drop(conn);
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.expect("reads");
        out
    });
    // length (u32, big-endian) | body
    t.bytes(
        "Handshake::Error framed",
        &written,
        "0000000b | 81a54572726f7291a26e6f",
    );
    t.finish();
}

/// A later version's hello, of any shape after its version, is refused as a version mismatch,
/// not as a malformed frame.
#[test]
fn a_hello_or_challenge_of_another_version_is_refused_as_such() {
    use crate::runtime::handshake::{decode_handshake, HandshakeError};

    #[derive(serde::Serialize)]
    enum Later {
        Hello(u32, Vec<String>, bool),
        Challenge { version: u32, anything: Vec<u8> },
    }
    use crate::runtime::frame::PROTOCOL_VERSION;
    let later = PROTOCOL_VERSION + 1;
    let hello = rmp_serde::to_vec(&Later::Hello(later, vec!["x".into()], true)).expect("encodes");
    assert!(
        matches!(
            decode_handshake(&hello),
            Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs }) if theirs == later
        ),
        "{:?}",
        decode_handshake(&hello)
    );
    let challenge = rmp_serde::to_vec_named(&Later::Challenge {
        version: 9,
        anything: vec![1],
    })
    .expect("encodes");
    assert!(matches!(
        decode_handshake(&challenge),
        Err(HandshakeError::Version { theirs: 9, .. })
    ));
    // Our own version in a frame we cannot read is a malformed frame, and so is garbage.
    let ours = rmp_serde::to_vec(&Later::Hello(PROTOCOL_VERSION, vec![], true)).expect("encodes");
    assert!(matches!(
        decode_handshake(&ours),
        Err(HandshakeError::Frame(_))
    ));
    assert!(matches!(
        decode_handshake(b"\x92\x01"),
        Err(HandshakeError::Frame(_))
    ));
    // A hello of today's shape and another version decodes; the handshake then refuses it.
    let (_, today, _) = handshakes().remove(0);
    let Handshake::Hello {
        cluster,
        role,
        encrypt,
        nonce,
        identity,
        ..
    } = today
    else {
        unreachable!()
    };
    let other = Handshake::Hello {
        version: 4,
        cluster,
        role,
        encrypt,
        nonce,
        identity,
    };
    let bytes = rmp_serde::to_vec(&other).expect("encodes");
    assert!(matches!(
        decode_handshake(&bytes),
        Ok(Handshake::Hello { version: 4, .. })
    ));
}
