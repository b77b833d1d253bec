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
/// Encoded for storage and the wire as msgpack `bin` (one length, then the bytes as they are):
/// an object with a content type is a msgpack map `{"b": bin, "t": content type}`. Earlier
/// versions wrote the bytes as a msgpack array of integers, one element per byte, which cost a
/// parse per byte; [`bytes`] reads both forms, so every record written before reads back
/// unchanged. Data directories and connections that may hold the `bin` form are marked (manifest
/// format 2, `PROTOCOL_VERSION` 3) so that an earlier version refuses them instead of misreading
/// them.
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
            None => s.serialize_bytes(&self.bytes),
            Some(t) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("b", &bytes::Bin(&self.bytes))?;
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

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Object, A::Error> {
        serde::de::Visitor::visit_seq(bytes::BytesVisitor, seq).map(Object::from)
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
                "b" if bytes.is_none() => bytes = Some(map.next_value::<bytes::BinBuf>()?.0),
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

/// Serde helpers that encode byte strings as msgpack `bin` and read them back from `bin` or from
/// the array of integers earlier versions wrote: `#[serde(with = "bytes")]` on a `Vec<u8>`,
/// `bytes::list` on a `Vec<Vec<u8>>`, `bytes::keyed` on a `Vec<(Vec<u8>, T)>`.
pub mod bytes {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeSeq, Serializer};

    /// Bytes that serialize as a byte string.
    #[derive(Debug, Clone, Copy)]
    pub struct Bin<'a>(pub &'a [u8]);

    impl Serialize for Bin<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// Owned bytes that deserialize from a byte string or from an array of integers.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct BinBuf(pub Vec<u8>);

    impl<'de> Deserialize<'de> for BinBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(BytesVisitor).map(BinBuf)
        }
    }

    /// Reads bytes from a byte string or from an array of integers.
    pub(crate) struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string or an array of bytes")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The size hint comes from the input: cap what it reserves.
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
            while let Some(b) = seq.next_element::<u8>()? {
                bytes.push(b);
            }
            Ok(bytes)
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }

    /// Serializes `v` as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string or an array of integers.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(BytesVisitor)
    }

    /// A list of byte strings.
    pub mod list {
        use super::*;

        /// Serializes each element as a byte string.
        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for b in v {
                seq.serialize_element(&Bin(b))?;
            }
            seq.end()
        }

        /// Deserializes a list of byte strings or arrays of integers.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            let list = Vec::<BinBuf>::deserialize(d)?;
            Ok(list.into_iter().map(|b| b.0).collect())
        }
    }

    /// A list of pairs whose first element is a byte string.
    pub mod keyed {
        use super::*;

        /// Serializes each pair with its bytes as a byte string.
        pub fn serialize<S: Serializer, T: Serialize>(
            v: &[(Vec<u8>, T)],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for (b, t) in v {
                seq.serialize_element(&(Bin(b), t))?;
            }
            seq.end()
        }

        /// Deserializes pairs whose bytes are a byte string or an array of integers.
        pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<Vec<(Vec<u8>, T)>, D::Error> {
            let list = Vec::<(BinBuf, T)>::deserialize(d)?;
            Ok(list.into_iter().map(|(b, t)| (b.0, t)).collect())
        }
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
    fn an_object_encodes_as_a_byte_string_and_reads_the_integer_array_of_earlier_versions() {
        let bytes = vec![0u8, 7, 200, 255];
        let object = Object::from(bytes.clone());
        // bin 8, length 4, the bytes.
        assert_eq!(
            rmp_serde::to_vec(&object).expect("encodes"),
            [0xc4, 4, 0, 7, 200, 255]
        );
        let old = rmp_serde::to_vec(&bytes).expect("encodes");
        assert_eq!(old, [0x94, 0, 7, 0xcc, 200, 0xcc, 255]);
        assert_eq!(decode_msgpack::<Object>(&old).expect("decodes"), object);
        let typed = Object::typed(bytes.clone(), Some("text/plain".into()));
        let mut old_typed = vec![0x82, 0xa1, b'b'];
        old_typed.extend_from_slice(&old);
        old_typed.extend_from_slice(&[0xa1, b't', 0xaa]);
        old_typed.extend_from_slice(b"text/plain");
        assert_eq!(
            decode_msgpack::<Object>(&old_typed).expect("decodes"),
            typed
        );
    }

    #[test]
    fn byte_fields_encode_as_byte_strings_and_read_both_forms() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Fields {
            #[serde(with = "bytes")]
            key: Vec<u8>,
            #[serde(with = "bytes::list")]
            keys: Vec<Vec<u8>>,
            #[serde(with = "bytes::keyed")]
            pairs: Vec<(Vec<u8>, u8)>,
        }
        #[derive(serde::Serialize)]
        struct Old {
            key: Vec<u8>,
            keys: Vec<Vec<u8>>,
            pairs: Vec<(Vec<u8>, u8)>,
        }
        let fields = Fields {
            key: b"k".to_vec(),
            keys: vec![b"a".to_vec(), vec![]],
            pairs: vec![(b"p".to_vec(), 9)],
        };
        let new = rmp_serde::to_vec(&fields).expect("encodes");
        assert_eq!(
            new,
            [0x93, 0xc4, 1, b'k', 0x92, 0xc4, 1, b'a', 0xc4, 0, 0x91, 0x92, 0xc4, 1, b'p', 9]
        );
        assert_eq!(decode_msgpack::<Fields>(&new).expect("decodes"), fields);
        let old = Old {
            key: fields.key.clone(),
            keys: fields.keys.clone(),
            pairs: fields.pairs.clone(),
        };
        let old = rmp_serde::to_vec(&old).expect("encodes");
        assert_ne!(old, new);
        assert_eq!(decode_msgpack::<Fields>(&old).expect("decodes"), fields);
        // Neither form may claim more than it holds.
        assert!(decode_msgpack::<Fields>(&[0x93, 0xc4, 9, b'k']).is_err());
        assert!(decode_msgpack::<Fields>(&[0x93, 0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
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
        // Written back in this version's form: the value as a byte string.
        let rewritten = rmp_serde::to_vec(&new).expect("encodes");
        assert_ne!(rewritten, encoded);
        assert_eq!(decode_msgpack::<Sibs>(&rewritten).expect("decodes"), new);
    }
}
