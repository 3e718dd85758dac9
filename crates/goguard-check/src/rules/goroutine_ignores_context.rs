//! G102 goroutine-ignores-context.

use tree_sitter::Node;

use super::loops;
use crate::checker::{Checker, Finding};
use crate::syntax;

/// A file this rule can report in contains one of these (the context package): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[r#""context""#];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["select"];

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
and is not reported. A context that the package shows is never cancelled is not reported
either: the parameter of an unexported function that every caller in the package passes
`context.Background()` or `context.TODO()` (a command's body), or of one nothing calls.

## References
- https://pkg.go.dev/context
- https://go.dev/blog/context
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    // Goroutines started here, and functions of this file started as goroutines elsewhere
    // (their own context parameter is the one in reach).
    let mut starts: Vec<(Node, Option<Node>, String)> = cx
        .index
        .go_stmts
        .iter()
        .filter_map(|&go| {
            let f = super::goroutine_function(cx, go)?;
            Some((f, Some(go), format!("line {}", cx.line(go))))
        })
        .collect();
    for (f, site) in super::started_elsewhere(cx) {
        if !starts.iter().any(|(g, _, _)| g.id() == f.id()) {
            starts.push((f, None, site));
        }
    }
    for (f, go, site) in starts {
        let reach = match go {
            Some(go) => context_in_reach(cx, f, go),
            None => own_context(cx, f).map(|name| (name, f)),
        };
        let Some((ctx_name, owner)) = reach else {
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
            if checks_ctx || never_cancelled(cx, owner, ctx_name) {
                continue;
            }
            findings.push(Finding {
                node: loops::for_keyword(n),
                message: format!(
                    "goroutine started at {site} loops forever and never checks `{ctx_name}.Done()`: cancelling `{ctx_name}` does not stop it"
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

/// The name of a context the goroutine's function can see, and the function that declares
/// it: its own parameter, or (for a literal) a context parameter of an enclosing function.
fn context_in_reach<'a>(
    cx: &Checker<'a>,
    f: Node<'a>,
    go: Node<'a>,
) -> Option<(&'a str, Node<'a>)> {
    let src = cx.src();
    if let Some(name) = own_context(cx, f) {
        return Some((name, f));
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
            return Some((name, o));
        }
        outer = cx.enclosing_function(o);
    }
    None
}

/// The name of `f`'s own context parameter.
fn own_context<'a>(cx: &Checker<'a>, f: Node<'a>) -> Option<&'a str> {
    syntax::params(f, cx.src())
        .into_iter()
        .find(|(_, t)| cx.is_context_type(*t))
        .map(|(name, _)| name)
}

/// Whether the package shows that the context parameter `ctx` of `owner` is never cancelled:
/// `owner` is unexported (no caller outside the package), is not used as a function value,
/// and every call of it passes `context.Background()` or `context.TODO()` there (a command's
/// body run once per process). An unexported function nothing calls starts nothing either.
/// Cancelling such a context cannot happen, so the goroutine's lifetime is not the context's.
fn never_cancelled(cx: &Checker, owner: Node, ctx: &str) -> bool {
    if !matches!(owner.kind(), "function_declaration" | "method_declaration") {
        return false;
    }
    let Some(name) = owner.child_by_field_name("name").map(|n| cx.text(n)) else {
        return false;
    };
    if name.starts_with(|c: char| c.is_uppercase()) {
        return false;
    }
    let Some(index) = syntax::params(owner, cx.src())
        .iter()
        .position(|(n, _)| *n == ctx)
    else {
        return false;
    };
    let callers = crate::callgraph::callers(cx.pkg, cx.file_in_pkg, owner);
    // Every use a known call (none as a value, none on a receiver of unknown type), each
    // passing a context nothing can cancel.
    callers.all_known()
        && callers.sites.iter().all(|site| {
            let src = cx.pkg.files[site.file].text.as_str();
            site.node
                .child_by_field_name("arguments")
                .and_then(|a| syntax::named_children(a).get(index).copied())
                .is_some_and(|a| {
                    matches!(
                        syntax::normalize(&src[a.byte_range()]).as_str(),
                        "context.Background()" | "context.TODO()"
                    )
                })
        })
}
