//! G105 goroutine-pins-large-capture.

use tree_sitter::Node;

use super::loops;
use crate::checker::{Checker, Finding};
use crate::resolve::{self, Decl};
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (a goroutine on a function literal): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["go func"];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G105 goroutine-pins-large-capture

## What it does
Reports a goroutine that never ends (it runs a loop with no way out) and whose closure
captures a large allocation (`make([]T, n)` with a constant size of 64 KiB or more, or the
result of `io.ReadAll`/`os.ReadFile`) of which the loop reads only a part: an element
(`data[0]`) or its length (`len(data)`).

## Why is this bad?
While the loop can still reach the variable, the whole allocation stays reachable: a
goroutine that runs forever to read one byte of a 1 MiB buffer keeps the full MiB for its
whole life, one copy per goroutine.

What Go does not keep: a capture the goroutine stops using. The compiler tracks which stack
slots are live, and once the closure's last use of a variable is behind it, the collector
no longer sees the variable from that goroutine. A buffer used only before the endless loop
is freed (the lab's `ch2-closure` case measures both: about 1 MiB retained per goroutine
when the loop reads `data[0]`, nothing when only the setup uses it). So that shape is not
reported.

Note: the reference (2.5) blames "circular references" that the GC cannot free. Go's
collector traces reachability and frees cycles; the defect is a goroutine that never ends
while holding data it needs only a sliver of. A goroutine that finishes (the reference's own
example sleeps one second and returns) releases its captures and is not reported.

## Example
```go
data := load() // 1 MiB
go func() {
    for range time.Tick(time.Minute) {
        report(data[0]) // keeps all of data alive forever
    }
}()
```

## Use instead
```go
data := load()
version := data[0] // copy out what the goroutine needs
go func() {
    for range time.Tick(time.Minute) {
        report(version)
    }
}()
```

## Known limits
The size must be a constant expression goguard can evaluate (`1 << 20`, `1024 * 1024`,
`1048576`). A loop that passes the whole buffer to a function is assumed to need it.

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
            let uses: Vec<Node> = syntax::descendants(*lp, true)
                .into_iter()
                .filter(|m| m.kind() == "identifier" && cx.text(*m) == name)
                .collect();
            // Not used in the loop: Go's stack liveness lets the collector free it once the
            // setup is done. Used whole in the loop: the goroutine needs it.
            let Some(first) = uses.first() else { continue };
            if !uses.iter().all(|u| partial_use(cx, *u)) {
                continue;
            }
            findings.push(Finding {
                node: *first,
                message: format!(
                    "goroutine never ends (loop at line {}) and reads only part of `{name}` in it (`{}`), but that keeps all of `{name}` ({size}, allocated at line {}) in memory for the goroutine's whole life",
                    cx.line(*lp),
                    first
                        .parent()
                        .map(|p| match p.kind() {
                            "arguments" => p.parent().unwrap_or(p),
                            _ => p,
                        })
                        .map_or(name, |p| cx.text(p)),
                    cx.line(v)
                ),
                help: format!("copy what the loop needs out of `{name}` into a new variable before the `go` statement, and capture that instead"),
                severity: None,
            });
        }
    }
    for f in findings {
        cx.report(f);
    }
}

/// `x[i]` or `len(x)`/`cap(x)`: a use that needs a sliver of `x`, not all of it.
fn partial_use(cx: &Checker, ident: Node) -> bool {
    let Some(parent) = ident.parent() else {
        return false;
    };
    match parent.kind() {
        "index_expression" => parent.child_by_field_name("operand") == Some(ident),
        "arguments" => parent
            .parent()
            .and_then(|call| call.child_by_field_name("function"))
            .is_some_and(|f| matches!(cx.text(f), "len" | "cap")),
        _ => false,
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
