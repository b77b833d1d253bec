//! The web console's routes over HTTP (the page itself in a browser: `browser`): the assets
//! without a token, `/stats`, and `POST /sim` (deterministic, capped, behind the token).

use crate::http::{authed, call, cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_is_deterministic_capped_and_needs_the_token() {
    let (_spec, nodes) = cluster(1).await;
    let addr = nodes[0].http_addr().unwrap();
    let json = [("Content-Type", "application/json")];
    let request = br#"{"nodes": 4, "n": 3, "r": 1, "w": 1, "latency": {"kind": "pareto", "scale": 1, "shape": 1.5},
        "drop": 0.01, "crashed": 1, "ops": 400, "clients": 6, "keys": 10, "seed": 42}"#;

    assert_eq!(call(addr, "POST", "/sim", &json, request).await.status, 401);

    let first = authed(addr, "POST", "/sim", &json, request).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = authed(addr, "POST", "/sim", &json, request).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(
        first.text(),
        second.text(),
        "the same request, the same answer"
    );
    let report = first.json();
    assert_eq!(report["request"]["seed"], 42);
    let ok = report["ops"]["ok"].as_u64().unwrap();
    assert!(ok > 300, "most operations succeed: {report}");
    let histogram = &report["get"]["histogram"];
    let binned: u64 = histogram["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(
        binned + histogram["overflow"].as_u64().unwrap(),
        report["get"]["count"].as_u64().unwrap()
    );
    let curve = report["staleness"]["curve"].as_array().unwrap();
    assert!(
        !curve.is_empty(),
        "R = W = 1 with overlapping clients: {report}"
    );
    let judged: u64 = curve.iter().map(|p| p["judged"].as_u64().unwrap()).sum();
    assert_eq!(judged, report["staleness"]["judged"].as_u64().unwrap());

    // Another seed, another run.
    let other = authed(
        addr,
        "POST",
        "/sim",
        &json,
        &request.map(|b| if b == b'2' { b'3' } else { b }),
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_ne!(other.text(), first.text());

    // Past a cap, or not a request: 400 naming the field.
    for (body, field) in [
        (&br#"{"nodes": 1000}"#[..], "nodes"),
        (br#"{"ops": 1000000}"#, "ops"),
        (br#"{"nodes": 3, "n": 4}"#, "n"),
        (
            br#"{"latency": {"kind": "pareto", "scale": 1, "shape": 0}}"#,
            "latency.shape",
        ),
        (br#"{"drop": 0.9}"#, "drop"),
        (br#"{"crashed": 5}"#, "crashed"),
        (br#"{"bogus": 1}"#, "bogus"),
        (b"not json", "body"),
    ] {
        let answer = authed(addr, "POST", "/sim", &json, body).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(answer.json()["error"], "invalid_simulation");
        assert!(answer.text().contains(field), "{field}: {}", answer.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_without_a_token_and_its_stats_with_one() {
    let (_spec, nodes) = cluster(1).await;
    let addr = nodes[0].http_addr().unwrap();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/charts.js", "text/javascript"),
        ("/console/sim.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let answer = call(addr, "GET", path, &[], b"").await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            answer.header("content-type")
        );
    }
    let page = call(addr, "GET", "/", &[], b"").await.text();
    for asset in [
        "/console/console.js",
        "/console/charts.js",
        "/console/sim.js",
        "/console/console.css",
    ] {
        assert!(page.contains(asset), "the page loads {asset}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );

    assert_eq!(call(addr, "GET", "/stats", &[], b"").await.status, 401);
    authed(addr, "PUT", "/kv/k", &[], b"v").await;
    let stats = authed(addr, "GET", "/stats", &[], b"").await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    let stats = stats.json();
    let bounds = stats["bucket_bounds"].as_array().unwrap().len();
    // One node of N = 3: the put fails its quorum, and is counted with its outcome.
    let puts: Vec<&serde_json::Value> = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "put")
        .collect();
    assert_eq!(puts.len(), 1, "{stats}");
    assert_eq!(puts[0]["count"], 1);
    assert_eq!(puts[0]["buckets"].as_array().unwrap().len(), bounds + 1);
    assert_eq!(stats["status"]["id"], 1);
}
