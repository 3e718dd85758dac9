//! The control-flow graph of a region of one function (its body, or a loop body a rule wants
//! to look at alone), built from the syntax tree, as go/cfg builds it from go/ast.
//!
//! Blocks hold *items*: the simple statements in the order they run, the conditions that
//! choose a branch, the send or receive of the select case taken, and a mark where a compound
//! statement ends. Edges carry what they mean where a rule can use it (into an `if`'s body,
//! or past it). Control leaves the region by an [`Exit`]: a `return`, a `break`/`continue`
//! to a statement outside the region, the closing brace, a call that never returns
//! (`panic`, `os.Exit`, `t.Fatal`, ...) or a `goto` out of it. A `select {}` ends its block
//! with no way on at all.
//! Function literals are not entered: each is a region of its own.
//!
//! Every flow question the rules ask goes through this graph and [`crate::dataflow`], so
//! `break`, `continue`, labels, `goto`, `fallthrough` and calls that never return are
//! handled once, here.

use std::collections::HashMap;

use tree_sitter::Node;

use crate::syntax::{self, Call};

pub type BlockId = usize;

/// One step inside a block.
#[derive(Clone, Copy, Debug)]
pub enum Item<'t> {
    /// A simple statement: an expression, assignment, declaration, send, `go`, `defer`,
    /// increment, or the `return` that ends its block.
    Stmt(Node<'t>),
    /// An expression evaluated to choose a branch: an `if` or `for` condition, a switch's
    /// tag, a case's values, a range expression.
    Cond(Node<'t>),
    /// The send or receive of the select case that was chosen.
    Comm(Node<'t>),
    /// A compound statement (block, `if`, `for`, switch, select, labelled statement) has
    /// finished: every way through it that goes on meets here.
    Done(Node<'t>),
}

impl<'t> Item<'t> {
    pub fn node(self) -> Node<'t> {
        match self {
            Item::Stmt(n) | Item::Cond(n) | Item::Comm(n) | Item::Done(n) => n,
        }
    }
}

/// What an edge means.
#[derive(Clone, Copy, Debug)]
pub enum Edge<'t> {
    Plain,
    /// Into the body of this `if` statement: its condition held.
    Then(Node<'t>),
    /// Past this `if` statement without its body (to its `else`, or after it).
    Else(Node<'t>),
}

/// How control leaves the region at the end of a block.
#[derive(Clone, Copy, Debug)]
pub enum Exit<'t> {
    Return(Node<'t>),
    /// A `break` or `continue` whose target is outside the region.
    Jump(Node<'t>),
    /// Falling off the end: the region's closing brace.
    End(Node<'t>),
    /// A call that never returns (`panic`, `os.Exit`, `t.Fatal`): the goroutine or the
    /// program ends here, nothing after it runs.
    NoReturn(Node<'t>),
    /// A `goto` to a label outside the region: where it goes is not followed.
    Goto(Node<'t>),
}

impl<'t> Exit<'t> {
    pub fn node(self) -> Node<'t> {
        match self {
            Exit::Return(n) | Exit::Jump(n) | Exit::End(n) | Exit::NoReturn(n) | Exit::Goto(n) => n,
        }
    }

    /// True for the ways out that continue after the region (a return to the caller, a
    /// jump, the end), as opposed to a call that never returns or a `goto` not followed.
    pub fn goes_on(self) -> bool {
        matches!(self, Exit::Return(_) | Exit::Jump(_) | Exit::End(_))
    }
}

#[derive(Default, Debug)]
pub struct Block<'t> {
    pub items: Vec<Item<'t>>,
    pub succs: Vec<(BlockId, Edge<'t>)>,
    pub exit: Option<Exit<'t>>,
}

/// The graph; block 0 is the entry.
#[derive(Debug)]
pub struct Cfg<'t> {
    pub blocks: Vec<Block<'t>>,
}

/// Builds the graph of `region` (a block).
pub fn build<'t>(region: Node<'t>, src: &'t str) -> Cfg<'t> {
    let mut b = Builder {
        src,
        blocks: vec![Block::default()],
        cur: 0,
        targets: Vec::new(),
        labels: HashMap::new(),
        gotos: Vec::new(),
    };
    b.stmt(region, None);
    let end = region
        .child((region.child_count() as u32).saturating_sub(1))
        .unwrap_or(region);
    b.blocks[b.cur].exit = Some(Exit::End(end));
    for (from, label, node) in std::mem::take(&mut b.gotos) {
        match b.labels.get(label) {
            Some(&to) => b.edge(from, to, Edge::Plain),
            // To a label outside the region: somewhere this graph cannot follow.
            None => b.blocks[from].exit = Some(Exit::Goto(node)),
        }
    }
    Cfg { blocks: b.blocks }
}

/// A statement `break` and `continue` can target.
struct Target<'t> {
    label: Option<&'t str>,
    brk: BlockId,
    /// Where `continue` goes; `None` for a switch or select.
    cont: Option<BlockId>,
}

struct Builder<'t> {
    src: &'t str,
    blocks: Vec<Block<'t>>,
    /// The block being filled. After a jump it is a fresh block nothing leads to.
    cur: BlockId,
    targets: Vec<Target<'t>>,
    labels: HashMap<&'t str, BlockId>,
    gotos: Vec<(BlockId, &'t str, Node<'t>)>,
}

impl<'t> Builder<'t> {
    fn new_block(&mut self) -> BlockId {
        self.blocks.push(Block::default());
        self.blocks.len() - 1
    }

    fn edge(&mut self, from: BlockId, to: BlockId, edge: Edge<'t>) {
        self.blocks[from].succs.push((to, edge));
    }

    fn push(&mut self, item: Item<'t>) {
        self.blocks[self.cur].items.push(item);
    }

    /// Ends the current block (a jump, a return, a call that never returns) and goes on in a
    /// block that nothing reaches.
    fn dead_end(&mut self) {
        self.cur = self.new_block();
    }

    /// Continues in a new block reached from the current one.
    fn fall_into(&mut self, next: BlockId) {
        self.edge(self.cur, next, Edge::Plain);
        self.cur = next;
    }

    fn label_of(&self, node: Node) -> Option<&'t str> {
        syntax::label(node, self.src)
    }

    fn stmt(&mut self, node: Node<'t>, label: Option<&'t str>) {
        match node.kind() {
            "block" => {
                for s in syntax::block_statements(node) {
                    self.stmt(s, None);
                }
            }
            "labeled_statement" => {
                let name = self.label_of(node);
                let start = self.new_block();
                self.fall_into(start);
                if let Some(name) = name {
                    self.labels.insert(name, start);
                }
                if let Some(inner) = node.child_by_field_name("statement") {
                    self.stmt(inner, name);
                }
            }
            "if_statement" => self.if_stmt(node),
            "for_statement" => self.for_stmt(node, label),
            "expression_switch_statement" | "type_switch_statement" | "select_statement" => {
                self.switch_stmt(node, label)
            }
            "return_statement" => {
                self.push(Item::Stmt(node));
                self.blocks[self.cur].exit = Some(Exit::Return(node));
                self.dead_end();
                return;
            }
            "break_statement" | "continue_statement" => {
                self.jump(node);
                return;
            }
            "goto_statement" => {
                if let Some(l) = self.label_of(node) {
                    self.gotos.push((self.cur, l, node));
                }
                self.dead_end();
                return;
            }
            "fallthrough_statement" | "empty_statement" | "comment" => return,
            "expression_statement" => {
                self.push(Item::Stmt(node));
                if node
                    .named_child(0)
                    .is_some_and(|e| is_noreturn_call(e, self.src))
                {
                    self.blocks[self.cur].exit = Some(Exit::NoReturn(node));
                    self.dead_end();
                }
                return;
            }
            _ => {
                self.push(Item::Stmt(node));
                return;
            }
        }
        self.push(Item::Done(node));
    }

    fn jump(&mut self, node: Node<'t>) {
        let is_continue = node.kind() == "continue_statement";
        let label = self.label_of(node);
        let target = self.targets.iter().rev().find(|t| match label {
            Some(l) => t.label == Some(l),
            None => !is_continue || t.cont.is_some(),
        });
        match target.map(|t| if is_continue { t.cont } else { Some(t.brk) }) {
            Some(Some(to)) => self.edge(self.cur, to, Edge::Plain),
            // `continue L` where L labels a switch: not valid Go; claim nothing.
            Some(None) => {}
            None => self.blocks[self.cur].exit = Some(Exit::Jump(node)),
        }
        self.dead_end();
    }

    fn if_stmt(&mut self, node: Node<'t>) {
        if let Some(init) = node.child_by_field_name("init_statement") {
            self.push(Item::Stmt(init));
        }
        if let Some(cond) = node.child_by_field_name("condition") {
            self.push(Item::Cond(cond));
        }
        let head = self.cur;
        let join = self.new_block();
        let then = self.new_block();
        self.edge(head, then, Edge::Then(node));
        self.cur = then;
        if let Some(body) = node.child_by_field_name("body") {
            self.stmt(body, None);
        }
        self.edge(self.cur, join, Edge::Plain);
        match node.child_by_field_name("else") {
            Some(alt) => {
                let other = self.new_block();
                self.edge(head, other, Edge::Else(node));
                self.cur = other;
                self.stmt(alt, None);
                self.edge(self.cur, join, Edge::Plain);
            }
            None => self.edge(head, join, Edge::Else(node)),
        }
        self.cur = join;
    }

    fn for_stmt(&mut self, node: Node<'t>, label: Option<&'t str>) {
        let mut cond = node.child_by_field_name("condition");
        let mut post = None;
        let mut ranged = false;
        for part in syntax::named_children(node) {
            match part.kind() {
                "for_clause" => {
                    if let Some(init) = part.child_by_field_name("init_statement") {
                        self.push(Item::Stmt(init));
                    }
                    cond = part.child_by_field_name("condition");
                    post = part.child_by_field_name("post_statement");
                }
                "range_clause" => {
                    // The range expression is evaluated once, before the first iteration.
                    if let Some(r) = part.child_by_field_name("right") {
                        self.push(Item::Cond(r));
                    }
                    ranged = true;
                }
                _ => {}
            }
        }
        let head = self.new_block();
        self.fall_into(head);
        if let Some(c) = cond {
            self.push(Item::Cond(c));
        }
        let exit = self.new_block();
        if cond.is_some() || ranged {
            self.edge(head, exit, Edge::Plain);
        }
        let cont = self.new_block();
        if let Some(p) = post {
            self.blocks[cont].items.push(Item::Stmt(p));
        }
        self.edge(cont, head, Edge::Plain);
        let body = self.new_block();
        self.edge(head, body, Edge::Plain);
        self.cur = body;
        self.targets.push(Target {
            label,
            brk: exit,
            cont: Some(cont),
        });
        if let Some(b) = node.child_by_field_name("body") {
            self.stmt(b, None);
        }
        self.targets.pop();
        self.edge(self.cur, cont, Edge::Plain);
        self.cur = exit;
    }

    fn switch_stmt(&mut self, node: Node<'t>, label: Option<&'t str>) {
        if let Some(init) = node.child_by_field_name("init_statement") {
            self.push(Item::Stmt(init));
        }
        if let Some(tag) = node
            .child_by_field_name("value")
            .or_else(|| node.child_by_field_name("operand"))
        {
            self.push(Item::Cond(tag));
        }
        let head = self.cur;
        let exit = self.new_block();
        let clauses: Vec<Node> = syntax::named_children(node)
            .into_iter()
            .filter(|c| syntax::is_case_clause(*c))
            .collect();
        let starts: Vec<BlockId> = clauses.iter().map(|_| self.new_block()).collect();
        self.targets.push(Target {
            label,
            brk: exit,
            cont: None,
        });
        for (i, clause) in clauses.iter().enumerate() {
            self.edge(head, starts[i], Edge::Plain);
            self.cur = starts[i];
            if let Some(v) = clause.child_by_field_name("value") {
                self.push(Item::Cond(v));
            }
            if let Some(comm) = clause.child_by_field_name("communication") {
                self.push(Item::Comm(comm));
            }
            let body = syntax::clause_statements(*clause);
            let falls = body
                .last()
                .is_some_and(|s| s.kind() == "fallthrough_statement");
            for s in body {
                self.stmt(s, None);
            }
            let next = match starts.get(i + 1) {
                Some(&n) if falls => n,
                _ => exit,
            };
            self.edge(self.cur, next, Edge::Plain);
        }
        self.targets.pop();
        // A switch without default may match no case. A select without default always runs
        // one case, and `select {}` never goes on.
        let has_default = clauses.iter().any(|c| syntax::is_default_clause(*c));
        if node.kind() != "select_statement" && !has_default {
            self.edge(head, exit, Edge::Plain);
        }
        self.cur = exit;
    }
}

/// Whether a function body never returns: no `return` and no fall off its end is reachable
/// (it ends in `select {}`, a `for {}` with no way out, `os.Exit`, ...).
pub fn never_returns(body: Node, src: &str) -> bool {
    struct Reach;
    impl<'t> crate::dataflow::Analysis<'t> for Reach {
        type State = ();
        fn apply(&self, _: Item<'t>, _: &mut ()) {}
        fn join(&self, _: &mut (), _: &()) {}
    }
    let graph = build(body, src);
    let solution = crate::dataflow::solve(&graph, &Reach, ());
    !crate::dataflow::exits(&graph, &Reach, &solution)
        .iter()
        .any(|(e, _)| e.goes_on())
}

/// True for calls that do not return: `panic`, `os.Exit`, `log.Fatal*`, `runtime.Goexit`,
/// `t.Fatal*`/`b.Fatal*`-style test helpers, testify's `require.Fail*`.
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
