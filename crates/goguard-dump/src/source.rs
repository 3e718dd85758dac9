//! Frames to source (`goguard dump --source DIR`): maps the frames of a dump (paths of the
//! machine that built the binary) to a local checkout, shows the lines, and runs the static
//! rules on the functions involved, so the runtime evidence and the static finding appear
//! together. go.mod files and Go sources are read by goguard-check's own readers (its go.mod
//! reader and its parser), not by a second heuristic.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use goguard_check::source::SourceFile;

use crate::analyze::{is_std_frame, SourceLine, StaticFinding};
use crate::{Analysis, Frame};

/// The modules of a checkout: module path -> directory.
pub struct SourceMap {
    root: PathBuf,
    modules: Vec<(String, PathBuf)>,
}

/// Lines of context shown around the frame's line.
const CONTEXT: u32 = 2;
/// Groups enriched at most (the suspects first): a dump can hold thousands of groups.
const MAX_GROUPS: usize = 50;

impl SourceMap {
    pub fn new(root: &Path) -> Result<SourceMap, String> {
        if !root.is_dir() {
            return Err(format!("--source {}: not a directory", root.display()));
        }
        // Absolute paths, so the static findings' paths compare equal to the located ones.
        let root = &root
            .canonicalize()
            .map_err(|e| format!("--source {}: {e}", root.display()))?;
        let mut modules = Vec::new();
        for entry in ignore::WalkBuilder::new(root).build().flatten() {
            if entry.file_name() != "go.mod" {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(module) = goguard_check::gomod::module_path(&text) {
                let dir = entry.path().parent().unwrap_or(root).to_path_buf();
                modules.push((module, dir));
            }
        }
        // The longest module path wins (nested modules).
        modules.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(SourceMap {
            root: root.to_path_buf(),
            modules,
        })
    }

    /// The local file a frame points at: through the module path of its package, or else
    /// the longest tail of its path that exists under the checkout (package main, GOPATH
    /// builds, `-trimpath` binaries).
    pub fn locate(&self, frame: &Frame) -> Option<PathBuf> {
        if is_std_frame(frame) {
            return None;
        }
        let file_name = Path::new(&frame.file).file_name()?;
        let package = package_path(&frame.function);
        for (module, dir) in &self.modules {
            if let Some(rest) = package.strip_prefix(module.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    let candidate = dir.join(rest.trim_start_matches('/')).join(file_name);
                    if candidate.is_file() {
                        return Some(candidate);
                    }
                }
            }
        }
        let parts: Vec<&str> = frame.file.split('/').filter(|p| !p.is_empty()).collect();
        (0..parts.len())
            .map(|i| self.root.join(parts[i..].join("/")))
            .find(|p| p.is_file())
    }
}

/// `example.com/app/q.(*Q).Pop` -> `example.com/app/q`; `main.main.func1` -> `main`.
fn package_path(function: &str) -> &str {
    let (dir, last) = match function.rfind('/') {
        Some(i) => (&function[..i + 1], &function[i + 1..]),
        None => ("", function),
    };
    let pkg_len = last.find('.').unwrap_or(last.len());
    &function[..dir.len() + pkg_len]
}

/// The lines of the top-level function holding `line` in the Go source `text`, as the
/// parser sees it (whatever the file's layout).
fn function_span(path: &Path, text: &str, line: u32) -> Option<(u32, u32)> {
    SourceFile::parse(path, text.to_string())?.function_lines(line)
}

/// Reads files once.
#[derive(Default)]
struct Files(HashMap<PathBuf, String>);

impl Files {
    fn read(&mut self, path: &Path) -> Option<&str> {
        if !self.0.contains_key(path) {
            let text = std::fs::read_to_string(path).ok()?;
            self.0.insert(path.to_path_buf(), text);
        }
        self.0.get(path).map(String::as_str)
    }
}

/// Adds source lines and static findings to the groups worth opening.
pub fn attach(analysis: &mut Analysis, map: &SourceMap) -> Result<(), String> {
    let mut files = Files::default();
    // The groups to enrich: suspects and rule hints first (groups are sorted that way).
    let chosen: Vec<usize> = (0..analysis.groups.len())
        .filter(|&i| {
            let g = &analysis.groups[i];
            g.suspect || g.rule.is_some()
        })
        .take(MAX_GROUPS)
        .collect();
    for &i in &chosen {
        let g = &mut analysis.groups[i];
        let Some(top) = g.top_frame.clone() else {
            continue;
        };
        let Some(text) = map.locate(&top).and_then(|p| files.read(&p)) else {
            continue;
        };
        let lo = top.line.saturating_sub(CONTEXT).max(1);
        g.source = text
            .lines()
            .enumerate()
            .map(|(n, t)| (n as u32 + 1, t))
            .filter(|(n, _)| *n >= lo && *n <= top.line + CONTEXT)
            .map(|(n, t)| SourceLine {
                line: n,
                text: t.to_string(),
                target: n == top.line,
            })
            .collect();
    }
    let stacks: Vec<Vec<Frame>> = chosen
        .iter()
        .map(|&i| {
            let g = &analysis.groups[i];
            g.frames.iter().chain(&g.created_by).cloned().collect()
        })
        .collect();
    let found = findings_in_stacks(map, &stacks)?;
    for (&i, findings) in chosen.iter().zip(found) {
        analysis.groups[i].findings = findings;
    }
    Ok(())
}

/// The static findings inside the functions of each stack, one list per stack. goguard check
/// runs once over every package the stacks touch.
pub fn findings_in_stacks(
    map: &SourceMap,
    stacks: &[Vec<Frame>],
) -> Result<Vec<Vec<StaticFinding>>, String> {
    let mut files = Files::default();
    // Where each stack's program frames are: (stack, local file, line).
    let mut spots: Vec<(usize, PathBuf, u32)> = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        for f in stack {
            if let Some(path) = map.locate(f) {
                spots.push((i, path, f.line));
            }
        }
    }
    let mut out: Vec<Vec<StaticFinding>> = vec![Vec::new(); stacks.len()];
    if spots.is_empty() {
        return Ok(out);
    }
    let mut inputs: BTreeSet<PathBuf> = BTreeSet::new();
    for (_, path, _) in &spots {
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "go") {
                    inputs.insert(p);
                }
            }
        }
    }
    let opts = goguard_check::Options {
        select: None,
        ignore: Vec::new(),
        include_vendor: true,
        include_testdata: true,
        // A goroutine can be stuck in generated code (a gRPC stub) as well as anywhere.
        include_generated: true,
        cache: None,
        session: None,
        show_info: false,
        config: goguard_check::ConfigChoice::Discover,
    };
    let inputs: Vec<PathBuf> = inputs.into_iter().collect();
    let mut report =
        goguard_check::engine::check_paths(&inputs, &opts).map_err(|e| e.to_string())?;
    for d in &mut report.diagnostics {
        if let Ok(abs) = d.path.canonicalize() {
            d.path = abs;
        }
    }
    for (i, path, line) in spots {
        let Some(text) = files.read(&path) else {
            continue;
        };
        let Some((lo, hi)) = function_span(&path, text, line) else {
            continue;
        };
        for d in &report.diagnostics {
            let in_function = d.path == path && (lo..=hi).contains(&(d.line as u32));
            let already = out[i].iter().any(|f| {
                f.rule == d.rule && f.line == d.line as u32 && Path::new(&f.file) == d.path
            });
            if in_function && !already {
                out[i].push(StaticFinding {
                    rule: d.rule.to_string(),
                    file: d.path.display().to_string(),
                    line: d.line as u32,
                    message: d.message.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_paths() {
        assert_eq!(
            package_path("example.com/app/q.(*Q).Pop"),
            "example.com/app/q"
        );
        assert_eq!(package_path("main.main.func1"), "main");
        assert_eq!(package_path("example.com/app.Run"), "example.com/app");
    }

    #[test]
    fn function_spans_come_from_the_parser() {
        let src = "package main\n\nfunc a() {\n\tx()\n}\n\nfunc b() {\n\tgo func() {\n\t}()\n}\n\nfunc c() { y() }\n\nfunc (t *T) d(\n\tn int,\n) {\n\t_ = n\n}\n";
        let p = Path::new("x.go");
        assert_eq!(function_span(p, src, 4), Some((3, 5)));
        assert_eq!(function_span(p, src, 9), Some((7, 10)));
        assert_eq!(
            function_span(p, src, 12),
            Some((12, 12)),
            "a one-line function"
        );
        assert_eq!(
            function_span(p, src, 16),
            Some((14, 18)),
            "a method over several lines"
        );
        assert_eq!(function_span(p, src, 1), None);
    }
}
