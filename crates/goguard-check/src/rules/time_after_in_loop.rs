//! G201 time-after-in-loop.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::diagnostic::Severity;
use crate::fix::{build, Edit, Fix};
use crate::gomod::GoVersion;
use crate::syntax;

/// A file this rule can report in contains one of these (the time package): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &[r#""time""#];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G201 time-after-in-loop

## What it does
Reports `time.After(d)` called on every iteration of a loop (typically as a `select` case)
when the loop can go round again while that timer is still pending. Not reported:
- the timeout case leaves the loop (a `return`, or a `break` out of it): at most one timer
  fires per loop run;
- every other case of the select leaves the loop: the loop only goes round after the timer
  fired (`case <-time.After(d): work()` beside `case <-stop: return`);
- the timer is made again only once the last one is gone: `v = time.After(d)` under
  `if v == nil`, or in the case that received from `v`;
- the loop runs a constant, small number of times (`for i := 0; i < 3; i++`, `for range 2`:
  at most 16), which is that many calls written out, not a pile of timers.

## Why is this bad?
Each call creates a new timer. When another case wins, that timer is abandoned:

- **go.mod `go 1.22` or older, built by a Go 1.22-1.26 toolchain**: it stays in the
  runtime's timer heap until it fires, so a busy loop with a long timeout holds thousands of
  live timers (memory, and timer-heap work on every iteration). This is a real leak:
  severity warning. (Go 1.27 removed that old behaviour, `asynctimerchan`, from the
  toolchain: built by Go 1.27 or later, even a `go 1.22` module gets the new timers. goguard
  reads go.mod, not the toolchain you build with, so it keeps the warning; the lab's
  `ch3-time-after` case measures what your toolchain does.)
- **`go 1.23` or newer**: unreferenced timers are collected at once, so what remains is an
  allocation per iteration: a performance note (severity info, hidden unless you pass
  `--show-info` or select G201 explicitly).

Note: the reference (3.1) says each `time.After` starts a goroutine. Since Go 1.14 timers
live in per-P heaps; no goroutine is created.

## Example
```go
for {
    select {
    case msg := <-in:
        handle(msg)
    case <-time.After(30 * time.Second): // a new timer per message
        log.Println("idle")
    }
}
```

## Use instead
```go
idle := time.NewTimer(30 * time.Second)
defer idle.Stop()
for {
    select {
    case msg := <-in:
        handle(msg)
    case <-idle.C:
        log.Println("idle")
    }
    idle.Reset(30 * time.Second)
}
```

## Fix
For a module before Go 1.23 (where the finding is a warning), `--fix` hoists one timer out
of the loop: `timer := time.NewTimer(d)` and `defer timer.Stop()` before it, the case reads
`<-timer.C`, and before the `select` the timer is stopped, drained if it had fired unread,
and `Reset(d)`, so each iteration waits `d` from the `select` as before. The fix is safe
when `d` runs no code (names, constants, `time.Second`) and the loop is not inside another
loop of the function (where the `defer`s would pile up); otherwise unsafe
(`--unsafe-fixes`). None is offered when `d` uses a variable declared in the loop, for a
`time.After` outside a `select` case, or on Go 1.23+ (a note, not a leak).

## Known limits
A loop whose timeout case leaves the loop is not reported even though each iteration still
allocates a timer until then.

## References
- https://go.dev/doc/go1.23#timer-changes
- https://pkg.go.dev/time#After
"#;

pub fn check(cx: &mut Checker) {
    let collected = cx.go_version().at_least(GoVersion::TIMERS_COLLECTED);
    let version = cx.module.describe();
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
    for node in cx.index.calls_named(&["After"]) {
        if cx.pkg_call(node, "time", &["After"]).is_none() {
            continue;
        }
        let Some(lp) = syntax::enclosing_loop(node) else {
            continue;
        };
        // time.After in the loop header runs once.
        if lp
            .child_by_field_name("body")
            .is_none_or(|b| !syntax::contains(b, node))
        {
            continue;
        }
        if timeout_case_leaves_loop(cx, node, lp)
            || only_the_timer_goes_round(cx, node)
            || rearmed_after_it_fired(cx, node, lp)
            || few_iterations(cx, lp)
        {
            continue;
        }
        let (message, severity) = if collected {
            (format!("`time.After` allocates a new timer on every iteration of the loop at line {} ({version}: abandoned timers are collected at once, so this costs an allocation per iteration, not a leak)", cx.line(lp)), Severity::Info)
        } else {
            (format!("`time.After` creates a new timer on every iteration of the loop at line {}; each one stays in memory until it fires ({version}: timers are collected early only for go 1.23+ modules, or by a Go 1.27+ toolchain, which removed the old behaviour)", cx.line(lp)), Severity::Warning)
        };
        let fix = if collected {
            None
        } else {
            hoist_timer(cx, node, lp)
        };
        findings.push((Finding {
            node,
            message,
            help: "create one `time.NewTimer` before the loop, `defer t.Stop()`, and `t.Reset(d)` each iteration".into(),
            severity: Some(severity),
        }, fix));
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// One `time.NewTimer` before the loop `lp` for the select case `<-time.After(d)` (`call`),
/// stopped, drained and reset before the `select` on every iteration.
fn hoist_timer(cx: &Checker, call: Node, lp: Node) -> Option<Fix> {
    let src = cx.src();
    let c = syntax::Call::of(call)?;
    let [d] = c.args.as_slice() else { return None };
    let time = cx.text(c.receiver?);
    // `case <-time.After(d):`, the whole communication of a select case.
    let recv = call
        .parent()
        .filter(|p| syntax::received_channel(*p).is_some())?;
    let mut comm = recv;
    while !syntax::is_select_communication(comm) {
        comm = comm
            .parent()
            .filter(|p| matches!(p.kind(), "receive_statement" | "expression_list"))?;
    }
    let select = comm
        .parent()?
        .parent()
        .filter(|s| s.kind() == "select_statement")?;
    let in_block = |n: Node| {
        n.parent()
            .is_some_and(|b| matches!(b.kind(), "block" | "statement_list"))
    };
    let anchor = lp
        .parent()
        .filter(|p| p.kind() == "labeled_statement")
        .unwrap_or(lp);
    if !in_block(select) || !in_block(anchor) {
        return None;
    }
    // `d` must mean the same before the loop: no name declared inside it.
    let names: Vec<&str> = syntax::descendants(*d, true)
        .into_iter()
        .filter(|n| n.kind() == "identifier")
        .map(|n| cx.text(n))
        .collect();
    if names.iter().any(|n| declared_in(cx, lp, n)) {
        return None;
    }
    let func = cx.enclosing_function(lp)?;
    let name = ["timer", "timeout", "idle"]
        .into_iter()
        .find(|n| !syntax::mentions(func, src, n))?;
    let d = cx.text(*d);
    let edits = vec![
        build::insert_before_as(
            src,
            anchor,
            lp,
            &[
                format!("{name} := {time}.NewTimer({d})"),
                format!("defer {name}.Stop()"),
            ],
        )?,
        build::insert_before(
            src,
            select,
            &[
                format!(
                    "if !{name}.Stop() {{\n\tselect {{\n\tcase <-{name}.C:\n\tdefault:\n\t}}\n}}"
                ),
                format!("{name}.Reset({d})"),
            ],
        )?,
        Edit::replace(call.start_byte(), call.end_byte(), format!("{name}.C")),
    ];
    let pure = syntax::descendants(call, true)
        .iter()
        .filter(|n| n.kind() == "call_expression")
        .count()
        == 1;
    let nested = syntax::enclosing_loop(anchor).is_some_and(|outer| syntax::contains(func, outer));
    let message = format!(
        "Hoist one `{time}.NewTimer({d})` out of the loop and `Reset` it before the `select`"
    );
    let fix = if pure && !nested {
        Fix::safe(message, edits)
    } else {
        Fix::unsafe_(message, edits)
    };
    // Two of these in one function would both declare `timer`: one per pass.
    Some(fix.isolated(func.start_byte()))
}

/// Whether `name` is declared inside `lp` (its header's variables included).
fn declared_in(cx: &Checker, lp: Node, name: &str) -> bool {
    syntax::descendants(lp, true).into_iter().any(|n| {
        n.kind() == "identifier"
            && cx.text(n) == name
            && n.parent().is_some_and(|p| {
                let decl = |q: Node| {
                    matches!(
                        q.kind(),
                        "short_var_declaration" | "range_clause" | "var_spec" | "const_spec"
                    ) && q
                        .child_by_field_name("left")
                        .or_else(|| q.child_by_field_name("name"))
                        .is_some_and(|l| syntax::contains(l, n))
                };
                matches!(
                    p.kind(),
                    "parameter_declaration" | "var_spec" | "const_spec"
                ) || decl(p)
                    || p.parent().is_some_and(decl)
            })
    })
}

/// True when `time.After` is a select case whose body leaves the loop (return, break to it).
fn timeout_case_leaves_loop(cx: &Checker, call: Node, lp: Node) -> bool {
    let mut cur = call.parent();
    while let Some(n) = cur {
        if syntax::is_comm_case(n) {
            return super::loops::clause_leaves(cx, n);
        }
        if n.id() == lp.id() {
            return false;
        }
        cur = n.parent();
    }
    false
}

/// True when `time.After` is a select case and every other case of the select leaves the
/// loop: the loop only goes round again after the timer fired, so none is abandoned
/// (`for { select { case <-time.After(d): work(); case <-stop: return } }`).
fn only_the_timer_goes_round(cx: &Checker, call: Node) -> bool {
    let Some(clause) = comm_clause_of(call) else {
        return false;
    };
    let Some(select) = clause.parent() else {
        return false;
    };
    syntax::named_children(select)
        .into_iter()
        .filter(|c| c.kind() == "communication_clause" && c.id() != clause.id())
        .all(|c| super::loops::clause_always_leaves(cx, c))
}

/// The select case whose send or receive holds `node` (not a statement of its body).
fn comm_clause_of(node: Node) -> Option<Node> {
    let mut cur = node.parent();
    while let Some(n) = cur {
        if syntax::is_select_communication(n) {
            return n.parent();
        }
        if matches!(
            n.kind(),
            "communication_clause" | "block" | "function_literal"
        ) {
            return None;
        }
        cur = n.parent();
    }
    None
}

/// True when `v = time.After(d)` makes a new timer only once the last one is gone: under
/// `if v == nil` (set to nil when it fires), or in the case that received from `v`. At
/// most one timer is pending at a time.
fn rearmed_after_it_fired(cx: &Checker, call: Node, lp: Node) -> bool {
    let Some(assign) = call
        .parent()
        .filter(|p| p.kind() == "expression_list")
        .and_then(|p| p.parent())
        .filter(|p| p.kind() == "assignment")
    else {
        return false;
    };
    let Some(var) = assign
        .child_by_field_name("left")
        .map(syntax::named_children)
        .filter(|l| l.len() == 1)
        .map(|l| l[0])
        .filter(|v| v.kind() == "identifier")
    else {
        return false;
    };
    let name = cx.text(var);
    let mut cur = assign.parent();
    while let Some(n) = cur {
        if n.id() == lp.id() {
            return false;
        }
        match n.kind() {
            "if_statement" => {
                let guarded = n.child_by_field_name("condition").is_some_and(|c| {
                    let c = syntax::unparen(c);
                    c.kind() == "binary_expression"
                        && c.child_by_field_name("operator")
                            .is_some_and(|o| cx.text(o) == "==")
                        && [("left", "right"), ("right", "left")].iter().any(|(a, b)| {
                            c.child_by_field_name(a).is_some_and(|x| cx.text(x) == name)
                                && c.child_by_field_name(b)
                                    .is_some_and(|y| cx.text(y) == "nil")
                        })
                });
                let in_then = n
                    .child_by_field_name("body")
                    .is_some_and(|b| syntax::contains(b, assign));
                if guarded && in_then {
                    return true;
                }
            }
            "communication_clause" => {
                let from_var = n.child_by_field_name("communication").is_some_and(|c| {
                    syntax::descendants(c, false).into_iter().any(|u| {
                        u.kind() == "unary_expression"
                            && u.child_by_field_name("operator")
                                .is_some_and(|o| cx.text(o) == "<-")
                            && u.child_by_field_name("operand")
                                .is_some_and(|x| cx.text(syntax::unparen(x)) == name)
                    })
                });
                if from_var {
                    return true;
                }
            }
            _ => {}
        }
        cur = n.parent();
    }
    false
}

/// The most iterations of a loop that still counts as a few calls written out, not a loop
/// whose timers pile up: `for i := 0; i < 2; i++`, `for range 3`.
const FEW_ITERATIONS: u64 = 16;

/// True when the loop runs a constant, small number of times.
fn few_iterations(cx: &Checker, lp: Node) -> bool {
    let literal = |n: Option<Node>| {
        n.map(syntax::unparen)
            .filter(|n| n.kind() == "int_literal")
            .and_then(|n| cx.text(n).replace('_', "").parse::<u64>().ok())
    };
    for part in syntax::named_children(lp) {
        match part.kind() {
            "range_clause" => {
                return literal(part.child_by_field_name("right"))
                    .is_some_and(|n| n <= FEW_ITERATIONS);
            }
            "for_clause" => {
                let start = part
                    .child_by_field_name("init_statement")
                    .filter(|i| i.kind() == "short_var_declaration")
                    .and_then(|i| i.child_by_field_name("right"))
                    .map(syntax::named_children)
                    .filter(|r| r.len() == 1)
                    .and_then(|r| literal(Some(r[0])));
                let bound = part
                    .child_by_field_name("condition")
                    .map(syntax::unparen)
                    .filter(|c| c.kind() == "binary_expression")
                    .and_then(|c| {
                        let op = cx.text(c.child_by_field_name("operator")?);
                        let n = literal(c.child_by_field_name("right"))?;
                        match op {
                            "<" => Some(n),
                            "<=" => Some(n + 1),
                            _ => None,
                        }
                    });
                let step = part
                    .child_by_field_name("post_statement")
                    .is_some_and(|u| u.kind() == "inc_dec_statement" && cx.text(u).ends_with("++"));
                return match (start, bound) {
                    (Some(a), Some(b)) if step => b.saturating_sub(a) <= FEW_ITERATIONS,
                    _ => false,
                };
            }
            _ => {}
        }
    }
    false
}
