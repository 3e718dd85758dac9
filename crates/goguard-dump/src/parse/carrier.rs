//! Carriers: what a dump's lines travel in before they reach us, and how to take it off.
//!
//! A dump is rarely read from the file Go wrote. It comes through:
//! - a **log prefix** on every line: `kubectl logs --timestamps`, CRI's `TIME stderr F`,
//!   syslog and journald's `Nov  6 10:00:00 host app[812]:`, docker compose's `web-1  | `;
//! - a **prefix on the first line only**: `log.Printf("%s", buf)` prefixes the text it is
//!   given, and `t.Log` in `go test -v` prefixes `file_test.go:12: ` (and indents the rest,
//!   which line classification ignores);
//! - **stray bytes** glued before the first header (a UTF-8 BOM, a control character);
//! - **JSON log records**: docker's json-file (one dump line per record, in `log`), slog's
//!   JSON handler or zap with the whole dump in one field, or one line per record;
//! - **quoted values** of text logs: slog's text handler or logrus (`stack="goroutine 1
//!   [running]:\nmain.main()..."`).
//!
//! The carrier is learned from the first line holding an *anchor* (a goroutine header, a
//! crash message, a race report) and then taken off every line that has it. A prefix is
//! recognised by its *shape* (digits, letters and punctuation, runs collapsed), so that
//! timestamps that change from line to line still match, and a line without it (the rest of
//! a `log.Printf` dump) is read as it is.
//!
//! The prefix fields that are not times or dates (`web-1`, `app[812]:`, `stderr`) name the
//! *stream* the line belongs to: two processes interleaved in one log are two streams, and
//! the parser keeps a state per stream so that their goroutines never mix.

use super::line::{classify, is_signal_line, Line};

/// Where a carried line goes: the parser's states.
pub(crate) trait Sink {
    /// One line of dump content from `stream`. Returns false, having done nothing, when the
    /// line is no part of a dump in the current state (the carrier may then find a dump
    /// line inside it and hand that over instead).
    fn line(&mut self, content: &str, stream: usize, name: &str) -> bool;
    /// A line that holds no dump content at all.
    fn other(&mut self, stream: usize);
}

/// What the carrier found, for the report and for a precise error when nothing is read.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub lines: usize,
    /// Lines that are JSON objects, and how many of them held dump content.
    pub json_records: usize,
    pub json_used: usize,
    /// Lines of a text log with a quoted value holding dump content (slog text, logrus).
    pub quoted_used: usize,
    /// Bytes dropped before the first anchor (a BOM, a control character).
    pub stray_bytes: usize,
    /// Lines with a log prefix that was taken off.
    pub prefixed: usize,
    /// The first JSON keys seen, to name them in an error.
    pub json_keys: Vec<String>,
}

/// A learned log prefix: the shape of each field, and which fields name the stream.
#[derive(Debug, Clone, PartialEq)]
struct Prefix {
    shapes: Vec<Vec<u8>>,
    /// Fields that are the same on every line of one process (not a time or a date).
    names_stream: Vec<bool>,
}

/// A crash message found inside a line whose prefix is not known yet: it becomes part of
/// the dump once a goroutine header arrives with the same prefix (a `panic:` inside an
/// ordinary log line is not a crash report).
struct PendingCrash {
    content: String,
    shapes: Vec<Vec<u8>>,
    stream: usize,
}

/// Takes the carrier off each line (see the module documentation).
#[derive(Default)]
pub(crate) struct Carrier {
    prefix: Option<Prefix>,
    /// The JSON field that holds dump content.
    json_field: Option<String>,
    /// The `key="..."` of a text log that holds dump content.
    quoted_key: Option<String>,
    pending: Option<PendingCrash>,
    /// Stream names (static prefix fields), by index; 0 is "no prefix".
    streams: Vec<String>,
    /// The stream of the last prefixed line: unprefixed lines continue it.
    current: usize,
    pub seen: Seen,
}

impl Carrier {
    /// The names of the streams seen (index 0: lines without a prefix).
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// Unwraps one raw input line and hands its dump content to `sink`.
    pub fn feed(&mut self, raw: &str, sink: &mut impl Sink) {
        if self.streams.is_empty() {
            self.streams.push(String::new());
        }
        let mut raw = raw;
        if self.seen.lines == 0 {
            if let Some(rest) = raw.strip_prefix('\u{feff}') {
                self.seen.stray_bytes += 3;
                raw = rest;
            }
        }
        self.seen.lines += 1;
        let first = raw.as_bytes().iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') && self.feed_json(raw, sink) {
            return;
        }
        if self.quoted_key.is_some() && self.feed_quoted(raw, sink) {
            return;
        }
        let (content, stream) = self.strip(raw);
        if sink.line(content, stream, &self.streams[stream]) {
            return;
        }
        // A prefix of plain words (`app goroutine 1 ...`) has the shape of a dump line's
        // first word (`created by ...`): the line may be the dump's own.
        if content.len() != raw.len() && sink.line(raw, stream, &self.streams[stream]) {
            return;
        }
        if self.search(raw, sink) {
            return;
        }
        if self.quoted_key.is_none() && raw.contains("=\"") {
            if let Some(key) = find_quoted_key(raw) {
                self.quoted_key = Some(key.to_string());
                if self.feed_quoted(raw, sink) {
                    return;
                }
            }
        }
        sink.other(stream);
    }

    /// A text log line whose learned `key="..."` holds dump content: its lines.
    fn feed_quoted(&mut self, raw: &str, sink: &mut impl Sink) -> bool {
        let Some(value) = self
            .quoted_key
            .as_deref()
            .and_then(|k| quoted_value(raw, k))
        else {
            return false;
        };
        self.seen.quoted_used += 1;
        let stream = self.current;
        for l in value.split('\n') {
            if !sink.line(l, stream, &self.streams[stream]) {
                sink.other(stream);
            }
        }
        true
    }

    /// Takes off the learned prefix when the line has it; the content and its stream.
    fn strip<'a>(&mut self, raw: &'a str) -> (&'a str, usize) {
        let Some(prefix) = &self.prefix else {
            return (raw, self.current);
        };
        let mut rest = raw;
        // The fields that name the stream (no allocation: most lines are the same stream).
        let mut names: [&str; 8] = [""; 8];
        let mut n_names = 0;
        for (shape, names_stream) in prefix.shapes.iter().zip(&prefix.names_stream) {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            let Some(end) = field_of_shape(trimmed, shape) else {
                return (raw, self.current);
            };
            let field = &trimmed[..end];
            if *names_stream && n_names < names.len() {
                names[n_names] = field;
                n_names += 1;
            }
            // The field and the one separator after it (`stderr F \t/x.go:1` keeps the tab).
            rest = trimmed.get(end + 1..).unwrap_or("");
        }
        self.seen.prefixed += 1;
        if n_names > 0 {
            let names = &names[..n_names];
            let current = &self.streams[self.current];
            if !current.split(' ').eq(names.iter().copied()) {
                self.current = self.stream_index(names.join(" "));
            }
        }
        (rest, self.current)
    }

    fn stream_index(&mut self, name: String) -> usize {
        match self.streams.iter().position(|s| *s == name) {
            Some(i) => i,
            None => {
                self.streams.push(name);
                self.streams.len() - 1
            }
        }
    }

    /// Looks for an anchor inside a line the parser could not use: a header, crash or race
    /// report after a prefix not learned yet, or after stray bytes. Learns the prefix.
    fn search(&mut self, raw: &str, sink: &mut impl Sink) -> bool {
        let Some((at, anchor)) = find_anchor(raw) else {
            return false;
        };
        let before = &raw[..at];
        let content = &raw[at..];
        let glued = !before.is_empty() && !before.ends_with([' ', '\t']);
        if glued {
            // Stray bytes glued to the anchor: only non-alphanumeric junk (a control byte,
            // a BOM in the middle of a concatenated file) or a terminal escape sequence,
            // not a word that happens to end in `goroutine`.
            if !before.contains('\u{1b}') && before.bytes().any(|b| b.is_ascii_alphanumeric()) {
                return false;
            }
            self.seen.stray_bytes += before.len();
            let stream = self.current;
            return sink.line(content, stream, &self.streams[stream]);
        }
        let fields: Vec<&str> = before
            .split([' ', '\t'])
            .filter(|f| !f.is_empty())
            .collect();
        let shapes: Vec<Vec<u8>> = fields.iter().map(|f| shape(f)).collect();
        if anchor == Anchor::Crash && self.prefix.as_ref().is_none_or(|p| p.shapes != shapes) {
            // Wait for a header to confirm this prefix carries a dump.
            self.pending = Some(PendingCrash {
                content: content.to_string(),
                shapes,
                stream: self.current,
            });
            return false;
        }
        let names_stream: Vec<bool> = fields.iter().map(|f| names_stream(f)).collect();
        let prefix = Prefix {
            shapes,
            names_stream,
        };
        if fields.is_empty() {
            self.prefix = None;
        } else if self.prefix.as_ref() != Some(&prefix) {
            self.prefix = Some(prefix);
        }
        // The stream of this line, from its fields.
        let (_, stream) = self.strip(raw);
        if let Some(p) = self.pending.take() {
            let same = self
                .prefix
                .as_ref()
                .map_or(p.shapes.is_empty(), |pr| pr.shapes == p.shapes);
            if same && !sink.line(&p.content, stream, &self.streams[stream]) {
                sink.other(p.stream);
            }
        }
        sink.line(content, stream, &self.streams[stream])
    }

    /// A JSON log record: hands over the lines of its dump field. False when the line is
    /// not JSON after all.
    fn feed_json(&mut self, raw: &str, sink: &mut impl Sink) -> bool {
        let Ok(record) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw)
        else {
            return false;
        };
        self.seen.json_records += 1;
        if self.seen.json_keys.is_empty() {
            self.seen.json_keys = record.keys().take(8).cloned().collect();
        }
        let stream = self.current;
        let field = match &self.json_field {
            Some(f) => record.get(f).and_then(|v| v.as_str()),
            None => {
                let found = record.iter().find_map(|(k, v)| {
                    let s = v.as_str()?;
                    s.split('\n')
                        .any(|l| anchor_kind(l).is_some())
                        .then_some((k.clone(), s))
                });
                match found {
                    Some((k, s)) => {
                        self.json_field = Some(k);
                        Some(s)
                    }
                    None => None,
                }
            }
        };
        let Some(text) = field else {
            sink.other(stream);
            return true;
        };
        self.seen.json_used += 1;
        let text = text.strip_suffix('\n').unwrap_or(text);
        for l in text.split('\n') {
            let l = l.strip_suffix('\r').unwrap_or(l);
            if !sink.line(l, stream, &self.streams[stream]) && !self.search(l, sink) {
                sink.other(stream);
            }
        }
        true
    }
}

/// What kind of anchor starts a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Header,
    Crash,
    Race,
}

fn anchor_kind(content: &str) -> Option<Anchor> {
    if content.trim_end() == "WARNING: DATA RACE" {
        return Some(Anchor::Race);
    }
    match classify(content) {
        Line::Header(_) => Some(Anchor::Header),
        Line::Crash(_) => Some(Anchor::Crash),
        _ => None,
    }
}

/// The first place in `raw` where an anchor starts, and its kind.
/// How far into a line a carrier's prefix may reach: the search for an anchor looks no
/// further, so a long line full of `goroutine ` costs a bounded time, not its square.
const MAX_PREFIX: usize = 512;

fn find_anchor(raw: &str) -> Option<(usize, Anchor)> {
    const STARTS: &[&str] = &[
        "goroutine ",
        "WARNING: DATA RACE",
        "SIG",
        "fatal error: ",
        "panic: ",
    ];
    let mut end = raw.len().min(MAX_PREFIX);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let head = &raw[..end];
    let mut best: Option<(usize, Anchor)> = None;
    for start in STARTS {
        let mut from = 0;
        while let Some(i) = head[from..].find(start) {
            let at = from + i;
            if best.is_some_and(|(b, _)| b <= at) {
                break;
            }
            let content = &raw[at..];
            let kind = if *start == "SIG" {
                is_signal_line(content.trim_end()).then_some(Anchor::Crash)
            } else {
                anchor_kind(content)
            };
            if let Some(kind) = kind {
                best = Some((at, kind));
                break;
            }
            from = at + start.len();
        }
    }
    best
}

/// `key="..."` in a text log line, unquoted (Go's `strconv.Quote` escapes).
fn quoted_value(raw: &str, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut from = 0;
    while let Some(i) = raw[from..].find(key) {
        let at = from + i;
        let boundary = at == 0 || raw.as_bytes()[at - 1] == b' ';
        let rest = &raw[at + key.len()..];
        if boundary {
            if let Some(quoted) = rest.strip_prefix("=\"") {
                return Some(unquote(quoted));
            }
        }
        from = at + key.len();
    }
    None
}

/// Learns the `key="..."` of a text log whose quoted value starts with a dump anchor.
pub(crate) fn find_quoted_key(raw: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = raw[from..].find("=\"") {
        let at = from + i;
        // Only the value's first line matters: unquote no more than a header's length.
        let value = unquote_upto(&raw[at + 2..], MAX_PREFIX);
        if value.split('\n').next().and_then(anchor_kind).is_some() {
            let key_start = raw[..at].rfind(' ').map_or(0, |s| s + 1);
            let key = &raw[key_start..at];
            if !key.is_empty() {
                return Some(key);
            }
        }
        from = at + 2;
    }
    None
}

/// The text of a Go-quoted string (its opening quote already taken), up to the closing one.
fn unquote(s: &str) -> String {
    unquote_upto(s, usize::MAX)
}

/// [`unquote`], stopping after `max` characters of input.
fn unquote_upto(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut chars = s.chars();
    let mut read = 0;
    while let Some(c) = chars.next() {
        read += 1;
        if read > max {
            break;
        }
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    if let Ok(b) = u8::from_str_radix(&hex, 16) {
                        out.push(char::from(b));
                    }
                }
                Some(u @ ('u' | 'U')) => {
                    let n = if u == 'u' { 4 } else { 8 };
                    let hex: String = chars.by_ref().take(n).collect();
                    if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        out.push(c);
                    }
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// The class of each byte, runs collapsed: `2026-11-26T10:00:00.1Z` is `9-9-9a9:9:9.9a`,
/// `web1` is `a9`, `app[812]:` is `a[9]:`. Bytes, not characters: it runs on every line of a
/// prefixed log.
fn shape_bytes(field: &str) -> impl Iterator<Item = u8> + '_ {
    let mut last = 0u8;
    field.bytes().filter_map(move |b| {
        let class = if b.is_ascii_digit() {
            b'9'
        } else if b.is_ascii_alphabetic() {
            b'a'
        } else {
            b
        };
        (std::mem::replace(&mut last, class) != class).then_some(class)
    })
}

fn shape(field: &str) -> Vec<u8> {
    shape_bytes(field).collect()
}

/// The length of the field `text` starts with (up to a space or tab) when it has `shape`,
/// in one pass over its bytes.
fn field_of_shape(text: &str, shape: &[u8]) -> Option<usize> {
    let mut expected = shape.iter();
    let mut last = 0u8;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if b == b' ' || b == b'\t' {
            return (i > 0 && expected.next().is_none()).then_some(i);
        }
        let class = if b.is_ascii_digit() {
            b'9'
        } else if b.is_ascii_alphabetic() {
            b'a'
        } else {
            b
        };
        if std::mem::replace(&mut last, class) != class && expected.next() != Some(&class) {
            return None;
        }
    }
    (!text.is_empty() && expected.next().is_none()).then_some(text.len())
}

#[cfg(test)]
fn same_shape(field: &str, shape: &[u8]) -> bool {
    let mut expected = shape.iter();
    for class in shape_bytes(field) {
        if expected.next() != Some(&class) {
            return false;
        }
    }
    expected.next().is_none()
}

/// True for a prefix field that stays the same for one process: not a time, a date, a
/// number, a month, or CRI's full/partial flag.
fn names_stream(field: &str) -> bool {
    const MONTHS: &[&str] = &[
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = shape(field);
    !(s.windows(3).any(|w| w == b"9:9")
        || !field.bytes().any(|b| b.is_ascii_alphabetic())
        || MONTHS.contains(&field)
        || field == "F"
        || field == "P")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Vec<(String, usize)>);

    impl Sink for Lines {
        fn line(&mut self, content: &str, stream: usize, _: &str) -> bool {
            // Like the parser between records: a file line needs a function line first.
            let location = matches!(classify(content), Line::Location(_))
                && !self
                    .0
                    .last()
                    .is_some_and(|(l, _)| l.ends_with(')') || l.starts_with("created by "));
            if matches!(classify(content), Line::Other) || location {
                return false;
            }
            self.0.push((content.to_string(), stream));
            true
        }
        fn other(&mut self, _: usize) {}
    }

    fn carry(text: &str) -> (Vec<String>, Vec<String>) {
        let mut c = Carrier::default();
        let mut sink = Lines::default();
        for l in text.lines() {
            c.feed(l, &mut sink);
        }
        let names = sink
            .0
            .iter()
            .map(|(_, s)| c.streams()[*s].clone())
            .collect();
        (sink.0.into_iter().map(|(l, _)| l).collect(), names)
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("2026-11-26T10:00:00.123Z"), b"9-9-9a9:9:9.9a");
        assert!(same_shape("2026-11-26T10:00:00.1Z", b"9-9-9a9:9:9.9a"));
        assert!(!same_shape("2026-11-26T10:00:00", b"9-9-9a9:9:9.9a"));
        assert_eq!(shape("app[812]:"), b"a[9]:");
        assert_eq!(field_of_shape("web-1  | x", b"a-9"), Some(5));
        assert_eq!(field_of_shape("web-1", b"a-9"), Some(5));
        assert_eq!(field_of_shape("web-x | x", b"a-9"), None);
        assert_eq!(field_of_shape("web | x", b"a-9"), None);
        assert!(names_stream("web-1") && names_stream("app[812]:") && names_stream("stderr"));
        assert!(!names_stream("10:00:00") && !names_stream("2026/12/05") && !names_stream("|"));
    }

    #[test]
    fn a_prefix_on_the_first_line_only() {
        let (lines, _) =
            carry("2026/12/05 11:00:00 goroutine 1 [running]:\nmain.main()\n\t/x/main.go:5 +0x1\n");
        assert_eq!(
            lines,
            [
                "goroutine 1 [running]:",
                "main.main()",
                "\t/x/main.go:5 +0x1"
            ]
        );
    }

    #[test]
    fn a_prefix_shaped_like_a_word() {
        let (lines, _) = carry(
            "app goroutine 1 [select]:\nmain.f()\n\t/x/main.go:5 +0x1\ncreated by main.main in goroutine 1\n\t/x/main.go:9 +0x1\n",
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[3], "created by main.main in goroutine 1");
    }

    #[test]
    fn stray_bytes_and_a_bom() {
        let (lines, _) = carry("\u{feff}goroutine 1 [running]:\nmain.main()\n");
        assert_eq!(lines[0], "goroutine 1 [running]:");
        let (lines, _) = carry("\u{1}goroutine 1 [running]:\nmain.main()\n");
        assert_eq!(lines[0], "goroutine 1 [running]:");
        let (lines, _) = carry("xgoroutine 1 [running]:\n");
        assert!(lines.is_empty());
    }

    #[test]
    fn a_crash_message_waits_for_its_header() {
        let text = "2026-12-05T10:00:00Z stderr F SIGQUIT: quit\n\
                    2026-12-05T10:00:00Z stderr F PC=0x1 m=0 sigcode=0\n\
                    2026-12-05T10:00:00Z stderr F \n\
                    2026-12-05T10:00:00Z stderr F goroutine 1 [running]:\n";
        let (lines, _) = carry(text);
        // (Lines before the prefix is known are not dump content: the blank one is lost.)
        assert_eq!(lines, ["SIGQUIT: quit", "goroutine 1 [running]:"]);
        // An ordinary log line that mentions a panic is not a crash.
        let (lines, _) = carry("2026/12/05 11:00:00 recovered panic: boom\nlater\n");
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn interleaved_processes_are_streams() {
        let text = "web-1  | goroutine 1 [running]:\n\
                    api-1  | goroutine 1 [select]:\n\
                    web-1  | main.main()\n";
        let (lines, names) = carry(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(names, ["web-1", "api-1", "web-1"]);
    }

    #[test]
    fn json_records() {
        let text = r#"{"log":"goroutine 1 [running]:\n","stream":"stderr","time":"2026-12-05T10:00:00Z"}
{"log":"main.main()\n","stream":"stderr","time":"2026-12-05T10:00:00Z"}
{"time":"x","level":"ERROR","msg":"dump","stack":"goroutine 2 [select]:\nmain.f()\n\t/x.go:1 +0x1\n"}"#;
        let (lines, _) = carry(text);
        assert_eq!(lines, ["goroutine 1 [running]:", "main.main()"]);
        let (lines, _) = carry(text.lines().nth(2).unwrap());
        assert_eq!(
            lines,
            ["goroutine 2 [select]:", "main.f()", "\t/x.go:1 +0x1"]
        );
    }

    #[test]
    fn quoted_values() {
        assert_eq!(
            find_quoted_key(
                r#"time=x level=ERROR msg=dump stack="goroutine 1 [running]:\nmain.main()""#
            ),
            Some("stack")
        );
        assert_eq!(unquote(r#"a\n\tb\"c" rest"#), "a\n\tb\"c");
        // A quote with no key before it (found by the fuzz test: it looped for ever).
        assert_eq!(find_quoted_key(r#"="goroutine 1 [running]:"#), None);
        assert_eq!(quoted_value(r#"x="y""#, ""), None);
    }

    /// A long line full of would-be anchors is searched in bounded time.
    #[test]
    fn long_lines_of_near_anchors_are_cheap() {
        let started = std::time::Instant::now();
        for near in [
            "goroutine x ",
            "SIGx",
            "panic:",
            "a=\"goroutine ",
            "fatal error:",
        ] {
            let line = near.repeat((1 << 20) / near.len());
            let (lines, _) = carry(&format!("{line}\n{line}\n"));
            assert!(lines.is_empty());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
