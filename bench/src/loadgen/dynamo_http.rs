//! This project over its HTTP API (`/kv/{key}`, the context in `X-Dynamo-Context`, a bearer
//! token), on the same minimal keep-alive client as etcd's gateway.

use super::{Backend, Connection, LoadError, Read};
use crate::http1::Http1;

/// A dynamo cluster's HTTP endpoints and its bearer token (`dynamo token`).
#[derive(Debug, Clone)]
pub struct DynamoHttp {
    nodes: Vec<String>,
    token: String,
}

impl DynamoHttp {
    /// The HTTP API at `nodes` (`host:port` each), authorized by `token`.
    pub fn new(nodes: Vec<String>, token: &str) -> Self {
        DynamoHttp {
            nodes,
            token: token.to_string(),
        }
    }
}

/// One HTTP connection to one node.
pub struct DynamoHttpConn {
    http: Http1,
    auth: String,
}

impl Backend for DynamoHttp {
    type Conn = DynamoHttpConn;

    fn name(&self) -> &str {
        "dynamo-http"
    }

    async fn connect(&self, index: usize) -> Result<DynamoHttpConn, LoadError> {
        let host = self
            .nodes
            .get(index % self.nodes.len().max(1))
            .cloned()
            .unwrap_or_default();
        Ok(DynamoHttpConn {
            http: Http1::connect(&host).await?,
            auth: format!("Bearer {}", self.token),
        })
    }
}

/// `/kv/` and the key, percent-encoded byte by byte outside the unreserved characters.
fn kv_path(key: &[u8]) -> String {
    let mut path = String::with_capacity(4 + key.len() * 3);
    path.push_str("/kv/");
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

impl Connection for DynamoHttpConn {
    async fn get(&mut self, key: &[u8]) -> Result<Read, LoadError> {
        let headers = [("Authorization", self.auth.as_str())];
        let r = self
            .http
            .request("GET", &kv_path(key), &headers, &[])
            .await?;
        let token = r
            .header("x-dynamo-context")
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        match r.status {
            200 => Ok(Read {
                value: Some(r.body),
                token,
            }),
            404 => Ok(Read { value: None, token }),
            // Siblings: the JSON body carries the context and every value.
            300 => {
                let json: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|e| LoadError::Protocol(e.to_string()))?;
                let context = json["context"].as_str().unwrap_or_default();
                let value = json["siblings"][0]["value"]
                    .as_str()
                    .and_then(super::etcd::unbase64);
                Ok(Read {
                    value,
                    token: context.as_bytes().to_vec(),
                })
            }
            status => Err(LoadError::Server(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&r.body)
            ))),
        }
    }

    async fn put(&mut self, key: &[u8], value: &[u8], token: &[u8]) -> Result<(), LoadError> {
        let context = String::from_utf8_lossy(token);
        let mut headers = vec![("Authorization", self.auth.as_str())];
        if !token.is_empty() {
            headers.push(("X-Dynamo-Context", context.as_ref()));
        }
        let r = self
            .http
            .request("PUT", &kv_path(key), &headers, value)
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            status => Err(LoadError::Server(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&r.body)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kv_path;

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(kv_path(b"user-1"), "/kv/user-1");
        assert_eq!(kv_path(b"a/b c"), "/kv/a%2Fb%20c");
        assert_eq!(kv_path(&[0, 255]), "/kv/%00%FF");
    }
}
