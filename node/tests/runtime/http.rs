//! The HTTP API of in-process nodes, through a minimal HTTP/1.1 client over a TCP stream (no
//! client crate: the requests are few and the answers carry their lengths).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use dynamo_node::http::{route_paths, token, HttpConfig, OPENAPI};
use dynamo_node::runtime::{Node, RuntimeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{eventually, wait_up, Spec, SECRET};

/// Longest wait for one answer (a loaded 2-core CI machine can stall a debug build).
const ANSWER: Duration = Duration::from_secs(60);

/// An answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a new connection and reads the whole answer.
pub(crate) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(ANSWER, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} in {ANSWER:?}"));
    parse(&raw)
}

pub(crate) fn parse(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[line + 2..line + 2 + size]);
        rest = &rest[line + 4 + size..];
    }
}

/// A node started with its HTTP API on a listener bound here (port 0).
async fn start_with_http(spec: &Spec, id: u64, configure: impl FnOnce(&mut RuntimeConfig)) -> Node {
    let mut rc = spec.runtime_config(id);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    rc.http = Some(HttpConfig::with_listener(listener));
    configure(&mut rc);
    Node::start(rc).await.unwrap()
}

/// A cluster of `n` nodes with HTTP APIs, ready.
pub(crate) async fn cluster(n: usize) -> (Spec, Vec<Node>) {
    let spec = Spec::new(n, None);
    let mut nodes = Vec::new();
    for id in spec.ids() {
        nodes.push(start_with_http(&spec, id, |_| {}).await);
    }
    wait_up(&spec).await;
    (spec, nodes)
}

pub(crate) fn bearer() -> String {
    format!("Bearer {}", token("dynamo", SECRET.as_bytes()))
}

/// A request with the token.
pub(crate) async fn authed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let auth = bearer();
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    call(addr, method, path, &all, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_siblings_resolve_and_delete() {
    let (_spec, nodes) = cluster(3).await;
    let (one, two) = (nodes[0].http_addr().unwrap(), nodes[1].http_addr().unwrap());

    // A put keeps its content type; the get through another node returns both.
    let put = authed(
        one,
        "PUT",
        "/kv/cart",
        &[("Content-Type", "text/plain")],
        b"milk",
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text());
    assert!(put
        .header("x-dynamo-context")
        .is_some_and(|c| !c.is_empty()));
    let got = authed(two, "GET", "/kv/cart", &[], b"").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, b"milk");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    // A stored value is served with its own content type, from the console's origin: never
    // sniffed, and sandboxed should a browser render it (a stored text/html would otherwise
    // run its scripts with the console's origin).
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert!(
        got.header("content-security-policy")
            .is_some_and(|c| c.contains("sandbox")),
        "{:?}",
        got.header("content-security-policy")
    );

    // A second put without a context is concurrent: 300 with both siblings.
    let put = authed(
        two,
        "PUT",
        "/kv/cart",
        &[("Content-Type", "application/json")],
        b"[\"eggs\"]",
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text());
    let got = authed(one, "GET", "/kv/cart", &[], b"").await;
    assert_eq!(got.status, 300, "{}", got.text());
    let body = got.json();
    let mut siblings: Vec<(String, String)> = body["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["text"].as_str().unwrap().to_string(),
                s["content_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    siblings.sort();
    assert_eq!(
        siblings,
        vec![
            ("[\"eggs\"]".to_string(), "application/json".to_string()),
            ("milk".to_string(), "text/plain".to_string()),
        ]
    );
    let context = body["context"].as_str().unwrap().to_string();
    assert_eq!(got.header("x-dynamo-context"), Some(context.as_str()));

    // A put with that context supersedes both.
    let put = authed(
        one,
        "PUT",
        "/kv/cart?w=3",
        &[
            ("Content-Type", "text/plain"),
            ("X-Dynamo-Context", &context),
        ],
        b"milk,eggs",
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text());
    let got = authed(two, "GET", "/kv/cart?r=3", &[], b"").await;
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, b"milk,eggs".as_slice())
    );

    // A delete without a context is refused, not a silent no-op; with one, it deletes.
    let refused = authed(one, "DELETE", "/kv/cart", &[], b"").await;
    assert_eq!(refused.status, 428, "{}", refused.text());
    assert_eq!(refused.json()["error"], "context_required");
    assert_eq!(authed(one, "GET", "/kv/cart", &[], b"").await.status, 200);
    let context = got.header("x-dynamo-context").unwrap().to_string();
    let deleted = authed(
        one,
        "DELETE",
        "/kv/cart",
        &[("X-Dynamo-Context", &context)],
        b"",
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let gone = authed(two, "GET", "/kv/cart", &[], b"").await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(gone.json()["error"], "not_found");

    // A value without a content type comes back as bytes.
    authed(one, "PUT", "/kv/raw", &[], b"\x00\x01").await;
    let got = authed(one, "GET", "/kv/raw", &[], b"").await;
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.body, b"\x00\x01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_limits_and_bad_input() {
    let spec = Spec::new(3, None);
    let mut nodes = Vec::new();
    for id in spec.ids() {
        nodes.push(start_with_http(&spec, id, |rc| rc.node.max_value_size = 1024).await);
    }
    wait_up(&spec).await;
    let addr = nodes[0].http_addr().unwrap();

    // A key of any bytes, percent-encoded; the TCP client reads the same key.
    let key: &[u8] = b"\x00\xffa/b c%";
    let put = authed(addr, "PUT", "/kv/%00%FFa%2Fb%20c%25", &[], b"binary").await;
    assert_eq!(put.status, 204, "{}", put.text());
    let got = spec.client_of(2).get(key).await.unwrap();
    assert_eq!(got.values, vec![b"binary".to_vec()]);
    spec.client_of(3)
        .put(b"from-tcp", b"v".to_vec(), &[])
        .await
        .unwrap();
    assert_eq!(
        authed(addr, "GET", "/kv/from-tcp", &[], b"").await.body,
        b"v"
    );

    // Over the value limit: 413, both just over it (the node's check) and far over it (the
    // body limit).
    for size in [1025, 64 * 1024] {
        let big = vec![7u8; size];
        let answer = authed(addr, "PUT", "/kv/big", &[], &big).await;
        assert_eq!(answer.status, 413, "{size} bytes: {}", answer.text());
        assert_eq!(answer.json()["error"], "value_too_large");
    }
    let at_limit = authed(addr, "PUT", "/kv/big", &[], &[7u8; 1024]).await;
    assert_eq!(at_limit.status, 204, "{}", at_limit.text());

    // Bad options, contexts and parameters: 400.
    let answer = authed(addr, "GET", "/kv/k?r=9", &[], b"").await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    let answer = authed(addr, "GET", "/kv/k?R=2", &[], b"").await;
    assert_eq!(
        answer.status,
        400,
        "an unknown parameter: {}",
        answer.text()
    );
    let answer = authed(
        addr,
        "PUT",
        "/kv/k",
        &[("X-Dynamo-Context", "not base64!")],
        b"v",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["error"], "invalid_context");
    let answer = authed(addr, "PUT", "/kv/k", &[("X-Dynamo-Context", "AAAA")], b"v").await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    // Review (twenty-third session): with several context headers, the first alone was used
    // (here none: an empty one), and the put superseded less than the client meant.
    let two = [("X-Dynamo-Context", ""), ("X-Dynamo-Context", "AAAA")];
    let answer = authed(addr, "PUT", "/kv/k", &two, b"v").await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["error"], "invalid_context");
    // A timeout past the node's maximum is a bad option (400), not a payload too large: a
    // client told 413 would not look at its query.
    for method in ["GET", "PUT"] {
        let answer = authed(addr, method, "/kv/k?timeout=600001", &[], b"v").await;
        assert_eq!(answer.status, 400, "{method}: {}", answer.text());
        assert_eq!(answer.json()["error"], "invalid_options");
    }
    // A `%` that does not start an escape is a bad key: decoded as itself, `/kv/%zz` would name
    // the same key as `/kv/%25zz`, and a client with a broken encoder would write another's key.
    for path in ["/kv/%zz", "/kv/%", "/kv/a%2", "/kv/a%2g"] {
        let answer = authed(addr, "PUT", path, &[], b"a").await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert_eq!(answer.json()["error"], "invalid_key");
    }
    assert_eq!(authed(addr, "GET", "/kv/%25zz", &[], b"").await.status, 404);
    let long_key = "k".repeat(9 * 1024);
    let answer = authed(addr, "GET", &format!("/kv/{long_key}"), &[], b"").await;
    assert_eq!(answer.status, 414, "{}", answer.text());
    assert_eq!(authed(addr, "GET", "/nowhere", &[], b"").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_refused() {
    let (_spec, nodes) = cluster(1).await;
    let addr = nodes[0].http_addr().unwrap();
    for (path, method) in [
        ("/kv/k", "GET"),
        ("/kv/k", "PUT"),
        ("/kv/k", "DELETE"),
        ("/status", "GET"),
        ("/ring", "GET"),
        ("/members", "GET"),
        ("/metrics", "GET"),
    ] {
        let none = call(addr, method, path, &[], b"").await;
        assert_eq!(none.status, 401, "{method} {path}: {}", none.text());
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer realm=\"dynamo\"")
        );
        let wrong = call(addr, method, path, &[("Authorization", "Bearer 0123")], b"").await;
        assert_eq!(wrong.status, 401, "{method} {path}");
        // The client secret itself is not the token.
        let secret = format!("Bearer {SECRET}");
        let raw = call(addr, method, path, &[("Authorization", &secret)], b"").await;
        assert_eq!(raw.status, 401, "{method} {path}");
    }
    assert_eq!(
        call(addr, "GET", "/openapi.json", &[], b"").await.status,
        200
    );
    assert_eq!(authed(addr, "GET", "/status", &[], b"").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_public() {
    let spec = Spec::new(1, None);
    let node = start_with_http(&spec, 1, |rc| {
        if let Some(http) = rc.http.as_mut() {
            http.metrics_public = true;
        }
    })
    .await;
    let addr = node.http_addr().unwrap();
    let metrics = call(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert_eq!(call(addr, "GET", "/status", &[], b"").await.status, 401);
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_ring_members_and_metrics() {
    let (_spec, nodes) = cluster(3).await;
    let addr = nodes[0].http_addr().unwrap();

    let status = authed(addr, "GET", "/status", &[], b"").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let status = status.json();
    assert_eq!(status["id"], 1);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    let ring = authed(addr, "GET", "/ring", &[], b"").await.json();
    let ring = ring.as_array().unwrap();
    assert_eq!(ring.len(), 64);
    assert_eq!(ring[0]["replicas"].as_array().unwrap().len(), 3);
    let members = authed(addr, "GET", "/members", &[], b"").await.json();
    assert_eq!(members["id"], 1);
    let up: BTreeSet<u64> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["up"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(up, BTreeSet::from([1, 2, 3]));

    let before = authed(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(before.status, 200);
    assert!(before
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let before = before.text();
    assert_eq!(
        sample(&before, "dynamo_members{state=\"up\"}"),
        Some(3.0),
        "{before}"
    );
    let put_ok = "dynamo_requests_total{op=\"put\",outcome=\"ok\"}";
    let puts_before = sample(&before, put_ok).unwrap_or(0.0);
    let get_missed = "dynamo_requests_total{op=\"get\",outcome=\"not_found\"}";
    let missed_before = sample(&before, get_missed).unwrap_or(0.0);

    // Traffic: puts and gets (enough replica round trips for the staleness model), a miss.
    for i in 0..30 {
        let put = authed(addr, "PUT", &format!("/kv/m{i}"), &[], b"v").await;
        assert_eq!(put.status, 204);
        assert_eq!(
            authed(addr, "GET", &format!("/kv/m{i}"), &[], b"")
                .await
                .status,
            200
        );
    }
    assert_eq!(
        authed(addr, "GET", "/kv/absent", &[], b"").await.status,
        404
    );

    // Replica answers that arrive after a quorum are recorded as they come: wait for them.
    let text = eventually(60, || async {
        let text = authed(addr, "GET", "/metrics", &[], b"").await.text();
        text.contains("dynamo_staleness_consistent_probability")
            .then_some(text)
    })
    .await
    .expect("staleness predictions after 60 round trips");
    assert_eq!(sample(&text, put_ok), Some(puts_before + 30.0), "{text}");
    assert!(sample(&text, "dynamo_requests_total{op=\"get\",outcome=\"ok\"}").unwrap() >= 30.0);
    assert_eq!(sample(&text, get_missed), Some(missed_before + 1.0));
    let count = "dynamo_request_duration_seconds_count{op=\"put\",outcome=\"ok\"}";
    assert_eq!(sample(&text, count), sample(&text, put_ok));
    let inf = "dynamo_request_duration_seconds_bucket{op=\"put\",outcome=\"ok\",le=\"+Inf\"}";
    assert_eq!(sample(&text, inf), sample(&text, put_ok));
    assert!(sample(&text, "dynamo_coordinated_total{op=\"put\"}").unwrap() >= 30.0);
    assert!(sample(&text, "dynamo_replica_writes_total").unwrap() >= 30.0);
    assert!(sample(&text, "dynamo_storage_keys").unwrap() >= 30.0);
    for name in [
        "dynamo_read_repairs_total",
        "dynamo_hints_recorded_total",
        "dynamo_hints_delivered_total",
        "dynamo_hints_dropped_total",
        "dynamo_antientropy_sessions_total",
        "dynamo_antientropy_keys_repaired_total",
        "dynamo_transfer_keys_total",
        "dynamo_transfer_bytes_total",
    ] {
        assert!(sample(&text, name).is_some(), "{name} missing");
    }
    let p0 = "dynamo_staleness_consistent_probability{n=\"3\",r=\"2\",w=\"2\",t_ms=\"0\",configured=\"true\"}";
    let p = sample(&text, p0).unwrap_or_else(|| panic!("{p0} missing:\n{text}"));
    assert!((0.0..=1.0).contains(&p));
    for t in ["1", "10", "100"] {
        let series = format!(
            "dynamo_staleness_consistent_probability{{n=\"3\",r=\"1\",w=\"2\",t_ms=\"{t}\",configured=\"false\"}}"
        );
        assert!(sample(&text, &series).is_some(), "{series} missing");
    }
    // Every sample line is `name{labels} number` or `name number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

/// Nodes 1 and 2 of a three-node cluster; node 3 refuses connections (its listener is closed).
async fn two_of_three() -> (Spec, Vec<Node>) {
    let spec = Spec::new(3, None);
    drop(spec.runtime_config(3).listener.take());
    let nodes = vec![
        start_with_http(&spec, 1, |_| {}).await,
        start_with_http(&spec, 2, |_| {}).await,
    ];
    // Ready when each of nodes 1 and 2 reads through the other (R = 2: links both ways).
    for id in [1, 2] {
        let options = dynamo_node::ClientOptions {
            r: Some(2),
            timeout: Some(2_000),
            ..Default::default()
        };
        let ready = eventually(60, || async {
            spec.client_of(id).get_with(b"probe", options).await.ok()
        })
        .await;
        assert!(ready.is_some(), "node {id} never read through the other");
    }
    (spec, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_that_cannot_be_reached_is_503_with_the_shortfall() {
    let (_spec, nodes) = two_of_three().await;
    let addr = nodes[0].http_addr().unwrap();
    let answer = authed(addr, "PUT", "/kv/k?w=3", &[], b"v").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    let body = answer.json();
    match body["error"].as_str() {
        // Node 3 known unreachable before the put (gossip, or a refused connection that made
        // it silent here): turned down before anything was written (thirtieth session; it was
        // stored here first, then failed as "quorum failed, 0 acknowledged").
        Some("unavailable") => {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("nothing was written"), "{body}");
        }
        // Node 3 found unreachable while the put ran: the coordinator gives up then, and node 2
        // may or may not have answered by then.
        Some("quorum_failed") => {
            assert_eq!(body["required"], 3);
            let acknowledged = body["acknowledged"].as_u64().unwrap();
            assert!(acknowledged <= 2, "{body}");
            assert_eq!(body["shortfall"].as_u64().unwrap(), 3 - acknowledged);
        }
        _ => panic!("{body}"),
    }
    let answer = authed(addr, "GET", "/kv/k?r=3", &[], b"").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    // W = 2 is reachable.
    assert_eq!(authed(addr, "PUT", "/kv/k", &[], b"v").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_504() {
    // Every peer message takes 600 ms: no quorum of 3 answers within 300. (A third node that
    // never answers was down by the time the others served: a new cluster's stores wait to hear
    // every member, or 20 gossip rounds, before they answer reads.)
    let spec = Spec::new(3, None);
    let mut nodes = Vec::new();
    for id in spec.ids() {
        nodes.push(
            start_with_http(&spec, id, |rc| {
                rc.link_delay = Some(dynamo_node::runtime::LinkDelay::Constant(
                    std::time::Duration::from_millis(600),
                ));
            })
            .await,
        );
    }
    wait_up(&spec).await;
    let addr = nodes[0].http_addr().unwrap();
    let answer = authed(addr, "GET", "/kv/k?r=3&timeout=300", &[], b"").await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["error"], "timeout");
    assert_eq!(body["required"], 3);
    let answer = authed(addr, "PUT", "/kv/k?w=3&timeout=300", &[], b"v").await;
    assert_eq!(answer.status, 504, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes() {
    let (_spec, nodes) = cluster(1).await;
    let addr = nodes[0].http_addr().unwrap();
    let served = call(addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.text(), OPENAPI);
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: BTreeSet<&str> = route_paths().into_iter().collect();
    assert_eq!(documented, routed, "paths in the document vs the router");

    // Every method: routed (anything but 405) exactly when documented.
    for (path, item) in paths {
        let concrete = path.replace("{key}", "openapi-probe");
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            let answer = authed(addr, method, &concrete, &[], b"").await;
            let in_doc = item.get(method.to_lowercase()).is_some();
            assert_eq!(
                answer.status != 405,
                in_doc,
                "{method} {path}: status {}, documented {in_doc}",
                answer.status
            );
        }
    }
}

/// One put over a fresh connection: its status and body, or `None` if the connection failed
/// or closed without an answer.
async fn put_once(addr: SocketAddr, key: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = format!(
            "PUT /kv/{key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {}\r\nContent-Length: 1\r\n\r\nv",
            bearer()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.get(9..12)?.parse().ok()?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        Some((status, body))
    };
    tokio::time::timeout(ANSWER, exchange).await.ok().flatten()
}

/// Review of the runtime, twenty-eighth session of issue 20, with the TCP protocol's
/// `a_graceful_stop_answers_every_put_it_applied`: a graceful stop aborted the HTTP API before
/// the driver flushed what it had taken, so puts it made durable got no answer. Every put the
/// node applied is answered, and never with an answer that says nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_answers_every_http_put_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::new(1, Some(dir.path()));
    let one = |rc: &mut RuntimeConfig| (rc.node.n, rc.node.r, rc.node.w) = (1, 1, 1);
    let node = start_with_http(&spec, 1, one).await;
    wait_up(&spec).await;
    let http = node.http_addr().unwrap();
    let writers: Vec<_> = (0..16)
        .map(|t| {
            tokio::spawn(async move {
                // Each writer's puts, in order, with their answers.
                let mut answers = Vec::new();
                for i in 0.. {
                    let key = format!("stop-{t}-{i}");
                    let answer = put_once(http, &key).await;
                    let go_on = matches!(answer, Some((204, _)));
                    answers.push((key, answer));
                    if !go_on {
                        break;
                    }
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.shutdown().await.unwrap();
    let mut answers = Vec::new();
    for w in writers {
        answers.extend(w.await.unwrap());
    }
    let mut rc = spec.runtime_config(1);
    one(&mut rc);
    rc.listen = "127.0.0.1:0".into();
    let node = Node::start(rc).await.unwrap();
    let mut config =
        dynamo_node::client::ClientConfig::new(vec![node.local_addr().to_string()], SECRET);
    config.timeout = Duration::from_secs(20);
    let mut client = dynamo_node::client::Client::new(config);
    for (key, answer) in &answers {
        let applied = !client.get(key.as_bytes()).await.unwrap().values.is_empty();
        let told = match answer {
            Some((204, _)) => true,
            // "interrupted": may have been applied.
            Some((503, body)) => body.contains("may have been applied"),
            _ => false,
        };
        assert!(
            !applied || told,
            "{key} was applied and answered {answer:?}"
        );
    }
    node.shutdown().await.unwrap();
}
