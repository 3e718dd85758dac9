//! G204 context-cancel-not-called.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::paths::{self, Tracker};
use crate::syntax;

/// A file this rule can report in contains one of these (the context package): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[r#""context""#];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G204 context-cancel-not-called

## What it does
Reports the cancel function returned by `context.WithCancel`, `WithTimeout`, `WithDeadline`
(and their `Cause` variants) when it is discarded (`_`), never called, or not called on
every path out of the function.

## Why is this bad?
A derived context stays registered with its parent until it is cancelled: its resources,
its timer (for `WithTimeout`/`WithDeadline`, until the deadline), and every goroutine
waiting on its `Done` live on. Calling cancel is what releases them early; the `context`
documentation requires it on all paths.

## Example
```go
func fetch(parent context.Context) error {
    ctx, cancel := context.WithTimeout(parent, time.Second)
    if err := precheck(); err != nil {
        return err // cancel is not called on this path
    }
    defer cancel()
    return do(ctx)
}
```

## Use instead
```go
func fetch(parent context.Context) error {
    ctx, cancel := context.WithTimeout(parent, time.Second)
    defer cancel()
    if err := precheck(); err != nil {
        return err
    }
    return do(ctx)
}
```

## Known limits
A cancel function that is returned, stored or passed to another function is assumed to be
called by its new owner. `go vet -lostcancel` performs the same check with full types.

## References
- https://pkg.go.dev/context#WithCancel
- https://pkg.go.dev/cmd/vet (lostcancel)
"#;

const CONSTRUCTORS: &[&str] = &[
    "WithCancel",
    "WithTimeout",
    "WithDeadline",
    "WithCancelCause",
    "WithTimeoutCause",
    "WithDeadlineCause",
];

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for node in cx.index.calls_named(CONSTRUCTORS) {
        let Some(call) = cx.pkg_call(node, "context", CONSTRUCTORS) else {
            continue;
        };
        let Some(stmt) = node.parent().and_then(|p| {
            if p.kind() == "expression_list" {
                p.parent()
            } else {
                Some(p)
            }
        }) else {
            continue;
        };
        let Some((lhs, _)) = syntax::assignment_sides(stmt) else {
            continue;
        };
        let Some(cancel) = lhs.get(1) else { continue };
        let ctor = format!("context.{}", cx.text(call.name));
        if cx.text(*cancel) == "_" {
            findings.push(Finding {
                node: *cancel,
                message: format!("the cancel function of `{ctor}` is discarded, so the context is never cancelled"),
                help: "keep it and `defer cancel()` right after the call".into(),
                severity: None,
            });
            continue;
        }
        if cancel.kind() != "identifier" {
            continue; // stored in a field: its owner cancels
        }
        let name = cx.text(*cancel);
        let Some(func) = cx.enclosing_function(node) else {
            continue;
        };
        let Some(body) = func.child_by_field_name("body") else {
            continue;
        };
        // Kept where other code can call it: a variable of an enclosing function (the
        // closure assigns it for its owner), or one a closure here captures (`stop := func()
        // { cancel() }`) and may call at any time.
        if owned_elsewhere(cx, *cancel, func) || captured(cx, body, name) {
            continue;
        }
        let is_start = |n: Node| n.id() == stmt.id();
        let is_release = |n: Node| uses_cancel(cx, n, name, stmt);
        let fails = |n: Node| crate::testfail::is_failure_stmt(cx, n);
        let tracker = Tracker {
            is_start: Some(&is_start),
            is_release: &is_release,
            guarded_release: None,
            fails_test: Some(&fails),
            src: cx.src(),
        };
        let exits = paths::leaking_exits(body, &tracker);
        let Some(first) = exits.first() else { continue };
        let used_somewhere = syntax::descendants(body, true).into_iter().any(|n| {
            n.start_byte() > stmt.end_byte() && n.kind() == "identifier" && cx.text(n) == name
        });
        let message = if used_somewhere {
            let lines: Vec<String> = exits.iter().map(|e| cx.line(*e).to_string()).collect();
            format!("`{name}` from `{ctor}` is not called on every path: the exit at line {} leaves without it (lines {})", cx.line(*first), lines.join(", "))
        } else {
            format!("`{name}` from `{ctor}` is never called")
        };
        findings.push(Finding {
            node: *cancel,
            message,
            help: format!("`defer {name}()` right after the call"),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

/// Whether the variable `cancel` is declared in a function enclosing `func`.
fn owned_elsewhere<'a>(cx: &Checker<'a>, cancel: Node<'a>, func: Node<'a>) -> bool {
    let name = cx.text(cancel);
    let mut outer = cx.enclosing_function(func);
    while let Some(f) = outer {
        let declared_here = cx
            .index
            .declarations()
            .get(&f.id())
            .is_some_and(|m| m.contains_key(name))
            || syntax::params(f, cx.src()).iter().any(|(p, _)| *p == name);
        if declared_here {
            // Unless `func` declares its own.
            let own = cx
                .index
                .declarations()
                .get(&func.id())
                .is_some_and(|m| m.contains_key(name));
            return !own;
        }
        outer = cx.enclosing_function(f);
    }
    false
}

/// Whether a function literal in `body` refers to `name`.
fn captured(cx: &Checker, body: Node, name: &str) -> bool {
    syntax::descendants(body, false)
        .into_iter()
        .filter(|n| n.kind() == "function_literal")
        .any(|lit| syntax::mentions(lit, cx.src(), name))
}

/// True when the statement calls `name()` or hands `name` to other code (any reference
/// other than the declaring statement counts: a new owner may call it).
fn uses_cancel(cx: &Checker, n: Node, name: &str, decl: Node) -> bool {
    n.id() != decl.id() && syntax::mentions(n, cx.src(), name)
}
