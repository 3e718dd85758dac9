//! What the dump tests share: building the Go programs in `tests/programs` with the real
//! toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds program `name` into cargo's scratch directory for tests, as `{name}-{tag}`: each
/// test binary uses a tag of its own, since they run at the same time.
pub fn build_program(name: &str, tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name);
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{tag}"));
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("the Go toolchain must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}
