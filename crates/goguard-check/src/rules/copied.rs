//! Shared detection for G303 (WaitGroup copied) and G402 (Mutex copied): a sync value, or a
//! package struct holding one by value, copied by a parameter, receiver, return, assignment,
//! range variable, call argument or channel element.

use std::collections::HashSet;

use tree_sitter::Node;

use crate::checker::{Checker, Finding};
use crate::fix::{Edit, Fix};
use crate::package::SyncKind;
use crate::resolve::{self, Decl};
use crate::syntax;

/// True when a type holds `kind` by value.
pub fn holds(cx: &Checker, ty: Node, kind: SyncKind) -> bool {
    cx.pkg.sync_kinds_of_type(ty, cx.src()).contains(&kind)
}

/// The type name for messages.
fn what(cx: &Checker, ty: Node) -> String {
    syntax::normalize(cx.text(ty))
}

/// The names the file declares (locals, parameters, receivers) with a declaration that
/// makes them a value holding `kind` (`values`) or a pointer to one (`pointers`). Only these
/// can be copied by reading them: every other identifier is passed over without resolving
/// it, and a file that declares none (most files) skips the per-expression checks.
#[derive(Default)]
struct Candidates<'a> {
    values: HashSet<&'a str>,
    pointers: HashSet<&'a str>,
}

impl<'a> Candidates<'a> {
    fn of(cx: &Checker<'a>, kind: SyncKind) -> Candidates<'a> {
        let mut out = Candidates::default();
        let locals = cx.index.declarations().values().flat_map(|m| {
            m.iter()
                .flat_map(|(name, decls)| decls.iter().map(move |(_, _, d, _)| (*name, *d)))
        });
        let params = cx
            .index
            .all_params()
            .map(|(name, ty)| (*name, Decl::Type(*ty)));
        for (name, decl) in locals.chain(params) {
            match decl {
                Decl::Type(t) if t.kind() == "pointer_type" => {
                    if t.named_child(0).is_some_and(|inner| holds(cx, inner, kind)) {
                        out.pointers.insert(name);
                    }
                }
                Decl::Type(t) if holds(cx, t, kind) => {
                    out.values.insert(name);
                }
                Decl::Value(v) => {
                    let v = syntax::unparen(v);
                    let t = (v.kind() == "composite_literal")
                        .then(|| v.child_by_field_name("type"))
                        .flatten();
                    if t.is_some_and(|t| holds(cx, t, kind)) {
                        out.values.insert(name);
                    }
                }
                Decl::Type(_) => {}
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.pointers.is_empty()
    }

    /// Whether `text` may read a candidate (a cheap test before taking a statement apart).
    fn mentioned_in(&self, text: &str) -> bool {
        self.values
            .iter()
            .chain(&self.pointers)
            .any(|n| text.contains(n))
    }

    /// Whether a call passes a candidate (`f(x)`, `f(*p)`), read from its argument nodes
    /// without taking the call apart.
    fn passed_to(&self, cx: &Checker, call: Node) -> bool {
        let Some(args) = call.child_by_field_id(syntax::fields().arguments) else {
            return false;
        };
        let mut cursor = args.walk();
        let passed = args.named_children(&mut cursor).any(|a| {
            let a = syntax::unparen(a);
            match a.kind() {
                "identifier" => self.values.contains(cx.text(a)),
                "unary_expression" => a
                    .child_by_field_id(syntax::fields().operand)
                    .is_some_and(|p| self.pointers.contains(cx.text(syntax::unparen(p)))),
                _ => false,
            }
        });
        passed
    }
}

/// True when expression `e` is a value (not a pointer) of a type holding `kind`, and reading
/// it copies: an identifier declared with such a type, or `*p` with `p` a pointer to one.
fn is_holding_value<'a>(
    cx: &Checker<'a>,
    cands: &Candidates,
    e: Node<'a>,
    kind: SyncKind,
) -> Option<String> {
    let e = syntax::unparen(e);
    match e.kind() {
        "identifier" if !cands.values.contains(cx.text(e)) => None,
        "identifier" => match resolve::declaration(cx, e, cx.text(e))? {
            Decl::Type(t) => holds(cx, t, kind).then(|| what(cx, t)),
            Decl::Value(v) => {
                let v = syntax::unparen(v);
                let t = (v.kind() == "composite_literal")
                    .then(|| v.child_by_field_name("type"))
                    .flatten()?;
                holds(cx, t, kind).then(|| what(cx, t))
            }
        },
        "unary_expression" if e.child(0).is_some_and(|op| cx.text(op) == "*") => {
            let p = syntax::unparen(e.child_by_field_name("operand")?);
            if p.kind() != "identifier" || !cands.pointers.contains(cx.text(p)) {
                return None;
            }
            match resolve::declaration(cx, p, cx.text(p))? {
                Decl::Type(t) if t.kind() == "pointer_type" => {
                    let inner = t.named_child(0)?;
                    holds(cx, inner, kind).then(|| what(cx, inner))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Runs the copy checks for `kind`; `fix` is the advice (e.g. "pass *sync.WaitGroup").
pub fn check_copies(cx: &mut Checker, kind: SyncKind, noun: &str, fix: &str) {
    // Only `sync.X` or a package struct holding one can be copied: skip files that can have neither.
    let package_holds = cx.pkg.sync_types.values().any(|k| k.contains(&kind));
    if !package_holds && !cx.src().contains("sync.") {
        return;
    }
    let mut findings: Vec<Finding> = Vec::new();
    // The fix of a finding, by the finding's node.
    let mut fixes: Vec<(usize, Fix)> = Vec::new();
    // Fixes are offered for WaitGroups (G303); G402's copies of a mutex are left as they are.
    let fixing = kind == SyncKind::WaitGroup;
    for &f in &cx.index.functions {
        // Parameters and receivers by value.
        let Some(sig) = cx.index.signature(f) else {
            continue;
        };
        let decls = (sig.params.iter().map(|&(n, t)| (n, t, "parameter")))
            .chain(sig.receiver.map(|(n, t)| (n, t, "receiver")));
        for (index, (name, ty, role)) in decls.enumerate() {
            if holds(cx, ty, kind) {
                let offered = match role {
                    _ if !fixing => None,
                    "receiver" => Some(Fix::unsafe_(
                        format!("Make the receiver a pointer: `*{}`", what(cx, ty)),
                        vec![Edit::insert(ty.start_byte(), "*")],
                    )),
                    _ => pointer_param(cx, f, index, ty),
                };
                if let Some(x) = offered {
                    fixes.push((ty.id(), x));
                }
                let name = if name.is_empty() {
                    "_".to_string()
                } else {
                    format!("`{name}`")
                };
                findings.push(Finding {
                    node: ty,
                    message: format!(
                        "{role} {name} receives a copy of {} ({noun} by value)",
                        what(cx, ty)
                    ),
                    help: format!("{fix}: use `*{}`", what(cx, ty)),
                    severity: None,
                });
            }
        }
    }
    reading_copies(cx, kind, noun, fix, &mut findings, &mut fixes);
    for &n in &cx.index.range_clauses {
        let (Some(left), Some(right)) = (
            n.child_by_field_name("left"),
            n.child_by_field_name("right"),
        ) else {
            continue;
        };
        let vars = syntax::named_children(left);
        let Some(value_var) = vars.get(1) else {
            continue;
        };
        if cx.text(*value_var) == "_" {
            continue;
        }
        if let Some(t) = range_elem_holding(cx, right, kind) {
            findings.push(Finding {
                node: *value_var,
                message: format!(
                    "range variable `{}` copies each element ({t}, {noun} by value)",
                    cx.text(*value_var)
                ),
                help: format!(
                    "{fix}: range over indices and use `&{}[i]`, or store pointers",
                    cx.text(right)
                ),
                severity: None,
            });
        }
    }
    // Channel element types anywhere in the file (parameters, fields, make calls).
    for &n in &cx.index.channel_types {
        if let Some(v) = n.child_by_field_name("element") {
            if holds(cx, v, kind) {
                findings.push(Finding {
                    node: n,
                    message: format!("channel of {} sends copies ({noun} by value)", what(cx, v)),
                    help: format!("{fix}: use `chan *{}`", what(cx, v)),
                    severity: None,
                });
            }
        }
    }
    for f in findings {
        let offered = fixes
            .iter()
            .find(|(id, _)| *id == f.node.id())
            .map(|(_, x)| x.clone());
        cx.report_fixed(f, offered);
    }
}

/// The copies made by reading a variable: assigned, returned or passed as an argument.
fn reading_copies<'a>(
    cx: &Checker<'a>,
    kind: SyncKind,
    noun: &str,
    fix: &str,
    findings: &mut Vec<Finding<'a>>,
    fixes: &mut Vec<(usize, Fix)>,
) {
    let cands = Candidates::of(cx, kind);
    if cands.is_empty() {
        return;
    }
    let fixing = kind == SyncKind::WaitGroup;
    let src = cx.src();
    for &n in &cx.index.assignments {
        if !cands.mentioned_in(cx.text(n)) {
            continue;
        }
        let Some((lhs, rhs)) = syntax::assignment_sides(n) else {
            continue;
        };
        if lhs.len() != rhs.len() {
            continue;
        }
        for (l, r) in lhs.iter().zip(&rhs) {
            if cx.text(*l) == "_" {
                continue;
            }
            if let Some(t) = is_holding_value(cx, &cands, *r, kind) {
                findings.push(Finding {
                    node: *r,
                    message: format!(
                        "assignment copies `{}` ({t}, {noun} by value) into `{}`",
                        cx.text(*r),
                        cx.text(*l)
                    ),
                    help: format!(
                        "{fix}: take its address (`&{}`) or restructure to share one value",
                        cx.text(*r)
                    ),
                    severity: None,
                });
            }
        }
    }
    for &n in &cx.index.returns {
        if !cands.mentioned_in(cx.text(n)) {
            continue;
        }
        for e in n
            .named_child(0)
            .map(syntax::named_children)
            .unwrap_or_default()
        {
            if let Some(t) = is_holding_value(cx, &cands, e, kind) {
                findings.push(Finding {
                    node: e,
                    message: format!("return copies `{}` ({t}, {noun} by value)", cx.text(e)),
                    help: format!("{fix}: return a pointer"),
                    severity: None,
                });
            }
        }
    }
    for &n in &cx.index.calls {
        if !cands.mentioned_in(cx.text(n)) || !cands.passed_to(cx, n) {
            continue;
        }
        let Some(call) = syntax::Call::of(n) else {
            continue;
        };
        if call.receiver.is_none() && matches!(cx.text(call.name), "len" | "cap" | "new" | "make") {
            continue;
        }
        for (index, a) in call.args.iter().enumerate() {
            if let Some(t) = is_holding_value(cx, &cands, *a, kind) {
                // A call of this file's function with the parameter by value: the same fix as
                // the parameter's (it takes `&` here).
                let callee = (fixing && call.receiver.is_none())
                    .then(|| cx.local_func(cx.text(call.name)))
                    .flatten();
                if let Some(func) = callee {
                    if let Some((_, ty)) = syntax::params(func, src).get(index) {
                        if holds(cx, *ty, kind) {
                            if let Some(x) = pointer_param(cx, func, index, *ty) {
                                fixes.push((a.id(), x));
                            }
                        }
                    }
                }
                findings.push(Finding {
                    node: *a,
                    message: format!(
                        "call passes a copy of `{}` ({t}, {noun} by value)",
                        cx.text(*a)
                    ),
                    help: format!("{fix}: pass `&{}`", cx.text(*a)),
                    severity: None,
                });
            }
        }
    }
}

/// Parameter `index` of `func` (of type `ty`, holding a sync value) as a pointer, and `&` on
/// the argument of every call of `func`, when all of them are calls in this file passing a
/// variable. Unsafe: the callee then works on the caller's value, not a copy of it.
fn pointer_param(cx: &Checker, func: Node, index: usize, ty: Node) -> Option<Fix> {
    let src = cx.src();
    if func.kind() != "function_declaration" {
        return None;
    }
    let name = cx.text(func.child_by_field_name("name")?);
    // Exported: other packages may call it.
    if name.starts_with(|c: char| c.is_uppercase()) || ty.kind() == "pointer_type" {
        return None;
    }
    // Only `a, b T` lists of one name each: the parameter's position is the argument's.
    let params = syntax::params(func, src);
    if params.iter().filter(|(_, t)| t.id() == ty.id()).count() != 1
        || params
            .iter()
            .any(|(_, t)| t.kind() == "variadic_parameter_declaration")
    {
        return None;
    }
    let uses = crate::callgraph::callers(cx.pkg, cx.file_in_pkg, func);
    if !uses.maybe.is_empty() {
        return None;
    }
    let mut edits = vec![Edit::insert(ty.start_byte(), "*")];
    for site in &uses.sites {
        if site.file != cx.file_in_pkg || site.used == crate::callgraph::Use::Value {
            return None;
        }
        let call = syntax::Call::of(site.node)?;
        let arg = syntax::unparen(*call.args.get(index)?);
        if !matches!(arg.kind(), "identifier" | "selector_expression") {
            return None;
        }
        edits.push(Edit::insert(arg.start_byte(), "&"));
    }
    let (pname, _) = params[index];
    let calls = edits.len() - 1;
    let at = match calls {
        0 => String::new(),
        1 => ", and `&` at its call".to_string(),
        n => format!(", and `&` at its {n} calls"),
    };
    Some(Fix::unsafe_(
        format!("Pass a pointer: `{pname} *{}`{at}", what(cx, ty)),
        edits,
    ))
}

/// The element type of a ranged expression when it holds `kind` by value.
fn range_elem_holding<'a>(cx: &Checker<'a>, e: Node<'a>, kind: SyncKind) -> Option<String> {
    let e = syntax::unparen(e);
    let ty = match e.kind() {
        "identifier" => match resolve::declaration(cx, e, cx.text(e))? {
            Decl::Type(t) => t,
            Decl::Value(v) => syntax::unparen(v).child_by_field_name("type")?,
        },
        "composite_literal" => e.child_by_field_name("type")?,
        _ => return None,
    };
    let elem = match ty.kind() {
        "slice_type" | "array_type" | "implicit_length_array_type" => {
            ty.child_by_field_name("element")?
        }
        "map_type" => ty.child_by_field_name("element")?,
        _ => return None,
    };
    holds(cx, elem, kind).then(|| what(cx, elem))
}
