//! G100 unbuffered-send-without-receiver.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (a channel): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["chan"];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["fatal error: all goroutines are asleep - deadlock!"];

pub const DOC: &str = r#"# G100 unbuffered-send-without-receiver

## What it does
Reports a send on an unbuffered channel made in the same function, when nothing that could
receive from it (a goroutine, or a call the channel is passed to) has been started before
the send.

## Why is this bad?
A send on an unbuffered channel blocks until another goroutine receives. If no goroutine
can, the sender blocks forever. In `main` with no other goroutines the runtime notices and
crashes with `fatal error: all goroutines are asleep - deadlock!`; in a server (listeners,
timers and other goroutines are alive) the runtime's detector never fires and the goroutine
simply hangs, which is why such bugs are found in goroutine dumps rather than crashes.

## Example
```go
func main() {
    ch := make(chan int)
    ch <- 42 // blocks forever
}
```

## Use instead
```go
func main() {
    ch := make(chan int, 1) // or start the receiver first
    ch <- 42
    fmt.Println(<-ch)
}
```

## Known limits
Only channels made in the same function are considered, and any use of the channel before
the send (a `go` statement, a call, an assignment, a `select`) is taken as a possible
receiver. Sends inside `select` are non-blocking when the select has other ready cases and
are not reported.

## References
- https://go.dev/ref/spec#Send_statements
- https://go.dev/ref/mem#chan
"#;

/// A `make(chan T)` with no size or a constant zero size.
pub(crate) fn is_unbuffered_make(cx: &Checker, v: Node) -> bool {
    let Some(call) = Call::of(syntax::unparen(v)) else {
        return false;
    };
    if call.receiver.is_some() || cx.text(call.name) != "make" {
        return false;
    }
    match call.args.as_slice() {
        [t] => t.kind() == "channel_type",
        [t, size] => t.kind() == "channel_type" && cx.text(*size).trim() == "0",
        _ => false,
    }
}

/// Every unbuffered channel made in a function of the file and kept in a local variable:
/// (function, its body, the channel's name, the declaring statement). Found from the
/// file's `make` calls, not by walking every function that calls `make`. Shared with G106.
pub(crate) fn local_unbuffered_channels<'a>(
    cx: &Checker<'a>,
) -> Vec<(Node<'a>, Node<'a>, &'a str, Node<'a>)> {
    let mut out = Vec::new();
    for make in cx.index.calls_named(&["make"]) {
        if !is_unbuffered_make(cx, make) {
            continue;
        }
        // `ch := make(...)`, `ch = make(...)`, `var ch = make(...)`: the make is a value of
        // the statement's right-hand list.
        let mut value = make;
        while let Some(p) = value
            .parent()
            .filter(|p| p.kind() == "parenthesized_expression")
        {
            value = p;
        }
        let Some(stmt) = value
            .parent()
            .filter(|p| p.kind() == "expression_list")
            .and_then(|list| list.parent())
            .filter(|s| {
                matches!(
                    s.kind(),
                    "short_var_declaration" | "var_spec" | "assignment"
                )
            })
        else {
            continue;
        };
        let Some((lhs, rhs)) = syntax::assignment_sides(stmt) else {
            continue;
        };
        let Some(i) = rhs.iter().position(|r| r.id() == value.id()) else {
            continue;
        };
        let Some(l) = lhs.get(i).filter(|l| l.kind() == "identifier") else {
            continue;
        };
        let Some(f) = cx.index.enclosing_function(stmt) else {
            continue;
        };
        let Some(body) = f.child_by_field_name("body") else {
            continue;
        };
        out.push((f, body, cx.text(*l), stmt));
    }
    out
}

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for (f, body, name, decl) in local_unbuffered_channels(cx) {
        let nodes = syntax::descendants(body, true);
        // The first use of the channel after its declaration.
        let first_use = nodes.iter().find(|n| {
            n.kind() == "identifier" && cx.text(**n) == name && n.start_byte() >= decl.end_byte()
        });
        let Some(&use_node) = first_use else { continue };
        let Some(send) = use_node.parent().filter(|p| p.kind() == "send_statement") else {
            continue;
        };
        if send.child_by_field_name("channel").map(|c| c.id()) != Some(use_node.id()) {
            continue;
        }
        // Sends in a select or in a goroutine or closure are not this rule's concern.
        let in_select = syntax::is_select_communication(send);
        let own_func = cx.enclosing_function(send).map(|n| n.id()) == Some(f.id());
        // Any goroutine started between make and send could be a receiver through other
        // means (a struct, a global); only a send with no goroutine started at all is certain.
        let go_between = cx.index.go_stmts.iter().any(|g| {
            syntax::contains(body, *g)
                && g.start_byte() >= decl.end_byte()
                && g.end_byte() <= send.start_byte()
        });
        if in_select || !own_func || go_between {
            continue;
        }
        findings.push(Finding {
            node: send,
            message: format!(
                "send on unbuffered channel `{name}` (made at line {}) with no goroutine started to receive it",
                cx.line(decl)
            ),
            help: "start the receiving goroutine before sending, or give the channel a buffer: `make(chan T, 1)`".into(),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}
