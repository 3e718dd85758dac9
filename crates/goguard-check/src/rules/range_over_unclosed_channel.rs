//! G101 range-over-unclosed-channel.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::paths::{self, Tracker};
use crate::resolve::{self, Decl};
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (a channel): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["chan"];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["chan receive"];

pub const DOC: &str = r#"# G101 range-over-unclosed-channel

## What it does
Reports `for v := range ch` over a channel made in this package when nothing closes it, or
when its producer closes it only on some paths: an early `return`, an error branch, or a
panic before a `close` that is not deferred.

## Why is this bad?
`for range` over a channel ends only when the channel is closed and drained. If the
producer finishes without closing it, the ranging goroutine waits forever: a leaked
goroutine, and everything it references stays in memory. This is the reference's 2.1
(a sender that panicked before `defer close`, a branch that never wrote, a context that
timed out without closing).

## Example
```go
func produce(out chan<- int, items []int) error {
    for _, it := range items {
        if it < 0 {
            return errBad // out is never closed on this path
        }
        out <- it
    }
    close(out)
    return nil
}
```

## Use instead
```go
func produce(out chan<- int, items []int) error {
    defer close(out) // closed on every path, panics included
    for _, it := range items {
        if it < 0 {
            return errBad
        }
        out <- it
    }
    return nil
}
```

## Known limits
Only channels made with `make` in a function of this package are followed, through
goroutine closures and calls to package functions. A channel handed to another package's
function is assumed to be closed there. A channel stored in a struct field is not followed
(long-lived worker loops over a field channel are often meant to run for the life of the
program).

## References
- https://go.dev/ref/spec#For_range ("For channels, the iteration values produced are the successive values sent on the channel until the channel is closed")
- https://go.dev/blog/pipelines
"#;

/// Where a channel gets closed, if we can tell.
enum Fate<'a> {
    /// `close` calls found: (the close call, the function containing it).
    Closed(Vec<(Node<'a>, Node<'a>)>),
    /// Never closed and never handed to code we cannot see.
    Never,
    /// Handed to code we cannot see.
    Unknown,
}

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for &for_stmt in &cx.index.for_stmts {
        let Some(ranged) = syntax::range_expr(for_stmt) else {
            continue;
        };
        let ranged = syntax::unparen(ranged);
        if ranged.kind() != "identifier" {
            continue;
        }
        let name = cx.text(ranged);
        let Some(Decl::Value(v)) = resolve::declaration(cx, ranged, name) else {
            continue;
        };
        if !is_chan_make(cx, v) {
            continue;
        }
        // The function that made the channel owns it; look at all code it reaches.
        let Some(owner) = cx.enclosing_function(v) else {
            continue;
        };
        let Some(body) = owner.child_by_field_name("body") else {
            continue;
        };
        let decl_line = cx.line(v);
        match fate(cx, body, name, 0) {
            Fate::Unknown => {}
            Fate::Never => findings.push(Finding {
                node: ranged,
                message: format!("`for range {name}` waits for `{name}` to be closed, but nothing closes it (made at line {decl_line})"),
                help: format!("have the producer `defer close({name})` once it has sent everything"),
                severity: None,
            }),
            Fate::Closed(closes) => {
                for (close, func) in closes {
                    if close.parent().is_some_and(|p| p.kind() == "defer_statement") {
                        continue;
                    }
                    let Some(fbody) = func.child_by_field_name("body") else { continue };
                    let close_id = close.id();
                    let is_release = |n: Node| syntax::descendants(n, true).iter().any(|m| m.id() == close_id);
                    // Nothing ranges before the range loop starts (here, or in a goroutine
                    // started here) or, when it runs elsewhere, before the channel is made:
                    // a return before that point skips nothing.
                    // A range in the closing goroutine itself is not left waiting by it.
                    if cx.enclosing_function(for_stmt).map(|f| f.id()) == Some(func.id()) {
                        continue;
                    }
                    let start = if syntax::contains(fbody, for_stmt) {
                        statement_in(func, for_stmt)
                    } else if syntax::contains(fbody, v) {
                        statement_in(func, v)
                    } else {
                        None
                    };
                    let start_id = start.map(|n| n.id());
                    let is_start = |n: Node| Some(n.id()) == start_id;
                    let fails = |n: Node| crate::testfail::is_failure_stmt(cx, n);
                    let tracker = Tracker {
                        is_start: start.is_some().then_some(&is_start as &dyn Fn(Node) -> bool),
                        is_release: &is_release,
        guarded_release: None,
        fails_test: Some(&fails),
                        src: cx.src(),
                    };
                    let exits: Vec<_> = paths::leaking_exits(fbody, &tracker)
                        .into_iter()
                        .filter(|e| e.kind() == "return_statement")
                        .collect();
                    if let Some(first) = exits.first() {
                        findings.push(Finding {
                            node: ranged,
                            message: format!(
                                "`for range {name}` ends only when `{name}` is closed, but the `return` at line {} skips `close` at line {}",
                                cx.line(*first),
                                cx.line(close)
                            ),
                            help: format!("close the channel with `defer close(...)` at the start of the producer (line {})", cx.line(func)),
                            severity: Some(crate::diagnostic::Severity::Warning),
                        });
                        break;
                    }
                }
            }
        }
    }
    for f in findings {
        cx.report(f);
    }
}

/// The statement of `func`'s own body (not of a function literal in it) that holds `x`.
fn statement_in<'a>(func: Node<'a>, x: Node<'a>) -> Option<Node<'a>> {
    let mut n = x;
    loop {
        let p = n.parent()?;
        if p.kind() == "block" && syntax::enclosing_function(p).map(|f| f.id()) == Some(func.id()) {
            return Some(n);
        }
        if p.id() == func.id() {
            return None;
        }
        n = p;
    }
}

fn is_chan_make(cx: &Checker, v: Node) -> bool {
    Call::of(syntax::unparen(v)).is_some_and(|c| {
        c.receiver.is_none()
            && cx.text(c.name) == "make"
            && c.args.first().is_some_and(|t| t.kind() == "channel_type")
    })
}

/// Follows channel `name` through `body` (closures included) and the package functions it
/// is passed to (to a small depth).
fn fate<'a>(cx: &Checker<'a>, body: Node<'a>, name: &str, depth: usize) -> Fate<'a> {
    let mut closes = Vec::new();
    let mut unknown = false;
    for n in syntax::descendants(body, true) {
        if n.kind() != "identifier" || cx.text(n) != name {
            continue;
        }
        let Some(parent) = n.parent() else { continue };
        match parent.kind() {
            "arguments" => {
                let Some(call) = parent.parent().and_then(Call::of) else {
                    continue;
                };
                let callee = cx.text(call.name);
                if call.receiver.is_none() && callee == "close" {
                    if let Some(f) = cx.enclosing_function(call.node) {
                        closes.push((call.node, f));
                    }
                    continue;
                }
                if call.receiver.is_none() && matches!(callee, "len" | "cap") {
                    continue;
                }
                let pos = call.args.iter().position(|a| a.id() == n.id());
                let target = if call.receiver.is_none() {
                    cx.local_func(callee)
                } else {
                    None
                };
                match (target, pos) {
                    (Some(decl), Some(pos)) if depth < 3 => {
                        let params = syntax::params(decl, cx.src());
                        let Some((pname, _)) = params.get(pos) else {
                            unknown = true;
                            continue;
                        };
                        let Some(pbody) = decl.child_by_field_name("body") else {
                            unknown = true;
                            continue;
                        };
                        match fate(cx, pbody, pname, depth + 1) {
                            Fate::Closed(c) => closes.extend(c),
                            Fate::Never => {}
                            Fate::Unknown => unknown = true,
                        }
                    }
                    _ => unknown = true,
                }
            }
            // Stored, returned, or aliased: it may be closed elsewhere.
            "expression_list" | "keyed_element" | "literal_value" | "return_statement"
            | "composite_literal" => {
                let gp = parent.parent().map(|p| p.kind());
                let is_lhs_of_decl = matches!(gp, Some("short_var_declaration" | "var_spec"))
                    && parent
                        .parent()
                        .and_then(|p| p.child_by_field_name("left"))
                        .map(|l| l.id())
                        == Some(parent.id());
                if !is_lhs_of_decl {
                    unknown = true;
                }
            }
            _ => {}
        }
    }
    if !closes.is_empty() {
        Fate::Closed(closes)
    } else if unknown {
        Fate::Unknown
    } else {
        Fate::Never
    }
}
