//! G301 waitgroup-add-after-go.

use tree_sitter::Node;

use super::{wg_go_hint, wg_method};
use crate::checker::{Checker, Finding};
use crate::fix::{build, Edit, Fix};
use crate::gomod::GoVersion;
use crate::syntax;

/// A file this rule can report in contains one of these (an Add call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[".Add("];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G301 waitgroup-add-after-go

## What it does
Reports `wg.Add` called inside the goroutine it accounts for (anywhere in its body, not only
as its first statement), or after the `go` statement it accounts for.

## Why is this bad?
`Wait` returns when the counter is zero. If the goroutine is started before `Add` runs, the
caller can reach `Wait` while the counter is still zero, so `Wait` returns before the work is
done; and if the goroutine's `Done` runs before the `Add`, the counter goes negative and the
program crashes with `panic: sync: negative WaitGroup counter`. Whether it happens depends on
scheduling, so tests pass and production fails.

## Example
```go
for _, job := range jobs {
    go func() {
        wg.Add(1) // too late: Wait may already have returned
        defer wg.Done()
        run(job)
    }()
}
wg.Wait()
```

## Use instead
```go
for _, job := range jobs {
    wg.Add(1)
    go func() {
        defer wg.Done()
        run(job)
    }()
}
wg.Wait()
```
With Go 1.25 or later (`go 1.25` in go.mod), `wg.Go(func() { run(job) })` does both.

## Fix
`--fix` moves the `Add` (of a constant) to the line before the `go` statement. When go.mod
says `go 1.25` or later and the goroutine is `go func() { defer wg.Done(); ... }()`, it
writes `wg.Go(func() { ... })` instead, without the `Add` and the deferred `Done`. The fix is
safe when the `Add` is the goroutine's first statement (next to its `defer wg.Done()`), or
the statement right after the `go`: it then ran on every path, and moving it only closes the
race. An `Add` further down (after code that may return) is moved by an unsafe fix. None is
offered for an `Add` under a condition or of a value computed in the goroutine.

## Known limits
The `Add` must be in the same function as the `go` statement or inside the goroutine's
function literal (or the package function it calls). An `Add` hidden behind another call is
not seen. `go vet`'s `waitgroup` analyzer (Go 1.25) reports only an `Add` that is the first
statement of the goroutine.

## References
- https://pkg.go.dev/sync#WaitGroup.Add ("calls with a positive delta ... must happen before a Wait")
- https://pkg.go.dev/sync#WaitGroup.Go
"#;

pub fn check(cx: &mut Checker) {
    let go_stmts = cx.index.go_stmts.clone();
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
    for go in go_stmts {
        // Add inside the goroutine's own function.
        if let Some(f) = super::goroutine_function(cx, go) {
            if let Some(body) = f.child_by_field_name("body") {
                for n in syntax::descendants(body, false) {
                    if let Some((wg, call)) = wg_method(cx, n, &["Add"]) {
                        if !counts_itself(cx, body, &wg, n) {
                            continue;
                        }
                        let fix = move_add(cx, go, call.node, &wg, true);
                        findings.push((Finding {
                            node: call.node,
                            message: format!(
                                "`{wg}.Add` runs inside the goroutine it accounts for, started at line {}",
                                cx.line(go)
                            ),
                            help: format!("call `{wg}.Add(1)` before the `go` statement.{}", wg_go_hint(cx, &wg)),
                            severity: None,
                        }, fix));
                    }
                }
            }
        }
        if let Some((f, wg)) = add_after(cx, go) {
            let fix = move_add(cx, go, f.node, &wg, false);
            findings.push((f, fix));
        }
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// The fix for the `Add` call `add` of `wg` that belongs before `go` (`inside`: it is in the
/// goroutine's body; otherwise a statement after the `go`): `wg.Go` from Go 1.25, else the
/// `Add` moved.
fn move_add(cx: &Checker, go: Node, add: Node, wg: &str, inside: bool) -> Option<Fix> {
    let src = cx.src();
    let stmt = add
        .parent()
        .filter(|p| p.kind() == "expression_statement")?;
    let args = syntax::Call::of(add)?.args;
    // A constant count: it means the same before the goroutine as in it.
    if args.len() != 1 || args[0].kind() != "int_literal" {
        return None;
    }
    let lit = syntax::stmt_func_literal(go)?;
    let body = lit.child_by_field_name("body")?;
    let parent = stmt.parent()?;
    let in_body_list = |n: Node| {
        n.parent().is_some_and(|p| {
            p.id() == body.id()
                || (p.kind() == "statement_list" && p.parent().map(|q| q.id()) == Some(body.id()))
        })
    };
    let body_stmts: Vec<Node> = syntax::block_statements(parent)
        .into_iter()
        .filter(|s| s.kind() != "statement_list")
        .collect();
    let first_safe = if inside {
        if !in_body_list(stmt) {
            return None;
        }
        // Nothing before it may leave the goroutine, or the Add did not run on that path.
        let before: Vec<&Node> = body_stmts
            .iter()
            .take_while(|s| s.id() != stmt.id())
            .collect();
        if before.iter().any(|s| {
            syntax::descendants(**s, false)
                .iter()
                .any(|n| matches!(n.kind(), "return_statement" | "goto_statement"))
        }) {
            return None;
        }
        before.iter().all(|s| is_defer_done(cx, **s, wg))
    } else {
        // The statement right after the `go` (comments aside).
        let next = go.next_named_sibling();
        let next = next.filter(|n| n.kind() != "comment").or_else(|| {
            let mut n = go.next_named_sibling();
            while let Some(c) = n.filter(|c| c.kind() == "comment") {
                n = c.next_named_sibling();
            }
            n
        });
        next.is_some_and(|n| n.id() == stmt.id())
    };
    let add_text = cx.text(stmt).to_string();
    if cx.go_version().at_least(GoVersion::WAITGROUP_GO) && cx.text(args[0]) == "1" {
        if let Some(fix) = wg_go(cx, go, lit, body, stmt, wg, first_safe) {
            return Some(fix);
        }
    }
    let edits = vec![
        build::delete_statement(src, stmt)?,
        build::insert_before(src, go, std::slice::from_ref(&add_text))?,
    ];
    let message = format!("Move `{add_text}` before the `go` statement");
    Some(if first_safe {
        Fix::safe(message, edits)
    } else {
        Fix::unsafe_(message, edits)
    })
}

/// `defer wg.Done()`.
fn is_defer_done(cx: &Checker, s: Node, wg: &str) -> bool {
    s.kind() == "defer_statement"
        && syntax::normalize(cx.text(s)) == syntax::normalize(&format!("defer {wg}.Done()"))
}

/// `go func() { defer wg.Done(); ... }()` with its `Add` (statement `add`) as
/// `wg.Go(func() { ... })`.
fn wg_go(
    cx: &Checker,
    go: Node,
    lit: Node,
    body: Node,
    add: Node,
    wg: &str,
    add_safe: bool,
) -> Option<Fix> {
    let src = cx.src();
    let call = syntax::stmt_call(go)?;
    // No parameters, no arguments: `wg.Go` takes a `func()`.
    if lit
        .child_by_field_name("parameters")
        .is_some_and(|p| p.named_child_count() > 0)
        || lit.child_by_field_name("result").is_some()
        || call
            .child_by_field_name("arguments")
            .is_some_and(|a| a.named_child_count() > 0)
    {
        return None;
    }
    let stmts: Vec<Node> = syntax::descendants(body, false)
        .into_iter()
        .filter(|n| n.kind() == "defer_statement" && is_defer_done(cx, *n, wg))
        .collect();
    let [done] = stmts.as_slice() else {
        return None;
    };
    // The only Done of it, in the body itself.
    let dones = syntax::descendants(body, true)
        .into_iter()
        .filter(|n| super::wg_method(cx, *n, &["Done"]).is_some_and(|(w, _)| w == wg))
        .count();
    if dones != 1
        || done.parent().map(|p| p.id()) != Some(body.id())
            && done.parent().and_then(|p| p.parent()).map(|p| p.id()) != Some(body.id())
    {
        return None;
    }
    // Safe when the deferred Done ran last (it is the first defer) as `wg.Go`'s does.
    let first_defer = syntax::descendants(body, false)
        .into_iter()
        .find(|n| n.kind() == "defer_statement")
        .is_some_and(|d| d.id() == done.id());
    let edits = vec![
        Edit::replace(go.start_byte(), lit.start_byte(), format!("{wg}.Go(")),
        Edit::replace(lit.end_byte(), call.end_byte(), ")"),
        build::delete_statement(src, *done)?,
        build::delete_statement(src, add)?,
    ];
    let message = format!("Use `{wg}.Go(func() {{ ... }})` (Go 1.25+): it adds and defers `Done`");
    Some(if add_safe && first_defer {
        Fix::safe(message, edits)
    } else {
        Fix::unsafe_(message, edits)
    })
}

/// Whether the `Add` at `add`, in a goroutine's `body`, counts that goroutine itself: the
/// goroutine signals `wg` done (not only goroutines it starts), and starts no goroutine
/// after the `Add` that it could be counting instead (a counted goroutine may Add for its
/// children, as the sync documentation allows).
fn counts_itself(cx: &Checker, body: Node, wg: &str, add: Node) -> bool {
    let nodes = syntax::descendants(body, true);
    let in_nested_go = |n: Node| {
        let mut cur = n.parent();
        while let Some(p) = cur {
            if p.id() == body.id() {
                return false;
            }
            if p.kind() == "go_statement" {
                return true;
            }
            cur = p.parent();
        }
        false
    };
    let done_here = nodes
        .iter()
        .any(|n| wg_method(cx, *n, &["Done"]).is_some_and(|(w, _)| w == wg) && !in_nested_go(*n));
    let go_after = nodes
        .iter()
        .any(|n| n.kind() == "go_statement" && n.start_byte() > add.start_byte());
    done_here && !go_after
}

/// An `Add` among the statements following `go` in the same block, with no `Add` for the same
/// WaitGroup before the `go` statement since the previous goroutine.
fn add_after<'a>(cx: &Checker<'a>, go: Node<'a>) -> Option<(Finding<'a>, String)> {
    let f = super::goroutine_function(cx, go)?;
    let body = f.child_by_field_name("body")?;
    // The WaitGroup the goroutine signals on.
    let wg = syntax::descendants(body, false)
        .into_iter()
        .find_map(|n| wg_method(cx, n, &["Done"]).map(|(wg, _)| wg))?;
    // Inside a named function the WaitGroup may be a parameter with another name.
    if f.kind() != "function_literal" {
        return None;
    }
    let parent = go.parent()?;
    let siblings = syntax::named_children(parent);
    let pos = siblings.iter().position(|s| s.id() == go.id())?;
    let is_add = |s: Node<'a>| {
        syntax::descendants(s, false)
            .into_iter()
            .any(|n| wg_method(cx, n, &["Add"]).is_some_and(|(w, _)| w == wg))
    };
    let is_go = |s: Node| s.kind() == "go_statement";
    // An Add already made for this goroutine before it started.
    let covered = siblings[..pos]
        .iter()
        .rev()
        .take_while(|s| !is_go(**s))
        .any(|s| is_add(*s));
    if covered {
        return None;
    }
    // A Wait ends a phase: an Add after it counts the next phase's goroutines.
    let is_wait = |s: Node<'a>| {
        syntax::descendants(s, false)
            .into_iter()
            .any(|n| wg_method(cx, n, &["Wait"]).is_some_and(|(w, _)| w == wg))
    };
    // An Add followed, in the same statement, by the `go` it counts (`if extra { wg.Add(1);
    // go f() }`) is not late.
    let counts_own_go = |s: Node<'a>| {
        let nodes = syntax::descendants(s, false);
        let add = nodes
            .iter()
            .find(|n| wg_method(cx, **n, &["Add"]).is_some_and(|(w, _)| w == wg));
        add.is_some_and(|a| {
            nodes
                .iter()
                .any(|n| n.kind() == "go_statement" && n.start_byte() > a.start_byte())
        })
    };
    let late = siblings[pos + 1..]
        .iter()
        .take_while(|s| !is_go(**s) && !is_wait(**s))
        .find(|s| is_add(**s) && !counts_own_go(**s))?;
    let call = syntax::descendants(*late, false)
        .into_iter()
        .find(|n| wg_method(cx, *n, &["Add"]).is_some())?;
    let f = Finding {
        node: call,
        message: format!(
            "`{wg}.Add` runs after the goroutine it accounts for was started at line {}",
            cx.line(go)
        ),
        help: format!(
            "move `{wg}.Add(1)` before the `go` statement.{}",
            wg_go_hint(cx, &wg)
        ),
        severity: None,
    };
    Some((f, wg))
}
