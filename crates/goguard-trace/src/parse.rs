//! The trace lines the Go runtime prints on standard error:
//!
//! ```text
//! gc 4 @0.002s 27%: 0.043+0.53+0.028 ms clock, 0.086+0.44/0.20/0+0.057 ms cpu, 25->28->15 MB, 29 MB goal, 0 MB stacks, 0 MB globals, 2 P
//! SCHED 309ms: gomaxprocs=2 idleprocs=0 threads=4 spinningthreads=0 needspinning=1 idlethreads=0 runqueue=0 [ 2 0 ] schedticks=[ 0 0 ]
//!   P0: status=1 schedtick=14886 syscalltick=0 m=3 runqsize=63 gfreecnt=0 timerslen=11899
//!   G17: status=4(sleep) m=nil lockedm=nil
//! ```
//!
//! Fields differ across Go versions (stacks and globals joined gctrace in 1.19,
//! needspinning and schedticks came later); every field is read by name where it has one,
//! and a missing field is `None`, not an error.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

/// One `gc N @Ts P%: ...` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcCycle {
    pub n: u64,
    /// Seconds since the program started.
    pub at_seconds: f64,
    /// Percentage of the CPU spent in GC since the program started (cumulative).
    pub cpu_percent: f64,
    /// Wall-clock phases in ms: stop-the-world sweep termination, concurrent mark and scan,
    /// stop-the-world mark termination.
    pub clock_ms: Vec<f64>,
    /// CPU phases in ms: sweep termination, mark assist/background/idle, mark termination.
    pub cpu_ms: Vec<f64>,
    /// Heap at GC start, at its peak, and live after marking, in MB.
    pub heap_start_mb: f64,
    pub heap_peak_mb: f64,
    pub heap_live_mb: f64,
    pub goal_mb: f64,
    /// Go 1.19+.
    pub stacks_mb: Option<f64>,
    pub globals_mb: Option<f64>,
    pub procs: u32,
    /// Started by `runtime.GC()` or `debug.FreeOSMemory()`, not by the pacer.
    pub forced: bool,
}

impl GcCycle {
    /// The two stop-the-world pauses of the cycle, in ms.
    pub fn pause_ms(&self) -> f64 {
        self.clock_ms.first().unwrap_or(&0.0) + self.clock_ms.get(2).unwrap_or(&0.0)
    }
}

/// One `SCHED Nms: ...` line, with its scheddetail block when there is one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedSample {
    /// Milliseconds since the program started.
    pub at_ms: u64,
    pub gomaxprocs: u32,
    pub idleprocs: u32,
    pub threads: u32,
    pub spinningthreads: u32,
    pub needspinning: Option<u32>,
    pub idlethreads: u32,
    /// The global run queue.
    pub runqueue: u32,
    /// Each P's local run queue (from `[ a b ]`, or `runqsize=` in scheddetail).
    pub local_runqueues: Vec<u32>,
    /// Every other `key=value` field as printed (gcwaiting, nmidlelocked, stopwait, ...).
    pub other: BTreeMap<String, String>,
    /// With scheddetail=1: goroutines by state (`running`, `runnable`, `syscall`, or the
    /// wait reason such as `chan receive`).
    pub goroutines: Option<BTreeMap<String, u32>>,
    /// With scheddetail=1: Ps by status (`idle`, `running`, `syscall`, `gcstop`, `dead`).
    pub procs: Option<BTreeMap<String, u32>>,
    /// With scheddetail=1: Ms (OS threads) by what they do (`running` a goroutine,
    /// `spinning` for work, `blocked`, `idle`).
    pub machines: Option<BTreeMap<String, u32>>,
    /// The local run queues came from scheddetail's per-P lines.
    #[serde(skip)]
    pub(crate) detailed: bool,
}

impl SchedSample {
    /// Goroutines waiting to run: the global queue plus every local queue.
    pub fn queued(&self) -> u32 {
        self.runqueue + self.local_runqueues.iter().sum::<u32>()
    }
}

/// Everything read from a log.
#[derive(Debug, Default, Serialize)]
pub struct Trace {
    pub gc: Vec<GcCycle>,
    pub sched: Vec<SchedSample>,
    /// Lines that were not trace lines (the program's own output).
    pub other_lines: usize,
    /// Trace-looking lines that could not be read (cut, garbled).
    pub bad_lines: usize,
}

/// Reads a whole log (gzip is handled by the caller with `goguard_dump::decompressing`).
pub fn parse_trace<R: BufRead>(input: R) -> std::io::Result<Trace> {
    let mut t = Trace::default();
    goguard_dump::for_each_line(input, |line| {
        if let Some(at) = line.find("SCHED ") {
            match parse_sched(&line[at + 6..]) {
                Some(s) => t.sched.push(s),
                None => t.bad_lines += 1,
            }
        } else if let Some(rest) = find_gc(line) {
            match parse_gc(rest) {
                Some(c) => t.gc.push(c),
                None => t.bad_lines += 1,
            }
        } else if let Some((kind, rest)) = find_detail(line) {
            if let Some(last) = t.sched.last_mut() {
                detail(last, kind, rest);
            }
        } else if !line.trim().is_empty() {
            t.other_lines += 1;
        }
    })?;
    Ok(t)
}

/// The text after `gc ` when the line holds `gc N @`, wherever it starts (log prefixes).
fn find_gc(line: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = line[from..].find("gc ") {
        let rest = &line[from + i + 3..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0
            && rest[digits..].starts_with(" @")
            && (i + from == 0 || line.as_bytes()[from + i - 1] == b' ')
        {
            return Some(rest);
        }
        from += i + 3;
    }
    None
}

/// `4 @0.002s 27%: 0.043+0.53+0.028 ms clock, 0.086+0.44/0.20/0+0.057 ms cpu, 25->28->15 MB,
/// 29 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)`
fn parse_gc(rest: &str) -> Option<GcCycle> {
    let (head, body) = rest.split_once(": ")?;
    let mut head = head.split_whitespace();
    let n = head.next()?.parse().ok()?;
    let at_seconds = head
        .next()?
        .strip_prefix('@')?
        .strip_suffix('s')?
        .parse()
        .ok()?;
    let cpu_percent = head.next()?.strip_suffix('%')?.parse().ok()?;
    let mut c = GcCycle {
        n,
        at_seconds,
        cpu_percent,
        forced: body.trim_end().ends_with("(forced)"),
        ..GcCycle::default()
    };
    let numbers = |s: &str| -> Vec<f64> {
        s.split(['+', '/'])
            .filter_map(|x| x.trim().parse().ok())
            .collect()
    };
    for part in body.split(", ") {
        let part = part.trim().trim_end_matches(" (forced)");
        if let Some(v) = part.strip_suffix(" ms clock") {
            c.clock_ms = numbers(v);
        } else if let Some(v) = part.strip_suffix(" ms cpu") {
            c.cpu_ms = numbers(v);
        } else if let Some(v) = part.strip_suffix(" MB goal") {
            c.goal_mb = v.trim().parse().ok()?;
        } else if let Some(v) = part.strip_suffix(" MB stacks") {
            c.stacks_mb = v.trim().parse().ok();
        } else if let Some(v) = part.strip_suffix(" MB globals") {
            c.globals_mb = v.trim().parse().ok();
        } else if let Some(v) = part.strip_suffix(" MB") {
            let heap: Vec<f64> = v
                .split("->")
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            if let [start, peak, live] = heap[..] {
                (c.heap_start_mb, c.heap_peak_mb, c.heap_live_mb) = (start, peak, live);
            }
        } else if let Some(v) = part.strip_suffix(" P") {
            c.procs = v.trim().parse().ok()?;
        }
    }
    // A line cut before its heap figures is not a cycle to chart.
    (c.clock_ms.len() == 3 && c.goal_mb > 0.0).then_some(c)
}

/// `309ms: gomaxprocs=2 idleprocs=0 threads=4 ... runqueue=0 [ 2 0 ] schedticks=[ 0 0 ]`
fn parse_sched(rest: &str) -> Option<SchedSample> {
    let (at, body) = rest.split_once(": ")?;
    let mut s = SchedSample {
        at_ms: at.trim().strip_suffix("ms")?.parse().ok()?,
        ..SchedSample::default()
    };
    // The bracket list right after `runqueue=N` holds the local run queues (`[ 2 0 ]`, or
    // `[2 0]` in older Go); other lists (`schedticks=[ ... ]`) are named and skipped.
    let mut fields = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
        let before = &rest[..open];
        if !before.trim_end().ends_with('=') && before.contains("runqueue=") {
            for n in rest[open + 1..close].split_whitespace() {
                s.local_runqueues.push(n.parse().ok()?);
            }
        }
        // A named list (`schedticks=[`): drop its key with it.
        let kept = match before.strip_suffix('=') {
            Some(b) => b.rfind(' ').map_or("", |i| &b[..i]),
            None => before,
        };
        fields.push_str(kept);
        fields.push(' ');
        rest = rest.get(close + 1..).unwrap_or("");
    }
    fields.push_str(rest);
    // How many of the named fields were read: a cut line has too few to be a sample.
    let mut named = 0;
    for token in fields.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        let num = || value.parse::<u32>().ok();
        match key {
            "gomaxprocs" => s.gomaxprocs = num()?,
            "idleprocs" => s.idleprocs = num()?,
            "threads" => s.threads = num()?,
            "spinningthreads" => s.spinningthreads = num()?,
            "needspinning" => s.needspinning = num(),
            "idlethreads" => s.idlethreads = num()?,
            "runqueue" => s.runqueue = num()?,
            _ => {
                s.other.insert(key.to_string(), value.to_string());
                continue;
            }
        }
        named += 1;
    }
    (named >= 5).then_some(s)
}

enum Detail {
    P,
    G,
    M,
}

/// `  P0: status=1 ...`, `  M2: p=1 ...`, `  G17: status=4(sleep) ...`, behind any prefix.
fn find_detail(line: &str) -> Option<(Detail, &str)> {
    for (marker, kind) in [(": status=", true), (": p=", false)] {
        if let Some(i) = line.find(marker) {
            let before = &line[..i];
            let id_start = before.rfind(|c: char| !c.is_ascii_digit())?;
            let letter = before[..id_start + 1].chars().last()?;
            if id_start + 1 == before.len() {
                return None;
            }
            let rest = &line[i + 2..];
            return match (letter, kind) {
                ('P', true) => Some((Detail::P, rest)),
                ('G', true) => Some((Detail::G, rest)),
                ('M', false) => Some((Detail::M, rest)),
                _ => None,
            };
        }
    }
    None
}

/// Folds a scheddetail line into the sample it belongs to.
fn detail(sample: &mut SchedSample, kind: Detail, rest: &str) {
    match kind {
        Detail::P => {
            let status = match field(rest, "status") {
                Some("0") => "idle",
                Some("1") => "running",
                Some("2") => "syscall",
                Some("3") => "gcstop",
                Some("4") => "dead",
                _ => "other",
            };
            *sample
                .procs
                .get_or_insert_with(BTreeMap::new)
                .entry(status.into())
                .or_default() += 1;
            // scheddetail prints runqsize per P instead of the `[ ... ]` list.
            if let Some(n) = field(rest, "runqsize").and_then(|v| v.parse().ok()) {
                if !sample.detailed {
                    sample.local_runqueues.clear();
                    sample.detailed = true;
                }
                sample.local_runqueues.push(n);
            }
        }
        Detail::G => {
            let Some(status) = field(rest, "status") else {
                return;
            };
            let (code, reason) = match status.split_once('(') {
                Some((code, reason)) => (code, reason.strip_suffix(')').unwrap_or(reason)),
                None => (status, ""),
            };
            let state = match (code, reason) {
                (_, r) if !r.is_empty() => r.to_string(),
                ("1", _) => "runnable".into(),
                ("2", _) => "running".into(),
                ("3", _) => "syscall".into(),
                ("4", _) => "waiting".into(),
                ("6", _) => return, // dead: a goroutine kept for reuse
                ("0", _) => "idle".into(),
                (c, _) => format!("status {c}"),
            };
            *sample
                .goroutines
                .get_or_insert_with(BTreeMap::new)
                .entry(state)
                .or_default() += 1;
        }
        Detail::M => {
            let state = if field(rest, "spinning") == Some("true") {
                "spinning"
            } else if field(rest, "blocked") == Some("true") {
                "blocked"
            } else if field(rest, "curg").is_some_and(|g| g != "nil") {
                "running"
            } else {
                "idle"
            };
            *sample
                .machines
                .get_or_insert_with(BTreeMap::new)
                .entry(state.into())
                .or_default() += 1;
        }
    }
}

/// The value of `key=` in a scheddetail line; values may hold spaces inside parentheses
/// (`status=4(chan receive)`).
fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    let at = rest.find(&format!("{key}="))? + key.len() + 1;
    let value = &rest[at..];
    let mut depth = 0;
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ' ' if depth == 0 => return Some(&value[..i]),
            _ => {}
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_current_gc_line() {
        let c = parse_gc("4 @0.002s 27%: 0.043+0.53+0.028 ms clock, 0.086+0.44/0.20/0+0.057 ms cpu, 25->28->15 MB, 29 MB goal, 0 MB stacks, 1 MB globals, 2 P").unwrap();
        assert_eq!((c.n, c.at_seconds, c.cpu_percent), (4, 0.002, 27.0));
        assert_eq!(c.clock_ms, [0.043, 0.53, 0.028]);
        assert_eq!(c.cpu_ms, [0.086, 0.44, 0.20, 0.0, 0.057]);
        assert_eq!(
            (c.heap_start_mb, c.heap_peak_mb, c.heap_live_mb, c.goal_mb),
            (25.0, 28.0, 15.0, 29.0)
        );
        assert_eq!(
            (c.stacks_mb, c.globals_mb, c.procs, c.forced),
            (Some(0.0), Some(1.0), 2, false)
        );
        assert!((c.pause_ms() - 0.071).abs() < 1e-9);
    }

    #[test]
    fn reads_an_old_forced_gc_line() {
        // Go 1.17/1.18: no stacks or globals.
        let c = parse_gc("12 @3.150s 1%: 0.031+1.2+0.004 ms clock, 0.12+0.35/1.0/2.1+0.016 ms cpu, 4->4->2 MB, 5 MB goal, 4 P (forced)").unwrap();
        assert_eq!(
            (c.stacks_mb, c.procs, c.forced, c.heap_live_mb),
            (None, 4, true, 2.0)
        );
    }

    #[test]
    fn finds_gc_lines_behind_prefixes_only_at_word_starts() {
        assert!(find_gc("2026-11-26T10:00:00Z stderr F gc 4 @0.002s 27%: x").is_some());
        assert!(find_gc("the logic 4 @home").is_none());
        assert!(find_gc("gc forced").is_none());
    }

    #[test]
    fn reads_sched_lines_of_several_versions() {
        let s = parse_sched("309ms: gomaxprocs=2 idleprocs=0 threads=4 spinningthreads=0 needspinning=1 idlethreads=0 runqueue=3 [ 2 0 ] schedticks=[ 7 9 ]").unwrap();
        assert_eq!(
            (s.at_ms, s.gomaxprocs, s.threads, s.runqueue, s.needspinning),
            (309, 2, 4, 3, Some(1))
        );
        assert_eq!(s.local_runqueues, [2, 0]);
        assert_eq!(s.queued(), 5);
        // Go 1.17: no needspinning, queues without spaces inside the brackets.
        let s = parse_sched("1004ms: gomaxprocs=4 idleprocs=4 threads=9 spinningthreads=0 idlethreads=3 runqueue=0 [0 0 1 0]").unwrap();
        assert_eq!(
            (s.needspinning, s.local_runqueues.clone()),
            (None, vec![0, 0, 1, 0])
        );
        assert!(!s.other.contains_key("schedticks"));
        assert!(parse_sched("12ms: gomaxp").is_none());
    }

    #[test]
    fn scheddetail_counts_goroutines_by_state() {
        let log = "SCHED 0ms: gomaxprocs=2 idleprocs=0 threads=3 spinningthreads=0 needspinning=1 idlethreads=0 runqueue=0 gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false
  P0: status=1 schedtick=0 syscalltick=0 m=0 runqsize=4 gfreecnt=0 timerslen=0
  P1: status=1 schedtick=2 syscalltick=0 m=2 runqsize=1 gfreecnt=0 timerslen=0
  M2: p=1 curg=3 mallocing=0 throwing=0 preemptoff= locks=32 dying=0 spinning=false blocked=false lockedg=nil
  G1: status=4(chan receive) m=nil lockedm=0
  G2: status=4(force gc (idle)) m=nil lockedm=nil
  G3: status=2() m=2 lockedm=nil
  G4: status=1() m=nil lockedm=nil
  G5: status=4(chan receive) m=nil lockedm=nil
  G6: status=6() m=nil lockedm=nil
";
        let t = parse_trace(log.as_bytes()).unwrap();
        let s = &t.sched[0];
        assert_eq!(s.local_runqueues, [4, 1]);
        let g = s.goroutines.as_ref().unwrap();
        assert_eq!(g["chan receive"], 2);
        assert_eq!(g["force gc (idle)"], 1);
        assert_eq!((g["running"], g["runnable"]), (1, 1));
        assert!(!g.contains_key("dead"));
        assert_eq!(s.procs.as_ref().unwrap()["running"], 2);
        assert_eq!(s.machines.as_ref().unwrap()["running"], 1);
        assert_eq!(t.other_lines, 0);
    }
}
