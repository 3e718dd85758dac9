//! G303 waitgroup-copied.

use crate::checker::Checker;
use crate::package::SyncKind;

/// A file this rule can report in contains one of these (sync (or a lock-holding type of the package, see the engine)): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["sync"];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G303 waitgroup-copied

## What it does
Reports a `sync.WaitGroup`, or a struct of this package holding one by value, that is
copied: passed or received as a parameter or receiver by value, returned, assigned, copied
by a `range` variable, passed to a call, or sent over a channel.

## Why is this bad?
A WaitGroup is a counter in memory. A copy is another counter: `Done` on the copy does not
decrement the original, so the original's `Wait` blocks forever (or `Add` on a copy is never
seen and `Wait` returns at once). This is the reference's 4.3.

## Example
```go
func worker(id int, wg sync.WaitGroup) { // a copy
    defer wg.Done()                       // decrements the copy
    work(id)
}

var wg sync.WaitGroup
wg.Add(1)
go worker(1, wg)
wg.Wait() // blocks forever
```

## Use instead
```go
func worker(id int, wg *sync.WaitGroup) {
    defer wg.Done()
    work(id)
}
go worker(1, &wg)
```
Or let a closure capture `wg` (closures capture variables, not copies).

## Fix
For a parameter of a function of this file (not exported) whose every call is in this
file and passes a variable, `--fix --unsafe-fixes` makes the parameter `*sync.WaitGroup` and
passes `&wg` at each call; for a receiver by value, it makes the receiver a pointer. Both
are unsafe: the function then counts on the caller's WaitGroup instead of a copy, which is
the point but changes what the program does, and a pointer receiver changes the type's
method set. No fix is offered for the other copies (an assignment, a return, a range
variable, a channel's element type): each needs a choice only a person can make.

## Known limits
Types are read from declarations in the same function and package; a WaitGroup reached
through another package's type is not seen. `go vet -copylocks` reports the same copies
with full type information.

## References
- https://pkg.go.dev/sync#WaitGroup ("A WaitGroup must not be copied after first use")
- https://pkg.go.dev/cmd/vet (copylocks)
"#;

pub fn check(cx: &mut Checker) {
    super::copied::check_copies(
        cx,
        SyncKind::WaitGroup,
        "a WaitGroup",
        "share the WaitGroup",
    );
}
