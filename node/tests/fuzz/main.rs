//! The short fuzz run of CI, over the checked-in corpus (`node/fuzz/corpus`), and the time bound
//! of maximum-size frames (`bounds`).
//!
//! `FUZZ_INPUTS=<n>` (mutated inputs per target, default 2,000) and `FUZZ_SEED=<s>` make the same
//! test a longer run; the long run uses the release binary (see `dynamo_node::fuzz`).

mod bounds;

use std::path::PathBuf;

use dynamo_node::fuzz::{corpus, Campaign, Target, Verdict};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every target has a corpus, and every entry (real traffic) runs clean; those that are frame
/// bodies, contexts, sets or records of real traffic all decode.
#[test]
fn every_target_has_a_corpus_that_runs_clean() {
    for target in Target::ALL {
        let entries = corpus::load(&corpus_dir(), target).expect("the corpus reads");
        assert!(
            entries.len() >= 10,
            "{target}: {} corpus entries; regenerate with `dynamo-fuzz seed-corpus`",
            entries.len()
        );
        for (i, e) in entries.iter().enumerate() {
            let verdict = target.run(e);
            assert!(!verdict.is_failure(), "{target} entry {i}: {verdict:?}");
            // Handshake entries are also whole streams (not one body).
            if target != Target::Handshake {
                assert_eq!(verdict, Verdict::Accepted, "{target} entry {i}");
            }
        }
    }
}

/// A few thousand mutated inputs per target: no panic, no broken invariant.
#[test]
fn mutated_inputs_run_clean() {
    let campaign = Campaign {
        inputs: env_u64("FUZZ_INPUTS", 2_000),
        seed: env_u64("FUZZ_SEED", 1),
        threads: 1,
        crashes: Some(std::env::temp_dir().join("dynamo-fuzz-crashes")),
        ..Campaign::default()
    };
    let mut failed = Vec::new();
    for target in Target::ALL {
        let entries = corpus::load(&corpus_dir(), target).expect("the corpus reads");
        let report = campaign.run(target, &entries);
        println!("{target:>10}: {report}");
        if report.failed() > 0 {
            failed.push(format!("{target}: {:?}", report.failures));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// msgpack nested `depth` arrays deep, as the value of an unknown field of a struct inside a
/// `ClientFrame` (serde skips it, recursing).
fn nested_client_frame(depth: usize) -> Vec<u8> {
    let mut body = vec![0x81, 0xa7];
    body.extend_from_slice(b"Request");
    body.extend_from_slice(&[0x82, 0xa2, b'i', b'd', 0x01, 0xa2, b'z', b'z']);
    body.extend(std::iter::repeat_n(0x91, depth));
    body.push(0xc0);
    body
}

/// Regression (found by fuzzing): rmp-serde's default depth limit (1,024) let a 1 KiB frame
/// recurse deep enough to overflow a 2 MiB stack (a tokio worker's) in a debug build, which
/// aborts the process. Now every decoder refuses nesting past `MAX_DEPTH` with an error.
#[test]
fn deep_nesting_is_an_error_on_a_worker_stack() {
    let result =
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let body = nested_client_frame(1_100);
                let frame = dynamo_node::runtime::frame::decode::<
                    dynamo_node::runtime::frame::ClientFrame,
                >(&body);
                let peer = dynamo_node::runtime::frame::decode::<
                    dynamo_node::runtime::frame::PeerFrame,
                >(&body);
                (frame.is_err(), peer.is_err())
            })
            .expect("thread")
            .join()
            .expect("no overflow");
    assert_eq!(result, (true, true));
    let limit = dynamo_node::types::MAX_DEPTH;
    // The node's own messages nest about a dozen deep (every corpus entry decodes: see above).
    assert!((16..=128).contains(&limit), "{limit}");
}
