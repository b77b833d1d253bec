//! A network of namespaces: node `i` in its own network namespace, linked by a veth pair to a
//! bridge in the root namespace, where the clients run. Faults: a node's link set down (it is cut
//! off from everyone, clients included), or a split of the nodes into two sides that cannot reach
//! each other (blackhole routes in each namespace) while the clients still reach every node.
//!
//! Addresses are taken from 198.18.0.0/15, the range set aside for network benchmarks (RFC 2544),
//! rather than 10/8, so that the bridge's route cannot shadow a private network the machine uses.
//! Everything is removed when the [`Network`] is dropped, also when a test fails.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use dynamo_node::NodeId;

/// Runs `ip ARGS`; the error says what failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Namespaces, veth pairs and a bridge for N nodes.
pub(crate) struct Network {
    n: u64,
    tag: String,
    /// The /24: 198.a.b.0.
    net: (u8, u8),
    namespaces: Vec<String>,
    bridge: Option<String>,
    /// Nodes whose link is down.
    cut: BTreeSet<NodeId>,
    /// Blackhole routes: (in the namespace of, to the address of).
    blackholes: Vec<(NodeId, NodeId)>,
}

impl Network {
    /// Creates the network, or says why it cannot (not root, no `ip netns`).
    pub(crate) fn create(n: u64) -> Result<Network, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        // A /24 no interface of this machine has an address in.
        let (count, net) = (0..16)
            .map(|_| {
                let count = COUNTER.fetch_add(1, Ordering::Relaxed);
                let h = pid.wrapping_mul(31).wrapping_add(count * 7919) % 512;
                (count, (18 + (h / 256) as u8, (h % 256) as u8))
            })
            .find(|(_, (a, b))| {
                Command::new("ip")
                    .args([
                        "-o",
                        "-4",
                        "addr",
                        "show",
                        "to",
                        &format!("198.{a}.{b}.0/24"),
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
            })
            .ok_or("no free 198.18.0.0/15 subnet (or `ip` does not work)")?;
        let mut network = Network {
            n,
            tag: format!("{}{count}", pid % 100_000),
            net,
            namespaces: Vec::new(),
            bridge: None,
            cut: BTreeSet::new(),
            blackholes: Vec::new(),
        };
        network.build()?; // on error, dropping `network` removes what was made
        Ok(network)
    }

    fn build(&mut self) -> Result<(), String> {
        let bridge = format!("dfb{}", self.tag);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        self.bridge = Some(bridge.clone());
        let gateway = format!("{}/24", self.ip(254));
        ip(&["addr", "add", &gateway, "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for id in 1..=self.n {
            let ns = self.namespace(id);
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            let veth = self.veth(id);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            let address = format!("{}/24", self.ip(id));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The namespace of node `id`.
    pub(crate) fn namespace(&self, id: NodeId) -> String {
        format!("dynamo-faults-{}-{id}", self.tag)
    }

    /// The root namespace's end of node `id`'s veth pair.
    fn veth(&self, id: NodeId) -> String {
        format!("dfv{}n{id}", self.tag)
    }

    /// Node `id`'s IP address (254: the bridge's).
    pub(crate) fn ip(&self, id: NodeId) -> String {
        format!("198.{}.{}.{id}", self.net.0, self.net.1)
    }

    /// Cuts node `id` off: its link goes down.
    pub(crate) fn cut(&mut self, id: NodeId) -> Result<(), String> {
        ip(&["link", "set", &self.veth(id), "down"])?;
        self.cut.insert(id);
        Ok(())
    }

    /// Splits the nodes into `side` and the others: neither side reaches the other (clients, in
    /// the root namespace, reach both).
    pub(crate) fn split(&mut self, side: &[NodeId]) -> Result<(), String> {
        let other: Vec<NodeId> = (1..=self.n).filter(|i| !side.contains(i)).collect();
        for &a in side {
            for &b in &other {
                for (from, to) in [(a, b), (b, a)] {
                    let target = format!("{}/32", self.ip(to));
                    ip(&[
                        "-n",
                        &self.namespace(from),
                        "route",
                        "add",
                        "blackhole",
                        &target,
                    ])?;
                    self.blackholes.push((from, to));
                }
            }
        }
        Ok(())
    }

    /// Undoes every cut and split.
    pub(crate) fn heal(&mut self) -> Result<(), String> {
        for id in std::mem::take(&mut self.cut) {
            ip(&["link", "set", &self.veth(id), "up"])?;
        }
        for (from, to) in std::mem::take(&mut self.blackholes) {
            let target = format!("{}/32", self.ip(to));
            ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &target,
            ])?;
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Also removes its veth pair.
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("faults: cleanup: {e}");
            }
        }
        if let Some(bridge) = &self.bridge {
            if let Err(e) = ip(&["link", "del", bridge]) {
                eprintln!("faults: cleanup: {e}");
            }
        }
    }
}
