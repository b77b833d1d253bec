//! `dynamo serve`: its flags and configuration file, the runtime configuration they make, and
//! the node run until a signal stops it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use serde::Deserialize;

use dynamo_node::client::{Client, ClientConfig};
use dynamo_node::redb_store::Durability;
use dynamo_node::runtime::{identity, Engine, Node, RuntimeConfig};
use dynamo_node::{NodeConfig, NodeId};

#[derive(Args, Debug, Default)]
pub(crate) struct ServeArgs {
    /// TOML configuration file; flags override it. Top-level keys: id, listen, advertise,
    /// data_dir, peer_secret, client_secret, encryption, durability ("durable" or "buffered"),
    /// sync_interval_ms; a [node] table holds the NodeConfig fields (n, r, w, partitions,
    /// request_timeout, mode = "sloppy" | "strict", gossip_interval, sync_interval (0: off),
    /// read_repair, hinted_handoff, seeds = [[2, "host:port"]], initial_members, zone, ...;
    /// see the NodeConfig docs).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (below 16,777,216).
    #[arg(long)]
    id: Option<NodeId>,
    /// Address to listen on (default 127.0.0.1:7001; a host name is resolved).
    #[arg(long)]
    listen: Option<String>,
    /// Address other nodes reach this one at (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Address of the HTTP API (default: the listen address's host, port + 1000, so 7001 serves
    /// HTTP on 8001); `none` serves no HTTP API.
    #[arg(long)]
    http_listen: Option<String>,
    /// Serve /metrics without the bearer token (for scrapers that cannot send one).
    #[arg(long)]
    metrics_public: bool,
    /// Data directory. Without one, data lives in memory and is lost at stop.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage engine of the data directory: fjall (an LSM tree, the default for a new
    /// directory) or redb (a copy-on-write B-tree). Default: the engine the directory holds.
    #[arg(long)]
    storage: Option<String>,
    /// The secret nodes prove to each other; give it to nodes only.
    #[arg(long, env = "DYNAMO_PEER_SECRET", hide_env_values = true)]
    peer_secret: Option<String>,
    /// The secret clients prove (must differ from the peer secret).
    #[arg(long, env = "DYNAMO_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Do not encrypt connections after the handshake (for benchmarks; every node and client of
    /// the cluster must say so too).
    #[arg(long)]
    no_encryption: bool,
    /// The cluster's name.
    #[arg(long)]
    cluster: Option<String>,
    /// Initial ring members of a new cluster, `ID` or `ID@ZONE`, comma separated; every node of
    /// a new cluster must agree. A node that joins an existing cluster gives --peer instead.
    #[arg(long, value_delimiter = ',')]
    members: Vec<String>,
    /// This node's zone (rack, data centre): replicas of a key go to distinct zones first.
    #[arg(long)]
    zone: Option<String>,
    /// Joining an existing cluster: wait for an operator's `dynamo commit` instead of being
    /// added as soon as the cluster sees this node.
    #[arg(long)]
    wait_for_commit: bool,
    /// A seed node, `ID=HOST:PORT` (repeatable).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Join a running cluster through any member, `HOST:PORT`: the node asks it (as a client)
    /// for the members and their addresses and uses them as seeds. With --wait-for-commit it then
    /// waits for `dynamo commit`; without, the cluster adds it as soon as it is seen.
    #[arg(long)]
    join: Option<String>,
    /// Buffered writes: fsync at most every --sync-interval-ms instead of before every
    /// acknowledgement (faster; a crash may lose the last interval's writes).
    #[arg(long)]
    buffered: bool,
    /// With --buffered: longest time between two fsyncs.
    #[arg(long)]
    sync_interval_ms: Option<u64>,
    /// Replication factor N (default 3).
    #[arg(long)]
    n: Option<usize>,
    /// Read quorum R (default 2).
    #[arg(long)]
    r: Option<usize>,
    /// Write quorum W (default 2).
    #[arg(long)]
    w: Option<usize>,
    /// Replicas a get asks at once, R to N (default: all N, as in the paper); the others only
    /// when an answer does not count or after --read-hedge-ms.
    #[arg(long)]
    read_fanout: Option<usize>,
    /// With --read-fanout: how long a get waits before it asks the other replicas (default 50).
    #[arg(long)]
    read_hedge_ms: Option<u64>,
}

/// The configuration file of `dynamo serve`.
#[derive(Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    id: Option<NodeId>,
    listen: Option<String>,
    advertise: Option<String>,
    /// The HTTP API's address, or "none".
    http_listen: Option<String>,
    /// Serve /metrics without the token.
    metrics_public: Option<bool>,
    data_dir: Option<PathBuf>,
    peer_secret: Option<String>,
    client_secret: Option<String>,
    /// `false` turns encryption off (benchmarks).
    encryption: Option<bool>,
    /// `durable` (default) or `buffered`.
    durability: Option<String>,
    /// `fjall` or `redb` (default: the engine the data directory holds, fjall for a new one).
    storage: Option<String>,
    sync_interval_ms: Option<u64>,
    /// Per-node credentials (see `dynamo_node::runtime::identity`): the authority's public key,
    /// this node's private key and its certificate, in hex.
    authority: Option<String>,
    node_key: Option<String>,
    node_cert: Option<String>,
    node: Option<NodeConfig>,
}

fn runtime_config(args: &ServeArgs) -> Result<RuntimeConfig> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let id = args
        .id
        .or(file.id)
        .ok_or_else(|| anyhow!("--id (or `id` in the config file) is required"))?;
    let peer_secret = args
        .peer_secret
        .clone()
        .or(file.peer_secret)
        .ok_or_else(|| {
            anyhow!(
                "--peer-secret, DYNAMO_PEER_SECRET or `peer_secret` in the config file is required"
            )
        })?;
    let client_secret = args.client_secret.clone().or(file.client_secret).ok_or_else(|| {
        anyhow!(
            "--client-secret, DYNAMO_CLIENT_SECRET or `client_secret` in the config file is required"
        )
    })?;
    let mut node = file.node.unwrap_or_default();
    if let Some(c) = &args.cluster {
        node.cluster = c.clone();
    }
    if !args.members.is_empty() {
        node.initial_members.clear();
        node.member_zones.clear();
        for m in &args.members {
            let (id, zone) = match m.split_once('@') {
                Some((id, zone)) => (id, Some(zone)),
                None => (m.as_str(), None),
            };
            let id: NodeId = id
                .trim()
                .parse()
                .with_context(|| format!("--members {m:?}: expected ID or ID@ZONE"))?;
            node.initial_members.push(id);
            if let Some(zone) = zone {
                node.member_zones.push((id, zone.to_owned()));
            }
        }
    }
    if let Some(zone) = &args.zone {
        node.zone = Some(zone.clone());
    }
    if node.zone.is_none() {
        node.zone = node
            .member_zones
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, z)| z.clone());
    }
    if args.wait_for_commit {
        node.wait_for_commit = true;
    }
    for p in &args.peers {
        let (pid, addr) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--peer {p:?}: expected ID=HOST:PORT"))?;
        let pid: NodeId = pid
            .parse()
            .with_context(|| format!("--peer {p:?}: bad id"))?;
        node.seeds.retain(|(s, _)| *s != pid);
        node.seeds.push((pid, addr.to_string()));
    }
    if let Some(n) = args.n {
        node.n = n;
    }
    if let Some(r) = args.r {
        node.r = r;
    }
    if let Some(w) = args.w {
        node.w = w;
    }
    if let Some(reads) = args.read_fanout {
        node.read_fanout = Some(reads);
    }
    if let Some(hedge) = args.read_hedge_ms {
        node.read_hedge = hedge;
    }
    let credential = match (&file.authority, &file.node_key, &file.node_cert) {
        (None, None, None) => None,
        (Some(authority), Some(key), Some(cert)) => {
            let authority = identity::unhex32(authority, "authority").map_err(|e| anyhow!(e))?;
            let key = identity::unhex32(key, "node_key").map_err(|e| anyhow!(e))?;
            let cert = identity::unhex(cert, "node_cert").map_err(|e| anyhow!(e))?;
            Some((authority, identity::NodeIdentity::new(id, key, cert)))
        }
        _ => bail!("per-node credentials need all of authority, node_key and node_cert"),
    };
    let mut rc = RuntimeConfig::new(id, node, peer_secret, client_secret);
    if let Some((authority, credential)) = credential {
        rc.authority = Some(authority);
        rc.identity = Some(credential);
    }
    rc.encrypt = !args.no_encryption && file.encryption.unwrap_or(true);
    rc.listen = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    rc.advertise = args.advertise.clone().or(file.advertise);
    let http_listen = match args.http_listen.clone().or(file.http_listen) {
        Some(a) if a == "none" => None,
        Some(a) => Some(a),
        None => Some(default_http_listen(&rc.listen)?),
    };
    rc.http = http_listen.map(|listen| {
        let mut http = dynamo_node::http::HttpConfig::new(listen);
        http.metrics_public = args.metrics_public || file.metrics_public.unwrap_or(false);
        http
    });
    rc.data_dir = args.data_dir.clone().or(file.data_dir);
    if let Some(name) = args.storage.clone().or(file.storage) {
        rc.storage = Some(
            Engine::parse(&name)
                .ok_or_else(|| anyhow!("storage {name:?}: expected \"fjall\" or \"redb\""))?,
        );
    }
    let buffered = args.buffered
        || match file.durability.as_deref() {
            None | Some("durable") => false,
            Some("buffered") => true,
            Some(other) => bail!("durability {other:?}: expected \"durable\" or \"buffered\""),
        };
    if !buffered && file.sync_interval_ms.is_some() {
        // Refusing it would stop nodes whose files set it harmlessly; say it does nothing.
        tracing::warn!(
            "sync_interval_ms applies to buffered writes only: ignored (durability = \"durable\")"
        );
    }
    if !buffered && args.sync_interval_ms.is_some() {
        bail!(
            "--sync-interval-ms applies to --buffered writes only (a durable node fsyncs before \
             every acknowledgement)"
        );
    }
    if buffered {
        let ms = args
            .sync_interval_ms
            .or(file.sync_interval_ms)
            .unwrap_or(1000);
        rc.durability = Durability::Buffered {
            sync_interval: Duration::from_millis(ms),
        };
    }
    Ok(rc)
}

/// The HTTP address beside a listen address: same host, port + 1000.
fn default_http_listen(listen: &str) -> Result<String> {
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--listen {listen:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--listen {listen:?}: bad port"))?;
    match port {
        0 => Ok(format!("{host}:0")),
        p => match p.checked_add(1000) {
            Some(http) => Ok(format!("{host}:{http}")),
            None => bail!(
                "--listen port {p} leaves no room for the HTTP port (+1000): give --http-listen"
            ),
        },
    }
}

pub(crate) async fn serve(args: &ServeArgs) -> Result<()> {
    let mut config = runtime_config(args)?;
    if let Some(member) = &args.join {
        let mut cc = ClientConfig::new(vec![member.clone()], config.client_secret.clone());
        cc.encrypt = config.encrypt;
        cc.cluster = config.node.cluster.clone();
        let status = Client::new(cc)
            .status()
            .await
            .with_context(|| format!("--join {member}: cannot ask it for the cluster's members"))?;
        for m in status.members {
            if m.id != config.id && !m.address.is_empty() {
                config.node.seeds.retain(|(s, _)| *s != m.id);
                config.node.seeds.push((m.id, m.address));
            }
        }
        tracing::info!(via = %member, seeds = ?config.node.seeds, "joining a running cluster");
    }
    if config.data_dir.is_none() {
        tracing::warn!("no --data-dir: data lives in memory and is lost when the node stops");
    }
    open_files(&config.limits);
    let mut node = Node::start(config).await.context("cannot start the node")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = node.wait() => return r.context("the node stopped"),
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    node.shutdown().await.context("shutdown")?;
    Ok(())
}

/// Raises the soft limit on open files to the hard one, and warns when even that is below what
/// the connection caps can take: TCP and HTTP clients (1,024 each by default; connections that
/// gave their slot up and still finish what they read are as many again, for each), handshakes,
/// peers, and a margin for the store's files, listeners and outgoing links. With the common soft
/// limit of 1,024, clients holding their slots (no secret needed for HTTP's `/openapi.json`) ran
/// the node out of descriptors, and then it accepted nobody, peers included.
fn open_files(limits: &dynamo_node::runtime::ConnectionLimits) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let needed =
        (4 * limits.max_connections + limits.max_handshakes + limits.max_peers + 256) as u64;
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    // To the hard limit; an unlimited hard limit (macOS) takes a finite soft one.
    let target = limit.maximum.unwrap_or(needed.max(1 << 16));
    if soft.is_some_and(|s| s < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = Some(target),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    if let Some(soft) = soft.filter(|&s| s < needed) {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-file limit is below what the connection limits allow: raise it (ulimit -n), \
             or clients holding connections can stop the node from accepting any, peers included"
        );
    }
}
