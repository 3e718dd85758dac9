//! Runs the selected rules over files and directories: walk, read, parse once, index the
//! package, run every rule over the same trees, apply suppressions. Packages in parallel.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::cache::{PackageResult, SessionCache};
use crate::checker::Checker;
use crate::config::{Config, ConfigError};
use crate::diagnostic::{Diagnostic, InputError, PartialFile, Severity};
use crate::gomod::{ModuleInfo, ModuleResolver};
use crate::package::{IndexedFile, PackageIndex};
use crate::registry::{self, Rule};
use crate::source::SourceFile;
use crate::suppress;

/// Files larger than this are not analysed (generated tables, not hand-written Go).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How to find the configuration.
#[derive(Debug, Clone, Default)]
pub enum ConfigChoice {
    /// Walk up from each input path to the nearest `goguard.toml`.
    #[default]
    Discover,
    /// Use this file for every input.
    File(PathBuf),
    /// Use no configuration file.
    Isolated,
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rule selectors to enable (overrides the config's `select`).
    pub select: Option<Vec<String>>,
    /// Rule selectors to disable (added to the config's `ignore`).
    pub ignore: Vec<String>,
    pub include_vendor: bool,
    pub include_testdata: bool,
    /// Report findings in generated files (`// Code generated ... DO NOT EDIT.`) too.
    pub include_generated: bool,
    /// Show `info` findings (hidden by default).
    pub show_info: bool,
    pub config: ConfigChoice,
    /// Where results are kept between runs; `None`: none are.
    pub cache: Option<crate::cache::ResultCache>,
    /// Parsed files and package findings kept in memory between analyses (an editor's
    /// server re-checking a directory after one edit parses that file alone, and checks
    /// only its package); `None`: every file is parsed and checked.
    pub session: Option<Arc<crate::cache::SessionCache>>,
}

impl Options {
    /// The options that change what a directory's analysis finds, for the result cache.
    pub fn fingerprint(&self) -> String {
        format!(
            "select={:?} ignore={:?} info={} generated={}",
            self.select, self.ignore, self.show_info, self.include_generated
        )
    }
}

/// A suppression comment that matched no finding.
#[derive(Debug, Clone, Serialize)]
pub struct UnusedSuppression {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rules: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub files_scanned: usize,
    pub errors: Vec<InputError>,
    /// Files with syntax errors, analysed where they parsed.
    pub partial: Vec<PartialFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unused_suppressions: Vec<UnusedSuppression>,
    /// The strictest `fail-on` found in configuration, if any.
    #[serde(skip)]
    pub config_fail_on: Option<Severity>,
    /// Packages whose findings were the session's from an earlier analysis, their files
    /// unchanged (see [`Options::session`]).
    #[serde(skip)]
    pub packages_kept: usize,
}

struct Input {
    path: PathBuf,
    config: Arc<Config>,
}

/// Analyses the given files and directories.
pub fn check_paths(paths: &[PathBuf], opts: &Options) -> Result<Report, ConfigError> {
    check_paths_with(paths, opts, &HashMap::new())
}

/// Like [`check_paths`], reading the files in `overlay` (by the path the walk gives them)
/// from there instead of the disk: the text with fixes applied, not yet written.
pub fn check_paths_with(
    paths: &[PathBuf],
    opts: &Options,
    overlay: &HashMap<PathBuf, String>,
) -> Result<Report, ConfigError> {
    let mut report = Report::default();
    let mut configs: HashMap<PathBuf, Arc<Config>> = HashMap::new();
    let mut inputs = Vec::new();
    for raw in paths {
        let path = normalize_input(raw);
        let config = resolve_config(&path, opts, &mut configs)?;
        if config.fail_on.is_some() {
            report.config_fail_on = report.config_fail_on.max(config.fail_on);
        }
        match std::fs::metadata(&path) {
            Err(e) => report.errors.push(InputError {
                path: path.clone(),
                kind: "io",
                message: e.to_string(),
            }),
            Ok(m) if m.is_dir() => walk(&path, opts, &config, &mut inputs, &mut report.errors),
            Ok(_) => inputs.push(Input { path, config }),
        }
    }

    // One job per directory: Go packages are directories, and a package is indexed whole.
    let mut by_dir: BTreeMap<PathBuf, Vec<Input>> = BTreeMap::new();
    for input in inputs {
        let dir = input
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        by_dir.entry(dir).or_default().push(input);
    }
    let mut resolver = ModuleResolver::default();
    let jobs: Vec<(ModuleInfo, Vec<Input>)> = by_dir
        .into_iter()
        .map(|(dir, files)| (resolver.for_dir(&dir), files))
        .collect();

    let results: Vec<DirResult> = jobs
        .into_par_iter()
        .map(|(module, files)| check_dir(&module, files, opts, overlay))
        .collect();
    for r in results {
        report.files_scanned += r.files_scanned;
        report.diagnostics.extend(r.diagnostics);
        report.errors.extend(r.errors);
        report.partial.extend(r.partial);
        report.unused_suppressions.extend(r.unused);
        report.packages_kept += r.packages_kept;
    }
    report.diagnostics.sort_by(|a, b| {
        (&a.path, a.line, a.column, a.rule).cmp(&(&b.path, b.line, b.column, b.rule))
    });
    report.errors.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// `./...` means the directory, recursively, as in go tooling; `./x` is shown as `x`.
fn normalize_input(raw: &Path) -> PathBuf {
    let s = raw.to_string_lossy();
    let s = s
        .strip_suffix("/...")
        .or_else(|| s.strip_suffix("..."))
        .unwrap_or(&s);
    let s = if s.is_empty() { "." } else { s };
    let p = PathBuf::from(s);
    match p.strip_prefix("./") {
        Ok(rest) if !rest.as_os_str().is_empty() => rest.to_path_buf(),
        _ => p,
    }
}

fn resolve_config(
    path: &Path,
    opts: &Options,
    cache: &mut HashMap<PathBuf, Arc<Config>>,
) -> Result<Arc<Config>, ConfigError> {
    let file = match &opts.config {
        ConfigChoice::Isolated => None,
        ConfigChoice::File(f) => Some(f.clone()),
        ConfigChoice::Discover => Config::discover(path),
    };
    let Some(file) = file else {
        return Ok(Arc::new(Config::default()));
    };
    if let Some(c) = cache.get(&file) {
        return Ok(c.clone());
    }
    let mut config = Config::load(&file)?;
    config.root = std::fs::canonicalize(&config.root).unwrap_or(config.root);
    let config = Arc::new(config);
    cache.insert(file, config.clone());
    Ok(config)
}

fn walk(
    root: &Path,
    opts: &Options,
    config: &Arc<Config>,
    out: &mut Vec<Input>,
    errors: &mut Vec<InputError>,
) {
    let include_vendor = opts.include_vendor;
    let include_testdata = opts.include_testdata;
    let root_owned = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .parents(true)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| {
            if e.depth() == 0 || !e.file_type().is_some_and(|t| t.is_dir()) {
                return true;
            }
            let name = e.file_name().to_string_lossy();
            // The go command ignores directories starting with `_` or `.`, and testdata.
            !(name.starts_with('_')
                || (name == "vendor" && !include_vendor)
                || (name == "testdata" && !include_testdata))
        })
        .build_parallel();
    // Directories are read in parallel; results are gathered here and sorted later by path.
    let found = std::sync::Mutex::new((Vec::new(), Vec::new()));
    walker.run(|| {
        let found = &found;
        let root_owned = &root_owned;
        Box::new(move |entry| {
            let item = match entry {
                Ok(e) => {
                    let is_go = e.file_type().is_some_and(|t| t.is_file())
                        && e.path().extension().is_some_and(|x| x == "go");
                    if !is_go || excluded(config, e.path()) {
                        return ignore::WalkState::Continue;
                    }
                    Ok(Input {
                        path: e.path().to_path_buf(),
                        config: config.clone(),
                    })
                }
                Err(err) => Err(InputError {
                    path: error_path(&err).unwrap_or_else(|| root_owned.clone()),
                    kind: "io",
                    message: one_line(&err.to_string()),
                }),
            };
            if let Ok(mut guard) = found.lock() {
                match item {
                    Ok(input) => guard.0.push(input),
                    Err(e) => guard.1.push(e),
                }
            }
            ignore::WalkState::Continue
        })
    });
    let (inputs, errs) = found.into_inner().unwrap_or_default();
    out.extend(inputs);
    errors.extend(errs);
}

/// True when the config excludes the file (canonicalizing only when there are globs).
fn excluded(config: &Config, path: &Path) -> bool {
    config.exclude.is_some() && {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        config.is_excluded(&abs)
    }
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[derive(Default)]
pub(crate) struct DirResult {
    pub(crate) files_scanned: usize,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) errors: Vec<InputError>,
    pub(crate) partial: Vec<PartialFile>,
    pub(crate) unused: Vec<UnusedSuppression>,
    pub(crate) packages_kept: usize,
}

/// Reads a file as Go source, or says why it cannot be analysed.
pub fn read_source(path: &Path) -> Result<String, InputError> {
    let err = |kind, message: String| InputError {
        path: path.to_path_buf(),
        kind,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err("io", e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(
            "too-large",
            format!(
                "{} bytes, over the {} MiB limit",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| err("io", e.to_string()))?;
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Err(err(
            "encoding",
            "binary file (NUL bytes), not Go source".into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        err(
            "encoding",
            format!(
                "not valid UTF-8 at byte {} (Go source must be UTF-8)",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn check_dir(
    module: &ModuleInfo,
    files: Vec<Input>,
    opts: &Options,
    overlay: &HashMap<PathBuf, String>,
) -> DirResult {
    let mut result = DirResult::default();
    let mut texts = Vec::with_capacity(files.len());
    for input in files {
        let read = match overlay.get(&input.path) {
            Some(t) => Ok(t.clone()),
            None => read_source(&input.path),
        };
        match read {
            Ok(t) => texts.push((input, t)),
            Err(e) => result.errors.push(e),
        }
    }
    // A directory with a file that cannot be read is analysed every time: the error is
    // reported again, and a fix of it is seen.
    let cached = match &opts.cache {
        Some(cache) if result.errors.is_empty() => {
            let key = cache.key(
                module,
                texts
                    .iter()
                    .map(|(i, t)| (i.path.as_path(), t.as_str(), &*i.config)),
            );
            let dir = texts.first().and_then(|(i, _)| i.path.parent());
            if let Some(hit) = dir.and_then(|d| cache.load(d, key)) {
                return hit;
            }
            dir.map(|d| (cache, d.to_path_buf(), key))
        }
        _ => None,
    };
    analyse_dir(module, texts, opts, &mut result);
    // A rule that crashed is tried again next time.
    if let Some((cache, dir, key)) = cached {
        if result.errors.is_empty() {
            cache.store(&dir, key, &result);
        }
    }
    result
}

/// Parses and checks a directory's files (read, with their configuration).
fn analyse_dir(
    module: &ModuleInfo,
    texts: Vec<(Input, String)>,
    opts: &Options,
    result: &mut DirResult,
) {
    let mut parsed: Vec<(Arc<IndexedFile>, Arc<Config>)> = Vec::new();
    // Files that contain nothing any rule looks for are read but not parsed (parsing is most
    // of the run's cost); see `prefilter`.
    let mut unparsed: Vec<(Input, String)> = Vec::new();
    // Generated files whose findings are not reported (golangci-lint's default: nobody
    // fixes a bug by hand in a file a tool rewrites), parsed only when the package's other
    // files may need what they declare (lock-holding types, channels, lock helpers).
    let mut quiet: HashSet<PathBuf> = HashSet::new();
    let mut scanned = 0;
    let mut to_parse = Vec::new();
    for (input, text) in texts {
        scanned += 1;
        if !opts.include_generated && prefilter::is_generated(&text) {
            if prefilter::may_have_findings(&text) && prefilter::feeds_the_package(&text) {
                quiet.insert(input.path.clone());
                to_parse.push((input, text));
            }
            continue;
        }
        if prefilter::may_have_findings(&text) {
            to_parse.push((input, text));
        } else {
            unparsed.push((input, text));
        }
    }
    parse_all(to_parse, opts, &mut parsed, result);
    // A file can copy a lock-holding struct of its package without naming `sync` itself:
    // parse the files that mention such a type, until no new one is found.
    while !unparsed.is_empty() {
        let holders = crate::package::sync_holder_names(parsed.iter().map(|(f, _)| f.file_index()));
        let (take, keep): (Vec<_>, Vec<_>) = unparsed
            .into_iter()
            .partition(|(_, text)| prefilter::mentions_any(text, &holders));
        unparsed = keep;
        if take.is_empty() {
            break;
        }
        parse_all(take, opts, &mut parsed, result);
    }
    result.files_scanned = scanned;
    for (file, _) in &parsed {
        let file = file.file();
        let errors = file.syntax_errors();
        if let Some(first) = errors.first() {
            result.partial.push(PartialFile {
                path: file.path.clone(),
                line: first.line,
                column: first.column,
                error_count: errors.len(),
            });
        }
    }
    // Files of one directory may belong to two packages (`p` and `p_test`).
    let mut packages: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (file, _)) in parsed.iter().enumerate() {
        packages
            .entry(file.file().package_name().unwrap_or("").to_string())
            .or_default()
            .push(i);
    }
    let dir = parsed.first().and_then(|(f, _)| f.file().path.parent());
    for (name, members) in &packages {
        let files: Vec<&(Arc<IndexedFile>, Arc<Config>)> =
            members.iter().map(|&i| &parsed[i]).collect();
        // A package none of whose files changed since the session's last analysis keeps
        // its findings.
        let session = opts.session.as_deref().zip(dir).map(|(session, dir)| {
            let texts = files
                .iter()
                .map(|(f, config)| (f.file().path.as_path(), f.file().text.as_str(), &**config));
            (
                session,
                dir,
                SessionCache::package_key(&opts.fingerprint(), module, texts),
            )
        });
        let kept = session.and_then(|(session, dir, key)| session.package(dir, name, key));
        let found = match kept {
            Some(found) => {
                result.packages_kept += 1;
                found
            }
            None => {
                let errors = result.errors.len();
                let found = check_package(module, &files, &quiet, opts, &mut result.errors);
                // A rule that crashed is tried again next time.
                if let (Some((session, dir, key)), true) = (session, result.errors.len() == errors)
                {
                    session.keep_package(dir, name, key, found.clone());
                }
                found
            }
        };
        result.diagnostics.extend(found.diagnostics);
        result.unused.extend(found.unused);
    }
}

/// Checks the files of one package, in parallel (an editor re-checks one package at a
/// time); errors (a rule that crashed) go to `errors`.
fn check_package(
    module: &ModuleInfo,
    files: &[&(Arc<IndexedFile>, Arc<Config>)],
    quiet: &HashSet<PathBuf>,
    opts: &Options,
    errors: &mut Vec<InputError>,
) -> PackageResult {
    let pkg = PackageIndex::build(files.iter().map(|(f, _)| &**f).collect());
    let per_file: Vec<DirResult> = files
        .par_iter()
        .enumerate()
        .filter(|(_, (f, _))| !quiet.contains(&f.file().path))
        .map(|(k, (file, config))| {
            let file = file.file();
            let rules = rules_for(file, config, opts);
            let mut one = DirResult::default();
            check_file(file, k, &pkg, module, &rules, &mut one);
            one
        })
        .collect();
    let mut found = PackageResult {
        diagnostics: Vec::new(),
        unused: Vec::new(),
    };
    for one in per_file {
        found.diagnostics.extend(one.diagnostics);
        found.unused.extend(one.unused);
        errors.extend(one.errors);
    }
    found
}

/// `GOGUARD_INJECT_PANIC=G301` makes that rule panic on every file, so the end-to-end tests
/// can prove a crashing rule loses no other finding. Read once; costs nothing otherwise.
fn inject_panic_for_tests(rule: &Rule) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("GOGUARD_INJECT_PANIC").ok());
    if target.as_deref() == Some(rule.code) {
        panic!("injected panic in {}", rule.code);
    }
}

/// Parses and indexes `files` (in parallel: parsing is most of a package's cost) into
/// `parsed`, in order.
fn parse_all(
    files: Vec<(Input, String)>,
    opts: &Options,
    parsed: &mut Vec<(Arc<IndexedFile>, Arc<Config>)>,
    result: &mut DirResult,
) {
    let outcomes: Vec<_> = files
        .into_par_iter()
        .map(|(input, text)| {
            let file = match &opts.session {
                Some(cache) => cache.get_or_parse(&input.path, text),
                None => SourceFile::parse(&input.path, text)
                    .map(|f| Arc::new(IndexedFile::index(Arc::new(f)))),
            };
            (file, input)
        })
        .collect();
    for (file, input) in outcomes {
        match file {
            Some(f) => parsed.push((f, input.config)),
            None => result.errors.push(InputError {
                path: input.path,
                kind: "internal",
                message: "the parser gave up on this file".into(),
            }),
        }
    }
}

/// Which files are worth parsing. Every rule names the words a file must contain for it to
/// report there ([`crate::registry::Rule::needs`]: the rule's package import, method name or
/// keyword), so a file with none of any rule's words can have no finding. Comments count
/// too: that only means parsing a file that did not need it. (A test checks every fixture
/// holds a word of its own rule.)
pub mod prefilter {
    /// True when the text contains a word some rule needs, or a suppression (unused ones are
    /// reported too).
    pub fn may_have_findings(text: &str) -> bool {
        text.contains("goguard:ignore")
            || crate::registry::needed_words()
                .iter()
                .any(|w| has_word(text, w))
    }

    /// Whether the file says it is generated, as Go tools read it (`go/ast.IsGenerated`): a
    /// line `// Code generated ... DO NOT EDIT.` before the package clause.
    pub fn is_generated(text: &str) -> bool {
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with("package ") {
                return false;
            }
            if line.starts_with("// Code generated ") && line.ends_with(" DO NOT EDIT.") {
                return true;
            }
        }
        false
    }

    /// Whether a file may declare what other files' analysis needs: a type holding a lock,
    /// a channel, a function that locks or waits.
    pub fn feeds_the_package(text: &str) -> bool {
        ["sync", "chan", "Lock", "Unlock", "RLock", "RUnlock"]
            .iter()
            .any(|w| contains_word(text, w))
    }

    /// Whether `text` contains `word`; a blank in `word` matches any run of blanks (`go func`).
    pub fn has_word(text: &str, word: &str) -> bool {
        match word.split_once(' ') {
            None => text.contains(word),
            Some((first, rest)) => text.match_indices(first).any(|(i, _)| {
                let after = &text[i + first.len()..];
                let trimmed = after.trim_start_matches([' ', '\t']);
                trimmed.len() < after.len() && trimmed.starts_with(rest)
            }),
        }
    }

    /// True when one of `words` occurs in `text` as a whole identifier, as
    /// [`contains_word`] finds it, in one pass over the text.
    pub fn mentions_any(text: &str, words: &std::collections::HashSet<String>) -> bool {
        if words.is_empty() {
            return false;
        }
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        text.split(|c: char| !ident(c))
            .any(|w| !w.is_empty() && words.contains(w))
    }

    /// True when `word` occurs in `text` as a whole identifier.
    pub fn contains_word(text: &str, word: &str) -> bool {
        crate::syntax::word_positions(text, word).next().is_some()
    }
}

/// The rules that apply to a file: selection, ignores, per-path ignores, severity overrides.
fn rules_for(
    file: &SourceFile,
    config: &Config,
    opts: &Options,
) -> Vec<(&'static Rule, Option<Severity>, bool)> {
    let path_ignores = if config.per_path_ignores.is_empty() {
        Vec::new()
    } else {
        let abs = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        config.ignored_for(&abs)
    };
    let select = opts.select.as_ref().or(config.select.as_ref());
    registry::all()
        .iter()
        .filter(|r| select.is_none_or(|s| s.iter().any(|sel| registry::selects(sel, r))))
        .filter(|r| {
            !config
                .ignore
                .iter()
                .chain(&opts.ignore)
                .any(|sel| registry::selects(sel, r))
        })
        .filter(|r| !path_ignores.iter().any(|sel| registry::selects(sel, r)))
        .map(|r| {
            let explicit =
                select.is_some_and(|s| s.iter().any(|sel| sel.eq_ignore_ascii_case(r.code)));
            (
                r,
                config.severity.get(r.code).copied(),
                explicit || opts.show_info,
            )
        })
        .collect()
}

fn check_file(
    file: &SourceFile,
    pkg_file: usize,
    pkg: &PackageIndex,
    module: &ModuleInfo,
    rules: &[(&'static Rule, Option<Severity>, bool)],
    result: &mut DirResult,
) {
    let mut diags = Vec::new();
    for &(rule, severity, show_info) in rules {
        let mut checker = Checker {
            file,
            file_in_pkg: pkg_file,
            index: pkg.file_indexes[pkg_file],
            pkg,
            module,
            rule,
            out: Vec::new(),
        };
        // A bug in one rule must not lose the other rules' findings.
        let started = timings::start();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            inject_panic_for_tests(rule);
            (rule.check)(&mut checker)
        }));
        timings::record(rule, started);
        if outcome.is_err() {
            result.errors.push(InputError {
                path: file.path.clone(),
                kind: "internal",
                message: format!(
                    "rule {} ({}) crashed on this file; please report it",
                    rule.code, rule.name
                ),
            });
            continue;
        }
        for mut d in checker.out {
            if let Some(s) = severity {
                d.severity = s;
            }
            if d.severity == Severity::Info && !show_info {
                continue;
            }
            diags.push(d);
        }
    }
    diags.sort_by_key(|d| (d.start_byte, d.rule));
    diags.dedup_by(|a, b| {
        a.rule == b.rule && a.start_byte == b.start_byte && a.message == b.message
    });
    let mut sups = suppress::parse(&file.text);
    suppress::apply(&mut diags, &mut sups);
    result
        .unused
        .extend(
            sups.into_iter()
                .filter(|s| !s.used && !s.nolint)
                .map(|s| UnusedSuppression {
                    path: file.path.clone(),
                    line: s.line,
                    column: s.column,
                    rules: s.rules,
                }),
        );
    result.diagnostics.extend(diags);
}

/// Analyses one in-memory file as a package of its own (for tests and editors).
pub fn check_source(
    path: &Path,
    text: &str,
    module: &ModuleInfo,
    select: Option<&[&str]>,
) -> Vec<Diagnostic> {
    check_source_report(path, text, module, select).0
}

/// Like [`check_source`], also returning internal errors (a rule that crashed on the file).
pub fn check_source_report(
    path: &Path,
    text: &str,
    module: &ModuleInfo,
    select: Option<&[&str]>,
) -> (Vec<Diagnostic>, Vec<InputError>) {
    let Some(file) = SourceFile::parse(path, text.to_string()) else {
        return (Vec::new(), Vec::new());
    };
    let indexed = IndexedFile::index(Arc::new(file));
    let file = indexed.file();
    let pkg = PackageIndex::build(vec![&indexed]);
    let rules: Vec<_> = registry::all()
        .iter()
        .filter(|r| select.is_none_or(|s| s.iter().any(|sel| registry::selects(sel, r))))
        .map(|r| (r, None, true))
        .collect();
    let mut result = DirResult::default();
    check_file(file, 0, &pkg, module, &rules, &mut result);
    (result.diagnostics, result.errors)
}

/// Time spent per rule, collected when `GOGUARD_TIMINGS` is set (for tuning rules).
pub mod timings {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Instant;

    use crate::registry::{self, Rule};

    fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| std::env::var_os("GOGUARD_TIMINGS").is_some())
    }

    fn table() -> &'static [AtomicU64] {
        static T: OnceLock<Vec<AtomicU64>> = OnceLock::new();
        T.get_or_init(|| registry::all().iter().map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn start() -> Option<Instant> {
        enabled().then(Instant::now)
    }

    pub(crate) fn record(rule: &Rule, started: Option<Instant>) {
        let Some(t) = started else { return };
        if let Some(i) = registry::all().iter().position(|r| r.code == rule.code) {
            table()[i].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// CPU time per rule in milliseconds, when enabled.
    pub fn report() -> Option<Vec<(&'static str, u64)>> {
        enabled().then(|| {
            registry::all()
                .iter()
                .zip(table())
                .map(|(r, t)| (r.code, t.load(Ordering::Relaxed) / 1_000_000))
                .collect()
        })
    }
}
