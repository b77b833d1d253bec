//! What an attacker can send to a node's port, each case from the security issue's table, over
//! real TCP: against in-process nodes, or against a `dynamo` process where memory or the log is
//! what is judged.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use dynamo_node::message::PeerMessage;
use dynamo_node::runtime::frame::{encode, Handshake, PeerFrame, Role, PROTOCOL_VERSION};
use dynamo_node::Sibs;

use crate::bad_input::{expect_error, raw};
use crate::{eventually, free_ports, Spec, SECRET};

/// A one-node cluster in a `dynamo` process, its log (stderr) in a file.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    pub(crate) async fn start(extra: &[&str]) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_ports(1)[0]);
        let log = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_dynamo"))
            .args(["serve", "--id", "1", "--members", "1", "--listen", &address])
            .args(extra)
            .env("DYNAMO_SECRET", SECRET)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let up = eventually(15, || async {
            let mut client = dynamo_node::client::Client::new({
                let mut c = dynamo_node::client::ClientConfig::new(vec![address.clone()], SECRET);
                c.timeout = Duration::from_secs(2);
                c
            });
            client.status().await.ok()
        })
        .await;
        assert!(up.is_some(), "the dynamo process did not come up");
        Proc {
            child,
            address,
            log,
            _dir: dir,
        }
    }

    /// The process's peak resident memory, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Whether the node answers a client within `secs` seconds.
    pub(crate) async fn answers(&self, secs: u64) -> bool {
        let mut config = dynamo_node::client::ClientConfig::new(vec![self.address.clone()], SECRET);
        config.timeout = Duration::from_secs(secs);
        dynamo_node::client::Client::new(config)
            .status()
            .await
            .is_ok()
    }
}

/// A `Write` of a sibling set with `versions` concurrent versions (one actor each), as a peer
/// would send it after the handshake.
fn sibling_bomb(versions: u64) -> Vec<u8> {
    let entries = (0..versions)
        .map(|i| dynamo_vclock::DvvEntry {
            actor: (i, 0),
            counter: 1,
            timestamp: 1_700_000_000_000 + i,
            values: vec![dynamo_vclock::Value::Live(Vec::new())],
        })
        .collect::<Vec<_>>();
    let siblings = Sibs::try_from(entries).unwrap();
    encode(&PeerFrame::Peer(PeerMessage::Write {
        req: Some(1),
        key: b"k".to_vec(),
        siblings,
        hint: None,
    }))
    .unwrap()
}

/// Table row: "before the handshake, one 4.3 MB frame holding a sibling set of 200,000 versions:
/// node stalled 243 s". Refused from its length prefix, before any of it is read or decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_set_bomb_before_the_handshake_is_refused_at_once() {
    let spec = Spec::new(1, None);
    let node = spec.start(1).await;
    let body = sibling_bomb(200_000);
    assert!(body.len() > 4_000_000, "{} bytes", body.len());
    let start = Instant::now();
    let mut conn = raw(&spec.address(1)).await;
    // The node may close before all of it is written.
    let _ = conn.send_unchecked(&body).await;
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(
        reason.contains(&format!(
            "frame of {} bytes exceeds the limit of 4096 bytes before the handshake",
            body.len()
        )),
        "{reason}"
    );
    assert_eq!(spec.client_of(1).status().await.unwrap().id, 1);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    node.shutdown().await.unwrap();
}

/// "Whole frames are decoded before the handshake checks their kind": before the handshake only
/// handshake frames are known, so a peer message is refused by its tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_handshake_only_handshake_frames_are_decoded() {
    let spec = Spec::new(1, None);
    let node = spec.start(1).await;
    let body = sibling_bomb(100);
    assert!(body.len() < 4096);
    let mut conn = raw(&spec.address(1)).await;
    conn.send_unchecked(&body).await.unwrap();
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(reason.contains("unknown variant `Peer`"), "{reason}");
    node.shutdown().await.unwrap();
}

/// Table row: "before the handshake, 200 connections each sending a 16 MiB frame: RSS peaked at
/// 2.56 GiB". Each is refused from its length prefix; the node's peak memory barely moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_frames_before_the_handshake_keep_memory_flat() {
    let node = Proc::start(&[]).await;
    let before = node.peak_rss_kib();
    let chunk = vec![0u8; 1 << 20];
    let mut attackers = Vec::new();
    for _ in 0..200 {
        let address = node.address.clone();
        let chunk = chunk.clone();
        attackers.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(&address).await else {
                return;
            };
            if stream
                .write_all(&(16u32 << 20).to_be_bytes())
                .await
                .is_err()
            {
                return;
            }
            // Up to 4 MiB of the body each, until the node closes the connection.
            for _ in 0..4 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }));
    }
    for a in attackers {
        let _ = tokio::time::timeout(Duration::from_secs(30), a).await;
    }
    let after = node.peak_rss_kib();
    assert!(
        after < before + 64 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    assert!(node.answers(5).await);
}

/// Table row: "Hello with a 4 MiB cluster name: echoed back in the error and written to the log".
/// The frame is refused by its length; a name that fits is cut in the error and in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cluster_names_are_neither_echoed_nor_logged_in_full() {
    let node = Proc::start(&[]).await;
    let hello = |cluster: String| Handshake::Hello {
        version: PROTOCOL_VERSION,
        cluster,
        role: Role::Client,
        encrypt: false,
        nonce: [1; 32],
    };
    let mut conn = raw(&node.address).await;
    let _ = conn
        .send_unchecked(&encode(&hello("A".repeat(4 << 20))).unwrap())
        .await;
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(reason.contains("before the handshake"), "{reason}");
    assert!(reason.len() < 400, "{} bytes echoed", reason.len());

    let mut conn = raw(&node.address).await;
    conn.send(&hello("B".repeat(3500))).await.unwrap();
    let reason = expect_error::<Handshake>(&mut conn).await;
    assert!(reason.contains("cluster mismatch"), "{reason}");
    assert!(reason.len() < 400, "{} bytes echoed", reason.len());

    assert!(node.answers(5).await);
    // A refusal is logged once the connection is closed.
    let log = eventually(5, || async {
        let log = std::fs::read_to_string(&node.log).unwrap();
        log.contains("cluster mismatch").then_some(log)
    })
    .await
    .expect("the refusal is logged");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
    assert!(!log.contains(&"B".repeat(300)));
}
