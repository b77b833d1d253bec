//! Hinted handoff and ownership transfer throughput: hints recorded and delivered per second for
//! 100-byte values, against an in-run baseline that only copies the same hints through a queue.
//!
//! `cargo bench -p dynamo-bench --bench handoff`

use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;

use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use dynamo_handoff::{
    Hint, HintEvent, HintLog, HintLogConfig, TransferConfig, TransferEntry, TransferEvent,
    TransferId, TransferSession,
};

const HINTS: usize = 10_000;
const VALUE: usize = 100;
const NODES: u32 = 4;

fn hints() -> Vec<Hint<u32, Vec<u8>>> {
    (0..HINTS)
        .map(|i| {
            Hint::new(
                i as u32 % NODES,
                format!("key-{i:08}").into_bytes(),
                vec![i as u8; VALUE],
            )
        })
        .collect()
}

fn filled_log(hints: &[Hint<u32, Vec<u8>>]) -> HintLog<u32, Vec<u8>> {
    let mut log = HintLog::new(HintLogConfig::default());
    for (i, h) in hints.iter().enumerate() {
        let _ = log.record(i as u64, h.clone());
    }
    while log.poll_event().is_some() {}
    log
}

/// Delivers everything: nodes up, every batch acknowledged at once.
fn deliver_all(log: &mut HintLog<u32, Vec<u8>>) -> usize {
    let now = HINTS as u64;
    for node in 0..NODES {
        log.peer_up(now, node);
    }
    let mut delivered = 0;
    while let Some((to, batch)) = log.poll_transmit() {
        let _ = log.handle_message(now, to, batch.ack());
        while let Some(event) = log.poll_event() {
            delivered += usize::from(matches!(event, HintEvent::Delivered { .. }));
        }
    }
    delivered
}

fn bench_hints(c: &mut Criterion) {
    let input = hints();
    let mut group = c.benchmark_group("handoff/hints_100B");
    group.throughput(Throughput::Elements(HINTS as u64));

    group.bench_function("baseline_queue_copy", |b| {
        b.iter_batched(
            || input.clone(),
            |hints| {
                let mut q = VecDeque::with_capacity(hints.len());
                for h in hints {
                    q.push_back(h);
                }
                let mut bytes = 0;
                while let Some(h) = q.pop_front() {
                    bytes += black_box(h.payload.clone()).len();
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("record", |b| {
        b.iter_batched(
            || input.clone(),
            |hints| {
                let mut log = HintLog::new(HintLogConfig::default());
                for (i, h) in hints.into_iter().enumerate() {
                    let _ = log.record(i as u64, h);
                }
                while log.poll_event().is_some() {}
                log
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("deliver", |b| {
        b.iter_batched(
            || filled_log(&input),
            |mut log| {
                let n = deliver_all(&mut log);
                assert_eq!(n, HINTS);
                log
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("record_and_deliver", |b| {
        b.iter_batched(
            || input.clone(),
            |hints| {
                let mut log = HintLog::new(HintLogConfig::default());
                for (i, h) in hints.into_iter().enumerate() {
                    let _ = log.record(i as u64, h);
                }
                while log.poll_event().is_some() {}
                deliver_all(&mut log)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_transfer(c: &mut Criterion) {
    let store: BTreeMap<Vec<u8>, Vec<u8>> =
        hints().into_iter().map(|h| (h.key, h.payload)).collect();
    let mut group = c.benchmark_group("handoff/transfer_100B");
    group.throughput(Throughput::Elements(store.len() as u64));
    group.bench_function("stream_range", |b| {
        b.iter(|| {
            let now = 0;
            let mut s: TransferSession<u32, Vec<u8>, Vec<u8>> =
                TransferSession::new(TransferConfig::default(), TransferId(1), 1);
            let mut received = 0usize;
            loop {
                while let Some(event) = s.poll_event() {
                    if let TransferEvent::NeedBatch {
                        request,
                        after,
                        max_entries,
                        ..
                    } = event
                    {
                        use std::ops::Bound::{Excluded, Unbounded};
                        let mut rest = store
                            .range::<Vec<u8>, _>((
                                after.as_ref().map_or(Unbounded, Excluded),
                                Unbounded,
                            ))
                            .peekable();
                        let entries: Vec<_> = rest
                            .by_ref()
                            .take(max_entries)
                            .map(|(k, v)| TransferEntry {
                                key: k.clone(),
                                payload: v.clone(),
                            })
                            .collect();
                        let last = rest.peek().is_none();
                        let _ = s.supply(now, request, entries, last);
                    }
                }
                let Some((to, batch)) = s.poll_transmit() else {
                    break;
                };
                received += batch.entries.len();
                let _ = s.handle_message(now, to, batch.ack());
            }
            assert!(s.is_complete());
            received
        })
    });
    group.finish();
}

#[allow(missing_docs)] // the macro's generated function has no doc comment
mod group {
    use super::{bench_hints, bench_transfer};
    criterion::criterion_group!(benches, bench_hints, bench_transfer);
}
criterion_main!(group::benches);
