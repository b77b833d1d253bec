//! The versioned, authenticated handshake that opens every connection.
//!
//! ```text
//! connecting side                               accepting side
//!   Hello { version, cluster, role, encrypt, n1 }  ─▶  checks version, cluster, encryption
//!                                               ◀─  Challenge { version, node, n2 }
//!   Proof { HMAC(key(role), "dynamo-proof" ‖ transcript) }  ─▶  checks it
//!                                               ◀─  Welcome { HMAC(key(role), "dynamo-welcome" ‖ transcript) }
//! ```
//!
//! Clients and nodes hold different secrets. A client proves the *client secret*; a node proves
//! the *peer secret*, which clients never hold, so a client cannot pose as a node. A node's key is
//! bound to its id: `key(Peer { id }) = HMAC(peer_secret, "dynamo-node-key" ‖ id)`, and the
//! accepting node answers with the key of its own id, so each side proves who it is, not only
//! that it belongs to the cluster. Every node holds the peer secret and could derive every node's
//! key; with per-node credentials ([`super::identity`]: a key pair per node, certified by the
//! cluster's authority) a node cannot claim another's id either: both peers send their
//! certificates in `Hello` / `Challenge`, check the other's against the authority and the claimed
//! id, and mix the static-static Diffie-Hellman secret into both MAC keys (and so into the Noise
//! pre-shared key), which only the holders of the two certified private keys can compute.
//!
//! The transcript binds the version, the cluster, the connecting side's role (and so its node id),
//! the encryption choice, the accepting node's id and both nonces, so a proof cannot be replayed
//! on another connection. The connecting side proves its secret first; the accepting side answers
//! a wrong proof with [`Handshake::Error`] and closes, and only a side that proved its secret
//! receives a MAC. Both sides check the other's MAC.
//!
//! With encryption (the default), the proof and the welcome also carry the two messages of a
//! Noise `NNpsk0` handshake (X25519, ChaCha20-Poly1305, BLAKE2s) whose pre-shared key is
//! `HMAC(key(role), "dynamo-psk" ‖ transcript)`: fresh ephemeral keys on both sides (forward
//! secrecy), and a key exchange that only a side holding the role's key can complete, bound to
//! this connection's nonces. Every frame after the handshake is then encrypted and authenticated
//! (see [`super::frame`]). Without encryption (`--no-encryption`, for benchmarks) frames after
//! the handshake are neither: anyone on the path can read and change them.

use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{excerpt, refuse, Conn, FrameError, Handshake, Role, PROTOCOL_VERSION};
use super::identity::NodeIdentity;
use crate::types::NodeId;

mod keys;

use keys::{key_error, noise, proof_key, sign, static_secret, verify, welcome_key, Transcript};

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
    /// The other side does not hold the secret of its role.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The connecting side asked for encryption and the node does not use it, or the other way.
    #[error("encryption mismatch: this node {}", if *.ours { "requires encryption" } else { "runs without encryption" })]
    Encryption {
        /// Whether the accepting node encrypts.
        ours: bool,
    },
    /// The other side refused us, saying why.
    #[error("refused by the other side: {0}")]
    Refused(String),
    /// The node takes no more connections of the other side's role (its cap is reached): the
    /// other side proved who it is and may try another node, or again later.
    #[error("the node takes no more connections: {0}")]
    Busy(String),
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
    /// The key exchange failed.
    #[error("key exchange failed: {0}")]
    KeyExchange(String),
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads the next handshake frame (see [`decode_handshake`]).
async fn recv_handshake<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
) -> Result<Handshake, HandshakeError> {
    let body = conn.recv_body().await?;
    decode_handshake(&body)
}

/// Decodes a handshake frame's body.
///
/// A hello or challenge of another protocol version is refused as [`HandshakeError::Version`]
/// even when the rest of it does not decode: the one thing every version keeps is where the
/// version is, the first field of `{"Hello": [version, …]}` (or `{"Challenge": [version, …]}`),
/// so that a later version may change every other field and still be told apart from garbage.
pub fn decode_handshake(body: &[u8]) -> Result<Handshake, HandshakeError> {
    match super::frame::decode::<Handshake>(body) {
        Ok(frame) => Ok(frame),
        Err(e) => match probe_version(body) {
            Some(theirs) if theirs != u64::from(PROTOCOL_VERSION) => Err(HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: u32::try_from(theirs).unwrap_or(u32::MAX),
            }),
            _ => Err(e.into()),
        },
    }
}

/// The version a hello or challenge names, if `body` is one as far as its version.
fn probe_version(body: &[u8]) -> Option<u64> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// The version field, and nothing else of the frame.
    struct Version(u64);

    impl<'de> serde::Deserialize<'de> for Version {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Version;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a handshake frame starting with its version")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Version, A::Error> {
                    let version: u64 = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Version(version))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Version, A::Error> {
                    let mut version = None;
                    while let Some(key) = map.next_key::<String>()? {
                        if key == "version" {
                            version = Some(map.next_value::<u64>()?);
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    version
                        .map(Version)
                        .ok_or_else(|| serde::de::Error::missing_field("version"))
                }
            }
            d.deserialize_any(V)
        }
    }

    #[derive(serde::Deserialize)]
    enum Probe {
        Hello(Version),
        Challenge(Version),
    }

    match crate::types::decode_msgpack::<Probe>(body).ok()? {
        Probe::Hello(Version(v)) | Probe::Challenge(Version(v)) => Some(v),
    }
}

/// What a connecting side holds: the cluster's name and the secret of its role (the client
/// secret for a client, the peer secret for a node).
#[derive(Clone)]
pub struct Credentials {
    /// The cluster's name.
    pub cluster: String,
    /// The secret of the role it connects as.
    pub secret: Vec<u8>,
    /// A node's own certified key pair (per-node credentials; `None` for clients).
    pub identity: Option<NodeIdentity>,
    /// The cluster authority's public key: when set, the node it connects to must present a
    /// certificate of its id.
    pub authority: Option<[u8; 32]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cluster", &self.cluster)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// The largest frames an accepting node takes once a connection is established, by the
/// connecting side's role. The node says the one for the role in its challenge, and the
/// connecting side sends no larger frame (see [`connect_with_limit`]): a node configured with a
/// larger limit than its peer's (one raised before the others) never sends a frame the peer
/// would close the connection on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// From a node.
    pub peer: usize,
    /// From a client.
    pub client: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            peer: super::frame::DEFAULT_MAX_FRAME,
            client: super::frame::DEFAULT_MAX_CLIENT_FRAME,
        }
    }
}

/// What an accepting node holds: both secrets.
#[derive(Clone)]
pub struct NodeSecrets {
    /// The cluster's name.
    pub cluster: String,
    /// The secret nodes prove to each other.
    pub peer_secret: Vec<u8>,
    /// The secret clients prove.
    pub client_secret: Vec<u8>,
    /// This node's certified key pair (per-node credentials).
    pub identity: Option<NodeIdentity>,
    /// The cluster authority's public key: when set, a connecting node must present a
    /// certificate of the id it claims and prove it holds the certified key.
    pub authority: Option<[u8; 32]>,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecrets")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
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
/// role and whether it asked for encryption (`encrypt` says whether this node requires it). On
/// failure the other side has been sent [`Handshake::Error`] and the connection is closed.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    secrets: &NodeSecrets,
    node: NodeId,
    encrypt: bool,
    limits: FrameLimits,
) -> Result<Role, HandshakeError> {
    accept_admitting(conn, secrets, node, encrypt, limits, |_| Ok(()))
        .await
        .map(|(role, ())| role)
}

/// [`accept`], with `admit` deciding, once the other side has proved its role and before the
/// node welcomes it, whether the node takes the connection: its `Err` (a reason) refuses it in
/// the handshake ([`HandshakeError::Busy`]), so that the other side knows that nothing it sends
/// reaches the node. Its `Ok` (a slot held for the connection, say) is returned with the role.
pub async fn accept_admitting<T: AsyncRead + AsyncWrite + Unpin, A>(
    conn: &mut Conn<T>,
    secrets: &NodeSecrets,
    node: NodeId,
    encrypt: bool,
    limits: FrameLimits,
    admit: impl FnOnce(&Role) -> Result<A, String>,
) -> Result<(Role, A), HandshakeError> {
    let result = accept_inner(conn, secrets, node, encrypt, limits, admit).await;
    if let Err(e) = &result {
        if !matches!(e, HandshakeError::Frame(FrameError::Closed)) {
            refuse::<Handshake, _>(conn, &e.to_string()).await;
        }
    }
    result
}

async fn accept_inner<T: AsyncRead + AsyncWrite + Unpin, A>(
    conn: &mut Conn<T>,
    secrets: &NodeSecrets,
    node: NodeId,
    encrypt: bool,
    limits: FrameLimits,
    admit: impl FnOnce(&Role) -> Result<A, String>,
) -> Result<(Role, A), HandshakeError> {
    let (role, n1, their_identity) = match recv_handshake(conn).await? {
        Handshake::Hello {
            version,
            cluster,
            role,
            encrypt: theirs,
            nonce,
            identity,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(HandshakeError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            if cluster != secrets.cluster {
                return Err(HandshakeError::Cluster {
                    ours: secrets.cluster.clone(),
                    theirs: excerpt(&cluster),
                });
            }
            if theirs != encrypt {
                return Err(HandshakeError::Encryption { ours: encrypt });
            }
            (role, nonce, identity)
        }
        other => return Err(HandshakeError::Unexpected(describe(&other))),
    };
    // Per-node credentials: a peer must show the authority's certificate of the id it claims.
    let shared = match &role {
        Role::Peer { id, .. } => static_secret(
            secrets.authority.as_ref(),
            secrets.identity.as_ref(),
            their_identity.as_ref(),
            &secrets.cluster,
            *id,
        )?,
        Role::Client => None,
    };
    let n2: [u8; 32] = rand::random();
    let max_frame = match role {
        Role::Peer { .. } => limits.peer,
        Role::Client => limits.client,
    } as u64;
    conn.send(&Handshake::Challenge {
        version: PROTOCOL_VERSION,
        node,
        nonce: n2,
        identity: match role {
            Role::Peer { .. } => secrets.identity.as_ref().map(|i| i.certificate.clone()),
            Role::Client => None,
        },
        max_frame,
    })
    .await?;
    let secret = match role {
        Role::Client => &secrets.client_secret,
        Role::Peer { .. } => &secrets.peer_secret,
    };
    let t = Transcript {
        cluster: &secrets.cluster,
        role: &role,
        encrypt,
        node,
        n1,
        n2,
        max_frame,
    };
    let key = proof_key(secret, &role, shared.as_ref());
    let theirs = match recv_handshake(conn).await? {
        Handshake::Proof { mac, key_exchange } => {
            if !verify(&key, &t.bytes(b"dynamo-proof"), &mac) {
                return Err(HandshakeError::Auth(match role {
                    Role::Client => "wrong client secret".to_string(),
                    Role::Peer { id, .. } => {
                        format!("wrong peer secret, or not node {id}")
                    }
                }));
            }
            key_exchange
        }
        Handshake::Error { reason } => return Err(HandshakeError::Refused(excerpt(&reason))),
        other => return Err(HandshakeError::Unexpected(describe(&other))),
    };
    let admitted = admit(&role).map_err(HandshakeError::Busy)?;
    let mut ours = Vec::new();
    let mut transport = None;
    if encrypt {
        let mut state = noise(&sign(&key, &t.bytes(b"dynamo-psk")), false)?;
        let mut scratch = [0u8; 1024];
        state
            .read_message(&theirs, &mut scratch)
            .map_err(key_error)?;
        let mut message = [0u8; 1024];
        let n = state.write_message(&[], &mut message).map_err(key_error)?;
        ours = message[..n].to_vec();
        transport = Some(state.into_transport_mode().map_err(key_error)?);
    }
    conn.send(&Handshake::Welcome {
        mac: sign(
            &welcome_key(secret, &role, node, shared.as_ref()),
            &t.bytes(b"dynamo-welcome"),
        ),
        key_exchange: ours,
    })
    .await?;
    if let Some(transport) = transport {
        conn.encrypt_with(transport);
    }
    Ok((role, admitted))
}

/// The connecting side: runs the handshake as `role` and returns the accepting node's id.
/// `expect` checks that the address belongs to the node we meant to reach; `encrypt` asks for an
/// encrypted connection (the node refuses a choice other than its own).
pub async fn connect<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    role: Role,
    expect: Option<NodeId>,
    encrypt: bool,
) -> Result<NodeId, HandshakeError> {
    connect_with_limit(conn, creds, role, expect, encrypt)
        .await
        .map(|(node, _)| node)
}

/// [`connect`], also returning the largest frame the accepting node takes from this connection
/// once established, if it said one (see [`FrameLimits`]).
pub async fn connect_with_limit<T: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    creds: &Credentials,
    role: Role,
    expect: Option<NodeId>,
    encrypt: bool,
) -> Result<(NodeId, Option<usize>), HandshakeError> {
    let result = connect_inner(conn, creds, role, expect, encrypt).await;
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
    encrypt: bool,
) -> Result<(NodeId, Option<usize>), HandshakeError> {
    let n1: [u8; 32] = rand::random();
    conn.send(&Handshake::Hello {
        version: PROTOCOL_VERSION,
        cluster: creds.cluster.clone(),
        role: role.clone(),
        encrypt,
        nonce: n1,
        identity: match role {
            Role::Peer { .. } => creds.identity.as_ref().map(|i| i.certificate.clone()),
            Role::Client => None,
        },
    })
    .await?;
    let (node, n2, their_identity, max_frame) = match recv_handshake(conn).await? {
        Handshake::Challenge {
            version,
            node,
            nonce,
            identity,
            max_frame,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(HandshakeError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            (node, nonce, identity, max_frame)
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
    let t = Transcript {
        cluster: &creds.cluster,
        role: &role,
        encrypt,
        node,
        n1,
        n2,
        max_frame,
    };
    let shared = match &role {
        Role::Peer { .. } => static_secret(
            creds.authority.as_ref(),
            creds.identity.as_ref(),
            their_identity.as_ref(),
            &creds.cluster,
            node,
        )?,
        Role::Client => None,
    };
    let key = proof_key(&creds.secret, &role, shared.as_ref());
    let mut state = None;
    let mut ours = Vec::new();
    if encrypt {
        let mut s = noise(&sign(&key, &t.bytes(b"dynamo-psk")), true)?;
        let mut message = [0u8; 1024];
        let n = s.write_message(&[], &mut message).map_err(key_error)?;
        ours = message[..n].to_vec();
        state = Some(s);
    }
    conn.send(&Handshake::Proof {
        mac: sign(&key, &t.bytes(b"dynamo-proof")),
        key_exchange: ours,
    })
    .await?;
    match recv_handshake(conn).await? {
        Handshake::Welcome { mac, key_exchange } => {
            let key = welcome_key(&creds.secret, &role, node, shared.as_ref());
            if !verify(&key, &t.bytes(b"dynamo-welcome"), &mac) {
                return Err(HandshakeError::Auth(format!(
                    "node {node} does not prove the secret"
                )));
            }
            if let Some(mut s) = state {
                let mut scratch = [0u8; 1024];
                s.read_message(&key_exchange, &mut scratch)
                    .map_err(key_error)?;
                conn.encrypt_with(s.into_transport_mode().map_err(key_error)?);
            }
            // Bound by both MACs (the transcript): nobody on the path can lower it.
            let limit = usize::try_from(max_frame).ok().filter(|&m| m > 0);
            Ok((node, limit))
        }
        Handshake::Error { reason } => Err(HandshakeError::Refused(excerpt(&reason))),
        other => Err(HandshakeError::Unexpected(describe(&other))),
    }
}

#[cfg(test)]
mod tests;
