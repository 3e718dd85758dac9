//! Path analysis over the structured statements of one function: "is X released on every
//! way out after it was acquired?"
//!
//! A dataflow analysis on the region's control-flow graph ([`crate::cfg`]). The state on a
//! path is one of three (not yet acquired, held, released); a set of them is carried through
//! the graph, joined by union. Every way out of the region (`return`, falling off its end, a
//! `break`/`continue` that leaves it) reached while "held" is a leak. Calls that never return
//! (`panic`, `os.Exit`, `log.Fatal`, `t.Fatal`) end a path without a leak, and so does a
//! `goto` out of the region.

use tree_sitter::Node;

use crate::cfg::{self, Edge, Item};
use crate::dataflow::{self, Analysis};

// A state is a set of path states: three for paths on which the test (if any) has not
// failed, the same three shifted by `FAILED_SHIFT` for paths after a call that marks it failed.
const BEFORE: u8 = 1;
const HELD: u8 = 2;
const RELEASED: u8 = 4;
const FAILED_SHIFT: u8 = 3;
const PASSING: u8 = 0b111;

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
    /// Does this statement mark a test failed (`t.Errorf(...)`, see [`crate::testfail`])?
    /// A leak only on paths after one is on a test's failure path and is not reported.
    pub fails_test: Option<&'q dyn Fn(Node<'t>) -> bool>,
    /// The source text, to read labels and call names.
    pub src: &'t str,
}

/// The "not yet / held / released" states of one resource, joined by union: a path on which
/// it is held is never hidden by another on which it was released.
struct Held<'q, 't> {
    tracker: &'q Tracker<'q, 't>,
}

/// Applies `f` to the passing and the failed half of a state separately.
fn each_half(s: u8, f: impl Fn(u8) -> u8) -> u8 {
    let passing = s & PASSING;
    let failed = s >> FAILED_SHIFT;
    let map = |half: u8| if half == 0 { 0 } else { f(half) };
    map(passing) | (map(failed) << FAILED_SHIFT)
}

impl<'t> Analysis<'t> for Held<'_, 't> {
    type State = u8;

    fn apply(&self, item: Item<'t>, s: &mut u8) {
        let t = self.tracker;
        match item {
            Item::Stmt(n) | Item::Done(n) if t.is_start.is_some_and(|f| f(n)) => {
                *s = each_half(*s, |_| HELD);
            }
            Item::Stmt(n) | Item::Comm(n)
                if *s & (HELD | HELD << FAILED_SHIFT) != 0 && (t.is_release)(n) =>
            {
                *s = each_half(*s, |h| {
                    if h & HELD != 0 {
                        (h & !HELD) | RELEASED
                    } else {
                        h
                    }
                });
            }
            Item::Stmt(n) if t.fails_test.is_some_and(|f| f(n)) => {
                *s = ((*s & PASSING) | (*s >> FAILED_SHIFT)) << FAILED_SHIFT;
            }
            _ => {}
        }
    }

    fn edge(&self, edge: Edge<'t>, s: &mut u8) {
        // Paths that hold the resource always enter an `if` that releases under the
        // acquisition's own condition.
        if let Edge::Else(n) = edge {
            if self.tracker.guarded_release.is_some_and(|g| g(n)) {
                *s = each_half(*s, |h| h & !HELD);
            }
        }
    }

    fn join(&self, into: &mut u8, other: &u8) {
        *into |= *other;
    }
}

/// The ways out of `region` (a block) on which the resource is still held: `return`,
/// `break` and `continue` statements leaving the region, or the region's closing brace.
pub fn leaking_exits<'t>(region: Node<'t>, tracker: &Tracker<'_, 't>) -> Vec<Node<'t>> {
    let cfg = cfg::build(region, tracker.src);
    let analysis = Held { tracker };
    let entry = if tracker.is_start.is_some() {
        BEFORE
    } else {
        HELD
    };
    let solution = dataflow::solve(&cfg, &analysis, entry);
    dataflow::exits(&cfg, &analysis, &solution)
        .into_iter()
        .filter(|(e, s)| e.goes_on() && s & PASSING & HELD != 0)
        .map(|(e, _)| e.node())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of the leaking exits of `f`'s body, where the resource is held from the
    /// start and a `release()` statement releases it.
    fn leaks(body: &str) -> Vec<usize> {
        let src = format!("package p\n\nfunc f() {{\n{body}\n}}\n");
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&crate::syntax::language()).unwrap();
        let tree = parser.parse(&src, None).unwrap();
        let func = tree.root_node().named_child(1).unwrap();
        let block = func.child_by_field_name("body").unwrap();
        let is_release = |n: Node| &src[n.byte_range()] == "release()";
        let tracker = Tracker {
            is_start: None,
            is_release: &is_release,
            guarded_release: None,
            fails_test: None,
            src: &src,
        };
        leaking_exits(block, &tracker)
            .into_iter()
            .map(|n| n.start_position().row + 1 - 3)
            .collect()
    }

    #[test]
    fn straight_line_and_branches() {
        assert_eq!(leaks("release()"), Vec::<usize>::new());
        assert_eq!(leaks("if x {\nreturn\n}\nrelease()"), vec![2]);
        assert_eq!(
            leaks("if x {\nrelease()\n} else {\nrelease()\n}"),
            Vec::<usize>::new()
        );
        // The closing brace of the function is the exit when a branch skips the release.
        assert_eq!(leaks("if x {\nrelease()\n}"), vec![4]);
    }

    #[test]
    fn calls_that_never_return_end_the_path() {
        assert_eq!(leaks("if x {\npanic(1)\n}\nrelease()"), Vec::<usize>::new());
        assert_eq!(
            leaks("if x {\nt.Fatal(1)\n}\nrelease()"),
            Vec::<usize>::new()
        );
        assert_eq!(leaks("select {}"), Vec::<usize>::new());
    }

    #[test]
    fn loops_break_continue_and_labels() {
        // `for {}` without a break never falls out: only the return leaves.
        assert_eq!(
            leaks("for {\nif x {\nrelease()\nreturn\n}\n}"),
            Vec::<usize>::new()
        );
        // A break in a select leaves the select, not the loop.
        assert_eq!(
            leaks("for {\nselect {\ncase <-c:\nbreak\n}\nif y {\nrelease()\nreturn\n}\n}"),
            Vec::<usize>::new()
        );
        // A labelled break leaves the loop, past the release.
        assert_eq!(
            leaks("L:\nfor {\nselect {\ncase <-c:\nbreak L\n}\n}\nrelease()"),
            Vec::<usize>::new()
        );
        assert_eq!(
            leaks("L:\nfor {\nselect {\ncase <-c:\nbreak L\n}\n}\nreturn"),
            vec![8]
        );
        // `continue` goes round the loop again, it does not leave.
        assert_eq!(
            leaks("for i := 0; i < n; i++ {\nif x {\ncontinue\n}\n}\nrelease()"),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn goto_and_fallthrough() {
        assert_eq!(
            leaks("if x {\ngoto done\n}\nrelease()\ndone:\nreturn"),
            vec![6]
        );
        assert_eq!(leaks("goto done\ndone:\nrelease()"), Vec::<usize>::new());
        assert_eq!(
            leaks("switch {\ncase a:\nfallthrough\ncase b:\nrelease()\ndefault:\nrelease()\n}"),
            Vec::<usize>::new()
        );
        assert_eq!(
            leaks("switch {\ncase a:\ncase b:\nrelease()\ndefault:\nrelease()\n}"),
            vec![8]
        );
    }
}
