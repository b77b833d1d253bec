//! Helpers shared by the test modules.

use dynamo_quorum::{GetCoordinator, GetMessage, PutCoordinator, ReplicaWrite};
use dynamo_vclock::{Siblings, VClock, Version};

pub type Set = Siblings<&'static str, &'static str>;

/// A clock from `(actor, counter)` pairs, timestamps 0.
pub fn clock(entries: &[(&'static str, u64)]) -> VClock<&'static str> {
    let mut c = VClock::new();
    for (actor, counter) in entries {
        for _ in 0..*counter {
            c.increment(*actor, 0);
        }
    }
    c
}

pub fn version(
    entries: &[(&'static str, u64)],
    value: &'static str,
) -> Version<&'static str, &'static str> {
    Version::live(clock(entries), value)
}

pub fn set(versions: &[Version<&'static str, &'static str>]) -> Set {
    versions.iter().cloned().collect()
}

pub type Write = ReplicaWrite<&'static str, Set>;

pub fn drain_put(put: &mut PutCoordinator<&'static str, Set>) -> Vec<(&'static str, Write)> {
    std::iter::from_fn(|| put.poll_transmit()).collect()
}

pub fn drain_get(
    get: &mut GetCoordinator<&'static str, Set>,
) -> Vec<(&'static str, GetMessage<&'static str, Set>)> {
    std::iter::from_fn(|| get.poll_transmit()).collect()
}

/// A set of one version.
pub fn one(v: &Version<&'static str, &'static str>) -> Set {
    std::iter::once(v.clone()).collect()
}
