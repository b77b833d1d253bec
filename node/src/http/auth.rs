//! Bearer-token authentication of the HTTP API.
//!
//! The token is derived from the cluster's client secret and name:
//! `hex(HMAC-SHA256(client_secret, "dynamo-http-token" ‖ cluster))` ([`token`]; `dynamo token`
//! prints it). Whoever holds the client secret can compute it, so HTTP clients need what TCP
//! clients need, and nothing a TCP client lacks. It is not the secret itself because plain HTTP
//! shows the token to anyone on the path, and the client secret also keys TCP clients' encrypted
//! sessions: a token seen on the wire opens the HTTP API, not the TCP protocol's encryption.
//!
//! The comparison hashes both sides with SHA-256 and compares the digests in constant time, so
//! neither the token's bytes nor its length leak through timing.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{ApiError, HttpState};

/// The bearer token of a cluster's HTTP API, from its name and client secret.
pub fn token(cluster: &str, client_secret: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(client_secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(b"dynamo-http-token");
    mac.update(cluster.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The expected token, kept as its SHA-256 digest.
#[derive(Clone)]
pub(crate) struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub(crate) fn new(cluster: &str, client_secret: &[u8]) -> Self {
        Token(Sha256::digest(token(cluster, client_secret).as_bytes()).into())
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Lets a request through only with `Authorization: Bearer <token>`; 401 otherwise.
pub(crate) async fn require(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(bearer);
    let refusal = match presented {
        Some(t) if state.inner.token.matches(t) => return next.run(request).await,
        Some(_) => "wrong bearer token",
        None => "this route needs `Authorization: Bearer <token>` (the token: `dynamo token`)",
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refusal).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dynamo\""),
    );
    response
}

/// The token of an `Authorization` header's value of the `Bearer` scheme, whose name is
/// case-insensitive (RFC 9110, 11.1): `bearer <token>` is as good as `Bearer <token>`.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(b"Bearer ".len())?;
    scheme
        .eq_ignore_ascii_case(b"Bearer ")
        .then(|| token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review of the client surfaces, twenty-eighth session of issue 20: the scheme's name was
    /// matched case-sensitively, so `bearer <token>` got a 401.
    #[test]
    fn the_scheme_name_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(bearer(value.as_bytes()), Some(b"abc".as_slice()), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearerabc", ""] {
            assert_eq!(bearer(value.as_bytes()), None, "{value}");
        }
    }

    #[test]
    fn the_token_depends_on_secret_and_cluster_and_matches_only_itself() {
        let t = token("dynamo", b"secret");
        assert_eq!(t.len(), 64);
        assert_ne!(t, token("other", b"secret"));
        assert_ne!(t, token("dynamo", b"secret2"));
        let expected = Token::new("dynamo", b"secret");
        assert!(expected.matches(t.as_bytes()));
        assert!(!expected.matches(b"secret"));
        assert!(!expected.matches(&t.as_bytes()[..63]));
        assert!(!expected.matches(b""));
    }
}
