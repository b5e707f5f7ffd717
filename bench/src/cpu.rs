//! Where a request's CPU goes: user + system time of the API process, of every PostgreSQL
//! process, and of `pinak-bench` itself (load generator and loopback embeddings endpoint),
//! read from /proc around a measurement. All three share the machine's cores, so their sum
//! per request is what a request costs the machine.

use std::fs;
use std::time::Instant;

/// Linux reports /proc times in USER_HZ ticks, 100 per second on every architecture
/// userspace sees (the kernel's own HZ is hidden behind it).
const TICKS_PER_SECOND: f64 = 100.0;

/// (utime + stime) of one process in seconds, from /proc/<pid>/stat. The command name (field
/// 2) may hold spaces, so fields are counted after its closing parenthesis.
pub fn process_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds of all running `postgres` processes (the bench cluster is the only one that
/// `scripts/bench` runs; another cluster on the machine would be counted too).
pub fn postgres_seconds() -> f64 {
    let Ok(dir) = fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(process_seconds)
        .sum()
}

/// CPU seconds per process group at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    at: Instant,
    api: f64,
    postgres: f64,
    bench: f64,
}

impl Snapshot {
    pub fn take(api_pid: Option<u32>) -> Self {
        Snapshot {
            at: Instant::now(),
            api: api_pid.and_then(process_seconds).unwrap_or(0.0),
            postgres: postgres_seconds(),
            bench: process_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    /// Cores each group used on average since `earlier`: (API, Postgres, pinak-bench).
    pub fn cores_since(&self, earlier: &Snapshot) -> (f64, f64, f64) {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        (
            (self.api - earlier.api) / wall,
            (self.postgres - earlier.postgres) / wall,
            (self.bench - earlier.bench) / wall,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_time_is_read_and_grows() {
        let before = process_seconds(std::process::id()).expect("/proc/self/stat");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_seconds(std::process::id()).unwrap();
        assert!(after - before >= 0.1, "{before} -> {after}");
    }
}
