//! G106 abandoned-sender.

use tree_sitter::Node;

use super::unbuffered_send_without_receiver::local_unbuffered_channels;
use crate::checker::{Checker, Finding};
use crate::fix::{Edit, Fix};
use crate::syntax;

/// A file this rule can report in contains one of these (a channel): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["chan"];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["chan send"];

pub const DOC: &str = r#"# G106 abandoned-sender

## What it does
Reports a goroutine that sends its result on an unbuffered channel made by its starter,
when the starter can stop listening first: it receives in a `select` that also waits on a
timeout (`time.After`, a timer) or `ctx.Done()`, or it can `return` between starting the
goroutine and receiving.

## Why is this bad?
Once the receiver has gone, nobody will ever receive: the send blocks forever and the
goroutine leaks, with everything it references, once per call. This is the most common
goroutine leak in real Go code (a timeout around a worker); it belongs with the
reference's chapters 2 and 3.

## Example
```go
func fetch(ctx context.Context) (Result, error) {
    ch := make(chan Result)
    go func() { ch <- slowCall() }() // blocks forever after a timeout
    select {
    case r := <-ch:
        return r, nil
    case <-ctx.Done():
        return Result{}, ctx.Err()
    }
}
```

## Use instead
```go
    ch := make(chan Result, 1) // the send always completes
```
or make the sender select on `ctx.Done()` too.

## Fix
`--fix` gives the channel a buffer of one (`make(chan T, 1)`): the one send completes
whether or not anyone receives, and the goroutine ends. It is safe when that goroutine's
send is the only send on the channel and its last statement, and the channel stays in the
function: a correct program then sees the same values in the same order, and nothing
after the send relied on the receiver having taken it. Otherwise it is unsafe
(`--unsafe-fixes`). None is offered when there are several sends or the send is in a loop
(one slot would not hold them all).

## Not reported
A receiver that gives up only where a test has already failed (a timeout case that calls
`t.Fatal`, `t.Errorf`, `t.FailNow`, testify's `require.Fail`...): the test is failing, and
a goroutine it leaks on the way out is not the bug to fix.

## Known limits
The channel must be made in the same function that starts the goroutine. A send that is
itself a `select` case next to `ctx.Done()` or a `default` is safe and not reported.

## References
- https://go.dev/blog/pipelines ("Stopping short")
"#;

pub fn check(cx: &mut Checker) {
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
    for (f, body, name, decl) in local_unbuffered_channels(cx) {
        for &go in &cx.index.go_stmts {
            if !syntax::contains(body, go) || go.start_byte() < decl.end_byte() {
                continue;
            }
            if cx.enclosing_function(go).map(|n| n.id()) != Some(f.id()) {
                continue;
            }
            let Some(lit) = syntax::stmt_func_literal(go) else {
                continue;
            };
            let Some(send) = plain_send(cx, lit, name) else {
                continue;
            };
            let Some(reason) = receiver_gives_up(cx, body, go, name) else {
                continue;
            };
            let fix = buffer_of_one(cx, body, decl, name, lit, send);
            findings.push((Finding {
                node: send,
                message: format!(
                    "this goroutine sends on unbuffered `{name}` (made at line {}), but the receiver can give up first ({reason}); the send then blocks forever",
                    cx.line(decl)
                ),
                help: "make it `make(chan T, 1)` so the send always completes, or select on `ctx.Done()` in the sender".to_string(),
                severity: None,
            }, fix));
        }
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// `make(chan T)` in `decl` (the statement that makes `name`) as `make(chan T, 1)`.
fn buffer_of_one(
    cx: &Checker,
    body: Node,
    decl: Node,
    name: &str,
    lit: Node,
    send: Node,
) -> Option<Fix> {
    let (lhs, rhs) = syntax::assignment_sides(decl)?;
    let i = lhs.iter().position(|l| cx.text(*l) == name)?;
    let make = syntax::unparen(*rhs.get(i)?);
    let call = syntax::Call::of(make)?;
    let edit = match call.args.as_slice() {
        [t] => Edit::insert(t.end_byte(), ", 1"),
        [_, size] => Edit::replace(size.start_byte(), size.end_byte(), "1"),
        _ => return None,
    };
    // Every send on it in the function: one slot holds one value.
    let sends: Vec<Node> = syntax::descendants(body, true)
        .into_iter()
        .filter(|n| {
            n.kind() == "send_statement"
                && n.child_by_field_name("channel")
                    .is_some_and(|c| cx.text(c) == name)
        })
        .collect();
    if sends.len() != 1 || syntax::enclosing_loop(send).is_some_and(|l| syntax::contains(lit, l)) {
        return None;
    }
    // The send is the goroutine's last statement: nothing after it waited for the receiver.
    let lit_body = lit.child_by_field_name("body")?;
    let last = syntax::descendants(lit_body, false)
        .into_iter()
        .filter(|n| {
            n.parent().is_some_and(|p| {
                p.id() == lit_body.id()
                    || (p.kind() == "statement_list"
                        && p.parent().map(|q| q.id()) == Some(lit_body.id()))
            })
        })
        .rfind(|n| n.is_named() && n.kind() != "comment");
    let is_last = last.is_some_and(|l| l.id() == send.id());
    // The channel stays here: only sent on, received from, or closed.
    let stays = syntax::descendants(body, true).into_iter().all(|n| {
        if n.kind() != "identifier" || cx.text(n) != name || syntax::contains(decl, n) {
            return true;
        }
        let Some(p) = n.parent() else { return true };
        match p.kind() {
            "send_statement" => p.child_by_field_name("channel").map(|c| c.id()) == Some(n.id()),
            "unary_expression" => syntax::received_channel(p).is_some(),
            "argument_list" => p.parent().and_then(syntax::Call::of).is_some_and(|c| {
                c.receiver.is_none() && matches!(cx.text(c.name), "close" | "len" | "cap")
            }),
            _ => false,
        }
    });
    let message = format!("Give `{name}` a buffer of one: `{}`", "make(chan T, 1)");
    let message = message.replace("chan T", cx.text(call.args[0]));
    Some(if is_last && stays {
        Fix::safe(message, vec![edit])
    } else {
        Fix::unsafe_(message, vec![edit])
    })
}

/// A blocking send `name <- v` in the literal (not a select case).
fn plain_send<'a>(cx: &Checker<'a>, lit: Node<'a>, name: &str) -> Option<Node<'a>> {
    syntax::descendants(lit, true).into_iter().find(|n| {
        n.kind() == "send_statement"
            && n.child_by_field_name("channel")
                .is_some_and(|c| cx.text(c) == name)
            && !syntax::is_select_communication(*n)
    })
}

/// Why the receiving function may stop listening on `name` after `go`.
fn receiver_gives_up(cx: &Checker, body: Node, go: Node, name: &str) -> Option<String> {
    let after: Vec<Node> = syntax::descendants(body, false)
        .into_iter()
        .filter(|n| n.start_byte() >= go.end_byte())
        .collect();
    // The first receive of `name` after the go statement.
    let recv = after.iter().find(|n| receives_from(cx, **n, name))?;
    // A return between the go statement and the receive (not one after the test failed).
    if let Some(ret) = after.iter().find(|n| {
        n.kind() == "return_statement"
            && n.end_byte() <= recv.start_byte()
            && !n
                .parent()
                .is_some_and(|block| crate::testfail::reports_failure(cx, block))
    }) {
        return Some(format!("the `return` at line {}", cx.line(*ret)));
    }
    // The receive is a select case next to a timeout or cancellation case.
    let case = recv.parent().and_then(|p| {
        let mut c = Some(p);
        while let Some(n) = c {
            if syntax::is_comm_case(n) {
                return Some(n);
            }
            if !matches!(
                n.kind(),
                "receive_statement" | "expression_list" | "unary_expression"
            ) {
                return None;
            }
            c = n.parent();
        }
        None
    })?;
    let select = case.parent()?;
    // In a loop, a case that only `break`s out of the select goes round to receive again.
    let in_loop = syntax::enclosing_loop(select).is_some();
    for other in syntax::named_children(select) {
        if in_loop && !super::loops::clause_leaves(cx, other) {
            continue;
        }
        if other.id() == case.id() || !syntax::is_comm_case(other) {
            continue;
        }
        // Giving up there fails the test: a leak on a failed test's way out.
        if crate::testfail::reports_failure(cx, other) {
            continue;
        }
        // A case that receives `name` itself (`ln.Close(); <-ch`), or goes on past the
        // select to receive it after all (a timeout that only logs), does not give up.
        if receives(cx, &syntax::descendants(other, false), name)
            || (!super::loops::clause_leaves(cx, other) && receives_after(cx, &after, select, name))
        {
            continue;
        }
        let Some(comm) = other.child_by_field_name("communication") else {
            continue;
        };
        let text = cx.text(comm);
        if text.contains("time.After") || text.contains(".Done()") || text.contains(".C") {
            return Some(format!(
                "the select at line {} can take `{}` instead",
                cx.line(select),
                syntax::normalize(text)
            ));
        }
    }
    None
}

/// Whether `name` is received again after `select` (among the nodes `after` the go).
fn receives_after(cx: &Checker, after: &[Node], select: Node, name: &str) -> bool {
    let later: Vec<Node> = after
        .iter()
        .copied()
        .filter(|n| n.start_byte() >= select.end_byte())
        .collect();
    receives(cx, &later, name)
}

/// Whether one of `nodes` is a receive `<-name`.
fn receives(cx: &Checker, nodes: &[Node], name: &str) -> bool {
    nodes.iter().any(|n| receives_from(cx, *n, name))
}

/// Whether `n` is the receive `<-name`.
fn receives_from(cx: &Checker, n: Node, name: &str) -> bool {
    syntax::received_channel(n).is_some_and(|c| cx.text(c) == name)
}
