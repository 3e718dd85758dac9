//! G405 blocking-while-locked.

use tree_sitter::Node;

use super::locksets::{self, Event, LockId, Op};
use crate::checker::{Checker, Finding};

/// A file this rule can report in contains one of these (a Lock call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["Lock("];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G405 blocking-while-locked

## What it does
Reports a channel send or receive, or a `WaitGroup.Wait`, performed while holding a lock,
when the code that would complete it (the receiver, the sender, the goroutine calling
`Done`) must take the same lock first.

## Why is this bad?
The goroutine waits for the other side while holding the lock; the other side waits for
the lock before it can act. Neither proceeds: a deadlock that the runtime reports only if
every goroutine of the program is stuck, so in a server it is a silent hang.

## Example
```go
func (q *Queue) Push(v int) {
    q.mu.Lock()
    defer q.mu.Unlock()
    q.items <- v // waits for Pop...
}

func (q *Queue) Pop() int {
    q.mu.Lock() // ...which waits for Push's lock
    defer q.mu.Unlock()
    return <-q.items
}
```

## Use instead
Release the lock before blocking, or do not guard the channel operation with the lock
(channels are already safe for concurrent use).

## Known limits
Both sides must be in the same file, and the channel or WaitGroup must be a field of the
receiver, a package-level variable, or a local shared with a closure.

## References
- https://go.dev/doc/effective_go#channels
"#;

pub fn check(cx: &mut Checker) {
    let mut blocks: Vec<(Node, LockId, Op, LockId)> = Vec::new();
    let mut counterparts: Vec<(LockId, Op, LockId, Node)> = Vec::new();
    for f in cx.index.functions_calling(cx.src(), &["Lock", "RLock"]) {
        for e in locksets::events(cx, f) {
            if let Event::Block {
                node,
                held,
                op,
                target,
            } = e
            {
                blocks.push((node, held.clone(), op, target.clone()));
                counterparts.push((held, op, target, node));
            }
        }
        // A counterpart may also complete the operation without blocking itself (`Done`).
        for done in dones_under_lock(cx, f) {
            counterparts.push(done);
        }
    }
    let unbuffered = unbuffered_channel_names(cx);
    let mut findings = Vec::new();
    for (node, held, op, target) in &blocks {
        // A send or receive can only deadlock here if the channel may be unbuffered: it must
        // be made without a buffer somewhere in this file.
        if *op != Op::Wait && !unbuffered.contains(target.last()) {
            continue;
        }
        let want = match op {
            Op::Send => Op::Receive,
            Op::Receive => Op::Send,
            Op::Wait => Op::Wait, // matched against Done, recorded as Wait below
        };
        let other = counterparts.iter().find(|(h, o, t, n)| {
            h == held
                && t == target
                && n.id() != node.id()
                && (*o == want && *op != Op::Wait || *op == Op::Wait && is_done(cx, *n))
        });
        let Some((_, _, _, other)) = other else {
            continue;
        };
        let what = match op {
            Op::Send => "send on",
            Op::Receive => "receive from",
            Op::Wait => "Wait on",
        };
        findings.push(Finding {
            node: *node,
            message: format!(
                "{what} `{target}` while holding `{held}`; the other side (line {}) needs `{held}` first: deadlock",
                cx.line(*other)
            ),
            help: format!("release `{held}` before blocking, or do not hold it around the channel operation"),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

fn is_done(cx: &Checker, n: Node) -> bool {
    crate::syntax::Call::of(n).is_some_and(|c| cx.text(c.name) == "Done")
}

/// `wg.Done()` calls made while holding a lock, as counterparts of `Wait`.
fn dones_under_lock<'a>(cx: &Checker<'a>, f: Node<'a>) -> Vec<(LockId, Op, LockId, Node<'a>)> {
    let mut out = Vec::new();
    let Some(body) = f.child_by_field_name("body") else {
        return out;
    };
    let nodes = crate::syntax::descendants(body, false);
    let locks: Vec<(Node, LockId)> = nodes
        .iter()
        .filter_map(|n| {
            let c = crate::resolve::sync_call(cx, *n, crate::package::SyncKind::Mutex, &["Lock"])?;
            Some((*n, locksets::identity(cx, f, c.receiver?)?))
        })
        .collect();
    for n in &nodes {
        let Some((_, call)) = super::wg_method(cx, *n, &["Done"]) else {
            continue;
        };
        let Some(target) = call.receiver.and_then(|r| locksets::identity(cx, f, r)) else {
            continue;
        };
        for (lock, id) in &locks {
            if lock.start_byte() < n.start_byte() {
                out.push((id.clone(), Op::Wait, target.clone(), *n));
            }
        }
    }
    out
}

/// The names (variable or field) that unbuffered `make(chan T)` results are stored in.
fn unbuffered_channel_names<'a>(cx: &Checker<'a>) -> std::collections::HashSet<&'a str> {
    let mut out = std::collections::HashSet::new();
    for call in cx.index.calls_named(&["make"]) {
        if !super::unbuffered_send_without_receiver::is_unbuffered_make(cx, call) {
            continue;
        }
        let Some(parent) = call.parent() else {
            continue;
        };
        let target = match parent.kind() {
            "keyed_element" => parent.child_by_field_name("key"),
            "expression_list" => parent.parent().and_then(|stmt| {
                let (lhs, rhs) = crate::syntax::assignment_sides(stmt)?;
                let i = rhs.iter().position(|r| r.id() == call.id())?;
                lhs.get(i).copied()
            }),
            _ => None,
        };
        if let Some(t) = target {
            let text = cx.text(t);
            out.insert(text.rsplit('.').next().unwrap_or(text));
        }
    }
    out
}
