//! G203 spinning-select-default.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::syntax;

/// A file this rule can report in contains one of these (a select): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["select"];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G203 spinning-select-default

## What it does
Reports a loop whose body is a `select` with an empty `default` and nothing else that
waits: the loop polls its channels as fast as the CPU allows.

## Why is this bad?
`default` makes a select non-blocking. In a loop with nothing else that blocks, the
goroutine never sleeps: it burns a whole core while waiting, competes with the goroutines
doing real work, and hides in profiles as "busy". Remove the default to block until a case
is ready.

## Example
```go
for {
    select {
    case job := <-jobs:
        run(job)
    case <-ctx.Done():
        return
    default: // spins
    }
}
```

## Use instead
```go
for {
    select {
    case job := <-jobs:
        run(job)
    case <-ctx.Done():
        return
    }
}
```

## Known limits
Only `for { }` and `for cond { }` loops are reported (a `range` or counting loop ends), and
only those whose body is the select alone; a loop that also sleeps, calls
something or receives elsewhere is assumed to pace itself. Benchmarks (`func BenchmarkXxx` in a test file) are not reported:
a busy core is what they measure.

## References
- https://go.dev/ref/spec#Select_statements
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for &lp in &cx.index.for_stmts {
        // Only `for { }` and `for cond { }` can poll without end: a range over a slice, map
        // or number, or a counting loop, runs its select a bounded number of times (and a
        // range over a channel blocks on its receive).
        if syntax::named_children(lp)
            .iter()
            .any(|c| matches!(c.kind(), "range_clause" | "for_clause"))
        {
            continue;
        }
        // In a benchmark, keeping a core busy is the workload being measured.
        if in_benchmark(cx, lp) {
            continue;
        }
        let Some(body) = lp.child_by_field_name("body") else {
            continue;
        };
        let stmts = syntax::block_statements(body);
        let [sel] = stmts.as_slice() else { continue };
        if sel.kind() != "select_statement" {
            continue;
        }
        let Some(default) = syntax::named_children(*sel)
            .into_iter()
            .find(|c| c.kind() == "communication_clause" && syntax::is_default_clause(*c))
        else {
            continue;
        };
        let empty = syntax::clause_statements(default)
            .into_iter()
            .all(|s| matches!(s.kind(), "continue_statement" | "empty_statement"));
        if !empty {
            continue;
        }
        findings.push(Finding {
            node: default.child(0).unwrap_or(default),
            message: format!("empty `default` makes the select at line {} non-blocking, so the loop at line {} spins on a CPU core", cx.line(*sel), cx.line(lp)),
            help: "remove the empty `default` so the select blocks until a case is ready".into(),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

/// Whether `node` is in a `func BenchmarkXxx` of a test file (or a closure inside one).
fn in_benchmark(cx: &Checker, node: Node) -> bool {
    if !crate::testfail::is_test_file(cx) {
        return false;
    }
    let mut f = cx.enclosing_function(node);
    while let Some(func) = f {
        if func.kind() == "function_declaration" {
            return func
                .child_by_field_name("name")
                .is_some_and(|n| cx.text(n).starts_with("Benchmark"));
        }
        f = cx.enclosing_function(func);
    }
    false
}
