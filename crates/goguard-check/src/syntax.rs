//! Small helpers over the Go grammar's nodes (tree-sitter-golang: Go 1.27 syntax in the
//! shape of `go/ast`), shared by the rules. What a rule needs to know of the grammar's node
//! kinds and fields beyond the obvious is said here once: case clauses, labels, blocks.
//!
//! Rules look inside ERROR nodes too: tree-sitter keeps well-formed subtrees under them, and a
//! file using syntax newer than the grammar should still be analysed where it can be.

use std::sync::OnceLock;

use tree_sitter::Node;

/// Node kinds that start a new function body (a new scope for `return`).
pub fn is_function(node: Node) -> bool {
    matches!(
        node.kind(),
        "function_declaration" | "method_declaration" | "function_literal"
    )
}

/// The named children of a node.
pub fn named_children<'t>(node: Node<'t>) -> Vec<Node<'t>> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor).collect()
}

/// The Go grammar.
pub fn language() -> tree_sitter::Language {
    tree_sitter_golang::LANGUAGE.into()
}

/// The kind id of `function_literal` in the Go grammar, looked up once.
fn func_literal_id() -> u16 {
    static ID: OnceLock<u16> = OnceLock::new();
    *ID.get_or_init(|| language().id_for_node_kind("function_literal", true))
}

/// Field ids of the Go grammar used on hot paths. Looking a field up by name scans the
/// grammar's field names with strncmp on every call; ids are looked up once.
pub struct Fields {
    pub function: u16,
    pub operand: u16,
    pub field: u16,
    pub arguments: u16,
    pub left: u16,
    pub right: u16,
    pub parameters: u16,
    pub type_: u16,
    pub name: u16,
    pub value: u16,
}

/// The field ids, computed once.
pub fn fields() -> &'static Fields {
    static F: OnceLock<Fields> = OnceLock::new();
    F.get_or_init(|| {
        let lang = language();
        let id = |n: &str| lang.field_id_for_name(n).map_or(0, |i| i.get());
        Fields {
            function: id("function"),
            operand: id("operand"),
            field: id("field"),
            arguments: id("arguments"),
            left: id("left"),
            right: id("right"),
            parameters: id("parameters"),
            type_: id("type"),
            name: id("name"),
            value: id("value"),
        }
    })
}

/// Every node below `node` (itself included), depth first in source order. When
/// `into_funcs` is false the bodies of nested function literals are not entered (the
/// literal node itself is still yielded).
///
/// One tree cursor walks the subtree: creating a cursor or asking for a parent per node
/// costs far more than the walk itself.
pub fn descendants(node: Node, into_funcs: bool) -> Vec<Node> {
    let mut out = Vec::new();
    let func_literal = func_literal_id();
    let mut cursor = node.walk();
    loop {
        let n = cursor.node();
        out.push(n);
        let enter = into_funcs || n.kind_id() != func_literal || n.id() == node.id();
        if enter && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.node().id() == node.id() {
                return out;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return out;
            }
        }
    }
}

/// Removes any number of enclosing parentheses.
pub fn unparen(mut node: Node) -> Node {
    while node.kind() == "parenthesized_expression" {
        match node.named_child(0) {
            Some(inner) => node = inner,
            None => break,
        }
    }
    node
}

/// The closest enclosing function (declaration, method or literal) of `node`.
pub fn enclosing_function(node: Node) -> Option<Node> {
    let mut cur = node.parent();
    while let Some(n) = cur {
        if is_function(n) {
            return Some(n);
        }
        cur = n.parent();
    }
    None
}

/// The statements of a block (`{ ... }`), without comments and empty statements.
pub fn block_statements(block: Node) -> Vec<Node> {
    named_children(block)
        .into_iter()
        .filter(|n| !matches!(n.kind(), "comment" | "empty_statement"))
        .collect()
}

/// Whether `node` is a clause of a switch or select: `case ...:` or `default:`.
pub fn is_case_clause(node: Node) -> bool {
    matches!(
        node.kind(),
        "expression_case_clause" | "type_case_clause" | "communication_clause"
    )
}

/// Whether a clause is `default:`: it has no value, type or communication.
pub fn is_default_clause(node: Node) -> bool {
    let field = match node.kind() {
        "expression_case_clause" => "value",
        "type_case_clause" => "type",
        "communication_clause" => "communication",
        _ => return false,
    };
    node.child_by_field_name(field).is_none()
}

/// Whether `node` is a select case with a send or receive (`case v := <-ch:`).
pub fn is_comm_case(node: Node) -> bool {
    node.kind() == "communication_clause" && node.child_by_field_name("communication").is_some()
}

/// Whether `node` is the send or receive of a select case (not a statement in its body).
pub fn is_select_communication(node: Node) -> bool {
    node.parent().is_some_and(|p| {
        p.kind() == "communication_clause"
            && p.child_by_field_name("communication").map(|c| c.id()) == Some(node.id())
    })
}

/// The statements of a case clause, after its `case ...:` (the clause's value, types or
/// communication are fields of it, the statements are not).
pub fn clause_statements(clause: Node) -> Vec<Node> {
    let mut out = Vec::new();
    let mut cursor = clause.walk();
    if cursor.goto_first_child() {
        loop {
            let n = cursor.node();
            if n.is_named()
                && cursor.field_name().is_none()
                && !matches!(n.kind(), "comment" | "empty_statement")
            {
                out.push(n);
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
    }
    out
}

/// The label of a labeled statement, `break` or `continue`, as written.
pub fn label<'s>(node: Node, src: &'s str) -> Option<&'s str> {
    node.child_by_field_name("label")
        .and_then(|l| src.get(l.byte_range()))
}

/// A call split into its callee parts: `recv.name(args)` or `name(args)`.
#[derive(Clone)]
pub struct Call<'t> {
    pub node: Node<'t>,
    /// The operand of a selector callee (`recv` in `recv.name()`).
    pub receiver: Option<Node<'t>>,
    /// The called name (`name`).
    pub name: Node<'t>,
    pub args: Vec<Node<'t>>,
}

impl<'t> Call<'t> {
    /// Reads a `call_expression`; anything else gives `None`.
    pub fn of(node: Node<'t>) -> Option<Call<'t>> {
        if node.kind() != "call_expression" {
            return None;
        }
        let f = fields();
        let function = unparen(node.child_by_field_id(f.function)?);
        let (receiver, name) = match function.kind() {
            "selector_expression" => (
                Some(function.child_by_field_id(f.operand)?),
                function.child_by_field_id(f.field)?,
            ),
            "identifier" => (None, function),
            _ => return None,
        };
        let args = node
            .child_by_field_id(f.arguments)
            .map(|a| {
                named_children(a)
                    .into_iter()
                    .filter(|n| n.kind() != "comment")
                    .collect()
            })
            .unwrap_or_default();
        Some(Call {
            node,
            receiver,
            name,
            args,
        })
    }
}

/// The called name of a call expression (`name` in `recv.name()` or `name()`), without
/// building a [`Call`].
pub fn call_name<'s>(node: Node, src: &'s str) -> Option<&'s str> {
    let ids = fields();
    let f = unparen(node.child_by_field_id(ids.function)?);
    let name = match f.kind() {
        "selector_expression" => f.child_by_field_id(ids.field)?,
        "identifier" => f,
        _ => return None,
    };
    src.get(name.byte_range())
}

/// The function literal or called function of a `go`/`defer` statement's call.
pub fn stmt_call(stmt: Node) -> Option<Node> {
    let expr = named_children(stmt)
        .into_iter()
        .find(|n| n.kind() != "comment")?;
    let expr = unparen(expr);
    (expr.kind() == "call_expression").then_some(expr)
}

/// For `go func(){...}()` or `defer func(){...}()`, the literal.
pub fn stmt_func_literal(stmt: Node) -> Option<Node> {
    let call = stmt_call(stmt)?;
    let f = unparen(call.child_by_field_name("function")?);
    (f.kind() == "function_literal").then_some(f)
}

/// The channel a receive expression `<-ch` reads from; `None` for any other node.
pub fn received_channel(node: Node) -> Option<Node> {
    if node.kind() != "unary_expression" || node.child(0).is_none_or(|o| o.kind() != "<-") {
        return None;
    }
    node.child_by_field_name("operand")
}

/// True when `ancestor` contains `node` (or is it), by source range.
pub fn contains(ancestor: Node, node: Node) -> bool {
    ancestor.start_byte() <= node.start_byte() && node.end_byte() <= ancestor.end_byte()
}

/// The innermost loop (`for` statement) around `node` inside its own function.
pub fn enclosing_loop(node: Node) -> Option<Node> {
    let mut cur = node.parent();
    while let Some(n) = cur {
        if is_function(n) {
            return None;
        }
        if n.kind() == "for_statement" {
            return Some(n);
        }
        cur = n.parent();
    }
    None
}

/// The ranged expression of a `for ... range X` statement.
pub fn range_expr(for_stmt: Node) -> Option<Node> {
    named_children(for_stmt)
        .into_iter()
        .find(|n| n.kind() == "range_clause")
        .and_then(|rc| rc.child_by_field_name("right"))
}

/// True for `for { ... }` (no condition, no clause).
pub fn is_infinite_for(for_stmt: Node) -> bool {
    for_stmt.kind() == "for_statement"
        && named_children(for_stmt).into_iter().all(|n| {
            n.kind() == "block"
                || n.kind() == "comment"
                || (n.kind() == "for_clause" && n.child_by_field_name("condition").is_none())
        })
}

/// The parameters of a function node as (name, type node) pairs; unnamed ones get "".
pub fn params<'t>(func: Node<'t>, src: &'t str) -> Vec<(&'t str, Node<'t>)> {
    let Some(list) = func.child_by_field_id(fields().parameters) else {
        return Vec::new();
    };
    param_list(list, src)
}

/// The entries of a parameter list (`parameters`) as (name, type node) pairs.
pub fn param_list<'t>(list: Node<'t>, src: &'t str) -> Vec<(&'t str, Node<'t>)> {
    let mut out = Vec::new();
    for decl in named_children(list) {
        if decl.kind() != "parameter_declaration" {
            continue;
        }
        let Some(ty) = decl.child_by_field_id(fields().type_) else {
            continue;
        };
        let mut cursor = decl.walk();
        let names: Vec<_> = decl
            .children_by_field_name("name", &mut cursor)
            .map(|n| src.get(n.byte_range()).unwrap_or(""))
            .collect();
        if names.is_empty() {
            out.push(("", ty));
        } else {
            out.extend(names.into_iter().map(|n| (n, ty)));
        }
    }
    out
}

/// The receiver of a method declaration: (name, type node).
pub fn receiver<'t>(method: Node<'t>, src: &'t str) -> Option<(&'t str, Node<'t>)> {
    let list = method.child_by_field_name("receiver")?;
    param_list(list, src).into_iter().next()
}

/// The base type name of a type node: `*pkg.T[U]` gives `T`.
pub fn base_type_name<'t>(ty: Node<'t>, src: &'t str) -> Option<&'t str> {
    let mut ty = ty;
    loop {
        match ty.kind() {
            "pointer_type" | "parenthesized_type" => ty = ty.named_child(0)?,
            "generic_type" => ty = ty.child_by_field_name("type")?,
            "qualified_identifier" => ty = ty.child_by_field_name("name")?,
            "type_identifier" => return src.get(ty.byte_range()),
            _ => return None,
        }
    }
}

/// The left-hand identifiers and right-hand values of a `:=`, `=` or `var` statement.
pub fn assignment_sides(node: Node) -> Option<(Vec<Node>, Vec<Node>)> {
    let (left, right) = match node.kind() {
        "short_var_declaration" | "assignment" => (
            node.child_by_field_id(fields().left)?,
            node.child_by_field_id(fields().right),
        ),
        "var_spec" => {
            let mut cursor = node.walk();
            let names: Vec<_> = node.children_by_field_name("name", &mut cursor).collect();
            let values = node
                .child_by_field_id(fields().value)
                .map(named_children)
                .unwrap_or_default();
            return Some((names, values));
        }
        _ => return None,
    };
    let lhs = if left.kind() == "expression_list" {
        named_children(left)
    } else {
        vec![left]
    };
    let rhs = match right {
        Some(r) if r.kind() == "expression_list" => named_children(r),
        Some(r) => vec![r],
        None => Vec::new(),
    };
    Some((lhs, rhs))
}

/// True when the subtree of `node` references identifier `name` (any identifier node with
/// that text, including inside nested function literals).
pub fn mentions(node: Node, src: &str, name: &str) -> bool {
    descendants(node, true)
        .into_iter()
        .any(|n| n.kind() == "identifier" && src.get(n.byte_range()) == Some(name))
}

/// True when the subtree contains an expression whose text equals `expr` (e.g. `s.mu`).
pub fn mentions_expr(node: Node, src: &str, expr: &str) -> bool {
    if !expr.contains('.') {
        return mentions(node, src, expr);
    }
    descendants(node, true).into_iter().any(|n| {
        n.kind() == "selector_expression"
            && normalize(src.get(n.byte_range()).unwrap_or("")) == expr
    })
}

/// Normalizes expression text for comparison: drops white space and parentheses around it.
pub fn normalize(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut s = t.as_str();
    while s.starts_with('(') && s.ends_with(')') {
        s = &s[1..s.len() - 1];
    }
    s.to_string()
}

/// The line of `node` counted from the start of the file (0-based), for ordering.
pub fn is_before(a: Node, b: Node) -> bool {
    a.end_byte() <= b.start_byte()
}

/// Where `word` occurs in `text` as a whole identifier (not inside a longer name).
pub fn word_positions<'s>(text: &'s str, word: &'s str) -> impl Iterator<Item = usize> + 's {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        !text[..i].chars().next_back().is_some_and(ident)
            && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The type of a function declaration's first result (`*T` in `func f() (*T, error)`).
pub fn first_result_type<'t>(func: Node<'t>, src: &'t str) -> Option<Node<'t>> {
    let result = func.child_by_field_name("result")?;
    if result.kind() == "parameter_list" {
        param_list(result, src).first().map(|(_, t)| *t)
    } else {
        Some(result)
    }
}
