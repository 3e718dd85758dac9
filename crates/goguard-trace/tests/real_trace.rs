//! Traces from real Go runs (built and run by the test with the Go toolchain), and a
//! hand-checked log in Go 1.17's format.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use goguard_trace::analyze::Thresholds;

fn traced() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/traced");
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("traced");
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
    })
}

/// Runs the program under the three trace settings; its stderr.
fn run(mode: &str, scheddetail: bool) -> String {
    let godebug = if scheddetail {
        "schedtrace=50,scheddetail=1,gctrace=1"
    } else {
        "schedtrace=50,gctrace=1"
    };
    let out = Command::new(traced())
        .arg(mode)
        .env("GODEBUG", godebug)
        .env("GOGC", "25")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

fn report(log: &str) -> goguard_trace::Report {
    let trace = goguard_trace::parse_trace(log.as_bytes()).unwrap();
    goguard_trace::analyze(trace, Thresholds::default())
}

fn kinds(r: &goguard_trace::Report) -> Vec<&'static str> {
    let mut k: Vec<&str> = r.anomalies.iter().map(|a| a.kind).collect();
    k.sort();
    k
}

#[test]
fn a_leaking_program_shows_a_growing_heap_and_blocked_goroutines() {
    let log = run("leak", true);
    let r = report(&log);
    assert!(r.gc.cycles.len() >= 6, "{log}");
    assert!(r.sched.samples.len() >= 10, "{log}");
    assert_eq!(
        kinds(&r),
        ["blocked_goroutines_growing", "heap_growth"],
        "{log}"
    );
    let last = r.sched.summary.goroutines_last.as_ref().unwrap();
    assert!(last["chan receive"] >= 100, "{last:?}");
    // Every field of every cycle was read.
    for c in &r.gc.cycles {
        assert_eq!(
            (c.clock_ms.len(), c.cpu_ms.len(), c.procs),
            (3, 5, c.procs.max(1))
        );
        assert!(c.goal_mb > 0.0 && c.stacks_mb.is_some() && c.globals_mb.is_some());
    }
    assert!(r.gc.summary.live_heap_last_mb > r.gc.summary.live_heap_first_mb + 20.0);
}

#[test]
fn a_healthy_program_has_no_anomaly() {
    let r = report(&run("healthy", true));
    assert!(r.gc.cycles.len() >= 3);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
}

/// Prefixes, CRLF and gzip change nothing.
#[test]
fn logs_with_prefixes_crlf_and_gzip_read_the_same() {
    let log = run("leak", false);
    let plain = report(&log);
    let prefixed: String = log
        .lines()
        .map(|l| format!("2026-11-26T10:00:00.000Z stderr F {l}\r\n"))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, prefixed.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    let reader = goguard_dump::decompressing(std::io::Cursor::new(bytes)).unwrap();
    let other = goguard_trace::analyze(
        goguard_trace::parse_trace(reader).unwrap(),
        Thresholds::default(),
    );
    assert_eq!(other.gc.cycles, plain.gc.cycles);
    assert_eq!(other.sched.samples, plain.sched.samples);
    assert_eq!(other.bad_lines, 0);
}

#[test]
fn go_1_17_logs_and_saturated_queues() {
    let log = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go117.log"),
    )
    .unwrap();
    let r = report(&log);
    assert_eq!((r.gc.cycles.len(), r.gc.summary.forced), (4, 1));
    assert_eq!(r.gc.cycles[0].stacks_mb, None);
    assert_eq!(r.sched.samples[1].local_runqueues, [3, 5, 2, 4]);
    assert_eq!(r.sched.samples[1].queued(), 28);
    assert_eq!(r.other_lines, 1, "the application's own line");
    assert_eq!(kinds(&r), ["runqueue_saturated"]);
    assert_eq!(r.anomalies[0].since, 1.004);
}

#[test]
fn garbage_is_counted_not_fatal() {
    let r = report("gc 7 @0.5s 3%: cut\nSCHED 12ms: gomax\n\u{0}\u{1}binary\n");
    assert_eq!((r.bad_lines, r.gc.cycles.len()), (2, 0));
}
