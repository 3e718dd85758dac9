//! Loop helpers shared by the goroutine-lifetime rules (G102, G103, G105).

use tree_sitter::Node;

use crate::cfg::{self, Exit, Item};
use crate::checker::Checker;
use crate::dataflow::{self, Analysis};
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

/// True when something inside the loop can end it: a `return`, a `break` out of it, a
/// `continue` to an outer loop, a `goto` out, a call that does not return.
pub fn has_exit(cx: &Checker, for_stmt: Node) -> bool {
    match for_stmt.child_by_field_name("body") {
        Some(body) => can_leave(cx, for_stmt, body, None),
        None => true,
    }
}

/// Whether a case of a select or switch can leave the loop around it (or, outside a loop,
/// the function) from its own statements: a `return`, a `break` or `continue` past the
/// loop, a `goto` out, a call that never returns. A `break` of the select itself does not:
/// the loop goes round again.
pub fn clause_leaves(cx: &Checker, clause: Node) -> bool {
    let Some(owner) = clause.parent() else {
        return false;
    };
    match syntax::enclosing_loop(owner) {
        Some(lp) => lp
            .child_by_field_name("body")
            .is_some_and(|body| can_leave(cx, lp, body, Some(clause))),
        None => cx
            .enclosing_function(owner)
            .and_then(|f| f.child_by_field_name("body"))
            .is_some_and(|body| can_leave(cx, owner, body, Some(clause))),
    }
}

/// Whether every path through a select case's statements leaves the loop around it: none
/// reaches the end of the select (after which the loop can go round again), the end of the
/// loop's body, or a `continue` of the loop. A case of a select outside a loop never does.
pub fn clause_always_leaves(cx: &Checker, clause: Node) -> bool {
    let Some(select) = clause.parent() else {
        return false;
    };
    let Some(lp) = syntax::enclosing_loop(select) else {
        return false;
    };
    let Some(body) = lp.child_by_field_name("body") else {
        return false;
    };
    /// Bit 0: on a path that went through the case; bit 1: such a path got past the select.
    struct Through<'a> {
        clause: Node<'a>,
        select: Node<'a>,
    }
    impl<'a> Analysis<'a> for Through<'a> {
        type State = u8;
        fn apply(&self, item: Item<'a>, on: &mut u8) {
            let n = item.node();
            if syntax::contains(self.clause, n) {
                *on |= 1;
            } else if matches!(item, Item::Done(d) if d.id() == self.select.id()) && *on & 1 != 0 {
                *on = 2;
            }
        }
        fn join(&self, into: &mut u8, other: &u8) {
            *into |= *other;
        }
    }
    let graph = cfg::build(body, cx.src());
    let analysis = Through { clause, select };
    let solution = dataflow::solve(&graph, &analysis, 0);
    let loop_label = label_of(cx, lp);
    // A case that cannot be entered (no statement of it in the graph) proves nothing.
    let mut entered = false;
    for (exit, on) in dataflow::exits(&graph, &analysis, &solution) {
        if on == 0 {
            continue;
        }
        entered = true;
        let stays = on & 2 != 0
            || match exit {
                Exit::End(_) => true,
                Exit::Jump(j) => {
                    j.kind() == "continue_statement"
                        && syntax::label(j, cx.src()).is_none_or(|l| Some(l) == loop_label)
                }
                Exit::Return(_) | Exit::NoReturn(_) | Exit::Goto(_) => false,
            };
        if stays {
            return false;
        }
    }
    entered
}

/// The label of a labelled statement (`outer: for ...`), if it has one.
fn label_of<'a>(cx: &Checker<'a>, stmt: Node<'a>) -> Option<&'a str> {
    stmt.parent()
        .filter(|p| p.kind() == "labeled_statement")
        .and_then(|p| syntax::label(p, cx.src()))
}

/// Whether a path through `region` (the body of `owner`, a loop or a function) leaves it:
/// from anywhere, or only from the statements of `from` (a case clause) before its
/// select or switch ends.
fn can_leave<'a>(
    cx: &Checker<'a>,
    owner: Node<'a>,
    region: Node<'a>,
    from: Option<Node<'a>>,
) -> bool {
    struct Reached<'a> {
        from: Option<Node<'a>>,
    }
    impl<'a> Analysis<'a> for Reached<'a> {
        type State = bool;
        fn apply(&self, item: Item<'a>, on: &mut bool) {
            let Some(from) = self.from else { return };
            let n = item.node();
            if syntax::contains(from, n) {
                *on = true;
            } else if matches!(item, Item::Done(d) if Some(d.id()) == from.parent().map(|p| p.id()))
            {
                *on = false; // past the select: no longer this clause's path
            }
        }
        fn join(&self, into: &mut bool, other: &bool) {
            *into |= *other;
        }
    }
    let graph = cfg::build(region, cx.src());
    let analysis = Reached { from };
    let solution = dataflow::solve(&graph, &analysis, from.is_none());
    let loop_label = label_of(cx, owner);
    dataflow::exits(&graph, &analysis, &solution)
        .into_iter()
        .filter(|(_, on)| *on)
        .any(|(exit, _)| match exit {
            Exit::Return(_) | Exit::NoReturn(_) | Exit::Goto(_) => true,
            // Out of the body: a break leaves the loop, a continue leaves it only for an
            // outer loop's label.
            Exit::Jump(j) => {
                j.kind() == "break_statement"
                    || syntax::label(j, cx.src()).is_some_and(|l| Some(l) != loop_label)
            }
            Exit::End(_) => false,
        })
}

/// The `for` keyword of a loop, where findings about the loop are reported.
pub fn for_keyword(for_stmt: Node) -> Node {
    for_stmt.child(0).unwrap_or(for_stmt)
}
