//! Tests of the handshake: roles, secrets, versions, and what a wrong or hostile side gets.

use super::keys::node_key;
use super::*;
use crate::runtime::frame::handshake_conn;
use crate::runtime::identity::Authority;

fn secrets() -> NodeSecrets {
    NodeSecrets {
        cluster: "c".into(),
        peer_secret: b"peer".to_vec(),
        client_secret: b"client".to_vec(),
        identity: None,
        authority: None,
    }
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        cluster: "c".into(),
        secret: secret.as_bytes().to_vec(),
        identity: None,
        authority: None,
    }
}

/// Node 7 (the acceptor) and a connecting peer, each with a credential of `authority`.
fn with_identities(authority: &Authority, connecting: NodeIdentity) -> (Credentials, NodeSecrets) {
    let mut c = creds("peer");
    c.identity = Some(connecting);
    c.authority = Some(authority.public());
    let mut s = secrets();
    s.identity = Some(authority.issue("c", 7));
    s.authority = Some(authority.public());
    (c, s)
}

#[tokio::test]
async fn per_node_credentials_let_certified_peers_in() {
    let authority = Authority::generate();
    let (c, s) = with_identities(&authority, authority.issue("c", 1));
    let (c, s) = run(c, peer(1), s).await;
    assert_eq!(c.unwrap(), 7);
    assert!(matches!(s.unwrap(), Role::Peer { id: 1, .. }));
}

/// A node that holds the peer secret and its own credential cannot claim another id.
#[tokio::test]
async fn a_node_cannot_claim_another_nodes_id() {
    let authority = Authority::generate();
    let (c, s) = with_identities(&authority, authority.issue("c", 1));
    let (c, s) = run(c, peer(2), s).await;
    let e = s.unwrap_err();
    assert!(
        e.to_string().contains("not the authority's for node 2"),
        "{e}"
    );
    assert!(c.is_err());
}

/// Node 2's certificate (it is public) without node 2's private key proves nothing.
#[tokio::test]
async fn a_stolen_certificate_without_its_key_is_refused() {
    let authority = Authority::generate();
    let real = authority.issue("c", 2);
    let mine = authority.issue("c", 1);
    let forged = NodeIdentity::new(2, mine.secret(), real.certificate.signature.clone());
    // The public key derives from the private one: pasting node 2's signature onto another
    // key does not verify.
    let (c, s) = with_identities(&authority, forged);
    let (_, s) = run(c, peer(2), s).await;
    assert!(matches!(s, Err(HandshakeError::Auth(_))), "{s:?}");
    // Node 2's real certificate, presented with another private key: the certificate checks
    // out, the proof (keyed by the static Diffie-Hellman secret) does not.
    let mut stolen = mine.clone();
    stolen.id = 2;
    stolen.certificate = real.certificate.clone();
    let (c, s) = with_identities(&authority, stolen);
    let (_, s) = run(c, peer(2), s).await;
    let e = s.unwrap_err();
    assert!(e.to_string().contains("not node 2"), "{e}");
}

#[tokio::test]
async fn a_certificate_of_another_authority_or_none_is_refused() {
    let authority = Authority::generate();
    let other = Authority::generate();
    let (c, s) = with_identities(&authority, other.issue("c", 1));
    let (_, s) = run(c, peer(1), s).await;
    assert!(matches!(s, Err(HandshakeError::Auth(_))), "{s:?}");
    let (mut c, s) = with_identities(&authority, authority.issue("c", 1));
    c.identity = None;
    c.authority = None;
    let (_, s) = run(c, peer(1), s).await;
    let e = s.unwrap_err();
    assert!(
        e.to_string().contains("presents no node certificate"),
        "{e}"
    );
    // Clients are unaffected.
    let (_, s) = with_identities(&authority, authority.issue("c", 1));
    let (c, s) = run(creds("client"), Role::Client, s).await;
    assert_eq!(c.unwrap(), 7);
    assert_eq!(s.unwrap(), Role::Client);
}

/// The connecting side checks the accepting node's certificate too.
#[tokio::test]
async fn a_node_answering_for_another_id_is_refused_by_the_connecting_side() {
    let authority = Authority::generate();
    let (c, mut s) = with_identities(&authority, authority.issue("c", 1));
    s.identity = Some(authority.issue("c", 8)); // it answers as 7 with node 8's credential
    let (c, _) = run(c, peer(1), s).await;
    let e = c.unwrap_err();
    assert!(
        e.to_string().contains("not the authority's for node 7"),
        "{e}"
    );
}

async fn run(
    client: Credentials,
    role: Role,
    server: NodeSecrets,
) -> (Result<NodeId, HandshakeError>, Result<Role, HandshakeError>) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut ca = handshake_conn(a);
    let mut cb = handshake_conn(b);
    tokio::join!(
        connect(&mut ca, &client, role, Some(7), false),
        accept(&mut cb, &server, 7, false, Default::default())
    )
}

fn peer(id: NodeId) -> Role {
    Role::Peer {
        id,
        address: "x".into(),
        generation: 0,
    }
}

#[tokio::test]
async fn each_role_proves_its_own_secret() {
    let (c, s) = run(creds("peer"), peer(1), secrets()).await;
    assert_eq!(c.unwrap(), 7);
    assert!(matches!(s.unwrap(), Role::Peer { id: 1, .. }));
    let (c, s) = run(creds("client"), Role::Client, secrets()).await;
    assert_eq!(c.unwrap(), 7);
    assert_eq!(s.unwrap(), Role::Client);
}

#[tokio::test]
async fn the_client_secret_does_not_make_a_peer() {
    let (c, s) = run(creds("client"), peer(2), secrets()).await;
    assert!(matches!(s, Err(HandshakeError::Auth(_))), "{s:?}");
    let e = c.unwrap_err();
    assert!(e.to_string().contains("wrong peer secret"), "{e}");
}

#[tokio::test]
async fn wrong_secret_is_refused_by_acceptor() {
    let (c, s) = run(creds("wrong"), Role::Client, secrets()).await;
    assert!(matches!(s, Err(HandshakeError::Auth(_))), "{s:?}");
    let e = c.unwrap_err();
    assert!(e.to_string().contains("wrong client secret"), "{e}");
}

#[tokio::test]
async fn other_cluster_is_refused() {
    let mut other = creds("client");
    other.cluster = "d".into();
    let (c, s) = run(other, Role::Client, secrets()).await;
    assert!(matches!(s, Err(HandshakeError::Cluster { .. })));
    assert!(c.unwrap_err().to_string().contains("cluster mismatch"));
}

#[test]
fn node_keys_differ_by_id() {
    assert_ne!(node_key(b"peer", 1), node_key(b"peer", 2));
}
