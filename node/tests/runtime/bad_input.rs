//! Bad input on the wire: each gets a clear error and a closed connection; the node stays up and
//! keeps what it acknowledged.

use bytes::Bytes;
use futures::SinkExt;
use tokio::net::TcpStream;

use dynamo_node::client::{ClientConfig, Error};
use dynamo_node::runtime::frame::{framed, recv, send, Conn, Frame, FrameError, Role};
use dynamo_node::runtime::handshake::{connect, Credentials, HandshakeError};
use dynamo_node::runtime::PROTOCOL_VERSION;
use dynamo_node::ClientError;

use crate::{wait_up, Spec, SECRET};

async fn raw(spec: &Spec) -> Conn<TcpStream> {
    framed(TcpStream::connect(spec.address(1)).await.unwrap(), 64 << 20)
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        cluster: "dynamo".into(),
        secret: secret.as_bytes().to_vec(),
    }
}

/// An authenticated client connection.
async fn authenticated(spec: &Spec) -> Conn<TcpStream> {
    let mut conn = raw(spec).await;
    connect(&mut conn, &creds(SECRET), Role::Client, Some(1))
        .await
        .unwrap();
    conn
}

/// Reads the node's error frame, then expects the connection to close.
async fn expect_error(conn: &mut Conn<TcpStream>) -> String {
    let reason = match recv(conn).await {
        Ok(Frame::Error { reason }) => reason,
        Ok(other) => panic!("expected an error frame, got {other:?}"),
        Err(e) => panic!("expected an error frame, got {e}"),
    };
    assert!(
        matches!(
            recv(conn).await,
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
    let mut conn = raw(&spec).await;
    conn.send(Bytes::from_static(b"\xc1\xc1 not msgpack"))
        .await
        .unwrap();
    let reason = expect_error(&mut conn).await;
    assert!(reason.contains("malformed"), "{reason}");

    // Malformed frame after the handshake.
    let mut conn = authenticated(&spec).await;
    conn.send(Bytes::from_static(b"\xc1garbage")).await.unwrap();
    let reason = expect_error(&mut conn).await;
    assert!(reason.contains("malformed"), "{reason}");

    // Unknown message.
    let mut conn = authenticated(&spec).await;
    conn.send(Bytes::from_static(UNKNOWN)).await.unwrap();
    let reason = expect_error(&mut conn).await;
    assert!(
        reason.contains("unknown") || reason.contains("malformed"),
        "{reason}"
    );

    // A frame of the wrong kind: a client sending peer handshake frames.
    let mut conn = authenticated(&spec).await;
    send(&mut conn, &Frame::Welcome { mac: [0; 32] })
        .await
        .unwrap();
    let reason = expect_error(&mut conn).await;
    assert!(reason.contains("unexpected Welcome frame"), "{reason}");

    // Oversized frame: a length prefix of 64 MiB, above the node's 16 MiB limit.
    let mut stream = TcpStream::connect(spec.address(1)).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        stream
            .write_all(&(64u32 << 20).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&[0u8; 1024]).await.unwrap();
    }
    let mut conn = framed(stream, 64 << 20);
    let reason = expect_error(&mut conn).await;
    assert!(reason.contains("maximum frame size"), "{reason}");

    // Wrong protocol version.
    let mut conn = raw(&spec).await;
    send(
        &mut conn,
        &Frame::Hello {
            version: PROTOCOL_VERSION + 41,
            cluster: "dynamo".into(),
            role: Role::Client,
            nonce: [7; 32],
        },
    )
    .await
    .unwrap();
    let reason = expect_error(&mut conn).await;
    assert!(reason.contains("protocol version mismatch"), "{reason}");

    // Another cluster.
    let mut conn = raw(&spec).await;
    let mut other = creds(SECRET);
    other.cluster = "other".into();
    let e = connect(&mut conn, &other, Role::Client, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cluster mismatch"), "{e}");

    // A peer with the wrong secret can neither join nor write.
    let mut conn = raw(&spec).await;
    let peer = Role::Peer {
        id: 9,
        address: "127.0.0.1:1".into(),
    };
    let e = connect(&mut conn, &creds("not-the-secret"), peer, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HandshakeError::Refused(r) if r.contains("wrong cluster secret")),
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
        Err(Error::Refused { source, .. }) => {
            assert!(
                source.to_string().contains("wrong cluster secret"),
                "{source}"
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
