//! The result cache: a second run over unchanged files reads the results kept by the first;
//! any change of what a result depends on analyses the package again. And the session cache
//! of `goguard server`: kept parses and package findings, never stale.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use goguard_check::cache::{ResultCache, SessionCache};
use goguard_check::engine::{check_paths, ConfigChoice, Options, Report};

const LEAK: &str = "package p

import \"sync\"

func start(ok bool) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if !ok {
			return
		}
		wg.Done()
	}()
	wg.Wait()
}
";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("goguard-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::write(dir.join("p/go.mod"), "module example.com/p\n\ngo 1.24\n").unwrap();
    std::fs::write(dir.join("p/run.go"), LEAK).unwrap();
    dir
}

fn run(dir: &Path, options: &str) -> Report {
    let opts = Options {
        config: ConfigChoice::Isolated,
        cache: Some(ResultCache::open(&dir.join("cache"), options).unwrap()),
        ..Options::default()
    };
    check_paths(&[dir.join("p")], &opts).unwrap()
}

fn messages(r: &Report) -> Vec<String> {
    r.diagnostics
        .iter()
        .map(|d| format!("{}:{} {}", d.rule, d.line, d.message))
        .collect()
}

/// The one entry the cache holds, rewritten by `edit`.
fn tamper(dir: &Path, edit: impl Fn(String) -> String) {
    let entries: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(entries.len(), 1, "one directory, one entry: {entries:?}");
    let text = std::fs::read_to_string(&entries[0]).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the entry was not changed: {text}");
    std::fs::write(&entries[0], edited).unwrap();
}

#[test]
fn a_second_run_reads_the_first_runs_results() {
    let dir = scratch("hit");
    let first = run(&dir, "o");
    assert_eq!(first.diagnostics.len(), 1, "{:?}", messages(&first));
    assert!(dir.join("cache/.gitignore").is_file());
    assert!(dir.join("cache/CACHEDIR.TAG").is_file());
    // What the second run says comes from the entry, not from analysing the file again.
    tamper(&dir, |t| t.replace("is not deferred", "CACHED"));
    let second = run(&dir, "o");
    assert_eq!(second.files_scanned, first.files_scanned);
    assert!(
        messages(&second)[0].contains("CACHED"),
        "{:?}",
        messages(&second)
    );
    // Every field a renderer or a baseline uses comes back.
    let (a, b) = (&first.diagnostics[0], &second.diagnostics[0]);
    assert_eq!(
        (a.rule, a.name, a.severity, &a.path, a.line, a.column),
        (b.rule, b.name, b.severity, &b.path, b.line, b.column)
    );
    assert_eq!(
        (&a.code, &a.source_line, a.start_byte, a.end_byte, &a.help),
        (&b.code, &b.source_line, b.start_byte, b.end_byte, &b.help)
    );
    // The fix too, with its edits' positions (the JSON and SARIF outputs give them).
    assert!(a.fix.is_some(), "G304 offers a fix here");
    assert_eq!(format!("{:?}", a.fix), format!("{:?}", b.fix));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_a_result_depends_on_changing_analyses_again() {
    let dir = scratch("miss");
    let fixed = LEAK
        .replace("\tgo func() {\n", "\tgo func() {\n\t\tdefer wg.Done()\n")
        .replace("\t\twg.Done()\n\t}()", "\t}()");
    // Each change, made after a run whose entry was tampered with: a miss shows the truth.
    // What changes, how, the options of the next run, the findings it must give.
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str, usize);
    let cases: Vec<Case> = vec![
        (
            "the file's text",
            Box::new(|| std::fs::write(dir.join("p/run.go"), &fixed).unwrap()),
            "o",
            0,
        ),
        (
            "back to the first text",
            Box::new(|| std::fs::write(dir.join("p/run.go"), LEAK).unwrap()),
            "o",
            1,
        ),
        (
            "a new file",
            Box::new(|| std::fs::write(dir.join("p/more.go"), "package p\n").unwrap()),
            "o",
            1,
        ),
        (
            "the go version",
            Box::new(|| {
                std::fs::write(dir.join("p/go.mod"), "module example.com/p\n\ngo 1.21\n").unwrap()
            }),
            "o",
            1,
        ),
        ("the options", Box::new(|| {}), "other", 1),
    ];
    run(&dir, "o");
    for (what, change, options, want) in cases {
        tamper(&dir, |t| {
            let at = t.find("\"files_scanned\":").unwrap() + "\"files_scanned\":".len();
            let end = at + t[at..].find(',').unwrap();
            format!("{}999{}", &t[..at], &t[end..])
        });
        change();
        let r = run(&dir, options);
        assert_ne!(r.files_scanned, 999, "{what}: a stale result was read");
        assert_eq!(r.diagnostics.len(), want, "{what}: {:?}", messages(&r));
    }
    // A corrupt entry is a miss, not an error.
    tamper(&dir, |_| "{not json".into());
    let r = run(&dir, "other");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.diagnostics.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `LEAK` with its bug fixed (`defer wg.Done()`).
fn fixed_leak() -> String {
    LEAK.replace("\tgo func() {\n", "\tgo func() {\n\t\tdefer wg.Done()\n")
        .replace("\t\twg.Done()\n\t}()", "\t}()")
}

/// Checks `dir/p` with `session` (none: as `goguard check` does).
fn in_session(dir: &Path, session: Option<&Arc<SessionCache>>) -> Report {
    let opts = Options {
        config: ConfigChoice::Isolated,
        session: session.cloned(),
        ..Options::default()
    };
    check_paths(&[dir.join("p")], &opts).unwrap()
}

#[test]
fn parsed_files_kept_between_runs_give_the_same_findings() {
    let dir = scratch("parses");
    let session = Arc::new(SessionCache::default());
    let run = |session: Option<&Arc<SessionCache>>| messages(&in_session(&dir, session));
    let fresh = run(None);
    assert_eq!(fresh.len(), 1);
    assert_eq!(run(Some(&session)), fresh);
    assert_eq!(run(Some(&session)), fresh, "from the kept trees");
    // An edit is seen: the file is parsed again.
    std::fs::write(dir.join("p/run.go"), fixed_leak()).unwrap();
    assert_eq!(run(Some(&session)), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_checks_again_only_the_package_whose_files_changed() {
    let dir = scratch("session");
    // `LEAK` in the external test package, with a suppression that matches nothing.
    let leak_test = LEAK.replace("package p\n", "package p_test\n").replace(
        "func start(",
        "//goguard:ignore G106 nothing here for it\nfunc TestStart(",
    );
    std::fs::write(dir.join("p/run_test.go"), leak_test).unwrap();
    let session = Arc::new(SessionCache::default());
    let run = |session: Option<&Arc<SessionCache>>| in_session(&dir, session);
    let unused = |r: &Report| {
        r.unused_suppressions
            .iter()
            .map(|u| format!("{}:{}", u.path.display(), u.line))
            .collect::<Vec<_>>()
    };
    let fresh = run(None);
    assert_eq!(messages(&fresh).len(), 2, "{:?}", messages(&fresh));
    assert_eq!(unused(&fresh).len(), 1);

    let first = run(Some(&session));
    assert_eq!(
        (messages(&first), first.packages_kept),
        (messages(&fresh), 0)
    );
    let again = run(Some(&session));
    assert_eq!(messages(&again), messages(&fresh));
    assert_eq!(unused(&again), unused(&fresh), "kept with the findings");
    assert_eq!(
        again.packages_kept, 2,
        "nothing changed: both packages kept"
    );

    // An edit of package p checks p again and keeps p_test.
    std::fs::write(dir.join("p/run.go"), fixed_leak()).unwrap();
    let edited = run(Some(&session));
    assert_eq!(edited.packages_kept, 1);
    assert_eq!(messages(&edited), messages(&run(None)));
    assert_eq!(
        messages(&edited).len(),
        1,
        "p's finding is gone, p_test's is kept"
    );
    assert!(edited.diagnostics[0].path.ends_with("run_test.go"));

    // An edit of p_test is seen too.
    std::fs::write(dir.join("p/run_test.go"), "package p_test\n").unwrap();
    let both = run(Some(&session));
    assert_eq!((messages(&both), both.packages_kept), (Vec::new(), 1));
    assert_eq!(unused(&both), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}
