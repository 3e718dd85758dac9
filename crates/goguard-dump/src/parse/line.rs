//! What one line of a text dump is, once its carrier (log prefix, JSON record, indentation)
//! is taken off: the classification the parser's states work on.
//!
//! Classification looks at the line's content only, never at its indentation: Go indents a
//! frame's file line with a tab, but a dump copied from a web page or an editor has spaces
//! there, and `t.Log` in `go test -v` indents every line. The content tells the lines apart
//! on its own: a function line ends with `)`, a file line ends with `:LINE` (then `+0xPC`,
//! `fp= sp= pc=`), a header is `goroutine N [...]:`.

use super::{parse_header, Goroutine};

/// One classified line of a text dump.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// Empty or only whitespace: ends a goroutine record.
    Blank,
    /// `goroutine 6 [chan send, 3 minutes]:` (with its parsed fields).
    Header(Box<Goroutine>),
    /// `main.worker(0xc000010000?, {0x0?, 0x0?})`: the function, without its arguments.
    Function(&'a str),
    /// `created by main.main in goroutine 1`: the creator's function.
    CreatedBy(&'a str),
    /// `\t/src/app/main.go:18 +0x2a`: the file line of the function line before it.
    Location(&'a str),
    /// `...1000 frames elided...` / `...additional frames elided...`.
    Elided,
    /// `goroutine running on other thread; stack unavailable`.
    StackUnavailable,
    /// `[originating from goroutine 1]:` (GODEBUG=tracebackancestors): the ancestor's frames
    /// follow, which are not part of this goroutine's stack.
    Ancestor,
    /// The runtime's verdict before the goroutines: `fatal error: ...`, `panic: ...`,
    /// `SIGQUIT: quit`.
    Crash(&'a str),
    /// `-----`: GOTRACEBACK=crash prints it before each thread's own stacks.
    ThreadSeparator,
    /// Anything else: a log line, `exit status 2`, a register dump (`rax 0x0`), `PC=...`.
    Other,
}

/// Classifies the content of a line (carrier already removed).
pub(crate) fn classify(content: &str) -> Line<'_> {
    let line = content.trim();
    let Some(&first) = line.as_bytes().first() else {
        return Line::Blank;
    };
    // Dispatch on the first byte keeps this cheap: it runs on every line of dumps with a
    // million goroutines.
    match first {
        b'g' if line.starts_with("goroutine ") => {
            if let Some(g) = parse_header(line) {
                return Line::Header(Box::new(g));
            }
            if line.starts_with("goroutine running on other thread") {
                return Line::StackUnavailable;
            }
        }
        b'c' => {
            if let Some(rest) = line.strip_prefix("created by ") {
                let function = rest.split(" in goroutine ").next().unwrap_or(rest).trim();
                return Line::CreatedBy(function);
            }
        }
        b'.' if line.starts_with("...") && line.ends_with("...") => return Line::Elided,
        b'[' if line.starts_with("[originating from goroutine ") => return Line::Ancestor,
        b'-' if line == "-----" => return Line::ThreadSeparator,
        b'f' if line.starts_with("fatal error: ") => return Line::Crash(line),
        b'p' if line.starts_with("panic: ") => return Line::Crash(line),
        b'S' if is_signal_line(line) => return Line::Crash(line),
        _ => {}
    }
    if line.ends_with(')') {
        return Line::Function(super::function_name(line));
    }
    if is_location(line) {
        return Line::Location(line);
    }
    Line::Other
}

/// `SIGQUIT: quit`, `SIGSEGV: segmentation violation`: the runtime's signal report.
pub(crate) fn is_signal_line(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(sig, _)| {
        sig.len() > 3 && sig.starts_with("SIG") && sig.bytes().all(|b| b.is_ascii_uppercase())
    })
}

/// A frame's file line: `PATH:LINE`, then optionally ` +0xOFF` and ` fp=.. sp=.. pc=..`.
/// Paths may hold spaces and colons (`C:/src`), so the line number is the last `:DIGITS`
/// followed by the end or a space.
fn is_location(line: &str) -> bool {
    let bytes = line.as_bytes();
    let mut i = bytes.len();
    // Go prints `?:0` or a bare `?` for a frame it cannot place.
    if line == "?" {
        return true;
    }
    while let Some(colon) = line[..i].rfind(':') {
        let digits = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = colon + 1 + digits;
        if digits > 0 && colon > 0 && (end == bytes.len() || bytes[end] == b' ') {
            return true;
        }
        i = colon;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> String {
        let s = format!("{:?}", classify(line));
        s.split(['(', ' ']).next().unwrap_or("").to_string()
    }

    #[test]
    fn every_kind_of_line() {
        let cases = [
            ("goroutine 7 [chan receive, 12 minutes]:", "Header"),
            ("        goroutine 7 [chan receive]:", "Header"),
            ("main.worker(0xc000010000?, {0x0?, 0x0?})", "Function"),
            ("main.consume(...)", "Function"),
            ("\t/src/app/main.go:18 +0x2a", "Location"),
            ("    \t/src/app/main.go:18", "Location"),
            ("        /src/app/main.go:18 +0x2a", "Location"),
            ("\t_testmain.go:46 +0x9b", "Location"),
            (
                "\t/Users/Jo Doe/a.go:7 +0x2 fp=0xc0 sp=0xc0 pc=0x4",
                "Location",
            ),
            ("\tC:/src/a.go:3 +0x1", "Location"),
            ("created by main.main in goroutine 1", "CreatedBy"),
            ("...1000 frames elided...", "Elided"),
            ("...additional frames elided...", "Elided"),
            (
                "\tgoroutine running on other thread; stack unavailable",
                "StackUnavailable",
            ),
            ("[originating from goroutine 1]:", "Ancestor"),
            (
                "fatal error: all goroutines are asleep - deadlock!",
                "Crash",
            ),
            ("panic: boom", "Crash"),
            ("SIGQUIT: quit", "Crash"),
            ("-----", "ThreadSeparator"),
            ("", "Blank"),
            ("        ", "Blank"),
            ("rax    0x0", "Other"),
            ("PC=0x4114ac m=0 sigcode=0", "Other"),
            ("exit status 2", "Other"),
            ("level=info msg=started", "Other"),
        ];
        for (line, want) in cases {
            assert_eq!(kind(line), want, "{line:?}");
        }
        match classify("created by main.main in goroutine 1") {
            Line::CreatedBy(f) => assert_eq!(f, "main.main"),
            other => panic!("{other:?}"),
        }
    }
}
