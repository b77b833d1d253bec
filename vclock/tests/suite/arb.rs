//! Generators for quickcheck: small actor and counter domains so that relations other than
//! `Concurrent` actually occur.

use dynamo_vclock::{DvvSet, Entry, Siblings, VClock, Value, Version};
use quickcheck::{Arbitrary, Gen};

/// A clock over actors 0..6 with counters 1..=6 and timestamps 0..100.
#[derive(Debug, Clone)]
pub struct Clock(pub VClock<u8>);

impl Arbitrary for Clock {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 7;
        Clock(VClock::from_entries((0..n).map(|_| Entry {
            actor: u8::arbitrary(g) % 6,
            counter: 1 + u64::arbitrary(g) % 6,
            timestamp: u64::arbitrary(g) % 100,
        })))
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let entries = self.0.clone().into_entries();
        Box::new((0..entries.len()).map(move |skip| {
            Clock(VClock::from_entries(
                entries
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, e)| e.clone()),
            ))
        }))
    }
}

/// A sibling set built by inserting up to 6 arbitrary versions with values 0..4 (tombstone = 4).
#[derive(Debug, Clone)]
pub struct Sibs(pub Siblings<u8, u8>);

pub fn arb_version(g: &mut Gen) -> Version<u8, u8> {
    let v = u8::arbitrary(g) % 5;
    Version {
        clock: Clock::arbitrary(g).0,
        value: if v == 4 {
            Value::Tombstone
        } else {
            Value::Live(v)
        },
    }
}

impl Arbitrary for Sibs {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 7;
        Sibs((0..n).map(|_| arb_version(g)).collect())
    }
}

/// Three replicas of one DVV set after a random history of puts (with stale contexts from any
/// replica) and merges. Values are unique write ids, so equal dots always hold equal values.
#[derive(Debug, Clone)]
pub struct DvvHistory(pub [DvvSet<u8, u32>; 3]);

impl Arbitrary for DvvHistory {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut replicas: [DvvSet<u8, u32>; 3] = Default::default();
        let mut contexts: Vec<VClock<u8>> = vec![VClock::new()];
        let steps = usize::arbitrary(g) % 20;
        for write in 0..steps as u32 {
            let i = usize::arbitrary(g) % 3;
            let j = usize::arbitrary(g) % 3;
            if bool::arbitrary(g) {
                let ctx = g.choose(&contexts).cloned().unwrap_or_default();
                let actor = i as u8;
                if let Some(r) = replicas.get_mut(i) {
                    r.put(&ctx, actor, u64::from(write), write);
                }
            } else if let Some(other) = replicas.get(j).cloned() {
                if let Some(r) = replicas.get_mut(i) {
                    r.merge(&other);
                }
            }
            if let Some(r) = replicas.get(usize::arbitrary(g) % 3) {
                contexts.push(r.context());
            }
        }
        DvvHistory(replicas)
    }
}
