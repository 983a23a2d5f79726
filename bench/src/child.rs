//! Processes the bench starts: the product binary, the AWS CLI, kubectl, cargo-lambda.
//!
//! Each one is killed when its handle is dropped and, should the bench itself die (the release
//! profile aborts on panic, so no destructor runs), by the kernel (`PR_SET_PDEATHSIG`): a bench
//! never leaves a process behind.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::process::Command;

/// `program` with an empty environment but `PATH`, a private `HOME` and no AWS config files,
/// plus `env`: what it does depends on nothing of the machine's user.
pub fn command(program: &Path, home: &Path, env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(env)
        .kill_on_drop(true);
    die_with_parent(&mut command);
    command
}

/// The kernel kills the child when the bench's thread that spawned it dies. tokio spawns from a
/// runtime worker thread, which lives as long as the runtime, i.e. the bench.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `PATH` with the test bed's venv first, where the AWS CLI and cargo-lambda live.
pub fn path_with_venv() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(eks_testbed::paths::venv().join("bin"))
        .chain(std::env::split_paths(&path).collect::<Vec<_>>());
    std::env::join_paths(dirs).unwrap_or(path)
}

/// Peak resident memory (`VmHWM`) of a running process, in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_of_this_process() {
        let rss = super::peak_rss(std::process::id()).unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
