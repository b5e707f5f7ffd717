//! Where a request's CPU goes: user + system time of the API process, of every PostgreSQL
//! process, and of `pinak-bench` itself (load generator and loopback embeddings endpoint),
//! read from /proc around a measurement. All three share the machine's cores, so their sum
//! per request is what a request costs the machine.

use std::fs;
use std::time::Instant;

/// Linux reports /proc times in USER_HZ ticks, 100 per second on every architecture
/// userspace sees (the kernel's own HZ is hidden behind it).
const TICKS_PER_SECOND: f64 = 100.0;

/// (utime + stime) of one process in seconds, from /proc/<pid>/stat.
pub fn process_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// (utime + stime) in seconds from the text of a /proc/<pid>/stat line; None if it is not one.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last closing parenthesis.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
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

    /// A stat line as Linux writes it, with `comm` in place and utime = 250, stime = 75 ticks.
    fn stat_line(comm: &str) -> String {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 1 0 100 12345678 456 \
             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn cpu_seconds_are_utime_plus_stime() {
        assert_eq!(stat_cpu_seconds(&stat_line("postgres")), Some(3.25));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        // A name can be anything a process sets, including ") R 1 2 3" that mimics the fields.
        for comm in ["tmux: server", "my (odd) name", "a) R 1 2 3 4 5", "()", " "] {
            assert_eq!(stat_cpu_seconds(&stat_line(comm)), Some(3.25), "comm {comm:?}");
        }
    }

    #[test]
    fn a_malformed_line_is_none_not_a_panic() {
        for stat in [
            "",
            "4242",
            "4242 (cut short)",
            "4242 (cut short) S 1 4242",
            "4242 no parentheses S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0",
            "4242 (bad ticks) S 1 4242 4242 0 -1 4194560 1234 0 0 0 many 75 0 0 20",
            "4242 (negative) S 1 4242 4242 0 -1 4194560 1234 0 0 0 -250 75 0 0 20",
        ] {
            assert_eq!(stat_cpu_seconds(stat), None, "{stat:?}");
        }
    }

    /// The live read, without any timing threshold: it must parse this kernel's real line, and
    /// CPU time never goes backwards.
    #[test]
    fn own_process_time_is_read_and_never_decreases() {
        let first = process_seconds(std::process::id()).expect("/proc/self/stat parses");
        let second = process_seconds(std::process::id()).expect("/proc/self/stat parses");
        assert!(second >= first, "{first} -> {second}");
    }
}
