//! CPU time, split between the product and the test bed.
//!
//! On a 2-core machine the bed's API servers, etcd, moto and webhook share the CPU with the
//! product, which a real EKS fleet never does: a latency that grows with the cluster count can
//! be the bed's CPU, not the product's. These meters tell the two apart: the product is the
//! bench's main thread (which polls the measured future) and its `bench` runtime threads (warm),
//! or the `eks-iam-sync` processes it waited for (cold); the bed is its server processes plus
//! the `bed` runtime threads.

use std::time::Duration;

/// The product's runtime threads; [`crate::runtime`] names them.
pub const PRODUCT_THREADS: &str = "bench";
/// The bed's runtime threads (webhook, EKS emulator, IAM proxy).
pub const BED_THREADS: &str = "bed";

fn clock_tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs(1) / u32::try_from(hz).unwrap_or(100).max(1)
}

/// User + system time in a `/proc/.../stat` line (fields 14 and 15).
fn stat_cpu(stat: &str) -> Duration {
    // The command name (field 2) may hold spaces; the fields after it never do.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    clock_tick() * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// CPU time of a running process (all its threads).
pub fn process(pid: u32) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| stat_cpu(&s))
        .unwrap_or_default()
}

/// CPU time of this process's threads named `name`, and of the main thread if `main`.
fn threads(name: &str, main: bool) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let main_tid = std::process::id().to_string();
    tasks
        .flatten()
        .filter(|task| {
            (main && task.file_name().to_str() == Some(main_tid.as_str()))
                || std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| stat_cpu(&stat))
        .sum()
}

/// CPU time of every child process this process has waited for.
pub fn waited_children() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time of the in-process product: the main thread and the product's runtime threads.
pub fn product() -> Duration {
    threads(PRODUCT_THREADS, true)
}

/// CPU time of the bed: its processes and its runtime threads.
pub fn bed(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| process(pid)).sum::<Duration>() + threads(BED_THREADS, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu(stat), clock_tick() * 300);
    }

    #[test]
    fn this_process_uses_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(process(std::process::id()) > Duration::ZERO);
    }
}
