//! The names the node gives to the crates' generic parameters.

use dynamo_vclock::{DvvSet, VClock};

/// A node's identity in the cluster: a small integer chosen by the operator.
pub type NodeId = u64;

/// The coordinator identity written into version vectors: the node and an *actor epoch*.
///
/// A node mints a new actor epoch whenever it cannot be sure that it holds the latest counter of
/// an older one for the key it coordinates: a key it is not a primary of, a key its copy lacks,
/// a restart on a buffered store that may have lost writes, or a store that was lost. So it never
/// issues the same dot twice (Riak's kv679 data-loss bug). See the `core` module docs.
pub type Actor = (NodeId, u64);

/// Keys are bytes.
pub type Key = Vec<u8>;

/// Values are bytes.
pub type Value = Vec<u8>;

/// The concurrent versions of one key: a dotted version vector set of values and tombstones.
pub type Sibs = DvvSet<Actor, dynamo_vclock::Value<Value>>;

/// A vector clock of the node's actors.
pub type Clock = VClock<Actor>;

/// Milliseconds on the driver's clock (virtual in the simulator, monotonic in the runtime).
pub type Millis = u64;

/// An identifier the driver gives to a client request, echoed in its reply.
pub type RequestId = u64;

/// Deepest nesting of msgpack arrays, maps and enums the node decodes. Its own messages nest
/// about a dozen deep; rmp-serde's default (1,024) lets a small frame recurse deep enough to
/// overflow a 2 MiB thread stack (a tokio worker's) in a debug build: found by fuzzing.
pub const MAX_DEPTH: usize = 64;

/// Decodes msgpack that another party wrote (a frame, a payload, a stored record), nesting at
/// most [`MAX_DEPTH`] deep.
pub fn decode_msgpack<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de)
}
