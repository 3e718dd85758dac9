//! What the dump tests share: building the Go programs in `tests/programs` with the real
//! toolchain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, Mutex};

/// Builds program `name` into cargo's scratch directory for tests, as `{name}-{tag}`: each
/// test binary uses a tag of its own, since they run at the same time.
pub fn build_program(name: &str, tag: &str) -> PathBuf {
    build_program_with(name, tag, &[])
}

/// [`build_program`] with extra `go build` flags (`-race`). Each binary is built once per
/// test run: tests running at the same time would otherwise rebuild a file another one is
/// executing.
pub fn build_program_with(name: &str, tag: &str, flags: &[&str]) -> PathBuf {
    static BUILT: LazyLock<Mutex<HashMap<String, PathBuf>>> = LazyLock::new(Default::default);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{name}-{tag}");
    if let Some(bin) = built.get(&key) {
        return bin.clone();
    }
    let bin = go_build(name, &key, flags);
    built.insert(key, bin.clone());
    bin
}

fn go_build(name: &str, file: &str, flags: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name);
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    let out = Command::new("go")
        .arg("build")
        .args(flags)
        .arg("-o")
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
