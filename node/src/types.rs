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

/// The concurrent versions of one key: a dotted version vector set of objects and tombstones.
pub type Sibs = DvvSet<Actor, dynamo_vclock::Value<Object>>;

/// A vector clock of the node's actors.
pub type Clock = VClock<Actor>;

/// Milliseconds on the driver's clock (virtual in the simulator, monotonic in the runtime).
pub type Millis = u64;

/// The seeded generator behind every random choice of the node core, the simulator and the
/// tests that replay from a seed: ChaCha8, whose stream for a seed is specified by its algorithm.
/// `rand::rngs::SmallRng` is not: its algorithm may differ per platform and change with a minor
/// release of rand, so a seed would replay another run after a `cargo update` or on another
/// machine. `tests/sim/portability.rs` pins the first outputs and a whole run's digest.
pub type ReplayRng = rand_chacha::ChaCha8Rng;

/// An identifier the driver gives to a client request, echoed in its reply.
pub type RequestId = u64;

/// What a sibling holds: a value's bytes and, when its writer gave one, their media type (the
/// HTTP API's `Content-Type`; the paper's object with its metadata).
///
/// Encoded for storage and the wire so that an object without a content type encodes exactly as
/// the plain byte vector of earlier versions (a msgpack array of integers): every record and
/// message written before content types existed reads back unchanged. An object with a content
/// type is a msgpack map `{"b": bytes, "t": content type}`, which no earlier version decodes (it
/// refuses the record or message rather than misreading it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Object {
    /// The value.
    pub bytes: Value,
    /// Its media type, if the writer gave one.
    pub content_type: Option<String>,
}

impl Object {
    /// An object with a content type.
    pub fn typed(bytes: Value, content_type: Option<String>) -> Self {
        Object {
            bytes,
            content_type,
        }
    }

    /// Bytes the object occupies (value and content type): what the sibling limits count.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.content_type.as_ref().map_or(0, String::len)
    }
}

impl From<Value> for Object {
    fn from(bytes: Value) -> Self {
        Object {
            bytes,
            content_type: None,
        }
    }
}

impl std::ops::Deref for Object {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq<[u8]> for Object {
    fn eq(&self, other: &[u8]) -> bool {
        self.bytes == other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Object {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.bytes == other
    }
}

impl PartialEq<Value> for Object {
    fn eq(&self, other: &Value) -> bool {
        &self.bytes == other
    }
}

impl serde::Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match &self.content_type {
            None => self.bytes.serialize(s),
            Some(t) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("b", &self.bytes)?;
                map.serialize_entry("t", t)?;
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte array, or a map of bytes and a content type")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Object, A::Error> {
        // The size hint comes from the input: cap what it reserves.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(Object::from(bytes))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Object, E> {
        Ok(Object::from(v.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Object, E> {
        Ok(Object::from(v))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        use serde::de::Error as _;
        let (mut bytes, mut content_type) = (None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "b" if bytes.is_none() => bytes = Some(map.next_value::<Value>()?),
                "t" if content_type.is_none() => content_type = Some(map.next_value::<String>()?),
                other => {
                    return Err(A::Error::custom(format!(
                        "unexpected object field {other:?}"
                    )))
                }
            }
        }
        Ok(Object {
            bytes: bytes.ok_or_else(|| A::Error::missing_field("b"))?,
            content_type,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untyped_object_encodes_as_the_plain_bytes_of_earlier_versions() {
        let bytes = vec![0u8, 7, 200, 255];
        let old = rmp_serde::to_vec(&bytes).expect("encodes");
        let object = Object::from(bytes.clone());
        assert_eq!(rmp_serde::to_vec(&object).expect("encodes"), old);
        assert_eq!(decode_msgpack::<Object>(&old).expect("decodes"), object);
    }

    #[test]
    fn a_typed_object_round_trips_and_is_not_read_as_bytes() {
        let object = Object::typed(b"{}".to_vec(), Some("application/json".into()));
        let encoded = rmp_serde::to_vec(&object).expect("encodes");
        assert_eq!(decode_msgpack::<Object>(&encoded).expect("decodes"), object);
        assert!(decode_msgpack::<Value>(&encoded).is_err());
    }

    #[test]
    fn a_sibling_set_of_earlier_versions_reads_back() {
        let mut old: DvvSet<Actor, dynamo_vclock::Value<Value>> = DvvSet::new();
        let ctx = old.context();
        old.put(
            &ctx,
            (1, 0),
            5,
            dynamo_vclock::Value::Live(b"milk".to_vec()),
        );
        let encoded = rmp_serde::to_vec(&old).expect("encodes");
        let new: Sibs = decode_msgpack(&encoded).expect("decodes");
        assert_eq!(
            new.live_values().collect::<Vec<_>>(),
            vec![&Object::from(b"milk".to_vec())]
        );
        assert_eq!(rmp_serde::to_vec(&new).expect("encodes"), encoded);
    }
}
