//! The locks held along the statements of a function, shared by G403 (double lock),
//! G404 (lock-order inversion) and G405 (blocking while locked).
//!
//! Statements are walked in order with the set of held locks; branches start from a copy and
//! join by intersection (a lock counts as held after a branch only if every path still holds
//! it), loops are walked once. Locks are keyed by their expression text (`s.mu`) within a
//! function and by an identity (`Server.mu`, a global's name) across functions.

use std::collections::HashMap;

use tree_sitter::Node;

use crate::checker::Checker;
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
    /// `acquired` locked while `held` is held (identities).
    Order {
        node: Node<'a>,
        held: String,
        acquired: String,
    },
    /// A channel operation or Wait while holding `held` (identity).
    Block {
        node: Node<'a>,
        held: String,
        op: Op,
        target: String,
    },
}

/// A blocking operation and the channel or WaitGroup it is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Send,
    Receive,
    Wait,
}

#[derive(Clone)]
struct Held<'a> {
    node: Node<'a>,
    reader: bool,
}

struct Walker<'c, 'a> {
    cx: &'c Checker<'a>,
    func: Node<'a>,
    events: Vec<Event<'a>>,
}

/// The lock events of one function (not entering nested function literals).
pub fn events<'a>(cx: &Checker<'a>, func: Node<'a>) -> Vec<Event<'a>> {
    let Some(body) = func.child_by_field_name("body") else {
        return Vec::new();
    };
    let mut w = Walker {
        cx,
        func,
        events: Vec::new(),
    };
    let mut held = HashMap::new();
    w.block(body, &mut held);
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

/// A name for a lock or channel that is the same in every function of the file:
/// `Type.field` for receiver fields, the name for package-level variables, and
/// `func@offset:name` for locals of one function (shared by its closures).
pub fn identity<'a>(cx: &Checker<'a>, func: Node<'a>, expr: Node<'a>) -> Option<String> {
    let text = syntax::normalize(cx.text(expr));
    let head = text.split('.').next()?;
    if let Some((rname, rtype)) = method_receiver(cx, func) {
        if head == rname {
            return Some(format!("{rtype}{}", &text[head.len()..]));
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
        return Some(text); // package level
    }
    let mut outer = func;
    while let Some(o) = cx.enclosing_function(outer) {
        outer = o;
    }
    Some(format!("func@{}:{text}", outer.start_byte()))
}

impl<'c, 'a> Walker<'c, 'a> {
    /// Returns false when the statements always leave (return, panic).
    fn block(&mut self, node: Node<'a>, held: &mut HashMap<String, Held<'a>>) -> bool {
        self.statements(syntax::block_statements(node), held)
    }

    /// Statements in order; false when control cannot go on past them.
    fn statements(&mut self, list: Vec<Node<'a>>, held: &mut HashMap<String, Held<'a>>) -> bool {
        for s in list {
            if !self.stmt(s, held) {
                return false;
            }
        }
        true
    }

    fn stmt(&mut self, s: Node<'a>, held: &mut HashMap<String, Held<'a>>) -> bool {
        match s.kind() {
            "block" => self.block(s, held),
            "return_statement" => {
                self.scan(s, held);
                false
            }
            "if_statement" => {
                if let Some(init) = s.child_by_field_name("init_statement") {
                    self.scan(init, held);
                }
                if let Some(cond) = s.child_by_field_name("condition") {
                    self.scan(cond, held);
                }
                let mut a = held.clone();
                let a_goes = s
                    .child_by_field_name("body")
                    .is_none_or(|c| self.stmt(c, &mut a));
                let mut b = held.clone();
                let b_goes = s
                    .child_by_field_name("else")
                    .is_none_or(|c| self.stmt(c, &mut b));
                *held = match (a_goes, b_goes) {
                    (true, true) => intersect(&a, &b),
                    (true, false) => a,
                    (false, true) => b,
                    (false, false) => return false,
                };
                true
            }
            "for_statement" => {
                if let Some(body) = s.child_by_field_name("body") {
                    let mut inner = held.clone();
                    self.block(body, &mut inner);
                }
                true
            }
            "expression_switch_statement" | "type_switch_statement" | "select_statement" => {
                let mut outs: Vec<HashMap<String, Held<'a>>> = Vec::new();
                let mut has_default = false;
                for case in syntax::named_children(s) {
                    if !syntax::is_case_clause(case) {
                        continue;
                    }
                    has_default |= syntax::is_default_clause(case);
                    let mut h = held.clone();
                    if let Some(comm) = case.child_by_field_name("communication") {
                        self.scan(comm, &h);
                    }
                    let goes = self.statements(syntax::clause_statements(case), &mut h);
                    if goes {
                        outs.push(h);
                    }
                }
                if s.kind() != "select_statement" && !has_default {
                    outs.push(held.clone());
                }
                match outs.split_first() {
                    Some((first, rest)) => {
                        *held = rest.iter().fold(first.clone(), |acc, h| intersect(&acc, h));
                        true
                    }
                    None => false,
                }
            }
            "labeled_statement" => match s.child_by_field_name("statement") {
                Some(inner) => self.stmt(inner, held),
                None => true,
            },
            "go_statement" => {
                // A goroutine that unlocks a held mutex takes the lock over (a mutex used as
                // a semaphore): it is no longer held here.
                let cx = self.cx;
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
                true
            }
            "defer_statement" => true, // a deferred unlock keeps the lock held to the end
            "expression_statement" => {
                let expr = s.named_child(0);
                if let Some(call) = expr.and_then(Call::of) {
                    if let Some(done) = self.lock_call(call, held) {
                        return done;
                    }
                }
                if expr.is_some_and(|e| crate::cfg::is_noreturn_call(e, self.cx.src())) {
                    return false;
                }
                self.scan(s, held);
                true
            }
            _ => {
                self.scan(s, held);
                true
            }
        }
    }

    /// Handles `m.Lock()`-family calls; returns Some(true) when it was one.
    fn lock_call(&mut self, call: Call<'a>, held: &mut HashMap<String, Held<'a>>) -> Option<bool> {
        let cx = self.cx;
        let recv = call.receiver?;
        let name = cx.text(call.name);
        if !matches!(name, "Lock" | "RLock" | "Unlock" | "RUnlock")
            || resolve::sync_kind(cx, recv) != Some(SyncKind::Mutex)
        {
            return None;
        }
        let key = syntax::normalize(cx.text(recv));
        match name {
            "Lock" | "RLock" => {
                let reader = name == "RLock";
                if let Some(h) = held.get(&key) {
                    self.events.push(Event::Relock {
                        node: call.node,
                        key: key.clone(),
                        first: h.node,
                        reader: reader && h.reader,
                    });
                }
                if let Some(acq) = identity(cx, self.func, recv) {
                    for (k, h) in held.iter() {
                        if *k == key {
                            continue;
                        }
                        let held_recv = h
                            .node
                            .child_by_field_name("function")
                            .and_then(|f| f.child_by_field_name("operand"));
                        if let Some(hid) = held_recv.and_then(|r| identity(cx, self.func, r)) {
                            self.events.push(Event::Order {
                                node: call.node,
                                held: hid,
                                acquired: acq.clone(),
                            });
                        }
                    }
                }
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
        Some(true)
    }

    /// Looks through an expression or simple statement for calls of locking methods of the
    /// same receiver and for blocking operations.
    fn scan(&mut self, s: Node<'a>, held: &HashMap<String, Held<'a>>) {
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

    fn block_event(
        &mut self,
        node: Node<'a>,
        op: Op,
        target: Option<Node<'a>>,
        held: &HashMap<String, Held<'a>>,
    ) {
        let Some(target) = target.and_then(|t| identity(self.cx, self.func, t)) else {
            return;
        };
        for h in held.values() {
            let recv = h
                .node
                .child_by_field_name("function")
                .and_then(|f| f.child_by_field_name("operand"));
            if let Some(hid) = recv.and_then(|r| identity(self.cx, self.func, r)) {
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
    fn call_relock(&mut self, call: Call<'a>, held: &HashMap<String, Held<'a>>) {
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

fn intersect<'a>(
    a: &HashMap<String, Held<'a>>,
    b: &HashMap<String, Held<'a>>,
) -> HashMap<String, Held<'a>> {
    a.iter()
        .filter(|(k, _)| b.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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
