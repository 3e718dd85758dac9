//! G102 goroutine-ignores-context.

use tree_sitter::Node;

use super::loops;
use crate::checker::{Checker, Finding};
use crate::syntax;

pub const DOC: &str = r#"# G102 goroutine-ignores-context

## What it does
Reports a goroutine that has a `context.Context` in reach (a parameter of its function, or
of the function that started it, which the closure can capture) but runs a loop that never
ends: `for { }`, `for { select { ... } }` or `for range ticker.C`, with no `ctx.Done()` or
`ctx.Err()` check, no `return` and no `break` out of the loop.

## Why is this bad?
Cancellation in Go is cooperative: cancelling a context only closes its `Done` channel.
A goroutine that never looks at it keeps running after its caller has given up, with
everything it references. The reference (2.2) measures it: with cancellation honoured the
goroutine exits within about 100 ms; without, it runs forever and the heap keeps growing.

## Example
```go
func poll(ctx context.Context) {
    ticker := time.NewTicker(time.Second)
    defer ticker.Stop()
    for range ticker.C { // ctx is never consulted
        refresh()
    }
}
```

## Use instead
```go
func poll(ctx context.Context) {
    ticker := time.NewTicker(time.Second)
    defer ticker.Stop()
    for {
        select {
        case <-ctx.Done():
            return
        case <-ticker.C:
            refresh()
        }
    }
}
```

## Known limits
Only goroutines started with `go` on a function literal or a function of this file are
checked. A loop that ends by a call that never returns (`panic`, `os.Exit`) counts as having
an exit. A loop that watches another stop channel (`<-done` leading to `return`) has an exit
and is not reported.

## References
- https://pkg.go.dev/context
- https://go.dev/blog/context
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for &go in &cx.index.go_stmts {
        let Some(f) = super::goroutine_function(cx, go) else {
            continue;
        };
        let Some(ctx_name) = context_in_reach(cx, f, go) else {
            continue;
        };
        let Some(body) = f.child_by_field_name("body") else {
            continue;
        };
        for n in syntax::descendants(body, false) {
            if n.kind() != "for_statement" || !loops::runs_forever(cx, n) || loops::has_exit(cx, n)
            {
                continue;
            }
            let checks_ctx = syntax::descendants(n, true).into_iter().any(|m| {
                m.kind() == "selector_expression"
                    && m.child_by_field_name("field")
                        .is_some_and(|fl| matches!(cx.text(fl), "Done" | "Err"))
            });
            if checks_ctx {
                continue;
            }
            findings.push(Finding {
                node: loops::for_keyword(n),
                message: format!(
                    "goroutine started at line {} loops forever and never checks `{ctx_name}.Done()`: cancelling `{ctx_name}` does not stop it",
                    cx.line(go)
                ),
                help: format!("select on `<-{ctx_name}.Done()` in the loop and return when it fires"),
                severity: None,
            });
        }
    }
    for f in findings {
        cx.report(f);
    }
}

/// The name of a context the goroutine's function can see: its own parameter, or (for a
/// literal) a context parameter or variable of an enclosing function.
fn context_in_reach<'a>(cx: &Checker<'a>, f: Node<'a>, go: Node<'a>) -> Option<&'a str> {
    let src = cx.src();
    let own = syntax::params(f, src)
        .into_iter()
        .find(|(_, t)| cx.is_context_type(*t));
    if let Some((name, _)) = own {
        return Some(name);
    }
    if f.kind() != "function_literal" {
        return None;
    }
    let mut outer = cx.enclosing_function(go);
    while let Some(o) = outer {
        if let Some((name, _)) = syntax::params(o, src)
            .into_iter()
            .find(|(n, t)| !n.is_empty() && cx.is_context_type(*t))
        {
            return Some(name);
        }
        outer = cx.enclosing_function(o);
    }
    None
}
