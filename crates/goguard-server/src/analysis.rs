//! The analysis worker: one thread that checks one package (directory) at a time with the
//! unsaved text of its open files, off the message loop.
//!
//! Jobs are debounced per directory: a job waits [`Settings::debounce`] and a newer job for
//! the same directory replaces it (and restarts the wait), so a burst of edits costs one
//! analysis. A job already running is not interrupted; the loop drops its result when a
//! newer one was scheduled (see `Server::on_outcome`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use goguard_check::cache::SessionCache;
use goguard_check::config::Config;
use goguard_check::fix::Applicability;
use goguard_check::{engine, ConfigChoice, Options, Severity};
use lsp_types::{
    CodeDescription, Diagnostic, DiagnosticSeverity, NumberOrString, Position, Range, TextEdit, Uri,
};

use crate::convert::{Encoding, LineIndex};

/// What the worker needs to know about the session.
#[derive(Debug, Clone)]
pub struct Settings {
    pub encoding: Encoding,
    pub debounce: Duration,
    /// Each rule's documentation link (`codeDescription.href`), by rule code.
    pub rule_links: Arc<HashMap<&'static str, Uri>>,
    /// The parsed files and package findings of the last analyses: after one edit only the
    /// edited file is parsed again, and only its package checked.
    pub session: Arc<SessionCache>,
}

/// Analyse `dir` with these open files' text (path -> text, version).
pub struct Job {
    pub dir: PathBuf,
    pub generation: u64,
    pub overlay: HashMap<PathBuf, (String, i32)>,
}

/// A finding as the editor gets it, with the edits its code actions make.
#[derive(Debug, Clone)]
pub struct Finding {
    pub diagnostic: Diagnostic,
    pub rule: &'static str,
    pub fix: Option<QuickFix>,
    /// Inserts or extends a `//goguard:ignore` comment for this rule on the finding's line.
    pub suppress: TextEdit,
}

/// A rule's fix, in the editor's coordinates.
#[derive(Debug, Clone)]
pub struct QuickFix {
    pub title: String,
    pub safe: bool,
    pub edits: Vec<TextEdit>,
}

/// The findings of one file of the package (none is a result too: it clears old ones).
#[derive(Debug, Clone)]
pub struct FileResult {
    pub path: PathBuf,
    /// The version of the open document analysed; `None` for a file read from disk.
    pub version: Option<i32>,
    pub findings: Vec<Finding>,
}

/// The result of a job.
pub struct Outcome {
    pub dir: PathBuf,
    pub generation: u64,
    pub files: Vec<FileResult>,
    /// A configuration that cannot be read: nothing was analysed.
    pub config_error: Option<String>,
    /// Files that could not be analysed (unreadable, a rule that crashed), one line each.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

/// Runs jobs from `jobs` until it closes, sending each outcome to `out`.
pub fn worker(jobs: Receiver<Job>, out: Sender<Outcome>, settings: Settings) {
    let mut pending: HashMap<PathBuf, (Job, Instant)> = HashMap::new();
    loop {
        let next = pending.values().map(|(_, at)| *at).min();
        let received = match next {
            None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => jobs.recv_deadline(at),
        };
        match received {
            Ok(job) => {
                let at = Instant::now() + settings.debounce;
                pending.insert(job.dir.clone(), (job, at));
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        let ready: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in ready {
            // A newer job for this directory may have arrived while another one ran.
            while let Ok(job) = jobs.try_recv() {
                let at = Instant::now() + settings.debounce;
                pending.insert(job.dir.clone(), (job, at));
            }
            let Some((job, at)) = pending.remove(&dir) else {
                continue;
            };
            if at > Instant::now() {
                pending.insert(dir, (job, at));
                continue;
            }
            let (dir, generation) = (job.dir.clone(), job.generation);
            // A bug here must not end the worker: the package gets an error, and the next
            // edit is analysed as usual.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyse(job, &settings)))
                    .unwrap_or_else(|_| Outcome {
                        dir: dir.clone(),
                        generation,
                        files: Vec::new(),
                        config_error: None,
                        errors: vec![format!(
                            "{}: internal error analysing this package; please report it",
                            dir.display()
                        )],
                        elapsed: Duration::ZERO,
                    });
            if out.send(outcome).is_err() {
                return;
            }
        }
    }
}

/// Checks one package: the `.go` files of `job.dir` (not below it), open ones from the
/// overlay.
pub fn analyse(job: Job, settings: &Settings) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        dir: job.dir.clone(),
        generation: job.generation,
        files: Vec::new(),
        config_error: None,
        errors: Vec::new(),
        elapsed: Duration::ZERO,
    };
    // Discovered on every analysis, as the CLI does on every run: an edited goguard.toml
    // takes effect at the next one.
    let config_file = Config::discover(&job.dir);
    let config = match &config_file {
        Some(f) => match Config::load(f) {
            Ok(mut c) => {
                c.root = std::fs::canonicalize(&c.root).unwrap_or(c.root);
                c
            }
            Err(e) => {
                outcome.config_error = Some(e.to_string());
                outcome.elapsed = started.elapsed();
                return outcome;
            }
        },
        None => Config::default(),
    };
    let files = package_files(&job.dir, &config);
    let opts = Options {
        config: config_file.map_or(ConfigChoice::Isolated, ConfigChoice::File),
        session: Some(settings.session.clone()),
        ..Options::default()
    };
    let overlay: HashMap<PathBuf, String> = job
        .overlay
        .iter()
        .map(|(p, (text, _))| (p.clone(), text.clone()))
        .collect();
    let report = match engine::check_paths_with(&files, &opts, &overlay) {
        Ok(r) => r,
        Err(e) => {
            outcome.config_error = Some(e.to_string());
            outcome.elapsed = started.elapsed();
            return outcome;
        }
    };
    let mut by_file: BTreeMap<PathBuf, Vec<goguard_check::Diagnostic>> =
        files.iter().map(|f| (f.clone(), Vec::new())).collect();
    for d in report.diagnostics {
        by_file.entry(d.path.clone()).or_default().push(d);
    }
    for e in &report.errors {
        outcome
            .errors
            .push(format!("{}: {}", e.path.display(), e.message));
    }
    for (path, diags) in by_file {
        let version = job.overlay.get(&path).map(|(_, v)| *v);
        let findings = if diags.is_empty() {
            Vec::new()
        } else {
            let text = match job.overlay.get(&path) {
                Some((t, _)) => t.clone(),
                None => match engine::read_source(&path) {
                    Ok(t) => t,
                    Err(_) => continue,
                },
            };
            let index = LineIndex::new(&text);
            diags
                .iter()
                .map(|d| finding(d, &text, &index, settings))
                .collect()
        };
        outcome.files.push(FileResult {
            path,
            version,
            findings,
        });
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// The `.go` files directly in `dir` that the configuration does not exclude.
fn package_files(dir: &Path, config: &Config) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let canonical_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "go"))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default();
            !config.is_excluded(&canonical_dir.join(name))
        })
        .collect();
    files.sort();
    files
}

fn finding(
    d: &goguard_check::Diagnostic,
    text: &str,
    index: &LineIndex,
    settings: &Settings,
) -> Finding {
    let enc = settings.encoding;
    let range = index.range(text, d.start_byte, d.end_byte.max(d.start_byte), enc);
    let diagnostic = Diagnostic {
        range,
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(d.rule.to_string())),
        code_description: settings
            .rule_links
            .get(d.rule)
            .map(|href| CodeDescription { href: href.clone() }),
        source: Some("goguard".to_string()),
        message: format!("{}\nwhy: {}\nhelp: {}", d.message, d.why, d.help),
        related_information: None,
        tags: None,
        data: None,
    };
    let fix = d.fix.as_ref().and_then(|f| {
        if !f.is_valid_for(text) || f.edits.is_empty() {
            return None;
        }
        Some(QuickFix {
            title: match f.applicability {
                Applicability::Safe => format!("{} ({})", f.message, d.rule),
                Applicability::Unsafe => format!("{} ({}, unsafe: check it)", f.message, d.rule),
            },
            safe: f.applicability == Applicability::Safe,
            edits: f
                .edits
                .iter()
                .map(|e| TextEdit {
                    range: index.range(text, e.start, e.end, enc),
                    new_text: e.content.clone(),
                })
                .collect(),
        })
    });
    Finding {
        diagnostic,
        rule: d.rule,
        fix,
        suppress: suppress_edit(text, index, d.line, d.rule, enc),
    }
}

/// The placeholder written as the suppression's reason, for the user to replace.
pub const REASON: &str = "TODO: say why this is safe";

const MARKER: &str = "//goguard:ignore";

/// The edit that suppresses `rule` at 1-based `line`. A `//goguard:ignore` comment covers its
/// own line and the next (see goguard-check's `suppress`): one already on the line or just
/// above gets the rule added to its list; otherwise a comment is inserted above the line, at
/// its indentation.
pub fn suppress_edit(
    text: &str,
    index: &LineIndex,
    line: usize,
    rule: &str,
    enc: Encoding,
) -> TextEdit {
    let line_text = |l: usize| -> Option<(usize, &str)> {
        let start = *index.starts().get(l.checked_sub(1)?)?;
        let rest = &text[start..];
        Some((start, rest.split('\n').next().unwrap_or(rest)))
    };
    for l in [line, line.saturating_sub(1)] {
        let Some((start, content)) = line_text(l) else {
            continue;
        };
        let Some(at) = content.find(MARKER) else {
            continue;
        };
        let after = &content[at + MARKER.len()..];
        if !after.is_empty() && !after.starts_with([' ', '\t']) {
            continue;
        }
        let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
        let list = after[blanks..]
            .split([' ', '\t', '\r'])
            .next()
            .unwrap_or("");
        let end = start + at + MARKER.len() + blanks + list.len();
        let insert = if list.is_empty() {
            format!(" {rule} {REASON}")
        } else {
            format!(",{rule}")
        };
        let pos = index.position(text, end, enc);
        return TextEdit {
            range: Range::new(pos, pos),
            new_text: insert,
        };
    }
    let (start, content) = line_text(line).unwrap_or((text.len(), ""));
    let indent: String = content
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let pos = index.position(text, start, enc);
    TextEdit {
        range: Range::new(pos, pos),
        new_text: format!("{indent}{MARKER} {rule} {REASON}\n"),
    }
}

/// Whether `pos` is inside `range` (its end included: a cursor just after a word is on it).
pub fn contains(range: &Range, pos: Position) -> bool {
    range.start <= pos && pos <= range.end
}

/// Whether two ranges share a position.
pub fn overlaps(a: &Range, b: &Range) -> bool {
    a.start <= b.end && b.start <= a.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, edit: &TextEdit) -> String {
        let idx = LineIndex::new(text);
        let s = idx.offset(text, edit.range.start, Encoding::Utf16);
        let e = idx.offset(text, edit.range.end, Encoding::Utf16);
        format!("{}{}{}", &text[..s], edit.new_text, &text[e..])
    }

    const BUGGY: &str = "package p\n\nimport \"sync\"\n\nvar mu sync.Mutex\n\nfunc f(skip bool) {\n\tmu.Lock()\n\tif skip {\n\t\treturn\n\t}\n\tmu.Unlock()\n}\n";

    fn settings() -> Settings {
        Settings {
            encoding: Encoding::Utf16,
            debounce: Duration::ZERO,
            rule_links: Arc::new(HashMap::new()),
            session: Arc::default(),
        }
    }

    #[test]
    fn a_package_is_its_directory_with_the_unsaved_text_and_without_excluded_files() {
        let dir = std::env::temp_dir().join(format!("goguard-analysis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["a.go", "gen.go", "sub/c.go"] {
            std::fs::write(dir.join(name), BUGGY).unwrap();
        }
        std::fs::write(dir.join("goguard.toml"), "exclude = [\"gen.go\"]\n").unwrap();
        let job = |overlay: HashMap<PathBuf, (String, i32)>| Job {
            dir: dir.clone(),
            generation: 1,
            overlay,
        };
        let out = analyse(job(HashMap::new()), &settings());
        let files: Vec<_> = out.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(files, [dir.join("a.go")], "not gen.go, not sub/");
        assert_eq!(out.files[0].findings[0].rule, "G401");
        assert_eq!(out.files[0].findings[0].diagnostic.range.start.line, 7);
        assert_eq!(out.files[0].version, None);

        let fixed = BUGGY
            .replace("\tmu.Unlock()\n", "")
            .replace("\tmu.Lock()\n", "\tmu.Lock()\n\tdefer mu.Unlock()\n");
        let out = analyse(
            job(HashMap::from([(dir.join("a.go"), (fixed, 7))])),
            &settings(),
        );
        assert!(out.files[0].findings.is_empty());
        assert_eq!(out.files[0].version, Some(7));

        std::fs::write(dir.join("goguard.toml"), "select = [\"G999\"]\n").unwrap();
        let out = analyse(job(HashMap::new()), &settings());
        assert!(out.config_error.unwrap().contains("G999"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn suppression_goes_above_the_line_or_joins_a_comment() {
        let text = "func f() {\n\tgo g()\n}\n";
        let idx = LineIndex::new(text);
        let e = suppress_edit(text, &idx, 2, "G106", Encoding::Utf16);
        assert_eq!(
            apply(text, &e),
            format!("func f() {{\n\t//goguard:ignore G106 {REASON}\n\tgo g()\n}}\n")
        );
        let text = "\t//goguard:ignore G301 started by the caller\n\tgo g()\n";
        let idx = LineIndex::new(text);
        let e = suppress_edit(text, &idx, 2, "G106", Encoding::Utf16);
        assert_eq!(
            apply(text, &e),
            "\t//goguard:ignore G301,G106 started by the caller\n\tgo g()\n"
        );
        let text = "go g() //goguard:ignore\n";
        let idx = LineIndex::new(text);
        let e = suppress_edit(text, &idx, 1, "G106", Encoding::Utf16);
        assert_eq!(
            apply(text, &e),
            format!("go g() //goguard:ignore G106 {REASON}\n")
        );
        // What goguard-check accepts.
        let sups = goguard_check::suppress::parse(&apply(text, &e));
        assert_eq!(sups[0].rules, ["G106"]);
    }
}
