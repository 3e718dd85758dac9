//! The context a rule runs in: one file, its package, its Go version, and where findings go.

use tree_sitter::Node;

use crate::diagnostic::{Diagnostic, Severity};
use crate::gomod::{GoVersion, ModuleInfo};
use crate::package::{FileIndex, PackageIndex};
use crate::registry::Rule;
use crate::source::SourceFile;
use crate::syntax::{self, Call};

/// What a rule sees while checking one file.
pub struct Checker<'a> {
    pub file: &'a SourceFile,
    /// This file's position in `pkg.files`.
    pub file_in_pkg: usize,
    pub index: &'a FileIndex<'a>,
    pub pkg: &'a PackageIndex<'a>,
    pub module: &'a ModuleInfo,
    pub(crate) rule: &'static Rule,
    pub(crate) out: Vec<Diagnostic>,
}

/// A finding as a rule states it; the checker adds location, rule and severity.
pub struct Finding<'n> {
    pub node: Node<'n>,
    pub message: String,
    pub help: String,
    /// Overrides the rule's default severity (e.g. version-dependent verdicts).
    pub severity: Option<Severity>,
}

impl<'a> Checker<'a> {
    /// The source text.
    pub fn src(&self) -> &'a str {
        self.file.text.as_str()
    }

    pub fn text(&self, node: Node) -> &'a str {
        self.src().get(node.byte_range()).unwrap_or("")
    }

    pub fn go_version(&self) -> GoVersion {
        self.module.version
    }

    pub fn report(&mut self, f: Finding) {
        self.report_fixed(f, None);
    }

    /// Reports a finding with the fix the rule offers for it (`None`: no mechanical fix in
    /// this shape).
    pub fn report_fixed(&mut self, f: Finding, fix: Option<crate::fix::Fix>) {
        let fix = fix.filter(|x| x.is_valid_for(self.src())).map(|mut x| {
            for e in &mut x.edits {
                e.span = Some((self.file.position(e.start), self.file.position(e.end)));
            }
            x
        });
        let start = self.file.position(f.node.start_byte());
        let end = self.file.position(f.node.end_byte());
        self.out.push(Diagnostic {
            rule: self.rule.code,
            name: self.rule.name,
            severity: f.severity.unwrap_or(self.rule.severity),
            path: self.file.path.clone(),
            line: start.line,
            column: start.column,
            end_line: end.line,
            end_column: end.column,
            message: f.message,
            why: self.rule.why.to_string(),
            help: f.help,
            code: self.file.line_text(start.line).trim().to_string(),
            source_line: self.file.line_text(start.line).to_string(),
            start_byte: f.node.start_byte(),
            end_byte: f.node.end_byte(),
            fix,
        });
    }

    /// True when identifier `node` names the import of `path` in this file
    /// (`time` for "time", `ctxpkg` for `import ctxpkg "context"`).
    pub fn is_import(&self, node: Node, path: &str) -> bool {
        node.kind() == "identifier"
            && self.index.imports.get(self.text(node)).map(String::as_str) == Some(path)
    }

    /// True when `call` is `pkg.name(...)` for the package at import `path` and one of `names`.
    pub fn is_pkg_call(&self, call: &Call, path: &str, names: &[&str]) -> bool {
        match call.receiver {
            Some(r) => self.is_import(r, path) && names.contains(&self.text(call.name)),
            None => false,
        }
    }

    /// Reads a node as a call of `pkg.name` (see [`Checker::is_pkg_call`]).
    pub fn pkg_call(&self, node: Node<'a>, path: &str, names: &[&str]) -> Option<Call<'a>> {
        let node = syntax::unparen(node);
        // Cheap name test first: most calls are not the ones asked for.
        if node.kind() != "call_expression"
            || !syntax::call_name(node, self.src()).is_some_and(|n| names.contains(&n))
        {
            return None;
        }
        let call = Call::of(node)?;
        self.is_pkg_call(&call, path, names).then_some(call)
    }

    /// True when the type node is `context.Context`.
    pub fn is_context_type(&self, ty: Node) -> bool {
        ty.kind() == "qualified_identifier"
            && ty.child_by_field_name("package").is_some_and(|p| {
                self.index.imports.get(self.text(p)).map(String::as_str) == Some("context")
            })
            && ty
                .child_by_field_name("name")
                .is_some_and(|n| self.text(n) == "Context")
    }

    /// The method name of a call on `recv` whose text is `recv_text` (e.g. `wg.Done()`).
    pub fn method_call_on<'n>(&self, node: Node<'n>, recv_text: &str) -> Option<&'a str> {
        let call = Call::of(node)?;
        let r = call.receiver?;
        (syntax::normalize(self.text(r)) == recv_text).then(|| self.text(call.name))
    }

    /// A function declared in this package *and this file* (rules read its text through
    /// this file's source, so declarations of other files are out of reach).
    pub fn local_func(&self, name: &str) -> Option<Node<'a>> {
        let decls = self.pkg.funcs.get(name)?;
        decls
            .iter()
            .find(|d| d.file == self.file_in_pkg)
            .map(|d| d.node)
    }

    /// A method of type `ty` declared in this file.
    pub fn local_method(&self, ty: &str, name: &str) -> Option<Node<'a>> {
        let decls = self.pkg.methods.get(&(ty, name))?;
        decls
            .iter()
            .find(|d| d.file == self.file_in_pkg)
            .map(|d| d.node)
    }

    /// The innermost function enclosing `node` (fast; see [`FileIndex::enclosing_function`]).
    pub fn enclosing_function(&self, node: Node<'a>) -> Option<Node<'a>> {
        self.index.enclosing_function(node)
    }

    /// Line number (1-based) of a node, for messages.
    pub fn line(&self, node: Node) -> usize {
        self.file.position(node.start_byte()).line
    }
}
