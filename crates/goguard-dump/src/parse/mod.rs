//! The text format of Go goroutine dumps (debug=2, `runtime.Stack`, tracebacks).
//!
//! ```text
//! goroutine 6 [chan send, 3 minutes]:
//! main.abandoned(...)
//!         /tmp/leaky/main.go:10
//! created by main.main in goroutine 1
//!         /tmp/leaky/main.go:21 +0x1f
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

mod carrier;
mod decode;
mod line;
mod text;

pub use decode::decompressing;

use serde::Serialize;

/// One stack frame: the function and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// One goroutine of a dump.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Goroutine {
    pub id: u64,
    /// The wait state as printed: `chan send`, `select`, `sync.Mutex.Lock`, `running`...
    pub state: String,
    /// `N minutes` from the header: how long it has been blocked (absent under a minute).
    pub wait_minutes: Option<u32>,
    pub locked_to_thread: bool,
    /// Marked `(leaked)` by Go's goroutine leak profile.
    pub leaked: bool,
    /// pprof labels printed in the header.
    pub labels: BTreeMap<String, String>,
    pub frames: Vec<Frame>,
    pub created_by: Option<Frame>,
    /// Frames the runtime left out (`...N frames elided...`).
    pub elided: bool,
    /// How many goroutines this record stands for: 1 in debug=2 dumps, the record's count in
    /// debug=1 profiles (which aggregate identical stacks).
    pub weight: usize,
    /// Which dump of the input this goroutine belongs to (0-based): a log can hold several
    /// dumps one after another (a goroutine id seen again starts the next one).
    pub dump: usize,
}

/// What the parser saw besides goroutines.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ParseStats {
    /// `debug=2` (one record per goroutine, also runtime.Stack and tracebacks) or `debug=1`.
    pub format: &'static str,
    pub goroutines: usize,
    /// Lines that were neither part of a goroutine nor blank.
    pub other_lines: usize,
    /// The input ended in the middle of a goroutine (a cut dump).
    pub truncated: bool,
    /// The runtime's own verdict when the dump is a crash: `fatal error: all goroutines are
    /// asleep - deadlock!`, `panic: sync: negative WaitGroup counter`, ...
    pub fatal: Option<String>,
    /// The fatal error with the goroutine that hit it.
    pub crash: Option<crate::race::Crash>,
    /// The race detector's reports, in the order printed (repeats included).
    pub races: Vec<crate::race::Race>,
    /// How many dumps the input held (see [`Goroutine::dump`]).
    pub dumps: usize,
    /// Go's leak detector ran on this dump (a goroutineleak profile): goroutines it did not
    /// mark wait on something still reachable.
    pub leak_checked: bool,
    /// When the profile was taken (protobuf profiles record it), in Unix nanoseconds.
    pub time_unix_nanos: Option<i64>,
    /// The input is exactly 64 MiB: Go's debug=2 endpoint stops writing there, so the dump
    /// is cut (goroutines after that point are missing).
    pub cut_at_cap: bool,
    /// Goroutine records skipped because they are threads' own stacks (GOTRACEBACK=crash
    /// prints `goroutine 0 [idle]` and the goroutine each thread runs, again).
    pub thread_stacks: usize,
    /// Each dump of the input (text dumps), in order.
    pub dump_info: Vec<DumpInfo>,
    /// What carried the dump and was taken off: log prefixes, JSON records, stray bytes.
    pub carriers: Vec<String>,
    /// The dump these statistics were narrowed to by [`ParseStats::for_dump`] (0-based).
    pub chosen: usize,
    /// The highest goroutine id (text dumps): ids only grow in a process, so a watch that
    /// sees them go back has seen the service restart.
    pub max_id: Option<u64>,
}

/// One dump of an input that holds several.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DumpInfo {
    /// The stream it came from (the log prefix's name fields, `web-1 |`), empty without one.
    pub source: String,
    pub goroutines: usize,
    /// Its crash message, as printed, and what it means.
    pub fatal: Option<String>,
    pub crash: Option<crate::race::Crash>,
    /// Its last goroutine is cut.
    pub truncated: bool,
    /// Its highest goroutine id.
    pub max_id: Option<u64>,
}

impl ParseStats {
    /// These statistics as seen by one dump of the input (0-based): its crash and cut.
    pub fn for_dump(&self, index: usize) -> ParseStats {
        let mut stats = self.clone();
        stats.chosen = index;
        if let Some(info) = self.dump_info.get(index) {
            stats.crash.clone_from(&info.crash);
            stats.fatal.clone_from(&info.fatal);
            stats.truncated =
                info.truncated || (self.cut_at_cap && index + 1 == self.dump_info.len());
            stats.max_id = info.max_id;
        }
        stats
    }
}

/// A dump that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("no goroutine found: this is not a Go goroutine dump")]
    NoGoroutines,
    #[error("no goroutine found: the input is {0}")]
    NotADump(String),
    #[error("not a goroutine profile: {0}")]
    NotGoroutines(String),
    #[error("invalid protobuf profile: {0}")]
    Protobuf(String),
}

/// Reads a dump, calling `each` for every goroutine as soon as it is complete, so callers
/// can aggregate without keeping goroutines in memory.
pub fn parse_dump<R: BufRead>(
    mut input: R,
    each: impl FnMut(Goroutine),
) -> Result<ParseStats, ParseError> {
    let head = input.fill_buf()?;
    if crate::proto::looks_like_profile(head) {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        return crate::proto::parse_profile(&bytes, each);
    }
    // The aggregated debug=1 format announces itself on its first line.
    if head.starts_with(b"goroutine profile: total ") {
        return parse_debug1(input, false, each);
    }
    if head.starts_with(b"goroutineleak profile: total ") {
        return parse_debug1(input, true, each);
    }
    text::parse_text(input, each)
}

/// What the input held when no goroutine was found in it: a precise error.
fn nothing_found(seen: &carrier::Seen) -> ParseError {
    if seen.json_records > 0 && seen.json_records * 2 >= seen.lines {
        return ParseError::NotADump(format!(
            "{} JSON log records (keys: {}), and no field holds a goroutine dump (a header like `goroutine 1 [running]:`); extract the field that holds the dump, e.g. `jq -r .FIELD`",
            seen.json_records,
            seen.json_keys.join(", ")
        ));
    }
    ParseError::NoGoroutines
}

/// What was taken off the lines, for the report: `log prefix on 240 lines`.
fn describe_carriers(c: &carrier::Carrier) -> Vec<String> {
    let seen = &c.seen;
    let mut out = Vec::new();
    if seen.prefixed > 0 {
        out.push(format!("a log prefix on {} lines", seen.prefixed));
    }
    if seen.json_used > 0 {
        out.push(format!(
            "{} JSON log records (of {})",
            seen.json_used, seen.json_records
        ));
    }
    if seen.quoted_used > 0 {
        out.push(format!("{} quoted log values", seen.quoted_used));
    }
    if seen.stray_bytes > 0 {
        out.push(format!(
            "{} stray bytes before a header (a BOM, a control character)",
            seen.stray_bytes
        ));
    }
    let named: Vec<&str> = c
        .streams()
        .iter()
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .collect();
    if named.len() > 1 {
        out.push(format!(
            "{} interleaved streams: {}",
            named.len(),
            named.join(", ")
        ));
    }
    out
}

/// The aggregated format of `/debug/pprof/goroutine?debug=1`:
///
/// ```text
/// goroutine profile: total 15
/// 7 @ 0x47daca 0x41421c 0x413e17 0x4df2fe 0x483961
/// # labels: {"handler":"/orders"}
/// #\t0x4df2fd\tmain.abandoned+0x1d\t/tmp/leaky/main.go:10
/// ```
///
/// It prints no wait state: it is inferred from the frames where they show it (locks,
/// WaitGroup, network, sleep) and is `unknown` otherwise (channel operations hide in the
/// unsymbolized runtime frames).
fn parse_debug1<R: BufRead>(
    mut input: R,
    leak_profile: bool,
    mut each: impl FnMut(Goroutine),
) -> Result<ParseStats, ParseError> {
    let mut stats = ParseStats {
        format: if leak_profile {
            "debug=1 (goroutineleak)"
        } else {
            "debug=1"
        },
        ..ParseStats::default()
    };
    let mut current: Option<Goroutine> = None;
    let mut buf = Vec::new();
    let mut finish = |g: Goroutine, stats: &mut ParseStats| {
        stats.goroutines += g.weight;
        each(g);
    };
    while let Some(line) = next_line(&mut input, &mut buf)? {
        let line: &str = &line.text;
        if line.starts_with("goroutine profile:") || line.starts_with("goroutineleak profile:") {
            continue;
        }
        if let Some((count, _)) = line.split_once(" @ ") {
            if let Ok(n) = count.trim().parse::<usize>() {
                if let Some(done) = current.take() {
                    finish(done, &mut stats);
                }
                current = Some(Goroutine {
                    weight: n,
                    leaked: leak_profile,
                    ..Goroutine::default()
                });
                continue;
            }
        }
        let Some(g) = current.as_mut() else {
            if !line.trim().is_empty() {
                stats.other_lines += 1;
            }
            continue;
        };
        if let Some(labels) = line
            .strip_prefix("# labels: {")
            .and_then(|l| l.strip_suffix('}'))
        {
            g.labels = parse_labels(labels);
        } else if let Some(rest) = line.strip_prefix("#\t") {
            // `0xADDR\tfunc+0xOFF\tfile:line`
            let mut parts = rest.split('\t').filter(|p| !p.is_empty());
            let (_, Some(func), Some(loc)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let function = func.rsplit_once("+0x").map_or(func, |(f, _)| f).to_string();
            let (file, line_no) = parse_location(loc);
            g.frames.push(Frame {
                function,
                file,
                line: line_no,
            });
        } else if line.trim().is_empty() {
            if let Some(mut done) = current.take() {
                done.state = infer_state(&done.frames).to_string();
                finish(done, &mut stats);
            }
        }
    }
    if let Some(mut done) = current.take() {
        done.state = infer_state(&done.frames).to_string();
        stats.truncated = done.frames.is_empty();
        finish(done, &mut stats);
    }
    // A leak profile with no record is a healthy answer, not an unreadable input.
    if stats.goroutines == 0 && !leak_profile {
        return Err(ParseError::NoGoroutines);
    }
    stats.dumps = 1;
    stats.leak_checked = leak_profile;
    Ok(stats)
}

/// The wait state a debug=1 stack shows through its frames.
pub(crate) fn infer_state(frames: &[Frame]) -> &'static str {
    for f in frames {
        let name = f.function.as_str();
        let state = match name {
            "sync.runtime_SemacquireMutex" | "internal/sync.runtime_SemacquireMutex" => {
                "sync.Mutex.Lock"
            }
            "sync.runtime_SemacquireRWMutex" => "sync.RWMutex.Lock",
            "sync.runtime_SemacquireRWMutexR" => "sync.RWMutex.RLock",
            "sync.runtime_SemacquireWaitGroup" | "sync.(*WaitGroup).Wait" => "sync.WaitGroup.Wait",
            "sync.runtime_notifyListWait" => "sync.Cond.Wait",
            // Protobuf profiles symbolize the runtime frames debug=1 leaves as bare addresses.
            "runtime.chansend1" | "runtime.chansend" => "chan send",
            "runtime.chanrecv1" | "runtime.chanrecv2" | "runtime.chanrecv" => "chan receive",
            "runtime.selectgo" => "select",
            "runtime.block" => "select (no cases)",
            "internal/poll.runtime_pollWait" => "IO wait",
            "time.Sleep" => "sleep",
            "runtime/pprof.writeRuntimeProfile" | "runtime.Stack" => "running",
            "os/signal.signal_recv" => "syscall",
            _ => continue,
        };
        return state;
    }
    "unknown"
}

/// `goroutine 6 [chan send, 3 minutes, locked to thread]{k: "v"}:` (labels optional).
pub(crate) fn parse_header(line: &str) -> Option<Goroutine> {
    let rest = line.strip_prefix("goroutine ")?;
    let (id, rest) = rest.split_once(' ')?;
    let id: u64 = id.parse().ok()?;
    // GOTRACEBACK=system/crash put `gp=0x... m=0 mp=0x...` between the id and the state.
    let mut rest = rest;
    while !rest.starts_with('[') {
        let (field, more) = rest.split_once(' ')?;
        if !field.contains('=') {
            return None;
        }
        rest = more;
    }
    let rest = rest.strip_prefix('[')?;
    // The state holds no `]`; label values after it may.
    let close = rest.find(']')?;
    let inside = &rest[..close];
    let after = rest[close + 1..].trim_end();
    let after = after.strip_suffix(':')?;
    let mut g = Goroutine {
        id,
        ..Goroutine::default()
    };
    for (i, part) in inside.split(", ").enumerate() {
        let part = part.trim();
        if i == 0 {
            g.state = part.trim_end_matches(" (scan)").to_string();
            if g.state.ends_with("(leaked)") {
                g.leaked = true;
                g.state = g.state.trim_end_matches("(leaked)").trim().to_string();
            }
            continue;
        }
        if let Some(n) = part
            .strip_suffix(" minutes")
            .or_else(|| part.strip_suffix(" minute"))
        {
            g.wait_minutes = n.trim().parse().ok();
        } else if part == "locked to thread" {
            g.locked_to_thread = true;
        } else if part.contains("leaked") {
            g.leaked = true;
        }
    }
    if let Some(labels) = after
        .trim()
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
    {
        g.labels = parse_labels(labels);
    }
    Some(g)
}

/// The inside of a label set: `handler: /orders, user: "a b, c"` (tracebacks quote only
/// what needs it) or `"handler":"/orders","user":"x"` (debug=1, JSON).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let Some((key, after)) = label_token(rest, ':') else {
            break;
        };
        let Some((value, after)) = label_token(after.trim_start_matches([':', ' ']), ',') else {
            break;
        };
        labels.insert(key, value);
        rest = after;
    }
    labels
}

/// A quoted string (with `\"` and `\\` escapes) or bare text up to `end`.
fn label_token(s: &str, end: char) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        out.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                '"' => return Some((out, &quoted[i + 1..])),
                c => out.push(c),
            }
        }
        return Some((out, ""));
    }
    let stop = s.find(end).unwrap_or(s.len());
    Some((s[..stop].trim().to_string(), &s[stop..]))
}

/// Calls `each` with every line of the input, without its line ending (CRLF too); invalid
/// UTF-8 is replaced. For other readers of Go's logs (scheduler and GC traces).
pub fn for_each_line<R: BufRead>(mut input: R, mut each: impl FnMut(&str)) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(line) = next_line(&mut input, &mut buf)? {
        each(&line.text);
    }
    Ok(())
}

/// The longest line kept: a longer one (a binary file, a decompression bomb with no line
/// break) is cut there, so memory stays bounded whatever the input.
const MAX_LINE: usize = 1 << 20;

/// One line of input.
pub(crate) struct RawLine<'b> {
    /// The line without its ending (CRLF too), invalid UTF-8 replaced.
    pub text: std::borrow::Cow<'b, str>,
    /// Bytes it took in the input, ending included.
    pub len: u64,
    /// It ended with a newline (the last line of a cut dump does not).
    pub terminated: bool,
}

/// Reads the next line into `buf` (at most [`MAX_LINE`] bytes of it); `None` at the end of
/// the input.
fn next_line<'b, R: BufRead>(
    input: &mut R,
    buf: &'b mut Vec<u8>,
) -> std::io::Result<Option<RawLine<'b>>> {
    buf.clear();
    let mut len = (&mut *input).take(MAX_LINE as u64).read_until(b'\n', buf)? as u64;
    if len == 0 {
        return Ok(None);
    }
    let mut terminated = buf.last() == Some(&b'\n');
    if !terminated && buf.len() == MAX_LINE {
        // Drop the rest of an overlong line.
        len += input.skip_until(b'\n')? as u64;
        terminated = true;
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    // Strict validation is much faster than the lossy scan; invalid bytes are rare.
    let text = match std::str::from_utf8(buf) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(buf),
    };
    Ok(Some(RawLine {
        text,
        len,
        terminated,
    }))
}

/// `/path/file.go:12 +0x1f` -> (`/path/file.go`, 12).
pub(crate) fn parse_location(rest: &str) -> (String, u32) {
    // The line number is the digits after the last colon; what follows them (` +0x1f`,
    // ` fp=... sp=... pc=...`) is dropped. Paths may hold spaces and colons.
    let loc = rest.trim();
    if let Some(colon) = loc.rfind(':') {
        let digits = &loc[colon + 1..];
        let end = digits
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        if end > 0 {
            return (loc[..colon].to_string(), digits[..end].parse().unwrap_or(0));
        }
    }
    let file = loc.split(" +0x").next().unwrap_or(loc);
    (file.to_string(), 0)
}

/// `main.(*T).m(0x1, ...)` -> `main.(*T).m`.
pub(crate) fn function_name(line: &str) -> &str {
    let line = line.trim();
    match line.rfind('(') {
        Some(i) if line.ends_with(')') && i > 0 => &line[..i],
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers() {
        let g = parse_header("goroutine 7 [chan receive, 12 minutes, locked to thread]:").unwrap();
        assert_eq!(
            (g.id, g.state.as_str(), g.wait_minutes, g.locked_to_thread),
            (7, "chan receive", Some(12), true)
        );
        let g = parse_header("goroutine 9 [select (leaked)]:").unwrap();
        assert!(g.leaked);
        assert_eq!(g.state, "select");
        let g = parse_header("goroutine 3 [IO wait]{\"handler\": \"/orders\"}:").unwrap();
        assert_eq!(g.labels.get("handler").map(String::as_str), Some("/orders"));
        assert!(parse_header("goroutine profile: total 4").is_none());
    }

    /// Real output (trimmed): a SIGQUIT under GOTRACEBACK=system that landed on the sysmon
    /// thread prints that thread's system stack first, as goroutine 0. It is no goroutine.
    #[test]
    fn a_leading_system_stack_is_not_a_goroutine() {
        let text = "SIGQUIT: quit\nPC=0x486b77 m=1 sigcode=0\n\n\
goroutine 0 gp=0xe5433eba5a0 m=1 mp=0xe5433f00008 [idle]:\n\
runtime.usleep(0x2710)\n\
\t/go/src/runtime/sys_linux_amd64.s:135 +0x37 fp=0xe5433ee3f20 sp=0xe5433ee3f00 pc=0x486b77\n\
runtime.sysmon()\n\
\t/go/src/runtime/proc.go:6557 +0xb2 fp=0xe5433ee3fa0 sp=0xe5433ee3f20 pc=0x456f12\n\n\
goroutine 1 gp=0xe5433eba1e0 m=nil [sleep]:\n\
time.Sleep(0x34630b8a000)\n\
\t/go/src/runtime/time.go:368 +0x165 fp=0xe5433f2cdd0 sp=0xe5433f2cd78 pc=0x4828a5\n\
main.main()\n\
\t/app/main.go:77 +0x619 fp=0xe5433f2ceb8 sp=0xe5433f2cdd0 pc=0x4c3e19\n\n";
        let mut seen = Vec::new();
        let stats = parse_dump(text.as_bytes(), |g| seen.push(g)).unwrap();
        assert_eq!(seen.iter().map(|g| g.id).collect::<Vec<_>>(), [1]);
        assert_eq!(stats.thread_stacks, 1);
        assert_eq!(seen[0].frames.len(), 2);
    }

    #[test]
    fn a_cut_dump_is_flagged_and_what_was_read_kept() {
        let text = "goroutine 1 [running]:\nmain.main()\n\t/x/main.go:5 +0x1\n\ngoroutine 2 [chan send]:\nmain.f(...)\n";
        let mut seen = Vec::new();
        let stats = parse_dump(text.as_bytes(), |g| seen.push(g)).unwrap();
        assert_eq!(seen.len(), 2);
        assert!(stats.truncated);
        assert_eq!(
            seen[0].frames[0],
            Frame {
                function: "main.main".into(),
                file: "/x/main.go".into(),
                line: 5
            }
        );
    }

    #[test]
    fn strips_log_prefixes() {
        let text = "2026-11-26T10:00:00.1Z stderr F goroutine 5 [chan send, 3 minutes]:\n\
                    2026-11-26T10:00:00.2Z stderr F main.f(...)\n\
                    2026-11-26T10:00:00.3Z stderr F \t/src/main.go:9 +0x1\n\
                    2026-11-26T10:00:00.4Z stderr F \n\
                    2026-11-26T10:00:00.5Z stderr F goroutine 6 [chan send, 4 minutes]:\r\n\
                    2026-11-26T10:00:00.6Z stderr F main.f(...)\r\n\
                    2026-11-26T10:00:00.7Z stderr F \t/src/main.go:9 +0x1\r\n";
        let mut seen = Vec::new();
        parse_dump(text.as_bytes(), |g| seen.push(g)).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1].frames,
            vec![Frame {
                function: "main.f".into(),
                file: "/src/main.go".into(),
                line: 9
            }]
        );
        assert_eq!(seen[1].wait_minutes, Some(4));
    }

    #[test]
    fn strips_syslog_prefixes() {
        let text = "Nov  6 10:00:00 web1 app[812]: goroutine 5 [chan send]:\n\
                    Nov  6 10:00:00 web1 app[812]: main.f(...)\n\
                    Nov  6 10:00:00 web1 app[812]: \t/src/main.go:9 +0x1\n";
        let mut seen = Vec::new();
        parse_dump(text.as_bytes(), |g| seen.push(g)).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].frames[0].line, 9);
    }

    #[test]
    fn several_dumps_in_one_input_are_told_apart() {
        let one = "goroutine 1 [running]:\nmain.main()\n\t/x/main.go:5 +0x1\n\ngoroutine 2 [select]:\nmain.f()\n\t/x/main.go:9 +0x1\n\n";
        let text = format!("{one}some log line\n{one}");
        let mut seen = Vec::new();
        let stats = parse_dump(text.as_bytes(), |g| seen.push(g.dump)).unwrap();
        assert_eq!(stats.dumps, 2);
        assert_eq!(seen, vec![0, 0, 1, 1]);
    }

    #[test]
    fn label_sets() {
        let l = parse_labels(r#"handler: /orders, user: "a b, c", q: "x\"y""#);
        assert_eq!(l.get("handler").map(String::as_str), Some("/orders"));
        assert_eq!(l.get("user").map(String::as_str), Some("a b, c"));
        assert_eq!(l.get("q").map(String::as_str), Some("x\"y"));
        let l = parse_labels(r#""handler":"/orders","user":"a,b""#);
        assert_eq!(l.get("user").map(String::as_str), Some("a,b"));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn crash_headers_with_scheduler_fields() {
        let g = parse_header("goroutine 26 gp=0x2ba0d47072c0 m=0 mp=0xaac6e0 [syscall]:").unwrap();
        assert_eq!((g.id, g.state.as_str()), (26, "syscall"));
        let g = parse_header("goroutine 1 gp=0x2ba0d46721e0 m=nil [IO wait, 5 minutes]:").unwrap();
        assert_eq!(g.wait_minutes, Some(5));
        assert!(parse_header("goroutine 1 something [x]:").is_none());
    }

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("/x/main.go:12 +0x1f"),
            ("/x/main.go".into(), 12)
        );
        assert_eq!(parse_location("/x/main.go:12"), ("/x/main.go".into(), 12));
        assert_eq!(
            parse_location("/Users/Jo Doe/a.go:7 +0x2 fp=0xc0 sp=0xc0 pc=0x4"),
            ("/Users/Jo Doe/a.go".into(), 7)
        );
        assert_eq!(
            parse_location("C:/src/a.go:3 +0x1"),
            ("C:/src/a.go".into(), 3)
        );
        assert_eq!(parse_location("?"), ("?".into(), 0));
    }

    #[test]
    fn text_without_goroutines_is_an_error() {
        assert!(matches!(
            parse_dump("hello\nworld\n".as_bytes(), |_| {}),
            Err(ParseError::NoGoroutines)
        ));
        assert!(matches!(
            parse_dump(&b"\x00\x01\x02"[..], |_| {}),
            Err(ParseError::NoGoroutines)
        ));
    }
}

#[cfg(test)]
mod gzip_tests {
    use super::*;

    #[test]
    fn reads_gzipped_dumps() {
        use std::io::Write;
        let text = "goroutine 1 [running]:\nmain.main()\n\t/x/main.go:5 +0x1\n\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let reader = decompressing(std::io::Cursor::new(bytes)).unwrap();
        let mut n = 0;
        parse_dump(reader, |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }
}
