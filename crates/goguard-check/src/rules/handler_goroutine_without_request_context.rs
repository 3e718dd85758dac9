//! G104 handler-goroutine-without-request-context.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (an HTTP handler): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["ResponseWriter"];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G104 handler-goroutine-without-request-context

## What it does
Inside an HTTP handler (a function taking `(http.ResponseWriter, *http.Request)`, or a
`ServeHTTP` method), reports a `go` statement whose goroutine does blocking or slow work
(sleeps, channel operations, loops, network or database calls) without using
`r.Context()` or a context derived from it.

## Why is this bad?
The goroutine is not bound to the request: it keeps running after the client has gone,
holds up `http.Server.Shutdown` (which waits only for handlers, so the work is cut off at
exit or outlives it), and under load the number of such goroutines grows linearly with
requests. The reference's 2.4.

## Example
```go
func handle(w http.ResponseWriter, r *http.Request) {
    go func() {
        time.Sleep(10 * time.Second) // runs on after the client left
        audit(r.URL.Path)
    }()
    w.WriteHeader(http.StatusAccepted)
}
```

## Use instead
```go
func handle(w http.ResponseWriter, r *http.Request) {
    ctx := r.Context()
    go func() {
        select {
        case <-time.After(10 * time.Second):
            audit(r.URL.Path)
        case <-ctx.Done():
        }
    }()
    w.WriteHeader(http.StatusAccepted)
}
```
For work that must outlive the request on purpose, say so with
`context.WithoutCancel(r.Context())` and bound it with a timeout.

## Known limits
"Slow work" is recognised by its shape (sleep, channel operation, select, loop, or a call
named like I/O: `Do`, `Get`, `Post`, `Query`, `Exec`, `Send`, `Publish`, `Dial`, ...).
Any use of an identifier named like a context (`ctx`, a variable assigned from
`r.Context()`) counts as binding the goroutine. A goroutine counted on a WaitGroup of a
longer-lived object (`h.wg.Done()`, a package variable) belongs to that object and is not
reported. Test files are not checked: a test's handlers serve only that test.

## References
- https://pkg.go.dev/net/http#Request.Context
- https://pkg.go.dev/net/http#Server.Shutdown
"#;

const SLOW_CALLS: &[&str] = &[
    "Sleep",
    "Do",
    "Get",
    "Post",
    "PostForm",
    "Head",
    "Query",
    "QueryRow",
    "QueryContext",
    "Exec",
    "ExecContext",
    "Send",
    "Publish",
    "Dial",
    "DialContext",
    "Call",
    "Wait",
    "ReadAll",
    "Copy",
    "Write",
    "Read",
];

pub fn check(cx: &mut Checker) {
    // A handler in a test serves that test's requests: its goroutines end with the test
    // binary, and tests often start exactly the work that outlives a handler to check it.
    if crate::testfail::is_test_file(cx) {
        return;
    }
    let mut findings = Vec::new();
    for &go in &cx.index.go_stmts {
        let Some((handler, request)) = enclosing_handler(cx, go) else {
            continue;
        };
        let request = Some(request);
        let Some(lit) = syntax::stmt_func_literal(go) else {
            continue;
        };
        let Some(body) = lit.child_by_field_name("body") else {
            continue;
        };
        let call = syntax::stmt_call(go);
        let nodes = syntax::descendants(body, true);
        let Some(slow) = nodes.iter().find(|n| is_slow(cx, **n)) else {
            continue;
        };
        let uses_ctx = |n: &Node| {
            (n.kind() == "identifier" && is_context_name(cx, *n))
                || (n.kind() == "selector_expression"
                    && n.child_by_field_name("field")
                        .is_some_and(|f| cx.text(f) == "Context"))
        };
        // Handing the request itself to a call binds the work to it too (`h.ServeHTTP(w, r)`).
        let passes_request = |n: &Node| {
            n.kind() == "identifier"
                && Some(cx.text(*n)) == request
                && n.parent().is_some_and(|p| p.kind() == "arguments")
        };
        let bound = nodes.iter().any(|n| uses_ctx(n) || passes_request(n))
            || call.is_some_and(|c| {
                syntax::descendants(c.child_by_field_name("arguments").unwrap_or(c), true)
                    .iter()
                    .any(uses_ctx)
            });
        if bound || handler_waits_for(cx, go, &nodes) || owned_by_waitgroup(cx, go, &nodes) {
            continue;
        }
        findings.push(Finding {
            node: go.child(0).unwrap_or(go),
            message: format!(
                "goroutine started by handler `{handler}` does slow work (line {}) without the request's context: it outlives the request and holds up shutdown",
                cx.line(*slow)
            ),
            help: "pass `r.Context()` (or a context derived from it) and stop when it is done; for deliberate background work use `context.WithoutCancel(r.Context())` with a timeout".into(),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

/// Whether the goroutine is not the request's: the function that starts it waits for it
/// before returning (it calls `Wait` on a WaitGroup the goroutine signals `Done` on, or
/// receives on a channel the goroutine sends on, after the `go` statement), or it serves a
/// connection the handler hijacked.
fn handler_waits_for<'a>(cx: &Checker<'a>, go: Node<'a>, goroutine: &[Node<'a>]) -> bool {
    let Some(starter) = cx.enclosing_function(go) else {
        return false;
    };
    let Some(body) = starter.child_by_field_name("body") else {
        return false;
    };
    let receiver_of = |n: &Node, method: &str| {
        Call::of(*n)
            .filter(|c| cx.text(c.name) == method)
            .and_then(|c| c.receiver)
            .map(|r| syntax::normalize(cx.text(r)))
    };
    let dones: Vec<String> = goroutine
        .iter()
        .filter_map(|n| receiver_of(n, "Done"))
        .collect();
    let sends: Vec<String> = goroutine
        .iter()
        .filter(|n| n.kind() == "send_statement")
        .filter_map(|n| n.child_by_field_name("channel"))
        .map(|c| syntax::normalize(cx.text(c)))
        .collect();
    let nodes = syntax::descendants(body, false);
    // After `Hijack()` the connection is the handler's own, not the request's: goroutines
    // serving it are meant to outlive the handler (a CONNECT tunnel, a protocol switch).
    if nodes
        .iter()
        .any(|n| n.start_byte() < go.start_byte() && receiver_of(n, "Hijack").is_some())
    {
        return true;
    }
    nodes
        .into_iter()
        .filter(|n| n.start_byte() >= go.end_byte())
        .any(|n| {
            receiver_of(&n, "Wait").is_some_and(|wg| dones.contains(&wg))
                || syntax::received_channel(n)
                    .is_some_and(|c| sends.contains(&syntax::normalize(cx.text(c))))
        })
}

/// Whether the goroutine is counted on a WaitGroup that outlives the handler (a field of its
/// receiver, a package variable): its lifetime is that object's, whose `Close`/`Shutdown`
/// waits for it, not the request's.
fn owned_by_waitgroup<'a>(cx: &Checker<'a>, go: Node<'a>, goroutine: &[Node<'a>]) -> bool {
    let Some(starter) = cx.enclosing_function(go) else {
        return false;
    };
    goroutine.iter().any(|n| {
        crate::resolve::sync_call(cx, *n, crate::package::SyncKind::WaitGroup, &["Done"])
            .and_then(|c| c.receiver)
            .and_then(|r| super::locksets::identity(cx, starter, r))
            .is_some_and(|id| id.is_shared())
    })
}

/// The handler's name and its request parameter when `node` is inside one.
fn enclosing_handler<'a>(cx: &Checker<'a>, node: Node<'a>) -> Option<(&'a str, &'a str)> {
    let mut f = cx.enclosing_function(node);
    while let Some(func) = f {
        let params = syntax::params(func, cx.src());
        let types: Vec<String> = params
            .iter()
            .map(|(_, t)| syntax::normalize(cx.text(*t)))
            .collect();
        let is_handler = types.len() == 2
            && types[0].ends_with("ResponseWriter")
            && types[1].ends_with("Request")
            && types[1].starts_with('*');
        if is_handler {
            let name = match func.child_by_field_name("name") {
                Some(n) => cx.text(n),
                None => "(func literal)",
            };
            return Some((name, params[1].0));
        }
        f = cx.enclosing_function(func);
    }
    None
}

fn is_slow(cx: &Checker, n: Node) -> bool {
    match n.kind() {
        "send_statement" | "select_statement" | "for_statement" => true,
        "unary_expression" => syntax::received_channel(n).is_some(),
        "call_expression" => Call::of(n)
            .is_some_and(|c| c.receiver.is_some() && SLOW_CALLS.contains(&cx.text(c.name))),
        _ => false,
    }
}

fn is_context_name(cx: &Checker, n: Node) -> bool {
    let t = cx.text(n);
    t == "ctx" || t.ends_with("Ctx") || t.ends_with("ctx") || t == "context"
}
