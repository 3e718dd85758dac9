//! The race detector's reports (`go run/test/build -race`) and the runtime's fatal errors,
//! read into structures.
//!
//! ```text
//! ==================
//! WARNING: DATA RACE
//! Write at 0x00c000012118 by goroutine 7:
//!   main.inc()
//!       /src/main.go:12 +0x44
//!
//! Previous read at 0x00c000012118 by main goroutine:
//!   main.main()
//!       /src/main.go:20 +0x88
//!
//! Goroutine 7 (running) created at:
//!   main.main()
//!       /src/main.go:18 +0x7e
//! ==================
//! ```

use serde::Serialize;

use crate::parse::Frame;

/// One `WARNING: DATA RACE` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Race {
    /// The two (or more) conflicting accesses, the current one first.
    pub accesses: Vec<Access>,
    /// Where the goroutines involved were started.
    pub goroutines: Vec<Origin>,
}

/// One memory access of a race.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Access {
    /// `Write`, `Read`, `Previous write`, `Previous read` (with ` by ...` removed).
    pub kind: String,
    pub address: String,
    /// The goroutine that made it; `None` for the main goroutine.
    pub goroutine: Option<u64>,
    pub frames: Vec<Frame>,
}

/// `Goroutine 7 (running) created at:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Origin {
    pub goroutine: u64,
    /// `running` or `finished`.
    pub status: String,
    pub created_at: Vec<Frame>,
}

impl Race {
    /// `file:line` of the first program frame of each access: what identifies a race when
    /// the same one is reported many times.
    pub fn locations(&self) -> Vec<String> {
        self.accesses
            .iter()
            .filter_map(|a| crate::analyze::user_frame(&a.frames))
            .map(|f| format!("{}:{}", f.file, f.line))
            .collect()
    }

    /// The deduplication key: the set of access locations, in any order.
    pub fn key(&self) -> Vec<String> {
        let mut k = self.locations();
        k.sort();
        k.dedup();
        k
    }
}

/// What kind of fatal error the runtime reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
    /// `fatal error: all goroutines are asleep - deadlock!`
    Deadlock,
    /// `panic: sync: negative WaitGroup counter`
    NegativeWaitGroup,
    /// `fatal error: concurrent map writes` / `concurrent map read and map write` /
    /// `concurrent map iteration and map write`
    ConcurrentMap,
    /// `fatal error: sync: unlock of unlocked mutex` and its RWMutex forms.
    UnlockOfUnlocked,
    /// `SIGQUIT: quit` (kill -QUIT, Ctrl-\\) or a crash on another signal.
    Signal,
    /// Any other `panic:`.
    Panic,
    /// Any other `fatal error:`.
    Fatal,
}

impl CrashKind {
    pub fn of(message: &str) -> CrashKind {
        let m = message;
        // A synctest bubble's deadlock: `panic: deadlock: all goroutines in bubble are
        // blocked`, or `... main bubble goroutine has exited but blocked goroutines remain`.
        if m.contains("all goroutines are asleep - deadlock")
            || m.contains("deadlock: all goroutines in bubble are blocked")
            || m.contains("blocked goroutines remain")
        {
            CrashKind::Deadlock
        } else if m.contains("negative WaitGroup counter") {
            CrashKind::NegativeWaitGroup
        } else if m.contains("concurrent map") {
            CrashKind::ConcurrentMap
        } else if m.contains("unlock of unlocked") || m.contains("Unlock of unlocked") {
            CrashKind::UnlockOfUnlocked
        } else if m.starts_with("SIG") {
            CrashKind::Signal
        } else if m.starts_with("panic: ") {
            CrashKind::Panic
        } else {
            CrashKind::Fatal
        }
    }

    /// The first line the runtime prints for this kind of crash, as the check rules name
    /// their symptoms (`registry::Rule::symptoms`).
    fn symptom(self) -> Option<&'static str> {
        match self {
            CrashKind::Deadlock => Some("fatal error: all goroutines are asleep - deadlock!"),
            CrashKind::NegativeWaitGroup => Some("panic: sync: negative WaitGroup counter"),
            CrashKind::UnlockOfUnlocked => Some("fatal error: sync: unlock of unlocked mutex"),
            _ => None,
        }
    }

    /// What the crash means and the goguard check rule that finds its cause statically.
    pub fn explain(self) -> (&'static str, Option<&'static str>) {
        let rule = self
            .symptom()
            .and_then(goguard_check::registry::explaining)
            .map(|r| r.code);
        let text = match self {
            CrashKind::Deadlock =>
                "every goroutine is blocked: the runtime stops the program (it only detects this when no goroutine at all can run; a leak in a live server is never reported this way)",
            CrashKind::NegativeWaitGroup =>
                "Done was called more times than Add: a Done twice on one path, or an Add that runs after the goroutine's Done",
            CrashKind::ConcurrentMap =>
                "two goroutines used a map at once with one writing; the runtime's check is best-effort and this is fatal, not recoverable: guard the map with a sync.Mutex/RWMutex or use sync.Map",
            CrashKind::UnlockOfUnlocked =>
                "a mutex was unlocked that was not locked: usually an Unlock on a path that never locked, or a Mutex copied by value",
            CrashKind::Signal =>
                "the process got a signal and the runtime printed every goroutine before exiting (SIGQUIT: someone asked for this dump)",
            CrashKind::Panic | CrashKind::Fatal => "",
        };
        (text, rule)
    }
}

/// A fatal error with the goroutine that hit it.
#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    pub kind: CrashKind,
    pub message: String,
    /// The goroutine printed first after the message: the one that crashed.
    pub goroutine: Option<u64>,
    /// Its first program frame.
    pub at: Option<Frame>,
    pub explanation: &'static str,
    pub rule: Option<&'static str>,
}

impl Crash {
    pub fn new(message: &str) -> Crash {
        let kind = CrashKind::of(message);
        let (explanation, rule) = kind.explain();
        Crash {
            kind,
            message: message.to_string(),
            goroutine: None,
            at: None,
            explanation,
            rule,
        }
    }
}

const RULE: &str = "==================";

/// Reads race reports out of a stream of lines (already stripped of log prefixes).
#[derive(Default)]
pub struct RaceScanner {
    current: Option<Race>,
    /// Where frame lines go: 0 = the last access, 1 = the last origin.
    target: Option<Target>,
    pending_function: Option<String>,
}

#[derive(Clone, Copy)]
enum Target {
    Access,
    Origin,
}

impl RaceScanner {
    /// Feeds one line; returns a race when its block closes.
    pub fn feed(&mut self, line: &str) -> Option<Race> {
        if line == "WARNING: DATA RACE" {
            let unfinished = self.current.replace(Race::default());
            self.target = None;
            return unfinished.filter(|r| !r.accesses.is_empty());
        }
        let race = self.current.as_mut()?;
        if line.starts_with(RULE) {
            self.target = None;
            return self.current.take();
        }
        if let Some(access) = parse_access(line) {
            race.accesses.push(access);
            self.target = Some(Target::Access);
            return None;
        }
        if let Some(origin) = parse_origin(line) {
            race.goroutines.push(origin);
            self.target = Some(Target::Origin);
            return None;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return None;
        }
        let target = self.target?;
        if line.starts_with("      ") || line.starts_with('\t') {
            // The file line of the pending function.
            let function = self.pending_function.take()?;
            let loc = trimmed.split(" +0x").next().unwrap_or(trimmed);
            let (file, line_no) = match loc.rsplit_once(':') {
                Some((f, l)) => (f.to_string(), l.parse().unwrap_or(0)),
                None => (loc.to_string(), 0),
            };
            let frame = Frame {
                function,
                file,
                line: line_no,
            };
            match target {
                Target::Access => race.accesses.last_mut()?.frames.push(frame),
                Target::Origin => race.goroutines.last_mut()?.created_at.push(frame),
            }
        } else if line.starts_with("  ") {
            let name = trimmed.strip_suffix("()").unwrap_or(trimmed);
            self.pending_function = Some(name.to_string());
        }
        None
    }

    /// True between `WARNING: DATA RACE` and the closing rule: the lines belong to the report.
    pub fn in_report(&self) -> bool {
        self.current.is_some()
    }

    /// The race still open at the end of the input (a cut report), if it holds an access.
    pub fn finish(&mut self) -> Option<Race> {
        self.current.take().filter(|r| !r.accesses.is_empty())
    }
}

/// `Write at 0x00c000012118 by goroutine 7:` / `Previous read at 0x... by main goroutine:`.
fn parse_access(line: &str) -> Option<Access> {
    let rest = line.strip_suffix(':')?;
    let (kind, rest) = rest.split_once(" at ")?;
    if !matches!(
        kind,
        "Read" | "Write" | "Previous read" | "Previous write" | "Atomic read" | "Atomic write"
    ) && !kind.ends_with(" read")
        && !kind.ends_with(" write")
    {
        return None;
    }
    let (address, by) = rest.split_once(" by ")?;
    let goroutine = by
        .strip_prefix("goroutine ")
        .and_then(|n| n.trim().parse().ok());
    Some(Access {
        kind: kind.to_string(),
        address: address.to_string(),
        goroutine,
        frames: Vec::new(),
    })
}

/// `Goroutine 7 (running) created at:`.
fn parse_origin(line: &str) -> Option<Origin> {
    let rest = line
        .strip_prefix("Goroutine ")?
        .strip_suffix(" created at:")?;
    let (id, status) = rest.split_once(' ')?;
    Some(Origin {
        goroutine: id.parse().ok()?,
        status: status.trim_matches(|c| c == '(' || c == ')').to_string(),
        created_at: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "==================
WARNING: DATA RACE
Write at 0x00c000012118 by goroutine 7:
  main.inc()
      /src/main.go:12 +0x44
  main.main.gowrap1()
      /src/main.go:18 +0x2f

Previous read at 0x00c000012118 by main goroutine:
  main.main()
      /src/main.go:20 +0x88

Goroutine 7 (running) created at:
  main.main()
      /src/main.go:18 +0x7e
==================
";

    #[test]
    fn reads_a_race_block() {
        let mut s = RaceScanner::default();
        let races: Vec<Race> = REPORT.lines().filter_map(|l| s.feed(l)).collect();
        assert_eq!(races.len(), 1);
        let r = &races[0];
        assert_eq!(r.accesses.len(), 2);
        assert_eq!(
            (r.accesses[0].kind.as_str(), r.accesses[0].goroutine),
            ("Write", Some(7))
        );
        assert_eq!(r.accesses[1].goroutine, None);
        assert_eq!(r.accesses[0].frames[1].function, "main.main.gowrap1");
        assert_eq!(r.locations(), ["/src/main.go:12", "/src/main.go:20"]);
        assert_eq!(r.goroutines[0].status, "running");
        assert_eq!(r.goroutines[0].created_at[0].line, 18);
    }

    #[test]
    fn a_cut_report_keeps_its_accesses() {
        let mut s = RaceScanner::default();
        let cut = &REPORT[..REPORT.find("Previous").unwrap()];
        assert!(cut.lines().all(|l| s.feed(l).is_none()));
        assert_eq!(s.finish().unwrap().accesses.len(), 1);
    }

    #[test]
    fn crash_kinds() {
        assert_eq!(
            CrashKind::of("fatal error: all goroutines are asleep - deadlock!"),
            CrashKind::Deadlock
        );
        assert_eq!(
            CrashKind::of("fatal error: concurrent map writes"),
            CrashKind::ConcurrentMap
        );
        assert_eq!(
            CrashKind::of("panic: sync: negative WaitGroup counter"),
            CrashKind::NegativeWaitGroup
        );
        assert_eq!(CrashKind::of("panic: boom"), CrashKind::Panic);
    }
}
