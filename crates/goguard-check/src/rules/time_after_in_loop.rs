//! G201 time-after-in-loop.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::diagnostic::Severity;
use crate::gomod::GoVersion;
use crate::syntax;

/// A file this rule can report in contains one of these (the time package): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[r#""time""#];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G201 time-after-in-loop

## What it does
Reports `time.After(d)` called on every iteration of a loop (typically as a `select` case),
unless the timeout case leaves the loop (a `return`, or a `break` out of it), in which case
at most one timer fires per loop run.

## Why is this bad?
Each call creates a new timer. When another case wins, that timer is abandoned:

- **go.mod `go 1.22` or older, built by a Go 1.22-1.26 toolchain**: it stays in the
  runtime's timer heap until it fires, so a busy loop with a long timeout holds thousands of
  live timers (memory, and timer-heap work on every iteration). This is a real leak:
  severity warning. (Go 1.27 removed that old behaviour, `asynctimerchan`, from the
  toolchain: built by Go 1.27 or later, even a `go 1.22` module gets the new timers. goguard
  reads go.mod, not the toolchain you build with, so it keeps the warning; the lab's
  `ch3-time-after` case measures what your toolchain does.)
- **`go 1.23` or newer**: unreferenced timers are collected at once, so what remains is an
  allocation per iteration: a performance note (severity info, hidden unless you pass
  `--show-info` or select G201 explicitly).

Note: the reference (3.1) says each `time.After` starts a goroutine. Since Go 1.14 timers
live in per-P heaps; no goroutine is created.

## Example
```go
for {
    select {
    case msg := <-in:
        handle(msg)
    case <-time.After(30 * time.Second): // a new timer per message
        log.Println("idle")
    }
}
```

## Use instead
```go
idle := time.NewTimer(30 * time.Second)
defer idle.Stop()
for {
    select {
    case msg := <-in:
        handle(msg)
    case <-idle.C:
        log.Println("idle")
    }
    idle.Reset(30 * time.Second)
}
```

## Known limits
A loop whose timeout case leaves the loop is not reported even though each iteration still
allocates a timer until then.

## References
- https://go.dev/doc/go1.23#timer-changes
- https://pkg.go.dev/time#After
"#;

pub fn check(cx: &mut Checker) {
    let collected = cx.go_version().at_least(GoVersion::TIMERS_COLLECTED);
    let version = cx.module.describe();
    let mut findings = Vec::new();
    for node in cx.index.calls_named(&["After"]) {
        if cx.pkg_call(node, "time", &["After"]).is_none() {
            continue;
        }
        let Some(lp) = syntax::enclosing_loop(node) else {
            continue;
        };
        // time.After in the loop header runs once.
        if lp
            .child_by_field_name("body")
            .is_none_or(|b| !syntax::contains(b, node))
        {
            continue;
        }
        if timeout_case_leaves_loop(cx, node, lp) {
            continue;
        }
        let (message, severity) = if collected {
            (format!("`time.After` allocates a new timer on every iteration of the loop at line {} ({version}: abandoned timers are collected at once, so this costs an allocation per iteration, not a leak)", cx.line(lp)), Severity::Info)
        } else {
            (format!("`time.After` creates a new timer on every iteration of the loop at line {}; each one stays in memory until it fires ({version}: timers are collected early only for go 1.23+ modules, or by a Go 1.27+ toolchain, which removed the old behaviour)", cx.line(lp)), Severity::Warning)
        };
        findings.push(Finding {
            node,
            message,
            help: "create one `time.NewTimer` before the loop, `defer t.Stop()`, and `t.Reset(d)` each iteration".into(),
            severity: Some(severity),
        });
    }
    for f in findings {
        cx.report(f);
    }
}

/// True when `time.After` is a select case whose body leaves the loop (return, break to it).
fn timeout_case_leaves_loop(cx: &Checker, call: Node, lp: Node) -> bool {
    let mut cur = call.parent();
    while let Some(n) = cur {
        if syntax::is_comm_case(n) {
            return super::loops::clause_leaves(cx, n);
        }
        if n.id() == lp.id() {
            return false;
        }
        cur = n.parent();
    }
    false
}
