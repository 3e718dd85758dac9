//! Just enough name resolution for concurrency rules: what an identifier was declared as,
//! looking through the enclosing functions (closures see their parents' variables), then
//! the package.

use tree_sitter::Node;

use crate::checker::Checker;
use crate::package::{direct_sync_kind, FileIndex, SyncKind};
use crate::syntax::{self, Call};

/// How a variable was declared.
#[derive(Clone, Copy, Debug)]
pub enum Decl<'t> {
    /// A parameter, receiver or `var x T`: the type node.
    Type(Node<'t>),
    /// `x := v` or `var x = v`: the value node.
    Value(Node<'t>),
}

/// The declaration of identifier `name` visible at `at`, searching the enclosing functions
/// from the innermost out. Declarations after `at` are ignored.
pub fn declaration<'t>(cx: &Checker<'t>, at: Node<'t>, name: &str) -> Option<Decl<'t>> {
    declaration_in(cx.index, at, name)
}

/// [`declaration`] in any file of the package, by its index.
pub fn declaration_in<'t>(ix: &FileIndex<'t>, at: Node<'t>, name: &str) -> Option<Decl<'t>> {
    let mut func = ix.enclosing_function(at);
    while let Some(f) = func {
        {
            let decls = ix.declarations().get(&f.id()).and_then(|m| m.get(name));
            let found = decls
                .into_iter()
                .flatten()
                .rev()
                .find(|(_, node, _, scope)| {
                    node.start_byte() <= at.start_byte()
                        && scope.start <= at.start_byte()
                        && at.end_byte() <= scope.end
                });
            if let Some((_, _, d, _)) = found {
                return Some(*d);
            }
        }
        let declared = ix
            .signature(f)
            .and_then(|s| s.names().find(|(p, _)| *p == name));
        if let Some((_, ty)) = declared {
            return Some(Decl::Type(*ty));
        }
        func = ix.enclosing_function(f);
    }
    None
}

/// The sync value an expression refers to: a local or parameter declared as one, a field of
/// a package struct typed as one, a package-level variable, or a value of a struct type that
/// embeds one. Pointers count (`*sync.WaitGroup` is a WaitGroup to call methods on).
pub fn sync_kind<'a>(cx: &Checker<'a>, expr: Node<'a>) -> Option<SyncKind> {
    let expr = syntax::unparen(expr);
    let src = cx.src();
    match expr.kind() {
        "identifier" => {
            let name = cx.text(expr);
            match declaration(cx, expr, name) {
                Some(Decl::Type(t)) => type_sync_kind(cx, t),
                Some(Decl::Value(v)) => value_sync_kind(cx, v),
                None => cx.pkg.sync_globals.get(name).copied(),
            }
        }
        "selector_expression" => {
            let field = expr.child_by_field_name("field")?;
            cx.pkg.sync_fields.get(&src[field.byte_range()]).copied()
        }
        "unary_expression" => sync_kind(cx, expr.child_by_field_name("operand")?),
        _ => None,
    }
}

/// The sync kind of a type: `sync.X`, `*sync.X`, or a package type embedding one.
pub fn type_sync_kind<'a>(cx: &Checker<'a>, ty: Node<'a>) -> Option<SyncKind> {
    let src = cx.src();
    direct_sync_kind(ty, src).or_else(|| {
        let name = syntax::base_type_name(ty, src)?;
        cx.pkg.embeds.get(name).copied()
    })
}

fn value_sync_kind<'a>(cx: &Checker<'a>, v: Node<'a>) -> Option<SyncKind> {
    let v = syntax::unparen(v);
    match v.kind() {
        "composite_literal" => type_sync_kind(cx, v.child_by_field_name("type")?),
        "unary_expression" => value_sync_kind(cx, v.child_by_field_name("operand")?),
        "call_expression" => {
            let call = Call::of(v)?;
            if call.receiver.is_none() && cx.text(call.name) == "new" {
                return type_sync_kind(cx, *call.args.first()?);
            }
            result_sync_kind(cx, &call)
        }
        // `wg := s.wg` style aliases of a pointer field.
        "selector_expression" | "identifier" => sync_kind(cx, v),
        _ => None,
    }
}

/// The sync kind of what a call of the package returns (its first result): a function's, or
/// a method's when every method of that name in the package (built with this file) returns
/// the same kind, since the receiver's type is not known here (`ms :=
/// head.series.getByID(id)`, whose only `getByID` returns a `*memSeries` embedding a mutex).
fn result_sync_kind(cx: &Checker, call: &Call) -> Option<SyncKind> {
    let name = cx.text(call.name);
    if call
        .receiver
        .is_some_and(|r| r.kind() == "identifier" && cx.index.imports.contains_key(cx.text(r)))
    {
        return None; // another package's function
    }
    let decls: Vec<_> = match call.receiver {
        None => cx.pkg.funcs.get(name)?.iter().collect(),
        Some(_) => cx
            .pkg
            .methods
            .iter()
            .filter(|((_, m), _)| *m == name)
            .flat_map(|(_, d)| d)
            .collect(),
    };
    let mut kinds = decls
        .into_iter()
        .filter(|d| cx.pkg.builds_with(cx.file_in_pkg, d.file))
        .map(|d| {
            let src = cx.pkg.files[d.file].text.as_str();
            let ty = syntax::first_result_type(d.node, src)?;
            direct_sync_kind(ty, src).or_else(|| {
                let name = syntax::base_type_name(ty, src)?;
                cx.pkg.embeds.get(name).copied()
            })
        });
    let first = kinds.next()??;
    kinds.all(|k| k == Some(first)).then_some(first)
}

/// True when `recv` (the operand of a method call) is a WaitGroup.
pub fn is_waitgroup<'a>(cx: &Checker<'a>, recv: Node<'a>) -> bool {
    sync_kind(cx, recv) == Some(SyncKind::WaitGroup)
}

/// True when `recv` is a Mutex or RWMutex.
pub fn is_mutex<'a>(cx: &Checker<'a>, recv: Node<'a>) -> bool {
    sync_kind(cx, recv) == Some(SyncKind::Mutex)
}

/// A WaitGroup/Mutex method call `recv.Name(...)` matching one of `names`.
pub fn sync_call<'t>(
    cx: &Checker<'t>,
    node: Node<'t>,
    kind: SyncKind,
    names: &[&str],
) -> Option<Call<'t>> {
    let node = syntax::unparen(node);
    if node.kind() != "call_expression"
        || !syntax::call_name(node, cx.src()).is_some_and(|n| names.contains(&n))
    {
        return None;
    }
    let call = Call::of(node)?;
    let recv = call.receiver?;
    if !names.contains(&cx.text(call.name)) {
        return None;
    }
    (sync_kind(cx, recv) == Some(kind)).then_some(call)
}
