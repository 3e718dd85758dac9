//! G401 mutex-not-unlocked-on-path.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::package::SyncKind;
use crate::paths::{self, Tracker};
use crate::resolve;
use crate::syntax::{self, Call};

pub const DOC: &str = r#"# G401 mutex-not-unlocked-on-path

## What it does
Reports a `Lock` or `RLock` (not followed by a deferred unlock) when some way out of the
function (an early `return`, a `break` or `continue` out of the region) leaves the mutex
locked, while other paths do unlock it.

## Why is this bad?
The function returns with the lock held. The next `Lock` on the same mutex, in any
goroutine, blocks forever: the classic "stuck on sync.Mutex.Lock" goroutine dump.

## Example
```go
func (c *Cache) Get(k string) (V, error) {
    c.mu.Lock()
    v, ok := c.m[k]
    if !ok {
        return V{}, errMissing // still locked
    }
    c.mu.Unlock()
    return v, nil
}
```

## Use instead
```go
func (c *Cache) Get(k string) (V, error) {
    c.mu.Lock()
    defer c.mu.Unlock()
    v, ok := c.m[k]
    if !ok {
        return V{}, errMissing
    }
    return v, nil
}
```

## Known limits
A function that never unlocks the mutex at all is taken to be a deliberate "lock and return"
helper and is not reported. Paths are followed within one function; `goto` stops tracking.

## References
- https://pkg.go.dev/sync#Mutex.Lock
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for node in cx.index.calls_named(&["Lock", "RLock"]) {
        let Some(call) = resolve::sync_call(cx, node, SyncKind::Mutex, &["Lock", "RLock"]) else {
            continue;
        };
        let Some(stmt) = node.parent().filter(|p| p.kind() == "expression_statement") else {
            continue;
        };
        let Some(recv) = call.receiver else { continue };
        let mu = syntax::normalize(cx.text(recv));
        let unlock = if cx.text(call.name) == "Lock" {
            "Unlock"
        } else {
            "RUnlock"
        };
        let Some(func) = cx.enclosing_function(node) else {
            continue;
        };
        let Some(body) = func.child_by_field_name("body") else {
            continue;
        };
        // An unlock counts when this function runs it: directly, or in a deferred closure.
        // One inside another closure (a callback, a hook) runs at someone else's time.
        // So does a call of a package method that unlocks it (`cc.updateAndUnlock()`).
        let unlocks = |n: Node| {
            syntax::descendants(n, true).into_iter().any(|m| {
                (is_unlock(cx, m, &mu, unlock) || crate::summary::call_releases(cx, m, &mu, unlock))
                    && runs_here(m, func)
            })
        };
        if !unlocks(body) || expects_held_or_hands_off(cx, body, node, &mu, unlock) {
            continue;
        }
        let is_start = |n: Node| n.id() == stmt.id();
        let tracker = Tracker {
            is_start: Some(&is_start),
            is_release: &unlocks,
            src: cx.src(),
        };
        let exits = paths::leaking_exits(body, &tracker);
        let Some(first) = exits.first() else { continue };
        let lines: Vec<String> = exits.iter().map(|e| cx.line(*e).to_string()).collect();
        findings.push(Finding {
            node,
            message: format!(
                "`{mu}.{}()` is still held at the exit on line {} (exits without `{mu}.{unlock}()`: line {})",
                cx.text(call.name),
                cx.line(*first),
                lines.join(", ")
            ),
            help: format!("`defer {mu}.{unlock}()` right after locking, or unlock before every return"),
            severity: None,
        });
    }
    for f in findings {
        cx.report(f);
    }
}

fn is_unlock(cx: &Checker, n: Node, mu: &str, unlock: &str) -> bool {
    Call::of(n).is_some_and(|c| {
        c.receiver
            .is_some_and(|r| syntax::normalize(cx.text(r)) == mu)
            && cx.text(c.name) == unlock
    })
}

/// Shapes where a path ending locked is intended:
/// - a deferred unlock registered before this `Lock` (unlock, work, re-lock under a defer);
/// - the function's first operation on the mutex is an unlock: the caller holds it on entry
///   and expects it held on return;
/// - an unlock inside a `go` statement: the lock is handed to another goroutine (a mutex used
///   as a semaphore).
fn expects_held_or_hands_off(cx: &Checker, body: Node, lock: Node, mu: &str, unlock: &str) -> bool {
    let mut first_op: Option<bool> = None;
    for m in syntax::descendants(body, true) {
        let Some(c) = Call::of(m) else { continue };
        if c.receiver
            .is_none_or(|r| syntax::normalize(cx.text(r)) != mu)
        {
            continue;
        }
        let name = cx.text(c.name);
        let is_unlock = name == unlock;
        if !is_unlock && name != "Lock" && name != "RLock" {
            continue;
        }
        if first_op.is_none() {
            first_op = Some(is_unlock);
        }
        if !is_unlock {
            continue;
        }
        let mut cur = m.parent();
        while let Some(p) = cur {
            if p.id() == body.id() {
                break;
            }
            match p.kind() {
                "defer_statement" if p.start_byte() < lock.start_byte() => return true,
                "go_statement" => return true,
                _ => {}
            }
            cur = p.parent();
        }
    }
    first_op == Some(true)
}

/// True when `n` runs as part of `func` itself: not inside a nested function literal, unless
/// that literal is deferred or started as a goroutine by it.
fn runs_here(n: Node, func: Node) -> bool {
    let mut cur = n.parent();
    while let Some(p) = cur {
        if p.id() == func.id() {
            return true;
        }
        if p.kind() == "function_literal" {
            let launched = p
                .parent()
                .and_then(|c| c.parent())
                .is_some_and(|s| matches!(s.kind(), "defer_statement" | "go_statement"));
            if !launched {
                return false;
            }
        }
        cur = p.parent();
    }
    true
}
