//! `dynamo status`: every node's view side by side, or one node's in detail.

use anyhow::Result;

use dynamo_node::client::Error;
use dynamo_node::runtime::RangeInfo;
use dynamo_node::NodeStatus;

use crate::ConnArgs;

/// Asks each node of `--nodes` for its own status (no failover) and prints one row per node, the
/// latency percentiles of the requests it coordinated, and whether the nodes agree on the ring.
/// Fails when a node does not answer or the nodes disagree.
pub async fn cluster(conn: &ConnArgs, json: bool) -> Result<()> {
    let views = views(conn).await;
    if json {
        let answered: Vec<&NodeStatus> =
            views.iter().filter_map(|(_, v)| v.as_ref().ok()).collect();
        say!("{}", serde_json::to_string_pretty(&answered)?);
    } else {
        say!(
            "{:<22} {:>5} {:>6} {:>9} {:>8} {:>6} {:>10}  {:<20} {:<20}",
            "address",
            "id",
            "ring v",
            "up/ring",
            "keys",
            "hints",
            "AE (fail)",
            "get p50/p99/p99.9",
            "put p50/p99/p99.9"
        );
    }
    for (address, view) in &views {
        match view {
            Ok(s) => {
                if json {
                    continue;
                }
                let up = s.members.iter().filter(|m| m.up).count();
                let ms = |l: &dynamo_node::core::LatencySummary| {
                    format!("{}/{}/{} ms", l.p50, l.p99, l.p999)
                };
                say!(
                    "{:<22} {:>5} {:>6} {:>9} {:>8} {:>6} {:>10}  {:<20} {:<20}",
                    address,
                    s.id,
                    s.ring_version,
                    format!("{up}/{}", s.members.len()),
                    s.keys,
                    s.hints_pending,
                    format!(
                        "{} ({})",
                        s.counters.sync_sessions, s.counters.sync_failures
                    ),
                    ms(&s.get_latency),
                    ms(&s.put_latency)
                );
            }
            Err(e) if !json => say!("{address:<22} no answer: {e}"),
            Err(_) => {}
        }
    }
    if !json {
        say_mismatches(&views)?;
    }
    let answered = agreement(conn, &views).await?;
    if !json {
        say!("all {answered} nodes agree on the ring (one node in detail: status --node ADDR)");
    }
    Ok(())
}

/// Says which nodes hear a ring of another shape than they are configured for.
fn say_mismatches(views: &[(String, Result<NodeStatus, Error>)]) -> Result<()> {
    for (address, view) in views {
        if let Ok(NodeStatus {
            id,
            ring_mismatch: Some(theirs),
            ..
        }) = view
        {
            say!(
                "node {id} ({address}) hears a ring of {theirs}, not the shape it is configured \
                 for: set `n` and `partitions` alike on every node"
            );
        }
    }
    Ok(())
}

/// `dynamo members`: each node's ring version, members, transfers running, hints held and ranges
/// awaiting data; fails when a node does not answer or the nodes disagree.
pub async fn members(conn: &ConnArgs) -> Result<()> {
    let views = views(conn).await;
    say!(
        "{:<22} {:>4} {:>8}  {:<24} {:>9} {:>6} {:>8}",
        "address",
        "id",
        "ring v",
        "members (up)",
        "transfers",
        "hints",
        "awaiting"
    );
    for (address, view) in &views {
        match view {
            Ok(s) => {
                let members: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| format!("{}{}", m.id, if m.up { "" } else { "(down)" }))
                    .collect();
                let id = match (s.leaving, s.members.iter().any(|m| m.id == s.id)) {
                    (true, true) => format!("{}~", s.id),
                    (true, false) if s.handed_over => format!("{}=", s.id),
                    (true, false) => format!("{}*", s.id),
                    (false, _) => s.id.to_string(),
                };
                say!(
                    "{:<22} {:>4} {:>8}  {:<24} {:>9} {:>6} {:>8}",
                    address,
                    id,
                    s.ring_version,
                    members.join(","),
                    s.transfers_running,
                    s.hints_pending,
                    s.partitions_incoming
                );
            }
            Err(e) => say!("{address:<22} no answer: {e}"),
        }
    }
    let leaving = |in_ring: bool, handed_over: bool| {
        views.iter().any(|(_, v)| {
            v.as_ref().is_ok_and(|s| {
                s.leaving
                    && s.members.iter().any(|m| m.id == s.id) == in_ring
                    && (in_ring || s.handed_over == handed_over)
            })
        })
    };
    if leaving(true, false) {
        say!("~: leaving, still in the ring: the claimant takes it out when the ring can lose it");
    }
    if leaving(false, false) {
        say!(
            "*: out of the ring, handing its ranges and hints over: do not stop it yet (it may \
             hold the only copies of writes it acknowledged, and each receiver must acknowledge \
             the hand-over's end)"
        );
    }
    if leaving(false, true) {
        say!("=: out of the ring and handed over: it can be stopped");
    }
    say_mismatches(&views)?;
    let answered = agreement(conn, &views).await?;
    say!("all {answered} nodes agree on the ring");
    Ok(())
}

/// Each node of `--nodes` asked for its own status (no failover: a node that does not answer is
/// reported as such).
async fn views(conn: &ConnArgs) -> Vec<(String, Result<NodeStatus, Error>)> {
    let mut views = Vec::new();
    for address in &conn.nodes {
        let mut client = conn.client_of(vec![address.clone()]);
        views.push((address.clone(), client.status().await));
    }
    views
}

/// How many nodes answered, if every node did and all use the same ring: its version, its
/// members, and every range's bounds and replicas, which each node is asked for (a node started
/// with another N or partition count builds another ring of the same version and members, and
/// keeps it: it would look in agreement by version and members alone).
async fn agreement(
    conn: &ConnArgs,
    views: &[(String, Result<NodeStatus, Error>)],
) -> Result<usize> {
    let mut rings = Vec::new();
    let mut asked = std::collections::BTreeSet::new();
    for (address, view) in views {
        let Ok(status) = view else { continue };
        asked.insert(status.id);
        let mut client = conn.client_of(vec![address.clone()]);
        let mut before = status.clone();
        // The ranges are of the ring the status named if the node's ring version is the same
        // after them (a commit may land between the two questions: ask again).
        for attempt in 1.. {
            let ranges = client
                .ring()
                .await
                .map_err(|e| anyhow::anyhow!("{address}: its ring: {e}"))?;
            let after = client
                .status()
                .await
                .map_err(|e| anyhow::anyhow!("{address}: its status: {e}"))?;
            if after.ring_version == before.ring_version || attempt == 3 {
                rings.push(RingView::of(&after, &ranges));
                break;
            }
            before = after;
        }
    }
    distinct(views.len(), &rings, &asked)
}

/// What two nodes that agree on the ring hold alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RingView {
    version: u64,
    members: Vec<u64>,
    /// Each range's start, end and replicas.
    ranges: Vec<(String, String, Vec<u64>)>,
}

impl RingView {
    fn of(status: &NodeStatus, ranges: &[RangeInfo]) -> Self {
        RingView {
            version: status.ring_version,
            members: status.members.iter().map(|m| m.id).collect(),
            ranges: ranges
                .iter()
                .map(|r| (r.start.clone(), r.end.clone(), r.replicas.clone()))
                .collect(),
        }
    }
}

/// How many of the `asked` nodes answered, if all did with one ring and they are every member
/// of it (`ids`: the answering nodes' ids; members not asked may hold another ring).
fn distinct(
    asked: usize,
    rings: &[RingView],
    ids: &std::collections::BTreeSet<u64>,
) -> Result<usize> {
    let views: std::collections::BTreeSet<&RingView> = rings.iter().collect();
    if rings.len() == asked && views.len() == 1 {
        let unasked: Vec<String> = rings
            .iter()
            .flat_map(|r| &r.members)
            .filter(|m| !ids.contains(m))
            .map(u64::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unasked.is_empty() {
            anyhow::bail!(
                "the {asked} nodes asked agree on the ring, but it has members they are not \
                 (not asked: {}): add their addresses to --nodes (`dynamo status --node ADDR` lists every \
                 member's address)",
                unasked.join(", ")
            );
        }
        Ok(rings.len())
    } else {
        let mut why = format!(
            "the nodes do not agree: {} ring views among {} of {asked} nodes",
            views.len(),
            rings.len()
        );
        let shapes: std::collections::BTreeSet<(u64, Vec<u64>)> = views
            .iter()
            .map(|v| (v.version, v.members.clone()))
            .collect();
        if views.len() > 1 && shapes.len() == 1 {
            why.push_str(
                " (the same version and members, other ranges or replicas: a node configured \
                 with another N or partition count?)",
            );
        }
        anyhow::bail!(why)
    }
}

/// The live staleness predictions of one node as a small table, one line per (R, W).
pub fn staleness_lines(s: Option<&dynamo_node::StalenessStatus>) -> Vec<String> {
    let Some(s) = s else {
        return vec![
            "staleness (PBS): not enough timed replica answers yet (it needs some puts and gets \
             coordinated here)"
                .to_owned(),
        ];
    };
    let mut lines = vec![format!(
        "staleness (PBS, from {} write and {} read round trips, {} timed flushes, {} trials): \
         P(a read t ms after a write commits returns it)",
        s.write_samples, s.read_samples, s.service_samples, s.trials
    )];
    let mut header = format!("  {:<14}", "N, R, W");
    for t in &s.times {
        header.push_str(&format!(" {:>9}", format!("t={t} ms")));
    }
    header.push_str(&format!("  {:>12}", format!("{}% at", s.target * 100.0)));
    lines.push(header);
    for c in &s.choices {
        let mut line = format!(
            "  {:<14}",
            format!(
                "{}, {}, {}{}",
                c.n,
                c.r,
                c.w,
                if c.configured { " *" } else { "" }
            )
        );
        for p in &c.p_consistent {
            line.push_str(&format!(" {:>8.3}%", p * 100.0));
        }
        let t = c
            .time_to_target
            .map_or_else(|| "-".to_owned(), |t| format!("{t:.1} ms"));
        line.push_str(&format!("  {t:>12}"));
        lines.push(line);
    }
    lines.push("  (* configured; the others: R or W one down or up)".to_owned());
    lines
}

#[cfg(test)]
mod tests {
    use super::{distinct, RingView};

    fn ids(ids: &[u64]) -> std::collections::BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn view(version: u64, replicas: &[u64]) -> RingView {
        RingView {
            version,
            members: vec![1, 2, 3],
            ranges: vec![("00".into(), "80".into(), replicas.to_vec())],
        }
    }

    /// Seen by the operator review: a node with another N or partition count kept its own ring
    /// of the same version and members, and `members` reported agreement.
    #[test]
    fn nodes_agree_only_on_the_same_ranges_and_replicas() {
        let a = view(1, &[1, 2, 3]);
        assert_eq!(
            distinct(3, &[a.clone(), a.clone(), a.clone()], &ids(&[1, 2, 3])).ok(),
            Some(3)
        );
        let err = distinct(
            3,
            &[a.clone(), a.clone(), view(1, &[1, 2])],
            &ids(&[1, 2, 3]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("another N or partition count"),
            "{err}"
        );
        assert!(distinct(
            3,
            &[a.clone(), a.clone(), view(2, &[1, 2, 3])],
            &ids(&[1, 2, 3])
        )
        .is_err());
        assert!(
            distinct(3, &[a.clone(), a], &ids(&[1, 2])).is_err(),
            "a node did not answer"
        );
    }

    /// Review of the command line, twenty-fifth session of issue 20: `dynamo members` asked the
    /// default three addresses of a four-member ring and reported "all 3 nodes agree", though
    /// member 4, never asked, could hold another ring or await data.
    #[test]
    fn members_not_asked_are_no_agreement() {
        let mut four = view(2, &[1, 2, 3]);
        four.members = vec![1, 2, 3, 4];
        let err = distinct(
            3,
            &[four.clone(), four.clone(), four.clone()],
            &ids(&[1, 2, 3]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not asked: 4"), "{err}");
        assert_eq!(
            distinct(4, &vec![four; 4], &ids(&[1, 2, 3, 4])).ok(),
            Some(4)
        );
    }
}
