//! G401 mutex-not-unlocked-on-path.

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::fix::{build, Fix};
use crate::package::SyncKind;
use crate::paths::{self, Tracker};
use crate::resolve;
use crate::syntax::{self, Call};

/// A file this rule can report in contains one of these (a Lock call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["Lock("];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["sync.Mutex.Lock", "sync.RWMutex.Lock", "sync.RWMutex.RLock"];

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

A function that never unlocks at all a lock of its receiver or a package variable is
reported when it has callers in the package and none of them releases the lock after the
call: every call then leaves it held.

## Fix
`--fix` writes `defer mu.Unlock()` (`RUnlock` for `RLock`) on the line after the lock and
removes the function's other `Unlock` calls of that mutex. It is safe when each removed
`Unlock` is followed only by a `return` of plain values (names, literals, fields): the
lock is then released at the same moment. Where work follows an `Unlock` (it now runs
under the lock), or the function never unlocks at all (its callers were judged not to),
the fix is unsafe (`--unsafe-fixes`). None is offered when the lock is taken in a loop or
under a condition, when the mutex is locked more than once in the function, or an unlock
is deferred, in a closure, or part of a larger statement.

## Known limits
A function that never unlocks and that sounds like it locks for its caller (`lockState`,
`acquire`, `begin`), or that no code of the package calls, or whose caller unlocks (or
calls something named like a release) after calling it, is taken to be a deliberate "lock
and return" helper and is not reported. Paths are followed within one function.

## References
- https://pkg.go.dev/sync#Mutex.Lock
"#;

pub fn check(cx: &mut Checker) {
    let mut findings: Vec<(Finding, Option<Fix>)> = Vec::new();
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
        if !unlocks(body) {
            if let Some(f) = never_released(cx, func, body, node, &mu, unlock) {
                let fix = defer_unlock(cx, body, stmt, &mu, unlock).map(|mut x| {
                    x.applicability = crate::fix::Applicability::Unsafe;
                    x
                });
                findings.push((f, fix));
            }
            continue;
        }
        if expects_held_or_hands_off(cx, body, node, &mu, unlock) {
            continue;
        }
        // Taken on every turn of a loop that never releases it: the unlocks are counted
        // elsewhere (n RLocks, then n RUnlocks), not paired on a path; a second Lock of a
        // Mutex there would be G403's double lock, not a lock left held.
        if syntax::enclosing_loop(node)
            .and_then(|lp| lp.child_by_field_name("body"))
            .is_some_and(|lb| !unlocks(lb))
        {
            continue;
        }
        let is_start = |n: Node| n.id() == stmt.id();
        // Conditions true exactly when this lock was taken: the `if` it is taken under, and
        // a flag set right after it (`held = true`).
        let guards = lock_guards(cx, stmt);
        let guarded = |n: Node| {
            n.child_by_field_name("else").is_none()
                && n.child_by_field_name("init_statement").is_none()
                && n.child_by_field_name("condition").is_some_and(|c| {
                    guards.contains(&syntax::normalize(cx.text(c)))
                        && !changed_between(cx, body, stmt, n, c)
                })
                && n.child_by_field_name("body").is_some_and(&unlocks)
        };
        let fails = |n: Node| crate::testfail::is_failure_stmt(cx, n);
        let tracker = Tracker {
            is_start: Some(&is_start),
            is_release: &unlocks,
            guarded_release: (!guards.is_empty()).then_some(&guarded as &dyn Fn(Node) -> bool),
            fails_test: Some(&fails),
            src: cx.src(),
        };
        let exits = paths::leaking_exits(body, &tracker);
        let Some(first) = exits.first() else { continue };
        let lines: Vec<String> = exits.iter().map(|e| cx.line(*e).to_string()).collect();
        let fix = defer_unlock(cx, body, stmt, &mu, unlock);
        findings.push((Finding {
            node,
            message: format!(
                "`{mu}.{}()` is still held at the exit on line {} (exits without `{mu}.{unlock}()`: line {})",
                cx.text(call.name),
                cx.line(*first),
                lines.join(", ")
            ),
            help: format!("`defer {mu}.{unlock}()` right after locking, or unlock before every return"),
            severity: None,
        }, fix));
    }
    for (f, fix) in findings {
        cx.report_fixed(f, fix);
    }
}

/// `defer mu.Unlock()` after the lock statement `stmt`, the function's other unlocks of
/// `mu` removed.
fn defer_unlock(cx: &Checker, body: Node, stmt: Node, mu: &str, unlock: &str) -> Option<Fix> {
    let src = cx.src();
    let in_body = |n: Node| {
        n.parent().is_some_and(|p| {
            p.id() == body.id()
                || (p.kind() == "statement_list" && p.parent().map(|q| q.id()) == Some(body.id()))
        })
    };
    // Taken once, at the top level of the function: the defer then pairs with it.
    if !in_body(stmt) {
        return None;
    }
    let mut unlock_stmts = Vec::new();
    for m in syntax::descendants(body, true) {
        let Some(c) = Call::of(m) else { continue };
        if c.receiver
            .is_none_or(|r| syntax::normalize(cx.text(r)) != mu)
        {
            continue;
        }
        match cx.text(c.name) {
            "Lock" | "RLock" | "TryLock" | "TryRLock"
                if m.parent().map(|p| p.id()) != Some(stmt.id()) =>
            {
                return None
            }
            name if name == unlock || name == "Unlock" || name == "RUnlock" => {
                let s = m.parent().filter(|p| p.kind() == "expression_statement")?;
                if syntax::enclosing_function(s).map(|f| f.id())
                    != cx.enclosing_function(stmt).map(|f| f.id())
                    || s.start_byte() < stmt.end_byte()
                {
                    return None;
                }
                unlock_stmts.push(s);
            }
            _ => {}
        }
    }
    let mut safe = true;
    let mut edits = Vec::new();
    let text = format!("defer {mu}.{unlock}()");
    edits.push(build::insert_after(src, stmt, std::slice::from_ref(&text))?);
    for s in unlock_stmts {
        // What follows it: nothing, or a `return` of values that run no code.
        let next = {
            let mut n = s.next_named_sibling();
            while let Some(c) = n.filter(|c| c.kind() == "comment") {
                n = c.next_named_sibling();
            }
            n
        };
        safe &= match next {
            // The function's last statement.
            None => in_body(s),
            Some(r) => {
                r.kind() == "return_statement"
                    && syntax::descendants(r, true).iter().all(|n| {
                        !matches!(
                            n.kind(),
                            "call_expression"
                                | "unary_expression"
                                | "index_expression"
                                | "function_literal"
                        )
                    })
            }
        };
        edits.push(build::delete_statement(src, s)?);
    }
    let message = format!("Add `{text}` after locking and remove the other unlocks");
    Some(if safe {
        Fix::safe(message, edits)
    } else {
        Fix::unsafe_(message, edits)
    })
}

/// A function that takes its receiver's (or a package variable's) lock and never releases
/// it, which no caller in the package releases either: every call leaves the lock held.
/// A function that locks for its callers (`lockState()`, `acquire()`, a caller that unlocks
/// after the call, a method called from outside the package) is a hand-off, not a leak.
fn never_released<'a>(
    cx: &Checker<'a>,
    func: Node<'a>,
    body: Node<'a>,
    lock: Node<'a>,
    mu: &str,
    unlock: &str,
) -> Option<Finding<'a>> {
    // Any unlock of it in the body (a callback, a goroutine) may be the release.
    if syntax::descendants(body, true)
        .into_iter()
        .any(|m| is_unlock(cx, m, mu, unlock))
    {
        return None;
    }
    let name = cx.text(func.child_by_field_name("name")?);
    let lower = name.to_lowercase();
    if ["lock", "acquire", "begin", "enter", "hold", "grab", "take"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return None;
    }
    // The lock: a field of the receiver, or a package variable. (A parameter's or a local's
    // lock belongs to the caller or dies with the call.)
    // `field` is "" for a lock embedded in the receiver (`c.Lock()`).
    let field = match syntax::receiver(func, cx.src()) {
        Some((recv, _)) if mu == recv => "",
        Some((recv, _)) if mu.starts_with(&format!("{recv}.")) => &mu[recv.len() + 1..],
        _ if cx.pkg.sync_globals.contains_key(mu) => mu,
        _ => return None,
    };
    // The receiver handed to another value (`return &txn{s: s}`, `register(s)`): whoever
    // holds it may release the lock (a transaction's `End`).
    if let Some((recv, _)) = syntax::receiver(func, cx.src()) {
        if escapes(cx, body, recv) {
            return None;
        }
    }
    // Another method of the type unlocks it without locking: a pair of methods.
    let ty =
        syntax::receiver(func, cx.src()).and_then(|(_, t)| syntax::base_type_name(t, cx.src()));
    if ty.is_some_and(|ty| crate::summary::type_releases(cx, ty, field, unlock)) {
        return None;
    }
    // The type's other methods take and release this lock around their work.
    let peers_pair = ty.is_some_and(|ty| crate::summary::type_pairs(cx, ty, func, field));
    let uses = crate::callgraph::callers(cx.pkg, cx.file_in_pkg, func);
    // A caller that releases it after the call (an unlock of that field, or a method that
    // sounds like a release: `unlockState()`, `release()`, `end()`) makes it a hand-off,
    // whether or not its receiver is known to be of this type.
    for site in uses.sites.iter().chain(&uses.maybe) {
        let (Some(caller), Some(c)) = (site.caller, Call::of(site.node)) else {
            continue;
        };
        let src = cx.pkg.files[site.file].text.as_str();
        let after = &src[site.node.end_byte()..caller.end_byte()];
        let on = c.receiver.map(|r| syntax::normalize(&src[r.byte_range()]));
        if releases_after(after, on.as_deref(), field) {
            return None;
        }
    }
    // The callers for certain: called in place (not deferred, started, or used as a value).
    let callers: Vec<String> = uses
        .sites
        .iter()
        .filter(|s| s.used == crate::callgraph::Use::Call)
        .map(|s| cx.pkg.site(s.file, s.node, cx.file_in_pkg))
        .collect();
    let taken = if unlock == "Unlock" { "Lock" } else { "RLock" };
    let message = if !callers.is_empty() {
        format!(
            "`{mu}.{taken}()` is never released: `{name}` returns with it held and none of its callers in the package unlocks it (called at {})",
            callers.join(", ")
        )
    } else if peers_pair {
        // No caller here (an interface method, a callback, an exported API): the type's other
        // methods show the lock guards critical sections and none releases it for a caller.
        format!(
            "`{mu}.{taken}()` is never released: `{name}` returns with it held, while the other methods of its type take and release this lock themselves and none releases it for a caller"
        )
    } else {
        return None;
    };
    Some(Finding {
        node: lock,
        message,
        help: format!("`defer {mu}.{unlock}()` right after locking"),
        severity: None,
    })
}

/// Whether the value named `name` leaves the function body as a value: an argument, an
/// element of a composite literal, a returned or assigned value (not `name.f` or
/// `name.m()`).
fn escapes(cx: &Checker, body: Node, name: &str) -> bool {
    syntax::descendants(body, true).into_iter().any(|n| {
        if n.kind() != "identifier" || cx.text(n) != name {
            return false;
        }
        let mut p = n.parent();
        // `&name`, `(name)`
        while let Some(q) =
            p.filter(|q| matches!(q.kind(), "unary_expression" | "parenthesized_expression"))
        {
            p = q.parent();
        }
        p.is_some_and(|p| {
            matches!(
                p.kind(),
                "argument_list"
                    | "literal_value"
                    | "literal_element"
                    | "keyed_element"
                    | "expression_list"
                    | "return_statement"
            )
        })
    })
}

/// Whether the code after a call on `on` (`None`: a function call) releases the lock `field`
/// of it: `on.field.Unlock()` (`on.Unlock()` for an embedded lock), or a method of `on` (a
/// function, for a call without receiver) named like a release (`unlockState`, `release`,
/// `end`, `done`).
fn releases_after(after: &str, on: Option<&str>, field: &str) -> bool {
    let released = |name: &str| {
        let lower = name.to_lowercase();
        lower.contains("unlock")
            || lower.contains("release")
            || matches!(lower.as_str(), "end" | "exit" | "leave" | "done")
    };
    // Every call `X.name(` or `name(` after the call, with X as written.
    let calls = after.match_indices('(').filter_map(|(i, _)| {
        let before = &after[..i];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |p| p + 1);
        let callee = &before[start..];
        (!callee.is_empty()).then_some(callee)
    });
    for callee in calls {
        let (target, name) = callee.rsplit_once('.').unwrap_or(("", callee));
        match on {
            Some(recv) => {
                let lock = if field.is_empty() {
                    recv.to_string()
                } else {
                    format!("{recv}.{field}")
                };
                if (target == lock && name.ends_with("Unlock"))
                    || (target == recv && released(name))
                {
                    return true;
                }
            }
            None => {
                if (target == field && name.ends_with("Unlock"))
                    || (target.is_empty() && released(name))
                {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether a variable of `cond` is assigned between `from` and `to` (other than set to
/// `true`, as a flag right after the lock is).
fn changed_between(cx: &Checker, body: Node, from: Node, to: Node, cond: Node) -> bool {
    // The variables and fields the condition reads (`tw.changes`), as written.
    let reads: Vec<String> = syntax::descendants(cond, false)
        .into_iter()
        .filter(|n| {
            matches!(n.kind(), "identifier" | "selector_expression")
                && n.parent().is_none_or(|p| p.kind() != "selector_expression")
        })
        .map(|n| syntax::normalize(cx.text(n)))
        .collect();
    // Assigning `t` changes a read `r` when one is the other or a part of it.
    let touches = |t: &str| {
        reads.iter().any(|r| {
            r == t
                || r.strip_prefix(t).is_some_and(|rest| rest.starts_with('.'))
                || t.strip_prefix(r.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    };
    syntax::descendants(body, true).into_iter().any(|n| {
        if n.start_byte() <= from.end_byte() || n.end_byte() > to.start_byte() {
            return false;
        }
        let targets: Vec<Node> = match n.kind() {
            "assignment" | "short_var_declaration" => match syntax::assignment_sides(n) {
                Some((lhs, rhs)) if !(rhs.len() == 1 && cx.text(rhs[0]) == "true") => lhs,
                _ => Vec::new(),
            },
            "inc_dec_statement" => n.child_by_field_name("operand").into_iter().collect(),
            _ => Vec::new(),
        };
        targets
            .iter()
            .any(|t| touches(&syntax::normalize(cx.text(*t))))
    })
}

/// The conditions that hold exactly when the lock statement `stmt` ran: the condition of the
/// `if` whose body it is in (unless that `if` has an initializer, whose variables are gone
/// later), and `flag` for a `flag = true` among the statements right after it. The
/// variables in them must not change in between for this to be sound; the rule accepts
/// that, as a reader of the code does.
fn lock_guards(cx: &Checker, stmt: Node) -> Vec<String> {
    let mut out = Vec::new();
    let Some(block) = stmt.parent().filter(|b| b.kind() == "block") else {
        return out;
    };
    if let Some(ifs) = block.parent().filter(|p| p.kind() == "if_statement") {
        if ifs.child_by_field_name("body").map(|b| b.id()) == Some(block.id())
            && ifs.child_by_field_name("init_statement").is_none()
        {
            if let Some(c) = ifs.child_by_field_name("condition") {
                out.push(syntax::normalize(cx.text(c)));
            }
        }
    }
    for s in syntax::block_statements(block)
        .into_iter()
        .filter(|s| s.start_byte() > stmt.start_byte())
    {
        if s.kind() != "assignment" {
            continue;
        }
        if let Some((lhs, rhs)) = syntax::assignment_sides(s) {
            if let ([l], [r]) = (lhs.as_slice(), rhs.as_slice()) {
                if l.kind() == "identifier" && cx.text(*r) == "true" {
                    out.push(cx.text(*l).to_string());
                }
            }
        }
    }
    out
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
