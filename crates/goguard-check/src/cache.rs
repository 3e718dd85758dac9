//! Results per package directory kept between runs, as ruff's cache keeps them: a second
//! run over an unchanged tree reads each directory's files, finds their results under the
//! same key, and parses nothing.
//!
//! A directory's result depends only on what the key holds: the text and path of each of
//! its files (a package is analysed whole, and never reads another directory), the `go`
//! version its go.mod gives, the configuration files that apply, the options that change
//! findings, and goguard itself (its version and its executable's size and time, so that a
//! rebuilt goguard never reads a result of the old one). Content, not modification times:
//! a `git checkout` back and forth hits the cache, a touched file does not miss it.
//!
//! One file per directory, `<cache>/<hash of the directory>.json`, replaced atomically
//! (written beside, then renamed), so concurrent runs and a run killed midway leave either
//! the old result or the new one. A file that cannot be read or decoded is a miss.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, PartialFile, Severity};
use crate::engine::{DirResult, UnusedSuppression};
use crate::fix::{Applicability, Edit, Fix};
use crate::gomod::ModuleInfo;
use crate::package::IndexedFile;
use crate::registry;
use crate::source::{Position, SourceFile};

/// Where results are kept, and what every key of this run shares.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
    /// goguard's identity and the options that change findings.
    salt: u128,
}

/// A directory's key: everything its result depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u128);

impl ResultCache {
    /// Opens (creating) the cache in `dir`. `options` names the options that change findings;
    /// it is part of every key.
    pub fn open(dir: &Path, options: &str) -> Result<ResultCache, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Marks for git and for backup tools, as ruff's and cargo's caches have.
        for (name, text) in [
            (".gitignore", "# Created by goguard: its result cache.\n*\n"),
            (
                "CACHEDIR.TAG",
                "Signature: 8a477f597d28d172789f06886806bc55\n# goguard's result cache (https://bford.info/cachedir/)\n",
            ),
        ] {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let mut h = Xxh3::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(&[0]);
        h.update(self_identity().as_bytes());
        h.update(&[0]);
        h.update(options.as_bytes());
        Ok(ResultCache {
            dir: dir.to_path_buf(),
            salt: h.digest128(),
        })
    }

    /// The key of a directory's files (path, text and the configuration that applies to
    /// each) under `module`.
    pub(crate) fn key<'a>(
        &self,
        module: &ModuleInfo,
        files: impl Iterator<Item = (&'a Path, &'a str, &'a Config)>,
    ) -> Key {
        content_key(self.salt, module, files)
    }

    /// The result stored for `dir` under `key`, if any.
    pub(crate) fn load(&self, dir: &Path, key: Key) -> Option<DirResult> {
        let bytes = std::fs::read(self.entry(dir)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        if record.key != format!("{:032x}", key.0) {
            return None;
        }
        record.into_result()
    }

    /// Keeps `result` for `dir` under `key`. A cache that cannot be written costs the next
    /// run its time, nothing else: failures are ignored.
    pub(crate) fn store(&self, dir: &Path, key: Key, result: &DirResult) {
        let record = Record::of(key, result);
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        let path = self.entry(dir);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
        if written.is_err() || std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn entry(&self, dir: &Path) -> PathBuf {
        let mut h = Xxh3::new();
        h.update(dir.as_os_str().as_encoded_bytes());
        self.dir.join(format!("{:032x}.json", h.digest128()))
    }
}

/// XXH3-128 of everything the findings of a set of files depend on besides goguard and
/// its options (`salt`): the module's Go version and go.mod, and each file's path, text and
/// configuration.
fn content_key<'a>(
    salt: u128,
    module: &ModuleInfo,
    files: impl Iterator<Item = (&'a Path, &'a str, &'a Config)>,
) -> Key {
    let mut h = Xxh3::new();
    h.update(&salt.to_le_bytes());
    h.update(format!("{}", module.version).as_bytes());
    h.update(&[0]);
    if let Some(m) = &module.go_mod {
        h.update(m.as_os_str().as_encoded_bytes());
    }
    h.update(&[0]);
    for (path, text, config) in files {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
        h.update(&config.fingerprint().to_le_bytes());
    }
    Key(h.digest128())
}

/// The running executable's size and modification time: a rebuilt goguard (same version
/// number, other rules) gets keys of its own.
fn self_identity() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{modified}", m.len())
        })
        .unwrap_or_default()
}

/// A directory's result as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    files_scanned: usize,
    diagnostics: Vec<Finding>,
    partial: Vec<Partial>,
    unused: Vec<Unused>,
}

/// A [`Diagnostic`] with every field, the rule by its code.
#[derive(Serialize, Deserialize)]
struct Finding {
    rule: String,
    severity: Severity,
    path: PathBuf,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: String,
    why: String,
    help: String,
    code: String,
    source_line: String,
    start_byte: usize,
    end_byte: usize,
    fix: Option<CachedFix>,
}

/// A [`Fix`] with every field (the edits' positions too: they are filled when a finding is
/// reported, and the JSON and SARIF outputs give them).
#[derive(Serialize, Deserialize)]
struct CachedFix {
    safe: bool,
    message: String,
    /// start, end, content, and the start's and end's line and column.
    edits: Vec<(usize, usize, String, Option<[usize; 4]>)>,
    isolation: Option<usize>,
}

impl CachedFix {
    fn of(f: &Fix) -> CachedFix {
        CachedFix {
            safe: f.applicability == Applicability::Safe,
            message: f.message.clone(),
            edits: f
                .edits
                .iter()
                .map(|e| {
                    let span = e.span.map(|(a, b)| [a.line, a.column, b.line, b.column]);
                    (e.start, e.end, e.content.clone(), span)
                })
                .collect(),
            isolation: f.isolation,
        }
    }

    fn into_fix(self) -> Fix {
        let at = |line, column| Position { line, column };
        Fix {
            applicability: match self.safe {
                true => Applicability::Safe,
                false => Applicability::Unsafe,
            },
            message: self.message,
            edits: self
                .edits
                .into_iter()
                .map(|(start, end, content, span)| Edit {
                    span: span.map(|[l1, c1, l2, c2]| (at(l1, c1), at(l2, c2))),
                    ..Edit::replace(start, end, content)
                })
                .collect(),
            isolation: self.isolation,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Partial {
    path: PathBuf,
    line: usize,
    column: usize,
    error_count: usize,
}

#[derive(Serialize, Deserialize)]
struct Unused {
    path: PathBuf,
    line: usize,
    column: usize,
    rules: Vec<String>,
}

impl Record {
    fn of(key: Key, r: &DirResult) -> Record {
        Record {
            key: format!("{:032x}", key.0),
            files_scanned: r.files_scanned,
            diagnostics: r
                .diagnostics
                .iter()
                .map(|d| Finding {
                    rule: d.rule.to_string(),
                    severity: d.severity,
                    path: d.path.clone(),
                    line: d.line,
                    column: d.column,
                    end_line: d.end_line,
                    end_column: d.end_column,
                    message: d.message.clone(),
                    why: d.why.clone(),
                    help: d.help.clone(),
                    code: d.code.clone(),
                    source_line: d.source_line.clone(),
                    start_byte: d.start_byte,
                    end_byte: d.end_byte,
                    fix: d.fix.as_ref().map(CachedFix::of),
                })
                .collect(),
            partial: r
                .partial
                .iter()
                .map(|p| Partial {
                    path: p.path.clone(),
                    line: p.line,
                    column: p.column,
                    error_count: p.error_count,
                })
                .collect(),
            unused: r
                .unused
                .iter()
                .map(|u| Unused {
                    path: u.path.clone(),
                    line: u.line,
                    column: u.column,
                    rules: u.rules.clone(),
                })
                .collect(),
        }
    }

    /// The result; `None` when a rule it names no longer exists.
    fn into_result(self) -> Option<DirResult> {
        let mut diagnostics = Vec::with_capacity(self.diagnostics.len());
        for f in self.diagnostics {
            let rule = registry::find(&f.rule)?;
            diagnostics.push(Diagnostic {
                rule: rule.code,
                name: rule.name,
                severity: f.severity,
                path: f.path,
                line: f.line,
                column: f.column,
                end_line: f.end_line,
                end_column: f.end_column,
                message: f.message,
                why: f.why,
                help: f.help,
                code: f.code,
                source_line: f.source_line,
                start_byte: f.start_byte,
                end_byte: f.end_byte,
                fix: f.fix.map(CachedFix::into_fix),
            });
        }
        Some(DirResult {
            files_scanned: self.files_scanned,
            diagnostics,
            errors: Vec::new(),
            partial: self
                .partial
                .into_iter()
                .map(|p| PartialFile {
                    path: p.path,
                    line: p.line,
                    column: p.column,
                    error_count: p.error_count,
                })
                .collect(),
            unused: self
                .unused
                .into_iter()
                .map(|u| UnusedSuppression {
                    path: u.path,
                    line: u.line,
                    column: u.column,
                    rules: u.rules,
                })
                .collect(),
            packages_kept: 0,
        })
    }
}

/// The most parsed files (and packages) a [`SessionCache`] holds: far more than the
/// packages an editor has open, and a bound on its memory when a session wanders over many.
const MAX_PARSED_FILES: usize = 4096;

/// What a long-running process that re-checks the same packages (`goguard server`, after
/// each edit) keeps in memory from one analysis to the next:
/// - each file parsed and indexed, by path: a file whose text is the same as last time is
///   not parsed again (parsing is most of a package's cost);
/// - each package's findings, by directory and package name, under the key of its files
///   ([`content_key`]): a package none of whose files changed is not checked again (an edit
///   of `server.go` leaves the `http_test` package of the same directory as it was).
///
/// A one-shot `goguard check` has no use for it.
#[derive(Default)]
pub struct SessionCache {
    files: Mutex<HashMap<PathBuf, Arc<IndexedFile>>>,
    packages: Mutex<HashMap<(PathBuf, String), (Key, PackageResult)>>,
}

/// The findings of one package, as the session keeps them.
#[derive(Clone)]
pub(crate) struct PackageResult {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) unused: Vec<UnusedSuppression>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = self.files.lock().map_or(0, |m| m.len());
        let packages = self.packages.lock().map_or(0, |m| m.len());
        write!(f, "SessionCache({files} files, {packages} packages)")
    }
}

impl SessionCache {
    /// The file parsed and indexed from `text`: last time's when the text is the same.
    pub(crate) fn get_or_parse(&self, path: &Path, text: String) -> Option<Arc<IndexedFile>> {
        let last = {
            let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            files.get(path).cloned()
        };
        let parsed = match last {
            Some(f) if f.file().text == text => return Some(f),
            // An edit: tree-sitter reparses what changed.
            Some(f) => SourceFile::reparse(path, text, f.file())?,
            None => SourceFile::parse(path, text)?,
        };
        let file = Arc::new(IndexedFile::index(Arc::new(parsed)));
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        // A bound on memory: a session that wanders over many packages starts again.
        if files.len() >= MAX_PARSED_FILES {
            files.clear();
        }
        files.insert(path.to_path_buf(), file.clone());
        Some(file)
    }

    /// The key of a package's files under `module` and the options `options`.
    pub(crate) fn package_key<'a>(
        options: &str,
        module: &ModuleInfo,
        files: impl Iterator<Item = (&'a Path, &'a str, &'a Config)>,
    ) -> Key {
        let mut h = Xxh3::new();
        h.update(options.as_bytes());
        content_key(h.digest128(), module, files)
    }

    /// The findings of package `name` in `dir` if they were found under `key`.
    pub(crate) fn package(&self, dir: &Path, name: &str, key: Key) -> Option<PackageResult> {
        let packages = self.packages.lock().unwrap_or_else(|e| e.into_inner());
        let (stored, result) = packages.get(&(dir.to_path_buf(), name.to_string()))?;
        (*stored == key).then(|| result.clone())
    }

    /// Keeps the findings of package `name` in `dir`, found under `key`.
    pub(crate) fn keep_package(&self, dir: &Path, name: &str, key: Key, result: PackageResult) {
        let mut packages = self.packages.lock().unwrap_or_else(|e| e.into_inner());
        if packages.len() >= MAX_PARSED_FILES {
            packages.clear();
        }
        packages.insert((dir.to_path_buf(), name.to_string()), (key, result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_parsed_again_only_when_its_text_changed() {
        let cache = SessionCache::default();
        let path = Path::new("p/a.go");
        let first = cache.get_or_parse(path, "package p\n".into()).unwrap();
        let same = cache.get_or_parse(path, "package p\n".into()).unwrap();
        assert!(
            Arc::ptr_eq(&first, &same),
            "the same text is not parsed again"
        );
        let edited = cache
            .get_or_parse(path, "package p\n\nvar x int\n".into())
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &edited));
        assert_eq!(edited.file().text, "package p\n\nvar x int\n");
        // Another file with the same text is its own.
        let other = cache.get_or_parse(Path::new("p/b.go"), "package p\n".into());
        assert_eq!(other.unwrap().file().path, Path::new("p/b.go"));
    }
}
