use dynamo_ring::{HashFunction, NodeSpec, Ring, RingConfig, Strategy};
use quickcheck::{Arbitrary, Gen};

/// A random but valid ring description.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: RingConfig,
    pub nodes: Vec<NodeSpec<u32>>,
}

impl Setup {
    pub fn ring(&self) -> Ring<u32> {
        Ring::new(self.config, self.nodes.clone()).expect("valid setup")
    }

    pub fn partitions(&self) -> Option<u32> {
        match self.config.strategy {
            Strategy::EqualPartitions { partitions } => Some(partitions),
            _ => None,
        }
    }
}

impl Arbitrary for Setup {
    fn arbitrary(g: &mut Gen) -> Self {
        let node_count = 1 + usize::arbitrary(g) % 12;
        let replicas = 1 + usize::arbitrary(g) % 4;
        let zones = u8::arbitrary(g) % 5; // 0: no zones
        let strategy = if bool::arbitrary(g) {
            Strategy::RandomTokens {
                tokens_per_node: 1 + u32::arbitrary(g) % 16,
                seed: u64::arbitrary(g),
            }
        } else {
            Strategy::EqualPartitions {
                partitions: *g.choose(&[16u32, 32, 64, 128]).unwrap_or(&64),
            }
        };
        let hash = if bool::arbitrary(g) {
            HashFunction::Md5
        } else {
            HashFunction::Sha1
        };
        let mut ids: Vec<u32> = Vec::new();
        while ids.len() < node_count {
            let id = u32::arbitrary(g) % 1000;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let nodes = ids
            .into_iter()
            .map(|id| {
                let mut spec = NodeSpec::new(id).with_weight(1 + u32::arbitrary(g) % 3);
                if zones > 0 {
                    spec = spec.with_zone(format!("z{}", id % u32::from(zones)));
                }
                spec
            })
            .collect();
        Setup {
            config: RingConfig {
                hash,
                strategy,
                replicas,
            },
            nodes,
        }
    }
}

pub fn keys(count: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..count).map(|i| format!("key-{i}").into_bytes())
}
