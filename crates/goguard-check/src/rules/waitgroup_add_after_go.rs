//! G301 waitgroup-add-after-go.

use tree_sitter::Node;

use super::{wg_go_hint, wg_method};
use crate::checker::{Checker, Finding};
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
    let mut findings = Vec::new();
    for go in go_stmts {
        // Add inside the goroutine's own function.
        if let Some(f) = super::goroutine_function(cx, go) {
            if let Some(body) = f.child_by_field_name("body") {
                for n in syntax::descendants(body, false) {
                    if let Some((wg, call)) = wg_method(cx, n, &["Add"]) {
                        if !counts_itself(cx, body, &wg, n) {
                            continue;
                        }
                        findings.push(Finding {
                            node: call.node,
                            message: format!(
                                "`{wg}.Add` runs inside the goroutine it accounts for, started at line {}",
                                cx.line(go)
                            ),
                            help: format!("call `{wg}.Add(1)` before the `go` statement.{}", wg_go_hint(cx, &wg)),
                            severity: None,
                        });
                    }
                }
            }
        }
        if let Some(f) = add_after(cx, go) {
            findings.push(f);
        }
    }
    for f in findings {
        cx.report(f);
    }
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
fn add_after<'a>(cx: &Checker<'a>, go: Node<'a>) -> Option<Finding<'a>> {
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
    Some(Finding {
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
    })
}
