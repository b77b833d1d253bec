//! What the client library tells of a request that failed.

use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{wait_up, Spec, SECRET};

/// A put its node applied, whose reply was lost with the connection, and which the client could
/// not send again (its node stopped accepting connections): the client must not report it as
/// never sent. It did (its last try failed to connect, and a workload took that for "not sent",
/// so a checker excused nothing the put replaced: the crash tests reported writes lost that the
/// put had legitimately replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_sent_on_a_connection_that_then_closed_is_reported_as_maybe_applied() {
    let spec = Spec::new(3, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    // A proxy to the node: once told, it passes the client's bytes on, drops the node's
    // answers, then closes the connection and stops listening.
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let proxy_address = proxy.local_addr().expect("address").to_string();
    let node = spec.address(1);
    let (cut_tx, cut_rx) = oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.expect("the client connects");
        drop(proxy);
        let mut upstream = tokio::net::TcpStream::connect(&node)
            .await
            .expect("reaches the node");
        let (mut client_read, mut client_write) = client.split();
        let (mut node_read, mut node_write) = upstream.split();
        let up = async {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = client_read.read(&mut buf).await.unwrap_or(0);
                if n == 0 || node_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        let down = async {
            let mut cut = cut_rx;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                tokio::select! {
                    read = node_read.read(&mut buf) => {
                        let n = read.unwrap_or(0);
                        if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ = &mut cut => {
                        // The put's answer is dropped; the connection closes a moment later.
                        let _ = node_read.read(&mut buf).await;
                        return;
                    }
                }
            }
        };
        tokio::select! {
            () = up => {}
            () = down => {}
        }
    });
    let mut config = ClientConfig::new(vec![proxy_address], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client
        .get(b"warm-up")
        .await
        .expect("a get through the proxy");
    let _ = cut_tx.send(());
    let outcome = client.put(b"k", b"v".to_vec(), &[]).await;
    assert!(
        matches!(outcome, Err(Error::Unavailable { sent: true, .. })),
        "{outcome:?}"
    );
    let _ = relay.await;
    // The node did apply it.
    let got = spec.client_of(1).get(b"k").await.expect("a get");
    assert_eq!(got.values.len(), 1);
}
