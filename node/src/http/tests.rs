//! The API's handlers against a driver played by the test: what reaches the driver, and when.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::{router, HttpState, NodeInfo};
use crate::message::{ClientReply, ClientRequest};
use crate::runtime::{ConnectionLimits, Input, RequestBudget};

const CLUSTER: &str = "test";
const SECRET: &[u8] = b"secret";

/// The API of a node whose request budget is `budget`, and the driver's end of its inputs.
fn api(budget: &RequestBudget) -> (axum::Router, mpsc::Receiver<Input>) {
    let (inputs, driver) = mpsc::channel(16);
    let info = NodeInfo {
        cluster: CLUSTER.into(),
        client_secret: SECRET.to_vec(),
        max_value_size: 1 << 20,
        max_head: 64 << 10,
        request_timeout: Duration::from_secs(10),
        data_dir: None,
        limits: ConnectionLimits::default(),
        requests: budget.clone(),
        unsent: Arc::default(),
    };
    (router(HttpState::new(info, false, inputs)), driver)
}

/// `PUT /kv/{key}` with `body` of `len` bytes.
fn put(key: &str, len: usize, body: Body) -> Request<Body> {
    Request::put(format!("/kv/{key}"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", super::token(CLUSTER, SECRET)),
        )
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .expect("a valid request")
}

/// A body of `len` bytes that records when the server first asks for it.
fn watched(len: usize) -> (Body, Arc<AtomicBool>) {
    let asked = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&asked);
    let chunks = futures::stream::once(async move {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![7u8; len]))
    });
    (Body::from_stream(chunks), asked)
}

/// Lets every task run until all of them wait (the clock is paused: it moves only then).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn stored() -> ClientReply {
    ClientReply::Stored {
        context: Vec::new(),
        replicas: vec![1],
    }
}

/// Hardening review, eighteenth session of issue 20: the request budget was taken only once a
/// put's body had been read, so a thousand HTTP connections could each make the node hold a
/// whole value (1 GiB together) past a budget of a quarter of that. A put now waits for its
/// share before the node reads its body.
#[tokio::test(start_paused = true)]
async fn a_put_waits_for_the_request_budget_before_its_body_is_read() {
    let budget = RequestBudget::new(1 << 20);
    let (app, mut driver) = api(&budget);
    let first = tokio::spawn(app.clone().oneshot(put(
        "a",
        800_000,
        Body::from(vec![1u8; 800_000]),
    )));
    let Some(Input::Client { request, reply }) = driver.recv().await else {
        panic!("the first put reaches the driver");
    };
    assert!(matches!(request, ClientRequest::Put { ref value, .. } if value.len() == 800_000));

    let (body, asked) = watched(800_000);
    let second = tokio::spawn(app.clone().oneshot(put("b", 800_000, body)));
    settle().await;
    assert!(
        !asked.load(Ordering::SeqCst),
        "the second put's body was read while the first held the budget ({} bytes free)",
        budget.available()
    );
    assert!(
        driver.try_recv().is_err(),
        "nothing else reached the driver"
    );

    reply.send(stored()).expect("the first put waits");
    let answered = first.await.expect("joins").expect("infallible");
    assert_eq!(answered.status(), StatusCode::NO_CONTENT);
    let Some(Input::Client { request, reply }) = driver.recv().await else {
        panic!("the second put reaches the driver once the first is answered");
    };
    assert!(asked.load(Ordering::SeqCst));
    assert!(matches!(request, ClientRequest::Put { ref value, .. } if value.len() == 800_000));
    reply.send(stored()).expect("the second put waits");
    let answered = second.await.expect("joins").expect("infallible");
    assert_eq!(answered.status(), StatusCode::NO_CONTENT);
    assert_eq!(budget.available(), 1 << 20, "every byte given back");
}

/// Review of the change above: once a put holds its share of the budget, a client that sent its
/// body a byte now and then (enough for the idle timeout) held that share for as long as it
/// liked, and with a few hundred connections the whole budget, stalling every client of the
/// node. The body must now arrive within the read timeout; then the share is given back.
#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_in_time_gives_its_share_back() {
    let budget = RequestBudget::new(1 << 20);
    let (app, mut driver) = api(&budget);
    let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let slow = app.oneshot(put("slow", 800_000, Body::from_stream(never)));
    let answered = tokio::time::timeout(ConnectionLimits::default().read_timeout * 2, slow)
        .await
        .expect("answered within the read timeout")
        .expect("infallible");
    assert_eq!(answered.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(budget.available(), 1 << 20, "the share is given back");
    assert!(driver.try_recv().is_err(), "nothing reached the driver");
}

/// The error kind of an answer's JSON body.
async fn error_kind(answered: axum::response::Response) -> (StatusCode, String) {
    let status = answered.status();
    let body = axum::body::to_bytes(answered.into_body(), 1 << 20)
        .await
        .expect("a body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    (
        status,
        json["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Review of the HTTP API (twenty-third session): a put the driver took and dropped unanswered
/// (the node stopping) was answered `unavailable`, the kind that says nothing was written (as
/// for a put the driver never took), so a client or proxy retrying on it wrote the value twice.
/// It is `interrupted` now: it may have been applied.
#[tokio::test(start_paused = true)]
async fn a_put_the_driver_dropped_is_interrupted_not_unavailable() {
    let budget = RequestBudget::new(1 << 20);
    let (app, mut driver) = api(&budget);
    let taken = tokio::spawn(app.clone().oneshot(put("a", 1, Body::from(vec![1u8]))));
    let Some(Input::Client { reply, .. }) = driver.recv().await else {
        panic!("the put reaches the driver");
    };
    drop(reply);
    let answered = taken.await.expect("joins").expect("infallible");
    assert_eq!(
        error_kind(answered).await,
        (StatusCode::SERVICE_UNAVAILABLE, "interrupted".to_owned())
    );
    // A put the driver never took wrote nothing.
    drop(driver);
    let answered = app
        .oneshot(put("b", 1, Body::from(vec![1u8])))
        .await
        .expect("infallible");
    assert_eq!(
        error_kind(answered).await,
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable".to_owned())
    );
}

/// Review of this session's change: a request waited for the node's request budget without
/// bound, and then had its whole timeout (as the TCP server's did): a client that sends the put
/// to another node once its timeout passed found it applied twice. One that waited past its
/// timeout is turned down (`unavailable`: nothing applied) without reaching the driver.
#[tokio::test(start_paused = true)]
async fn a_put_admitted_past_its_timeout_is_turned_down() {
    let budget = RequestBudget::new(1 << 20);
    let (app, mut driver) = api(&budget);
    let first = tokio::spawn(app.clone().oneshot(put(
        "a",
        800_000,
        Body::from(vec![1u8; 800_000]),
    )));
    let Some(Input::Client { reply, .. }) = driver.recv().await else {
        panic!("the first put reaches the driver");
    };
    let late = Request::put("/kv/b?timeout=1000")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", super::token(CLUSTER, SECRET)),
        )
        .header(header::CONTENT_LENGTH, 800_000)
        .body(Body::from(vec![2u8; 800_000]))
        .expect("a valid request");
    let second = tokio::spawn(app.clone().oneshot(late));
    tokio::time::sleep(Duration::from_secs(5)).await;
    reply.send(stored()).expect("the first put waits");
    first.await.expect("joins").expect("infallible");
    let (status, kind) = error_kind(second.await.expect("joins").expect("infallible")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(
        driver.try_recv().is_err(),
        "the late put reached the driver"
    );
}
