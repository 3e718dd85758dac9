//! G103 ticker-or-timer-not-stopped.

use tree_sitter::Node;

use super::loops;
use crate::checker::{Checker, Finding};
use crate::diagnostic::Severity;
use crate::fix::{build, Fix};
use crate::gomod::GoVersion;
use crate::syntax;

/// A file this rule can report in contains one of these (the time package): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[r#""time""#];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G103 ticker-or-timer-not-stopped

## What it does
Reports a `time.NewTicker` or `time.NewTimer` stored in a local variable that is never
stopped (no `Stop` call, and the value is not returned or handed to other code), and
`time.Tick` in a function that returns. The verdict depends on the module's Go version:

- **go.mod says `go 1.22` or older**: an unstopped Ticker is never garbage-collected and keeps
  firing for the life of the program; an unstopped Timer stays in the runtime's timer heap
  until it fires; `time.Tick` leaks its Ticker as soon as the function returns. All are
  reported.
- **`go 1.23` or newer**: unreferenced Timers and Tickers are collected even without `Stop`,
  so only the leak that remains is reported: a Ticker whose goroutine loops on it forever
  with no way out (see also G102). A daemon meant to run as long as the program is not
  reported: one started once from `main`, or from a function that never returns (it ends in
  `select {}` or a loop with no way out), outside a loop there.

## Why is this bad?
Before Go 1.23 every unstopped Ticker is a permanent allocation and a recurring wake-up of
the runtime; in a function called per request they accumulate without bound. In every
version, a goroutine looping on `ticker.C` with no exit never ends.

Note: the reference (2.3) says each Timer/Ticker starts a goroutine and that an unread
channel blocks it. Since Go 1.14 timers live in per-P heaps and no goroutine is created, and
the runtime's send never blocks.

## Example
```go
func heartbeat(conn net.Conn) {
    t := time.NewTicker(5 * time.Second)
    for range t.C {
        if _, err := conn.Write(ping); err != nil {
            return // t is never stopped
        }
    }
}
```

## Use instead
```go
func heartbeat(conn net.Conn) {
    t := time.NewTicker(5 * time.Second)
    defer t.Stop()
    for range t.C {
        if _, err := conn.Write(ping); err != nil {
            return
        }
    }
}
```

## Fix
For a module before Go 1.23, `--fix` writes `defer t.Stop()` on the line after
`t := time.NewTicker(...)` (or `NewTimer`). It is safe when nothing else uses the ticker
after the function returns: no closure or goroutine refers to it (they would stop
receiving ticks). Otherwise, or in a loop (the `defer` runs only at the function's end), it
is unsafe (`--unsafe-fixes`). No fix is offered for `time.Tick`, or on Go 1.23+ where the
finding is a loop with no way out (`Stop` alone does not end it).

## Known limits
Tickers stored in struct fields are not followed (a `Stop` in another method is common). A
`Stop` anywhere in the function counts, even on one path only.

## References
- https://go.dev/doc/go1.23#timer-changes
- https://pkg.go.dev/time#NewTicker
- https://pkg.go.dev/time#Tick
"#;

pub fn check(cx: &mut Checker) {
    let collected = cx.go_version().at_least(GoVersion::TIMERS_COLLECTED);
    let version = cx.module.describe();
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
    for node in cx.index.calls_named(&["NewTicker", "NewTimer", "Tick"]) {
        let Some(call) = cx.pkg_call(node, "time", &["NewTicker", "NewTimer", "Tick"]) else {
            continue;
        };
        let what = cx.text(call.name);
        let Some(func) = cx.enclosing_function(node) else {
            continue;
        };
        if what == "Tick" {
            if collected || is_main(cx, func) || forever_loop_over(cx, node) {
                continue;
            }
            findings.push((Finding {
                node,
                message: format!("`time.Tick` creates a ticker that can never be stopped; it leaks once this function returns ({version}: unstopped tickers are never collected before Go 1.23)"),
                help: "use `t := time.NewTicker(d)` with `defer t.Stop()`, or raise the go.mod `go` directive to 1.23+".into(),
                severity: None,
            }, None));
            continue;
        }
        let Some(var) = assigned_var(cx, node) else {
            continue;
        };
        let Some(body) = func.child_by_field_name("body") else {
            continue;
        };
        if stopped_or_escapes(cx, body, var, node) {
            continue;
        }
        let kind = if what == "NewTicker" {
            "ticker"
        } else {
            "timer"
        };
        if collected {
            if kind != "ticker" {
                continue;
            }
            let Some(lp) = forever_loop_using(cx, body, var) else {
                continue;
            };
            // A daemon started from `main` is meant to run as long as the process.
            let mut outer = func;
            while let Some(f) = cx.enclosing_function(outer) {
                outer = f;
            }
            if crate::summary::runs_for_process_lifetime(cx, outer) {
                continue;
            }
            findings.push((Finding {
                node,
                message: format!(
                    "ticker `{var}` is never stopped and the loop at line {} over `{var}.C` never exits ({version}: the ticker itself would be collected, but this goroutine runs forever)",
                    cx.line(lp)
                ),
                help: format!("add `defer {var}.Stop()` and a way out of the loop (select on `ctx.Done()`)"),
                severity: None,
            }, None));
        } else {
            let (msg, sev) = if kind == "ticker" {
                (format!("ticker `{var}` is never stopped: it keeps firing and is never garbage-collected ({version}, built with a Go 1.22-1.26 toolchain; go 1.23+ modules, and every build by a Go 1.27+ toolchain, collect unreferenced tickers)"), None)
            } else {
                (format!("timer `{var}` is never stopped: it stays in the runtime's timer heap until it fires ({version}, built with a Go 1.22-1.26 toolchain; go 1.23+ modules, and every build by a Go 1.27+ toolchain, collect unreferenced timers)"), Some(Severity::Warning))
            };
            let fix = defer_stop(cx, body, node, var);
            findings.push((
                Finding {
                    node,
                    message: msg,
                    help: format!("add `defer {var}.Stop()` right after creating it"),
                    severity: sev,
                },
                fix,
            ));
        }
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// `defer var.Stop()` on the line after the statement that makes it (`call`).
fn defer_stop(cx: &Checker, body: Node, call: Node, var: &str) -> Option<Fix> {
    let parent = call.parent()?;
    let stmt = if parent.kind() == "expression_list" {
        parent.parent()?
    } else {
        parent
    };
    let stmt = if stmt.kind() == "var_spec" {
        stmt.parent().filter(|d| d.kind() == "var_declaration")?
    } else {
        stmt
    };
    if !stmt
        .parent()
        .is_some_and(|b| matches!(b.kind(), "block" | "statement_list"))
    {
        return None;
    }
    let text = format!("defer {var}.Stop()");
    let edits = vec![build::insert_after(
        cx.src(),
        stmt,
        std::slice::from_ref(&text),
    )?];
    let in_loop = syntax::enclosing_loop(stmt).is_some_and(|l| syntax::contains(body, l));
    let captured = syntax::descendants(body, false)
        .into_iter()
        .filter(|n| n.kind() == "function_literal")
        .any(|lit| syntax::mentions(lit, cx.src(), var));
    let message = format!("Add `{text}` after creating it");
    Some(if in_loop || captured {
        Fix::unsafe_(message, edits)
    } else {
        Fix::safe(message, edits)
    })
}

fn is_main(cx: &Checker, func: Node) -> bool {
    func.kind() == "function_declaration"
        && func
            .child_by_field_name("name")
            .is_some_and(|n| cx.text(n) == "main")
        && cx.file.package_name() == Some("main")
}

/// `for range time.Tick(d)` with no exit: the function never returns, nothing leaks.
fn forever_loop_over(cx: &Checker, call: Node) -> bool {
    let Some(lp) = syntax::enclosing_loop(call) else {
        return false;
    };
    syntax::range_expr(lp).is_some_and(|r| syntax::contains(r, call)) && !loops::has_exit(cx, lp)
}

/// The variable a `time.NewX(...)` call is assigned to (`t := ...`, `var t = ...`, `t = ...`).
fn assigned_var<'a>(cx: &Checker<'a>, call: Node<'a>) -> Option<&'a str> {
    let parent = call.parent()?;
    let stmt = if parent.kind() == "expression_list" {
        parent.parent()?
    } else {
        parent
    };
    let (lhs, rhs) = syntax::assignment_sides(stmt)?;
    let i = rhs.iter().position(|r| r.id() == call.id())?;
    let l = lhs.get(i)?;
    (l.kind() == "identifier" && cx.text(*l) != "_").then(|| cx.text(*l))
}

/// True when `var` has `Stop` called on it, or leaves the function (returned, passed to a
/// call, stored), in which case its owner may stop it.
fn stopped_or_escapes(cx: &Checker, body: Node, var: &str, creation: Node) -> bool {
    syntax::descendants(body, true).into_iter().any(|n| {
        if n.kind() != "identifier"
            || cx.text(n) != var
            || syntax::contains(creation.parent().unwrap_or(creation), n)
        {
            return false;
        }
        let Some(parent) = n.parent() else {
            return false;
        };
        match parent.kind() {
            "selector_expression" => {
                let field = parent.child_by_field_name("field").map(|f| cx.text(f));
                field == Some("Stop")
            }
            "arguments" | "return_statement" | "keyed_element" | "literal_value" => true,
            "expression_list" => {
                // On the right of an assignment: aliased or returned.
                parent.parent().is_some_and(|gp| {
                    gp.kind() == "return_statement"
                        || gp
                            .child_by_field_name("right")
                            .is_some_and(|r| r.id() == parent.id())
                })
            }
            _ => false,
        }
    })
}

/// A loop over `var.C` (ranged, or received in a select/statement inside it) that never exits.
fn forever_loop_using<'a>(cx: &Checker<'a>, body: Node<'a>, var: &str) -> Option<Node<'a>> {
    let chan = format!("{var}.C");
    syntax::descendants(body, true).into_iter().find(|n| {
        n.kind() == "for_statement"
            && loops::runs_forever(cx, *n)
            && !loops::has_exit(cx, *n)
            && syntax::descendants(*n, false).iter().any(|m| {
                m.kind() == "selector_expression" && syntax::normalize(cx.text(*m)) == chan
            })
    })
}
