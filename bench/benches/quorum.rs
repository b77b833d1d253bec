//! Cost of one whole request coordination with `dynamo-quorum`, N = 3, R = W = 2, 100-byte values:
//! planning from a preference list, the coordinator, its three replica messages and three
//! replies. Allocations per request are counted by a counting global allocator and printed
//! before the timings. The in-run baseline is the minimum any fan-out pays: three clones of the
//! version into a vector.
//!
//! `cargo bench -p dynamo-bench --bench quorum -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_main, Criterion};
use dynamo_quorum::{
    plan, GetCoordinator, GetMessage, GetReply, Mode, PutCoordinator, PutReply, RequestOptions,
    Siblings, VClock, Version,
};

/// Counts allocations (not frees) made by the whole process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// The only unsafe code in the bench crate (its lints deny `unsafe_code` instead of forbidding it
// for this): a `GlobalAlloc` impl is unsafe by definition. It forwards to the system allocator
// unchanged and only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Node = u32;
type Value = Vec<u8>;

/// The key's preference list: three primaries then a fallback, all up.
const PREFERENCE: [(Node, bool); 4] = [(1, true), (2, true), (3, true), (4, false)];

fn options() -> RequestOptions {
    match RequestOptions::new(3, 2, 2, Duration::from_millis(1_000)) {
        Ok(o) => o,
        Err(e) => panic!("valid options: {e}"),
    }
}

fn version() -> Version<Node, Value> {
    let mut clock = VClock::new();
    clock.increment(1, 10);
    Version::live(clock, vec![7u8; 100])
}

/// One put: plan, coordinator, three writes, three acks (the third late). Returns acks seen.
fn put_request(v: &Version<Node, Value>) -> usize {
    let targets = plan(PREFERENCE, |_| true, 3, Mode::Sloppy);
    let Ok(mut put) = PutCoordinator::new(options(), targets, v.clone(), 0) else {
        return 0;
    };
    let mut to = [0; 3];
    let mut sent = 0;
    while let Some((node, write)) = put.poll_transmit() {
        black_box(&write);
        if let Some(slot) = to.get_mut(sent) {
            *slot = node;
        }
        sent += 1;
    }
    let mut acks = 0;
    for (i, node) in to.iter().enumerate() {
        let _ = put.handle_message(i as u64 + 1, *node, PutReply::Ack);
        if let Some(outcome) = put.poll_event() {
            acks += outcome.acks.len();
        }
    }
    acks + put.late_acks()
}

/// One get: plan, coordinator, three reads, three answers (`stale` makes the last replica answer
/// not found, which costs a read repair). Returns the number of siblings plus repairs.
fn get_request(answer: &Siblings<Node, Value>, stale: bool) -> usize {
    let targets = plan(PREFERENCE, |_| true, 3, Mode::Sloppy);
    let Ok(mut get) = GetCoordinator::<Node, Siblings<Node, Value>>::new(options(), targets, 0)
    else {
        return 0;
    };
    let mut to = [0; 3];
    let mut sent = 0;
    while let Some((node, _read)) = get.poll_transmit() {
        if let Some(slot) = to.get_mut(sent) {
            *slot = node;
        }
        sent += 1;
    }
    let mut found = 0;
    for (i, node) in to.iter().enumerate() {
        let reply = if !stale || i < 2 {
            GetReply::Found(answer.clone())
        } else {
            GetReply::NotFound
        };
        let _ = get.handle_message(i as u64 + 1, *node, reply);
        if let Some(outcome) = get.poll_event() {
            found += outcome.siblings.len();
        }
    }
    while let Some((_, msg)) = get.poll_transmit() {
        if let GetMessage::Repair(write) = msg {
            black_box(&write);
            found += 1;
        }
    }
    found
}

fn allocations(f: impl FnOnce() -> usize) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(f());
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn bench_requests(c: &mut Criterion) {
    let v = version();
    let answer: Siblings<Node, Value> = std::iter::once(v.clone()).collect();
    let baseline = || (0..3).map(|_| v.clone()).collect::<Vec<_>>().len();
    println!(
        "quorum allocations per request (N=3, R=W=2, 100 B): baseline 3 clones {}, put {}, get {}, get with one read repair {}",
        allocations(baseline),
        allocations(|| put_request(&v)),
        allocations(|| get_request(&answer, false)),
        allocations(|| get_request(&answer, true)),
    );

    let mut group = c.benchmark_group("quorum/n3_r2_w2_100B");
    group.bench_function("baseline_clone_version_x3", |b| b.iter(baseline));
    group.bench_function("put", |b| b.iter(|| put_request(black_box(&v))));
    group.bench_function("get", |b| b.iter(|| get_request(black_box(&answer), false)));
    group.bench_function("get_read_repair", |b| {
        b.iter(|| get_request(black_box(&answer), true))
    });
    group.finish();
}

#[allow(missing_docs)] // the macro's generated function has no doc comment
mod group {
    use super::bench_requests;
    criterion::criterion_group!(benches, bench_requests);
}
criterion_main!(group::benches);
