//! G204 context-cancel-not-called.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::fix::{build, Edit, Fix};
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

## Fix
`--fix` writes `defer cancel()` (`defer cancel(nil)` for `WithCancelCause`) on the line
after the call, names a discarded cancel `cancel`, and removes a later `defer cancel()` of
the same block (now redundant). Cancelling at return is safe when the context does not
outlive the function: it is not returned, stored, sent, captured by a closure or handed to a
`go` statement. Otherwise the fix is unsafe (`--unsafe-fixes`): whoever got the context
would see it cancelled when this function returns. So is a `defer` in a loop, which runs
only at the function's end. None is offered when the call is an `if`'s or `for`'s
initializer, or a discarded cancel's name is taken.

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
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
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
        let cause = cx.text(call.name) == "WithCancelCause";
        if cx.text(*cancel) == "_" {
            let fix = defer_cancel(
                cx,
                stmt,
                lhs.first().copied(),
                Some(*cancel),
                "cancel",
                cause,
            );
            findings.push((Finding {
                node: *cancel,
                message: format!("the cancel function of `{ctor}` is discarded, so the context is never cancelled"),
                help: "keep it and `defer cancel()` right after the call".into(),
                severity: None,
            }, fix));
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
        let fix = defer_cancel(cx, stmt, lhs.first().copied(), None, name, cause);
        findings.push((
            Finding {
                node: *cancel,
                message,
                help: format!("`defer {name}()` right after the call"),
                severity: None,
            },
            fix,
        ));
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// `defer name()` after the statement `stmt` that makes the context `ctx` (naming the
/// discarded cancel `blank` first, when there is one).
fn defer_cancel(
    cx: &Checker,
    stmt: Node,
    ctx: Option<Node>,
    blank: Option<Node>,
    name: &str,
    cause: bool,
) -> Option<Fix> {
    let src = cx.src();
    let block = stmt.parent()?;
    if !matches!(block.kind(), "block" | "statement_list") {
        return None; // an `if`/`for`/`switch` initializer
    }
    let func = cx.enclosing_function(stmt)?;
    let body = func.child_by_field_name("body")?;
    let mut edits = Vec::new();
    if let Some(b) = blank {
        // `ctx, _ := ...` becomes `ctx, cancel := ...`: only where the name is free and the
        // statement declares (an assignment would need `cancel` declared).
        if stmt.kind() != "short_var_declaration" || syntax::mentions(func, src, name) {
            return None;
        }
        edits.push(Edit::replace(b.start_byte(), b.end_byte(), name));
    }
    let call = if cause {
        format!("defer {name}(nil)")
    } else {
        format!("defer {name}()")
    };
    edits.push(build::insert_after(src, stmt, std::slice::from_ref(&call))?);
    // A `defer cancel()` later in the same block is now the same thing, earlier.
    for s in syntax::block_statements(block) {
        if s.start_byte() > stmt.end_byte()
            && s.kind() == "defer_statement"
            && syntax::normalize(cx.text(s)) == syntax::normalize(&call)
        {
            edits.push(build::delete_statement(src, s)?);
            break;
        }
    }
    let in_loop = syntax::enclosing_loop(stmt).is_some_and(|l| syntax::contains(body, l));
    let outlives = ctx
        .filter(|c| c.kind() == "identifier" && cx.text(*c) != "_")
        .is_some_and(|c| escapes(cx, body, cx.text(c), stmt));
    let message = format!("Add `{call}` after the call");
    Some(if in_loop || outlives {
        Fix::unsafe_(message, edits)
    } else {
        Fix::safe(message, edits)
    })
}

/// Whether the context `name` may be used after the function returns: returned, assigned
/// or stored, sent, captured by a function literal, or named in a `go` statement. Passing it
/// to a call or calling its methods keeps it within the call.
fn escapes(cx: &Checker, body: Node, name: &str, decl: Node) -> bool {
    syntax::descendants(body, true).into_iter().any(|n| {
        if n.kind() != "identifier" || cx.text(n) != name || syntax::contains(decl, n) {
            return false;
        }
        // In a goroutine or a closure: it may run after the return.
        let mut p = n.parent();
        while let Some(q) = p.filter(|q| q.id() != body.id()) {
            if matches!(q.kind(), "go_statement" | "function_literal") {
                return true;
            }
            p = q.parent();
        }
        let mut q = n.parent();
        while let Some(x) = q.filter(|x| x.kind() == "parenthesized_expression") {
            q = x.parent();
        }
        let Some(q) = q else { return false };
        match q.kind() {
            "return_statement" | "send_statement" | "literal_element" | "keyed_element"
            | "literal_value" => true,
            "expression_list" => q.parent().is_some_and(|s| {
                s.kind() == "return_statement"
                    || (matches!(
                        s.kind(),
                        "assignment" | "short_var_declaration" | "var_spec"
                    ) && s
                        .child_by_field_name("right")
                        .or_else(|| s.child_by_field_name("value"))
                        .is_some_and(|r| r.id() == q.id()))
            }),
            _ => false,
        }
    })
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
