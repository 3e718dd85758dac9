//! The parser of text dumps (debug=2, `runtime.Stack`, tracebacks): a state machine over
//! classified lines ([`super::line`]), one machine per stream of the input
//! ([`super::carrier`]).
//!
//! # States and transitions
//!
//! | state | line | goes to |
//! |---|---|---|
//! | `Between` | header | `Record` (a new dump if the id was seen in this one) |
//! | any | `goroutine 0` header | `Record`, its frames skipped (a thread's stack) |
//! | `Between` | crash message | `Between` (a new dump if this one has goroutines) |
//! | `Record` | function / `created by` | `Location` |
//! | `Record` | `...frames elided...`, `stack unavailable` | `Record` |
//! | `Record` | `[originating from goroutine N]:` | `Ancestors` |
//! | `Location` | file line | `Record` (the frame is complete) |
//! | `Record`, `Location`, `Ancestors` | blank / anything else | `Between` (record done) |
//! | any | header | `Record` (the record before is done) |
//! | any, in a crash | `-----` | `ThreadStacks` |
//! | `ThreadStacks` | crash message right after `-----` | `ThreadStacks` |
//! | `ThreadStacks` | any other crash message | `Between` (a new dump) |
//!
//! `ThreadStacks` is what GOTRACEBACK=crash prints after the goroutines: each thread's own
//! stack (`goroutine 0 [idle]`) and the goroutine it was running, again. They are not
//! goroutines of the dump, so records there are skipped (and counted).
//!
//! A race detector report (`WARNING: DATA RACE` to the closing rule) is read by
//! [`crate::race::RaceScanner`] and takes precedence over every state.

use super::carrier::{Carrier, Sink};
use super::line::{classify, Line};
use super::{parse_location, DumpInfo, Frame, Goroutine, ParseError, ParseStats};

/// Where one stream is in the grammar of a dump.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside any goroutine record: crash messages, log lines, blank lines.
    #[default]
    Between,
    /// In a goroutine's stack: the next line is a function, `created by`, an elision or the
    /// end of the record.
    Record,
    /// A function (or `created by`) line was read: its file line comes next.
    Location { created: bool },
    /// After `[originating from goroutine N]:`: the ancestor's frames, not this stack's.
    Ancestors,
    /// After `-----` in a GOTRACEBACK=crash report: per-thread stacks.
    ThreadStacks,
}

/// One stream's machine.
#[derive(Default)]
struct Stream {
    state: State,
    current: Option<Goroutine>,
    /// The function line waiting for its file line.
    pending: String,
    /// The record says its stack cannot be printed (so no frames is not a cut).
    stack_unavailable: bool,
    /// The dump this stream is in (index into the dumps), once it has one.
    dump: Option<usize>,
    /// Goroutine ids of the current dump: one seen again starts the next dump.
    seen_ids: rustc_hash::FxHashSet<u64>,
    /// The last line was `-----`: a crash message now opens a thread's section.
    after_separator: bool,
}

/// Everything the streams share: the output, the dumps, the race reports.
struct Shared<F> {
    each: F,
    stats: ParseStats,
    dumps: Vec<DumpInfo>,
    races: crate::race::RaceScanner,
}

struct Machine<F> {
    streams: Vec<Stream>,
    shared: Shared<F>,
}

impl<F: FnMut(Goroutine)> Machine<F> {
    fn stream(&mut self, i: usize) -> &mut Stream {
        if self.streams.len() <= i {
            self.streams.resize_with(i + 1, Stream::default);
        }
        &mut self.streams[i]
    }
}

impl<F: FnMut(Goroutine)> Shared<F> {
    /// Starts the next dump for a stream.
    fn new_dump(&mut self, s: &mut Stream, source: &str) {
        s.dump = Some(self.dumps.len());
        s.seen_ids.clear();
        self.dumps.push(DumpInfo {
            source: source.to_string(),
            ..DumpInfo::default()
        });
    }

    /// The stream's dump, started if it has none yet.
    fn dump(&mut self, s: &mut Stream, source: &str) -> usize {
        match s.dump {
            Some(d) => d,
            None => {
                self.new_dump(s, source);
                self.dumps.len() - 1
            }
        }
    }

    /// Hands the stream's open record over.
    fn complete(&mut self, s: &mut Stream, truncated: bool) {
        let Some(g) = s.current.take() else {
            return;
        };
        s.pending.clear();
        let info = &mut self.dumps[g.dump];
        info.goroutines += 1;
        info.max_id = info.max_id.max(Some(g.id));
        self.stats.max_id = self.stats.max_id.max(Some(g.id));
        info.truncated |= truncated;
        if let Some(crash) = info.crash.as_mut() {
            if crash.goroutine == Some(g.id) && crash.at.is_none() {
                crash.at = crate::analyze::user_frame(&g.frames).cloned();
            }
        }
        self.stats.goroutines += 1;
        self.stats.truncated |= truncated;
        (self.each)(g);
    }
}

impl<F: FnMut(Goroutine)> Sink for Machine<F> {
    fn line(&mut self, content: &str, stream: usize, name: &str) -> bool {
        if let Some(race) = self.shared.races.feed(content) {
            self.shared.stats.races.push(race);
            return true;
        }
        if self.shared.races.in_report() {
            return true;
        }
        let line = classify(content);
        self.stream(stream);
        let shared = &mut self.shared;
        let s = &mut self.streams[stream];
        let after_separator = std::mem::take(&mut s.after_separator);
        match line {
            Line::Header(mut g) => {
                if s.state == State::ThreadStacks {
                    shared.stats.thread_stacks += 1;
                    return true;
                }
                shared.complete(s, false);
                // Goroutine 0 is a thread's system stack (GOTRACEBACK=system and crash print
                // the signalled thread's first), not a goroutine: its frames are skipped.
                if g.id == 0 {
                    shared.stats.thread_stacks += 1;
                    s.current = None;
                    s.state = State::Record;
                    return true;
                }
                let mut dump = shared.dump(s, name);
                if g.id != 0 && !s.seen_ids.insert(g.id) {
                    shared.new_dump(s, name);
                    s.seen_ids.insert(g.id);
                    dump = shared.dumps.len() - 1;
                }
                if let Some(crash) = shared.dumps[dump].crash.as_mut() {
                    crash.goroutine.get_or_insert(g.id);
                }
                g.dump = dump;
                shared.stats.leak_checked |= g.leaked;
                s.current = Some(*g);
                s.state = State::Record;
                s.stack_unavailable = false;
            }
            Line::Crash(message) => {
                if s.state == State::ThreadStacks && after_separator {
                    return true;
                }
                shared.complete(s, false);
                s.state = State::Between;
                // A crash message opens its dump: the goroutines it describes follow it.
                let mut dump = shared.dump(s, name);
                if shared.dumps[dump].goroutines > 0 {
                    shared.new_dump(s, name);
                    dump = shared.dumps.len() - 1;
                }
                let info = &mut shared.dumps[dump];
                if info.crash.is_none() {
                    info.fatal = Some(message.to_string());
                    info.crash = Some(crate::race::Crash::new(message));
                }
            }
            Line::ThreadSeparator if s.dump.is_some_and(|d| shared.dumps[d].crash.is_some()) => {
                shared.complete(s, false);
                s.state = State::ThreadStacks;
                s.after_separator = true;
            }
            _ if s.state == State::ThreadStacks => {
                // Blank lines between `-----` and the signal line keep the separator's effect.
                if matches!(line, Line::Blank) {
                    s.after_separator = after_separator;
                }
            }
            Line::Blank => {
                shared.complete(s, false);
                s.state = State::Between;
            }
            Line::Function(function)
                if matches!(s.state, State::Record | State::Location { .. }) =>
            {
                s.pending.clear();
                s.pending.push_str(function);
                s.state = State::Location { created: false };
            }
            Line::CreatedBy(function) if s.state != State::Between => {
                s.pending.clear();
                s.pending.push_str(function);
                s.state = State::Location { created: true };
            }
            Line::Location(rest) if matches!(s.state, State::Location { .. }) => {
                let State::Location { created } = s.state else {
                    return true;
                };
                let (file, line_no) = parse_location(rest);
                let frame = Frame {
                    function: std::mem::take(&mut s.pending),
                    file,
                    line: line_no,
                };
                if let Some(g) = s.current.as_mut() {
                    if created {
                        g.created_by = Some(frame);
                    } else {
                        g.frames.push(frame);
                    }
                }
                s.state = State::Record;
            }
            Line::Elided if s.state == State::Record => {
                if let Some(g) = s.current.as_mut() {
                    g.elided = true;
                }
            }
            Line::StackUnavailable if s.state == State::Record => s.stack_unavailable = true,
            Line::Ancestor if s.state != State::Between => {
                s.state = State::Ancestors;
            }
            _ if s.state == State::Ancestors => {}
            // Anything else is no part of a dump here: the carrier may find one inside it.
            _ => return false,
        }
        true
    }

    fn other(&mut self, stream: usize) {
        self.stream(stream);
        let s = &mut self.streams[stream];
        if s.state == State::ThreadStacks {
            return;
        }
        // `exit status 2`, a register dump, a log line: the record ends.
        self.shared.complete(s, false);
        s.state = State::Between;
        self.shared.stats.other_lines += 1;
    }
}

/// Go's `/debug/pprof/goroutine?debug=2` stops writing at 64 MiB.
const PPROF_CAP: u64 = 64 << 20;

/// Reads a text dump, calling `each` for every goroutine as soon as it is complete.
pub(crate) fn parse_text<R: std::io::BufRead>(
    mut input: R,
    each: impl FnMut(Goroutine),
) -> Result<ParseStats, ParseError> {
    let mut carrier = Carrier::default();
    let mut machine = Machine {
        streams: Vec::new(),
        shared: Shared {
            each,
            stats: ParseStats {
                format: "debug=2",
                ..ParseStats::default()
            },
            dumps: Vec::new(),
            races: crate::race::RaceScanner::default(),
        },
    };
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    // The input stops in the middle of a line (only the last line can lack its newline).
    // A file line is taken as whole: a dump pasted without its final newline ends so.
    let mut cut_mid_line = false;
    while let Some(raw) = super::next_line(&mut input, &mut buf)? {
        bytes += raw.len;
        if !raw.terminated {
            // (An unterminated line of whitespace is the indent of a file line, cut.)
            cut_mid_line = match classify(&raw.text) {
                Line::Location(l) => raw.text.ends_with([' ', '\t']) || !location_looks_whole(l),
                _ => true,
            };
        }
        carrier.feed(&raw.text, &mut machine);
    }
    let Machine {
        mut streams,
        mut shared,
        ..
    } = machine;
    for s in &mut streams {
        if s.current.is_some() {
            // No closing blank line: the last goroutine of a dump, or a cut one. It is cut
            // when the input stops mid-line, after a function line, before any frame, or
            // before the `created by` every goroutine but main (1) ends with.
            let cut = matches!(s.state, State::Location { .. })
                || cut_mid_line
                || s.current.as_ref().is_some_and(|g| {
                    (g.frames.is_empty() && !s.stack_unavailable)
                        || (s.state == State::Record && g.id != 1 && g.created_by.is_none())
                });
            shared.complete(s, cut);
        }
    }
    if cut_mid_line {
        // Cut between records, in a header: no record was open to flag.
        shared.stats.truncated = true;
        if let Some(last) = shared.dumps.last_mut() {
            last.truncated = true;
        }
    }
    if bytes == PPROF_CAP {
        shared.stats.truncated = true;
        shared.stats.cut_at_cap = true;
        if let Some(last) = shared.dumps.last_mut() {
            last.truncated = true;
        }
    }
    if let Some(race) = shared.races.finish() {
        shared.stats.races.push(race);
        shared.stats.truncated = true;
    }
    let mut stats = shared.stats;
    // A race report or a crash message alone (a `go test -race` log) is worth reading.
    let crash = shared.dumps.iter().find(|d| d.crash.is_some());
    stats.crash = crash.and_then(|d| d.crash.clone());
    stats.fatal = crash.and_then(|d| d.fatal.clone());
    if stats.goroutines == 0 && stats.races.is_empty() && stats.crash.is_none() {
        return Err(super::nothing_found(&carrier.seen));
    }
    stats.dumps = shared.dumps.len().max(1);
    stats.dump_info = shared.dumps;
    stats.carriers = super::describe_carriers(&carrier);
    Ok(stats)
}

/// A file line that may be whole: it ends with its line number or a hex value (`+0x2b7`,
/// `pc=0x4c40a1`). `main.go:29 +` or `fp=` is cut; `main.go:2` (of `:29`) cannot be told.
fn location_looks_whole(line: &str) -> bool {
    let last = line.rsplit(' ').next().unwrap_or(line);
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    match last.split_once("0x") {
        Some((before, digits)) => matches!(before, "+" | "pc=" | "sp=" | "fp=") && hex(digits),
        None => last.ends_with(|c: char| c.is_ascii_digit()) && !line.contains(" +"),
    }
}
