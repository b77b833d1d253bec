//! `dynamo init`: configuration files for a new cluster, with fresh secrets.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;

use dynamo_node::runtime::identity::{hex, unhex32, Authority, NodeIdentity};

/// What `dynamo init` needs.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Every node's address, `HOST:PORT`, comma separated; node i gets id i.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Directory to write node-ID.toml files and client.env into.
    #[arg(long, default_value = "dynamo-config")]
    out: PathBuf,
    /// Each node's data directory (on its own machine).
    #[arg(long, default_value = "/var/lib/dynamo")]
    data_dir: PathBuf,
    /// Zones, one per node in the order of --nodes (for example racks: a,a,b,b,c,c).
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
}

/// The cluster name `dynamo init` writes (the default).
const CLUSTER: &str = "dynamo";

/// The authority's key file: its secret key, and its public key for reference.
fn authority_file(authority: &Authority) -> String {
    format!(
        "# The cluster authority: it certifies node keys (`dynamo keys issue`). Keep this file\n\
         # off the nodes; the nodes hold only the public key.\n\
         secret = \"{}\"\n\
         public = \"{}\"\n",
        hex(&authority.secret()),
        hex(&authority.public())
    )
}

/// A node file's credential lines.
fn credential_lines(authority: &[u8; 32], node: &NodeIdentity) -> String {
    format!(
        "# Per-node credential: peers must prove the key the authority certified for their id.\n\
         authority = \"{}\"\n\
         node_key = \"{}\"\n\
         node_cert = \"{}\"\n",
        hex(authority),
        hex(&node.secret()),
        hex(&node.certificate.signature)
    )
}

/// What `dynamo keys issue` needs.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The authority's key file (`authority.key` from `dynamo init`).
    #[arg(long)]
    authority_key: PathBuf,
    /// The new node's id.
    #[arg(long)]
    id: u64,
    /// The cluster's name.
    #[arg(long, default_value = CLUSTER)]
    cluster: String,
}

/// Prints the credential lines of a new node's configuration file.
pub fn issue(args: &IssueArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.authority_key)
        .with_context(|| format!("cannot read {}", args.authority_key.display()))?;
    let secret = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .ok_or_else(|| anyhow!("{}: no `secret = ...` line", args.authority_key.display()))?;
    let authority = Authority::from_secret(unhex32(&secret, "secret").map_err(|e| anyhow!(e))?);
    say!(
        "# add to node {}'s configuration file (top level):",
        args.id
    );
    say!(
        "{}",
        credential_lines(
            &authority.public(),
            &authority.issue(&args.cluster, args.id)
        )
        .trim_end()
    );
    Ok(())
}

/// 32 random bytes as hex.
fn secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write(path: &Path, text: &str, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists (--force overwrites it)", path.display());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // The files hold secrets: nobody else may read them, not even while they are written.
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        // (A file that existed, overwritten with --force, keeps its mode otherwise.)
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    use std::io::Write as _;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes `node-ID.toml` for every node (same secrets, members and seeds) and `client.env`.
pub fn run(args: &InitArgs) -> Result<()> {
    if !args.zones.is_empty() && args.zones.len() != args.nodes.len() {
        bail!(
            "--zones names {} zones for {} nodes",
            args.zones.len(),
            args.nodes.len()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (peer, client) = (secret(), secret());
    // Per-node credentials: the authority stays with the operator, each node gets its own key
    // and certificate.
    let authority = Authority::generate();
    write(
        &args.out.join("authority.key"),
        &authority_file(&authority),
        args.force,
    )?;
    let ids: Vec<usize> = (1..=args.nodes.len()).collect();
    let members: Vec<String> = ids.iter().map(usize::to_string).collect();
    let seeds: Vec<String> = ids
        .iter()
        .zip(&args.nodes)
        .map(|(id, addr)| format!("[{id}, \"{addr}\"]"))
        .collect();
    let zones: Vec<String> = ids
        .iter()
        .zip(&args.zones)
        .map(|(id, z)| format!("[{id}, \"{z}\"]"))
        .collect();
    // Fewer machines than the default N: every node replicates every key, with majority
    // quorums (N = 3 on one node could never acknowledge a put), as `dynamo cluster` does.
    let (n, quorum) =
        crate::cluster::small_cluster_quorums(args.nodes.len()).unwrap_or_else(|| {
            let defaults = dynamo_node::NodeConfig::default();
            (defaults.n, defaults.w)
        });
    for (id, address) in ids.iter().zip(&args.nodes) {
        let port = address.rsplit_once(':').map_or("7001", |(_, p)| p);
        let zone = args
            .zones
            .get(id - 1)
            .map(|z| format!("zone = \"{z}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "# dynamo node {id}: start it with `dynamo serve --config node-{id}.toml`.\n\
             # Written by `dynamo init`; every node of the cluster shares the secrets below.\n\
             id = {id}\n\
             # Where to listen, and the address other nodes and clients reach this node at.\n\
             listen = \"0.0.0.0:{port}\"\n\
             advertise = \"{address}\"\n\
             data_dir = \"{}\"\n\
             # Nodes prove the peer secret to each other; clients prove the client secret.\n\
             peer_secret = \"{peer}\"\n\
             client_secret = \"{client}\"\n\
             {}\
             # \"durable\": fsync before every acknowledgement; \"buffered\": at most every\n\
             # sync_interval_ms.\n\
             durability = \"durable\"\n\
             \n\
             [node]\n\
             # A new cluster's first ring; later changes go through `dynamo plan` / `commit`.\n\
             initial_members = [{}]\n\
             seeds = [{}]\n\
             member_zones = [{}]\n\
             {zone}\
             n = {n}\n\
             r = {quorum}\n\
             w = {quorum}\n\
             # \"sloppy\" (hinted handoff to fallbacks) or \"strict\" quorums.\n\
             mode = \"sloppy\"\n",
            args.data_dir.display(),
            credential_lines(&authority.public(), &authority.issue(CLUSTER, *id as u64)),
            members.join(", "),
            seeds.join(", "),
            zones.join(", "),
        );
        write(&args.out.join(format!("node-{id}.toml")), &text, args.force)?;
    }
    let env = format!(
        "# For clients: `set -a; . client.env; set +a`, then `dynamo get KEY`.\n\
         DYNAMO_CLIENT_SECRET={client}\n\
         DYNAMO_NODES={}\n",
        args.nodes.join(",")
    );
    write(&args.out.join("client.env"), &env, args.force)?;
    say!(
        "wrote {} node configurations and client.env to {} (mode 600: they hold the secrets)",
        args.nodes.len(),
        args.out.display()
    );
    say!("copy node-ID.toml to each machine and run `dynamo serve --config node-ID.toml` there");
    say!(
        "keep authority.key off the nodes: `dynamo keys issue --authority-key {} --id N` \
         certifies a node added later",
        args.out.join("authority.key").display()
    );
    Ok(())
}
