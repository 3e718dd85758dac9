//! Every fix, proven with the Go toolchain. Each file of `tests/fixes` holds a rule's buggy
//! shapes, each line marked `// want GNNN safe|unsafe|none` (the fix the finding must
//! offer; `none`: no fix in that shape). The test checks the offers, applies every fix
//! (unsafe ones too) pass after pass as `--fix --unsafe-fixes` does, and then requires the
//! result to be gofmt-clean, to pass `go vet` (`go build` where an unfixed finding stays) in
//! a module of the file's Go version, to report none of the fixed findings again and no
//! finding of any rule that was not there before. The fixed text is a snapshot.
//!
//! A first line `// go 1.22` sets the module's Go version, as in `tests/fixtures`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use goguard_check::engine::check_source;
use goguard_check::fix::{self, Applicability, Fix};
use goguard_check::{Diagnostic, GoVersion, ModuleInfo};

fn fixes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixes")
}

fn module_of(path: &Path, text: &str) -> (ModuleInfo, Option<GoVersion>) {
    let version = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// go "))
        .and_then(GoVersion::parse);
    (
        ModuleInfo {
            version: version.unwrap_or(GoVersion::LATEST),
            go_mod: version.map(|_| path.with_file_name("go.mod")),
        },
        version,
    )
}

/// What each marked line wants: line -> (rule, "safe" | "unsafe" | "none").
fn wanted(text: &str) -> BTreeMap<usize, (String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = &l[l.find("// want ")? + 8..];
            let mut words = rest.split_whitespace();
            Some((
                i + 1,
                (words.next()?.to_string(), words.next()?.to_string()),
            ))
        })
        .collect()
}

fn offered(d: &Diagnostic) -> &'static str {
    match d.fix.as_ref().map(|f| f.applicability) {
        Some(Applicability::Safe) => "safe",
        Some(Applicability::Unsafe) => "unsafe",
        None => "none",
    }
}

/// Applies every fix of `rule` (and no other rule's) until none applies, as `--fix` does.
fn fix_all(path: &Path, text: &str, module: &ModuleInfo, rule: &str) -> (String, usize) {
    let mut text = text.to_string();
    let mut applied = 0;
    for _ in 0..fix::MAX_PASSES {
        let diags = check_source(path, &text, module, Some(&[rule]));
        let fixes: Vec<&Fix> = diags.iter().filter_map(|d| d.fix.as_ref()).collect();
        let (new, done) = fix::apply(&text, &fixes);
        if done.is_empty() || new == text {
            break;
        }
        applied += done.len();
        text = new;
    }
    (text, applied)
}

fn count_by_rule(diags: &[Diagnostic]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for d in diags {
        *m.entry(d.rule).or_default() += 1;
    }
    m
}

/// Runs `go ARGS` in `dir` offline with the local toolchain; returns the failure's output.
fn go(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .output()
        .expect("the Go toolchain must be installed (scripts/test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The toolchain's gofmt (it is next to `go`, which may be on PATH through a shim).
fn gofmt() -> PathBuf {
    let root = Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let p = Path::new(&root).join("bin/gofmt");
    if p.exists() {
        p
    } else {
        PathBuf::from("gofmt")
    }
}

/// gofmt-clean, and `go vet` (or `go build` when `build_only`) passes in a module of its own.
fn toolchain_accepts(
    name: &str,
    text: &str,
    version: Option<GoVersion>,
    build_only: bool,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!(
        "goguard-fixes-{}-{}",
        name.trim_end_matches(".go"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let v = version.map_or("1.24".to_string(), |v| v.to_string());
    std::fs::write(dir.join("go.mod"), format!("module fixcheck\n\ngo {v}\n")).unwrap();
    std::fs::write(dir.join("fixed.go"), text).unwrap();
    let result = (|| {
        let out = Command::new(gofmt())
            .args(["-l", "fixed.go"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("gofmt: {e}"))?;
        if !out.status.success() {
            return Err(format!("gofmt: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let unformatted = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !unformatted.is_empty() {
            let diff = Command::new(gofmt())
                .args(["-d", "fixed.go"])
                .current_dir(&dir)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            return Err(format!("not gofmt-clean:\n{diff}"));
        }
        let cmd = if build_only { "build" } else { "vet" };
        go(&[cmd, "."], &dir)
            .map(|_| ())
            .map_err(|e| format!("go {cmd}: {e}"))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn every_fix_is_offered_as_marked_and_proven_by_the_toolchain() {
    let mut names: Vec<String> = std::fs::read_dir(fixes_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".go"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut failures = Vec::new();
    for name in &names {
        let path = fixes_dir().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let (module, version) = module_of(&path, &text);
        let rule = name.split(['.', '_']).next().unwrap();
        let want = wanted(&text);
        let diags = check_source(&path, &text, &module, Some(&[rule]));
        // The offers: every marked line reported with the marked fix, nothing else reported.
        let got: BTreeMap<usize, (String, String)> = diags
            .iter()
            .map(|d| (d.line, (d.rule.to_string(), offered(d).to_string())))
            .collect();
        if got != want {
            failures.push(format!(
                "{name}: offers differ\n  want {want:?}\n  got  {got:?}"
            ));
            continue;
        }
        let before_all = check_source(&path, &text, &module, None);
        let (fixed, applied) = fix_all(&path, &text, &module, rule);
        let fixable = want.values().filter(|(_, a)| a != "none").count();
        if fixable > 0 && applied == 0 {
            failures.push(format!("{name}: no fix applied"));
            continue;
        }
        // What remains: exactly the findings that had no fix, and nothing new from any rule.
        let after = check_source(&path, &fixed, &module, Some(&[rule]));
        let nofix = want.values().filter(|(_, a)| a == "none").count();
        if after.len() != nofix {
            failures.push(format!(
                "{name}: after the fixes {} finding(s) of {rule} remain, {nofix} expected:\n  {}\n{fixed}",
                after.len(),
                after
                    .iter()
                    .map(|d| format!("{}: {}", d.line, d.message))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
        let before_counts = count_by_rule(&before_all);
        let after_all = check_source(&path, &fixed, &module, None);
        for (r, n) in count_by_rule(&after_all) {
            if r != rule && n > before_counts.get(r).copied().unwrap_or(0) {
                failures.push(format!(
                    "{name}: the fixes brought new {r} findings\n{fixed}"
                ));
            }
        }
        if let Err(e) = toolchain_accepts(name, &fixed, version, nofix > 0) {
            failures.push(format!("{name}: {e}\n--- fixed text ---\n{fixed}"));
        }
        if fixable > 0 {
            insta::assert_snapshot!(format!("fixed_{}", name.trim_end_matches(".go")), fixed);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Safe fixes only (`--fix` without `--unsafe-fixes`) leave the unsafe findings in place.
#[test]
fn safe_fixes_leave_unsafe_ones() {
    let path = fixes_dir().join("G401.go");
    let text = std::fs::read_to_string(&path).unwrap();
    let (module, _) = module_of(&path, &text);
    let diags = check_source(&path, &text, &module, Some(&["G401"]));
    let safe: Vec<&Fix> = diags
        .iter()
        .filter_map(|d| d.fix.as_ref())
        .filter(|f| f.applicability == Applicability::Safe)
        .collect();
    assert_eq!(safe.len(), 2);
    let (fixed, applied) = fix::apply(&text, &safe);
    assert_eq!(applied.len(), 2);
    let after = check_source(&path, &fixed, &module, Some(&["G401"]));
    assert_eq!(
        after.iter().map(offered).collect::<Vec<_>>(),
        vec!["unsafe", "unsafe"]
    );
}

/// Two fixes that overlap in one file: the first is applied, the second waits for the next
/// pass, which still finds and fixes it.
#[test]
fn overlapping_fixes_take_two_passes() {
    let path = fixes_dir().join("G201.go");
    let text = std::fs::read_to_string(&path).unwrap();
    let (module, _) = module_of(&path, &text);
    let diags = check_source(&path, &text, &module, Some(&["G201"]));
    let two: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.message.contains("loop at line 35"))
        .collect();
    assert_eq!(two.len(), 2, "{diags:#?}");
    let fixes: Vec<&Fix> = two.iter().filter_map(|d| d.fix.as_ref()).collect();
    let (once, applied) = fix::apply(&text, &fixes);
    assert_eq!(applied.len(), 1, "one per pass in one function");
    let again = check_source(&path, &once, &module, Some(&["G201"]));
    let left: Vec<&Diagnostic> = again
        .iter()
        .filter(|d| d.code.contains("time.After(time.Minute)"))
        .collect();
    assert_eq!(left.len(), 1);
    let fix = left[0].fix.as_ref().expect("still fixable");
    assert!(fix.message.contains("NewTimer(time.Minute)"));
    let (twice, _) = fix::apply(&once, &[fix]);
    assert!(
        twice.contains("timeout := time.NewTimer(time.Minute)"),
        "{twice}"
    );
    assert!(
        twice.contains("timer := time.NewTimer(time.Second)"),
        "{twice}"
    );
}
