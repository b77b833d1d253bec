//! What the client library tells of a request that failed.

use std::time::Duration;

use dynamo_node::client::{Client, ClientConfig, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{wait_up, Spec, SECRET};

/// Copies bytes from `from` to `to` until either side closes.
async fn copy_until_closed(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A proxy to `node`: it passes the client's bytes on and the node's back until told (the
/// sender), then drops the node's answers and closes the connection a moment later, and stops
/// listening after its first connection. Returns its address, the sender and its task.
async fn reply_dropping_proxy(
    node: String,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let proxy_address = proxy.local_addr().expect("address").to_string();
    let (cut_tx, cut_rx) = oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.expect("the client connects");
        drop(proxy);
        let mut upstream = tokio::net::TcpStream::connect(&node)
            .await
            .expect("reaches the node");
        let (mut client_read, mut client_write) = client.split();
        let (mut node_read, mut node_write) = upstream.split();
        let up = copy_until_closed(&mut client_read, &mut node_write);
        let down = async {
            let mut cut = cut_rx;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                // The cut first: told before the put, the proxy must not pass its answer on
                // (unbiased, it did when both were ready at once, on a loaded machine).
                tokio::select! {
                    biased;
                    _ = &mut cut => {
                        // The put's answer is dropped; the connection closes a moment later.
                        let _ = node_read.read(&mut buf).await;
                        return;
                    }
                    read = node_read.read(&mut buf) => {
                        let n = read.unwrap_or(0);
                        if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = up => {}
            () = down => {}
        }
    });
    (proxy_address, cut_tx, relay)
}

/// A client whose first node is node 1 through [`reply_dropping_proxy`], then `others`, with a
/// get already made through the proxy. Returns it with the proxy's address, sender and task.
async fn proxied_client(
    spec: &Spec,
    others: &[String],
) -> (
    Client,
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (proxy_address, cut_tx, relay) = reply_dropping_proxy(spec.address(1)).await;
    let mut nodes = vec![proxy_address.clone()];
    nodes.extend(others.iter().cloned());
    let mut config = ClientConfig::new(nodes, SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client
        .get(b"warm-up")
        .await
        .expect("a get through the proxy");
    (client, proxy_address, cut_tx, relay)
}

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
    let (mut client, _, cut_tx, relay) = proxied_client(&spec, &[]).await;
    let _ = cut_tx.send(());
    let outcome = client.put(b"k", b"v".to_vec(), &[]).await;
    assert!(
        matches!(outcome, Err(Error::Unavailable { sent: true, .. })),
        "{outcome:?}"
    );
    let told = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(told.contains("may have been applied"), "{told}");
    let _ = relay.await;
    // The node did apply it.
    let got = spec.client_of(1).get(b"k").await.expect("a get");
    assert_eq!(got.values.len(), 1);
}

/// Review, twentieth session of issue 20: the client waited `ClientConfig::timeout` for an
/// answer whatever timeout the request itself carried, so a put given more time than that was
/// sent again to the next node, and the next, while the first still worked on it: up to N copies
/// applied, each its own sibling, and the caller told "unavailable". The client now waits for the
/// request's own timeout (and a margin) when that is longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_given_more_time_than_the_client_timeout_is_waited_for_not_resent() {
    let spec = Spec::new(3, None);
    let mut nodes = Vec::new();
    for id in spec.ids() {
        let mut rc = spec.runtime_config(id);
        // Every peer message takes 600 ms: a put's quorum takes over a second.
        rc.link_delay = Some(dynamo_node::runtime::LinkDelay::Constant(
            Duration::from_millis(600),
        ));
        nodes.push(dynamo_node::runtime::Node::start(rc).await.unwrap());
    }
    wait_up(&spec).await;
    let addresses = spec.ids().into_iter().map(|id| spec.address(id)).collect();
    let mut config = ClientConfig::new(addresses, SECRET);
    config.timeout = Duration::from_millis(300);
    let mut client = Client::new(config);
    let options = dynamo_node::ClientOptions {
        timeout: Some(20_000),
        ..Default::default()
    };
    let stored = client
        .put_with(b"slow", b"once".to_vec(), &[], options)
        .await;
    assert!(stored.is_ok(), "{stored:?}");
    let got = spec.client_of(1).get(b"slow").await.expect("a get");
    assert_eq!(
        got.values,
        vec![b"once".to_vec()],
        "stored once, not once per node"
    );
}

/// Review, twentieth session of issue 20: a node refusing a handshake to shed load ("too many
/// connections in their handshake") made the client give up at once, as for a wrong secret,
/// though other nodes were there to try. A refusal now moves on to the next node; the client
/// reports `Refused` only when every node refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_refuses_the_handshake_is_passed_over_for_the_next() {
    use dynamo_node::runtime::frame::{handshake_conn, Handshake};
    let spec = Spec::new(3, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    let busy = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let busy_address = busy.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = busy.accept().await {
            let mut conn = handshake_conn(stream);
            let _ = conn.recv::<Handshake>().await;
            let refusal = Handshake::Error {
                reason: "too many connections in their handshake".into(),
            };
            let _ = conn.send(&refusal).await;
        }
    });
    let mut config = ClientConfig::new(vec![busy_address.clone(), spec.address(1)], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client
        .put(b"k", b"v".to_vec(), &[])
        .await
        .expect("the second node takes it");
    // Every node refusing: the refusal, as before.
    let mut config = ClientConfig::new(vec![busy_address], SECRET);
    config.timeout = Duration::from_secs(10);
    let outcome = Client::new(config).get(b"k").await;
    assert!(matches!(outcome, Err(Error::Refused { .. })), "{outcome:?}");
}

/// Review, twentieth session of issue 20: a put past the nodes' client frame limit (4 MiB by
/// default; the client's own limit was 16 MiB) was sent whole to every node in turn, each
/// refused it by its length and closed, and the caller heard "unavailable, may have been
/// applied": a transient error for a request no node would ever take, which a caller retrying
/// on it repeats for ever. The client refuses it before sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_past_the_nodes_frame_limit_is_refused_before_it_is_sent() {
    let spec = Spec::new(3, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    let mut client = spec.client_of(1);
    let outcome = client.put(b"k", vec![7; 5 << 20], &[]).await;
    assert!(
        matches!(outcome, Err(Error::TooLarge { size, limit }) if size > limit),
        "{outcome:?}"
    );
    // The connection is still good for the next request.
    client
        .put(b"k", b"small".to_vec(), &[])
        .await
        .expect("a put that fits");
}

/// Review of the client (twenty-second session): a put its first node applied without answering,
/// retried on the next node, is applied twice (two siblings), and the context the retry returned
/// covers only its own copy: a put with it left the first copy beside the new value, an
/// overwritten value back. The caller was not told; the client now names the nodes that may hold
/// such a copy, and a get's context folds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_retried_after_a_lost_answer_names_the_node_that_may_have_applied_it() {
    let spec = Spec::new(3, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    let (mut client, proxy_address, cut_tx, relay) =
        proxied_client(&spec, &[spec.address(2)]).await;
    assert!(client.unsure_nodes().is_empty());
    let _ = cut_tx.send(());
    let stored = client.put(b"twice", b"v1".to_vec(), &[]).await;
    assert!(stored.is_ok(), "{stored:?}");
    assert_eq!(client.unsure_nodes(), [proxy_address]);
    let _ = relay.await;
    // Both copies were applied: the get shows them, and a put with its context folds them.
    let mut reader = spec.client_of(3);
    let mut got = reader.get(b"twice").await.expect("a get");
    // Until replication brought both copies to the replicas the get asks (bounded generously:
    // a loaded machine delays it, never stops it).
    for _ in 0..600 {
        if got.values.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = reader.get(b"twice").await.expect("a get");
    }
    assert_eq!(got.values, vec![b"v1".to_vec(), b"v1".to_vec()]);
    reader
        .put(b"twice", b"v2".to_vec(), &got.context)
        .await
        .expect("a put");
    let mut after = reader.get(b"twice").await.expect("a get");
    assert!(reader.unsure_nodes().is_empty());
    after.values.sort();
    assert_eq!(after.values, vec![b"v2".to_vec()]);
}

/// Review of the client (twenty-fourth session): when every node answered "unavailable" (each
/// applied nothing: a joiner that has not heard the cluster's ring, a restarted node that has
/// not compared its ring), the client said the put "may have been applied", though it named no
/// node that may have. A caller that trusts `sent` read before writing again, for nothing, and
/// a checker excused losses for a write no node took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_every_node_turned_down_is_not_reported_as_maybe_applied() {
    let spec = Spec::new(4, None);
    // Node 4 joins a cluster none of whose nodes runs: it stays on its provisional ring.
    let mut rc = spec.runtime_config(4);
    rc.node.initial_members = vec![1, 2, 3];
    let _joiner = dynamo_node::runtime::Node::start(rc).await.unwrap();
    let mut config = ClientConfig::new(vec![spec.address(4)], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    let outcome = client.put(b"k", b"v".to_vec(), &[]).await;
    assert!(
        matches!(outcome, Err(Error::Unavailable { sent: false, .. })),
        "{outcome:?}"
    );
    assert!(client.unsure_nodes().is_empty());
    let told = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(told.contains("joining"), "{told}");
}

/// Review of the client surfaces, twenty-eighth session of issue 20: a node at its connection
/// cap finished the handshake and then closed the connection with an error, after the client had
/// sent its request: the client counted the node among those that may have applied it (its
/// `unsure_nodes`, and `sent` once every node failed), although it read nothing. A node
/// shedding load now refuses in the handshake, and the client tries the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_connection_cap_refuses_before_taking_a_request() {
    let spec = Spec::new(3, None);
    let mut nodes = Vec::new();
    for id in spec.ids() {
        let mut rc = spec.runtime_config(id);
        if id == 1 {
            rc.limits.max_connections = 1;
        }
        nodes.push(dynamo_node::runtime::Node::start(rc).await.unwrap());
    }
    wait_up(&spec).await;
    let _held = crate::bad_input::authenticated(&spec).await;
    let mut config = ClientConfig::new(vec![spec.address(1), spec.address(2)], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client.put(b"k", b"v".to_vec(), &[]).await.unwrap();
    assert!(
        client.unsure_nodes().is_empty(),
        "{:?}",
        client.unsure_nodes()
    );
    let mut config = ClientConfig::new(vec![spec.address(1)], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut capped = Client::new(config);
    let outcome = capped.put(b"k", b"w".to_vec(), &[]).await;
    assert!(matches!(outcome, Err(Error::Refused { .. })), "{outcome:?}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// Review of the client surfaces, twenty-eighth session of issue 20: a client that reused a
/// connection the node had closed for idleness read the node's "idle" error after sending its
/// request, and counted the node among those that may have applied it, although the node read
/// nothing after its last reply. A node closes a connection for idleness only when it owes it no
/// reply, and the client knows such a close for what it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_for_idleness_is_reused_without_doubt() {
    let spec = Spec::new(1, None);
    let mut rc = spec.runtime_config(1);
    (rc.node.n, rc.node.r, rc.node.w) = (1, 1, 1);
    rc.limits.idle_timeout = Duration::from_secs(1);
    let node = dynamo_node::runtime::Node::start(rc).await.unwrap();
    wait_up(&spec).await;
    let mut config = ClientConfig::new(vec![spec.address(1)], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client.put(b"k", b"v".to_vec(), &[]).await.unwrap();
    // The node closes the connection, its error frame waiting in the client's socket.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    client.put(b"k", b"w".to_vec(), &[]).await.unwrap();
    assert!(
        client.unsure_nodes().is_empty(),
        "{:?}",
        client.unsure_nodes()
    );
    node.shutdown().await.unwrap();
}

/// With the last: a request the node works on longer than the idle timeout keeps its
/// connection: the node owes it a reply (it closed the connection and dropped the reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_waiting_for_a_reply_is_not_idle() {
    let spec = Spec::new(3, None);
    let mut rc = spec.runtime_config(1);
    rc.limits.idle_timeout = Duration::from_secs(1);
    // Nodes 2 and 3 never start: a put waits for their acknowledgements until its timeout.
    let node = dynamo_node::runtime::Node::start(rc).await.unwrap();
    let mut config = ClientConfig::new(vec![spec.address(1)], SECRET);
    config.timeout = Duration::from_secs(20);
    let mut client = Client::new(config);
    let options = dynamo_node::message::ClientOptions {
        timeout: Some(3_000),
        ..Default::default()
    };
    let outcome = client.put_with(b"k", b"v".to_vec(), &[], options).await;
    assert!(matches!(outcome, Err(Error::Failed(_))), "{outcome:?}");
    node.shutdown().await.unwrap();
}

/// Review of the client (thirtieth session): a call the caller dropped while it waited (a
/// timeout around it, a `select!`) left its connection as it was, with the rest of its request
/// possibly still queued: the next call's flush sent that first, and a put the caller had given
/// up on was applied after all, after the caller moved on. The next call drops such a
/// connection and opens another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_while_it_waited_leaves_its_connection_unused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let spec = Spec::new(3, None);
    let _nodes = spec.start_all().await;
    wait_up(&spec).await;
    // A proxy to node 1 that counts its connections and passes the node's bytes back only
    // while `pass` says so.
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let proxy_address = proxy.local_addr().expect("address").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (pass_tx, pass_rx) = tokio::sync::watch::channel(true);
    let node = spec.address(1);
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = proxy.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let node = node.clone();
            let mut pass = pass_rx.clone();
            tokio::spawn(async move {
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&node).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut node_read, mut node_write) = upstream.split();
                let up = copy_until_closed(&mut client_read, &mut node_write);
                let down = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        if pass.wait_for(|p| *p).await.is_err() {
                            return;
                        }
                        let n = node_read.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || !*pass.borrow() {
                            // Held: the answer is dropped.
                            if n == 0 {
                                return;
                            }
                            continue;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    let mut config = ClientConfig::new(vec![proxy_address], SECRET);
    config.timeout = Duration::from_secs(10);
    let mut client = Client::new(config);
    client
        .get(b"warm-up")
        .await
        .expect("a get through the proxy");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The answer to the next put is held back; the caller gives up on it.
    let _ = pass_tx.send(false);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        client.put(b"k", b"v".to_vec(), &[]),
    )
    .await;
    assert!(gave_up.is_err(), "the put was answered: {gave_up:?}");
    let _ = pass_tx.send(true);
    client.get(b"k").await.expect("a get through the proxy");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the call after the dropped one reused its connection"
    );
}
