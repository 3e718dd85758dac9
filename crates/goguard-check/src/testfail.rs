//! Which calls mark a Go test as failed: `t.Error`, `t.Errorf`, `t.Fatal`, `t.Fatalf`,
//! `t.Fail`, `t.FailNow` on a `*testing.T`, `B`, `F` or `TB` (or a suite's `s.T()`), and
//! testify's `require.Fail*`/`assert.Fail*`. A finding that can only happen after one of them
//! is on a test's failure path: the test has already failed and its process ends soon after,
//! so a goroutine leaked there is not what a user wants reported.

use tree_sitter::Node;

use crate::checker::Checker;
use crate::syntax::{self, Call};

/// Whether the file is a test file (`_test.go`).
pub fn is_test_file(cx: &Checker) -> bool {
    cx.file.path.to_string_lossy().ends_with("_test.go")
}

/// Whether `call` marks the test failed (see the module's documentation).
pub fn is_failure_call(cx: &Checker, call: &Call) -> bool {
    let name = cx.text(call.name);
    let Some(recv) = call.receiver else {
        return false;
    };
    let recv_text = syntax::normalize(cx.text(recv));
    match recv_text.as_str() {
        "require" | "assert" => name.starts_with("Fail"),
        _ => {
            matches!(
                name,
                "Error" | "Errorf" | "Fatal" | "Fatalf" | "Fail" | "FailNow"
            ) && is_testing_value(cx, recv)
        }
    }
}

/// `t`, `b`, `f`, `tb` declared as a `*testing.T`/`B`/`F` or `testing.TB`, or a call of
/// `T()` (testify suites).
fn is_testing_value(cx: &Checker, recv: Node) -> bool {
    let recv = syntax::unparen(recv);
    if recv.kind() == "call_expression" {
        return syntax::call_name(recv, cx.src()) == Some("T");
    }
    if recv.kind() != "identifier" {
        return false;
    }
    match crate::resolve::declaration(cx, recv, cx.text(recv)) {
        Some(crate::resolve::Decl::Type(ty)) => {
            let text = syntax::normalize(cx.text(ty));
            let text = text.trim_start_matches('*');
            matches!(text, "testing.T" | "testing.B" | "testing.F" | "testing.TB")
        }
        _ => false,
    }
}

/// Whether `node` (a select case, a block) calls something that marks the test failed,
/// outside the function literals in it.
/// Test helpers outside `_test.go` files (cgo's tests, shared test packages) count: the
/// call's receiver is a `*testing.T` whatever the file.
pub fn reports_failure(cx: &Checker, node: Node) -> bool {
    syntax::descendants(node, false)
        .into_iter()
        .filter_map(Call::of)
        .any(|c| is_failure_call(cx, &c))
}

/// Whether a statement is a call that marks the test failed (`t.Errorf(...);`).
pub fn is_failure_stmt(cx: &Checker, stmt: Node) -> bool {
    stmt.kind() == "expression_statement"
        && stmt
            .named_child(0)
            .and_then(|e| Call::of(syntax::unparen(e)))
            .is_some_and(|c| is_failure_call(cx, &c))
}
