//! G302 waitgroup-done-twice.

use std::collections::HashMap;

use tree_sitter::Node;

use super::wg_method;
use crate::checker::{Checker, Finding};
use crate::syntax;

/// A file this rule can report in contains one of these (a Done call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[".Done("];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["panic: sync: negative WaitGroup counter"];

pub const DOC: &str = r#"# G302 waitgroup-done-twice

## What it does
Reports a function that calls `Done` on the same WaitGroup more than once on one path: an
explicit `wg.Done()` plus a `defer wg.Done()`, or two `wg.Done()` calls in sequence.

## Why is this bad?
Each `Done` subtracts one. Two `Done`s for one `Add` drive the counter below zero and the
program crashes with `panic: sync: negative WaitGroup counter`; if another goroutine's `Add`
hides the extra `Done`, `Wait` returns while that goroutine is still running.

## Example
```go
go func() {
    defer wg.Done()
    if err := work(); err != nil {
        wg.Done() // second Done on this path
        return
    }
}()
```

## Use instead
```go
go func() {
    defer wg.Done()
    if err := work(); err != nil {
        return
    }
}()
```

## Known limits
Calls are matched by the WaitGroup expression's text within one function. `Done` calls in
different branches of an `if` or `switch` are one per path and are not reported.

## References
- https://pkg.go.dev/sync#WaitGroup.Done
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for f in cx.index.functions_calling(cx.src(), &["Done"]) {
        let Some(body) = f.child_by_field_name("body") else {
            continue;
        };
        let mut deferred: HashMap<String, Node> = HashMap::new();
        let mut plain: Vec<(String, Node)> = Vec::new();
        for n in syntax::descendants(body, false) {
            let Some((wg, call)) = wg_method(cx, n, &["Done"]) else {
                continue;
            };
            let in_defer = call
                .node
                .parent()
                .is_some_and(|p| p.kind() == "defer_statement");
            if in_defer {
                deferred.entry(wg).or_insert(call.node);
            } else {
                plain.push((wg, call.node));
            }
        }
        for (wg, node) in &plain {
            if let Some(d) = deferred.get(wg) {
                if syntax::is_before(*d, *node) {
                    findings.push(Finding {
                        node: *node,
                        message: format!(
                            "`{wg}.Done()` is called here and again by `defer {wg}.Done()` at line {}",
                            cx.line(*d)
                        ),
                        help: format!("remove this call: the deferred `{wg}.Done()` already runs on every return"),
                        severity: None,
                    });
                }
            }
        }
        // Two plain Done calls as statements of the same block, with no exit between.
        for (i, (wg, a)) in plain.iter().enumerate() {
            for (wg2, b) in &plain[i + 1..] {
                if wg != wg2 {
                    continue;
                }
                let (Some(sa), Some(sb)) = (a.parent(), b.parent()) else {
                    continue;
                };
                if sa.parent().map(|p| p.id()) != sb.parent().map(|p| p.id()) {
                    continue;
                }
                let exits_between = sa.next_named_sibling().is_some_and(|mut s| loop {
                    if s.id() == sb.id() {
                        break false;
                    }
                    if matches!(
                        s.kind(),
                        "return_statement"
                            | "break_statement"
                            | "continue_statement"
                            | "goto_statement"
                    ) || syntax::descendants(s, false)
                        .iter()
                        .any(|n| wg_method(cx, *n, &["Add"]).is_some())
                    {
                        break true;
                    }
                    match s.next_named_sibling() {
                        Some(n) => s = n,
                        None => break true,
                    }
                });
                if !exits_between {
                    findings.push(Finding {
                        node: *b,
                        message: format!("`{wg}.Done()` is called again; the first call is at line {}", cx.line(*a)),
                        help: "call Done once per Add; prefer a single `defer wg.Done()` at the top of the goroutine".into(),
                        severity: None,
                    });
                }
            }
        }
    }
    for f in findings {
        cx.report(f);
    }
}
