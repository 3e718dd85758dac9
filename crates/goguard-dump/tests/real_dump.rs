//! Dumps from a real Go program, built and run by the test with the Go toolchain: a known
//! number of goroutines stuck at each kind of operation.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use goguard_dump::{analyze, StateClass};

fn run_leaky() -> String {
    run_leaky_with(7)
}

fn run_leaky_with(senders: usize) -> String {
    run_leaky_debug(senders, "2")
}

fn run_leaky_debug(senders: usize, debug: &str) -> String {
    String::from_utf8(run_leaky_raw(senders, debug, "goroutine")).unwrap()
}

/// The leaky program, built once for all tests of this file.
fn leaky_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_program("leaky"))
}

/// Runs the leaky program and returns the profile it writes: `debug` 0 (gzipped protobuf), 1
/// or 2, of the `goroutine` or `goroutineleak` profile.
fn run_leaky_raw(senders: usize, debug: &str, profile: &str) -> Vec<u8> {
    let out = Command::new(leaky_binary())
        .arg(senders.to_string())
        .env("DUMP_DEBUG", debug)
        .env("DUMP_PROFILE", profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn groups_counts_states_and_verdicts_of_a_real_dump() {
    let dump = run_leaky();
    let a = analyze(&dump).unwrap();
    assert!(!a.truncated);
    // main + 7 abandoned senders + 3 receivers + 2 lockers + 1 Wait + 1 empty select.
    assert_eq!(a.total, 15, "{dump}");
    let find = |func: &str| {
        a.groups
            .iter()
            .find(|g| g.top_frame.as_ref().is_some_and(|f| f.function == func))
            .unwrap_or_else(|| panic!("no group for {func}: {:#?}", a.groups))
    };
    let senders = find("main.abandoned");
    assert_eq!(
        (senders.count, senders.state.as_str(), senders.class),
        (7, "chan send", StateClass::Channel)
    );
    assert!(senders.suspect, "{senders:?}");
    assert_eq!(senders.rule, Some("G106"));
    assert_eq!(senders.top_frame.as_ref().unwrap().line, 13);
    assert_eq!(senders.created_by.as_ref().unwrap().function, "main.main");
    assert!(senders
        .top_frame
        .as_ref()
        .unwrap()
        .file
        .ends_with("leaky/main.go"));
    // The biggest suspect comes first.
    assert_eq!(
        a.groups[0].top_frame.as_ref().unwrap().function,
        "main.abandoned"
    );

    let receivers = find("main.receiver");
    assert_eq!(
        (receivers.count, receivers.state.as_str()),
        (3, "chan receive")
    );
    let lockers = find("main.locker");
    assert_eq!(
        (lockers.count, lockers.state.as_str(), lockers.class),
        (2, "sync.Mutex.Lock", StateClass::Sync)
    );
    // Runtime frames are folded: the user frame is the one to open.
    assert!(lockers.frames.len() > 1 && lockers.frames[0].function.starts_with("internal/sync."));
    let waiter = find("main.main.func1");
    assert_eq!(waiter.state, "sync.WaitGroup.Wait");
    let running = a.groups.iter().find(|g| g.state == "running").unwrap();
    assert!(!running.suspect);
}

#[test]
fn a_dump_cut_mid_record_keeps_what_was_read() {
    let dump = run_leaky();
    let cut = &dump[..dump.len() * 2 / 3];
    let cut = &cut[..cut.rfind('\n').unwrap_or(cut.len())];
    let a = analyze(cut).unwrap();
    assert!(a.total >= 8 && a.total < 15, "{}", a.total);
}

#[test]
fn diff_of_two_real_dumps_shows_the_growing_group() {
    let before = analyze(&run_leaky_with(3)).unwrap();
    let after = analyze(&run_leaky_with(9)).unwrap();
    let d = goguard_dump::diff(&before, &after);
    let top = &d[0];
    assert_eq!(
        top.group.top_frame.as_ref().unwrap().function,
        "main.abandoned"
    );
    assert_eq!((top.before, top.after, top.delta), (3, 9, 6));
    // Everything else is unchanged, and line numbers do not split groups across runs.
    assert!(d[1..].iter().all(|g| g.delta == 0), "{d:#?}");
}

#[test]
fn debug1_profiles_are_read_with_counts_and_inferred_states() {
    let dump = run_leaky_debug(7, "1");
    assert!(dump.starts_with("goroutine profile: total 15"), "{dump}");
    let a = analyze(&dump).unwrap();
    assert_eq!(a.total, 15);
    let by = |func: &str| {
        a.groups
            .iter()
            .find(|g| g.top_frame.as_ref().is_some_and(|f| f.function == func))
            .unwrap()
    };
    let senders = by("main.abandoned");
    // debug=1 hides channel waits in unsymbolized runtime frames: state unknown, still suspect.
    assert_eq!(
        (senders.count, senders.state.as_str(), senders.suspect),
        (7, "unknown", true)
    );
    assert_eq!(by("main.locker").state, "sync.Mutex.Lock");
    assert_eq!(by("main.main.func1").state, "sync.WaitGroup.Wait");
    assert_eq!(by("main.main").state, "running");
}

/// Builds the crash program (with -race when asked) and runs it with `arg`: its stderr.
fn run_crash(arg: &str, race: bool) -> String {
    let bin = if race {
        support::build_program_with("crash", "race-program", &["-race"])
    } else {
        support::build_program("crash", "program")
    };
    let out = Command::new(&bin).arg(arg).output().unwrap();
    assert!(!out.status.success(), "{arg} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The runtime's own crash reports: the fatal message is kept, classified and placed.
#[test]
fn runtime_crash_reports_are_read() {
    use goguard_dump::race::CrashKind;
    for (arg, message, kind, line, state) in [
        (
            "deadlock",
            "fatal error: all goroutines are asleep - deadlock!",
            CrashKind::Deadlock,
            35,
            Some("chan send"),
        ),
        (
            "negative",
            "panic: sync: negative WaitGroup counter",
            CrashKind::NegativeWaitGroup,
            38,
            None,
        ),
        (
            "maps",
            "fatal error: concurrent map writes",
            CrashKind::ConcurrentMap,
            27,
            None,
        ),
    ] {
        let stderr = run_crash(arg, false);
        let a = analyze(&stderr).unwrap_or_else(|e| panic!("{arg}: {e}\n{stderr}"));
        assert_eq!(a.fatal.as_deref(), Some(message), "{stderr}");
        let crash = a.crash.as_ref().unwrap();
        assert_eq!(crash.kind, kind);
        // Either map writer can be the one caught; the other two crash in main.
        if kind == CrashKind::ConcurrentMap {
            assert!(crash.goroutine.is_some(), "{stderr}");
        } else {
            assert_eq!(crash.goroutine, Some(1), "{stderr}");
        }
        let at = crash.at.as_ref().unwrap();
        assert_eq!(
            (at.file.ends_with("crash/main.go"), at.line),
            (true, line),
            "{arg}: {at:?}"
        );
        if let Some(state) = state {
            let main = a
                .groups
                .iter()
                .find(|g| {
                    g.top_frame
                        .as_ref()
                        .is_some_and(|f| f.function == "main.main")
                })
                .unwrap();
            assert_eq!(main.state, state);
        }
    }
}

/// A real race detector report, read into its accesses and origins; the same race reported
/// twice (two runs in one log) is one entry counted twice.
#[test]
fn race_detector_reports_are_read_and_deduplicated() {
    let stderr = run_crash("race", true);
    let a = analyze(&stderr).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    assert_eq!(a.races.len(), 1, "{stderr}");
    let r = &a.races[0];
    assert_eq!(r.count, 1);
    assert!(
        r.locations.iter().all(|l| l.ends_with("crash/main.go:20")),
        "{r:?}"
    );
    let kinds: Vec<&str> = r.race.accesses.iter().map(|a| a.kind.as_str()).collect();
    assert!(kinds.iter().any(|k| k.starts_with("Previous")), "{kinds:?}");
    assert_eq!(r.race.goroutines.len(), 2);
    assert_eq!(r.race.goroutines[0].created_at[0].line, 62);
    let twice = analyze(&format!("{stderr}{stderr}")).unwrap();
    assert_eq!((twice.races.len(), twice.races[0].count), (1, 2));
}

fn analyze_bytes(bytes: Vec<u8>) -> goguard_dump::Analysis {
    goguard_dump::analyze_reader(std::io::Cursor::new(bytes)).unwrap()
}

#[test]
fn protobuf_profiles_are_read_with_states_from_the_runtime_frames() {
    let bytes = run_leaky_raw(7, "0", "goroutine");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "pprof gzips the protobuf");
    let a = analyze_bytes(bytes);
    assert_eq!(a.total, 15);
    let by = |func: &str| {
        a.groups
            .iter()
            .find(|g| g.top_frame.as_ref().is_some_and(|f| f.function == func))
            .unwrap_or_else(|| panic!("no group for {func}: {:#?}", a.groups))
    };
    let senders = by("main.abandoned");
    assert_eq!(
        (
            senders.count,
            senders.state.as_str(),
            senders.suspect,
            senders.rule
        ),
        (7, "chan send", true, Some("G106"))
    );
    assert_eq!(senders.top_frame.as_ref().unwrap().line, 13);
    assert_eq!(by("main.receiver").state, "chan receive");
    assert_eq!(by("main.locker").state, "sync.Mutex.Lock");
    assert_eq!(by("main.main.func1").state, "sync.WaitGroup.Wait");
    assert_eq!(by("main.main.func2").state, "select (no cases)");
}

/// Go's goroutine leak profile (Go 1.26+): what it marks leaked is certain, in every form.
#[test]
fn the_goroutine_leak_profile_marks_certain_leaks() {
    // The lockers wait on a mutex main still holds: reachable, so not leaked.
    let leaked = |a: &goguard_dump::Analysis| {
        let mut v: Vec<(String, usize)> = a
            .groups
            .iter()
            .filter(|g| g.reason.starts_with("marked leaked"))
            .map(|g| (g.top_frame.as_ref().unwrap().function.clone(), g.count))
            .collect();
        v.sort();
        v
    };
    let want: Vec<(String, usize)> = [
        ("main.abandoned", 7),
        ("main.main.func1", 1),
        ("main.main.func2", 1),
        ("main.receiver", 3),
    ]
    .map(|(f, n)| (f.to_string(), n))
    .to_vec();
    for debug in ["0", "1", "2"] {
        let a = analyze_bytes(run_leaky_raw(7, debug, "goroutineleak"));
        assert_eq!(leaked(&a), want, "debug={debug}: {:#?}", a.groups);
        assert!(a
            .groups
            .iter()
            .filter(|g| g.reason.starts_with("marked leaked"))
            .all(|g| g.suspect));
    }
}

/// Builds a test program and returns its path.
fn build_program(name: &str) -> PathBuf {
    support::build_program(name, "program")
}

/// pprof labels, printed in debug=2 headers (Go 1.27, `{k: v}`, quoted when needed) and as
/// `# labels:` in debug=1: kept as a breakdown of one group.
#[test]
fn labels_become_a_breakdown_of_the_group() {
    let bin = build_program("labels");
    for (arg, godebug) in [("2", "tracebacklabels=1"), ("1", "")] {
        let out = Command::new(&bin)
            .arg(arg)
            .env("GODEBUG", godebug)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let a = analyze(&text).unwrap();
        let g = a
            .groups
            .iter()
            .find(|g| {
                g.top_frame
                    .as_ref()
                    .is_some_and(|f| f.function == "main.park")
            })
            .unwrap_or_else(|| panic!("debug={arg}: {:#?}", a.groups));
        assert_eq!(g.count, 4, "debug={arg}");
        let handler = &g.labels["handler"];
        let got: Vec<(&str, usize)> = handler.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            [("/orders", 2), ("/users", 1), ("a b, c", 1)],
            "debug={arg}"
        );
    }
}

/// A SIGQUIT dump of a live server, at the GOTRACEBACK levels people use: the scheduler
/// fields, runtime frames, `fp= sp= pc=` and register dumps of `crash` do not get in the way.
#[test]
fn sigquit_dumps_are_read_at_every_traceback_level() {
    use std::io::BufRead;
    let bin = build_program("server");
    for level in ["all", "system", "crash"] {
        let mut child = Command::new(&bin)
            .env("GOTRACEBACK", level)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It prints its address once it listens, with its six senders already started.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // Its standard input stays open until it has died of the signal: closed, it would
        // exit on its own, and on a loaded machine that can come before the traceback.
        let stdin = child.stdin.take();
        let kill = Command::new("kill")
            .args(["-QUIT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let a = analyze(&stderr).unwrap_or_else(|e| panic!("{level}: {e}\n{stderr}"));
        let crash = a.crash.as_ref().unwrap();
        assert_eq!(
            (crash.kind, crash.message.as_str()),
            (goguard_dump::race::CrashKind::Signal, "SIGQUIT: quit"),
            "{level}"
        );
        let senders = a
            .groups
            .iter()
            .find(|g| {
                g.top_frame
                    .as_ref()
                    .is_some_and(|f| f.function == "main.abandoned")
            })
            .unwrap_or_else(|| panic!("{level}: {stderr}"));
        assert_eq!(
            (senders.count, senders.state.as_str(), senders.suspect),
            (6, "chan send", true),
            "{level}"
        );
        assert!(!a.truncated, "{level}");
    }
}

/// A big dump, generated on the fly: 50,000 goroutines on ten stacks, read in one stream.
#[test]
fn a_big_real_dump_is_grouped_exactly() {
    let bin = build_program("many");
    let out = Command::new(&bin).arg("50000").output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.len() > 5_000_000, "{} bytes", out.stdout.len());
    let a = goguard_dump::analyze_reader(std::io::Cursor::new(out.stdout)).unwrap();
    assert_eq!(a.total, 50_001);
    let parked: Vec<&goguard_dump::Group> = a
        .groups
        .iter()
        .filter(|g| g.state == "chan receive")
        .collect();
    assert_eq!(parked.len(), 10);
    for g in parked {
        assert_eq!(g.count, 5_000, "{:?}", g.top_frame);
        assert!(g.suspect && g.rule == Some("G101"));
    }
}

/// A debug=1 or protobuf profile against a debug=2 dump: groups match on the program's
/// frames, so a steady group stays at +0 and only the growing one shows.
#[test]
fn diff_across_formats_matches_groups_on_program_frames() {
    let after = analyze(&run_leaky_with(9)).unwrap();
    for debug in ["1", "0"] {
        let before = analyze_bytes(run_leaky_raw(3, debug, "goroutine"));
        // Matched on state, frames and creator, nothing matches across formats.
        assert!(goguard_dump::diff(&before, &after)
            .iter()
            .all(|d| d.before == 0 || d.after == 0));
        let d = goguard_dump::diff_across_formats(&before, &after);
        let top = &d[0];
        assert_eq!(
            top.group.top_frame.as_ref().unwrap().function,
            "main.abandoned",
            "debug={debug}"
        );
        assert_eq!(
            (top.before, top.after, top.delta),
            (3, 9, 6),
            "debug={debug}"
        );
        assert!(
            d[1..].iter().all(|g| g.delta == 0),
            "debug={debug}: {:#?}",
            d.iter()
                .map(|g| (&g.group.top_frame, g.before, g.after))
                .collect::<Vec<_>>()
        );
    }
}

/// Wherever a dump is cut (mid-line, after a function line, between a goroutine's frames),
/// the analysis says so; only a cut between two whole records, inside a line or offset
/// number, or in goroutine 1 (which has no `created by`) cannot be told from a whole dump.
#[test]
fn a_dump_cut_anywhere_is_flagged_truncated() {
    let dump = run_leaky();
    let mut checked = 0;
    for at in (40..dump.len() - 1).step_by(7) {
        let cut = &dump[..at];
        let mut lines = cut.lines().rev().filter(|l| !l.trim().is_empty());
        let last_header = cut.rfind("\ngoroutine ").map(|i| &cut[i + 1..]);
        let whole_record = cut.ends_with('\n')
            && lines.next().is_some_and(|l| l.starts_with('\t'))
            && lines.next().is_some_and(|l| l.starts_with("created by "));
        // A file line cut in its line number or its hex offset still looks whole.
        let in_number = cut.ends_with(|c: char| c.is_ascii_hexdigit())
            && cut.rsplit('\n').next().is_some_and(|l| l.starts_with('\t'));
        if whole_record || in_number || last_header.is_none_or(|h| h.starts_with("goroutine 1 ")) {
            continue;
        }
        let a = analyze(cut).unwrap();
        assert!(
            a.truncated,
            "cut at {at}: {:?}",
            &cut[cut.len().saturating_sub(60)..]
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    assert!(!analyze(&dump).unwrap().truncated);
}

/// pprof's debug=2 writer stops at 64 MiB: a real dump of 20,000 goroutines 40 calls deep
/// is cut there, and the analysis says so.
#[test]
fn a_dump_cut_at_pprofs_64_mib_is_flagged() {
    let bin = build_program("many");
    let out = Command::new(&bin).args(["20000", "40"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 64 << 20);
    let (a, stats) = goguard_dump::analyze::analyze_last(std::io::Cursor::new(out.stdout)).unwrap();
    assert!(a.truncated && stats.cut_at_cap);
    assert!(a.total < 20_000, "{}", a.total);
}
