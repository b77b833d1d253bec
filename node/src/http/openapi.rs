//! `GET /openapi.json`: the API's OpenAPI 3 document, hand-written (`openapi.json` beside this
//! file) and embedded in the binary. A runtime test holds its paths and methods against the
//! router's.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3 document of the HTTP API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub(crate) async fn document() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}
