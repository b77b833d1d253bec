//! What a run measured, and how it prints.

use hdrhistogram::Histogram;

use super::probe::ServerCost;
use super::{RunSpec, Tally};

/// Latency of one kind of operation, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OpStats {
    /// Operations completed in the measured window.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl OpStats {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        OpStats {
            count: h.len(),
            p50: ms(0.5),
            p99: ms(0.99),
            p999: ms(0.999),
        }
    }
}

/// One run: a workload on a system.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The system's name.
    pub system: String,
    /// The workload's name.
    pub workload: &'static str,
    /// Connections.
    pub connections: usize,
    /// Length of the measured window in seconds.
    pub seconds: f64,
    /// Every operation.
    pub all: OpStats,
    /// Reads alone (gets, and none of the read-modify-writes).
    pub gets: OpStats,
    /// Operations that wrote (puts and read-modify-writes).
    pub writes: OpStats,
    /// Failed operations.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// What the servers did in the window.
    pub servers: ServerCost,
    /// CPU seconds the load generator itself spent in the window (it shares the machine).
    pub driver_cpu_seconds: Option<f64>,
}

impl Report {
    pub(crate) fn new(
        system: &str,
        spec: &RunSpec,
        tally: &Tally,
        seconds: f64,
        servers: ServerCost,
        driver_cpu_seconds: Option<f64>,
    ) -> Self {
        Report {
            system: system.to_string(),
            workload: spec.workload.name(),
            connections: spec.connections,
            seconds,
            all: OpStats::of(&tally.all),
            gets: OpStats::of(&tally.gets),
            writes: OpStats::of(&tally.writes),
            errors: tally.errors,
            first_error: tally.first_error.clone(),
            servers,
            driver_cpu_seconds,
        }
    }

    /// Operations per second over the measured window.
    pub fn ops_per_sec(&self) -> f64 {
        self.all.count as f64 / self.seconds.max(1e-9)
    }

    /// Disk bytes the servers wrote per operation that wrote (puts, read-modify-writes).
    pub fn bytes_per_write(&self) -> Option<f64> {
        let b = self.servers.write_bytes?;
        (self.writes.count > 0).then(|| b as f64 / self.writes.count as f64)
    }

    /// Syscalls the servers made per operation.
    pub fn syscalls_per_op(&self) -> Option<f64> {
        let s = self.servers.syscalls?;
        (self.all.count > 0).then(|| s as f64 / self.all.count as f64)
    }

    /// Server CPU microseconds per operation.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        let c = self.servers.cpu_seconds?;
        (self.all.count > 0).then(|| c * 1e6 / self.all.count as f64)
    }

    /// The load generator's own CPU microseconds per operation.
    pub fn driver_cpu_us_per_op(&self) -> Option<f64> {
        let c = self.driver_cpu_seconds?;
        (self.all.count > 0).then(|| c * 1e6 / self.all.count as f64)
    }

    /// The report as one line of text.
    pub fn line(&self) -> String {
        let opt =
            |v: Option<f64>, unit: &str| v.map_or(String::new(), |v| format!("  {v:.1}{unit}"));
        format!(
            "{:<16} {:<5} c={:<3} {:>9.0} ops/s  p50 {:>6.2} ms  p99 {:>6.2}  p99.9 {:>7.2}  errors {}{}{}{}{}{}",
            self.system,
            self.workload,
            self.connections,
            self.ops_per_sec(),
            self.all.p50,
            self.all.p99,
            self.all.p999,
            self.errors,
            opt(self.bytes_per_write(), " B/write"),
            opt(self.syscalls_per_op(), " syscalls/op"),
            opt(self.cpu_us_per_op(), " cpu-us/op"),
            opt(self.driver_cpu_us_per_op(), " driver-cpu-us/op"),
            self.first_error
                .as_ref()
                .map_or(String::new(), |e| format!("  (first error: {e})")),
        )
    }

    /// The report as one JSON object (one line), for scripts.
    pub fn json(&self) -> String {
        let stats = |s: &OpStats| serde_json::json!({"count": s.count, "p50_ms": s.p50, "p99_ms": s.p99, "p999_ms": s.p999});
        serde_json::json!({
            "system": self.system,
            "workload": self.workload,
            "connections": self.connections,
            "seconds": self.seconds,
            "ops_per_sec": self.ops_per_sec(),
            "all": stats(&self.all),
            "gets": stats(&self.gets),
            "writes": stats(&self.writes),
            "errors": self.errors,
            "first_error": self.first_error,
            "server_write_bytes": self.servers.write_bytes,
            "server_syscalls": self.servers.syscalls,
            "server_cpu_seconds": self.servers.cpu_seconds,
            "bytes_per_write": self.bytes_per_write(),
            "syscalls_per_op": self.syscalls_per_op(),
            "cpu_us_per_op": self.cpu_us_per_op(),
            "driver_cpu_seconds": self.driver_cpu_seconds,
            "driver_cpu_us_per_op": self.driver_cpu_us_per_op(),
        })
        .to_string()
    }
}
