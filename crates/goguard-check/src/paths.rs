//! Path analysis over the structured statements of one function: "is X released on every
//! way out after it was acquired?"
//!
//! Go's structured control flow lets us follow paths on the syntax tree directly. The state on
//! a path is one of three (not yet acquired, held, released); a set of them is carried through
//! each statement, branches are joined by union and loops are iterated to a fixed point. Every
//! way out of the region (`return`, falling off its end, a `break`/`continue` that leaves it)
//! reached while "held" is a leak. `goto` ends path tracking (no report), and so do calls that
//! never return (`panic`, `os.Exit`, `log.Fatal`, `runtime.Goexit`).

use tree_sitter::Node;

use crate::syntax::{self, Call};

const BEFORE: u8 = 1;
const HELD: u8 = 2;
const RELEASED: u8 = 4;

/// What the analysis needs to know about the resource being tracked.
pub struct Tracker<'q, 't> {
    /// Is this statement the acquisition? `None` means held from the region's start.
    pub is_start: Option<&'q dyn Fn(Node<'t>) -> bool>,
    /// Does this simple statement release (or hand off) the resource?
    pub is_release: &'q dyn Fn(Node<'t>) -> bool,
    /// Is this `if` statement one that releases whenever the resource is held, because its
    /// condition is the one the acquisition was made under (`if changed { mu.Lock() }` ...
    /// `if changed { mu.Unlock() }`)? Its other branch then only runs on paths without it.
    pub guarded_release: Option<&'q dyn Fn(Node<'t>) -> bool>,
    /// The source text, to read labels and call names.
    pub src: &'t str,
}

struct Frame {
    label: Option<String>,
    is_loop: bool,
    breaks: u8,
    continues: u8,
}

struct Flow<'q, 't> {
    tracker: &'q Tracker<'q, 't>,
    frames: Vec<Frame>,
    leaks: Vec<Node<'t>>,
}

/// The ways out of `region` (a block) on which the resource is still held: `return`,
/// `break` and `continue` statements leaving the region, or the region's closing brace.
pub fn leaking_exits<'t>(region: Node<'t>, tracker: &Tracker<'_, 't>) -> Vec<Node<'t>> {
    let mut flow = Flow {
        tracker,
        frames: Vec::new(),
        leaks: Vec::new(),
    };
    let entry = if tracker.is_start.is_some() {
        BEFORE
    } else {
        HELD
    };
    let out = flow.stmt(region, entry, None);
    if out & HELD != 0 {
        let end = region
            .child((region.child_count() as u32).saturating_sub(1))
            .unwrap_or(region);
        flow.leaks.push(end);
    }
    flow.leaks
}

/// True for calls that do not return: `panic`, `os.Exit`, `log.Fatal*`, `runtime.Goexit`,
/// `t.Fatal*`/`b.Fatal*`-style test helpers.
pub fn is_noreturn_call(node: Node, src: &str) -> bool {
    let Some(call) = Call::of(syntax::unparen(node)) else {
        return false;
    };
    let name = &src[call.name.byte_range()];
    match call.receiver {
        None => name == "panic",
        Some(r) => {
            let recv = &src[r.byte_range()];
            matches!(
                (recv, name),
                ("os", "Exit")
                    | ("runtime", "Goexit")
                    | ("syscall", "Exit")
                    | ("require", "Fail" | "Failf" | "FailNow" | "FailNowf")
                    | ("assert", "FailNow" | "FailNowf")
            ) || (matches!(
                name,
                "Fatal"
                    | "Fatalf"
                    | "Fatalln"
                    | "Panic"
                    | "Panicf"
                    | "Panicln"
                    | "FailNow"
                    | "Skip"
                    | "Skipf"
                    | "SkipNow"
            ) && recv != "errors")
        }
    }
}

impl<'q, 't> Flow<'q, 't> {
    fn stmt(&mut self, node: Node<'t>, s: u8, label: Option<String>) -> u8 {
        if s == 0 {
            return 0;
        }
        if let Some(is_start) = self.tracker.is_start {
            if is_start(node) {
                return HELD;
            }
        }
        match node.kind() {
            "block" => {
                let mut s = s;
                for child in syntax::block_statements(node) {
                    s = self.stmt(child, s, None);
                }
                s
            }
            "labeled_statement" => {
                let name = syntax::label(node, self.tracker.src).map(str::to_string);
                match node.child_by_field_name("statement") {
                    Some(inner) => self.stmt(inner, s, name),
                    None => s,
                }
            }
            "if_statement"
                if s & HELD != 0 && self.tracker.guarded_release.is_some_and(|g| g(node)) =>
            {
                // Held only where the condition holds, and released there.
                let rest = s & !HELD;
                let out = if rest == 0 {
                    0
                } else {
                    self.stmt(node, rest, None)
                };
                out | RELEASED
            }
            "if_statement" => {
                let s = match node.child_by_field_name("init_statement") {
                    Some(init) => self.stmt(init, s, None),
                    None => s,
                };
                let cons = match node.child_by_field_name("body") {
                    Some(c) => self.stmt(c, s, None),
                    None => s,
                };
                let alt = match node.child_by_field_name("else") {
                    Some(a) => self.stmt(a, s, None),
                    None => s,
                };
                cons | alt
            }
            "for_statement" => self.for_stmt(node, s, label),
            "expression_switch_statement" | "type_switch_statement" | "select_statement" => {
                self.switch_stmt(node, s, label)
            }
            "return_statement" => {
                if s & HELD != 0 && !(self.tracker.is_release)(node) {
                    self.leaks.push(node);
                }
                0
            }
            "break_statement" | "continue_statement" => {
                self.jump(node, s);
                0
            }
            "goto_statement" => 0,
            "expression_statement" => {
                let expr = node.named_child(0);
                if expr.is_some_and(|e| is_noreturn_call(e, self.tracker.src)) {
                    return 0;
                }
                self.simple(node, s)
            }
            _ => self.simple(node, s),
        }
    }

    fn simple(&self, node: Node<'t>, s: u8) -> u8 {
        if (self.tracker.is_release)(node) && s & HELD != 0 {
            (s & !HELD) | RELEASED
        } else {
            s
        }
    }

    fn jump(&mut self, node: Node<'t>, s: u8) {
        let is_continue = node.kind() == "continue_statement";
        let label = syntax::label(node, self.tracker.src).map(str::to_string);
        let target = self.frames.iter_mut().rev().find(|f| match &label {
            Some(l) => f.label.as_deref() == Some(l.as_str()),
            None => f.is_loop || !is_continue,
        });
        match target {
            Some(f) if is_continue => f.continues |= s,
            Some(f) => f.breaks |= s,
            None => {
                // Leaves the region being analysed.
                if s & HELD != 0 {
                    self.leaks.push(node);
                }
            }
        }
    }

    fn for_stmt(&mut self, node: Node<'t>, s: u8, label: Option<String>) -> u8 {
        let infinite = syntax::is_infinite_for(node);
        let Some(body) = node.child_by_field_name("body") else {
            return s;
        };
        self.frames.push(Frame {
            label,
            is_loop: true,
            breaks: 0,
            continues: 0,
        });
        let mut entry = s;
        let leaks_before = self.leaks.len();
        for _ in 0..4 {
            self.leaks.truncate(leaks_before);
            let out = self.stmt(body, entry, None);
            let cont = self.frames.last().map_or(0, |f| f.continues);
            let next = entry | out | cont;
            if next == entry {
                break;
            }
            entry = next;
        }
        let frame = self.frames.pop().map_or(0, |f| f.breaks);
        let fallthrough = if infinite { 0 } else { entry };
        fallthrough | frame
    }

    fn switch_stmt(&mut self, node: Node<'t>, s: u8, label: Option<String>) -> u8 {
        let s = match node.child_by_field_name("init_statement") {
            Some(init) => self.stmt(init, s, None),
            None => s,
        };
        self.frames.push(Frame {
            label,
            is_loop: false,
            breaks: 0,
            continues: 0,
        });
        let mut out = 0;
        let mut has_default = false;
        for case in syntax::named_children(node) {
            if !syntax::is_case_clause(case) {
                continue;
            }
            has_default |= syntax::is_default_clause(case);
            let mut cs = s;
            if let Some(comm) = case.child_by_field_name("communication") {
                cs = self.simple(comm, cs);
            }
            for child in syntax::clause_statements(case) {
                cs = self.stmt(child, cs, None);
            }
            out |= cs;
        }
        let breaks = self.frames.pop().map_or(0, |f| f.breaks);
        // A switch without default may match no case; a select without default always runs one.
        let passes = node.kind() != "select_statement" && !has_default;
        out | breaks | if passes { s } else { 0 }
    }
}
