//! Loop helpers shared by the goroutine-lifetime rules (G102, G103, G105).

use tree_sitter::Node;

use crate::cfg::is_noreturn_call;
use crate::checker::Checker;
use crate::syntax;

/// True when a loop never ends by itself: `for { }`, `for range t.C`, `for range time.Tick(d)`.
pub fn runs_forever<'a>(cx: &Checker<'a>, for_stmt: Node<'a>) -> bool {
    if syntax::is_infinite_for(for_stmt) {
        return true;
    }
    match syntax::range_expr(for_stmt).map(syntax::unparen) {
        Some(r) if r.kind() == "selector_expression" => r
            .child_by_field_name("field")
            .is_some_and(|f| cx.text(f) == "C"),
        Some(r) => cx.pkg_call(r, "time", &["Tick"]).is_some(),
        None => false,
    }
}

/// True when something inside the loop can end it: a `return`, a `break` that targets it,
/// a `goto`, a call that does not return.
pub fn has_exit(cx: &Checker, for_stmt: Node) -> bool {
    let Some(body) = for_stmt.child_by_field_name("body") else {
        return true;
    };
    let label = for_stmt
        .parent()
        .filter(|p| p.kind() == "labeled_statement")
        .and_then(|p| p.child_by_field_name("label"))
        .map(|l| cx.text(l));
    syntax::descendants(body, false)
        .into_iter()
        .any(|n| match n.kind() {
            "return_statement" | "goto_statement" => true,
            "break_statement" => match n.child_by_field_name("label") {
                Some(l) => Some(cx.text(l)) == label,
                None => break_target(n).is_some_and(|t| t.id() == for_stmt.id()),
            },
            "call_expression" => is_noreturn_call(n, cx.src()),
            _ => false,
        })
}

/// The statement an unlabeled `break` leaves.
fn break_target(brk: Node) -> Option<Node> {
    let mut cur = brk.parent();
    while let Some(n) = cur {
        if matches!(
            n.kind(),
            "for_statement"
                | "select_statement"
                | "expression_switch_statement"
                | "type_switch_statement"
        ) {
            return Some(n);
        }
        if syntax::is_function(n) {
            return None;
        }
        cur = n.parent();
    }
    None
}

/// The `for` keyword of a loop, where findings about the loop are reported.
pub fn for_keyword(for_stmt: Node) -> Node {
    for_stmt.child(0).unwrap_or(for_stmt)
}
