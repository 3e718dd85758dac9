//! G105 goroutine-pins-large-capture.

use tree_sitter::Node;

use super::loops;
use crate::checker::{Checker, Finding};
use crate::resolve::{self, Decl};
use crate::syntax::{self, Call};

pub const DOC: &str = r#"# G105 goroutine-pins-large-capture

## What it does
Reports a goroutine that never ends (it runs a loop with no way out) and whose closure
captures a large allocation (`make([]T, n)` with a constant size of 64 KiB or more, or the
result of `io.ReadAll`/`os.ReadFile`) that it uses only outside that loop, or only as
`_ = x`.

## Why is this bad?
A running goroutine's stack is a GC root, so every variable its closure captures stays
reachable as long as it runs. A goroutine that runs forever keeps the buffer forever, even
though it stopped needing it after setup.

Note: the reference (2.5) blames "circular references" that the GC cannot free. Go's
collector traces reachability and frees cycles; the defect is the goroutine that never ends
while holding data it no longer needs. A goroutine that finishes (the reference's own
example sleeps one second and returns) releases its captures and is not reported.

## Example
```go
data := make([]byte, 1<<20)
parse(data)
go func() {
    _ = data // keeps 1 MiB alive forever
    for range time.Tick(time.Minute) {
        report()
    }
}()
```

## Use instead
```go
data := make([]byte, 1<<20)
parse(data)
go func() {
    for range time.Tick(time.Minute) {
        report()
    }
}()
```
If the goroutine needs only part of it, copy that part into a new variable first.

## Known limits
The size must be a constant expression goguard can evaluate (`1 << 20`, `1024 * 1024`,
`1048576`).

## References
- https://go.dev/doc/gc-guide
"#;

const LARGE: i64 = 64 * 1024;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for &go in &cx.index.go_stmts {
        let Some(lit) = syntax::stmt_func_literal(go) else {
            continue;
        };
        let Some(body) = lit.child_by_field_name("body") else {
            continue;
        };
        let nodes = syntax::descendants(body, true);
        let Some(lp) = nodes.iter().find(|n| {
            n.kind() == "for_statement" && loops::runs_forever(cx, **n) && !loops::has_exit(cx, **n)
        }) else {
            continue;
        };
        let mut seen = Vec::new();
        for n in &nodes {
            if n.kind() != "identifier" || seen.contains(&cx.text(*n)) {
                continue;
            }
            let name = cx.text(*n);
            // Captured: declared outside the literal.
            let Some(Decl::Value(v)) = resolve::declaration(cx, *n, name) else {
                continue;
            };
            if syntax::contains(lit, v) {
                continue;
            }
            let Some(size) = large_allocation(cx, v) else {
                continue;
            };
            seen.push(name);
            let used_in_loop = syntax::descendants(*lp, true)
                .iter()
                .any(|m| m.kind() == "identifier" && cx.text(*m) == name);
            if used_in_loop {
                continue;
            }
            findings.push(Finding {
                node: *n,
                message: format!(
                    "goroutine never ends (loop at line {}) and captures `{name}` ({size}, allocated at line {}), which it does not use in that loop: it stays in memory for the goroutine's whole life",
                    cx.line(*lp),
                    cx.line(v)
                ),
                help: format!("do not capture `{name}` in the long-lived goroutine (copy out what it needs, or set `{name} = nil` after use)"),
                severity: None,
            });
        }
    }
    for f in findings {
        cx.report(f);
    }
}

/// A description of the allocation when it is large.
fn large_allocation(cx: &Checker, v: Node) -> Option<String> {
    let call = Call::of(syntax::unparen(v))?;
    let name = cx.text(call.name);
    if call.receiver.is_none() && name == "make" {
        let size = eval(cx, *call.args.get(1)?)?;
        let elem = call.args.first().map(|t| cx.text(*t)).unwrap_or("");
        let bytes = size
            * if elem.ends_with("byte") || elem.ends_with("uint8") {
                1
            } else {
                8
            };
        return (bytes >= LARGE).then(|| format!("{} KiB", bytes / 1024));
    }
    if cx.is_pkg_call(&call, "io", &["ReadAll"]) || cx.is_pkg_call(&call, "os", &["ReadFile"]) {
        return Some(format!(
            "the result of {}",
            cx.text(call.node.child_by_field_name("function")?)
        ));
    }
    None
}

/// Evaluates a small constant integer expression.
fn eval(cx: &Checker, e: Node) -> Option<i64> {
    let e = syntax::unparen(e);
    match e.kind() {
        "int_literal" => cx.text(e).replace('_', "").parse().ok(),
        "binary_expression" => {
            let l = eval(cx, e.child_by_field_name("left")?)?;
            let r = eval(cx, e.child_by_field_name("right")?)?;
            match cx.text(e.child_by_field_name("operator")?) {
                "<<" if r < 62 => Some(l << r),
                "*" => l.checked_mul(r),
                "+" => l.checked_add(r),
                _ => None,
            }
        }
        _ => None,
    }
}
