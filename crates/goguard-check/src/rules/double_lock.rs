//! G403 double-lock.

use tree_sitter::Node;

use super::locksets::{self, Event, LockId};
use crate::checker::{Checker, Finding};

/// A file this rule can report in contains one of these (a Lock call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["Lock("];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G403 double-lock

## What it does
Reports a mutex locked again on a path where it is already held: a second `Lock`, a
recursive `RLock` on an `RWMutex`, or a call to a method of the same receiver that locks
the same mutex while the caller holds it.

## Why is this bad?
Go's mutexes are not reentrant. A second `Lock` by the goroutine that holds the lock waits
for itself forever. A recursive `RLock` deadlocks as soon as a writer calls `Lock` between
the two read locks (a pending writer blocks new readers), which happens under load.

## Example
```go
func (s *Store) Put(k, v string) {
    s.mu.Lock()
    defer s.mu.Unlock()
    if s.Has(k) { // Has also takes s.mu: deadlock
        return
    }
    s.m[k] = v
}

func (s *Store) Has(k string) bool {
    s.mu.Lock()
    defer s.mu.Unlock()
    _, ok := s.m[k]
    return ok
}
```

## Use instead
Split the locked part into an unexported helper that expects the lock to be held:
```go
func (s *Store) Has(k string) bool {
    s.mu.Lock()
    defer s.mu.Unlock()
    return s.hasLocked(k)
}

func (s *Store) hasLocked(k string) bool { _, ok := s.m[k]; return ok }
```

## Known limits
Locks are matched by expression text within a function; methods are followed one level
deep and only within the same file. After an `if` a lock counts as held only if every
branch still holds it.

## References
- https://pkg.go.dev/sync#Mutex
- https://pkg.go.dev/sync#RWMutex ("If any goroutine calls Lock while the lock is already held by one or more readers, concurrent calls to RLock will block")
"#;

pub fn check(cx: &mut Checker) {
    let mut findings = Vec::new();
    for f in cx.index.functions_calling(cx.src(), &["Lock", "RLock"]) {
        for e in locksets::events(cx, f) {
            match e {
                Event::Relock { node, .. } if unlocked_by_other_function(cx, f, node) => {}
                Event::Relock { node, key, first, reader } => findings.push(Finding {
                    node,
                    message: if reader {
                        format!("recursive `{key}.RLock()`: already read-locked at line {}; a writer arriving in between deadlocks both", cx.line(first))
                    } else {
                        format!("`{key}` is locked again while already held since line {}: Go mutexes are not reentrant", cx.line(first))
                    },
                    help: format!("unlock `{key}` before locking it again, or restructure so the lock is taken once"),
                    severity: None,
                }),
                Event::CallRelock { node, key, method, first } => findings.push(Finding {
                    node,
                    message: format!("`{method}` locks `{key}`, which this function already holds since line {}: deadlock", cx.line(first)),
                    help: format!("call a helper that expects `{key}` to be held (e.g. `{}Locked`), or release it first", method.to_lowercase()),
                    severity: None,
                }),
                _ => {}
            }
        }
    }
    for f in findings {
        cx.report(f);
    }
}

/// Whether the mutex locked again at `relock` is a variable of this function that another
/// goroutine unlocks (the relocking function or the unlocking one is started by `go`): Go
/// mutexes belong to no goroutine, so the second `Lock` waits for that one (a mutex used as
/// a signal), it does not deadlock on itself.
fn unlocked_by_other_function<'a>(cx: &Checker<'a>, f: Node<'a>, relock: Node<'a>) -> bool {
    let Some(recv) = crate::syntax::Call::of(relock).and_then(|c| c.receiver) else {
        return false;
    };
    let Some(id @ LockId::Local { .. }) = locksets::identity(cx, f, recv) else {
        return false;
    };
    cx.index.calls_named(&["Unlock"]).into_iter().any(|u| {
        let Some(g) = cx.enclosing_function(u).filter(|g| g.id() != f.id()) else {
            return false;
        };
        // One side must be a goroutine the other does not run in: the function started by
        // `go`, or the unlocking one (two callbacks may well run one after the other in
        // the same goroutine, and then the second Lock never returns).
        let apart = (is_goroutine(f) && !crate::syntax::contains(f, g))
            || (is_goroutine(g) && !crate::syntax::contains(g, f));
        apart
            && crate::syntax::Call::of(u)
                .and_then(|c| c.receiver)
                .and_then(|r| locksets::identity(cx, g, r))
                .is_some_and(|other| other == id)
    })
}

/// Whether `f` is a function literal started by a `go` statement.
fn is_goroutine(f: Node) -> bool {
    f.kind() == "function_literal"
        && f.parent()
            .and_then(|call| call.parent())
            .is_some_and(|s| s.kind() == "go_statement")
}
