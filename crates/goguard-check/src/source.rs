//! A parsed Go file: its text, its tree-sitter tree and a line index.

use std::path::{Path, PathBuf};

use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

/// A Go source file parsed once; every rule reads this same tree.
pub struct SourceFile {
    /// The path as the user would open it (relative when the input was relative).
    pub path: PathBuf,
    pub text: String,
    pub tree: Tree,
    line_starts: Vec<usize>,
}

/// A position as users count it: 1-based line, 1-based column in characters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    /// Parses `text`. Returns `None` only if tree-sitter gives up (it returns a tree with
    /// ERROR nodes for malformed input, so in practice this means a cancelled parse).
    pub fn parse(path: &Path, text: String) -> Option<SourceFile> {
        SourceFile::parse_with(path, text, None)
    }

    /// Parses `text`, an edit of `old`'s text, reusing `old`'s tree where the text is the
    /// same (tree-sitter's incremental parsing, as editors use it): the edit is the span
    /// between the longest common prefix and suffix of the two texts. Gives the tree a
    /// parse from scratch gives, in a fraction of the time for a small edit.
    pub fn reparse(path: &Path, text: String, old: &SourceFile) -> Option<SourceFile> {
        let mut tree = old.tree.clone();
        tree.edit(&edit_between(&old.text, &text));
        SourceFile::parse_with(path, text, Some(&tree))
    }

    fn parse_with(path: &Path, text: String, old: Option<&Tree>) -> Option<SourceFile> {
        // One parser per thread: its stacks and buffers are reused from file to file.
        thread_local! {
            static PARSER: std::cell::RefCell<Option<Parser>> = const { std::cell::RefCell::new(None) };
        }
        let tree = PARSER.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let mut parser = Parser::new();
                parser
                    .set_language(&tree_sitter_golang::LANGUAGE.into())
                    .ok()?;
                *slot = Some(parser);
            }
            slot.as_mut()?.parse(&text, old)
        })?;
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Some(SourceFile {
            path: path.to_path_buf(),
            text,
            tree,
            line_starts,
        })
    }

    /// The lines (1-based, inclusive) of the top-level function or method declaration that
    /// holds line `line`, if one does.
    pub fn function_lines(&self, line: u32) -> Option<(u32, u32)> {
        let row = (line as usize).checked_sub(1)?;
        let root = self.root();
        let mut cursor = root.walk();
        let found = root.named_children(&mut cursor).find(|n| {
            matches!(n.kind(), "function_declaration" | "method_declaration")
                && n.start_position().row <= row
                && row <= n.end_position().row
        })?;
        Some((
            found.start_position().row as u32 + 1,
            found.end_position().row as u32 + 1,
        ))
    }

    pub fn root(&self) -> Node<'_> {
        self.tree.root_node()
    }

    /// The source text of a node.
    pub fn text_of(&self, node: Node) -> &str {
        self.text.get(node.byte_range()).unwrap_or("")
    }

    /// Converts a byte offset to a 1-based line and character column.
    pub fn position(&self, offset: usize) -> Position {
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(offset - start, |s| s.chars().count());
        Position {
            line: line + 1,
            column: column + 1,
        }
    }

    /// The text of 1-based line `line`, without its line ending.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// The package name from the `package` clause, if it parsed.
    pub fn package_name(&self) -> Option<&str> {
        let root = self.root();
        let mut cursor = root.walk();
        let clause = root
            .children(&mut cursor)
            .find(|n| n.kind() == "package_clause")?;
        let mut c2 = clause.walk();
        let name = clause
            .named_children(&mut c2)
            .find(|n| n.kind() == "package_identifier")?;
        Some(self.text_of(name))
    }

    /// How many ERROR or MISSING nodes the tree holds (0 for a clean parse).
    pub fn syntax_errors(&self) -> Vec<Position> {
        let mut out = Vec::new();
        if !self.root().has_error() {
            return out;
        }
        let mut stack = vec![self.root()];
        while let Some(n) = stack.pop() {
            if n.is_error() || n.is_missing() {
                out.push(self.position(n.start_byte()));
                continue;
            }
            if n.has_error() {
                let mut c = n.walk();
                stack.extend(n.children(&mut c));
            }
        }
        out.sort();
        out
    }
}

/// The one edit that turns `old` into `new`: everything between their longest common
/// prefix and their longest common suffix (which do not overlap), on character boundaries.
fn edit_between(old: &str, new: &str) -> InputEdit {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut start = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while !old.is_char_boundary(start) {
        start -= 1;
    }
    let most = a.len().min(b.len()) - start;
    let mut suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(most)
        .take_while(|(x, y)| x == y)
        .count();
    while !old.is_char_boundary(a.len() - suffix) || !new.is_char_boundary(b.len() - suffix) {
        suffix -= 1;
    }
    let (old_end, new_end) = (a.len() - suffix, b.len() - suffix);
    InputEdit {
        start_byte: start,
        old_end_byte: old_end,
        new_end_byte: new_end,
        start_position: point_at(old, start),
        old_end_position: point_at(old, old_end),
        new_end_position: point_at(new, new_end),
    }
}

/// The row and byte column of byte `offset` of `text`, as tree-sitter counts them.
fn point_at(text: &str, offset: usize) -> Point {
    let before = &text.as_bytes()[..offset];
    let row = before.iter().filter(|&&c| c == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    Point::new(row, offset - line_start)
}
