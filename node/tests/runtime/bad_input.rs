//! Bad input on the wire: each gets a clear error and a closed connection; the node stays up and
//! keeps what it acknowledged.

use tokio::net::TcpStream;

use dynamo_node::client::{ClientConfig, Error};
use dynamo_node::runtime::frame::{
    handshake_conn, Conn, ErrorFrame, FrameError, Handshake, NodeFrame, Role, DEFAULT_MAX_FRAME,
};
use dynamo_node::runtime::handshake::{connect, Credentials, HandshakeError};
use dynamo_node::runtime::PROTOCOL_VERSION;
use dynamo_node::ClientError;

use crate::{wait_up, Spec, SECRET};

pub(crate) async fn raw(address: &str) -> Conn<TcpStream> {
    handshake_conn(TcpStream::connect(address).await.unwrap())
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        cluster: "dynamo".into(),
        secret: secret.as_bytes().to_vec(),
        identity: None,
        authority: None,
    }
}

/// An authenticated client connection to node 1.
pub(crate) async fn authenticated(spec: &Spec) -> Conn<TcpStream> {
    authenticated_to(spec, 1).await
}

/// An authenticated client connection to node `id`.
pub(crate) async fn authenticated_to(spec: &Spec, id: u64) -> Conn<TcpStream> {
    let mut conn = raw(&spec.address(id)).await;
    connect(&mut conn, &creds(SECRET), Role::Client, Some(id), true)
        .await
        .unwrap();
    conn.established(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, None);
    conn
}

/// What an error frame of any kind says.
pub(crate) trait Reason: serde::de::DeserializeOwned + std::fmt::Debug {
    fn reason(self) -> Result<String, Self>;
}
impl Reason for Handshake {
    fn reason(self) -> Result<String, Self> {
        match self {
            Handshake::Error { reason } => Ok(reason),
            other => Err(other),
        }
    }
}
impl Reason for dynamo_node::runtime::frame::PeerFrame {
    fn reason(self) -> Result<String, Self> {
        match self {
            dynamo_node::runtime::frame::PeerFrame::Error { reason } => Ok(reason),
            other => Err(other),
        }
    }
}
impl Reason for NodeFrame {
    fn reason(self) -> Result<String, Self> {
        match self {
            NodeFrame::Error { reason } => Ok(reason),
            other => Err(other),
        }
    }
}

/// Reads the node's error frame (of kind `F`), then expects the connection to close.
pub(crate) async fn expect_error<F: Reason + ErrorFrame>(conn: &mut Conn<TcpStream>) -> String {
    let reason = match conn.recv::<F>().await.map(F::reason) {
        Ok(Ok(reason)) => reason,
        Ok(Err(other)) => panic!("expected an error frame, got {other:?}"),
        Err(e) => panic!("expected an error frame, got {e}"),
    };
    assert!(
        matches!(
            conn.recv_body().await,
            Err(FrameError::Closed) | Err(FrameError::Io(_))
        ),
        "the connection must be closed after an error"
    );
    reason
}

/// A msgpack map {"Bogus": 1}: well-formed msgpack, but no such message.
const UNKNOWN: &[u8] = &[0x81, 0xa5, b'B', b'o', b'g', b'u', b's', 0x01];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_errors_and_the_node_stays_up() {
    let spec = Spec::new(3, None);
    let nodes = spec.start_all().await;
    wait_up(&spec).await;
    let mut client = spec.client_of(1);
    let ctx = client
        .put(b"kept", b"acknowledged".to_vec(), &[])
        .await
        .unwrap();
    assert!(!ctx.is_empty());

    // Malformed frame before the handshake.
    let mut conn = raw(&spec.address(1)).await;
    conn.send_unchecked(b"\xc1\xc1 not msgpack").await.unwrap();
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(reason.contains("malformed"), "{reason}");

    // Malformed frame after the handshake.
    let mut conn = authenticated(&spec).await;
    conn.send_unchecked(b"\xc1garbage").await.unwrap();
    let reason = expect_error::<NodeFrame>(&mut conn).await;
    assert!(reason.contains("malformed"), "{reason}");

    // Unknown message.
    let mut conn = authenticated(&spec).await;
    conn.send_unchecked(UNKNOWN).await.unwrap();
    let reason = expect_error::<NodeFrame>(&mut conn).await;
    assert!(
        reason.contains("unknown") || reason.contains("malformed"),
        "{reason}"
    );

    // A frame of the wrong kind: a client sending handshake frames after the handshake.
    let mut conn = authenticated(&spec).await;
    conn.send(&Handshake::Welcome {
        mac: [0; 32],
        key_exchange: Vec::new(),
    })
    .await
    .unwrap();
    let reason = expect_error::<NodeFrame>(&mut conn).await;
    assert!(reason.contains("unknown variant `Welcome`"), "{reason}");

    // Oversized frames: a length prefix of 64 MiB, and one of 4 GiB, before the handshake; and
    // one of 64 MiB from an authenticated client, above its limit.
    for len in [64u32 << 20, u32::MAX] {
        let mut conn = raw(&spec.address(1)).await;
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 1024]);
        conn.send_raw(&bytes).await.unwrap();
        let reason = expect_error::<Handshake>(&mut conn).await;
        assert!(
            reason.contains(&format!(
                "frame of {len} bytes exceeds the limit of 4096 bytes before the handshake"
            )),
            "{reason}"
        );
    }
    let mut conn = authenticated(&spec).await;
    let mut bytes = (64u32 << 20).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    conn.send_stream(&bytes).await.unwrap();
    let reason = expect_error::<NodeFrame>(&mut conn).await;
    assert!(
        reason.contains("exceeds the limit of 4194304 bytes"),
        "{reason}"
    );

    // After the handshake everything is encrypted: a plaintext frame does not decrypt.
    let mut conn = authenticated(&spec).await;
    assert!(conn.is_encrypted());
    let mut bytes = 8u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(UNKNOWN);
    conn.send_raw(&bytes).await.unwrap();
    let reason = expect_error::<NodeFrame>(&mut conn).await;
    assert!(reason.contains("encryption error"), "{reason}");

    // A client that does not encrypt is refused by a node that does.
    let mut conn = raw(&spec.address(1)).await;
    let e = connect(&mut conn, &creds(SECRET), Role::Client, Some(1), false)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("encryption mismatch: this node requires encryption"),
        "{e}"
    );

    // Wrong protocol version.
    let mut conn = raw(&spec.address(1)).await;
    conn.send(&Handshake::Hello {
        version: PROTOCOL_VERSION + 41,
        cluster: "dynamo".into(),
        role: Role::Client,
        encrypt: false,
        nonce: [7; 32],
        identity: None,
    })
    .await
    .unwrap();
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(reason.contains("protocol version mismatch"), "{reason}");

    // Another cluster.
    let mut conn = raw(&spec.address(1)).await;
    let mut other = creds(SECRET);
    other.cluster = "other".into();
    let e = connect(&mut conn, &other, Role::Client, None, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cluster mismatch"), "{e}");

    // A peer with the wrong secret can neither join nor write.
    let mut conn = raw(&spec.address(1)).await;
    let peer = Role::Peer {
        id: 9,
        address: "127.0.0.1:1".into(),
        generation: 0,
    };
    let e = connect(&mut conn, &creds("not-the-secret"), peer, None, true)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HandshakeError::Refused(r) if r.contains("wrong peer secret")),
        "{e}"
    );

    // Oversized value: a clear request error, the connection stays usable.
    let big = vec![0u8; (1 << 20) + 1];
    match client.put(b"big", big, &[]).await {
        Err(Error::Failed(ClientError::ValueTooLarge { .. })) => {}
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }

    // The node is still up and still has what it acknowledged.
    let got = spec.client_of(1).get(b"kept").await.unwrap();
    assert_eq!(got.values, vec![b"acknowledged".to_vec()]);
    let status = spec.client_of(1).status().await.unwrap();
    assert_eq!(status.members.len(), 3);

    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_wrong_secret_is_refused() {
    let spec = Spec::new(1, None);
    let node = spec.start(1).await;
    let mut config = ClientConfig::new(vec![spec.address(1)], "wrong");
    config.timeout = crate::CLIENT_TIMEOUT;
    let mut client = dynamo_node::client::Client::new(config);
    match client.get(b"k").await {
        Err(Error::Refused { reason, .. }) => {
            assert!(
                reason.to_string().contains("wrong client secret"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client.put(b"k", b"v".to_vec(), &[]).await {
        Err(Error::Refused { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    // With the right secret the same node answers.
    let mut good = spec.client_of(1);
    assert_eq!(good.status().await.unwrap().id, 1);
    node.shutdown().await.unwrap();
}

/// Review, twenty-sixth session of issue 20: a node listening on every interface
/// (`--listen 0.0.0.0:7001`, as the command's own help showed) without `--advertise` told its
/// peers to reach it at `0.0.0.0:7001`. Peers on other hosts could not (only a seed's configured
/// address, which gossip rounds wrote back now and then, reached it). A node with peers refuses
/// to start so, and says what to give; a node alone may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_peers_listening_everywhere_needs_an_advertised_address() {
    let spec = Spec::new(3, None);
    let mut rc = spec.runtime_config(1);
    rc.listener = None;
    rc.listen = "0.0.0.0:0".into();
    rc.advertise = None;
    let Err(e) = dynamo_node::runtime::Node::start(rc).await else {
        panic!("a node with peers started on 0.0.0.0 without an advertised address");
    };
    assert!(e.to_string().contains("advertise"), "{e}");
    // Alone (no other member, no seed) it may: nobody needs to reach it but its clients.
    let alone = Spec::new(1, None);
    let mut rc = alone.runtime_config(1);
    rc.listener = None;
    rc.listen = "0.0.0.0:0".into();
    rc.advertise = None;
    rc.node.seeds.clear();
    let node = dynamo_node::runtime::Node::start(rc).await.expect("starts");
    node.shutdown().await.unwrap();
}

/// Sends a put of a 10-byte value to each of `keys` on `conn` (request ids 1, 2, ...), one frame
/// after the other, without waiting for a reply.
pub(crate) async fn pipelined_puts(
    conn: &mut Conn<TcpStream>,
    keys: impl Iterator<Item = Vec<u8>>,
) {
    for (id, key) in (1u64..).zip(keys) {
        let request = dynamo_node::message::ClientRequest::Put {
            key,
            value: vec![1; 10],
            context: Vec::new(),
            options: dynamo_node::message::ClientOptions::default(),
            content_type: None,
        };
        conn.send(&dynamo_node::runtime::frame::ClientFrame::Request { id, request })
            .await
            .unwrap();
    }
}

/// Review of the client surfaces, twenty-eighth session of issue 20: a client that sends its
/// requests and then shuts down its side of the connection (`nc -N`, a script's
/// `shutdown(SHUT_WR)`) still reads the replies. The node took the end of its stream for the end
/// of the connection and dropped every reply still on its way, of puts it applied too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_replies() {
    use dynamo_node::message::ClientReply;
    use tokio::io::AsyncWriteExt;

    let spec = Spec::new(3, None);
    let nodes = spec.start_all().await;
    wait_up(&spec).await;
    let mut conn = crate::bad_input::authenticated(&spec).await;
    let puts = 5u64;
    pipelined_puts(
        &mut conn,
        (1..=puts).map(|id| format!("half-closed-{id}").into_bytes()),
    )
    .await;
    conn.get_mut().shutdown().await.unwrap();
    let mut stored = Vec::new();
    loop {
        match conn.recv::<NodeFrame>().await {
            Ok(NodeFrame::Reply {
                id,
                reply: ClientReply::Stored { .. },
            }) => stored.push(id),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    stored.sort_unstable();
    assert_eq!(stored, (1..=puts).collect::<Vec<_>>(), "every put's reply");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
