//! This project over its TCP client protocol (the Rust client of `dynamo_node::client`).

use dynamo_node::client::{Client, ClientConfig};

use super::{Backend, Connection, LoadError, Read};

/// A dynamo cluster: its nodes, client secret and encryption setting.
#[derive(Debug, Clone)]
pub struct Dynamo {
    nodes: Vec<String>,
    secret: Vec<u8>,
    encrypt: bool,
    name: String,
}

impl Dynamo {
    /// A cluster at `nodes`, reported as `name`.
    pub fn new(name: &str, nodes: Vec<String>, secret: &[u8], encrypt: bool) -> Self {
        Dynamo {
            nodes,
            secret: secret.to_vec(),
            encrypt,
            name: name.to_string(),
        }
    }
}

/// A connection to one node of the cluster (the client's first choice).
pub struct DynamoConn {
    client: Client,
}

impl Backend for Dynamo {
    type Conn = DynamoConn;

    fn name(&self) -> &str {
        &self.name
    }

    async fn connect(&self, index: usize) -> Result<DynamoConn, LoadError> {
        // Connection i starts with node i mod n: the connections spread round-robin.
        let mut nodes = self.nodes.clone();
        if !nodes.is_empty() {
            let shift = index % nodes.len();
            nodes.rotate_left(shift);
        }
        let mut config = ClientConfig::new(nodes.clone(), self.secret.clone());
        config.encrypt = self.encrypt;
        let client = Client::connect(config)
            .await
            .map_err(|e| LoadError::Connect {
                address: nodes.join(","),
                reason: e.to_string(),
            })?;
        Ok(DynamoConn { client })
    }
}

impl Connection for DynamoConn {
    async fn get(&mut self, key: &[u8]) -> Result<Read, LoadError> {
        let got = self
            .client
            .get(key)
            .await
            .map_err(|e| LoadError::Server(e.to_string()))?;
        Ok(Read {
            value: got.values.into_iter().next(),
            token: got.context,
        })
    }

    async fn put(&mut self, key: &[u8], value: &[u8], token: &[u8]) -> Result<(), LoadError> {
        self.client
            .put(key, value.to_vec(), token)
            .await
            .map_err(|e| LoadError::Server(e.to_string()))?;
        Ok(())
    }
}
