//! G202 select-default-drops-message.

use tree_sitter::Node;

use crate::channels::Capacity;
use crate::checker::{Checker, Finding};
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (a select): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["select"];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G202 select-default-drops-message

## What it does
Reports a fire-and-forget send, `select { case ch <- v: default: }`, that loses the message
without anyone knowing: nothing happens when the send succeeds, and the `default` is empty
or only logs (no error returned, no retry, no counter).

## Why is this bad?
With a `default`, the send happens only if a receiver or buffer space is ready *right now*;
otherwise the message is dropped. On a channel without a buffer that is whenever the
receiver is not already parked in a receive at that instant, so messages are lost even when
nothing is overloaded: a request whose caller then waits for ever on its reply channel, a
fatal error that never stops the service. With a buffer it happens under load, and done
silently it hides the overload: no back-pressure, no error, no metric. The reference (3.2)
loses messages 3 and 4 this way.

## Example
```go
select {
case events <- ev:
default: // ev is lost when the buffer is full, and nobody knows
}
```

## Use instead
```go
select {
case events <- ev:
default:
    droppedEvents.Inc() // or return an error, or block with a timeout
}
```

## Not reported
The idioms in which dropping is the point:
- a signal (`struct{}{}`): a wake-up already pending says the same thing;
- a channel with a buffer of exactly one: the first (or the latest) value wins, as in a
  first-error or a latest-state slot;
- a send whose success case does something (pops a queue, returns, sets a flag): the code
  tracks whether the value went;
- a `default` with a comment on a line of its own, or a comment on the line just above the
  select (the author says why dropping is fine: "send but do not block for it"), or a
  `default` that logs the drop at debug level;
- a send to each channel of a set of subscribers in turn (`for c := range subscribers`):
  each subscriber sizes its own buffer and a slow one must not stall the others, as
  `signal.Notify` documents;
- with a buffer the package makes, an empty `default`: the usual best-effort send
  (telemetry, a free list of buffers, a hint); it is reported when the `default` logs the
  drop as an incident and does nothing else. A channel that comes from elsewhere (a
  parameter) is reported when a loop sends a stream of values into it, not for a single
  send;
- test files: a test hook reports events without blocking the code under test.

## Known limits
Any statement other than a logging call (an assignment, a counter, a return, a call) counts
as handling the drop. A channel's buffer is known when the package makes it where it is
kept (a local, a field, a package variable); one passed in from elsewhere is not.

## References
- https://go.dev/ref/spec#Select_statements
"#;

pub fn check(cx: &mut Checker) {
    // A test's hooks drop on purpose: the code under test must not block on them.
    if crate::testfail::is_test_file(cx) {
        return;
    }
    let mut findings = Vec::new();
    for &sel in &cx.index.selects {
        let cases = syntax::named_children(sel);
        let Some(case) = cases.iter().copied().find(|c| {
            syntax::is_comm_case(*c)
                && c.child_by_field_name("communication")
                    .is_some_and(|s| s.kind() == "send_statement")
        }) else {
            continue;
        };
        let Some(send) = case.child_by_field_name("communication") else {
            continue;
        };
        let Some(default) = cases.iter().find(|c| syntax::is_default_clause(**c)) else {
            continue;
        };
        // The success case tracks the send (a queue popped, a return): not fire and forget.
        if !syntax::clause_statements(case).is_empty() || !is_silent(cx, *default) {
            continue;
        }
        let Some(chan_node) = send.child_by_field_name("channel") else {
            continue;
        };
        let value_node = send.child_by_field_name("value");
        if value_node.is_some_and(|v| is_signal(cx, v)) {
            continue;
        }
        // A comment in the `default` says why dropping is fine; a drop logged at debug
        // level is routine to its author.
        if explained(sel, *default) || commented_above(sel) {
            continue;
        }
        let logged = drop_log_level(cx, *default);
        if logged == Some(LogLevel::Debug) {
            continue;
        }
        // Each of a set of subscribers' channels in turn (`for c := range subscribers`): a
        // subscriber sizes its own buffer, and one that is not keeping up must not stall the
        // others (`signal.Notify`'s contract). Publish/subscribe, not a lost message.
        if is_fan_out(cx, sel, chan_node) {
            continue;
        }
        let chan = cx.text(chan_node);
        let value = value_node.map(|c| cx.text(c)).unwrap_or("the value");
        let message = match crate::channels::capacity(cx, chan_node) {
            Capacity::Buffered(1) => continue,
            Capacity::Unbuffered => format!(
                "`{chan}` has no buffer: unless its receiver is waiting at that instant, this `default` drops `{value}` without an error, a retry or a metric"
            ),
            // With a buffer the package chose, an empty `default` is the usual best-effort
            // send; one that logs the drop as an incident and does nothing else is the
            // reference's shape.
            Capacity::Buffered(_) if logged.is_none() => continue,
            // A channel from elsewhere: the function drops a stream of values (a loop) into
            // a buffer it cannot see; a single send is a one-shot notification.
            Capacity::Unknown if logged.is_none() && syntax::enclosing_loop(sel).is_none() => {
                continue
            }
            Capacity::Buffered(_) | Capacity::Unknown => format!(
                "when `{chan}` is full, this `default` drops `{value}` without an error, a retry or a metric"
            ),
        };
        findings.push(Finding {
            node: default.child(0).unwrap_or(*default),
            message,
            help: "count the drop (a metric), return an error to the caller, or block with a timeout instead of dropping".into(),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

/// Whether a comment on a line of its own follows `default:` before the next clause (the
/// grammar puts a comment that ends the clause after it, in the select).
fn explained(select: Node, default: Node) -> bool {
    let line = default.start_position().row;
    let end = syntax::named_children(select)
        .into_iter()
        .find(|c| syntax::is_case_clause(*c) && c.start_byte() > default.start_byte())
        .map_or(select.end_byte(), |c| c.start_byte());
    syntax::descendants(select, false).into_iter().any(|n| {
        n.kind() == "comment"
            && n.start_byte() > default.start_byte()
            && n.start_byte() < end
            && n.start_position().row > line
    })
}

/// Whether a comment ends on the line just above the select: the author's note on this
/// non-blocking send ("send but do not block for it", "if we are ready right away").
fn commented_above(select: Node) -> bool {
    select.prev_sibling().is_some_and(|p| {
        p.kind() == "comment" && p.end_position().row + 1 == select.start_position().row
    })
}

/// Whether the channel sent on is (a field of) the variable of a `range` around the select.
fn is_fan_out(cx: &Checker, select: Node, chan: Node) -> bool {
    let mut root = syntax::unparen(chan);
    while root.kind() == "selector_expression" {
        match root.child_by_field_name("operand") {
            Some(o) => root = syntax::unparen(o),
            None => return false,
        }
    }
    if root.kind() != "identifier" {
        return false;
    }
    let name = cx.text(root);
    let mut cur = select.parent();
    while let Some(n) = cur {
        if syntax::is_function(n) {
            return false;
        }
        if n.kind() == "for_statement" {
            let ranged = syntax::named_children(n)
                .into_iter()
                .find(|c| c.kind() == "range_clause")
                .and_then(|rc| rc.child_by_field_name("left"));
            if ranged.is_some_and(|left| {
                syntax::named_children(left)
                    .iter()
                    .any(|v| v.kind() == "identifier" && cx.text(*v) == name)
            }) {
                return true;
            }
        }
        cur = n.parent();
    }
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LogLevel {
    Debug,
    Other,
}

/// How a `default` logs its drop: `None` without a log call, `Debug` when every log call is
/// at debug level.
fn drop_log_level(cx: &Checker, default: Node) -> Option<LogLevel> {
    let mut level = None;
    for s in syntax::clause_statements(default) {
        let Some(call) = s.named_child(0).and_then(Call::of) else {
            continue;
        };
        if !is_log_call(cx, &call) {
            continue;
        }
        let debug = cx.text(call.name).starts_with("Debug");
        level = match (level, debug) {
            (Some(LogLevel::Other), _) | (_, false) => Some(LogLevel::Other),
            _ => Some(LogLevel::Debug),
        };
    }
    level
}

/// A value that carries no information beyond its arrival: `struct{}{}`.
fn is_signal(cx: &Checker, v: Node) -> bool {
    syntax::normalize(cx.text(v)) == "struct{}{}"
}

/// True when a default branch only logs, breaks or continues.
pub(crate) fn is_silent(cx: &Checker, default: Node) -> bool {
    syntax::clause_statements(default)
        .into_iter()
        .all(|s| match s.kind() {
            "break_statement" | "continue_statement" | "empty_statement" => true,
            "expression_statement" => s
                .named_child(0)
                .and_then(Call::of)
                .is_some_and(|c| is_log_call(cx, &c)),
            _ => false,
        })
}

fn is_log_call(cx: &Checker, c: &Call) -> bool {
    let name = cx.text(c.name);
    let recv = c.receiver.map(|r| cx.text(r)).unwrap_or("");
    if recv == "fmt" {
        return name.starts_with("Print") || name.starts_with("Fprint");
    }
    matches!(recv, "log" | "slog") && !name.starts_with("Fatal") && !name.starts_with("Panic")
        || (c.receiver.is_some()
            && matches!(
                name,
                "Print"
                    | "Printf"
                    | "Println"
                    | "Debug"
                    | "Debugf"
                    | "Info"
                    | "Infof"
                    | "Warn"
                    | "Warnf"
                    | "Warning"
                    | "Warningf"
                    | "Log"
                    | "Logf"
                    | "Error"
                    | "Errorf"
                    | "Trace"
                    | "Tracef"
                    | "DebugContext"
                    | "InfoContext"
                    | "WarnContext"
                    | "ErrorContext"
            ))
}
