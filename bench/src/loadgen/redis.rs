//! Redis over RESP: a minimal client (`GET` and `SET` as arrays of bulk strings, replies parsed
//! as far as those two commands need).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Backend, Connection, LoadError, Read};

/// A Redis server (or several, used round-robin).
#[derive(Debug, Clone)]
pub struct Redis {
    addresses: Vec<String>,
}

impl Redis {
    /// Redis at `addresses` (`host:port`).
    pub fn new(addresses: Vec<String>) -> Self {
        Redis { addresses }
    }
}

/// One RESP connection.
pub struct RedisConn {
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Backend for Redis {
    type Conn = RedisConn;

    fn name(&self) -> &str {
        "redis"
    }

    async fn connect(&self, index: usize) -> Result<RedisConn, LoadError> {
        let address = self
            .addresses
            .get(index % self.addresses.len().max(1))
            .cloned()
            .unwrap_or_default();
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| LoadError::Connect {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        Ok(RedisConn {
            stream: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(64),
        })
    }
}

/// A RESP reply, as far as `GET` and `SET` need.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple,
    Bulk(Option<Vec<u8>>),
}

impl RedisConn {
    async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, LoadError> {
        self.out.clear();
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&self.out).await?;
        self.reply().await
    }

    async fn reply(&mut self) -> Result<Reply, LoadError> {
        self.line.clear();
        let n = self.stream.read_until(b'\n', &mut self.line).await?;
        if n < 3 || !self.line.ends_with(b"\r\n") {
            return Err(LoadError::Protocol("connection closed mid-reply".into()));
        }
        let body = &self.line[1..self.line.len() - 2];
        match self.line[0] {
            b'+' => Ok(Reply::Simple),
            b'-' => Err(LoadError::Server(
                String::from_utf8_lossy(body).into_owned(),
            )),
            b'$' => {
                let len: i64 = std::str::from_utf8(body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| LoadError::Protocol("bad bulk length".into()))?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut value = vec![0u8; len as usize + 2];
                self.stream.read_exact(&mut value).await?;
                value.truncate(len as usize);
                Ok(Reply::Bulk(Some(value)))
            }
            other => Err(LoadError::Protocol(format!(
                "unexpected reply type {:?}",
                other as char
            ))),
        }
    }
}

impl Connection for RedisConn {
    async fn get(&mut self, key: &[u8]) -> Result<Read, LoadError> {
        match self.command(&[b"GET", key]).await? {
            Reply::Bulk(value) => Ok(Read {
                value,
                token: Vec::new(),
            }),
            Reply::Simple => Err(LoadError::Protocol("GET answered a status".into())),
        }
    }

    async fn put(&mut self, key: &[u8], value: &[u8], _token: &[u8]) -> Result<(), LoadError> {
        match self.command(&[b"SET", key, value]).await? {
            Reply::Simple => Ok(()),
            Reply::Bulk(_) => Err(LoadError::Protocol("SET answered a bulk string".into())),
        }
    }
}
