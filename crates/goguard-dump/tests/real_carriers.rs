//! Real dumps in the shapes users paste them: through loggers, `go test -v`, log
//! collectors, editors that expand tabs, PowerShell, GOTRACEBACK=crash. Each is produced by
//! a Go program the test runs, or derived from its real output by the transformation the
//! carrier applies (a kubectl prefix, docker's json-file, UTF-16) where no program here can
//! produce it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use goguard_dump::race::CrashKind;
use goguard_dump::{Analysis, Group};

/// Builds a test program and returns its path.
fn build(name: &str) -> PathBuf {
    support::build_program(name, "carriers")
}

fn logged(mode: &str) -> String {
    let out = Command::new(build("logged")).arg(mode).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The analysis of the last dump of an input, as `goguard dump` makes it.
fn last(bytes: impl Into<Vec<u8>>) -> (Analysis, goguard_dump::ParseStats) {
    goguard_dump::analyze::analyze_last(std::io::Cursor::new(bytes.into()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn group<'a>(a: &'a Analysis, function: &str) -> &'a Group {
    a.groups
        .iter()
        .find(|g| g.top_frame.as_ref().is_some_and(|f| f.function == function))
        .unwrap_or_else(|| panic!("no group for {function}: {:#?}", a.groups))
}

/// 40 senders parked and main: what every logged form must give.
fn assert_forty_senders(a: &Analysis, how: &str) {
    assert_eq!(a.total, 41, "{how}: {:#?}", a.groups);
    let senders = group(a, "main.abandoned");
    assert_eq!(
        (senders.count, senders.state.as_str(), senders.suspect),
        (40, "chan send", true),
        "{how}"
    );
    assert_eq!(senders.frames[0].line, 21, "{how}");
    assert!(!a.truncated, "{how}");
}

#[test]
fn dumps_written_through_loggers_are_read() {
    for mode in ["log", "lines", "slogjson", "jsonlines", "slogtext"] {
        let text = logged(mode);
        let (a, _) = last(text);
        assert_forty_senders(&a, mode);
    }
}

#[test]
fn a_dump_logged_by_a_go_test_is_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/logged");
    let out = Command::new("go")
        .args(["test", "-v", "-count=1", "-run", "TestDump", "."])
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("    logged_test.go:"), "{text}");
    let (a, _) = last(text);
    // The test's own goroutine and the test runner's join the 40 senders.
    assert_eq!(a.total, 42, "{:#?}", a.groups);
    assert_eq!(group(&a, "logged.abandoned").count, 40);
}

#[test]
fn stray_bytes_a_bom_and_utf16_before_the_dump() {
    let text = logged("log");
    let dump = &text[text.find("goroutine ").unwrap()..];
    for (how, bytes) in [
        ("BOM", [&b"\xef\xbb\xbf"[..], dump.as_bytes()].concat()),
        ("NUL", [&b"\x00"[..], dump.as_bytes()].concat()),
        ("escape", [&b"\x1b[0m"[..], dump.as_bytes()].concat()),
        ("UTF-16LE", utf16(dump, false)),
        ("UTF-16BE", utf16(dump, true)),
    ] {
        let (a, _) = last(bytes);
        assert_forty_senders(&a, how);
    }
}

/// What PowerShell's `>` writes: UTF-16 with a byte order mark.
fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in std::iter::once(0xfeff).chain(text.encode_utf16()) {
        let bytes = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend_from_slice(&bytes);
    }
    out
}

/// Docker's json-file driver: one record per line of the container's output.
fn docker_json(text: &str) -> String {
    text.lines()
        .map(|l| {
            format!(
                "{{\"log\":{},\"stream\":\"stderr\",\"time\":\"2026-12-05T10:00:00.000000001Z\"}}\n",
                serde_json::to_string(&format!("{l}\n")).unwrap()
            )
        })
        .collect()
}

#[test]
fn docker_json_logs_are_read_and_other_json_is_named() {
    let text = logged("log");
    let dump = &text[text.find("goroutine ").unwrap()..];
    let (a, _) = last(docker_json(dump));
    assert_forty_senders(&a, "docker json-file");
    // JSON records without a dump: the error says what was found.
    let other =
        "{\"level\":\"info\",\"msg\":\"started\"}\n{\"level\":\"info\",\"msg\":\"ready\"}\n";
    let err = goguard_dump::analyze::analyze_last(std::io::Cursor::new(other.as_bytes().to_vec()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 JSON log records") && err.contains("level, msg"),
        "{err}"
    );
}

/// Frames indented with spaces (a dump pasted from a web page, an editor expanding tabs):
/// the frames are read, and the long-blocked senders are still the suspects.
#[test]
fn frames_indented_with_spaces_are_read() {
    let text = logged("log");
    let dump = &text[text.find("goroutine ").unwrap()..];
    for (how, indent) in [
        ("spaces then a tab", "    \t"),
        ("eight spaces", "        "),
    ] {
        let pasted: String = dump
            .lines()
            .map(|l| match l.strip_prefix('\t') {
                Some(rest) => format!("{indent}{rest}\n"),
                None => format!("{l}\n"),
            })
            // As an old dump would say: blocked for 10 minutes.
            .map(|l| l.replace("[chan send]:", "[chan send, 10 minutes]:"))
            .collect();
        let (a, _) = last(pasted);
        assert_forty_senders(&a, how);
        let senders = group(&a, "main.abandoned");
        assert_eq!(senders.wait_minutes, Some([10, 10]), "{how}");
        assert!(
            senders.reason.contains("10 minutes"),
            "{how}: {}",
            senders.reason
        );
    }
}

/// Sends SIGQUIT to the crash program's "busy" mode (120 parked senders, 4 spinners) under
/// GOTRACEBACK=`level`: its standard error.
fn sigquit_busy(level: &str) -> String {
    use std::io::BufRead;
    let mut child = Command::new(build("crash"))
        .arg("busy")
        .env("GOTRACEBACK", level)
        .env("GOMAXPROCS", "4")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let kill = Command::new("kill")
        .args(["-QUIT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// GOTRACEBACK=crash prints each thread's stacks after the goroutines, and with them the
/// goroutine each thread was running, again: one dump, and thread stacks are not goroutines.
#[test]
fn a_crash_traceback_is_one_dump_without_thread_stacks() {
    for level in ["crash", "system"] {
        let stderr = sigquit_busy(level);
        // Distinct goroutines of the report as read: a thread section repeats the goroutine
        // its thread runs (the runtime does on machines with more cores, and under load; the
        // test adds one below as it would), and a repeat is one goroutine.
        let distinct = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("goroutine ") && !l.starts_with("goroutine 0 "))
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(str::to_string)
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        // On a machine with more cores the runtime prints the goroutine a thread runs in
        // that thread's section: add it as it would, after the first thread's g0 stack.
        let first = stderr.find("\ngoroutine ").unwrap() + 1;
        let record = &stderr[first..first + stderr[first..].find("\n\n").unwrap() + 2];
        let mut input = stderr.clone();
        if level == "crash" {
            let at = input.find("\n-----\n").expect("thread sections");
            let g0_end = at + 7 + input[at + 7..].find("\nrax").unwrap() + 1;
            input.insert_str(g0_end, &format!("\n{record}"));
        }
        let (a, stats) = last(input.clone());
        assert_eq!(stats.dumps, 1, "{level}");
        assert_eq!(a.total, distinct(&input), "{level}");
        assert!((121..=130).contains(&a.total), "{level}: {}", a.total);
        assert_eq!(group(&a, "main.abandoned").count, 120, "{level}");
        assert!(!a.groups.iter().any(|g| g.state == "idle"), "{level}");
        let crash = a.crash.as_ref().unwrap();
        assert_eq!(
            (crash.kind, crash.message.as_str()),
            (CrashKind::Signal, "SIGQUIT: quit")
        );
        if level == "crash" {
            assert!(stats.thread_stacks >= 2, "{}", stats.thread_stacks);
        }
    }
}

/// A log prefix on every line (kubectl --timestamps, CRI, journald): the crash message and
/// the race report are still read.
#[test]
fn prefixed_logs_keep_the_verdict() {
    type Prefix = fn(usize) -> String;
    let prefixes: [(&str, Prefix); 3] = [
        ("kubectl", |i| {
            format!("2026-12-05T10:00:{:02}.{i}Z ", i % 60)
        }),
        ("CRI", |i| format!("2026-12-05T10:00:00.{i:09}Z stderr F ")),
        ("journald", |i| {
            format!("Dec 05 10:00:{:02} web1 app[812]: ", i % 60)
        }),
    ];
    let deadlock = run_crash("deadlock");
    let race = run_crash_race();
    for (how, prefix) in prefixes {
        let with = |text: &str| -> String {
            text.lines()
                .enumerate()
                .map(|(i, l)| format!("{}{l}\n", prefix(i)))
                .collect()
        };
        let (a, _) = last(with(&deadlock));
        let crash = a
            .crash
            .as_ref()
            .unwrap_or_else(|| panic!("{how}: no crash"));
        assert_eq!(crash.kind, CrashKind::Deadlock, "{how}");
        assert_eq!(crash.at.as_ref().map(|f| f.line), Some(35), "{how}");
        let (a, _) = last(with(&sigquit_busy("all")));
        assert_eq!(
            a.crash.as_ref().map(|c| c.kind),
            Some(CrashKind::Signal),
            "{how}"
        );
        assert_eq!(group(&a, "main.abandoned").count, 120, "{how}");
        let (a, _) = last(with(&race));
        assert_eq!(a.races.len(), 1, "{how}");
        assert!(a.races[0]
            .locations
            .iter()
            .all(|l| l.ends_with("crash/main.go:20")));
    }
}

fn run_crash(arg: &str) -> String {
    let out = Command::new(build("crash")).arg(arg).output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_crash_race() -> String {
    let bin = support::build_program_with("crash", "race-carriers", &["-race"]);
    let out = Command::new(&bin).arg("race").output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Several crashes in one log: each crash message starts a dump and stays with it.
#[test]
fn each_crash_message_starts_its_own_dump() {
    let log = format!("{}{}", run_crash("deadlock"), run_crash("negative"));
    let (a, stats) = last(log.clone());
    assert_eq!(stats.dumps, 2);
    assert_eq!(
        a.crash.as_ref().map(|c| c.kind),
        Some(CrashKind::NegativeWaitGroup)
    );
    let first = stats.for_dump(0);
    assert_eq!(
        first.crash.as_ref().map(|c| c.kind),
        Some(CrashKind::Deadlock)
    );
}

/// Two processes' output interleaved with compose-style prefixes: two dumps, never mixed.
#[test]
fn interleaved_processes_are_separated_by_their_prefix() {
    let web = logged("log");
    let web = &web[web.find("goroutine ").unwrap()..];
    let api = run_crash("deadlock4");
    let (web_lines, api_lines): (Vec<&str>, Vec<&str>) =
        (web.lines().collect(), api.lines().collect());
    let mut mixed = String::new();
    for i in 0..web_lines.len().max(api_lines.len()) {
        if let Some(l) = web_lines.get(i) {
            mixed.push_str(&format!("web-1  | {l}\n"));
        }
        if let Some(l) = api_lines.get(i) {
            mixed.push_str(&format!("api-1  | {l}\n"));
        }
    }
    let mut per_dump: Vec<usize> = Vec::new();
    let stats = goguard_dump::parse_dump(mixed.as_bytes(), |g| {
        if per_dump.len() <= g.dump {
            per_dump.resize(g.dump + 1, 0);
        }
        per_dump[g.dump] += 1;
    })
    .unwrap();
    assert_eq!(stats.dumps, 2, "{:?}", stats.dump_info);
    let sources: Vec<&str> = stats.dump_info.iter().map(|d| d.source.as_str()).collect();
    assert_eq!(sources, ["web-1", "api-1"]);
    // The api's deadlock: main and its 4 senders.
    assert_eq!(per_dump, [41, 5]);
    assert_eq!(
        stats.dump_info[1].crash.as_ref().map(|c| c.kind),
        Some(CrashKind::Deadlock)
    );
}

/// 30 HTTP handlers blocked for ever on a channel: net/http's server runs them, but the
/// wait is the handler's own, so the group is the application's and a suspect.
#[test]
fn handlers_blocked_in_their_own_code_are_suspects() {
    let out = Command::new(build("handlers")).output().unwrap();
    assert!(out.status.success());
    let (a, _) = last(out.stdout);
    let handlers = group(&a, "main.block");
    assert_eq!(
        (handlers.count, handlers.state.as_str()),
        (30, "chan receive")
    );
    assert!(handlers.suspect, "{}", handlers.reason);
    assert_eq!(handlers.rule, Some("G101"));
    // The connections' own reads are still the server's business.
    assert!(a
        .groups
        .iter()
        .filter(|g| g.state == "IO wait")
        .all(|g| !g.suspect));
}

/// In the runtime's deadlock every blocked group is stuck, however small; a synctest
/// bubble's deadlock is a deadlock too.
#[test]
fn every_blocked_group_of_a_deadlock_is_a_suspect() {
    let (a, _) = last(run_crash("deadlock4"));
    assert_eq!(a.crash.as_ref().map(|c| c.kind), Some(CrashKind::Deadlock));
    let senders = a
        .groups
        .iter()
        .find(|g| g.state == "chan send")
        .unwrap_or_else(|| panic!("{:#?}", a.groups));
    assert_eq!(senders.count, 4);
    assert!(senders.suspect, "{}", senders.reason);
    assert!(senders.reason.contains("deadlock"), "{}", senders.reason);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/bubble");
    let out = Command::new("go")
        .args(["test", "-count=1", "."])
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (a, _) = last(out.stdout);
    let crash = a.crash.as_ref().unwrap();
    assert_eq!(crash.kind, CrashKind::Deadlock, "{}", crash.message);
    assert_eq!(crash.at.as_ref().map(|f| f.line), Some(10), "{crash:?}");
    let bubble = group(&a, "bubble.TestBubbleDeadlock.func1.1");
    assert_eq!(bubble.count, 3);
    assert!(bubble.suspect && bubble.rule == Some("G106"), "{bubble:?}");
}

/// With GOTRACEBACK=crash the runtime's own frames are printed: the crash is still placed
/// at the program's line, not in runtime/panic.go.
#[test]
fn a_crash_is_placed_at_the_program_line_at_every_traceback_level() {
    for level in ["all", "system", "crash"] {
        let out = Command::new(build("crash"))
            .arg("negative")
            .env("GOTRACEBACK", level)
            .output()
            .unwrap();
        let (a, _) = last(out.stderr);
        let at = a.crash.as_ref().and_then(|c| c.at.as_ref()).unwrap();
        assert_eq!(
            (at.function.as_str(), at.line),
            ("main.main", 38),
            "{level}"
        );
    }
}

/// `--ignore-top F` matches the goroutine's top frame, as goleak's IgnoreTopFunction: main
/// writing the dump has pprof's writer on top, so `main.main` leaves it in.
#[test]
fn ignore_top_matches_the_top_frame_only() {
    let out = Command::new(build("leaky")).output().unwrap();
    assert!(out.status.success());
    let analyze = |top: &str| {
        let mut g = goguard_dump::analyze::Grouper::new(goguard_dump::analyze::GroupOptions {
            ignore_top: vec![top.to_string()],
            ..Default::default()
        });
        let stats = goguard_dump::parse_dump(&out.stdout[..], |x| g.add(x)).unwrap();
        g.finish(&stats)
    };
    assert_eq!(analyze("main.main").ignored, 0);
    assert_eq!(analyze("runtime/pprof.writeGoroutineStacks").ignored, 1);
    assert_eq!(analyze("main.abandoned").ignored, 7);
}
