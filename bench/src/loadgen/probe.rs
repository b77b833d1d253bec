//! What the servers did during a measured window: disk bytes written (`/proc/PID/io`'s
//! `write_bytes`: bytes this process caused to be sent to the storage layer), CPU time
//! (`/proc/PID/stat`) and syscalls (counted by `perf stat -e raw_syscalls:sys_enter` when `perf`
//! is installed); and the load generator's own CPU time, since it shares the machine with the
//! servers. Linux only; anything unavailable is reported as `None`.

use std::time::Duration;

use tokio::process::{Child, Command};

/// What the servers did in the window, summed over the processes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerCost {
    /// Bytes written to storage.
    pub write_bytes: Option<u64>,
    /// Syscalls entered.
    pub syscalls: Option<u64>,
    /// CPU seconds (user and system).
    pub cpu_seconds: Option<f64>,
}

/// A measurement in progress.
#[derive(Debug)]
pub struct Probe {
    pids: Vec<u32>,
    write_bytes: Option<u64>,
    cpu_ticks: Option<u64>,
    own_ticks: Option<u64>,
    perf: Option<Child>,
}

fn write_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the command.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn sum(pids: &[u32], f: fn(u32) -> Option<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ: 100 on every Linux this runs on).
const TICKS: f64 = 100.0;

impl Probe {
    /// Starts measuring `pids` (nothing when empty).
    pub fn start(pids: &[u32]) -> Probe {
        let perf = (!pids.is_empty())
            .then(|| {
                let list: Vec<String> = pids.iter().map(u32::to_string).collect();
                Command::new("perf")
                    .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
                    .arg(list.join(","))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .ok()
            })
            .flatten();
        Probe {
            pids: pids.to_vec(),
            write_bytes: sum(pids, write_bytes),
            cpu_ticks: sum(pids, cpu_ticks),
            own_ticks: cpu_ticks(std::process::id()),
            perf,
        }
    }

    /// Ends the measurement: what the servers did, and the CPU seconds this process (the load
    /// generator) spent meanwhile.
    pub async fn finish(self) -> (ServerCost, Option<f64>) {
        let own = cpu_ticks(std::process::id())
            .zip(self.own_ticks)
            .map(|(b, a)| b.saturating_sub(a) as f64 / TICKS);
        let bytes = sum(&self.pids, write_bytes);
        let ticks = sum(&self.pids, cpu_ticks);
        let syscalls = match self.perf {
            Some(child) => stop_perf(child).await,
            None => None,
        };
        let servers = ServerCost {
            write_bytes: bytes
                .zip(self.write_bytes)
                .map(|(b, a)| b.saturating_sub(a)),
            syscalls,
            cpu_seconds: ticks
                .zip(self.cpu_ticks)
                .map(|(b, a)| b.saturating_sub(a) as f64 / TICKS),
        };
        (servers, own)
    }
}

/// Stops `perf stat` with SIGINT (it prints its counts then) and reads the count.
async fn stop_perf(child: Child) -> Option<u64> {
    let pid = child.id()?;
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await;
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_reads_its_own_cpu_ticks() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[tokio::test]
    async fn without_servers_only_the_load_generators_own_cpu_is_measured() {
        let (servers, own) = Probe::start(&[]).finish().await;
        assert_eq!(servers, ServerCost::default());
        let own = own.expect("the load generator's own CPU time");
        assert!(own >= 0.0);
    }
}
