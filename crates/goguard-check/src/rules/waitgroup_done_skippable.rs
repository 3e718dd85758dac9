//! G304 waitgroup-done-skippable.

use tree_sitter::Node;

use super::{wg_go_hint, wg_method};
use crate::checker::{Checker, Finding};
use crate::fix::{build, Fix};
use crate::paths::{self, Tracker};
use crate::syntax;

/// A file this rule can report in contains one of these (a Done call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[".Done("];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["sync.WaitGroup.Wait"];

pub const DOC: &str = r#"# G304 waitgroup-done-skippable

## What it does
Reports a `wg.Done()` that is not deferred and that some way out of the goroutine (an early
`return`, a `continue` or `break` in a worker loop, or a panic recovered inside the
goroutine) skips.

## Why is this bad?
`Wait` returns only when every `Add` has its `Done`. A skipped `Done` leaves the counter
above zero, so `Wait` blocks forever, and with it the goroutine that called it.

The reference (4.4) says a panic skips `defer wg.Done()`. That is wrong: deferred calls run
when a goroutine panics (the program then crashes unless something recovers) and when it
calls `runtime.Goexit`. The real hang is a `Done` that is *not* deferred: an early exit
skips it, and so does a panic that a deferred `recover` inside the goroutine swallows.
`os.Exit` and `log.Fatal` skip deferred calls too, but they end the whole process.

## Example
```go
go func() {
    if err := step(); err != nil {
        return // Done is skipped: Wait blocks forever
    }
    wg.Done()
}()
```

## Use instead
```go
go func() {
    defer wg.Done()
    if err := step(); err != nil {
        return
    }
}()
```
With Go 1.25 or later, `wg.Go(func() { ... })` defers the `Done` for you.

## Fix
`--fix` writes `defer wg.Done()` as the goroutine's first statement and removes the `Done`
calls of that WaitGroup from its body. The fix is safe when there is one `Done`, a statement
of the goroutine's body itself, with at most a `return` after it: every path that called it
still calls it once, at the same point. Otherwise (a `Done` under a condition, or work after
it that now runs before it) it is unsafe (`--unsafe-fixes`). None is offered for a `Done`
inside a loop (one per iteration is another design) or in a nested function.

## Known limits
Paths are followed within the goroutine's function; `goto` stops the analysis (no report).
A `Done` called from a helper function is not seen.

## References
- https://go.dev/ref/spec#Defer_statements
- https://pkg.go.dev/sync#WaitGroup.Go
"#;

pub fn check(cx: &mut Checker) {
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
    // Goroutines started here, and functions of this file started as goroutines elsewhere.
    let mut bodies: Vec<Node> = cx
        .index
        .go_stmts
        .iter()
        .filter_map(|&go| super::goroutine_function(cx, go))
        .collect();
    bodies.extend(super::started_elsewhere(cx).into_iter().map(|(f, _)| f));
    bodies.sort_by_key(|f| f.start_byte());
    bodies.dedup_by_key(|f| f.id());
    for f in bodies {
        let Some(body) = f.child_by_field_name("body") else {
            continue;
        };
        let nodes = syntax::descendants(body, false);
        let dones: Vec<(String, Node)> = nodes
            .iter()
            .filter_map(|n| wg_method(cx, *n, &["Done"]).map(|(w, c)| (w, c.node)))
            .collect();
        let recovers = nodes.iter().any(|n| is_deferred_recover(cx, *n));
        for (wg, done) in &dones {
            if done.parent().is_some_and(|p| p.kind() == "defer_statement") {
                continue;
            }
            if dones
                .iter()
                .any(|(w, d)| w == wg && d.parent().is_some_and(|p| p.kind() == "defer_statement"))
            {
                continue; // a deferred Done covers every exit (G302 reports the doubling)
            }
            if let Some((f, fixable)) = skipped(cx, body, wg, *done, recovers) {
                let fix = fixable.then(|| defer_done(cx, body, wg, &dones)).flatten();
                findings.push((f, fix));
            }
        }
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// `defer wg.Done()` at the start of the goroutine's `body`, its `Done` calls (`dones`, the
/// body's own, not nested functions') removed.
fn defer_done(cx: &Checker, body: Node, wg: &str, dones: &[(String, Node)]) -> Option<Fix> {
    let src = cx.src();
    let mine: Vec<Node> = dones
        .iter()
        .filter(|(w, _)| w == wg)
        .map(|(_, d)| *d)
        .collect();
    // Every Done of it in the function, nested functions included, must be one of these.
    let all = syntax::descendants(body, true)
        .into_iter()
        .filter(|n| super::wg_method(cx, *n, &["Done"]).is_some_and(|(w, _)| w == wg))
        .count();
    if mine.is_empty() || all != mine.len() {
        return None;
    }
    let mut edits = Vec::new();
    let mut safe = mine.len() == 1;
    for done in &mine {
        let stmt = done
            .parent()
            .filter(|p| p.kind() == "expression_statement")?;
        if syntax::enclosing_loop(stmt).is_some_and(|l| syntax::contains(body, l)) {
            return None;
        }
        let parent = stmt.parent()?;
        if parent.id() != body.id() && parent.parent().map(|p| p.id()) != Some(body.id()) {
            safe = false;
        } else {
            // Only a `return` (of nothing that runs code) may follow it.
            let after: Vec<Node> = syntax::named_children(parent)
                .into_iter()
                .filter(|s| s.start_byte() > stmt.end_byte() && s.kind() != "comment")
                .collect();
            let ends = match after.as_slice() {
                [] => true,
                [r] => r.kind() == "return_statement" && r.named_child_count() == 0,
                _ => false,
            };
            safe &= ends;
        }
        edits.push(build::delete_statement(src, stmt)?);
    }
    edits.push(build::insert_at_block_start(
        src,
        body,
        &[format!("defer {wg}.Done()")],
    )?);
    let message = format!("Defer `{wg}.Done()` at the start of the goroutine");
    Some(if safe {
        Fix::safe(message, edits)
    } else {
        Fix::unsafe_(message, edits)
    })
}

fn skipped<'a>(
    cx: &Checker<'a>,
    body: Node<'a>,
    wg: &str,
    done: Node<'a>,
    recovers: bool,
) -> Option<(Finding<'a>, bool)> {
    // A Done inside a loop of the goroutine pays for one iteration, unless every path from it
    // leaves the loop (`wg.Done(); return`), or it runs on the first iteration only (`if i
    // == 0`, a ready signal): then it pays for the goroutine.
    let lp = syntax::enclosing_loop(done).filter(|l| syntax::contains(body, *l));
    let first_only = lp.filter(|l| on_first_iteration_only(cx, *l, done));
    let region = lp
        .filter(|_| first_only.is_none())
        .and_then(|l| l.child_by_field_name("body"))
        .filter(|lb| goes_round_after(cx, *lb, done))
        .unwrap_or(body);
    let is_release = |n: Node<'a>| {
        syntax::descendants(n, true)
            .into_iter()
            .any(|m| wg_method(cx, m, &["Done"]).is_some_and(|(w, _)| w == wg))
    };
    let fails = |n: Node| crate::testfail::is_failure_stmt(cx, n);
    let tracker = Tracker {
        is_start: None,
        is_release: &is_release,
        guarded_release: None,
        fails_test: Some(&fails),
        src: cx.src(),
    };
    let exits = paths::leaking_exits(region, &tracker);
    let hint = wg_go_hint(cx, wg);
    if let (Some(lp), true) = (
        first_only,
        exits.iter().all(|e| {
            syntax::contains(body, *e)
                && !matches!(
                    e.kind(),
                    "return_statement"
                        | "break_statement"
                        | "continue_statement"
                        | "goto_statement"
                )
        }),
    ) {
        // Only the end of the goroutine is reached without it: by a loop that ends before
        // its first iteration. Whether it can is the condition's business: a warning.
        if !exits.is_empty() {
            let cond = lp
                .child_by_field_name("condition")
                .or_else(|| {
                    syntax::named_children(lp)
                        .into_iter()
                        .find(|c| c.kind() == "for_clause")
                        .and_then(|c| c.child_by_field_name("condition"))
                })
                .map(|c| format!(" (when `{}` is false at once)", cx.text(c)))
                .unwrap_or_default();
            return Some(Finding {
                node: done,
                message: format!(
                    "`{wg}.Done()` runs on the first iteration of the loop at line {} only: if the loop ends before it{cond}, the goroutine ends without Done",
                    cx.line(lp)
                ),
                // A ready signal: deferring it to the goroutine's end would change when
                // it fires, so no fix and no `wg.Go`.
                help: format!("call `{wg}.Done()` before the loop, so that no path skips it"),
                severity: Some(crate::diagnostic::Severity::Warning),
            })
            .map(|f| (f, false));
        }
    }
    if let Some(first) = exits.first() {
        let how = match first.kind() {
            "return_statement" => "the `return`",
            "continue_statement" => "the `continue`",
            "break_statement" => "the `break`",
            _ => "the path reaching the end",
        };
        let lines: Vec<String> = exits.iter().map(|e| cx.line(*e).to_string()).collect();
        return Some(Finding {
            node: done,
            message: format!(
                "`{wg}.Done()` is not deferred and {how} at line {} skips it (exits without Done: line {})",
                cx.line(*first),
                lines.join(", ")
            ),
            help: format!("write `defer {wg}.Done()` at the start of the goroutine.{hint}"),
            severity: None,
        })
        .map(|f| (f, true));
    }
    if recovers {
        return Some(Finding {
            node: done,
            message: format!(
                "`{wg}.Done()` is not deferred: a panic recovered by this goroutine's deferred `recover` skips it"
            ),
            help: format!("write `defer {wg}.Done()` at the start of the goroutine.{hint}"),
            severity: None,
        })
        .map(|f| (f, true));
    }
    None
}

/// `defer func() { ... recover() ... }()`.
fn is_deferred_recover(cx: &Checker, n: Node) -> bool {
    n.kind() == "defer_statement"
        && syntax::stmt_func_literal(n).is_some_and(|lit| {
            syntax::descendants(lit, true).into_iter().any(|m| {
                syntax::Call::of(m)
                    .is_some_and(|c| c.receiver.is_none() && cx.text(c.name) == "recover")
            })
        })
}

/// Whether a path from `done` reaches the end of the loop body `lb` or a `continue`, that is
/// goes round the loop again.
fn goes_round_after<'a>(cx: &Checker<'a>, lb: Node<'a>, done: Node<'a>) -> bool {
    let Some(stmt) = done.parent().filter(|p| p.kind() == "expression_statement") else {
        return true;
    };
    let is_start = |n: Node| n.id() == stmt.id();
    let never = |_: Node| false;
    let tracker = Tracker {
        is_start: Some(&is_start),
        is_release: &never,
        guarded_release: None,
        fails_test: None,
        src: cx.src(),
    };
    paths::leaking_exits(lb, &tracker)
        .iter()
        .any(|e| !matches!(e.kind(), "return_statement" | "break_statement"))
}

/// Whether `done` runs on a loop's first iteration only: under `if i == 0`, where `i` is the
/// loop's own counter (`for i := 0; ...; i++`), in the `then` branch.
fn on_first_iteration_only(cx: &Checker, lp: Node, done: Node) -> bool {
    let Some(clause) = syntax::named_children(lp)
        .into_iter()
        .find(|c| c.kind() == "for_clause")
    else {
        return false;
    };
    let counter = clause
        .child_by_field_name("init_statement")
        .filter(|i| i.kind() == "short_var_declaration")
        .filter(|i| {
            i.child_by_field_name("right")
                .is_some_and(|r| cx.text(r).trim() == "0")
        })
        .and_then(|i| i.child_by_field_name("left"))
        .map(|l| cx.text(l).trim().to_string());
    let Some(counter) = counter else {
        return false;
    };
    let mut cur = done.parent();
    while let Some(n) = cur {
        if n.id() == lp.id() {
            return false;
        }
        if n.kind() == "if_statement"
            && n.child_by_field_name("body")
                .is_some_and(|b| syntax::contains(b, done))
            && n.child_by_field_name("condition").is_some_and(|c| {
                let t = cx.text(syntax::unparen(c)).replace(' ', "");
                t == format!("{counter}==0") || t == format!("0=={counter}")
            })
        {
            return true;
        }
        cur = n.parent();
    }
    false
}
