//! `GET`, `PUT` and `DELETE /kv/{key}`: the paper's get and put over HTTP, as Riak does them.
//!
//! - The key is the path segment, percent-decoded to bytes (any bytes: `%00`-`%FF`; a `/` in a
//!   key is `%2F`).
//! - A get answers `200` with the value (its stored `Content-Type`, else
//!   `application/octet-stream`) when there is one version, `300 Multiple Choices` with a JSON
//!   body listing every sibling when there are several (`{"context", "siblings": [{"value"
//!   (base64), "content_type", "text" (the value, when it is UTF-8 without control characters
//!   other than tab and line breaks)}]}`), and `404` when the key
//!   has no live version. Every answer carries the context in `X-Dynamo-Context` (base64; a 404
//!   too: a put with it supersedes the tombstone it saw).
//! - A put stores the body with its `Content-Type`, superseding what the `X-Dynamo-Context` it
//!   carries names (none: a sibling of whatever is stored), and answers `204` with the new
//!   version's context.
//! - A delete must carry a context: without one it would supersede nothing, so it is refused
//!   with `428 Precondition Required`.
//! - Query parameters `r`, `w`, `timeout` (ms) and `strict` override the node's defaults; an
//!   unknown parameter is a `400`.
//!
//! Failures, mapped from the TCP protocol's errors: `400` invalid options (a `timeout` past the
//! node's maximum among them), context or key escape (a `%` not followed by two hex digits), `413` a
//! value, context or sibling set over a limit, `414` a key over the limit, `503` too many
//! replicas failed or were unreachable (the body says how many answered of how many required),
//! `504` the timeout passed first, `500` the node's storage failed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{json, ApiError, HttpState};
use crate::message::{ClientError, ClientOptions, ClientReply, ClientRequest};

/// The header carrying a context, base64 (standard alphabet, padded).
pub const CONTEXT_HEADER: &str = "x-dynamo-context";
/// The header listing the replicas that answered, comma separated.
pub const REPLICAS_HEADER: &str = "x-dynamo-replicas";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Per-request overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    r: Option<usize>,
    w: Option<usize>,
    timeout: Option<u64>,
    strict: Option<bool>,
}

impl Params {
    fn options(&self) -> ClientOptions {
        ClientOptions {
            r: self.r,
            w: self.w,
            timeout: self.timeout,
            strict: self.strict,
        }
    }
}

/// The body of a `300 Multiple Choices`.
#[derive(Debug, Serialize)]
struct Siblings {
    /// The context, base64.
    context: String,
    siblings: Vec<Sibling>,
}

impl Siblings {
    fn new(values: Vec<Vec<u8>>, content_types: Vec<Option<String>>, context: &[u8]) -> Self {
        let siblings = values
            .into_iter()
            .zip(content_types)
            .map(|(value, content_type)| Sibling {
                value: B64.encode(&value),
                content_type,
                text: as_text(value),
            })
            .collect();
        Siblings {
            context: B64.encode(context),
            siblings,
        }
    }
}

#[derive(Debug, Serialize)]
struct Sibling {
    /// The value, base64.
    value: String,
    content_type: Option<String>,
    /// The value as text, when it is printable UTF-8 (see [`as_text`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// A value as text: when it is UTF-8 without control characters other than tab, line feed and
/// carriage return. JSON escapes every other control character in six bytes, so a value of them
/// would grow six times in the answer (beside its base64): with a key's 4 MiB of siblings, one
/// answer of 30 MiB. Printable text grows at most twice (`"` and `\` take two bytes).
fn as_text(value: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(value).ok()?;
    let printable = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    text.chars().all(printable).then_some(text)
}

/// The key of the request: the path segment after `/kv/`, percent-decoded to bytes. (axum's
/// path extractors decode to UTF-8 strings, and keys are any bytes.)
/// A `%` not followed by two hex digits is refused rather than kept as itself (what
/// `percent_decode` does): kept, `%zz` and `%25zz` would name one key.
fn key(uri: &Uri) -> Result<Vec<u8>, ApiError> {
    uri.path()
        .strip_prefix("/kv/")
        .filter(|raw| !raw.is_empty() && !raw.contains('/'))
        .and_then(strict_percent_decode)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_key",
                "the path must be /kv/{key}, the key percent-encoded",
            )
        })
}

/// `raw` percent-decoded, or `None` when a `%` does not start an escape of two hex digits.
fn strict_percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let digit = |at: usize| bytes.get(at).and_then(|&d| char::from(d).to_digit(16));
            // Both digits below 16, so the byte fits.
            let byte = digit(i + 1)? * 16 + digit(i + 2)?;
            key.push(u8::try_from(byte).ok()?);
            i += 3;
        } else {
            key.push(b);
            i += 1;
        }
    }
    Some(key)
}

fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    query.map(|Query(p)| p).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_options",
            format!("query parameters (r, w, timeout in ms, strict): {e}"),
        )
    })
}

/// The context a request carries (empty: none). Several context headers are refused: a write
/// with only the first would supersede less than the client meant.
fn context(headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    let mut all = headers.get_all(CONTEXT_HEADER).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_context",
            format!("several {CONTEXT_HEADER} headers: send the context of one get"),
        ));
    }
    // An empty header is no context.
    B64.decode(value.as_bytes().trim_ascii())
        .map(|c| (!c.is_empty()).then_some(c))
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_context",
                format!("{CONTEXT_HEADER} is not base64: {e}"),
            )
        })
}

fn header_value(s: &str) -> HeaderValue {
    // Base64 and digits are always valid header values.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The context and replica headers of an answer.
fn version_headers(context: &[u8], replicas: &[u64]) -> [(HeaderName, HeaderValue); 2] {
    let replicas: Vec<String> = replicas.iter().map(u64::to_string).collect();
    [
        (
            HeaderName::from_static(CONTEXT_HEADER),
            header_value(&B64.encode(context)),
        ),
        (
            HeaderName::from_static(REPLICAS_HEADER),
            header_value(&replicas.join(",")),
        ),
    ]
}

/// A failed request's status and body.
pub(crate) fn failure(e: ClientError) -> ApiError {
    let message = e.to_string();
    match e {
        ClientError::QuorumFailed {
            acknowledged,
            required,
        } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "quorum_failed", message)
            .with("acknowledged", acknowledged)
            .with("required", required)
            .with("shortfall", required.saturating_sub(acknowledged)),
        ClientError::Timeout {
            acknowledged,
            required,
        } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
            .with("acknowledged", acknowledged)
            .with("required", required)
            .with("shortfall", required.saturating_sub(acknowledged)),
        ClientError::InvalidOptions(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_options", message)
        }
        ClientError::InvalidContext(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_context", message)
        }
        ClientError::ValueTooLarge { size, limit } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "value_too_large", message)
                .with("size", size)
                .with("limit", limit)
        }
        // A timeout past the node's maximum is an option out of range, not a payload.
        ClientError::LimitExceeded { what, size, limit } if what == "timeout ms" => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_options", message)
                .with("what", what)
                .with("size", size)
                .with("limit", limit)
        }
        ClientError::LimitExceeded { what, size, limit } => {
            let status = if what == "key bytes" {
                StatusCode::URI_TOO_LONG
            } else {
                StatusCode::PAYLOAD_TOO_LARGE
            };
            ApiError::new(status, "limit_exceeded", message)
                .with("what", what)
                .with("size", size)
                .with("limit", limit)
        }
        ClientError::Storage(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", message)
        }
        ClientError::Unavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }
}

fn unexpected(reply: &ClientReply) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("unexpected answer from the node: {reply:?}"),
    )
}

/// `GET /kv/{key}`.
pub(crate) async fn get(
    State(state): State<HttpState>,
    uri: Uri,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = key(&uri)?;
    let params = params(query)?;
    let request = ClientRequest::Get {
        key,
        options: params.options(),
    };
    let reply = state.request(request, params.timeout).await?;
    let ClientReply::Got {
        mut values,
        context,
        replicas,
        mut content_types,
    } = reply
    else {
        return Err(match reply {
            ClientReply::Failed(e) => failure(e),
            other => unexpected(&other),
        });
    };
    let headers = version_headers(&context, &replicas);
    match values.len() {
        0 => {
            let body = ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no live version of the key",
            );
            Ok((headers, body).into_response())
        }
        1 => {
            let value = values.pop().unwrap_or_default();
            let content_type = content_types
                .pop()
                .flatten()
                .and_then(|t| HeaderValue::from_str(&t).ok())
                .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
            // Served with the type its writer gave, from the console's origin: never sniffed,
            // and sandboxed should a browser render it (a stored text/html would otherwise run
            // its scripts with the console's origin and its token).
            Ok((
                StatusCode::OK,
                headers,
                [
                    (header::CONTENT_TYPE, content_type),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static("sandbox; default-src 'none'"),
                    ),
                ],
                value,
            )
                .into_response())
        }
        _ => {
            content_types.resize(values.len(), None);
            let body = Siblings::new(values, content_types, &context);
            Ok((headers, json(StatusCode::MULTIPLE_CHOICES, &body)).into_response())
        }
    }
}

/// `PUT /kv/{key}`. The body is read only once the request holds its share of the node's
/// request budget (its `Content-Length`, or the largest value the node takes when the client does
/// not say), so that connections waiting for the budget hold no values; and then it must arrive
/// within the node's read timeout, so that a slow client cannot sit on that share.
pub(crate) async fn put(
    State(state): State<HttpState>,
    uri: Uri,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    body: Request,
) -> Result<Response, ApiError> {
    let key = key(&uri)?;
    let params = params(query)?;
    let context = context(&headers)?.unwrap_or_default();
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_content_type",
                        "Content-Type is not visible ASCII",
                    )
                })?
                .to_string(),
        ),
    };
    let limit = state.inner.max_value_size;
    let too_large = |text: String| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "value_too_large", text).with("limit", limit)
    };
    let len = match super::content_length(&headers)? {
        Some(n) if n > limit as u64 => {
            return Err(
                too_large(format!("value of {n} bytes exceeds the limit of {limit}"))
                    .with("size", n),
            )
        }
        Some(n) => n as usize,
        None => limit,
    };
    // The wait for the budget counts against the put's timeout; the body's upload does not.
    let since = tokio::time::Instant::now();
    let admitted = state
        .admit(ClientRequest::weight_of_put(&key, len, &context))
        .await?;
    let waited = since.elapsed();
    let value = super::read_body(&state, body, too_large).await?;
    let request = ClientRequest::Put {
        key,
        // Moved, not copied: a copy left the body alive beside it for the whole wait for the
        // quorum, twice the bytes the request budget counted.
        value: Vec::from(value),
        context,
        options: params.options(),
        content_type,
    };
    stored(
        state
            .request_admitted(request, admitted, params.timeout, waited)
            .await?,
    )
}

/// `DELETE /kv/{key}`.
pub(crate) async fn delete(
    State(state): State<HttpState>,
    uri: Uri,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = key(&uri)?;
    let params = params(query)?;
    let Some(context) = context(&headers)? else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "context_required",
            "a delete supersedes the versions its context names: get the key first and send its \
             X-Dynamo-Context (without one the delete would remove nothing)",
        ));
    };
    let request = ClientRequest::Delete {
        key,
        context,
        options: params.options(),
    };
    stored(state.request(request, params.timeout).await?)
}

fn stored(reply: ClientReply) -> Result<Response, ApiError> {
    match reply {
        ClientReply::Stored { context, replicas } => {
            Ok((StatusCode::NO_CONTENT, version_headers(&context, &replicas)).into_response())
        }
        ClientReply::Failed(e) => Err(failure(e)),
        other => Err(unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_of_control_characters_are_answered_in_base64_alone() {
        let values = vec![vec![1u8; 100 << 10], vec![0u8; 100 << 10]];
        let size: usize = values.iter().map(Vec::len).sum();
        let body = Siblings::new(values, vec![None, None], b"ctx");
        let answer = serde_json::to_vec_pretty(&body).expect("encodes");
        assert!(body.siblings.iter().all(|s| s.text.is_none()));
        assert!(
            answer.len() < size * 3 / 2,
            "{} bytes for {size}",
            answer.len()
        );
    }

    #[test]
    fn printable_siblings_carry_their_text() {
        let values = vec![
            b"milk\tand \"eggs\"\n".to_vec(),
            "caf\u{e9}".as_bytes().to_vec(),
        ];
        let body = Siblings::new(values, vec![None, None], b"ctx");
        let texts: Vec<_> = body.siblings.iter().map(|s| s.text.as_deref()).collect();
        assert_eq!(texts, [Some("milk\tand \"eggs\"\n"), Some("caf\u{e9}")]);
        assert_eq!(as_text(vec![0xff, 0xfe]), None);
    }
}
