//! What gets deployed: the arm64 `bootstrap` that `cargo lambda build --release --arm64` makes
//! (what `sam build` ships), and its zip. Building it needs the aarch64 standard library and zig;
//! where either is missing the table says so and shows the x86_64 release binary instead, which
//! is the same code for another CPU, never an estimate of the arm64 one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::table::{bytes, Table};

const SECTION: &str = "4 size";
/// A cold cross build of the release profile (fat LTO, one codegen unit) on 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Sizes of the binary and of the zip it is deployed as.
struct Sizes {
    binary: u64,
    zip: u64,
}

/// Section 4, sizes: the arm64 artifact when `arm64`, and the x86_64 release binary always.
pub async fn measure(repo: &Path, product: &Path, arm64: bool, table: &mut Table) {
    let what = "arm64 bootstrap / zip (cargo lambda build --release --arm64)";
    if !arm64 {
        table.info(SECTION, what, "not built: skipped (--quick or --no-arm64)");
    } else {
        match build_arm64(repo).await {
            Ok(sizes) => table.info(
                SECTION,
                what,
                format!("{} / {}", bytes(sizes.binary), bytes(sizes.zip)),
            ),
            Err(e) => table.info(SECTION, what, format!("not built here: {e:#}")),
        }
    }
    let host = match zip_size(product).await {
        Ok(zip) => format!(
            "{} / {} (zip of it as `bootstrap`)",
            bytes(file_size(product)),
            bytes(zip)
        ),
        Err(e) => format!("{} / zip failed: {e:#}", bytes(file_size(product))),
    };
    table.info(SECTION, "x86_64 release binary / zip (this machine)", host);
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `cargo lambda build --release --arm64 --output-format zip` in `repo`.
async fn build_arm64(repo: &Path) -> anyhow::Result<Sizes> {
    let mut command = tokio::process::Command::new("cargo");
    command
        .current_dir(repo)
        .env("PATH", crate::child::path_with_venv())
        .args([
            "lambda",
            "build",
            "--release",
            "--arm64",
            "--output-format",
            "zip",
        ])
        .args(["--bin", "eks-iam-sync"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    crate::child::die_with_parent(&mut command);
    let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {BUILD_TIMEOUT:?}"))??;
    if !output.status.success() {
        anyhow::bail!("{}", first_errors(&String::from_utf8_lossy(&output.stderr)));
    }
    let zip = lambda_dir(repo).join("bootstrap.zip");
    let zip_bytes = file_size(&zip);
    anyhow::ensure!(zip_bytes > 0, "{} was not written", zip.display());
    Ok(Sizes {
        binary: unzipped_size(&zip).await?,
        zip: zip_bytes,
    })
}

fn lambda_dir(repo: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    target.join("lambda").join("eks-iam-sync")
}

/// The build's error lines, in one line: the reason, not the whole log.
fn first_errors(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .take(2)
        .collect();
    if errors.is_empty() {
        crate::tail(stderr, 2).replace('\n', "; ")
    } else {
        errors.join("; ")
    }
}

/// Python's zipfile (in every venv the setup makes) stands in for a zip tool, which a fresh
/// machine may lack.
async fn python(script: &str, args: &[&Path]) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(eks_testbed::paths::venv_bin("python3"));
    command.arg("-c").arg(script).args(args).kill_on_drop(true);
    let output = command.output().await?;
    anyhow::ensure!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Deflates `binary` into a zip as `bootstrap`, as cargo-lambda packages it; the zip's size.
async fn zip_size(binary: &Path) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let zip = dir.path().join("bootstrap.zip");
    python(
        "import sys, zipfile\n\
         with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[2], 'bootstrap')",
        &[&zip, binary],
    )
    .await?;
    Ok(file_size(&zip))
}

/// The uncompressed size of everything in a zip.
async fn unzipped_size(zip: &Path) -> anyhow::Result<u64> {
    let out = python(
        "import sys, zipfile\nprint(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))",
        &[zip],
    )
    .await?;
    Ok(out.parse()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_errors_picks_the_error_lines() {
        let log = "Compiling a\nerror[E0463]: can't find crate for `core`\n  = note: the target may not be installed\nerror: aborting\nmore";
        assert_eq!(
            super::first_errors(log),
            "error[E0463]: can't find crate for `core`; error: aborting"
        );
        assert_eq!(super::first_errors("a\nb\nc"), "b; c");
    }
}
