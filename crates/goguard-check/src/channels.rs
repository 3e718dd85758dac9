//! What the package says about its channels' buffers: the capacity of every
//! `make(chan T[, n])`, followed to where the channel is kept (a local variable, a struct
//! field, a package variable), so that a rule can ask how much buffer the channel in
//! `ch <- v` or `s.events <- v` has, wherever it was made in the package.
//!
//! A field or variable that is ever given a channel from anywhere else (a parameter,
//! another variable, a call) has an unknown capacity: only what every store agrees on is
//! known.

use std::collections::HashMap;

use tree_sitter::Node;

use crate::checker::Checker;
use crate::package::FileIndex;
use crate::resolve::{self, Decl};
use crate::syntax::{self, Call};

/// A channel's buffer, as far as the package shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// `make(chan T)` or `make(chan T, 0)`: a send waits for a receiver.
    Unbuffered,
    /// A buffer of this many values (a constant in the source).
    Buffered(u64),
    /// Made with a capacity only known at run time, or kept where other channels go too.
    Unknown,
}

impl Capacity {
    /// Two stores of one place agree, or the capacity is unknown.
    fn merge(self, other: Capacity) -> Capacity {
        if self == other {
            self
        } else {
            Capacity::Unknown
        }
    }

    /// The capacity `v` gives when it is a `make` of a channel; `None` for any other value.
    pub fn of_value(src: &str, v: Node) -> Option<Capacity> {
        let call = Call::of(syntax::unparen(v))?;
        if call.receiver.is_some() || &src[call.name.byte_range()] != "make" {
            return None;
        }
        if call.args.first()?.kind() != "channel_type" {
            return None;
        }
        Some(match call.args.get(1) {
            None => Capacity::Unbuffered,
            Some(n) => match src[n.byte_range()].trim().parse::<u64>() {
                Ok(0) => Capacity::Unbuffered,
                Ok(n) => Capacity::Buffered(n),
                Err(_) => Capacity::Unknown,
            },
        })
    }
}

/// The capacities of channels kept in struct fields and package variables, by name (a field
/// name stands for that field of every struct type of the package, as the other package
/// facts do).
#[derive(Debug, Default)]
pub struct ChannelFacts<'a> {
    stored: HashMap<&'a str, Capacity>,
}

impl<'a> ChannelFacts<'a> {
    /// Every store of a value into a field (`x.f = v`, `T{f: v}`) or a package variable
    /// (`var v = ...`) in one file: a channel `make` gives its capacity, anything else makes
    /// the place unknown.
    pub fn of_file(ix: &FileIndex<'a>) -> ChannelFacts<'a> {
        let mut facts = ChannelFacts::default();
        facts.add_file(ix);
        facts
    }

    /// Adds another file's stores (a place two files store different channels in is unknown).
    pub fn merge(&mut self, other: &ChannelFacts<'a>) {
        for (name, cap) in &other.stored {
            self.store(name, *cap);
        }
    }

    fn add_file(&mut self, ix: &FileIndex<'a>) {
        let src = ix.src();
        for &stmt in &ix.assignments {
            let package_level = stmt.kind() == "var_spec" && ix.enclosing_function(stmt).is_none();
            let Some((lhs, rhs)) = syntax::assignment_sides(stmt) else {
                continue;
            };
            // `var ch chan T` stores nothing yet (a nil channel).
            if rhs.is_empty() {
                continue;
            }
            for (i, target) in lhs.iter().enumerate() {
                let name = match target.kind() {
                    "selector_expression" => target.child_by_field_name("field"),
                    "identifier" if package_level => Some(*target),
                    _ => None,
                };
                let Some(name) = name else { continue };
                // `a, b = f()`: one value for several places, none of them known.
                let cap = match (rhs.len() == lhs.len()).then(|| rhs[i]) {
                    Some(v) if !maybe_channel(src, v) => continue,
                    Some(v) => Capacity::of_value(src, v).unwrap_or(Capacity::Unknown),
                    None => Capacity::Unknown,
                };
                self.store(&src[name.byte_range()], cap);
            }
        }
        for &lit in &ix.literals {
            for el in syntax::named_children(lit) {
                if el.kind() != "keyed_element" {
                    continue;
                }
                let (Some(key), Some(value)) = (
                    el.child_by_field_name("key"),
                    el.child_by_field_name("element"),
                ) else {
                    continue;
                };
                if key.kind() != "identifier" || !maybe_channel(src, value) {
                    continue;
                }
                let cap = Capacity::of_value(src, value).unwrap_or(Capacity::Unknown);
                self.store(&src[key.byte_range()], cap);
            }
        }
    }

    fn store(&mut self, name: &'a str, cap: Capacity) {
        self.stored
            .entry(name)
            .and_modify(|c| *c = c.merge(cap))
            .or_insert(cap);
    }

    /// What the package's stores say of a field or package variable named `name`.
    pub fn stored(&self, name: &str) -> Capacity {
        self.stored.get(name).copied().unwrap_or(Capacity::Unknown)
    }
}

/// Whether `v` can be a channel at all: a literal, a composite literal or a `make` of a map
/// or slice cannot, so a store of one is a field of the same name in another struct type.
fn maybe_channel(src: &str, v: Node) -> bool {
    let v = syntax::unparen(v);
    match v.kind() {
        "composite_literal"
        | "function_literal"
        | "int_literal"
        | "float_literal"
        | "imaginary_literal"
        | "rune_literal"
        | "interpreted_string_literal"
        | "raw_string_literal"
        | "binary_expression" => false,
        "call_expression" => match Call::of(v) {
            Some(c) if c.receiver.is_none() && &src[c.name.byte_range()] == "make" => {
                c.args.first().is_some_and(|t| t.kind() == "channel_type")
            }
            _ => true,
        },
        _ => true,
    }
}

/// The capacity of the channel `expr` refers to: a local made in its function (and given no
/// other channel there), a field or package variable by what every store in the package
/// says, anything else unknown (a parameter's channel is the caller's).
pub fn capacity<'a>(cx: &Checker<'a>, expr: Node<'a>) -> Capacity {
    let expr = syntax::unparen(expr);
    let src = cx.src();
    match expr.kind() {
        "identifier" => {
            let name = &src[expr.byte_range()];
            let declared = match resolve::declaration(cx, expr, name) {
                Some(Decl::Value(v)) => Capacity::of_value(src, v).unwrap_or(Capacity::Unknown),
                // `var ch chan T`, or a parameter: known only from assignments below.
                Some(Decl::Type(_)) => {
                    return reassigned(cx, expr, name).unwrap_or(Capacity::Unknown)
                }
                None => return cx.pkg.channels.stored(name),
            };
            match reassigned(cx, expr, name) {
                Some(later) => declared.merge(later),
                None => declared,
            }
        }
        "selector_expression" => expr
            .child_by_field_name("field")
            .map_or(Capacity::Unknown, |f| {
                cx.pkg.channels.stored(&src[f.byte_range()])
            }),
        _ => Capacity::Unknown,
    }
}

/// What plain assignments `name = v` in the function around `at` give the variable.
fn reassigned<'a>(cx: &Checker<'a>, at: Node<'a>, name: &str) -> Option<Capacity> {
    let func = cx.enclosing_function(at)?;
    let src = cx.src();
    let mut out: Option<Capacity> = None;
    for n in syntax::descendants(func, true) {
        if n.kind() != "assignment" {
            continue;
        }
        let Some((lhs, rhs)) = syntax::assignment_sides(n) else {
            continue;
        };
        for (i, target) in lhs.iter().enumerate() {
            if target.kind() != "identifier" || &src[target.byte_range()] != name {
                continue;
            }
            let cap = match (rhs.len() == lhs.len()).then(|| rhs[i]) {
                Some(v) => Capacity::of_value(src, v).unwrap_or(Capacity::Unknown),
                None => Capacity::Unknown,
            };
            out = Some(out.map_or(cap, |c| c.merge(cap)));
        }
    }
    out
}
