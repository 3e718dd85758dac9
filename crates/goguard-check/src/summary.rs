//! What a function of the package does that its callers' rules need to know, read from its
//! body: for now, whether a method releases a lock kept in a field of its receiver (grpc's
//! `cc.updateResolverStateAndUnlock()` unlocks `cc.mu`), so that a caller that locked
//! `cc.mu` and calls it has released the lock.

use tree_sitter::Node;

use crate::checker::Checker;
use crate::syntax::{self, Call};

/// Whether `call` releases the lock `lock` (as written, `ccr.cc.mu`) with `unlock`
/// (`Unlock`, `RUnlock`): it is `X.m(...)` with `lock` = `X.f`, and every method `m` of the
/// package unlocks its receiver's `f` in its own body (directly or deferred).
pub fn call_releases(cx: &Checker, call: Node, lock: &str, unlock: &str) -> bool {
    let Some(c) = Call::of(syntax::unparen(call)) else {
        return false;
    };
    let Some(operand) = c.receiver else {
        return false;
    };
    let operand = syntax::normalize(cx.text(operand));
    let Some(field) = lock
        .strip_prefix(operand.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    if field.contains('.') {
        return false;
    }
    let name = cx.text(c.name);
    let mut methods = cx
        .pkg
        .methods
        .iter()
        .filter(|((_, m), _)| *m == name)
        .flat_map(|(_, decls)| decls)
        .filter(|d| cx.pkg.builds_with(cx.file_in_pkg, d.file))
        .peekable();
    methods.peek().is_some()
        && methods.all(|decl| {
            let src = cx.pkg.files[decl.file].text.as_str();
            method_unlocks(decl.node, src, field, unlock)
        })
}

/// Whether a method of type `ty` releases its receiver's lock `field` without taking it: the
/// other half of a lock/unlock pair of methods (`WriteMode` locks, `ReadMode` unlocks), so a
/// method of the type that only locks hands the lock to its caller.
pub fn type_releases(cx: &Checker, ty: &str, field: &str, unlock: &str) -> bool {
    let lock = if unlock == "RUnlock" { "RLock" } else { "Lock" };
    cx.pkg
        .methods
        .iter()
        .filter(|((t, _), _)| *t == ty)
        .flat_map(|(_, decls)| decls)
        .any(|decl| {
            let src = cx.pkg.files[decl.file].text.as_str();
            method_unlocks(decl.node, src, field, unlock)
                && !method_unlocks(decl.node, src, field, lock)
        })
}

/// Whether a method of type `ty` other than `except` both takes and releases its receiver's
/// lock `field`: the type uses that lock for critical sections, not to hand it over.
pub fn type_pairs(cx: &Checker, ty: &str, except: Node, field: &str) -> bool {
    cx.pkg
        .methods
        .iter()
        .filter(|((t, _), _)| *t == ty)
        .flat_map(|(_, decls)| decls)
        .filter(|decl| decl.node.id() != except.id())
        .any(|decl| {
            let src = cx.pkg.files[decl.file].text.as_str();
            (method_unlocks(decl.node, src, field, "Unlock")
                || method_unlocks(decl.node, src, field, "RUnlock"))
                && (method_unlocks(decl.node, src, field, "Lock")
                    || method_unlocks(decl.node, src, field, "RLock"))
        })
}

/// Whether `method`'s body calls `recv.field.unlock()` (`recv.unlock()` for an empty
/// `field`: a lock embedded in the receiver) outside nested function literals other than
/// deferred ones.
fn method_unlocks(method: Node, src: &str, field: &str, unlock: &str) -> bool {
    let Some((recv, _)) = syntax::receiver(method, src) else {
        return false;
    };
    if recv.is_empty() || recv == "_" {
        return false;
    }
    let want = if field.is_empty() {
        recv.to_string()
    } else {
        format!("{recv}.{field}")
    };
    let Some(body) = method.child_by_field_name("body") else {
        return false;
    };
    syntax::descendants(body, true).into_iter().any(|n| {
        Call::of(n).is_some_and(|c| {
            &src[c.name.byte_range()] == unlock
                && c.receiver
                    .is_some_and(|r| syntax::normalize(&src[r.byte_range()]) == want)
        })
    })
}

/// Whether `func` runs for the life of the process by design: `main` of package `main`, or a
/// function whose every use in the package is a call (or `go` statement) in a function that
/// itself runs for the process: `main`, or one that never returns (it ends in `select {}` or
/// a loop with no way out), where the call is not inside a loop (it starts one daemon, not
/// one per turn). A loop in such a function that never ends is the program's own lifetime,
/// not a leak.
pub fn runs_for_process_lifetime(cx: &Checker, func: Node) -> bool {
    if func.kind() != "function_declaration" {
        return false;
    }
    let Some(name) = func.child_by_field_name("name").map(|n| cx.text(n)) else {
        return false;
    };
    let package_main = cx.file.package_name() == Some("main");
    if name == "main" && package_main {
        return true;
    }
    let callers = crate::callgraph::callers(cx.pkg, cx.file_in_pkg, func);
    !callers.sites.is_empty()
        && callers.all_known()
        && callers.sites.iter().all(|site| {
            let file = cx.pkg.files[site.file];
            let ix = &cx.pkg.file_indexes[site.file];
            let src = file.text.as_str();
            let mut outer = site.node;
            while let Some(f) = ix.enclosing_function(outer) {
                outer = f;
            }
            let is_main = package_main
                && outer.kind() == "function_declaration"
                && outer
                    .child_by_field_name("name")
                    .is_some_and(|n| &src[n.byte_range()] == "main");
            let from_daemon = || {
                syntax::enclosing_loop(site.node).is_none()
                    && outer
                        .child_by_field_name("body")
                        .is_some_and(|b| crate::cfg::never_returns(b, src))
            };
            is_main || from_daemon()
        })
}
