//! The locks held along the statements of a function, shared by G403 (double lock),
//! G404 (lock-order inversion) and G405 (blocking while locked).
//!
//! A "must" dataflow analysis on the function's control-flow graph ([`crate::cfg`]): the
//! state is the set of locks held, joined by intersection (a lock counts as held after a join
//! only if every path into it holds it), so `break`, `continue`, loops and calls that never
//! return are followed as Go runs them. Events are read off the fixed point, once per
//! statement. Locks are keyed by their expression text (`s.mu`) within a function and by a
//! [`LockId`] across functions.

use std::collections::HashMap;
use std::fmt;

use tree_sitter::Node;

use crate::cfg::{self, Item};
use crate::checker::Checker;
use crate::dataflow::{self, Analysis};
use crate::package::SyncKind;
use crate::resolve;
use crate::syntax::{self, Call};

/// Something that happened while locks were held.
pub enum Event<'a> {
    /// `key` locked again while held (`reader`: both acquisitions are RLock).
    Relock {
        node: Node<'a>,
        key: String,
        first: Node<'a>,
        reader: bool,
    },
    /// A method of the same receiver that locks `key` called while `key` is held.
    CallRelock {
        node: Node<'a>,
        key: String,
        method: String,
        first: Node<'a>,
    },
    /// `acquired` locked while `held` is held.
    Order {
        node: Node<'a>,
        held: LockId,
        acquired: LockId,
    },
    /// A channel operation or Wait while holding `held`.
    Block {
        node: Node<'a>,
        held: LockId,
        op: Op,
        target: LockId,
    },
}

/// A blocking operation and the channel or WaitGroup it is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Send,
    Receive,
    Wait,
}

/// What a lock, channel or WaitGroup expression denotes, the same in every function that
/// can reach it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum LockId {
    /// A field reached from a method's receiver, `Type.path` (`Server.mu`): the same object
    /// in every method of the type (for one value of it).
    Field(String),
    /// A package-level variable.
    Global(String),
    /// A variable of one function and the closures inside it (`func`: start of the
    /// outermost function).
    Local { func: usize, expr: String },
}

impl LockId {
    /// True when other functions can reach the same object: a receiver's field or a global.
    pub fn is_shared(&self) -> bool {
        !matches!(self, LockId::Local { .. })
    }

    /// The name it is written with, last element (`mu` for `Server.mu`).
    pub fn last(&self) -> &str {
        let text = match self {
            LockId::Field(t) | LockId::Global(t) => t,
            LockId::Local { expr, .. } => expr,
        };
        text.rsplit('.').next().unwrap_or(text)
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockId::Field(t) | LockId::Global(t) => f.write_str(t),
            LockId::Local { expr, .. } => f.write_str(expr),
        }
    }
}

#[derive(Clone, PartialEq)]
struct Held<'a> {
    node: Node<'a>,
    reader: bool,
}

type Locks<'a> = HashMap<String, Held<'a>>;

/// The lock events of one function (not entering nested function literals).
pub fn events<'a>(cx: &Checker<'a>, func: Node<'a>) -> Vec<Event<'a>> {
    let Some(body) = func.child_by_field_name("body") else {
        return Vec::new();
    };
    let graph = cfg::build(body, cx.src());
    let flow = LockFlow { cx };
    let solution = dataflow::solve(&graph, &flow, HashMap::new());
    let mut w = Events {
        cx,
        func,
        events: Vec::new(),
    };
    dataflow::visit(&graph, &flow, &solution, |item, held| w.item(item, held));
    w.events
}

/// The receiver name and type of the method `func` belongs to (through literals).
pub fn method_receiver<'a>(cx: &Checker<'a>, func: Node<'a>) -> Option<(&'a str, &'a str)> {
    let mut f = Some(func);
    while let Some(n) = f {
        if n.kind() == "method_declaration" {
            let (name, ty) = syntax::receiver(n, cx.src())?;
            return Some((name, syntax::base_type_name(ty, cx.src())?));
        }
        f = cx.enclosing_function(n);
    }
    None
}

/// What a lock or channel expression denotes (see [`LockId`]).
pub fn identity<'a>(cx: &Checker<'a>, func: Node<'a>, expr: Node<'a>) -> Option<LockId> {
    let text = syntax::normalize(cx.text(expr));
    let head = text.split('.').next()?;
    if let Some((rname, rtype)) = method_receiver(cx, func) {
        if head == rname {
            return Some(LockId::Field(format!("{rtype}{}", &text[head.len()..])));
        }
    }
    let first = syntax::unparen(expr);
    let ident = if first.kind() == "identifier" {
        Some(first)
    } else {
        first
            .child_by_field_name("operand")
            .filter(|o| o.kind() == "identifier")
    };
    let ident = ident?;
    if resolve::declaration(cx, ident, head).is_none() {
        return Some(LockId::Global(text));
    }
    let mut outer = func;
    while let Some(o) = cx.enclosing_function(outer) {
        outer = o;
    }
    Some(LockId::Local {
        func: outer.start_byte(),
        expr: text,
    })
}

/// The analysis: which locks are held.
struct LockFlow<'c, 'a> {
    cx: &'c Checker<'a>,
}

impl<'a> Analysis<'a> for LockFlow<'_, 'a> {
    type State = Locks<'a>;

    fn apply(&self, item: Item<'a>, held: &mut Locks<'a>) {
        let Item::Stmt(s) = item else { return };
        let cx = self.cx;
        match s.kind() {
            "go_statement" => {
                // A goroutine that unlocks a held mutex takes the lock over (a mutex used as
                // a semaphore): it is no longer held here.
                if let Some(lit) = syntax::stmt_func_literal(s) {
                    for n in syntax::descendants(lit, true) {
                        if let Some(c) = Call::of(n) {
                            if matches!(cx.text(c.name), "Unlock" | "RUnlock") {
                                if let Some(r) = c.receiver {
                                    held.remove(&syntax::normalize(cx.text(r)));
                                }
                            }
                        }
                    }
                }
            }
            "expression_statement" => {
                if let Some((call, key)) = lock_call(cx, s) {
                    match cx.text(call.name) {
                        name @ ("Lock" | "RLock") => {
                            let reader = name == "RLock";
                            held.insert(
                                key,
                                Held {
                                    node: call.node,
                                    reader,
                                },
                            );
                        }
                        _ => {
                            held.remove(&key);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn join(&self, into: &mut Locks<'a>, other: &Locks<'a>) {
        into.retain(|k, _| other.contains_key(k));
    }
}

/// `m.Lock()`-family call of a mutex as a statement, with the lock's key (its text).
fn lock_call<'a>(cx: &Checker<'a>, stmt: Node<'a>) -> Option<(Call<'a>, String)> {
    let call = Call::of(stmt.named_child(0)?)?;
    let recv = call.receiver?;
    if !matches!(cx.text(call.name), "Lock" | "RLock" | "Unlock" | "RUnlock")
        || resolve::sync_kind(cx, recv) != Some(SyncKind::Mutex)
    {
        return None;
    }
    let key = syntax::normalize(cx.text(recv));
    Some((call, key))
}

/// Collects the events of one function from the held locks before each item.
struct Events<'c, 'a> {
    cx: &'c Checker<'a>,
    func: Node<'a>,
    events: Vec<Event<'a>>,
}

impl<'c, 'a> Events<'c, 'a> {
    fn item(&mut self, item: Item<'a>, held: &Locks<'a>) {
        let node = item.node();
        match item {
            Item::Done(_) => {}
            Item::Stmt(s) if matches!(s.kind(), "go_statement" | "defer_statement") => {}
            Item::Stmt(s) => match lock_call(self.cx, s) {
                Some((call, key)) => self.acquire(call, key, held),
                None => self.scan(node, held),
            },
            Item::Cond(_) | Item::Comm(_) => self.scan(node, held),
        }
    }

    /// A lock call: taking a lock already held, or one lock while holding another.
    fn acquire(&mut self, call: Call<'a>, key: String, held: &Locks<'a>) {
        let cx = self.cx;
        let name = cx.text(call.name);
        if !matches!(name, "Lock" | "RLock") {
            return;
        }
        if let Some(h) = held.get(&key) {
            self.events.push(Event::Relock {
                node: call.node,
                key: key.clone(),
                first: h.node,
                reader: name == "RLock" && h.reader,
            });
        }
        let Some(acquired) = call.receiver.and_then(|r| identity(cx, self.func, r)) else {
            return;
        };
        for (k, h) in held {
            if *k == key {
                continue;
            }
            if let Some(held) = self.held_identity(h) {
                self.events.push(Event::Order {
                    node: call.node,
                    held,
                    acquired: acquired.clone(),
                });
            }
        }
    }

    fn held_identity(&self, h: &Held<'a>) -> Option<LockId> {
        let recv = h
            .node
            .child_by_field_name("function")
            .and_then(|f| f.child_by_field_name("operand"))?;
        identity(self.cx, self.func, recv)
    }

    /// Looks through an expression or simple statement for calls of locking methods of the
    /// same receiver and for blocking operations.
    fn scan(&mut self, s: Node<'a>, held: &Locks<'a>) {
        if held.is_empty() {
            return;
        }
        let cx = self.cx;
        for n in syntax::descendants(s, false) {
            match n.kind() {
                "call_expression" => {
                    let Some(call) = Call::of(n) else { continue };
                    self.call_relock(call.clone(), held);
                    if cx.text(call.name) == "Wait"
                        && call.receiver.is_some_and(|r| resolve::is_waitgroup(cx, r))
                    {
                        self.block_event(n, Op::Wait, call.receiver, held);
                    }
                }
                "send_statement" if !in_select_with_default(n) => {
                    self.block_event(n, Op::Send, n.child_by_field_name("channel"), held);
                }
                "unary_expression"
                    if syntax::received_channel(n).is_some() && !in_select_with_default(n) =>
                {
                    self.block_event(n, Op::Receive, syntax::received_channel(n), held);
                }
                _ => {}
            }
        }
    }

    fn block_event(&mut self, node: Node<'a>, op: Op, target: Option<Node<'a>>, held: &Locks<'a>) {
        let Some(target) = target.and_then(|t| identity(self.cx, self.func, t)) else {
            return;
        };
        for h in held.values() {
            if let Some(hid) = self.held_identity(h) {
                self.events.push(Event::Block {
                    node,
                    held: hid,
                    op,
                    target: target.clone(),
                });
            }
        }
    }

    /// `s.other()` where `other` is a method of this receiver's type that locks `s.<field>`.
    fn call_relock(&mut self, call: Call<'a>, held: &Locks<'a>) {
        let cx = self.cx;
        let Some(recv) = call.receiver else { return };
        let Some((rname, rtype)) = method_receiver(cx, self.func) else {
            return;
        };
        if cx.text(recv) != rname {
            return;
        }
        let Some(method) = cx.local_method(rtype, cx.text(call.name)) else {
            return;
        };
        let Some((mrecv, _)) = syntax::receiver(method, cx.src()) else {
            return;
        };
        let Some(body) = method.child_by_field_name("body") else {
            return;
        };
        let mut released = Vec::new();
        for n in syntax::descendants(body, false) {
            let Some(c) = Call::of(n) else { continue };
            let name = cx.text(c.name);
            let Some(r) = c.receiver else { continue };
            let text = syntax::normalize(cx.text(r));
            let Some(rest) = text.strip_prefix(mrecv) else {
                continue;
            };
            let key = format!("{rname}{rest}");
            // A callee that unlocks first expects the lock held (and may re-lock it later).
            if matches!(name, "Unlock" | "RUnlock") {
                released.push(key);
                continue;
            }
            let deferred = n.parent().is_some_and(|p| p.kind() == "defer_statement");
            if !matches!(name, "Lock" | "RLock") || deferred || released.contains(&key) {
                continue;
            }
            if let Some(h) = held.get(&key) {
                self.events.push(Event::CallRelock {
                    node: call.node,
                    key,
                    method: cx.text(call.name).to_string(),
                    first: h.node,
                });
                return;
            }
        }
    }
}

/// A send or receive used as a case of a select that has a default never blocks.
fn in_select_with_default(n: Node) -> bool {
    let mut child = n;
    let mut cur = n.parent();
    while let Some(p) = cur {
        match p.kind() {
            "communication_clause" => {
                return syntax::is_select_communication(child)
                    && p.parent().is_some_and(|sel| {
                        syntax::named_children(sel)
                            .into_iter()
                            .any(syntax::is_default_clause)
                    });
            }
            "expression_statement"
            | "receive_statement"
            | "send_statement"
            | "short_var_declaration"
            | "assignment"
            | "expression_list"
            | "unary_expression" => {
                child = p;
                cur = p.parent();
            }
            _ => return false,
        }
    }
    false
}
