//! The web console: a page served by the node itself, its scripts and style embedded in the
//! binary (`console/` beside this file; nothing is fetched from elsewhere at run time).
//!
//! The assets are public (they hold no data). The page asks for the bearer token, keeps it in
//! the tab's `sessionStorage`, and sends it as `Authorization: Bearer` with every API call it
//! makes: `/stats`, `/ring`, `/kv/{key}` and `/sim`.
//!
//! - **Cluster**: members up or down, the ring as a donut of partitions coloured by their
//!   coordinator (first replica), request rates and latency percentiles over the last poll
//!   interval (from `/stats`, the same histograms as `/metrics`), hints and anti-entropy
//!   counters, and the live staleness curve: P(consistent read) against the time since the write
//!   for the configured N, R, W and its neighbours (`status.staleness`).
//! - **Keys**: get, put and delete; every sibling of a `300` is listed with the context, and a put
//!   with that context resolves them.
//! - **Simulator**: a form for `POST /sim` (the deterministic simulator), plotting its latency
//!   histograms and measured staleness curve.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An embedded asset: its bytes and content type.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("console/index.html"),
    content_type: "text/html; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_str!("console/console.css"),
    content_type: "text/css; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_str!("console/console.js"),
    content_type: "text/javascript; charset=utf-8",
};
const CHARTS: Asset = Asset {
    body: include_str!("console/charts.js"),
    content_type: "text/javascript; charset=utf-8",
};
const SIM: Asset = Asset {
    body: include_str!("console/sim.js"),
    content_type: "text/javascript; charset=utf-8",
};

fn serve(asset: &Asset) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            // The assets change with the binary only; a short cache keeps upgrades visible.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

/// `GET /` and `GET /console`: the page.
pub(crate) async fn index() -> Response {
    let mut response = serve(&INDEX);
    // Nothing but the node itself: no inline script, no other origin.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// `GET /console/console.css`.
pub(crate) async fn style() -> Response {
    serve(&STYLE)
}

/// `GET /console/console.js`: the cluster and key views, polling and auth.
pub(crate) async fn script() -> Response {
    serve(&SCRIPT)
}

/// `GET /console/charts.js`: the hand-written SVG charts.
pub(crate) async fn charts() -> Response {
    serve(&CHARTS)
}

/// `GET /console/sim.js`: the simulator form and its plots.
pub(crate) async fn sim() -> Response {
    serve(&SIM)
}

/// The console's paths that need no token.
pub(crate) const PUBLIC_PATHS: [&str; 6] = [
    "/",
    "/console",
    "/console/console.css",
    "/console/console.js",
    "/console/charts.js",
    "/console/sim.js",
];
