//! G404 lock-order-inversion.

use std::collections::HashMap;

use tree_sitter::Node;

use super::locksets::{self, Event, LockId};
use crate::checker::{Checker, Finding};

/// A file this rule can report in contains one of these (a Lock call): see `registry::Rule::needs`.
pub const NEEDS: &[&str] = &["Lock("];
pub const SYMPTOMS: &[&str] = &[];

pub const DOC: &str = r#"# G404 lock-order-inversion

## What it does
Reports two places in the package that take the same two locks in opposite orders: one
holds A while locking B, the other holds B while locking A.

## Why is this bad?
When both run at the same time, each goroutine holds the lock the other is waiting for
and neither can continue: an AB-BA deadlock. It needs the right interleaving, so it passes
tests and appears under production load.

## Example
```go
func (b *Bank) Transfer() {
    b.accounts.Lock()
    b.audit.Lock() // accounts -> audit
    // ...
    b.audit.Unlock()
    b.accounts.Unlock()
}

func (b *Bank) Report() {
    b.audit.Lock()
    b.accounts.Lock() // audit -> accounts: inverted
    // ...
}
```

## Use instead
Pick one global order (document it next to the fields) and take the locks in that order
everywhere.

## Known limits
Locks are identified as `Type.field` for receiver fields and by name for package-level
variables; locks reached through parameters or locals are not compared (the order of
`a.mu` and `b.mu` for two values of one type depends on the values, not the code). Only
functions of the same file are compared.

## References
- https://go.dev/wiki/LockOrdering
"#;

pub fn check(cx: &mut Checker) {
    // Sites per direction: (held, acquired) -> lock calls.
    let mut sites: HashMap<(LockId, LockId), Vec<Node>> = HashMap::new();
    for f in cx.index.functions_calling(cx.src(), &["Lock", "RLock"]) {
        for e in locksets::events(cx, f) {
            if let Event::Order {
                node,
                held,
                acquired,
            } = e
            {
                // Locals are compared only within their function: the same names in two
                // functions are different locks.
                if !held.is_shared() || !acquired.is_shared() || held == acquired {
                    continue;
                }
                sites.entry((held, acquired)).or_default().push(node);
            }
        }
    }
    let mut findings = Vec::new();
    for ((held, acquired), nodes) in &sites {
        let Some(reverse) = sites.get(&(acquired.clone(), held.clone())) else {
            continue;
        };
        // Report the direction with fewer sites: it is the odd one out. On a tie, the
        // direction whose first site comes later.
        let later = |a: &[Node], b: &[Node]| a[0].start_byte() > b[0].start_byte();
        if nodes.len() > reverse.len() || (nodes.len() == reverse.len() && !later(nodes, reverse)) {
            continue;
        }
        for node in nodes {
            findings.push(Finding {
                node: *node,
                message: format!(
                    "`{acquired}` is locked while holding `{held}`, but line {} locks `{held}` while holding `{acquired}`: opposite orders can deadlock",
                    cx.line(reverse[0])
                ),
                help: format!("take `{held}` and `{acquired}` in one agreed order everywhere"),
                severity: None,
            });
        }
    }
    for f in findings {
        cx.report(f);
    }
}
