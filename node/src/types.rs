//! The names the node gives to the crates' generic parameters.

use dynamo_vclock::{Siblings, VClock, Version};

/// A node's identity in the cluster: a small integer chosen by the operator.
pub type NodeId = u64;

/// The coordinator identity written into vector clocks: the node and its storage *epoch*.
///
/// The epoch changes whenever a node starts with lost or empty storage, so it never reuses the
/// counters it handed out before (Riak's kv679 data-loss bug).
pub type Actor = (NodeId, u32);

/// Keys are bytes.
pub type Key = Vec<u8>;

/// Values are bytes.
pub type Value = Vec<u8>;

/// The concurrent versions of one key.
pub type Sibs = Siblings<Actor, Value>;

/// One version of one key.
pub type Ver = Version<Actor, Value>;

/// A vector clock of the node's actors.
pub type Clock = VClock<Actor>;

/// Milliseconds on the driver's clock (virtual in the simulator, monotonic in the runtime).
pub type Millis = u64;

/// An identifier the driver gives to a client request, echoed in its reply.
pub type RequestId = u64;
