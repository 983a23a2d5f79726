//! The real AWS CLI as the reference token generator.
//!
//! `aws eks get-token` presigns locally and needs no network, so the tokens the tests send are
//! exactly what users' kubeconfigs send to EKS. `faketime` shifts its clock for expiry tests.

use std::process::Command;

use crate::moto::IssuedKeys;
use crate::paths;

/// `aws eks get-token --cluster-name CLUSTER --region REGION` as the holder of `keys`;
/// `clock_offset` (a faketime spec such as `-20m`) runs the CLI with a shifted clock.
pub fn get_token(
    keys: &IssuedKeys,
    cluster: &str,
    region: &str,
    clock_offset: Option<&str>,
) -> anyhow::Result<String> {
    let aws = paths::venv_bin("aws");
    paths::require(&aws)?;
    let mut command = match clock_offset {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset]).arg(&aws);
            c
        }
        None => Command::new(&aws),
    };
    command
        .args([
            "eks",
            "get-token",
            "--cluster-name",
            cluster,
            "--region",
            region,
        ])
        .args(["--output", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(keys.env());
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "aws eks get-token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let credential: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    credential["status"]["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("aws eks get-token printed no status.token"))
}
