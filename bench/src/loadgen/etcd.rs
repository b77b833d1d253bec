//! etcd over its v3 JSON gateway: `POST /v3/kv/put` and `POST /v3/kv/range` with base64 keys and
//! values, on a minimal HTTP/1.1 keep-alive client.

use super::{Backend, Connection, LoadError, Read};
use crate::http1::Http1;

/// An etcd cluster: the client URLs' `host:port` of its members.
#[derive(Debug, Clone)]
pub struct Etcd {
    members: Vec<String>,
}

impl Etcd {
    /// etcd members at `members` (`host:port` of each one's client URL).
    pub fn new(members: Vec<String>) -> Self {
        Etcd { members }
    }
}

/// One HTTP connection to one member.
pub struct EtcdConn {
    http: Http1,
}

impl Backend for Etcd {
    type Conn = EtcdConn;

    fn name(&self) -> &str {
        "etcd"
    }

    async fn connect(&self, index: usize) -> Result<EtcdConn, LoadError> {
        let host = self
            .members
            .get(index % self.members.len().max(1))
            .cloned()
            .unwrap_or_default();
        Ok(EtcdConn {
            http: Http1::connect(&host).await?,
        })
    }
}

impl EtcdConn {
    /// POSTs `body` (JSON) to `path` and returns the response's JSON.
    async fn post(&mut self, path: &str, body: &str) -> Result<serde_json::Value, LoadError> {
        let headers = [("Content-Type", "application/json")];
        let r = self
            .http
            .request("POST", path, &headers, body.as_bytes())
            .await?;
        if r.status != 200 {
            return Err(LoadError::Server(format!(
                "HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )));
        }
        serde_json::from_slice(&r.body).map_err(|e| LoadError::Protocol(e.to_string()))
    }
}

impl Connection for EtcdConn {
    async fn get(&mut self, key: &[u8]) -> Result<Read, LoadError> {
        let body = format!("{{\"key\":\"{}\"}}", base64(key));
        let answer = self.post("/v3/kv/range", &body).await?;
        let value = match answer["kvs"].get(0) {
            Some(kv) => {
                let v = kv["value"].as_str().unwrap_or("");
                Some(unbase64(v).ok_or_else(|| LoadError::Protocol("bad base64".into()))?)
            }
            None => None,
        };
        Ok(Read {
            value,
            token: Vec::new(),
        })
    }

    async fn put(&mut self, key: &[u8], value: &[u8], _token: &[u8]) -> Result<(), LoadError> {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key),
            base64(value)
        );
        self.post("/v3/kv/put", &body).await?;
        Ok(())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on a character outside the alphabet.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"f"), "Zg==");
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase64(&base64(&bytes)).as_deref(), Some(bytes.as_slice()));
        }
    }
}
