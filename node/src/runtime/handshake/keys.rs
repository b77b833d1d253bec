//! The keys and MACs of the handshake: each role's key, the transcript both MACs cover, the
//! static-static secret of per-node credentials and the Noise state of the key exchange.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::HandshakeError;
use crate::runtime::frame::{Role, PROTOCOL_VERSION};
use crate::runtime::identity::{Certificate, NodeIdentity};
use crate::types::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// The MAC key of a node id: bound to the id, derived from the peer secret.
pub(super) fn node_key(peer_secret: &[u8], id: NodeId) -> [u8; 32] {
    let mut data = b"dynamo-node-key".to_vec();
    data.extend_from_slice(&id.to_be_bytes());
    sign(peer_secret, &data)
}

/// A node key with the static-static Diffie-Hellman secret of per-node credentials mixed in
/// (only the holders of the two certified private keys can compute it).
pub(super) fn with_static(key: [u8; 32], shared: Option<&[u8; 32]>) -> Vec<u8> {
    match shared {
        Some(ss) => {
            let mut data = b"dynamo-static".to_vec();
            data.extend_from_slice(ss);
            sign(&key, &data).to_vec()
        }
        None => key.to_vec(),
    }
}

/// The key a connecting side of `role` proves, given its role's secret.
pub(super) fn proof_key(secret: &[u8], role: &Role, shared: Option<&[u8; 32]>) -> Vec<u8> {
    match role {
        Role::Client => secret.to_vec(),
        Role::Peer { id, .. } => with_static(node_key(secret, *id), shared),
    }
}

/// The key the accepting node `node` proves to a connecting side of `role`.
pub(super) fn welcome_key(
    secret: &[u8],
    role: &Role,
    node: NodeId,
    shared: Option<&[u8; 32]>,
) -> Vec<u8> {
    match role {
        Role::Client => secret.to_vec(),
        Role::Peer { .. } => with_static(node_key(secret, node), shared),
    }
}

/// Checks the other node's certificate (when this side has an authority) and returns the static
/// Diffie-Hellman secret to mix into the proofs: `None` without per-node credentials.
pub(super) fn static_secret(
    authority: Option<&[u8; 32]>,
    own: Option<&NodeIdentity>,
    theirs: Option<&Certificate>,
    cluster: &str,
    id: NodeId,
) -> Result<Option<[u8; 32]>, HandshakeError> {
    let Some(authority) = authority else {
        return Ok(None);
    };
    let own = own.ok_or_else(|| {
        HandshakeError::Auth("this node has an authority but no node certificate".into())
    })?;
    let theirs = theirs
        .ok_or_else(|| HandshakeError::Auth(format!("node {id} presents no node certificate")))?;
    theirs
        .verify(authority, cluster, id)
        .map_err(HandshakeError::Auth)?;
    Ok(Some(own.shared(&theirs.public)))
}

/// What both MACs cover.
pub(super) struct Transcript<'a> {
    pub(super) cluster: &'a str,
    pub(super) role: &'a Role,
    pub(super) encrypt: bool,
    pub(super) node: NodeId,
    pub(super) n1: [u8; 32],
    pub(super) n2: [u8; 32],
    /// The largest frame the accepting side said it takes.
    pub(super) max_frame: u64,
}

impl Transcript<'_> {
    pub(super) fn bytes(&self, label: &[u8]) -> Vec<u8> {
        let mut t = transcript(
            label,
            self.cluster,
            self.role,
            self.node,
            &self.n1,
            &self.n2,
        );
        t.push(u8::from(self.encrypt));
        t.extend_from_slice(&self.max_frame.to_be_bytes());
        t
    }
}

/// The Noise pattern of the key exchange.
pub(super) const NOISE: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

pub(super) fn noise(
    psk: &[u8; 32],
    initiator: bool,
) -> Result<snow::HandshakeState, HandshakeError> {
    let params: snow::params::NoiseParams = NOISE
        .parse()
        .map_err(|e| HandshakeError::KeyExchange(format!("{e:?}")))?;
    let builder = snow::Builder::new(params).psk(0, psk);
    let state = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    };
    state.map_err(|e| HandshakeError::KeyExchange(e.to_string()))
}

pub(super) fn key_error(e: snow::Error) -> HandshakeError {
    HandshakeError::KeyExchange(e.to_string())
}

pub(super) fn transcript(
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

pub(super) fn hmac(secret: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac
}

pub(super) fn sign(secret: &[u8], data: &[u8]) -> [u8; 32] {
    hmac(secret, data).finalize().into_bytes().into()
}

pub(super) fn verify(secret: &[u8], data: &[u8], tag: &[u8; 32]) -> bool {
    hmac(secret, data).verify_slice(tag).is_ok()
}
