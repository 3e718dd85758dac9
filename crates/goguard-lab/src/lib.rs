//! goguard-lab: each failure of the reference (chapters 1-4), reproduced on the user's own
//! Go toolchain, buggy next to fixed, measured, and set against what the reference claims.
//! Every case is also checked by the static rules (they must fire on the buggy program and
//! stay silent on the fixed one) and, where a goroutine dump applies, by `goguard dump`.

pub mod runner;
mod sources;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use runner::Outcome;

/// One case of the reference.
pub struct Case {
    pub id: &'static str,
    pub chapter: u8,
    /// The package of the case in the lab module.
    pub package: &'static str,
    pub claim: &'static str,
    /// The goguard check rule that must find the buggy version.
    pub rule: Option<&'static str>,
    /// A rule that must NOT fire (the reference's wrong claim would suggest it).
    pub not_rule: Option<&'static str>,
}

pub const CASES: &[Case] = &[
    Case { id: "ch1-deadlock", chapter: 1, package: "ch1deadlock", rule: Some("G100"), not_rule: None,
        claim: "a send on an unbuffered channel in main with no receiver stops the program with `fatal error: all goroutines are asleep - deadlock!`" },
    Case { id: "ch2-range", chapter: 2, package: "ch2range", rule: Some("G101"), not_rule: None,
        claim: "a goroutine ranging over a channel its sender never closes waits forever" },
    Case { id: "ch2-context", chapter: 2, package: "ch2context", rule: Some("G102"), not_rule: None,
        claim: "a goroutine that checks ctx.Done() exits within 100 ms of the cancel, one that does not never exits; heap stays ~2 MB vs grows past 15 MB after 5 s" },
    Case { id: "ch2-ticker", chapter: 2, package: "ch2ticker", rule: Some("G103"), not_rule: None,
        claim: "a goroutine looping on a ticker that is never stopped never ends" },
    Case { id: "ch2-handler", chapter: 2, package: "ch2handler", rule: Some("G104"), not_rule: None,
        claim: "a goroutine started by an HTTP handler without the request's context outlives the request, one per request" },
    Case { id: "ch2-closure", chapter: 2, package: "ch2closure", rule: Some("G105"), not_rule: None,
        claim: "a long-running goroutine whose closure captures a 1 MB object keeps it in memory" },
    Case { id: "ch2-sender", chapter: 2, package: "ch2sender", rule: Some("G106"), not_rule: None,
        claim: "when the caller gives up, a goroutine sending its result on an unbuffered channel blocks forever" },
    Case { id: "ch3-time-after", chapter: 3, package: "ch3after", rule: Some("G201"), not_rule: None,
        claim: "time.After in a loop creates a timer per iteration that stays in memory until it fires (before Go 1.23)" },
    Case { id: "ch3-select-default", chapter: 3, package: "ch3default", rule: Some("G202"), not_rule: None,
        claim: "select with default drops sends when the channel is full: messages 3 and 4 are lost" },
    Case { id: "ch3-drift", chapter: 3, package: "ch3drift", rule: None, not_rule: None,
        claim: "context deadlines fire late: of 1000 timeouts of 50 ms, 62% within 1 ms, 33% within 1-5 ms, 5% over 5 ms" },
    Case { id: "ch4-add-after-go", chapter: 4, package: "ch4addaftergo", rule: Some("G301"), not_rule: None,
        claim: "wg.Add after go (here inside the goroutine): Done can run first (negative counter panic) or Wait returns too early" },
    Case { id: "ch4-done-twice", chapter: 4, package: "ch4donetwice", rule: Some("G302"), not_rule: None,
        claim: "Done called twice panics with `sync: negative WaitGroup counter`" },
    Case { id: "ch4-by-value", chapter: 4, package: "ch4byvalue", rule: Some("G303"), not_rule: None,
        claim: "a WaitGroup passed by value: Done acts on a copy and Wait blocks forever" },
    Case { id: "ch4-skipped-done", chapter: 4, package: "ch4skipped", rule: Some("G304"), not_rule: None,
        claim: "a Done skipped by an early return: Wait blocks forever" },
    Case { id: "ch4-defer-panic", chapter: 4, package: "ch4deferpanic", rule: None, not_rule: Some("G304"),
        claim: "`defer wg.Done()` in a goroutine that panics: Wait hangs forever" },
];

/// How to run the lab.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Case ids (or prefixes like `ch2`); empty for all.
    pub only: Vec<String>,
    /// Fewer repetitions and shorter waits, for CI.
    pub quick: bool,
    /// Keep the generated module here instead of a temporary directory.
    pub keep: Option<PathBuf>,
}

/// The result of one case.
#[derive(Debug, Serialize)]
pub struct CaseReport {
    pub id: &'static str,
    pub chapter: u8,
    pub claim: &'static str,
    pub bug_reproduced: Option<bool>,
    pub fix_clean: Option<bool>,
    pub static_rule: Option<&'static str>,
    pub static_ok: bool,
    /// The rules goguard check reported in the buggy and the fixed file.
    pub static_findings: Value,
    /// The goroutine dump agrees (the buggy run shows the stuck goroutines as suspects and
    /// the fixed one does not); `None` where no dump applies.
    pub dump_ok: Option<bool>,
    pub measured: Value,
    pub claim_holds: Option<bool>,
    /// What Go actually does, where it differs from the claim or needs saying.
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct LabReport {
    pub go_version: String,
    pub quick: bool,
    pub cases: Vec<CaseReport>,
}

impl Options {
    fn selected(&self) -> Result<Vec<&'static Case>, String> {
        if self.only.is_empty() {
            return Ok(CASES.iter().collect());
        }
        let mut out = Vec::new();
        for want in &self.only {
            let matched: Vec<&Case> = CASES
                .iter()
                .filter(|c| c.id.starts_with(want.as_str()))
                .collect();
            if matched.is_empty() {
                let ids: Vec<&str> = CASES.iter().map(|c| c.id).collect();
                return Err(format!("no lab case `{want}` (cases: {})", ids.join(", ")));
            }
            for c in matched {
                if !out.iter().any(|o: &&Case| o.id == c.id) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }
}

/// Builds, runs and judges the selected cases. `progress` gets a line per step.
pub fn run(options: &Options, mut progress: impl FnMut(&str)) -> Result<LabReport, String> {
    let cases = options.selected()?;
    let go_version = runner::go_version()?;
    let temp;
    let root = match &options.keep {
        Some(dir) => dir.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let lang = runner::language_version(&go_version);
    progress(&format!(
        "building the lab module with {go_version} (go {lang})"
    ));
    let (lab, http) = runner::build(&root.join("current"), &lang)?;
    let needs_old = cases.iter().any(|c| c.id == "ch3-time-after");
    let old = if needs_old {
        progress("building it again with `go 1.22` in go.mod (the timer change of Go 1.23)");
        Some(runner::build(&root.join("go1.22"), "1.22")?.0)
    } else {
        None
    };
    let findings = static_findings(&root.join("current"))?;
    let mut reports = Vec::new();
    for case in cases {
        progress(&format!("{}: running", case.id));
        let bin = if case.id == "ch2-handler" {
            &http
        } else {
            &lab
        };
        let mut ctx = Ctx {
            bin,
            quick: options.quick,
        };
        let mut r = judge(case, &mut ctx, old.as_deref())?;
        let (rule_ok, found) = static_verdict(case, &findings);
        r.static_ok = rule_ok;
        r.static_findings = found;
        progress(&format!(
            "{}: bug reproduced {}, fix clean {}, static {}, claim holds {}",
            case.id,
            show(r.bug_reproduced),
            show(r.fix_clean),
            if r.static_ok { "ok" } else { "WRONG" },
            show(r.claim_holds)
        ));
        reports.push(r);
    }
    Ok(LabReport {
        go_version,
        quick: options.quick,
        cases: reports,
    })
}

fn show(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

struct Ctx<'a> {
    bin: &'a Path,
    quick: bool,
}

impl Ctx<'_> {
    fn run(&mut self, case: &str, variant: &str) -> Result<Outcome, String> {
        let mut args = vec![case, variant];
        if self.quick {
            args.push("quick");
        }
        let limit = if self.quick { 3 } else { 10 };
        runner::run(self.bin, &args, Duration::from_secs(limit))
    }
}

/// `measured[key]` of an outcome as a number.
fn num(o: &Outcome, key: &str) -> Option<f64> {
    o.measured.as_ref()?.get(key)?.as_f64()
}

/// What happened, in one value: the LAB measurements, or the crash, or the hang.
fn describe(o: &Outcome) -> Value {
    let mut v = o.measured.clone().unwrap_or_else(|| json!({}));
    v["exit_code"] = o.exit_code.into();
    if o.timed_out {
        v["hung"] = true.into();
    }
    if let Some(c) = o.crash() {
        if c.kind != goguard_dump::race::CrashKind::Signal {
            v["crash"] = c.message.clone().into();
        }
    }
    v["seconds"] = ((o.seconds * 1000.0).round() / 1000.0).into();
    v
}

/// The buggy run's dump shows the case's goroutines as leak suspects; the fixed run's does
/// not.
fn dump_verdict(case: &Case, buggy: &Outcome, fixed: &Outcome) -> Option<bool> {
    let suspects = |o: &Outcome| {
        o.analysis.as_ref().is_some_and(|a| {
            a.groups.iter().any(|g| {
                g.suspect
                    && g.frames.iter().any(|f| {
                        f.function
                            .starts_with(&format!("goguardlab/{}.", case.package))
                    })
            })
        })
    };
    Some(suspects(buggy) && !suspects(fixed))
}

fn judge(case: &'static Case, cx: &mut Ctx, old_bin: Option<&Path>) -> Result<CaseReport, String> {
    let mut r = CaseReport {
        id: case.id,
        chapter: case.chapter,
        claim: case.claim,
        bug_reproduced: None,
        fix_clean: None,
        static_rule: case.rule,
        static_ok: false,
        static_findings: Value::Null,
        dump_ok: None,
        measured: Value::Null,
        claim_holds: None,
        note: String::new(),
    };
    use goguard_dump::race::CrashKind;
    let crashed_with = |o: &Outcome, kind: CrashKind| o.crash().is_some_and(|c| c.kind == kind);
    match case.id {
        "ch1-deadlock" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            r.bug_reproduced = Some(crashed_with(&b, CrashKind::Deadlock));
            r.fix_clean = Some(f.exit_code == 0 && num(&f, "value") == Some(42.0));
            r.claim_holds = r.bug_reproduced;
            r.note = "The runtime reports this only when every goroutine is blocked. A program that merely imports net/http (Go 1.27) already has a goroutine the detector cannot see as asleep, and hangs instead: that is why the lab's HTTP case has its own driver, and why services need goroutine dumps.".into();
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch2-range" | "ch2-ticker" | "ch2-handler" | "ch2-sender" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let calls = num(&b, "calls").or(num(&b, "requests")).unwrap_or(0.0);
            let left_b = num(&b, "goroutines_left").unwrap_or(0.0);
            let left_f = num(&f, "goroutines_left").unwrap_or(f64::MAX);
            r.bug_reproduced = Some(calls > 0.0 && left_b >= calls * 0.9);
            r.fix_clean = Some(left_f <= 0.0);
            r.claim_holds = Some(r.bug_reproduced == Some(true) && r.fix_clean == Some(true));
            // The handler's audits sleep (in time.Sleep) rather than block: a dump cannot
            // call a sleeping goroutine stuck, so no dump verdict there.
            if case.id == "ch2-handler" {
                r.note = "The leaked audits sleep in time.Sleep: a goroutine dump shows them but cannot call a sleeping goroutine stuck; the count per request is the evidence.".into();
            } else {
                r.dump_ok = dump_verdict(case, &b, &f);
            }
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch2-context" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let exit_b = b.measured.as_ref().and_then(|m| m.get("exit_ms")).cloned();
            let exit_f = num(&f, "exit_ms");
            r.bug_reproduced = Some(exit_b == Some(Value::Null));
            r.fix_clean = Some(exit_f.is_some_and(|ms| ms <= 100.0));
            let lifetime = r.bug_reproduced == Some(true) && r.fix_clean == Some(true);
            let heap_b = num(&b, "heap_after_mb").unwrap_or(0.0);
            let heap_f = num(&f, "heap_after_mb").unwrap_or(f64::MAX);
            r.claim_holds = Some(if cx.quick {
                lifetime
            } else {
                lifetime && heap_b > 15.0 && heap_f < 5.0
            });
            r.note = if cx.quick {
                "--quick measures the heap 1 s after the cancel, not 5 s: only the lifetime half of the claim is judged.".into()
            } else {
                String::new()
            };
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch2-closure" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let kept = num(&b, "retained_mb").unwrap_or(0.0);
            r.bug_reproduced = Some(kept >= 15.0);
            r.fix_clean = Some(num(&f, "retained_mb").is_some_and(|mb| mb < 1.0));
            r.claim_holds = r.bug_reproduced;
            r.note = "Not because of reference cycles (Go's collector frees cycles): the goroutine never ends and reads the buffer in its loop. A capture used only before the loop is freed by Go's stack liveness, so goguard check does not report that shape.".into();
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch3-time-after" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let per_b = num(&b, "bytes_per_iteration").unwrap_or(0.0);
            let mut measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
            let mut old_per = None;
            if let Some(bin) = old_bin {
                let mut old = Ctx {
                    bin,
                    quick: cx.quick,
                };
                let o = old.run(case.id, "buggy")?;
                old_per = num(&o, "bytes_per_iteration");
                measured["buggy_go1.22"] = describe(&o);
            }
            // A retained timer and its channel take well over 100 bytes.
            let retained = |per: f64| per > 100.0;
            r.bug_reproduced = Some(retained(per_b) || old_per.is_some_and(retained));
            r.fix_clean = Some(num(&f, "bytes_per_iteration").is_some_and(|p| p < 50.0));
            r.claim_holds = old_per.map(retained);
            r.note = format!(
                "Measured bytes kept per iteration after a GC: {per_b:.0} with the toolchain's go version in go.mod{}. No goroutine is created per timer (timers live in per-P heaps since Go 1.14). Go 1.23 made unreferenced timers collectable for go >= 1.23 modules, and Go 1.27 removed the old behaviour (asynctimerchan) from the toolchain entirely.",
                old_per.map(|p| format!(", {p:.0} with `go 1.22`")).unwrap_or_default()
            );
            r.measured = measured;
        }
        "ch3-select-default" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let lost = |o: &Outcome| o.measured.as_ref().and_then(|m| m.get("lost")).cloned();
            r.bug_reproduced = Some(lost(&b) == Some(json!([3, 4])));
            r.fix_clean =
                Some(matches!(lost(&f), Some(Value::Null)) || lost(&f) == Some(json!([])));
            r.claim_holds = r.bug_reproduced;
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch3-drift" => {
            let m = cx.run(case.id, "measure")?;
            let early = num(&m, "early_pct");
            let p50 = num(&m, "p50_ms");
            r.bug_reproduced = Some(p50.is_some_and(|p| p > 0.0));
            r.claim_holds = Some(early == Some(0.0) && p50.is_some_and(|p| p > 0.0));
            r.measured = json!({"this_machine": describe(&m), "reference": {"within_1ms_pct": 62, "1_to_5ms_pct": 33, "over_5ms_pct": 5}});
            r.note = "Deadlines never fire early; how late depends on this machine's load, timer granularity and GC. The reference's 62/33/5 split is one machine's figure: compare the buckets measured here.".into();
        }
        "ch4-add-after-go" => {
            let runs = if cx.quick { 10 } else { 100 };
            let mut counts: HashMap<&str, usize> = HashMap::new();
            let mut fixed_ok = 0;
            for _ in 0..runs {
                let b = cx.run(case.id, "buggy")?;
                let kind = if crashed_with(&b, CrashKind::NegativeWaitGroup) {
                    "negative_counter_panic"
                } else if num(&b, "finished_before_wait_returned").is_some_and(|n| n < 100.0) {
                    "wait_returned_early"
                } else if b.exit_code == 0 {
                    "correct"
                } else {
                    "other"
                };
                *counts.entry(kind).or_default() += 1;
                let f = cx.run(case.id, "fixed")?;
                if num(&f, "finished_before_wait_returned") == Some(100.0) {
                    fixed_ok += 1;
                }
            }
            let bad = counts.get("negative_counter_panic").unwrap_or(&0)
                + counts.get("wait_returned_early").unwrap_or(&0);
            r.bug_reproduced = Some(bad > 0);
            r.fix_clean = Some(fixed_ok == runs);
            r.claim_holds = r.bug_reproduced;
            r.measured = json!({"runs": runs, "buggy": counts, "fixed_correct": fixed_ok});
        }
        "ch4-done-twice" => {
            // Which panic comes depends on timing: if Wait wakes between the two Dones, the
            // second one finds the WaitGroup reused instead of a negative counter.
            let runs = if cx.quick { 10 } else { 50 };
            let mut panics: HashMap<String, usize> = HashMap::new();
            for _ in 0..runs {
                let b = cx.run(case.id, "buggy")?;
                let message = b
                    .crash()
                    .map_or("no panic".to_string(), |c| c.message.clone());
                *panics.entry(message).or_default() += 1;
            }
            let f = cx.run(case.id, "fixed")?;
            let waitgroup_panics: usize = panics
                .iter()
                .filter(|(m, _)| m.starts_with("panic: sync: ") && m.contains("WaitGroup"))
                .map(|(_, n)| n)
                .sum();
            r.bug_reproduced = Some(waitgroup_panics == runs);
            r.fix_clean = Some(f.exit_code == 0);
            r.claim_holds = Some(panics.contains_key("panic: sync: negative WaitGroup counter"));
            r.note = "Every run panics, but not always as the reference says: when Wait wakes between the two Done calls, the second Done reports `WaitGroup is reused before previous Wait has returned` instead of a negative counter.".into();
            r.measured = json!({"runs": runs, "buggy_panics": panics, "fixed": describe(&f)});
        }
        "ch4-by-value" | "ch4-skipped-done" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let deadlock = crashed_with(&b, CrashKind::Deadlock);
            r.bug_reproduced = Some(deadlock || b.timed_out);
            r.fix_clean = Some(f.exit_code == 0);
            r.claim_holds = r.bug_reproduced;
            r.note = if deadlock {
                "Wait blocked for good. Here nothing else was running, so the runtime saw every goroutine asleep and stopped the program; in a service (a listener, a timer) the same bug is a silent hang.".into()
            } else {
                "Wait blocked until the lab stopped the program (hang).".into()
            };
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        "ch4-defer-panic" => {
            let (b, f) = (cx.run(case.id, "buggy")?, cx.run(case.id, "fixed")?);
            let crashed = b
                .crash()
                .is_some_and(|c| c.message.contains("worker failed"));
            r.bug_reproduced = Some(crashed);
            r.fix_clean = Some(f.exit_code == 0);
            r.claim_holds = Some(b.timed_out);
            r.note = "What Go really does: the deferred Done runs while the goroutine panics, and the unrecovered panic ends the whole program. Nothing hangs. The real hang is a Done that is not deferred (ch4-skipped-done).".into();
            r.measured = json!({"buggy": describe(&b), "fixed": describe(&f)});
        }
        other => return Err(format!("no judge for case {other}")),
    }
    Ok(r)
}

/// goguard check over the generated module: findings per file, relative paths.
fn static_findings(dir: &Path) -> Result<HashMap<String, Vec<&'static str>>, String> {
    let opts = goguard_check::Options {
        select: None,
        ignore: Vec::new(),
        include_vendor: false,
        include_testdata: false,
        // The lab's programs are written by it, and are what is being checked.
        include_generated: true,
        cache: None,
        session: None,
        show_info: true,
        config: goguard_check::ConfigChoice::Isolated,
    };
    let report = goguard_check::engine::check_paths(&[dir.to_path_buf()], &opts)
        .map_err(|e| e.to_string())?;
    let mut out: HashMap<String, Vec<&'static str>> = HashMap::new();
    for d in report.diagnostics {
        let rel = d
            .path
            .strip_prefix(dir)
            .unwrap_or(&d.path)
            .to_string_lossy()
            .into_owned();
        out.entry(rel).or_default().push(d.rule);
    }
    Ok(out)
}

fn static_verdict(case: &Case, findings: &HashMap<String, Vec<&'static str>>) -> (bool, Value) {
    let of = |file: &str| {
        findings
            .get(&format!("{}/{file}", case.package))
            .cloned()
            .unwrap_or_default()
    };
    let (buggy, fixed) = (of("buggy.go"), of("fixed.go"));
    let ok = match (case.rule, case.not_rule) {
        (Some(rule), _) => buggy.contains(&rule) && !fixed.contains(&rule),
        (None, Some(not)) => !buggy.contains(&not) && !fixed.contains(&not),
        (None, None) => true,
    };
    (ok, json!({"buggy": buggy, "fixed": fixed}))
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("goguard-lab-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Go file of the lab is embedded (a file added to go/ must be listed).
    #[test]
    fn every_go_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    on_disk.push(
                        e.path()
                            .strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = sources::FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn every_case_has_its_package() {
        for c in CASES {
            assert!(
                sources::FILES
                    .iter()
                    .any(|(p, _)| p.starts_with(&format!("{}/", c.package))),
                "{}",
                c.id
            );
        }
    }

    #[test]
    fn unknown_cases_are_refused_with_the_list() {
        let o = Options {
            only: vec!["ch9".into()],
            ..Options::default()
        };
        let err = o.selected().err().unwrap();
        assert!(err.contains("ch1-deadlock"), "{err}");
        let o = Options {
            only: vec!["ch4".into()],
            ..Options::default()
        };
        assert_eq!(o.selected().unwrap().len(), 5);
    }
}
