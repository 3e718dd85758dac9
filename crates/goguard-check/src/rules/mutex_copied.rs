//! G402 mutex-copied.

use crate::checker::Checker;
use crate::package::SyncKind;

/// A file this rule can report in contains one of these (sync (or a lock-holding type of the package, see the engine)): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["sync"];
/// What a goroutine dump or a crash shows when this bug happens: see `registry::Rule::symptoms`.
pub const SYMPTOMS: &[&str] = &["fatal error: sync: unlock of unlocked mutex"];

pub const DOC: &str = r#"# G402 mutex-copied

## What it does
Reports a `sync.Mutex` or `sync.RWMutex`, or a struct of this package holding one by value,
that is copied: a value receiver, a value parameter, an assignment, a return, a `range`
variable, a call argument, or a channel element.

## Why is this bad?
A copied mutex is a separate lock. Code locking the copy does not exclude code locking the
original, so the data it guards races; and a copy made while the original is locked starts
out locked, so the first `Lock` on it blocks forever.

## Example
```go
type Counter struct {
    mu sync.Mutex
    n  int
}

func (c Counter) Inc() { // value receiver: locks a copy
    c.mu.Lock()
    c.n++
    c.mu.Unlock()
}
```

## Use instead
```go
func (c *Counter) Inc() {
    c.mu.Lock()
    defer c.mu.Unlock()
    c.n++
}
```

## Known limits
Types are read from declarations in the same function and package. `go vet -copylocks`
covers the same ground with full type information; goguard runs without building.

## References
- https://pkg.go.dev/sync#Mutex ("A Mutex must not be copied after first use")
- https://pkg.go.dev/cmd/vet (copylocks)
"#;

pub fn check(cx: &mut Checker) {
    super::copied::check_copies(cx, SyncKind::Mutex, "a mutex", "share the lock");
}
