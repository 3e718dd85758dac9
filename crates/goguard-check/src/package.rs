//! What rules may know beyond one function: the other declarations of the same package.
//!
//! Each file is indexed in one walk (nodes by kind), then the package index gathers the
//! functions, methods, lock-holding struct types and closed channel fields of all its files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tree_sitter::Node;

use crate::source::SourceFile;
use crate::syntax::{self, Call};

/// The nodes of one file that rules start from, collected in a single walk.
/// A local declaration: name, declaring node, what it declares, and the byte range of the
/// block (or statement) it is visible in.
pub type LocalDecl<'a> = (
    &'a str,
    Node<'a>,
    crate::resolve::Decl<'a>,
    std::ops::Range<usize>,
);

/// Local declarations by function (node id) and name, in source order.
pub type Declarations<'a> = HashMap<usize, HashMap<&'a str, Vec<LocalDecl<'a>>>>;

self_cell::self_cell!(
    /// A parsed file with its index, built once: the index borrows the file's tree, and an
    /// editor's re-check after one edit indexes that file alone (the others' are kept with
    /// their parse, see [`crate::cache::SessionCache`]).
    pub struct IndexedFile {
        owner: Arc<SourceFile>,
        #[covariant]
        dependent: FileIndex,
    }
);

impl IndexedFile {
    /// Indexes a parsed file.
    pub fn index(file: Arc<SourceFile>) -> IndexedFile {
        IndexedFile::new(file, |f| FileIndex::build(f))
    }

    pub fn file(&self) -> &SourceFile {
        self.borrow_owner()
    }

    pub fn file_index(&self) -> &FileIndex<'_> {
        self.borrow_dependent()
    }
}

/// A function's parameters and its receiver: (name, type node) each; a parameter without a
/// name has `""`.
#[derive(Default)]
pub struct Signature<'a> {
    pub params: Vec<(&'a str, Node<'a>)>,
    pub receiver: Option<(&'a str, Node<'a>)>,
}

impl<'a> Signature<'a> {
    /// The parameters, then the receiver.
    pub fn names(&self) -> impl Iterator<Item = &(&'a str, Node<'a>)> {
        self.params.iter().chain(&self.receiver)
    }
}

#[derive(Default)]
pub struct FileIndex<'a> {
    /// Functions, declarations and literals, in source order (pre-order: a function comes
    /// before the literals nested in it).
    pub functions: Vec<Node<'a>>,
    /// For each function, the index of the function it is nested in.
    pub func_parent: Vec<Option<usize>>,
    pub calls: Vec<Node<'a>>,
    pub go_stmts: Vec<Node<'a>>,
    pub for_stmts: Vec<Node<'a>>,
    pub selects: Vec<Node<'a>>,
    pub sends: Vec<Node<'a>>,
    pub type_specs: Vec<Node<'a>>,
    /// `:=`, `=` and `var` declarations with values.
    pub assignments: Vec<Node<'a>>,
    pub returns: Vec<Node<'a>>,
    pub range_clauses: Vec<Node<'a>>,
    pub channel_types: Vec<Node<'a>>,
    /// The `{...}` of composite literals.
    pub literals: Vec<Node<'a>>,
    /// Blocks and statements that open a scope, in source order, with their parents.
    pub scopes: Vec<Node<'a>>,
    scope_parent: Vec<Option<usize>>,
    /// Calls by called name (`Lock` for `mu.Lock()`), so rules look only at the calls they want.
    pub calls_by_name: HashMap<&'a str, Vec<Node<'a>>>,
    /// Local declarations per function (see `declarations`).
    decls: Declarations<'a>,
    /// Each function's parameters and receiver, by the function's node id: name resolution
    /// asks for them on every identifier it looks up.
    signatures: HashMap<usize, Signature<'a>>,
    src: &'a str,
    /// Import name (alias or last path element) to import path.
    pub imports: HashMap<String, String>,
    /// The channel buffers this file's stores give fields and package variables (the
    /// package merges every file's).
    channel_stores: crate::channels::ChannelFacts<'a>,
    /// See [`top_level_structs`].
    top_level_structs: Vec<(&'a str, bool, Vec<&'a str>)>,
}

impl<'a> FileIndex<'a> {
    pub fn build(file: &'a SourceFile) -> FileIndex<'a> {
        let mut ix = FileIndex {
            src: file.text.as_str(),
            ..FileIndex::default()
        };
        let slots = kind_slots();
        let mut cursor = file.root().walk();
        // Iterative pre-order walk with the tree cursor: the cheapest way through the tree.
        // Kinds are compared by id: `Node::kind` costs a C-string conversion per node.
        'walk: loop {
            let node = cursor.node();
            match slots
                .get(node.kind_id() as usize)
                .copied()
                .unwrap_or(Slot::None)
            {
                Slot::None => {}
                Slot::Function => ix.functions.push(node),
                Slot::Call => ix.calls.push(node),
                Slot::Go => ix.go_stmts.push(node),
                Slot::For => {
                    ix.for_stmts.push(node);
                    ix.scopes.push(node);
                }
                Slot::Select => ix.selects.push(node),
                Slot::Send => ix.sends.push(node),
                Slot::TypeSpec => ix.type_specs.push(node),
                Slot::Assignment => ix.assignments.push(node),
                Slot::Return => ix.returns.push(node),
                Slot::Range => ix.range_clauses.push(node),
                Slot::ChannelType => ix.channel_types.push(node),
                Slot::Literal => ix.literals.push(node),
                Slot::Import => ix.add_import(file, node),
                Slot::Scope => ix.scopes.push(node),
            }
            if cursor.goto_first_child() {
                continue;
            }
            loop {
                if cursor.goto_next_sibling() {
                    continue 'walk;
                }
                if !cursor.goto_parent() {
                    break 'walk;
                }
            }
        }
        for &c in &ix.calls {
            if let Some(name) = crate::syntax::call_name(c, ix.src) {
                ix.calls_by_name.entry(name).or_default().push(c);
            }
        }
        ix.func_parent = link(&ix.functions);
        ix.scope_parent = link(&ix.scopes);
        ix.decls = ix.build_declarations();
        ix.channel_stores = crate::channels::ChannelFacts::of_file(&ix);
        ix.top_level_structs = top_level_structs(file.root(), ix.src);
        ix.signatures = ix
            .functions
            .iter()
            .map(|&f| {
                let sig = Signature {
                    params: syntax::params(f, ix.src),
                    receiver: syntax::receiver(f, ix.src),
                };
                (f.id(), sig)
            })
            .collect();
        ix
    }

    /// Every parameter and receiver of the file's functions: (name, type node).
    pub fn all_params(&self) -> impl Iterator<Item = &(&'a str, Node<'a>)> {
        self.signatures.values().flat_map(Signature::names)
    }

    /// The parameters and receiver of function `f` of this file.
    pub fn signature(&self, f: Node<'a>) -> Option<&Signature<'a>> {
        self.signatures.get(&f.id())
    }

    /// The file's text.
    pub fn src(&self) -> &'a str {
        self.src
    }

    /// The local declarations of the file, by function and name.
    pub fn declarations(&self) -> &Declarations<'a> {
        &self.decls
    }

    fn build_declarations(&self) -> Declarations<'a> {
        {
            let mut out: Declarations<'a> = HashMap::new();
            for &n in &self.assignments {
                if n.kind() == "assignment" {
                    continue;
                }
                let Some(func) = self.enclosing_function(n) else {
                    continue;
                };
                let Some((lhs, rhs)) = syntax::assignment_sides(n) else {
                    continue;
                };
                let ty = if n.kind() == "var_spec" {
                    n.child_by_field_name("type")
                } else {
                    None
                };
                let scope = self
                    .innermost(&self.scopes, &self.scope_parent, n)
                    .map(|s| s.byte_range())
                    .unwrap_or_else(|| func.byte_range());
                for (i, l) in lhs.iter().enumerate() {
                    let decl = match ty {
                        Some(t) => Some(crate::resolve::Decl::Type(t)),
                        None => rhs
                            .get(i)
                            .or(if rhs.len() == 1 { rhs.first() } else { None })
                            .map(|v| crate::resolve::Decl::Value(*v)),
                    };
                    if let Some(d) = decl {
                        let name = &self.src[l.byte_range()];
                        out.entry(func.id())
                            .or_default()
                            .entry(name)
                            .or_default()
                            .push((name, n, d, scope.clone()));
                    }
                }
            }
            out
        }
    }

    /// The functions (by index in `functions`) that contain a call named one of `names`,
    /// directly (not through a nested literal). Rules use it to visit only relevant functions.
    pub fn functions_calling(&self, _src: &str, names: &[&str]) -> Vec<Node<'a>> {
        let mut out: Vec<Node<'a>> = Vec::new();
        for c in self.calls_named(names) {
            if let Some(f) = self.enclosing_function(c) {
                if !out.iter().any(|o| o.id() == f.id()) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// The calls whose called name is one of `names`, in source order.
    pub fn calls_named(&self, names: &[&str]) -> Vec<Node<'a>> {
        let mut out: Vec<Node<'a>> = names
            .iter()
            .filter_map(|n| self.calls_by_name.get(n))
            .flatten()
            .copied()
            .collect();
        if names.len() > 1 {
            out.sort_by_key(|n| n.start_byte());
        }
        out
    }

    /// The innermost function strictly enclosing `node`, without walking parents (asking
    /// tree-sitter for a parent walks down from the root, which is slow in hot loops).
    pub fn enclosing_function(&self, node: Node<'a>) -> Option<Node<'a>> {
        self.innermost(&self.functions, &self.func_parent, node)
    }

    /// The innermost node of a pre-ordered, parent-linked list that strictly encloses `node`.
    fn innermost(
        &self,
        list: &[Node<'a>],
        parent: &[Option<usize>],
        node: Node<'a>,
    ) -> Option<Node<'a>> {
        let start = node.start_byte();
        let mut i = list.partition_point(|f| f.start_byte() <= start);
        while i > 0 && list[i - 1].id() == node.id() {
            i -= 1;
        }
        let mut cur = i.checked_sub(1);
        while let Some(k) = cur {
            let f = list[k];
            if f.id() != node.id() && f.start_byte() <= start && node.end_byte() <= f.end_byte() {
                return Some(f);
            }
            cur = parent[k];
        }
        None
    }

    fn add_import(&mut self, file: &SourceFile, spec: Node) {
        let Some(path) = spec.child_by_field_name("path") else {
            return;
        };
        let path = file.text_of(path).trim_matches(['"', '`']).to_string();
        let name = match spec.child_by_field_name("name") {
            Some(n) => file.text_of(n).to_string(),
            None => default_import_name(&path),
        };
        self.imports.insert(name, path);
    }
}

/// Which list of the index a node kind goes to.
#[derive(Clone, Copy)]
enum Slot {
    None,
    Function,
    Call,
    Go,
    For,
    Select,
    Send,
    TypeSpec,
    Assignment,
    Return,
    Range,
    ChannelType,
    Literal,
    Import,
    Scope,
}

/// The slot of every kind id of the Go grammar, computed once.
fn kind_slots() -> &'static [Slot] {
    static SLOTS: std::sync::OnceLock<Vec<Slot>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let lang = syntax::language();
        let mut slots = vec![Slot::None; lang.node_kind_count()];
        let table = [
            ("function_declaration", Slot::Function),
            ("method_declaration", Slot::Function),
            ("function_literal", Slot::Function),
            ("call_expression", Slot::Call),
            ("go_statement", Slot::Go),
            ("for_statement", Slot::For),
            ("select_statement", Slot::Select),
            ("send_statement", Slot::Send),
            ("type_definition", Slot::TypeSpec),
            ("short_var_declaration", Slot::Assignment),
            ("assignment", Slot::Assignment),
            ("var_spec", Slot::Assignment),
            ("return_statement", Slot::Return),
            ("range_clause", Slot::Range),
            ("channel_type", Slot::ChannelType),
            ("literal_value", Slot::Literal),
            ("import_spec", Slot::Import),
            ("block", Slot::Scope),
            ("if_statement", Slot::Scope),
            ("for_statement", Slot::For),
            ("expression_switch_statement", Slot::Scope),
            ("type_switch_statement", Slot::Scope),
            ("communication_clause", Slot::Scope),
            ("expression_case_clause", Slot::Scope),
            ("type_case_clause", Slot::Scope),
        ];
        for (kind, slot) in table {
            let id = lang.id_for_node_kind(kind, true) as usize;
            if id < slots.len() {
                slots[id] = slot;
            }
        }
        slots
    })
}

/// The name a package is referred to by when imported without an alias. Handles the
/// `/v2` major-version suffix and `gopkg.in/x.v1` conventions.
fn default_import_name(path: &str) -> String {
    let mut parts = path.rsplit('/');
    let mut last = parts.next().unwrap_or(path);
    if last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit()) {
        last = parts.next().unwrap_or(last);
    }
    let last = last.split('.').next().unwrap_or(last);
    last.trim_start_matches("go-").replace('-', "_")
}

/// Which `sync` value a struct type holds (by value, possibly through other structs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    Mutex,
    WaitGroup,
}

/// A function or method declared in the package.
#[derive(Clone, Copy)]
pub struct FuncDecl<'a> {
    pub file: usize,
    pub node: Node<'a>,
}

/// Declarations of one Go package (the files of one directory with one package name).
pub struct PackageIndex<'a> {
    pub files: Vec<&'a SourceFile>,
    pub file_indexes: Vec<&'a FileIndex<'a>>,
    /// Each file's build constraints (same order as `files`).
    pub constraints: Vec<crate::buildtags::Constraint>,
    /// Top-level functions by name: one per file that declares it (several only under
    /// different build constraints: `run_linux.go`, `run_windows.go`).
    pub funcs: HashMap<&'a str, Vec<FuncDecl<'a>>>,
    /// Methods by (receiver base type, method name), as `funcs`.
    pub methods: HashMap<(&'a str, &'a str), Vec<FuncDecl<'a>>>,
    /// Struct types of the package holding a sync value by value.
    pub sync_types: HashMap<&'a str, HashSet<SyncKind>>,
    /// Field names `f` for which the package calls `close(x.f)` somewhere.
    pub closed_fields: HashSet<&'a str>,
    /// Struct fields of the package whose type is a sync value or a pointer to one.
    pub sync_fields: HashMap<&'a str, SyncKind>,
    /// Struct types that embed a sync value, so `x.Lock()`/`x.Done()` act on it.
    pub embeds: HashMap<&'a str, SyncKind>,
    /// Package-level variables holding a sync value.
    pub sync_globals: HashMap<&'a str, SyncKind>,
    /// The buffers of the channels kept in fields and package variables.
    pub channels: crate::channels::ChannelFacts<'a>,
}

impl<'a> PackageIndex<'a> {
    pub fn build(indexed: Vec<&'a IndexedFile>) -> PackageIndex<'a> {
        let files: Vec<&'a SourceFile> = indexed.iter().map(|f| f.file()).collect();
        let file_indexes = indexed.iter().map(|f| f.file_index()).collect();
        let constraints = files
            .iter()
            .map(|f| {
                let name = f.path.file_name().map(|n| n.to_string_lossy());
                crate::buildtags::Constraint::of_file(name.as_deref().unwrap_or(""), &f.text)
            })
            .collect();
        let mut pkg = PackageIndex {
            files,
            file_indexes,
            constraints,
            funcs: HashMap::new(),
            methods: HashMap::new(),
            sync_types: HashMap::new(),
            closed_fields: HashSet::new(),
            sync_fields: HashMap::new(),
            embeds: HashMap::new(),
            sync_globals: HashMap::new(),
            channels: Default::default(),
        };
        for ix in &pkg.file_indexes {
            pkg.channels.merge(&ix.channel_stores);
        }
        pkg.index_declarations();
        pkg.index_sync_types();
        pkg.index_globals();
        pkg
    }

    fn index_declarations(&mut self) {
        for (i, (file, ix)) in self.files.iter().zip(&self.file_indexes).enumerate() {
            let src = file.text.as_str();
            for &f in &ix.functions {
                let decl = FuncDecl { file: i, node: f };
                match f.kind() {
                    "function_declaration" => {
                        if let Some(name) = f.child_by_field_name("name") {
                            self.funcs
                                .entry(&src[name.byte_range()])
                                .or_default()
                                .push(decl);
                        }
                    }
                    "method_declaration" => {
                        let ty = syntax::receiver(f, src)
                            .and_then(|(_, t)| syntax::base_type_name(t, src));
                        if let (Some(ty), Some(name)) = (ty, f.child_by_field_name("name")) {
                            self.methods
                                .entry((ty, &src[name.byte_range()]))
                                .or_default()
                                .push(decl);
                        }
                    }
                    _ => {}
                }
            }
            for &call in ix.calls_named(&["close"]).iter() {
                let Some(c) = Call::of(call) else { continue };
                if c.receiver.is_none() {
                    if let Some(arg) = c.args.first() {
                        let arg = syntax::unparen(*arg);
                        if arg.kind() == "selector_expression" {
                            if let Some(field) = arg.child_by_field_name("field") {
                                self.closed_fields.insert(&src[field.byte_range()]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Finds struct types holding sync.Mutex/RWMutex/WaitGroup by value, directly, embedded,
    /// in arrays, or through other such structs of the package (to a fixed point).
    fn index_sync_types(&mut self) {
        let mut fields: Vec<(&'a str, Vec<Node<'a>>, usize)> = Vec::new();
        for (i, (file, ix)) in self.files.iter().zip(&self.file_indexes).enumerate() {
            let src = file.text.as_str();
            for &spec in &ix.type_specs {
                let Some((name, struct_fields)) = struct_fields(spec) else {
                    continue;
                };
                let mut types = Vec::new();
                for (field, t) in struct_fields {
                    types.push(t);
                    let Some(kind) = direct_sync_kind(t, src) else {
                        continue;
                    };
                    let mut cursor = field.walk();
                    let names: Vec<_> = field.children_by_field_name("name", &mut cursor).collect();
                    if names.is_empty() {
                        self.embeds.insert(&src[name.byte_range()], kind);
                    }
                    for n in names {
                        self.sync_fields.insert(&src[n.byte_range()], kind);
                    }
                }
                fields.push((&src[name.byte_range()], types, i));
            }
        }
        loop {
            let mut changed = false;
            for (name, types, file) in &fields {
                let src = self.files[*file].text.as_str();
                for &t in types {
                    for kind in self.sync_kinds_of_type(t, src) {
                        changed |= self.sync_types.entry(name).or_default().insert(kind);
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Package-level `var x sync.Mutex` and the like.
    fn index_globals(&mut self) {
        for file in &self.files {
            let src = file.text.as_str();
            let root = file.root();
            for decl in syntax::named_children(root) {
                if decl.kind() != "var_declaration" {
                    continue;
                }
                for spec in syntax::descendants(decl, false) {
                    if spec.kind() != "var_spec" {
                        continue;
                    }
                    let Some(t) = spec.child_by_field_name("type") else {
                        continue;
                    };
                    let Some(kind) = direct_sync_kind(t, src) else {
                        continue;
                    };
                    let mut cursor = spec.walk();
                    for n in spec.children_by_field_name("name", &mut cursor) {
                        self.sync_globals.insert(&src[n.byte_range()], kind);
                    }
                }
            }
        }
    }

    /// The sync values a type holds by value (`sync.Mutex`, `[2]sync.Mutex`, a package
    /// struct holding one). Pointers, slices, maps and channels hold none.
    pub fn sync_kinds_of_type(&self, ty: Node, src: &str) -> Vec<SyncKind> {
        match ty.kind() {
            "qualified_identifier" => {
                let pkg = ty
                    .child_by_field_name("package")
                    .map(|p| &src[p.byte_range()]);
                let name = ty.child_by_field_name("name").map(|p| &src[p.byte_range()]);
                match (pkg, name) {
                    (Some("sync"), Some("Mutex" | "RWMutex")) => vec![SyncKind::Mutex],
                    (Some("sync"), Some("WaitGroup")) => vec![SyncKind::WaitGroup],
                    _ => Vec::new(),
                }
            }
            "type_identifier" => self
                .sync_types
                .get(&src[ty.byte_range()])
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            "array_type" | "parenthesized_type" | "generic_type" => {
                let inner = ty
                    .child_by_field_name("element")
                    .or_else(|| ty.child_by_field_name("type"))
                    .or_else(|| ty.named_child(0));
                inner
                    .map(|t| self.sync_kinds_of_type(t, src))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// Where `node` of file `file` is, as a finding in file `from` names it: `line 12` in
    /// the same file, `run.go:12` in another.
    pub fn site(&self, file: usize, node: Node, from: usize) -> String {
        let f = self.files[file];
        let line = f.position(node.start_byte()).line;
        if file == from {
            format!("line {line}")
        } else {
            let name = f.path.file_name().map(|n| n.to_string_lossy());
            format!("{}:{line}", name.unwrap_or_default())
        }
    }

    /// Whether files `a` and `b` (indexes in `files`) can be in one build.
    pub fn builds_with(&self, a: usize, b: usize) -> bool {
        a == b || crate::buildtags::compatible(&self.constraints[a], &self.constraints[b])
    }
}

/// A struct type definition's name and its fields, as (field, type) pairs. (An embedded
/// `*T`, like any pointer field, has a pointer type: it holds nothing by value.)
fn struct_fields(spec: Node) -> Option<(Node, Vec<(Node, Node)>)> {
    let name = spec.child_by_field_name("name")?;
    let ty = spec.child_by_field_name("type")?;
    if ty.kind() != "struct_type" {
        return None;
    }
    let out = syntax::named_children(ty)
        .into_iter()
        .filter(|f| f.kind() == "field_declaration")
        .filter_map(|f| Some((f, f.child_by_field_name("type")?)))
        .collect();
    Some((name, out))
}

/// `sync.Mutex`, `*sync.RWMutex`, `sync.WaitGroup`... as a sync kind (pointers included).
pub fn direct_sync_kind(ty: Node, src: &str) -> Option<SyncKind> {
    let ty = if ty.kind() == "pointer_type" {
        ty.named_child(0)?
    } else {
        ty
    };
    if ty.kind() != "qualified_identifier" {
        return None;
    }
    let pkg = &src[ty.child_by_field_name("package")?.byte_range()];
    let name = &src[ty.child_by_field_name("name")?.byte_range()];
    match (pkg, name) {
        ("sync", "Mutex" | "RWMutex") => Some(SyncKind::Mutex),
        ("sync", "WaitGroup") => Some(SyncKind::WaitGroup),
        _ => None,
    }
}

/// Parent links of a pre-ordered list of nested ranges, computed with a stack.
fn link(list: &[Node]) -> Vec<Option<usize>> {
    let mut stack: Vec<usize> = Vec::new();
    let mut parent = Vec::with_capacity(list.len());
    for (i, n) in list.iter().enumerate() {
        while let Some(&top) = stack.last() {
            if list[top].end_byte() >= n.end_byte() {
                break;
            }
            stack.pop();
        }
        parent.push(stack.last().copied());
        stack.push(i);
    }
    parent
}

/// Names of the struct types declared at the top level of `files` that hold a sync value by
/// value (directly, in arrays, or through each other). A light version of the package
/// index's analysis, used to decide which unparsed files may copy such a value.
pub fn sync_holder_names<'a, 'f: 'a>(
    files: impl Iterator<Item = &'a FileIndex<'f>>,
) -> HashSet<String> {
    let mut holders: HashSet<String> = HashSet::new();
    let structs: Vec<&(&str, bool, Vec<&str>)> =
        files.flat_map(|ix| ix.top_level_structs.iter()).collect();
    for (name, direct, _) in &structs {
        if *direct {
            holders.insert(name.to_string());
        }
    }
    loop {
        let before = holders.len();
        for (name, _, fields) in &structs {
            if fields.iter().any(|f| holders.contains(*f)) {
                holders.insert(name.to_string());
            }
        }
        if holders.len() == before {
            return holders;
        }
    }
}

/// The struct types a file declares at top level: (name, whether a field holds a sync
/// value by value, the names of its other fields' types), for [`sync_holder_names`].
fn top_level_structs<'a>(root: Node<'a>, src: &'a str) -> Vec<(&'a str, bool, Vec<&'a str>)> {
    let mut structs = Vec::new();
    for decl in syntax::named_children(root) {
        if decl.kind() != "type_declaration" {
            continue;
        }
        for spec in syntax::named_children(decl) {
            let Some((name, fields)) = struct_fields(spec) else {
                continue;
            };
            let mut direct = false;
            let mut field_types = Vec::new();
            for (_, mut t) in fields {
                while t.kind() == "array_type" {
                    match t.child_by_field_name("element") {
                        Some(e) => t = e,
                        None => break,
                    }
                }
                if direct_sync_kind(t, src).is_some() && t.kind() != "pointer_type" {
                    direct = true;
                } else if t.kind() == "type_identifier" {
                    field_types.push(&src[t.byte_range()]);
                }
            }
            structs.push((&src[name.byte_range()], direct, field_types));
        }
    }
    structs
}
