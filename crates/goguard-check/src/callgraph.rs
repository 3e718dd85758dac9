//! Who uses a function of the package, and how: the package's call graph, read backwards
//! from one declaration on demand (most runs never ask).
//!
//! A function is reached by its name from the files built with its own ([`crate::buildtags`]);
//! through a variable assigned it once (`f := helper; f()`); and a method by a call on a
//! receiver whose type the package shows (the receiver of an enclosing method of that type,
//! a variable declared with it, a composite literal, `new`, a package function's result).
//! Calls of the same name on a receiver of unknown type are kept apart as *maybe* theirs:
//! a rule that needs every caller treats them as unknown. A use as a value (`register(f)`)
//! is recorded too: then callers are not all known.

use tree_sitter::Node;

use crate::package::{FileIndex, PackageIndex};
use crate::resolve::{self, Decl};
use crate::syntax::{self, Call};

/// How a function is used at one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    Call,
    Go,
    Defer,
    /// Named without being called: stored, passed or returned.
    Value,
}

/// One use of a function.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    /// The file (index in the package) it is in.
    pub file: usize,
    /// The call expression, or the identifier for a use as a value.
    pub node: Node<'a>,
    /// The function the use is in (`None` at package level).
    pub caller: Option<Node<'a>>,
    pub used: Use,
}

/// The uses of one declaration.
#[derive(Default, Debug)]
pub struct Callers<'a> {
    /// Uses that certainly are of this declaration.
    pub sites: Vec<Site<'a>>,
    /// Calls of the same method name on a receiver of unknown type.
    pub maybe: Vec<Site<'a>>,
}

impl<'a> Callers<'a> {
    /// True when every use is a known call (plain, `go` or `defer`): no call of unknown
    /// receiver and no use as a value.
    pub fn all_known(&self) -> bool {
        self.maybe.is_empty() && self.sites.iter().all(|s| s.used != Use::Value)
    }
}

/// The uses in the package of `decl` (a function or method declaration in file `file`).
pub fn callers<'a>(pkg: &PackageIndex<'a>, file: usize, decl: Node<'a>) -> Callers<'a> {
    let mut out = Callers::default();
    let src = pkg.files[file].text.as_str();
    let Some(name) = decl
        .child_by_field_name("name")
        .map(|n| &src[n.byte_range()])
    else {
        return out;
    };
    let ty = syntax::receiver(decl, src).and_then(|(_, t)| syntax::base_type_name(t, src));
    for (i, (f, ix)) in pkg.files.iter().zip(&pkg.file_indexes).enumerate() {
        if !pkg.builds_with(file, i) {
            continue;
        }
        let fsrc = f.text.as_str();
        // Calls by the name, and calls through a local assigned the function once.
        for &call in &ix.calls {
            let Some(c) = Call::of(call) else { continue };
            let callee = &fsrc[c.name.byte_range()];
            let site = |used| Site {
                file: i,
                node: call,
                caller: ix.enclosing_function(call),
                used,
            };
            let used = use_of(call);
            match (c.receiver, ty) {
                (None, None) if callee == name => out.sites.push(site(used)),
                (None, None) => {
                    // `f := helper` ... `f()`
                    if let Some(Decl::Value(v)) = resolve::declaration_in(ix, c.name, callee) {
                        let v = syntax::unparen(v);
                        if v.kind() == "identifier" && &fsrc[v.byte_range()] == name {
                            out.sites.push(site(used));
                        }
                    }
                }
                (Some(r), Some(ty)) if callee == name => {
                    if is_import(ix, fsrc, r) {
                        continue;
                    }
                    match receiver_type(pkg, ix, fsrc, r) {
                        Some(t) if t == ty => out.sites.push(site(used)),
                        Some(_) => {}
                        None => out.maybe.push(site(used)),
                    }
                }
                _ => {}
            }
        }
        // Uses as a value: the name not in a callee's place. A function's is certain; a
        // method value `x.m` may be another type's method of that name.
        let root = f.tree.root_node();
        for at in syntax::word_positions(fsrc, name) {
            let Some(n) = root.descendant_for_byte_range(at, at + name.len()) else {
                continue;
            };
            let site = Site {
                file: i,
                node: n,
                caller: ix.enclosing_function(n),
                used: Use::Value,
            };
            match (n.kind(), ty) {
                ("identifier", None) if !is_callee(n) && !is_declared_name(n) => {
                    out.sites.push(site)
                }
                ("field_identifier", Some(_)) if is_method_value(n) => out.maybe.push(site),
                _ => {}
            }
        }
    }
    out
}

/// Whether `call` is started by `go`, deferred, or called in place.
fn use_of(call: Node) -> Use {
    match call.parent().map(|p| p.kind()) {
        Some("go_statement") => Use::Go,
        Some("defer_statement") => Use::Defer,
        _ => Use::Call,
    }
}

/// Whether identifier `n` is the function called (`f(...)`), not an argument.
fn is_callee(n: Node) -> bool {
    n.parent().is_some_and(|p| {
        p.kind() == "call_expression"
            && p.child_by_field_name("function").map(|f| f.id()) == Some(n.id())
    })
}

/// Whether `n` is the field of a selector that is not called (`register(s.run)`).
fn is_method_value(n: Node) -> bool {
    n.parent().is_some_and(|sel| {
        sel.kind() == "selector_expression"
            && sel.child_by_field_name("field").map(|f| f.id()) == Some(n.id())
            && !is_callee(sel)
    })
}

/// Whether identifier `n` is the name a declaration gives (`func f`, `x := ...`'s `x` is not
/// one of ours: only the function's own name is).
fn is_declared_name(n: Node) -> bool {
    n.parent().is_some_and(|p| {
        matches!(p.kind(), "function_declaration" | "method_declaration")
            && p.child_by_field_name("name").map(|f| f.id()) == Some(n.id())
    })
}

fn is_import(ix: &FileIndex, src: &str, recv: Node) -> bool {
    recv.kind() == "identifier" && ix.imports.contains_key(&src[recv.byte_range()])
}

/// The base type name of a method call's receiver, where the package shows it.
pub fn receiver_type<'a>(
    pkg: &PackageIndex<'a>,
    ix: &FileIndex<'a>,
    src: &'a str,
    recv: Node<'a>,
) -> Option<&'a str> {
    let recv = syntax::unparen(recv);
    match recv.kind() {
        "identifier" => {
            let name = &src[recv.byte_range()];
            match resolve::declaration_in(ix, recv, name)? {
                Decl::Type(t) => syntax::base_type_name(t, src),
                Decl::Value(v) => value_type(pkg, src, v),
            }
        }
        _ => None,
    }
}

/// The base type name of a value: `T{}`, `&T{}`, `new(T)`, a package function's result.
fn value_type<'a>(pkg: &PackageIndex<'a>, src: &'a str, v: Node<'a>) -> Option<&'a str> {
    let v = syntax::unparen(v);
    match v.kind() {
        "composite_literal" => syntax::base_type_name(v.child_by_field_name("type")?, src),
        "unary_expression" => value_type(pkg, src, v.child_by_field_name("operand")?),
        "call_expression" => {
            let c = Call::of(v)?;
            let name = &src[c.name.byte_range()];
            if c.receiver.is_some() {
                return None;
            }
            if name == "new" {
                return syntax::base_type_name(*c.args.first()?, src);
            }
            // One declaration of the function: its first result's type.
            let decls = pkg.funcs.get(name)?;
            let [d] = decls.as_slice() else { return None };
            let file: &'a crate::source::SourceFile = pkg.files[d.file];
            let dsrc = file.text.as_str();
            let ty = syntax::first_result_type(d.node, dsrc)?;
            syntax::base_type_name(ty, dsrc)
        }
        _ => None,
    }
}
