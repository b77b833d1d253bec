//! The web console in a real browser: headless Chromium driven over WebDriver (`webdriver`)
//! against a 3-node in-process cluster. Screenshots go to `target/browser-screenshots/`.
//!
//! Chromium and chromedriver must be installed (Debian: `apt-get install chromium
//! chromium-driver`; `.ci/run` installs them when missing). Without them the test fails, unless
//! `DYNAMO_ALLOW_NO_BROWSER=1` says that skipping is fine on this machine. `DYNAMO_CHROMIUM` and
//! `DYNAMO_CHROMEDRIVER` name other binaries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dynamo_node::http::token;
use serde_json::Value;

use crate::http::{authed, cluster};
use crate::webdriver::{find_program, until, Driver, Session};
use crate::SECRET;

/// Where the screenshots go: `browser-screenshots/` in the target directory.
fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().map_or(tmp.clone(), |t| t.to_path_buf());
    let dir = dir.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The number in an SVG's `data-points` (0 when absent).
fn points(session: &Session<'_>, css: &str) -> u64 {
    let v = session.eval(
        "const e = document.querySelector(arguments[0]); \
         return e ? Number(e.getAttribute('data-points') || 0) : 0;",
        vec![Value::from(css)],
    );
    v.as_u64().unwrap_or(0)
}

/// The markup of an element (to compare two drawings).
fn markup(session: &Session<'_>, css: &str) -> String {
    session
        .eval(
            "const e = document.querySelector(arguments[0]); return e ? e.innerHTML : '';",
            vec![Value::from(css)],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_console_puts_gets_shows_siblings_and_plots_a_simulation() {
    let driver_program = find_program("DYNAMO_CHROMEDRIVER", &["chromedriver"]);
    let browser = find_program(
        "DYNAMO_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome", "chrome"],
    );
    let (Some(driver_program), Some(browser)) = (driver_program, browser) else {
        let allowed = std::env::var("DYNAMO_ALLOW_NO_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            allowed,
            "the browser test needs chromium and chromedriver on PATH (Debian: apt-get install \
             chromium chromium-driver; .ci/run installs them). Set DYNAMO_ALLOW_NO_BROWSER=1 to \
             skip it on a machine without them."
        );
        eprintln!("SKIPPED the console's browser test: no chromium or chromedriver, and DYNAMO_ALLOW_NO_BROWSER=1");
        return;
    };
    let shots = screenshot_dir();

    // The cluster runs on its own runtime; this thread drives the browser (blocking calls).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_spec, nodes) = rt.block_on(cluster(3));
    let addrs: Vec<_> = nodes.iter().map(|n| n.http_addr().unwrap()).collect();
    rt.block_on(async {
        // Traffic, so that rates, latencies and the staleness predictions have samples.
        for i in 0..60 {
            let key = format!("/kv/warm-{i}");
            let put = authed(addrs[i % 3], "PUT", &key, &[], b"v").await;
            assert_eq!(put.status, 204, "{}", put.text());
            authed(addrs[(i + 1) % 3], "GET", &key, &[], b"").await;
        }
        // Two puts without a context through two nodes: siblings.
        let text = [("Content-Type", "text/plain")];
        for (addr, value) in [(addrs[0], &b"milk"[..]), (addrs[1], b"eggs")] {
            let put = authed(addr, "PUT", "/kv/cart", &text, value).await;
            assert_eq!(put.status, 204, "{}", put.text());
        }
    });

    // Traffic while the page watches, so that it shows rates.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addrs) = (Arc::clone(&stop), addrs.clone());
        rt.spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/kv/traffic-{}", i % 50);
                authed(addrs[i % 3], "PUT", &key, &[], b"v").await;
                authed(addrs[(i + 1) % 3], "GET", &key, &[], b"").await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    let driver = Driver::start(&driver_program);
    let session = Session::new(&driver, &browser, 1400, 1650);
    session.goto(&format!("http://{}/", addrs[0]));

    // The token, entered in the page.
    let field = session.wait_for("#token");
    session.fill(&field, &token("dynamo", SECRET.as_bytes()));
    session.click(&session.wait_for("#token-save"));
    session.wait_text("#auth-state", "authorized", |t| t == "authorized");

    // Cluster: three members up, the ring drawn, the staleness curve drawn, rates measured.
    session.wait_text("#members-summary", "3 up", |t| {
        t.starts_with("3 up, 0 down")
    });
    until("the ring donut", || {
        (points(&session, "#ring-chart") > 0).then_some(())
    });
    until("the staleness curve", || {
        (points(&session, "#staleness-chart") > 0).then_some(())
    });
    until("a few rate samples", || {
        (points(&session, "#rate-chart") >= 9).then_some(())
    });
    session.wait_text(
        "#requests tbody tr:first-child td:nth-child(2)",
        "a get rate",
        |t| t.parse::<f64>().is_ok_and(|r| r > 0.0),
    );
    let puts = session.wait_text("#requests tbody tr:nth-child(2)", "the puts", |t| {
        t.starts_with("put")
    });
    assert!(puts.contains("ms"), "put latency percentiles: {puts}");
    session.screenshot(&shots.join("console-cluster.png"));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(traffic).unwrap();

    // Keys: a put through the form, then a get shows it.
    session.click(&session.wait_for("#tab-button-keys"));
    session.fill(&session.wait_for("#kv-key"), "greeting");
    session.fill(&session.wait_for("#kv-value"), "hello from the browser");
    session.fill(&session.wait_for("#kv-context"), "");
    session.click(&session.wait_for("#kv-put"));
    session.wait_text("#kv-status", "204", |t| t.starts_with("204"));
    session.fill(&session.wait_for("#kv-value"), "");
    session.click(&session.wait_for("#kv-get"));
    session.wait_text("#kv-status", "200", |t| t.starts_with("200"));
    let shown = session.text_of("#kv-value-shown");
    assert!(shown.contains("hello from the browser"), "{shown}");
    session.screenshot(&shots.join("console-get.png"));

    // The siblings made through the API: both listed, with the context; a put with it resolves.
    session.fill(&session.wait_for("#kv-key"), "cart");
    session.fill(&session.wait_for("#kv-context"), "");
    session.click(&session.wait_for("#kv-get"));
    session.wait_text("#kv-status", "300", |t| t.starts_with("300"));
    let siblings: Vec<String> = session
        .find_all("[data-sibling]")
        .iter()
        .map(|e| session.text(e))
        .collect();
    assert_eq!(siblings.len(), 2, "{siblings:?}");
    assert!(siblings.iter().any(|s| s.contains("milk")), "{siblings:?}");
    assert!(siblings.iter().any(|s| s.contains("eggs")), "{siblings:?}");
    let context = session.eval(
        "return document.getElementById('kv-context').value;",
        vec![],
    );
    assert!(
        context.as_str().is_some_and(|c| !c.is_empty()),
        "the get filled in the context"
    );
    assert!(session
        .text_of("#kv-shown-context")
        .starts_with("context: "));
    session.screenshot(&shots.join("console-siblings.png"));
    session.fill(&session.wait_for("#kv-value"), "milk,eggs");
    session.click(&session.wait_for("#kv-put"));
    session.wait_text("#kv-status", "204 superseding", |t| {
        t.starts_with("204") && t.contains("superseding")
    });
    session.click(&session.wait_for("#kv-get"));
    session.wait_text("#kv-status", "200 after the resolution", |t| {
        t.starts_with("200")
    });
    assert!(session.text_of("#kv-value-shown").contains("milk,eggs"));

    // A value that is not UTF-8, and a JSON one, stored through the API. A get then a put of the
    // binary one is refused (the console showed its lossy text in the value field, and a put
    // wrote that text over the bytes); a get then a put of the JSON one keeps its type.
    let blob: &[u8] = &[0xff, 0xfe, 0x00, 0x80, b'x'];
    rt.block_on(async {
        let octets = [("Content-Type", "application/octet-stream")];
        let put = authed(addrs[0], "PUT", "/kv/blob", &octets, blob).await;
        assert_eq!(put.status, 204, "{}", put.text());
        let json = [("Content-Type", "application/json")];
        let put = authed(addrs[0], "PUT", "/kv/doc", &json, br#"{"a":1}"#).await;
        assert_eq!(put.status, 204, "{}", put.text());
    });
    session.fill(&session.wait_for("#kv-key"), "blob");
    session.fill(&session.wait_for("#kv-context"), "");
    session.eval(
        "document.getElementById('kv-status').textContent = '';",
        vec![],
    );
    session.click(&session.wait_for("#kv-get"));
    session.wait_text("#kv-status", "200 for the binary value", |t| {
        t.starts_with("200")
    });
    assert!(
        session
            .text_of("#kv-value-shown")
            .contains("binary, 5 bytes"),
        "{}",
        session.text_of("#kv-value-shown")
    );
    session.eval(
        "document.getElementById('kv-status').textContent = '';",
        vec![],
    );
    session.click(&session.wait_for("#kv-put"));
    session.wait_text("#kv-status", "a refused put", |t| t.contains("binary"));
    let kept = rt.block_on(authed(addrs[1], "GET", "/kv/blob", &[], b""));
    assert_eq!(kept.body, blob, "the bytes are as written");
    session.fill(&session.wait_for("#kv-key"), "doc");
    session.fill(&session.wait_for("#kv-context"), "");
    session.eval(
        "document.getElementById('kv-status').textContent = '';",
        vec![],
    );
    session.click(&session.wait_for("#kv-get"));
    session.wait_text("#kv-status", "200 for the JSON value", |t| {
        t.starts_with("200")
    });
    session.eval(
        "document.getElementById('kv-status').textContent = '';",
        vec![],
    );
    session.click(&session.wait_for("#kv-put"));
    session.wait_text("#kv-status", "204 over the JSON value", |t| {
        t.starts_with("204") && t.contains("superseding")
    });
    let doc = rt.block_on(authed(addrs[1], "GET", "/kv/doc", &[], b""));
    assert_eq!(doc.status, 200, "{}", doc.text());
    assert_eq!(doc.body, br#"{"a":1}"#);
    assert_eq!(doc.header("content-type"), Some("application/json"));

    // Simulator: a run plots its histograms and staleness curve; the same seed draws the same.
    session.click(&session.wait_for("#tab-button-sim"));
    session.fill(&session.wait_for("#sim-ops"), "1000");
    session.click(&session.wait_for("#sim-run"));
    session.wait_text("#sim-status", "done", |t| t.starts_with("done"));
    assert!(points(&session, "#sim-get-chart") > 0, "get histogram bars");
    assert!(points(&session, "#sim-put-chart") > 0, "put histogram bars");
    assert!(
        points(&session, "#sim-staleness-chart") > 0,
        "staleness curve points"
    );
    let circles = session.find_all("#sim-staleness-chart circle.point").len();
    assert!(circles > 0, "data points drawn in the SVG");
    let picture = markup(&session, "#sim-staleness-chart") + &markup(&session, "#sim-get-chart");
    session.screenshot(&shots.join("console-simulator.png"));
    // Run again: the status line changes only when the second answer is drawn.
    session.eval(
        "document.getElementById('sim-status').textContent = 'again';",
        vec![],
    );
    session.click(&session.wait_for("#sim-run"));
    session.wait_text("#sim-status", "done again", |t| t.starts_with("done"));
    let again = markup(&session, "#sim-staleness-chart") + &markup(&session, "#sim-get-chart");
    assert_eq!(picture, again, "the same seed gives the same picture");

    drop(session);
    drop(driver);
    eprintln!("screenshots in {}", shots.display());
}
