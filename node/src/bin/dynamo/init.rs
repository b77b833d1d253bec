//! `dynamo init`: configuration files for a new cluster, with fresh secrets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Args;

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

/// 32 random bytes as hex.
fn secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write(path: &Path, text: &str, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists (--force overwrites it)", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The files hold secrets.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
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
             n = 3\n\
             r = 2\n\
             w = 2\n\
             # \"sloppy\" (hinted handoff to fallbacks) or \"strict\" quorums.\n\
             mode = \"sloppy\"\n",
            args.data_dir.display(),
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
    Ok(())
}
