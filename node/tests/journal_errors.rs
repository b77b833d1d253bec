//! A write to the journal that fails (a full disk, a file-size limit) and then works again must
//! not lose what the store acknowledged afterwards.
//!
//! These tests lower the process's file-size limit (`RLIMIT_FSIZE`) for one commit or sync, so
//! they have a test binary of their own (no other test's files share the limit) and take turns
//! through one lock.

use dynamo_node::fjall_store::FjallStore;
use dynamo_node::redb_store::Durability;
use dynamo_node::{Sibs, Store};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// A sibling set of one value.
fn sibs(value: &[u8]) -> Sibs {
    let mut s = Sibs::new();
    let ctx = s.context();
    s.put(
        &ctx,
        (1, 0),
        0,
        dynamo_vclock::Value::Live(value.to_vec().into()),
    );
    s
}

/// Puts `n` keys of 1 KiB values, named after `batch`.
fn put_batch(store: &mut FjallStore, batch: usize, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let key = format!("batch-{batch}-key-{i}").into_bytes();
            let value = vec![b'a' + (batch % 26) as u8; 1024];
            store
                .put(&key, &sibs(&value))
                .expect("put into the overlay");
            (key, value)
        })
        .collect()
}

/// Sets the soft file-size limit (`None`: unlimited), keeping the hard one.
fn file_size_limit(current: Option<u64>) {
    let hard = getrlimit(Resource::Fsize).maximum;
    setrlimit(
        Resource::Fsize,
        Rlimit {
            current,
            maximum: hard,
        },
    )
    .expect("setrlimit within the hard limit");
}

/// One test at a time lowers the process's file-size limit.
static LIMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writing past the limit raises SIGXFSZ, whose default kills the process; a handler (tokio's)
/// turns it into the EFBIG error a full disk would give. Held for the test's length.
fn catch_sigxfsz() -> (tokio::runtime::Runtime, tokio::signal::unix::Signal) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let signal = rt
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
                rustix::process::Signal::XFSZ.as_raw(),
            ))
        })
        .expect("catch SIGXFSZ");
    (rt, signal)
}

/// Copies the files under `from` into `to`, as they are now.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create dir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The acknowledged writes the store no longer holds after a reopen, by key.
fn lost_after_reopen(dir: &std::path::Path, acknowledged: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let store = FjallStore::open(dir, Durability::Durable).expect("reopen");
    acknowledged
        .iter()
        .filter(|(key, value)| {
            let held = store.get(key).expect("read after reopen");
            held.is_none_or(|s| !s.live_values().any(|o| o.bytes == *value))
        })
        .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
        .collect()
}

#[test]
fn a_journal_write_that_fails_and_then_works_again_loses_no_acknowledged_write() {
    let _turn = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let _sigxfsz = catch_sigxfsz();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged = Vec::new();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).expect("open");
        let first = put_batch(&mut store, 0, 50);
        store.flush().expect("the first flush, with no limit");
        acknowledged.extend(first);

        // The next commit meets the limit: its journal write fails part way. The disk then
        // works again before the sync, as after space was freed.
        let second = put_batch(&mut store, 1, 50);
        file_size_limit(Some(0));
        let started = store.start_flush();
        file_size_limit(None);
        let second_ok = match started {
            Ok(None) => true,
            Ok(Some(job)) => job().is_ok(),
            Err(_) => false,
        };
        if second_ok {
            acknowledged.extend(second);
        }

        // Later writes, on a disk that works.
        for batch in 2..5 {
            let writes = put_batch(&mut store, batch, 10);
            if store.flush().is_ok() {
                acknowledged.extend(writes);
            }
        }
    }

    let lost = lost_after_reopen(dir.path(), &acknowledged);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after the journal error, first: {:?}",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(3).collect::<Vec<_>>()
    );
    assert!(acknowledged.len() >= 50, "the first flush is acknowledged");
}

/// A sync the node asks for inline (an epoch lease, a ring) commits the data writes buffered
/// before it. When its fsync fails, those writes are not durable: no later flush may report them
/// so (the driver would release their acknowledgements), it fails instead and the node stops.
#[test]
fn after_a_failed_sync_no_flush_reports_the_writes_before_it_durable() {
    let _turn = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let _sigxfsz = catch_sigxfsz();

    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let mut acknowledged = Vec::new();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Durable).expect("open");
        let first = put_batch(&mut store, 0, 5);
        store.flush().expect("the first flush, with no limit");
        acknowledged.extend(first);

        // A replica write waits for the next flush; an inline sync commits it and fails.
        let waiting = put_batch(&mut store, 1, 1);
        file_size_limit(Some(0));
        let synced = store.sync();
        file_size_limit(None);
        assert!(synced.is_err(), "the sync met the file-size limit");

        // The driver's next flush: what it reports durable is acknowledged.
        let flushed = match store.start_flush() {
            Ok(None) => true,
            Ok(Some(job)) => job().is_ok(),
            Err(_) => false,
        };
        if flushed {
            acknowledged.extend(waiting);
        }
        // The process is killed here: what its files hold is what a restart finds (a graceful
        // stop would sync once more, and that sync, on a disk that works again, would succeed).
        copy_dir(dir.path(), crashed.path());
    }
    let lost = lost_after_reopen(crashed.path(), &acknowledged);
    assert!(
        lost.is_empty(),
        "a flush reported writes durable that a failed sync had left behind: lost {lost:?}"
    );
}
