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
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let timeouts = Timeouts {
        idle: HOUR,
        read: HOUR,
    };
    let mut conn = handshake_conn(ours);
    conn.established(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME, Some(timeouts));
    let (inputs, driver) = mpsc::channel(MAX_IN_FLIGHT);
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
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
    let task = tokio::spawn(client_connection(conn, addr, ctx));
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
