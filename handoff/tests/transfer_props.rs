//! Ownership transfer under random loss, delay, duplication, interruptions (receiver down) and
//! restarts of the sender: every checkpoint is backed by the receiver's data, a resumed transfer
//! continues from its checkpoint, nothing goes to a receiver that is down, and in the end every
//! key of the range arrives.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};
use std::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck};

use dynamo_handoff::{
    Backoff, TransferAck, TransferBatch, TransferConfig, TransferEntry, TransferEvent, TransferId,
    TransferSession,
};

use crate::sim::{Network, Rng};

#[derive(Clone, Debug)]
enum Op {
    Advance(u16),
    Interrupt,
    Reconnect,
    Restart,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 8 {
            0..=4 => Op::Advance(u16::arbitrary(g) % 2000),
            5 => Op::Interrupt,
            6 => Op::Reconnect,
            _ => Op::Restart,
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    keys: BTreeSet<u16>,
    batch: usize,
    window: usize,
    loss: u8,
    duplicate: u8,
    ops: Vec<Op>,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        Scenario {
            seed: u64::arbitrary(g),
            keys: BTreeSet::arbitrary(g),
            batch: 1 + usize::arbitrary(g) % 6,
            window: 1 + usize::arbitrary(g) % 4,
            loss: u8::arbitrary(g) % 50,
            duplicate: u8::arbitrary(g) % 30,
            ops: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let this = self.clone();
        let by_ops = self.ops.shrink().map({
            let this = this.clone();
            move |ops| Scenario {
                ops,
                ..this.clone()
            }
        });
        let by_keys = self.keys.shrink().map(move |keys| Scenario {
            keys,
            ..this.clone()
        });
        Box::new(by_ops.chain(by_keys))
    }
}

#[derive(Clone, Debug)]
enum Msg {
    Batch(TransferBatch<u16, Vec<u8>>),
    Ack(TransferAck<u16>),
}

const TO: u8 = 2;
const ID: TransferId = TransferId(42);

struct World {
    config: TransferConfig,
    store: BTreeMap<u16, Vec<u8>>,
    session: TransferSession<u8, u16, Vec<u8>>,
    restarts: u64,
    now: u64,
    rng: Rng,
    net: Network<Msg>,
    receiver_up: bool,
    received: BTreeMap<u16, Vec<u8>>,
    persisted: Option<u16>,
    /// After a restart, the first request must start at the persisted checkpoint.
    expect_after: Option<Option<u16>>,
    complete: bool,
}

impl World {
    fn new(s: &Scenario) -> Self {
        let config = TransferConfig {
            batch_max_entries: s.batch,
            max_in_flight: s.window,
            ack_timeout: Duration::from_millis(500),
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(1000),
                jitter: 0.2,
            },
            seed: s.seed,
            ..TransferConfig::default()
        };
        World {
            session: TransferSession::new(config.clone(), ID, TO),
            config,
            store: s
                .keys
                .iter()
                .map(|k| (*k, k.to_be_bytes().to_vec()))
                .collect(),
            restarts: 0,
            now: 0,
            rng: Rng::new(s.seed),
            net: Network::new(s.loss, s.duplicate, 300),
            receiver_up: true,
            received: BTreeMap::new(),
            persisted: None,
            expect_after: Some(None),
            complete: false,
        }
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn settle(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                TransferEvent::NeedBatch {
                    request,
                    after,
                    max_entries,
                    ..
                } => {
                    if let Some(expected) = self.expect_after.take() {
                        assert_eq!(after, expected, "resumed elsewhere than the checkpoint");
                    }
                    assert!(after >= self.persisted, "asked before the checkpoint");
                    let mut rest = self
                        .store
                        .range((after.map_or(Unbounded, Excluded), Unbounded))
                        .peekable();
                    let entries: Vec<_> = rest
                        .by_ref()
                        .take(max_entries)
                        .map(|(k, v)| TransferEntry {
                            key: *k,
                            payload: v.clone(),
                        })
                        .collect();
                    let last = rest.peek().is_none();
                    // A request may have gone stale (receiver down since): that is an error
                    // the owner ignores.
                    let _ = self.session.supply(self.now(), request, entries, last);
                }
                TransferEvent::Checkpoint { key } => {
                    assert!(Some(key) > self.persisted, "checkpoint went backwards");
                    for k in self.store.range(..=key).map(|(k, _)| k) {
                        assert!(
                            self.received.contains_key(k),
                            "checkpoint {key} but key {k} never arrived"
                        );
                    }
                    self.persisted = Some(key);
                }
                TransferEvent::Complete => {
                    assert_eq!(self.received, self.store, "complete but keys missing");
                    self.complete = true;
                }
                _ => {}
            }
        }
        while let Some((to, batch)) = self.session.poll_transmit() {
            assert_eq!(to, TO);
            assert!(self.receiver_up, "batch sent to a receiver that is down");
            assert!(batch.entries.len() <= self.config.batch_max_entries);
            self.net.send(&mut self.rng, self.now, Msg::Batch(batch));
        }
        assert!(self.session.in_flight() <= self.config.max_in_flight);
    }

    fn advance(&mut self, by: u64) {
        let target = self.now + by;
        loop {
            let timer = self.session.poll_timeout();
            let next = [timer, self.net.next_arrival()].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= target) else {
                break;
            };
            self.now = self.now.max(next);
            while let Some(msg) = self.net.pop_due(self.now) {
                match msg {
                    Msg::Batch(batch) => {
                        if self.receiver_up {
                            for e in &batch.entries {
                                self.received.insert(e.key, e.payload.clone());
                            }
                            self.net
                                .send(&mut self.rng, self.now, Msg::Ack(batch.ack()));
                        }
                    }
                    Msg::Ack(ack) => {
                        let _ = self.session.handle_message(self.now(), TO, ack);
                    }
                }
                self.settle();
            }
            if timer.is_some_and(|t| t <= self.now) {
                self.session.handle_timeout(self.now());
                self.settle();
                assert!(
                    self.session.poll_timeout().is_none_or(|t| t > self.now),
                    "timer not consumed"
                );
            }
        }
        self.now = target;
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Advance(ms) => self.advance(u64::from(*ms)),
            Op::Interrupt => {
                self.receiver_up = false;
                self.session.peer_down(self.now(), TO);
            }
            Op::Reconnect => {
                if !self.receiver_up {
                    self.receiver_up = true;
                    self.session.peer_up(self.now(), TO);
                }
            }
            Op::Restart if !self.complete => {
                self.restarts += 1;
                let config = TransferConfig {
                    seed: self.config.seed.wrapping_add(self.restarts),
                    ..self.config.clone()
                };
                self.session = TransferSession::resume(config, ID, TO, self.persisted);
                self.expect_after = Some(self.persisted);
                if !self.receiver_up {
                    self.session.peer_down(self.now(), TO);
                }
            }
            Op::Restart => {}
        }
        self.settle();
    }
}

fn transfer_delivers_every_key(s: Scenario) -> bool {
    let mut world = World::new(&s);
    world.settle();
    for op in &s.ops {
        world.apply(op);
    }
    world.net.heal();
    world.apply(&Op::Reconnect);
    for _ in 0..60 {
        if world.complete {
            break;
        }
        world.advance(1000);
    }
    assert!(
        world.complete,
        "transfer never completed: {:?}",
        world.session
    );
    assert_eq!(world.received, world.store);
    true
}

#[test]
fn interrupted_and_resumed_transfer_delivers_every_key() {
    QuickCheck::new()
        .tests(300)
        .quickcheck(transfer_delivers_every_key as fn(Scenario) -> bool);
}
