//! The versioned, authenticated handshake that opens every connection.
//!
//! ```text
//! connecting side                         accepting side
//!   Hello { version, cluster, role, n1 }  ─▶  checks version and cluster
//!                                         ◀─  Challenge { version, node, n2 }
//!   Proof { HMAC(secret, "dynamo-proof" ‖ transcript) }  ─▶  checks it
//!                                         ◀─  Welcome { HMAC(secret, "dynamo-welcome" ‖ transcript) }
//! ```
//!
//! The transcript binds the version, the cluster, the connecting side's role (and so its node id),
//! the accepting node's id and both nonces, so a proof cannot be replayed on another connection.
//! The connecting side proves the secret first; the accepting side answers a wrong proof with
//! [`Handshake::Error`] and closes, and only a side that proved the secret receives a MAC. Both sides
//! check the other's MAC: peers and clients alike must hold the cluster secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{excerpt, refuse, Conn, FrameError, Handshake, Role, PROTOCOL_VERSION};
use crate::types::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The other side speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the other side {theirs}")]
    Version {
        /// Ours.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// The other side belongs to another cluster.
    #[error("cluster mismatch: we are {ours:?}, the other side wants {theirs:?}")]
    Cluster {
        /// Ours.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// The other side does not hold the cluster secret.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The other side refused us, saying why.
    #[error("refused by the other side: {0}")]
    Refused(String),
    /// The other side sent a frame that does not belong in a handshake.
    #[error("unexpected frame during the handshake: {0}")]
    Unexpected(String),
    /// The address answered with another node than the one expected.
    #[error("expected node {expected}, but node {found} answered")]
    WrongNode {
        /// The node we meant to reach.
        expected: NodeId,
        /// The node that answered.
        found: NodeId,
    },
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// What both sides need to know.
#[derive(Clone)]
pub struct Credentials {
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's shared secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cluster", &self.cluster)
            .field("secret", &"<hidden>")
            .finish()
    }
}

fn transcript(
    label: &[u8],
    cluster: &str,
    role: &Role,
    node: NodeId,
    n1: &[u8; 32],
    n2: &[u8; 32],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(128);
    t.extend_from_slice(label);
    t.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    t.extend_from_slice(&(cluster.len() as u64).to_be_bytes());
    t.extend_from_slice(cluster.as_bytes());
    // Encoding a role cannot fail (plain data); an empty encoding would only weaken the binding.
    let role_bytes = rmp_serde::to_vec(role).unwrap_or_default();
    t.extend_from_slice(&(role_bytes.len() as u64).to_be_bytes());
    t.extend_from_slice(&role_bytes);
    t.extend_from_slice(&node.to_be_bytes());
    t.extend_from_slice(n1);
    t.extend_from_slice(n2);
    t
}

fn hmac(secret: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac
}

fn sign(secret: &[u8], data: &[u8]) -> [u8; 32] {
    hmac(secret, data).finalize().into_bytes().into()
}

fn verify(secret: &[u8], data: &[u8], tag: &[u8; 32]) -> bool {
    hmac(secret, data).verify_slice(tag).is_ok()
}

fn describe(frame: &Handshake) -> String {
    let kind = match frame {
        Handshake::Hello { .. } => "Hello",
        Handshake::Challenge { .. } => "Challenge",
        Handshake::Proof { .. } => "Proof",
        Handshake::Welcome { .. } => "Welcome",
        Handshake::Error { .. } => "Error",
    };
    format!("a {kind} frame")
}

/// The accepting side: runs the handshake on a fresh connection and returns the other side's
/// role. On failure the other side has been sent [`Handshake::Error`] and the connection is closed.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    node: NodeId,
) -> Result<Role, HandshakeError> {
    let result = accept_inner(conn, creds, node).await;
    if let Err(e) = &result {
        if !matches!(e, HandshakeError::Frame(FrameError::Closed)) {
            refuse::<Handshake, _>(conn, &e.to_string()).await;
        }
    }
    result
}

async fn accept_inner<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    node: NodeId,
) -> Result<Role, HandshakeError> {
    let (role, n1) = match conn.recv::<Handshake>().await? {
        Handshake::Hello {
            version,
            cluster,
            role,
            nonce,
            ..
        } => {
            if version != PROTOCOL_VERSION {
                return Err(HandshakeError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            if cluster != creds.cluster {
                return Err(HandshakeError::Cluster {
                    ours: creds.cluster.clone(),
                    theirs: excerpt(&cluster),
                });
            }

            (role, nonce)
        }
        other => return Err(HandshakeError::Unexpected(describe(&other))),
    };
    let n2: [u8; 32] = rand::random();
    conn.send(&Handshake::Challenge {
        version: PROTOCOL_VERSION,
        node,
        nonce: n2,
    })
    .await?;
    match conn.recv::<Handshake>().await? {
        Handshake::Proof { mac, .. } => {
            let t = transcript(b"dynamo-proof", &creds.cluster, &role, node, &n1, &n2);
            if !verify(&creds.secret, &t, &mac) {
                return Err(HandshakeError::Auth("wrong cluster secret".to_string()));
            }
        }
        Handshake::Error { reason } => return Err(HandshakeError::Refused(excerpt(&reason))),
        other => return Err(HandshakeError::Unexpected(describe(&other))),
    }
    let t = transcript(b"dynamo-welcome", &creds.cluster, &role, node, &n1, &n2);
    conn.send(&Handshake::Welcome {
        mac: sign(&creds.secret, &t),
        key_exchange: Vec::new(),
    })
    .await?;
    Ok(role)
}

/// The connecting side: runs the handshake as `role` and returns the accepting node's id.
/// `expect` checks that the address belongs to the node we meant to reach.
pub async fn connect<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    role: Role,
    expect: Option<NodeId>,
) -> Result<NodeId, HandshakeError> {
    let result = connect_inner(conn, creds, role, expect).await;
    if let Err(e) = &result {
        if !matches!(
            e,
            HandshakeError::Frame(FrameError::Closed) | HandshakeError::Refused(_)
        ) {
            refuse::<Handshake, _>(conn, &e.to_string()).await;
        }
    }
    result
}

async fn connect_inner<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    role: Role,
    expect: Option<NodeId>,
) -> Result<NodeId, HandshakeError> {
    let n1: [u8; 32] = rand::random();
    conn.send(&Handshake::Hello {
        version: PROTOCOL_VERSION,
        cluster: creds.cluster.clone(),
        role: role.clone(),
        encrypt: false,
        nonce: n1,
    })
    .await?;
    let (node, n2) = match conn.recv::<Handshake>().await? {
        Handshake::Challenge {
            version,
            node,
            nonce,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(HandshakeError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            (node, nonce)
        }
        Handshake::Error { reason } => return Err(HandshakeError::Refused(excerpt(&reason))),
        other => return Err(HandshakeError::Unexpected(describe(&other))),
    };
    if let Some(expected) = expect {
        if expected != node {
            return Err(HandshakeError::WrongNode {
                expected,
                found: node,
            });
        }
    }
    let t = transcript(b"dynamo-proof", &creds.cluster, &role, node, &n1, &n2);
    conn.send(&Handshake::Proof {
        mac: sign(&creds.secret, &t),
        key_exchange: Vec::new(),
    })
    .await?;
    match conn.recv::<Handshake>().await? {
        Handshake::Welcome { mac, .. } => {
            let t = transcript(b"dynamo-welcome", &creds.cluster, &role, node, &n1, &n2);
            if !verify(&creds.secret, &t, &mac) {
                return Err(HandshakeError::Auth(format!(
                    "node {node} does not prove the cluster secret"
                )));
            }
            Ok(node)
        }
        Handshake::Error { reason } => Err(HandshakeError::Refused(excerpt(&reason))),
        other => Err(HandshakeError::Unexpected(describe(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::frame::handshake_conn;

    fn creds(secret: &str) -> Credentials {
        Credentials {
            cluster: "c".into(),
            secret: secret.as_bytes().to_vec(),
        }
    }

    async fn run(
        client: Credentials,
        server: Credentials,
    ) -> (Result<NodeId, HandshakeError>, Result<Role, HandshakeError>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut ca = handshake_conn(a);
        let mut cb = handshake_conn(b);
        let role = Role::Peer {
            id: 1,
            address: "x".into(),
        };
        tokio::join!(
            connect(&mut ca, &client, role, Some(7)),
            accept(&mut cb, &server, 7)
        )
    }

    #[tokio::test]
    async fn same_secret_succeeds() {
        let (c, s) = run(creds("s"), creds("s")).await;
        assert_eq!(c.unwrap(), 7);
        assert!(matches!(s.unwrap(), Role::Peer { id: 1, .. }));
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_by_acceptor() {
        let (c, s) = run(creds("wrong"), creds("s")).await;
        assert!(matches!(s, Err(HandshakeError::Auth(_))), "{s:?}");
        let e = c.unwrap_err();
        assert!(e.to_string().contains("wrong cluster secret"), "{e}");
    }

    #[tokio::test]
    async fn other_cluster_is_refused() {
        let mut other = creds("s");
        other.cluster = "d".into();
        let (c, s) = run(other, creds("s")).await;
        assert!(matches!(s, Err(HandshakeError::Cluster { .. })));
        assert!(c.unwrap_err().to_string().contains("cluster mismatch"));
    }
}
