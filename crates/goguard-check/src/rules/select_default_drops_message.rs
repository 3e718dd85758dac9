//! G202 select-default-drops-message.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::syntax::{self, Call};

pub const DOC: &str = r#"# G202 select-default-drops-message

## What it does
Reports `select { case ch <- v: ... default: ... }` where the `default` branch discards the
message silently: it is empty, or it only logs (no error returned, no retry, no counter).

## Why is this bad?
With a `default`, the send happens only if a receiver or buffer space is ready *right now*;
otherwise the message is dropped. That may be intended (best-effort telemetry), but done
silently it hides overload: there is no back-pressure, no error to the caller and no metric
that says how much was lost. The reference (3.2) loses messages 3 and 4 this way.

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

## Known limits
Any statement other than a logging call (an assignment, a counter, a return, a call) counts
as handling the drop.

## References
- https://go.dev/ref/spec#Select_statements
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for &sel in &cx.index.selects {
        let cases = syntax::named_children(sel);
        let send = cases.iter().find_map(|c| {
            (c.kind() == "communication_clause")
                .then(|| c.child_by_field_name("communication"))
                .flatten()
                .filter(|s| s.kind() == "send_statement")
        });
        let Some(send) = send else { continue };
        let Some(default) = cases.iter().find(|c| syntax::is_default_clause(**c)) else {
            continue;
        };
        if !is_silent(cx, *default) {
            continue;
        }
        let chan = send
            .child_by_field_name("channel")
            .map(|c| cx.text(c))
            .unwrap_or("ch");
        let value = send
            .child_by_field_name("value")
            .map(|c| cx.text(c))
            .unwrap_or("the value");
        findings.push(Finding {
            node: default.child(0).unwrap_or(*default),
            message: format!("when `{chan}` is not ready, this `default` drops `{value}` without an error, a retry or a metric"),
            help: "count the drop (a metric), return an error to the caller, or block with a timeout instead of dropping".into(),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
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
