//! Per-node credentials: an X25519 key pair per node, certified by the cluster's authority.
//!
//! The peer secret keeps clients and outsiders from posing as nodes, but every node holds it, so
//! a node (or whoever stole one node's secret) could claim another node's id. With per-node
//! credentials it cannot: the operator keeps an *authority* key (Ed25519, off the nodes) and
//! issues each node a [`NodeIdentity`]: a static X25519 key pair and a certificate, the
//! authority's signature over the cluster name, the node id and the node's public key. Nodes know
//! only the authority's public key. In the handshake (see [`super::handshake`]) both peers send
//! their certificates, each checks the other's against the authority and the claimed id, and both
//! mix the static-static Diffie-Hellman secret into their proofs and the Noise pre-shared key:
//! only the holder of the certified private key can complete the handshake as that id.
//!
//! `dynamo init` writes an authority and an identity per node; `dynamo keys issue` issues one for
//! a node added later.

use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::types::NodeId;

/// What a certificate signs: a label, the cluster, the node id and its public key.
fn message(cluster: &str, id: NodeId, public: &[u8; 32]) -> Vec<u8> {
    let mut m = b"dynamo-node-certificate".to_vec();
    m.extend_from_slice(&(cluster.len() as u64).to_be_bytes());
    m.extend_from_slice(cluster.as_bytes());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(public);
    m
}

/// The cluster's authority: signs node certificates. Keep its key off the nodes.
pub struct Authority {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("public", &hex(&self.public()))
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new authority with a random key.
    pub fn generate() -> Self {
        Authority::from_secret(rand::random())
    }

    /// The authority of this secret key.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Authority {
            key: ed25519_dalek::SigningKey::from_bytes(&secret),
        }
    }

    /// Its secret key (to store it).
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Its public key, which every node holds to check certificates.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A new identity for node `id` of `cluster`: a fresh key pair and its certificate.
    pub fn issue(&self, cluster: &str, id: NodeId) -> NodeIdentity {
        self.certify(cluster, id, rand::random())
    }

    /// The identity of node `id` of `cluster` with the private key `secret`, certified.
    pub fn certify(&self, cluster: &str, id: NodeId, secret: [u8; 32]) -> NodeIdentity {
        let public = PublicKey::from(&StaticSecret::from(secret)).to_bytes();
        let signature = self.key.sign(&message(cluster, id, &public)).to_bytes();
        NodeIdentity {
            id,
            secret,
            certificate: Certificate {
                public,
                signature: signature.to_vec(),
            },
        }
    }
}

/// A node's public key and the authority's signature binding it to the node's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The node's X25519 public key.
    pub public: [u8; 32],
    /// The authority's Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
}

impl Certificate {
    /// Checks that `authority` certified this key for node `id` of `cluster`.
    pub fn verify(&self, authority: &[u8; 32], cluster: &str, id: NodeId) -> Result<(), String> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(authority)
            .map_err(|_| "the authority's public key is not a valid Ed25519 key".to_string())?;
        let signature = ed25519_dalek::Signature::from_slice(&self.signature)
            .map_err(|_| "the certificate's signature is malformed".to_string())?;
        key.verify(&message(cluster, id, &self.public), &signature)
            .map_err(|_| format!("the certificate is not the authority's for node {id}"))
    }
}

/// A node's credential: its id, its private key and its certificate.
#[derive(Clone)]
pub struct NodeIdentity {
    /// The node.
    pub id: NodeId,
    secret: [u8; 32],
    /// Its certificate.
    pub certificate: Certificate,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("id", &self.id)
            .field("public", &hex(&self.certificate.public))
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// An identity from its stored parts: the private key and the certificate's signature (the
    /// public key is derived from the private one).
    pub fn new(id: NodeId, secret: [u8; 32], signature: Vec<u8>) -> Self {
        let public = PublicKey::from(&StaticSecret::from(secret)).to_bytes();
        NodeIdentity {
            id,
            secret,
            certificate: Certificate { public, signature },
        }
    }

    /// Its private key (to store it).
    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// The Diffie-Hellman secret shared with the holder of `their` private key.
    pub(crate) fn shared(&self, their: &[u8; 32]) -> [u8; 32] {
        StaticSecret::from(self.secret)
            .diffie_hellman(&PublicKey::from(*their))
            .to_bytes()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (`what` names the value in the error).
pub fn unhex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err(format!("{what}: odd number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("{what}: not hex"))
        })
        .collect()
}

/// 32 bytes from hex.
pub fn unhex32(text: &str, what: &str) -> Result<[u8; 32], String> {
    unhex(text, what)?
        .try_into()
        .map_err(|_| format!("{what}: expected 32 bytes (64 hex digits)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_binds_key_id_and_cluster() {
        let authority = Authority::generate();
        let node = authority.issue("c", 2);
        let cert = &node.certificate;
        assert!(cert.verify(&authority.public(), "c", 2).is_ok());
        assert!(cert.verify(&authority.public(), "c", 3).is_err());
        assert!(cert.verify(&authority.public(), "d", 2).is_err());
        assert!(cert
            .verify(&Authority::generate().public(), "c", 2)
            .is_err());
        let stored = NodeIdentity::new(2, node.secret(), cert.signature.clone());
        assert_eq!(&stored.certificate, cert);
    }

    #[test]
    fn both_sides_derive_the_same_shared_secret() {
        let authority = Authority::generate();
        let (a, b) = (authority.issue("c", 1), authority.issue("c", 2));
        assert_eq!(
            a.shared(&b.certificate.public),
            b.shared(&a.certificate.public)
        );
    }
}
