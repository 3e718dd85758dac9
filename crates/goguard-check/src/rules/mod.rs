//! The rules, one module each, named after the rule. Each module holds the detection code
//! and the rule's documentation (`DOC`), which `goguard explain` prints.

use tree_sitter::Node;

use crate::checker::Checker;
use crate::diagnostic::Severity::{Error, Info, Warning};
use crate::registry::Rule;
use crate::syntax::{self, Call};

mod abandoned_sender;
mod blocking_while_locked;
mod context_cancel_not_called;
mod copied;
mod double_lock;
mod goroutine_ignores_context;
mod goroutine_pins_large_capture;
mod handler_goroutine_without_request_context;
mod lock_order_inversion;
mod locksets;
mod loops;
mod mutex_copied;
mod mutex_not_unlocked_on_path;
mod range_over_unclosed_channel;
mod select_default_drops_message;
mod spinning_select_default;
mod ticker_or_timer_not_stopped;
mod time_after_in_loop;
mod unbuffered_send_without_receiver;
mod waitgroup_add_after_go;
mod waitgroup_copied;
mod waitgroup_done_skippable;
mod waitgroup_done_twice;

macro_rules! rule {
    ($code:literal, $name:literal, $sev:expr, $module:ident, $summary:literal, $why:literal) => {
        rule!($code, $name, $sev, $module, $summary, $why, fix: "")
    };
    ($code:literal, $name:literal, $sev:expr, $module:ident, $summary:literal, $why:literal, fix: $fix:literal) => {
        Rule {
            code: $code,
            name: $name,
            severity: $sev,
            summary: $summary,
            why: $why,
            doc: $module::DOC,
            needs: $module::NEEDS,
            symptoms: $module::SYMPTOMS,
            fix: $fix,
            check: $module::check,
        }
    };
}

/// The registry. Ids are a contract: never renumber, never reuse.
pub static RULES: &[Rule] = &[
    rule!("G100", "unbuffered-send-without-receiver", Error, unbuffered_send_without_receiver,
        "a send on an unbuffered channel with no goroutine started to receive it",
        "a send on an unbuffered channel blocks until another goroutine receives, and none can"),
    rule!("G101", "range-over-unclosed-channel", Error, range_over_unclosed_channel,
        "`for range ch` over a channel its producer never closes, or closes only on some paths",
        "`for range` over a channel ends only when the channel is closed; until then the goroutine waits forever"),
    rule!("G102", "goroutine-ignores-context", Warning, goroutine_ignores_context,
        "a goroutine with a context in reach that loops forever without checking `ctx.Done()`",
        "cancelling the context does not stop a goroutine that never looks at it, so it runs (and holds its memory) forever"),
    rule!("G103", "ticker-or-timer-not-stopped", Warning, ticker_or_timer_not_stopped,
        "`time.NewTicker`/`time.NewTimer` never stopped, `time.Tick` in a function that returns",
        "an unstopped ticker keeps firing; before Go 1.23 it is never garbage-collected", fix: "safe / unsafe (before Go 1.23)"),
    rule!("G104", "handler-goroutine-without-request-context", Warning, handler_goroutine_without_request_context,
        "an HTTP handler starts a goroutine doing slow work without the request's context",
        "the goroutine outlives the request, holds up Server.Shutdown, and piles up with every request"),
    rule!("G105", "goroutine-pins-large-capture", Warning, goroutine_pins_large_capture,
        "a goroutine that never ends keeps a large allocation alive that it does not use",
        "a running goroutine's stack is a GC root: whatever it captures lives as long as it runs"),
    rule!("G106", "abandoned-sender", Error, abandoned_sender,
        "a goroutine sends on an unbuffered channel whose receiver can give up first",
        "when the receiver has returned, the send blocks forever and the goroutine leaks", fix: "safe / unsafe"),
    rule!("G201", "time-after-in-loop", Warning, time_after_in_loop,
        "`time.After` created on every iteration of a loop",
        "each iteration creates a new timer; before Go 1.23 each lives until it fires", fix: "safe / unsafe (before Go 1.23)"),
    rule!("G202", "select-default-drops-message", Warning, select_default_drops_message,
        "`select { case ch <- v: ... default: }` silently discards the message",
        "when the channel is full the message is lost with no error, no retry and no metric"),
    rule!("G203", "spinning-select-default", Warning, spinning_select_default,
        "a loop around a select with an empty default: busy spinning",
        "an empty default makes the select non-blocking, so the loop burns a CPU core while it waits"),
    rule!("G204", "context-cancel-not-called", Warning, context_cancel_not_called,
        "the cancel function of `context.WithCancel/Timeout/Deadline` discarded or not called on every path",
        "until cancel is called the context and its timer stay alive, and so do the goroutines waiting on it", fix: "safe / unsafe"),
    rule!("G301", "waitgroup-add-after-go", Error, waitgroup_add_after_go,
        "`wg.Add` inside the spawned goroutine or after the `go` statement it accounts for",
        "`Wait` can run before `Add`: it returns too early, or `Done` drives the counter negative and panics", fix: "safe / unsafe"),
    rule!("G302", "waitgroup-done-twice", Error, waitgroup_done_twice,
        "more than one `Done` for one `Add` on some path",
        "the extra `Done` makes the counter negative: `panic: sync: negative WaitGroup counter`"),
    rule!("G303", "waitgroup-copied", Error, waitgroup_copied,
        "a `sync.WaitGroup` (or a struct holding one) passed, received, returned or assigned by value",
        "`Add`/`Done` on a copy do not reach the original, so `Wait` returns early or blocks forever", fix: "unsafe"),
    rule!("G304", "waitgroup-done-skippable", Error, waitgroup_done_skippable,
        "a `Done` that is not deferred and that an early exit can skip",
        "when `Done` is skipped the counter never reaches zero and `Wait` blocks forever", fix: "safe / unsafe"),
    rule!("G401", "mutex-not-unlocked-on-path", Error, mutex_not_unlocked_on_path,
        "`Lock`/`RLock` with a return path that leaves it locked",
        "the next `Lock` on this mutex blocks forever", fix: "safe / unsafe"),
    rule!("G402", "mutex-copied", Error, mutex_copied,
        "a `sync.Mutex`/`RWMutex` (or a struct holding one) copied by value",
        "a copied mutex is a different lock: the copy protects nothing, and a copy taken while locked stays locked"),
    rule!("G403", "double-lock", Error, double_lock,
        "the same lock taken twice on one path without an unlock between",
        "Go mutexes are not reentrant: the second `Lock` waits for the first to be released, forever"),
    rule!("G404", "lock-order-inversion", Warning, lock_order_inversion,
        "two functions take the same two locks in opposite orders (AB-BA)",
        "when both run at once each holds the lock the other waits for: a deadlock"),
    rule!("G405", "blocking-while-locked", Warning, blocking_while_locked,
        "a channel operation or `Wait` while holding a lock the other side must take",
        "the goroutine that would unblock it waits for the lock held here: a deadlock"),
];

// Keep `Info` in scope for rules that downgrade by Go version.
#[allow(dead_code)]
const _INFO: crate::diagnostic::Severity = Info;

/// The code a `go` statement runs: the function literal's body, or the body of the package
/// function or method it calls. Returns the function node.
pub(crate) fn goroutine_function<'a>(cx: &Checker<'a>, go_stmt: Node<'a>) -> Option<Node<'a>> {
    if let Some(lit) = syntax::stmt_func_literal(go_stmt) {
        return Some(lit);
    }
    let call = Call::of(syntax::stmt_call(go_stmt)?)?;
    if call.receiver.is_none() {
        return cx.local_func(cx.text(call.name));
    }
    None
}

/// The functions and methods of this file that a `go` statement in *another* file of the
/// package starts (`go worker(&wg)` in main.go, `func worker` here; `go s.loop()` on a
/// receiver of the method's type), with where: a goroutine's body is checked in the file
/// that holds it, whoever starts it.
pub(crate) fn started_elsewhere<'a>(cx: &Checker<'a>) -> Vec<(Node<'a>, String)> {
    let mut out: Vec<(Node<'a>, String)> = Vec::new();
    // The `go` statements of the other files are few: read each one's callee.
    for (i, (file, ix)) in cx.pkg.files.iter().zip(&cx.pkg.file_indexes).enumerate() {
        if i == cx.file_in_pkg || !cx.pkg.builds_with(cx.file_in_pkg, i) {
            continue;
        }
        let src = file.text.as_str();
        for &go in &ix.go_stmts {
            let Some(c) = syntax::stmt_call(go).and_then(Call::of) else {
                continue;
            };
            let name = &src[c.name.byte_range()];
            let started = match c.receiver {
                None => cx.local_func(name),
                Some(r) => crate::callgraph::receiver_type(cx.pkg, ix, src, r)
                    .and_then(|ty| cx.local_method(ty, name)),
            };
            let Some(f) = started else { continue };
            if out.iter().any(|(g, _)| g.id() == f.id()) {
                continue;
            }
            out.push((f, cx.pkg.site(i, go, cx.file_in_pkg)));
        }
    }
    out
}

/// The WaitGroup expression text of a `recv.Method()` call if recv is a WaitGroup.
pub(crate) fn wg_method<'a>(
    cx: &Checker<'a>,
    node: Node<'a>,
    names: &[&str],
) -> Option<(String, Call<'a>)> {
    let call = crate::resolve::sync_call(cx, node, crate::package::SyncKind::WaitGroup, names)?;
    Some((syntax::normalize(cx.text(call.receiver?)), call))
}

/// Suggests `wg.Go` where the module's Go version has it.
pub(crate) fn wg_go_hint(cx: &Checker, wg: &str) -> String {
    if cx
        .go_version()
        .at_least(crate::gomod::GoVersion::WAITGROUP_GO)
    {
        format!(" Since Go 1.25 (this module: {}), `{wg}.Go(func() {{ ... }})` does the Add and the deferred Done for you.", cx.module.describe())
    } else {
        String::new()
    }
}
