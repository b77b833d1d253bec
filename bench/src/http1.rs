//! A minimal HTTP/1.1 keep-alive client: one request in flight per connection, bodies by
//! `Content-Length` or chunked. Enough for the load generator's closed loop against etcd's JSON
//! gateway and this project's HTTP API, with no HTTP stack's own costs in the measurement.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection could not be made.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The endpoint.
        address: String,
        /// Why.
        reason: String,
    },
    /// An I/O error on the open connection.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One answer: status, headers (names lower-cased) and body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Every header, name lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive connection to `host`.
pub struct Http1 {
    host: String,
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
    line: String,
}

impl Http1 {
    /// Connects to `host` (`host:port`).
    pub async fn connect(host: &str) -> Result<Http1, HttpError> {
        let stream = TcpStream::connect(host)
            .await
            .map_err(|e| HttpError::Connect {
                address: host.to_string(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Http1 {
            host: host.to_string(),
            stream: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(512),
            line: String::new(),
        })
    }

    /// Sends one request (in one write) and reads its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        for (name, value) in headers {
            self.out
                .extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.stream.get_mut().write_all(&self.out).await?;
        self.response().await
    }

    async fn read_line(&mut self) -> Result<(), HttpError> {
        self.line.clear();
        let n = self.stream.read_line(&mut self.line).await?;
        if n == 0 {
            return Err(HttpError::Protocol("connection closed mid-response".into()));
        }
        Ok(())
    }

    /// Reads one response (Content-Length or chunked body).
    async fn response(&mut self) -> Result<Response, HttpError> {
        self.read_line().await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::Protocol(format!("bad status line {:?}", self.line)))?;
        let mut headers = Vec::new();
        let mut length = None;
        let mut chunked = false;
        loop {
            self.read_line().await?;
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
                if name == "content-length" {
                    length = value.parse::<usize>().ok();
                } else if name == "transfer-encoding" {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
                headers.push((name, value));
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                self.read_line().await?;
                let size = usize::from_str_radix(self.line.trim(), 16)
                    .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
                let mut chunk = vec![0u8; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            // No length: a response without a body (204, 304) or one the server closes; this
            // client only talks to servers that send one when there is a body.
            body.resize(length.unwrap_or(0), 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
