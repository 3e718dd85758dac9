//! Every rule against its fixture: each line marked `// want Gxxx` must be reported, and no
//! other line may be. Fixtures hold the buggy shapes and their clean look-alikes side by side.
//! A first line `// go 1.22` sets the module's Go version (default: current Go). A file named
//! `GNNN_clean*.go` has no finding at all.

use std::collections::BTreeSet;
use std::path::Path;

use goguard_check::engine::check_source;
use goguard_check::{registry, GoVersion, ModuleInfo};

fn run_fixture(name: &str) -> (BTreeSet<usize>, BTreeSet<usize>, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let version = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// go "))
        .and_then(GoVersion::parse);
    let module = ModuleInfo {
        version: version.unwrap_or(GoVersion::LATEST),
        go_mod: version.map(|_| path.with_file_name("go.mod")),
    };
    let rule = name.split(['.', '_']).next().unwrap();
    let diags = check_source(&path, &text, &module, Some(&[rule]));
    let want: BTreeSet<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&format!("// want {rule}")))
        .map(|(i, _)| i + 1)
        .collect();
    let got: BTreeSet<usize> = diags.iter().map(|d| d.line).collect();
    let messages = diags
        .iter()
        .map(|d| format!("{}:{} {}", d.line, d.rule, d.message))
        .collect();
    (want, got, messages)
}

#[test]
fn every_rule_has_a_fixture_that_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".go"))
        .collect();
    names.sort();
    for name in names {
        let (want, got, messages) = run_fixture(&name);
        covered.insert(name.split(['.', '_']).next().unwrap().to_string());
        // A `_clean` fixture holds only look-alikes the rule must stay silent on (where the
        // rule never reports, as G104 in test files); every other one has a finding.
        assert!(
            !want.is_empty() || name.contains("_clean"),
            "{name}: a fixture must contain at least one `// want` line"
        );
        if want != got {
            let missed: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).collect();
            failures.push(format!(
                "{name}: missed lines {missed:?}, unexpected lines {extra:?}\n    {}",
                messages.join("\n    ")
            ));
        }
    }
    for r in registry::all() {
        if !covered.contains(r.code) {
            failures.push(format!("{}: no fixture", r.code));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Files the prefilter skips are never parsed: every fixture (each holds findings) must pass it.
#[test]
fn every_fixture_passes_the_prefilter() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            goguard_check::engine::prefilter::may_have_findings(&text),
            "{} would be skipped by the prefilter",
            path.display()
        );
        // The fixture's findings come from its own rule: that rule's words must be there.
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let rule = registry::find(name.split(['.', '_']).next().unwrap()).unwrap();
        assert!(
            rule.needs
                .iter()
                .any(|w| goguard_check::engine::prefilter::has_word(&text, w)),
            "{name} holds none of {}'s words {:?}",
            rule.code,
            rule.needs
        );
    }
    assert!(!goguard_check::engine::prefilter::may_have_findings(
        "package p\n\nfunc f() int { return 1 }\n"
    ));
    assert!(goguard_check::engine::prefilter::may_have_findings(
        "package p\nfunc f() { go\tfunc() {}() }\n"
    ));
    assert!(goguard_check::engine::prefilter::contains_word(
        "x := Conn{}",
        "Conn"
    ));
    assert!(!goguard_check::engine::prefilter::contains_word(
        "x := Connection{}",
        "Conn"
    ));
    // The one-pass test for several words agrees with `contains_word` on each.
    let words: std::collections::HashSet<String> =
        ["Conn", "pool"].iter().map(|w| w.to_string()).collect();
    for (text, found) in [
        ("x := Conn{}", true),
        ("x := Connection{}", false),
        ("var p *pool", true),
        ("// éConn and pool_", false),
        ("f(Conn)", true),
        ("", false),
    ] {
        let each = words
            .iter()
            .any(|w| goguard_check::engine::prefilter::contains_word(text, w));
        assert_eq!(each, found, "{text}");
        assert_eq!(
            goguard_check::engine::prefilter::mentions_any(text, &words),
            found,
            "{text}"
        );
    }
}
