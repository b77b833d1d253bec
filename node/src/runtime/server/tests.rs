//! A client connection's replies under tokio's paused clock, with the driver played by the test.

use std::time::Duration;

use tokio::io::DuplexStream;

use super::*;
use crate::message::{ClientOptions, ClientRequest};
use crate::runtime::frame::DEFAULT_MAX_FRAME;

const HOUR: Duration = Duration::from_secs(3600);
const VALUE: usize = 512 << 10;

/// A client connection served over an in-memory pipe; the client's end, and the driver's inputs.
fn served(
    max_unsent: usize,
) -> (
    Conn<DuplexStream>,
    mpsc::Receiver<Input>,
    tokio::task::JoinHandle<()>,
) {
    served_with(
        ConnectionLimits {
            max_unsent,
            ..ConnectionLimits::default()
        },
        Arc::default(),
    )
}

/// [`served`] under `limits`, counting its unsent replies in `unsent`.
fn served_with(
    limits: ConnectionLimits,
    unsent: Arc<UnsentBytes>,
) -> (
    Conn<DuplexStream>,
    mpsc::Receiver<Input>,
    tokio::task::JoinHandle<()>,
) {
    let budget = RequestBudget::new(limits.max_request_bytes_total);
    served_sharing(limits, unsent, budget)
}

/// [`served_with`], its requests admitted from `budget` (shared with other connections).
fn served_sharing(
    limits: ConnectionLimits,
    unsent: Arc<UnsentBytes>,
    budget: RequestBudget,
) -> (
    Conn<DuplexStream>,
    mpsc::Receiver<Input>,
    tokio::task::JoinHandle<()>,
) {
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let timeouts = Timeouts {
        idle: HOUR,
        read: HOUR,
    };
    let mut conn = handshake_conn(ours);
    conn.established(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, Some(timeouts));
    let (inputs, driver) = mpsc::channel(MAX_IN_FLIGHT);
    let (stop, closing) = tokio::sync::watch::channel(false);
    let ctx = ServerContext {
        secrets: NodeSecrets {
            cluster: "test".into(),
            peer_secret: b"peer".to_vec(),
            client_secret: b"client".to_vec(),
            identity: None,
            authority: None,
        },
        encrypt: false,
        id: 1,
        max_frame: DEFAULT_MAX_FRAME,
        max_client_frame: DEFAULT_MAX_FRAME,
        limits: ConnectionLimits {
            idle_timeout: HOUR,
            read_timeout: HOUR,
            ..limits
        },
        inputs,
        unsent,
        requests: budget,
        request_timeout: HOUR,
        closing: closing.clone(),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
    // The node never stops while the connection runs.
    let task = tokio::spawn(async move {
        let _running = stop;
        // Its slot never goes to another client.
        let (_keep, given_up) = tokio::sync::oneshot::channel();
        client_connection(conn, addr, ctx, given_up).await;
    });
    let mut client = handshake_conn(theirs);
    client.established(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, None);
    (client, driver, task)
}

/// Sends `count` gets at once, then answers them all (once all have arrived) with a value of
/// [`VALUE`] bytes carrying the request's number.
async fn gets_answered(
    client: &mut Conn<DuplexStream>,
    driver: &mut mpsc::Receiver<Input>,
    count: u64,
) {
    for id in 0..count {
        let request = ClientRequest::Get {
            key: id.to_be_bytes().to_vec(),
            options: ClientOptions::default(),
        };
        client
            .feed(&ClientFrame::Request { id, request })
            .expect("encodes");
    }
    client.flush().await.expect("the node reads requests");
    let mut waiting = Vec::new();
    while waiting.len() < count as usize {
        match driver.recv().await {
            Some(Input::Client { request, reply }) => waiting.push((request, reply)),
            Some(_) => {}
            None => panic!("the connection stopped"),
        }
    }
    for (request, reply) in waiting {
        let n = request.key()[7];
        let _ = reply.send(ClientReply::Got {
            values: vec![vec![n; VALUE]],
            context: Vec::new(),
            replicas: vec![1],
            content_types: Vec::new(),
        });
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_its_replies_is_closed_past_the_unsent_limit() {
    let (mut client, mut driver, task) = served(2 << 20);
    // 64 replies of 512 KiB: 32 MiB the node would hold until its write timeout (an hour).
    gets_answered(&mut client, &mut driver, 64).await;
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the connection is closed long before its timeouts")
        .expect("the task ends");
}

/// Review of issue 20's sixteenth session: each client connection was held to `max_unsent`, but
/// the node as a whole to nothing, so 1,024 clients that do not read could make it hold 1,024
/// times 32 MiB of replies. Past `max_unsent_total`, the connection holding the most is closed;
/// one that reads its replies is not.
#[tokio::test(start_paused = true)]
async fn clients_that_do_not_read_are_closed_past_the_node_wide_limit() {
    let limits = ConnectionLimits {
        max_unsent: 64 << 20,
        max_unsent_total: 16 << 20,
        max_connections: 4,
        ..ConnectionLimits::default()
    };
    let total = Arc::new(UnsentBytes::default());
    let (mut one, mut one_driver, one_task) = served_with(limits, Arc::clone(&total));
    let (mut two, mut two_driver, two_task) = served_with(limits, Arc::clone(&total));
    // 12 MiB for the first, which does not read; 5 MiB for the second: 17 MiB, past 16.
    gets_answered(&mut one, &mut one_driver, 24).await;
    gets_answered(&mut two, &mut two_driver, 10).await;
    tokio::time::timeout(Duration::from_secs(60), one_task)
        .await
        .expect("the connection holding the most is closed long before its timeouts")
        .expect("the task ends");
    // The second reads its replies, all of them.
    for _ in 0..10 {
        match two.recv::<NodeFrame>().await.expect("a reply") {
            NodeFrame::Reply { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop((one, two));
    two_task
        .await
        .expect("the task ends once the client is gone");
    assert_eq!(total.total(), 0);
}

#[tokio::test(start_paused = true)]
async fn replies_under_the_limit_arrive_whole_and_once() {
    // All 32 MiB wait at once, the flush of the first batch cut short by each reply after it.
    let (mut client, mut driver, task) = served(64 << 20);
    gets_answered(&mut client, &mut driver, 64).await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 64 {
        match client.recv::<NodeFrame>().await.expect("a reply") {
            NodeFrame::Reply {
                id,
                reply: ClientReply::Got { values, .. },
            } => {
                assert_eq!(values, vec![vec![id as u8; VALUE]]);
                assert!(seen.insert(id), "reply {id} twice");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(client);
    task.await.expect("the task ends once the client is gone");
}

/// Sends `count` puts of `size`-byte values on `client`, from another task (the pipe holds 64 KiB,
/// so the writes wait for the node to read them).
fn puts_sent(
    mut client: Conn<DuplexStream>,
    count: u64,
    size: usize,
) -> tokio::task::JoinHandle<Conn<DuplexStream>> {
    tokio::spawn(async move {
        for id in 0..count {
            let request = ClientRequest::Put {
                key: id.to_be_bytes().to_vec(),
                value: vec![7; size],
                context: Vec::new(),
                options: ClientOptions::default(),
                content_type: None,
            };
            client
                .feed(&ClientFrame::Request { id, request })
                .expect("encodes");
            client.flush().await.expect("the node reads requests");
        }
        client
    })
}

/// The client requests the driver has been given by now (after the connections have had a
/// minute of the paused clock to read what they can).
async fn requests_given(driver: &mut mpsc::Receiver<Input>) -> Vec<crate::runtime::Replier> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut given = Vec::new();
    while let Ok(input) = driver.try_recv() {
        if let Input::Client { reply, .. } = input {
            given.push(reply);
        }
    }
    given
}

fn stored() -> ClientReply {
    ClientReply::Stored {
        context: Vec::new(),
        replicas: vec![1],
    }
}

/// Hardening review, seventeenth session of issue 20: a client connection handed the driver up
/// to 1,024 requests at once whatever their size, so one client pipelining puts of 4 MiB values
/// made the node hold 4 GiB (and ten such connections more than the machine has) while the
/// replicas wrote them. A connection now stops reading requests while those it handed over and
/// that are not answered hold `max_request_bytes`; it reads on as they are answered, losing none.
#[tokio::test(start_paused = true)]
async fn a_connection_pipelining_large_puts_is_held_to_its_request_bytes() {
    let (client, mut driver, task) = served_with(
        ConnectionLimits {
            max_request_bytes: 8 << 20,
            ..ConnectionLimits::default()
        },
        Arc::default(),
    );
    // 48 puts of 1 MiB: 48 MiB.
    let sender = puts_sent(client, 48, 1 << 20);
    let mut answered = 0;
    while answered < 48 {
        let given = requests_given(&mut driver).await;
        assert!(
            !given.is_empty() && given.len() <= 8,
            "{} requests of 1 MiB handed over at once against a limit of 8 MiB",
            given.len()
        );
        answered += given.len();
        for reply in given {
            let _ = reply.send(stored());
        }
    }
    assert_eq!(answered, 48, "every request reached the driver once");
    let mut client = sender.await.expect("the sender ends");
    for _ in 0..48 {
        match client.recv::<NodeFrame>().await.expect("a reply") {
            NodeFrame::Reply { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(client);
    task.await.expect("the task ends once the client is gone");
}

/// The same over the node: many connections, each under its own limit, are held together to
/// `max_request_bytes_total`, and each is served in its turn.
#[tokio::test(start_paused = true)]
async fn connections_are_held_together_to_the_node_wide_request_bytes() {
    let limits = ConnectionLimits {
        max_request_bytes: 64 << 20,
        max_request_bytes_total: 8 << 20,
        ..ConnectionLimits::default()
    };
    let budget = RequestBudget::new(limits.max_request_bytes_total);
    let mut drivers = Vec::new();
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (client, driver, task) = served_sharing(limits, Arc::default(), budget.clone());
        senders.push(puts_sent(client, 16, 1 << 20));
        drivers.push(driver);
        tasks.push(task);
    }
    let mut answered = [0usize; 3];
    while answered.iter().sum::<usize>() < 48 {
        let mut given = Vec::new();
        for (n, driver) in drivers.iter_mut().enumerate() {
            let these = requests_given(driver).await;
            answered[n] += these.len();
            given.extend(these);
        }
        assert!(
            !given.is_empty() && given.len() <= 8,
            "{} requests of 1 MiB handed over at once against a node-wide limit of 8 MiB",
            given.len()
        );
        for reply in given {
            let _ = reply.send(stored());
        }
    }
    assert_eq!(answered, [16, 16, 16]);
    for (sender, task) in senders.into_iter().zip(tasks) {
        let mut client = sender.await.expect("the sender ends");
        for _ in 0..16 {
            client.recv::<NodeFrame>().await.expect("a reply");
        }
        drop(client);
        task.await.expect("the task ends once the client is gone");
    }
    assert_eq!(budget.available(), 8 << 20, "every byte given back");
}

/// Review of this session's budget: a request's bytes were given back when its connection
/// closed, though the driver still held the request until it answered it; a client that sent
/// 32 MiB and closed, again and again, piled requests into the node past the node-wide budget.
/// They are given back when the driver is done with the request.
#[tokio::test(start_paused = true)]
async fn a_closed_connection_does_not_give_back_what_the_node_still_holds() {
    let limits = ConnectionLimits {
        max_request_bytes_total: 8 << 20,
        ..ConnectionLimits::default()
    };
    let budget = RequestBudget::new(limits.max_request_bytes_total);
    let (client, mut driver, task) = served_sharing(limits, Arc::default(), budget.clone());
    let sender = puts_sent(client, 4, 1 << 20);
    let given = requests_given(&mut driver).await;
    assert_eq!(given.len(), 4);
    drop(sender.await.expect("the sender ends"));
    // The connection waits for the answers (a client that only shut down its side of the
    // connection still reads them): nothing is given back meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!task.is_finished());
    assert!(
        budget.available() < 5 << 20,
        "{} bytes free while the node holds 4 MiB of requests",
        budget.available()
    );
    drop(given);
    task.await
        .expect("the task ends once the node is done and the client is gone");
    assert_eq!(
        budget.available(),
        8 << 20,
        "given back once the node is done"
    );
}

/// Review of the node-wide budget (twentieth session): a client's frame was read whole before it
/// took its share, so a request waiting for the budget held its bytes outside it, and 1,024
/// connections could each hold a put of 4 MiB past the 256 MiB budget (and the part of a frame
/// still arriving, for up to the read timeout). A frame now takes its share by the size its length
/// prefix announces, and its body stays in the client's socket until then.
#[tokio::test(start_paused = true)]
async fn a_frame_waits_for_its_share_before_its_body_is_read() {
    let limits = ConnectionLimits {
        max_request_bytes_total: 1 << 20,
        ..ConnectionLimits::default()
    };
    let budget = RequestBudget::new(limits.max_request_bytes_total);
    let (first, mut first_driver, first_task) =
        served_sharing(limits, Arc::default(), budget.clone());
    let (second, mut second_driver, second_task) =
        served_sharing(limits, Arc::default(), budget.clone());
    // The first connection's put holds most of the budget while the driver works on it.
    let first_sender = puts_sent(first, 1, 800 << 10);
    let held = requests_given(&mut first_driver).await;
    assert_eq!(held.len(), 1);
    // The second's put does not fit: its body must not leave the client (the pipe holds 64 KiB).
    let second_sender = puts_sent(second, 1, 800 << 10);
    let sent = tokio::time::timeout(Duration::from_secs(120), second_sender).await;
    let Err(_) = sent else {
        panic!("the node read a whole request of 800 KiB past its budget of 1 MiB");
    };
    assert!(requests_given(&mut second_driver).await.is_empty());
    assert!(budget.available() < 300 << 10);
    // Once the first is answered, the second is read and handed over.
    for reply in held {
        let _ = reply.send(stored());
    }
    let given = requests_given(&mut second_driver).await;
    assert_eq!(
        given.len(),
        1,
        "the second put after the first was answered"
    );
    drop(given);
    drop(first_sender);
    drop((first_task, second_task));
}

/// Review of the client (twenty-fourth session): a request waited for the node-wide request
/// budget with no bound, and then had its whole timeout to run: the client, which waits the
/// request's timeout (and a margin) before it sends the put to the next node, did so while
/// this one had not even begun it, and both applied it. A request that waited past its timeout
/// for admission is answered "unavailable" (nothing applied) without reaching the driver; one
/// that waited less has only what is left of its timeout.
#[tokio::test(start_paused = true)]
async fn a_request_admitted_past_its_timeout_is_turned_down() {
    let limits = ConnectionLimits {
        max_request_bytes_total: 1 << 20,
        ..ConnectionLimits::default()
    };
    let budget = RequestBudget::new(limits.max_request_bytes_total);
    let (holder, mut held, _holder_task) = served_sharing(limits, Arc::default(), budget.clone());
    // A put that takes nearly the whole budget, which the driver holds.
    let _holder = puts_sent(holder, 1, (1 << 20) - 1024);
    let holding = requests_given(&mut held).await;
    assert_eq!(holding.len(), 1);
    let put = |timeout: u64| ClientFrame::Request {
        id: 1,
        request: ClientRequest::Put {
            key: b"k".to_vec(),
            value: vec![7; 4096],
            context: Vec::new(),
            options: ClientOptions {
                timeout: Some(timeout),
                ..ClientOptions::default()
            },
            content_type: None,
        },
    };
    // Two clients' puts wait 5 s for the budget: one with a timeout of 1 s, one of 10 s.
    let mut waiting = Vec::new();
    for timeout in [1_000, 10_000] {
        let (mut client, driver, task) = served_sharing(limits, Arc::default(), budget.clone());
        client.feed(&put(timeout)).expect("encodes");
        client.flush().await.expect("sent");
        waiting.push((client, driver, task));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for reply in holding {
        let _ = reply.send(stored());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut late, mut late_driver, _) = waiting.remove(0);
    assert!(
        late_driver.try_recv().is_err(),
        "a put admitted past its timeout reached the driver"
    );
    match late.recv::<NodeFrame>().await {
        Ok(NodeFrame::Reply {
            reply: ClientReply::Failed(ClientError::Unavailable(_)),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let (_, mut driver, _) = waiting.remove(0);
    match driver.try_recv() {
        Ok(Input::Client { request, .. }) => assert_eq!(request.options().timeout, Some(5_000)),
        other => panic!("{other:?}"),
    }
}

/// [`within_timeout`] on each kind of timeout a request may name.
#[test]
fn a_request_keeps_what_is_left_of_the_timeout_it_names() {
    let with = |timeout: Option<u64>| ClientRequest::Get {
        key: b"k".to_vec(),
        options: ClientOptions {
            timeout,
            ..ClientOptions::default()
        },
    };
    let default = Duration::from_millis(1_000);
    let after = |timeout: Option<u64>, waited_ms: u64| {
        within_timeout(with(timeout), Duration::from_millis(waited_ms), default)
            .map(|r| r.options().timeout)
    };
    // Not waited: as it came.
    assert_eq!(after(Some(500), 0), Ok(Some(500)));
    // Named: what is left, or turned down.
    assert_eq!(after(Some(500), 200), Ok(Some(300)));
    assert!(matches!(
        after(Some(500), 500),
        Err(ClientReply::Failed(ClientError::Unavailable(_)))
    ));
    // None named: the node's, from its arrival; turned down once it waited that long.
    assert_eq!(after(None, 999), Ok(None));
    assert!(after(None, 1_000).is_err());
    // Timeouts the node refuses are left for it to refuse.
    assert_eq!(after(Some(0), 5_000), Ok(Some(0)));
    let past = crate::core::MAX_REQUEST_TIMEOUT + 1;
    assert_eq!(after(Some(past), 5_000), Ok(Some(past)));
    // A node whose own timeout is past the usual most takes up to it.
    let long = within_timeout(
        with(Some(90_000)),
        Duration::from_millis(50_000),
        Duration::from_millis(120_000),
    )
    .map(|r| r.options().timeout);
    assert_eq!(long, Ok(Some(40_000)));
}

/// Review, twenty-sixth session of issue 20: a reply too large to send was answered
/// `Unavailable` ("nothing applied": the client tries the next node) whatever it was, a put's
/// `Stored` too: the client wrote the value again elsewhere, and a checker trusting the error took
/// the write for one that superseded nothing. Only a reply that applied nothing becomes
/// `Unavailable`; any other ends the connection with an error, which a client takes for "may have
/// been applied".
#[tokio::test]
async fn a_reply_too_large_to_send_says_unavailable_only_when_nothing_was_applied() {
    let addr: SocketAddr = ([127, 0, 0, 1], 1).into();
    let sent = |reply: ClientReply| {
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let mut conn = handshake_conn(ours);
        conn.established(DEFAULT_MAX_FRAME, 256, None);
        let last = queue_reply(&mut conn, addr, NodeFrame::Reply { id: 7, reply });
        (last, conn, theirs)
    };
    let big = vec![0u8; 1024];
    for (reply, applied_nothing) in [
        (
            ClientReply::Stored {
                context: big.clone(),
                replicas: vec![1, 2],
            },
            false,
        ),
        (
            ClientReply::Failed(ClientError::Storage(
                String::from_utf8(vec![b'x'; 1024]).unwrap_or_default(),
            )),
            false,
        ),
        (
            ClientReply::Failed(ClientError::Unavailable("x".repeat(1024))),
            true,
        ),
    ] {
        let (last, mut conn, theirs) = sent(reply.clone());
        let mut client = handshake_conn(theirs);
        client.established(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, None);
        assert!(last.is_some(), "{reply:?}: nothing queued");
        conn.flush().await.expect("flushes");
        let frame: NodeFrame = client.recv().await.expect("a frame");
        match frame {
            NodeFrame::Reply {
                reply: ClientReply::Failed(e),
                ..
            } if applied_nothing => {
                assert!(e.applied_nothing(), "{e:?}");
                assert_eq!(last, Some(false));
            }
            NodeFrame::Error { .. } if !applied_nothing => assert_eq!(last, Some(true)),
            other => panic!("answered {other:?}"),
        }
    }
}

/// Review of this session's change: the TCP client slots go to a newcomer of another address,
/// and the connections that gave theirs up finish what they read first; at most as many of
/// those as there are slots, or one address taking slots back as fast as they were given up
/// would hold ever more sockets. Past that, a newcomer is refused.
#[test]
fn connections_giving_their_slots_up_are_at_most_as_many_as_the_slots() {
    let slots = Arc::new(Slots {
        clients: std::sync::Mutex::new(ClientSlots {
            taken: AddressSlots::new(2),
            give_up: Default::default(),
            leaving: Default::default(),
        }),
        peers: Arc::new(tokio::sync::Semaphore::new(1)),
        handshakes: std::sync::Mutex::new(Default::default()),
        peer_ids: std::sync::Mutex::new(Default::default()),
        refusing: Arc::new(tokio::sync::Semaphore::new(REFUSING)),
    });
    let ip = |last: u8| std::net::IpAddr::from([10, 0, 0, last]);
    let take = |from: u8, ticket: u64| match slots.client(ip(from), ticket, 2) {
        Ok(Slot::Client(slot, told)) => Some((slot, told)),
        Ok(Slot::Peer { .. }) => panic!("a client slot"),
        Err(_) => None,
    };
    // Address 1 takes both slots; address 2 takes one of them, then goes, and address 1 takes it
    // back; twice.
    let (first, mut told) = take(1, 1).expect("a free slot");
    let second = take(1, 2).expect("a free slot");
    let other = take(2, 3).expect("address 1's oldest slot");
    assert!(told.try_recv().is_ok(), "the first connection was told");
    drop(other);
    let _third = take(1, 4).expect("the slot address 2 left");
    let other = take(2, 5).expect("address 1's oldest slot");
    drop(other);
    let _fourth = take(1, 6).expect("the slot address 2 left");
    // Two connections still answer what they read: no more slots go.
    assert!(take(2, 7).is_none(), "a third connection gave its slot up");
    drop(first);
    assert!(take(2, 8).is_some(), "one has closed");
    drop(second);
}
