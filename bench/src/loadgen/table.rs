//! The comparison table of `bench/peers.sh`: reads the JSON lines that `loadgen --json` wrote
//! (one per run) and writes Markdown: throughput and p99 per system and workload, the ratios
//! the performance issue asks for, and what each operation cost the servers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::Workload;

/// One run as read back from its JSON line.
#[derive(Debug, Clone)]
struct Row {
    system: String,
    workload: String,
    connections: u64,
    ops: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    bytes_per_write: Option<f64>,
    syscalls_per_op: Option<f64>,
    cpu_us_per_op: Option<f64>,
    driver_cpu_us_per_op: Option<f64>,
}

fn row(v: &Value) -> Option<Row> {
    Some(Row {
        system: v["system"].as_str()?.to_string(),
        workload: v["workload"].as_str()?.to_string(),
        connections: v["connections"].as_u64()?,
        ops: v["ops_per_sec"].as_f64()?,
        p50: v["all"]["p50_ms"].as_f64()?,
        p99: v["all"]["p99_ms"].as_f64()?,
        p999: v["all"]["p999_ms"].as_f64()?,
        errors: v["errors"].as_u64().unwrap_or(0),
        bytes_per_write: v["bytes_per_write"].as_f64(),
        syscalls_per_op: v["syscalls_per_op"].as_f64(),
        cpu_us_per_op: v["cpu_us_per_op"].as_f64(),
        driver_cpu_us_per_op: v["driver_cpu_us_per_op"].as_f64(),
    })
}

fn rows(jsonl: &str) -> Vec<Row> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| row(&v))
        .collect()
}

/// The Markdown report of the runs in `jsonl` (one JSON object per line; other lines are
/// skipped), with `note` under the title. With `before` (the JSON lines of an earlier run), a
/// last section shows that run's rows of this project beside the same rows now.
pub fn markdown(jsonl: &str, note: &str, before: Option<&str>) -> String {
    let rows = rows(jsonl);
    let mut systems: Vec<String> = Vec::new();
    for r in &rows {
        if !systems.contains(&r.system) {
            systems.push(r.system.clone());
        }
    }
    let mut conns: Vec<u64> = rows.iter().map(|r| r.connections).collect();
    conns.sort_unstable_by(|a, b| b.cmp(a));
    conns.dedup();
    // Every run of a cell, in the order they ran (one per round).
    let runs = |system: &str, workload: &str, c: u64| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.system == system && r.workload == workload && r.connections == c)
            .collect()
    };
    // A cell's median run (by throughput), whose other figures go with it.
    let find = |system: &str, workload: &str, c: u64| {
        let mut all = runs(system, workload, c);
        all.sort_by(|a, b| a.ops.total_cmp(&b.ops));
        all.get(all.len().saturating_sub(1) / 2).copied()
    };
    let rounds = systems
        .iter()
        .flat_map(|s| Workload::ALL.iter().map(move |w| (s, w)))
        .flat_map(|(s, w)| conns.iter().map(move |&c| runs(s, w.name(), c).len()))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "# This project against Redis and etcd\n\n{note}\n");
    if rounds > 1 {
        let _ = writeln!(
            out,
            "Each cell is the median of {rounds} rounds (every system runs once per round, one \
             after another), with the other figures of that run; each ratio is the median of \
             {rounds} rounds' ratios (each round's system against the same round's Redis or \
             etcd), with their range in brackets.\n"
        );
    }
    let _ = writeln!(
        out,
        "Closed loop, one request in flight per connection, connections spread round-robin over \
         the nodes or members. Workloads: `get` of preloaded keys; `put` of new keys; `rmw` a get \
         then a put of the same key with what the get returned (this project's context), one \
         operation; `mix` 95 % get and 5 % rmw; `zipf` the mix on Zipf-distributed keys \
         (θ = 0.99). Cells: operations per second (p99 ms). Latency runs from before a \
         request is encoded to after its reply is decoded; a closed loop sends no request while \
         one waits, so a stall delays the requests that would have come during it instead of \
         counting them (coordinated omission) and the percentiles understate it. Redis is one \
         server in memory; etcd is driven through its v3 JSON gateway (`/v3/kv/put`, \
         `/v3/kv/range`, linearizable reads), which costs it a JSON translation per request \
         that its gRPC clients do not pay.\n"
    );
    for &c in &conns {
        let _ = writeln!(out, "## {c} connection{}\n", if c == 1 { "" } else { "s" });
        let _ = write!(out, "| system |");
        for w in Workload::ALL {
            let _ = write!(out, " {} |", w.name());
        }
        let _ = writeln!(out, "\n|---|{}", "---|".repeat(Workload::ALL.len()));
        for s in &systems {
            let _ = write!(out, "| {s} |");
            for w in Workload::ALL {
                match find(s, w.name(), c) {
                    Some(r) => {
                        let _ = write!(out, " {} ({:.2})", thousands(r.ops), r.p99);
                        if r.errors > 0 {
                            let _ = write!(out, ", {} errors", r.errors);
                        }
                        let _ = write!(out, " |");
                    }
                    None => {
                        let _ = write!(out, " – |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
    let top = conns.first().copied().unwrap_or(50);
    let _ = writeln!(
        out,
        "## Ratios at {top} connections (the issue's targets)\n\n\
         | system | get / Redis GET (≥ 0.5; p99 ≤ 2 ms) | put / Redis SET (≥ 0.25) | put / etcd put (≥ 5; p99 ≤ 5 ms) | rmw / Redis SET (≥ 0.15) |\n|---|---|---|---|---|"
    );
    // `system`'s `workload` against `peer`'s `against`, round by round (the i-th run of each).
    let ratio = |system: &str, workload: &str, peer: &str, against: &str| {
        let mine = runs(system, workload, top);
        let theirs = runs(peer, against, top);
        let mut ratios: Vec<f64> = mine
            .iter()
            .zip(&theirs)
            .filter(|(_, b)| b.ops > 0.0)
            .map(|(a, b)| a.ops / b.ops)
            .collect();
        ratios.sort_by(f64::total_cmp);
        match ratios.len() {
            0 => "–".to_string(),
            1 => format!("{:.2}", ratios[0]),
            // The lower middle of an even count, as for the cells.
            n => format!(
                "{:.2} [{:.2}–{:.2}]",
                ratios[(n - 1) / 2],
                ratios[0],
                ratios[n - 1]
            ),
        }
    };
    for s in systems.iter().filter(|s| *s != "redis" && *s != "etcd") {
        let p99 = |w: &str| find(s, w, top).map_or("–".into(), |r| format!("{:.2} ms", r.p99));
        // `--buffered` answers before its fsync (at most a second later): beside etcd's fsynced
        // puts and the durable targets, it must say so.
        let label = if s.contains("buffered") {
            format!("{s} (no fsync before the answer: not durable)")
        } else {
            s.clone()
        };
        let _ = writeln!(
            out,
            "| {label} | {} (p99 {}) | {} | {} (p99 {}) | {} |",
            ratio(s, "get", "redis", "get"),
            p99("get"),
            ratio(s, "put", "redis", "put"),
            ratio(s, "put", "etcd", "put"),
            p99("put"),
            ratio(s, "rmw", "redis", "put"),
        );
    }
    let _ = writeln!(
        out,
        "\n## What an operation cost the servers ({top} connections)\n\n\
         Summed over every server process of the system during the measured window: disk bytes \
         written (`/proc/PID/io` `write_bytes`) per operation that wrote (all replicas \
         together), syscalls per operation (`perf stat -e raw_syscalls:sys_enter`), CPU time per \
         operation (`/proc/PID/stat`); and the load generator's own CPU time per operation \
         (the driver: it shares the two cores, so a client protocol that costs more to speak \
         leaves the servers less).\n\n\
         | system | workload | disk bytes per write | syscalls per op | server CPU µs per op | driver CPU µs per op | p50 ms | p99.9 ms |\n|---|---|---|---|---|---|---|---|"
    );
    // Each cell's median run (see `find`).
    let mut by_system: BTreeMap<usize, Vec<&Row>> = BTreeMap::new();
    for (i, s) in systems.iter().enumerate() {
        for w in Workload::ALL {
            if let Some(r) = find(s, w.name(), top) {
                by_system.entry(i).or_default().push(r);
            }
        }
    }
    let num = |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
    for rs in by_system.values() {
        for r in rs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                r.system,
                r.workload,
                if matches!(r.workload.as_str(), "put" | "rmw") {
                    num(r.bytes_per_write, 0)
                } else {
                    "–".into()
                },
                num(r.syscalls_per_op, 1),
                num(r.cpu_us_per_op, 0),
                num(r.driver_cpu_us_per_op, 1),
                r.p50,
                r.p999,
            );
        }
    }
    if let Some(before) = before {
        before_after(&mut out, &rows, &rows_of(before), top);
    }
    out
}

fn rows_of(jsonl: &str) -> Vec<Row> {
    rows(jsonl)
}

/// The earlier run's rows of this project (and Redis, for scale) beside this run's.
fn before_after(out: &mut String, now: &[Row], before: &[Row], top: u64) {
    let _ = writeln!(
        out,
        "\n## Before and after ({top} connections)\n\n\
         The earlier run (`bench/results/before/`, the code before this work: redb, the flush \
         inline in the driver; its own load and settings are in its file) beside this one, \
         with each run's Redis for scale.\n\n\
         | run | system | workload | ops/s | p99 ms | disk bytes per write | syscalls per op | server CPU µs per op |\n|---|---|---|---|---|---|---|---|"
    );
    for (label, rows) in [("before", before), ("now", now)] {
        for r in medians(rows).into_iter().filter(|r| {
            r.connections == top
                && (r.system.starts_with("dynamo") || r.system == "redis")
                && matches!(r.workload.as_str(), "get" | "put" | "rmw")
        }) {
            let num = |v: Option<f64>, d: usize| v.map_or("–".into(), |v| format!("{v:.d$}"));
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {:.2} | {} | {} | {} |",
                r.system,
                r.workload,
                thousands(r.ops),
                r.p99,
                if r.workload == "get" {
                    "–".into()
                } else {
                    num(r.bytes_per_write, 0)
                },
                num(r.syscalls_per_op, 1),
                num(r.cpu_us_per_op, 0),
            );
        }
    }
}

/// Each cell's median run (by throughput; the lower middle of an even count), in the order the
/// cells first ran.
fn medians(rows: &[Row]) -> Vec<&Row> {
    let mut cells: Vec<Vec<&Row>> = Vec::new();
    for r in rows {
        let same = |c: &&mut Vec<&Row>| {
            c.first().is_some_and(|f| {
                f.system == r.system && f.workload == r.workload && f.connections == r.connections
            })
        };
        match cells.iter_mut().find(same) {
            Some(cell) => cell.push(r),
            None => cells.push(vec![r]),
        }
    }
    cells
        .into_iter()
        .filter_map(|mut cell| {
            cell.sort_by(|a, b| a.ops.total_cmp(&b.ops));
            cell.get(cell.len().saturating_sub(1) / 2).copied()
        })
        .collect()
}

/// `12345.6` as `12,346`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_cell_per_run_and_the_ratios() {
        let line = |s: &str, w: &str, ops: f64| {
            format!(
                "{{\"system\":\"{s}\",\"workload\":\"{w}\",\"connections\":50,\"ops_per_sec\":{ops},\
                 \"all\":{{\"p50_ms\":0.5,\"p99_ms\":1.5,\"p999_ms\":3.0}},\"errors\":0,\
                 \"bytes_per_write\":1000.0,\"syscalls_per_op\":4.0,\"cpu_us_per_op\":30.0,\
                 \"driver_cpu_us_per_op\":12.5}}"
            )
        };
        let jsonl = [
            line("redis", "get", 100_000.0),
            line("redis", "put", 80_000.0),
            line("etcd", "put", 4_000.0),
            line("dynamo", "get", 50_000.0),
            line("dynamo", "put", 20_000.0),
        ]
        .join("\n");
        let md = markdown(&jsonl, "note", Some(&jsonl));
        assert!(
            md.contains("| dynamo | put | 1000 | 4.0 | 30 | 12.5 | 0.50 | 3.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| before | dynamo | put | 20,000 | 1.50 | 1000 | 4.0 | 30 |"),
            "{md}"
        );
        assert!(
            md.contains("| redis | 100,000 (1.50) | 80,000 (1.50) |"),
            "{md}"
        );
        assert!(
            md.contains("| dynamo | 0.50 (p99 1.50 ms) | 0.25 | 5.00 (p99 1.50 ms) | – |"),
            "{md}"
        );
    }

    /// Review of the benchmark (the project's twenty-ninth session): the ratios came from one
    /// run of each system on a machine whose figures move by a quarter from run to run (etcd
    /// put 3,934 to 6,173 in this directory's files), and a `--buffered` row, which fsyncs once a
    /// second, stood beside the durable targets as if it were durable. With several rounds each
    /// cell is the median run, each ratio the median of the rounds' ratios with their range, and
    /// a row that does not fsync before it answers says so.
    #[test]
    fn rounds_give_median_ratios_and_buffered_rows_say_they_are_not_durable() {
        let line = |s: &str, w: &str, ops: f64| {
            format!(
                "{{\"system\":\"{s}\",\"workload\":\"{w}\",\"connections\":50,\"ops_per_sec\":{ops},\
                 \"all\":{{\"p50_ms\":0.5,\"p99_ms\":1.5,\"p999_ms\":3.0}},\"errors\":0}}"
            )
        };
        let mut runs = Vec::new();
        // Three rounds, each system once per round.
        for (etcd, dynamo) in [
            (4_000.0, 20_000.0),
            (6_000.0, 21_000.0),
            (5_000.0, 30_000.0),
        ] {
            runs.push(line("etcd", "put", etcd));
            runs.push(line("dynamo", "put", dynamo));
            runs.push(line("dynamo-buffered", "put", 2.0 * dynamo));
        }
        let md = markdown(&runs.join("\n"), "note", None);
        // Median run per cell.
        assert!(md.contains("| etcd | – | 5,000 (1.50) |"), "{md}");
        assert!(md.contains("| dynamo | – | 21,000 (1.50) |"), "{md}");
        // Ratios per round: 5.00, 3.50, 6.00: the median and the range.
        assert!(md.contains("5.00 [3.50–6.00] (p99 1.50 ms)"), "{md}");
        assert!(md.contains("median of 3 rounds"), "{md}");
        assert!(
            md.contains("| dynamo-buffered (no fsync before the answer: not durable) |"),
            "{md}"
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
