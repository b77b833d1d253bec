//! `dynamo plan` and `dynamo commit`: staged membership changes.
//!
//! The plan is computed by the node named with `--node` (any member), from its ring; the bytes
//! that would move are summed from the sizes every ring member reports for the ranges it holds.
//! The commit goes to the claimant only, with the ring version the plan was made from: a ring
//! that moved on meanwhile makes the commit fail, and the operator plans again.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use clap::Args;

use dynamo_node::core::{ChangePlan, ChangeRequest};
use dynamo_node::NodeId;

use crate::ConnArgs;

/// The nodes a change names.
#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// Nodes to add (ids, comma separated): started with a --peer of this cluster (and
    /// --wait-for-commit, so that nothing adds them before the commit).
    #[arg(long, value_delimiter = ',')]
    join: Vec<NodeId>,
    /// Ring members to remove (ids, comma separated): each hands its ranges over, then leaves.
    #[arg(long, value_delimiter = ',')]
    leave: Vec<NodeId>,
}

impl ChangeArgs {
    fn request(&self) -> ChangeRequest {
        ChangeRequest {
            joins: self.join.clone(),
            leaves: self.leave.clone(),
        }
    }

    fn flags(&self) -> String {
        let list = |ids: &[NodeId]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut out = String::new();
        if !self.join.is_empty() {
            out.push_str(&format!(" --join {}", list(&self.join)));
        }
        if !self.leave.is_empty() {
            out.push_str(&format!(" --leave {}", list(&self.leave)));
        }
        out
    }
}

/// `dynamo plan --node ADDR --join IDS --leave IDS`.
pub async fn plan(node: &str, change: &ChangeArgs, conn: &ConnArgs) -> Result<()> {
    let mut client = conn.client_of(vec![node.to_owned()]);
    let plan = client
        .plan(change.request())
        .await
        .with_context(|| format!("node {node} cannot plan the change"))?;
    let status = client.status().await?;
    let addresses: BTreeMap<NodeId, String> = status
        .members
        .iter()
        .map(|m| (m.id, m.address.clone()))
        .collect();
    print_plan(&plan, &addresses);
    // What moves, in bytes: each range as large as its largest copy.
    let mut sizes: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    let mut reported = 0;
    for address in addresses.values() {
        let mut member = conn.client_of(vec![address.clone()]);
        match member.partition_sizes().await {
            Ok(list) => {
                reported += 1;
                for s in list {
                    let entry = sizes.entry(s.range).or_insert((0, 0));
                    *entry = (entry.0.max(s.keys), entry.1.max(s.bytes));
                }
            }
            Err(e) => println!("  (no sizes from {address}: {e})"),
        }
    }
    let (keys, bytes) = plan.moves.iter().fold((0, 0), |(k, b), m| {
        let (mk, mb) = sizes.get(&m.range).copied().unwrap_or((0, 0));
        (k + mk, b + mb)
    });
    let stored: u64 = sizes.values().map(|s| s.1).sum();
    println!(
        "data moving: {} in {keys} key copies (of {} stored, one copy of each range; sizes from \
         {reported} of {} members)",
        human(bytes),
        human(stored),
        addresses.len()
    );
    let claimant = plan
        .claimant
        .and_then(|c| addresses.get(&c).cloned())
        .unwrap_or_else(|| node.to_owned());
    println!("to apply it:");
    println!(
        "  dynamo commit --node {claimant} --version {}{}",
        plan.version,
        change.flags()
    );
    Ok(())
}

/// `dynamo commit --node ADDR --version V --join IDS --leave IDS`.
pub async fn commit(node: &str, version: u64, change: &ChangeArgs, conn: &ConnArgs) -> Result<()> {
    let mut client = conn.client_of(vec![node.to_owned()]);
    let plan = match client.commit(version, change.request()).await {
        Ok(plan) => plan,
        // A commit that went out and got no answer may have been applied: run again, it would
        // be refused as stale.
        Err(e @ dynamo_node::client::Error::Unavailable { sent: true, .. }) => {
            return Err(e).with_context(|| {
                format!(
                    "node {node} gave no answer; the change may have been committed: see \
                     `dynamo members` before committing it again"
                )
            })
        }
        Err(e) => return Err(e).with_context(|| format!("node {node} did not commit the change")),
    };
    println!(
        "committed: ring version {} -> {}; {} replica copies move",
        plan.version,
        plan.version + 1,
        plan.moves.len()
    );
    print_forced(&plan);
    println!("follow the transfers with `dynamo members` (all nodes agree, none awaiting data)");
    Ok(())
}

fn print_plan(plan: &ChangePlan, addresses: &BTreeMap<NodeId, String>) {
    let claimant = plan
        .claimant
        .map_or("none up".to_owned(), |c| format!("node {c}"));
    println!(
        "plan from ring version {} (claimant: {claimant})",
        plan.version
    );
    println!(
        "{:>6}  {:<22} {:<10} {:>14} {:>7}",
        "node", "address", "zone", "copies before", "after"
    );
    for m in &plan.members {
        let what = if plan.request.joins.contains(&m.id) {
            "  (joins)"
        } else if plan.request.leaves.contains(&m.id) {
            "  (leaves)"
        } else {
            ""
        };
        println!(
            "{:>6}  {:<22} {:<10} {:>14} {:>7}{what}",
            m.id,
            if m.address.is_empty() {
                addresses.get(&m.id).map_or("?", String::as_str)
            } else {
                &m.address
            },
            m.zone.as_deref().unwrap_or("-"),
            m.copies_before,
            m.copies_after
        );
    }
    let ranges: std::collections::BTreeSet<usize> = plan.moves.iter().map(|m| m.range).collect();
    let zones = match plan.zones_after {
        0 => "none".to_owned(),
        z => z.to_string(),
    };
    println!(
        "replica copies moving: {} of {} ({:.1}%), in {} ranges; zones after: {zones}",
        plan.moves.len(),
        plan.copies,
        100.0 * plan.moves.len() as f64 / plan.copies.max(1) as f64,
        ranges.len(),
    );
    print_forced(plan);
}

/// The leavers that go without handing anything over, if any.
fn print_forced(plan: &ChangePlan) {
    if plan.forced.is_empty() {
        return;
    }
    let ids: Vec<String> = plan.forced.iter().map(ToString::to_string).collect();
    println!(
        "down, taken out without a hand-over (their copies and hints are given up; their ranges \
         refill from the other replicas): node {}",
        ids.join(", node ")
    );
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
