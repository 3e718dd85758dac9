//! The message loop: documents, scheduling analyses, publishing their results, hover and
//! code actions. It owns all state and never analyses itself (see [`crate::analysis`]), so a
//! request is answered while a package is being checked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, LogMessage, Notification as _, PublishDiagnostics, ShowMessage,
};
use lsp_types::request::{CodeActionRequest, HoverRequest, RegisterCapability, Request as _};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOptions, CodeActionOrCommand, CodeActionParams,
    CodeActionProviderCapability, DidChangeTextDocumentParams, DidChangeWatchedFilesParams,
    DidChangeWatchedFilesRegistrationOptions, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, FileSystemWatcher, GlobPattern, Hover,
    HoverContents, HoverParams, HoverProviderCapability, InitializeParams, InitializeResult,
    LogMessageParams, MarkupContent, MarkupKind, MessageType, PublishDiagnosticsParams,
    Registration, RegistrationParams, SaveOptions, ServerCapabilities, ServerInfo,
    ShowMessageParams, TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, TextEdit, Uri, WorkspaceEdit,
};
use serde::de::DeserializeOwned;

use crate::analysis::{self, FileResult, Finding, Job, Outcome, Settings};
use crate::convert::{path_to_uri, uri_to_path, Encoding, LineIndex};
use crate::ServerError;

/// How long a package waits after an edit before it is analysed, unless the client sets
/// `initializationOptions.debounceMs`: long enough to take in a burst of changes (a paste,
/// an editor replaying several), short next to the time between keystrokes.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);

/// `fixAll` for goguard's safe fixes.
const FIX_ALL: &str = "source.fixAll.goguard";

/// An open document.
struct Document {
    uri: Uri,
    text: String,
    version: i32,
}

/// The loop's state.
struct Server {
    conn: Connection,
    encoding: Encoding,
    documents: HashMap<PathBuf, Document>,
    /// The newest job per directory: an outcome of an older one is stale.
    latest: HashMap<PathBuf, u64>,
    generation: u64,
    /// The last findings published per file, and the version they were computed on.
    findings: HashMap<PathBuf, FileResult>,
    jobs: Sender<Job>,
    shutting_down: bool,
    next_request: i32,
    /// The last configuration error shown, so that it is shown once, not at every edit.
    shown_config_error: Option<String>,
    watch_config: bool,
}

/// Runs the server on `conn` until the client's `exit`.
pub fn run(conn: Connection) -> Result<(), ServerError> {
    let (id, params) = conn.initialize_start()?;
    // Parameters goguard cannot read are taken as a client with no capabilities.
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let encoding = Encoding::negotiate(
        params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_deref()),
    );
    let options = params.initialization_options.unwrap_or_default();
    let debounce = options
        .get("debounceMs")
        .and_then(|v| v.as_u64())
        .map_or(DEFAULT_DEBOUNCE, Duration::from_millis);
    let docs_url = options
        .get("ruleDocsUrl")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let watch_config = params
        .capabilities
        .workspace
        .as_ref()
        .and_then(|w| w.did_change_watched_files)
        .and_then(|c| c.dynamic_registration)
        .unwrap_or(false);
    let result = InitializeResult {
        capabilities: capabilities(encoding),
        server_info: Some(ServerInfo {
            name: "goguard".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
    };
    conn.initialize_finish(id, serde_json::to_value(result)?)?;

    let settings = Settings {
        encoding,
        debounce,
        rule_links: Arc::new(crate::docs::rule_links(docs_url.as_deref())),
        session: Arc::default(),
    };
    let (jobs_tx, jobs_rx) = unbounded();
    let (out_tx, out_rx) = unbounded();
    let worker = std::thread::Builder::new()
        .name("goguard-analysis".into())
        .spawn(move || analysis::worker(jobs_rx, out_tx, settings))?;
    let mut server = Server {
        conn,
        encoding,
        documents: HashMap::new(),
        latest: HashMap::new(),
        generation: 0,
        findings: HashMap::new(),
        jobs: jobs_tx,
        shutting_down: false,
        next_request: 0,
        shown_config_error: None,
        watch_config,
    };
    server.main_loop(&out_rx)?;
    drop(server);
    let _ = worker.join();
    Ok(())
}

fn capabilities(encoding: Encoding) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(encoding.kind()),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..Default::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX, CodeActionKind::new(FIX_ALL)]),
            resolve_provider: Some(false),
            ..Default::default()
        })),
        ..Default::default()
    }
}

impl Server {
    fn main_loop(&mut self, outcomes: &Receiver<Outcome>) -> Result<(), ServerError> {
        let incoming = self.conn.receiver.clone();
        let mut outcomes = outcomes.clone();
        loop {
            select! {
                recv(incoming) -> msg => {
                    let Ok(msg) = msg else { return Ok(()) };
                    if self.handle(msg) {
                        return Ok(());
                    }
                }
                recv(outcomes) -> outcome => match outcome {
                    Ok(outcome) => self.on_outcome(outcome),
                    Err(_) => {
                        // The worker is gone (it never should be): keep answering requests
                        // rather than spin on a closed channel.
                        self.show(MessageType::ERROR, "goguard: the analysis stopped".into());
                        outcomes = crossbeam_channel::never();
                    }
                }
            }
        }
    }

    /// Handles one message; true on `exit`.
    fn handle(&mut self, msg: Message) -> bool {
        match msg {
            Message::Request(req) => {
                let id = req.id.clone();
                // A bug in one handler answers that request with an error, and the server
                // goes on.
                let response =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.request(req)))
                        .unwrap_or_else(|_| {
                            Response::new_err(
                                id,
                                ErrorCode::InternalError as i32,
                                "goguard: internal error handling this request".into(),
                            )
                        });
                self.send(response.into());
                false
            }
            Message::Notification(n) if n.method == "exit" => true,
            Message::Notification(n) => {
                let method = n.method.clone();
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.notification(n)))
                    .is_err()
                {
                    self.log(
                        MessageType::ERROR,
                        format!("goguard: internal error handling {method}"),
                    );
                }
                false
            }
            // Answers to our requests (capability registration): nothing to do.
            Message::Response(_) => false,
        }
    }

    fn request(&mut self, req: Request) -> Response {
        if self.shutting_down {
            return Response::new_err(
                req.id,
                ErrorCode::InvalidRequest as i32,
                "the server is shutting down".into(),
            );
        }
        match req.method.as_str() {
            "shutdown" => {
                self.shutting_down = true;
                Response::new_ok(req.id, ())
            }
            HoverRequest::METHOD => match params::<HoverParams>(&req) {
                Ok(p) => Response::new_ok(req.id, self.hover(p)),
                Err(e) => e,
            },
            CodeActionRequest::METHOD => match params::<CodeActionParams>(&req) {
                Ok(p) => Response::new_ok(req.id, self.code_actions(p)),
                Err(e) => e,
            },
            _ => Response::new_err(
                req.id,
                ErrorCode::MethodNotFound as i32,
                format!("goguard does not handle {}", req.method),
            ),
        }
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            "initialized" => self.register_config_watch(),
            DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(n.params) {
                    if let Some(path) = uri_to_path(&p.text_document.uri).filter(|p| is_go(p)) {
                        let dir = dir_of(&path);
                        self.documents.insert(
                            path,
                            Document {
                                uri: p.text_document.uri,
                                text: p.text_document.text,
                                version: p.text_document.version,
                            },
                        );
                        self.schedule(dir);
                    }
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(n.params) {
                    self.did_change(p);
                }
            }
            DidSaveTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidSaveTextDocumentParams>(n.params) {
                    match uri_to_path(&p.text_document.uri) {
                        Some(path) if is_go(&path) => self.schedule(dir_of(&path)),
                        Some(path) if is_config(&path) => {
                            self.shown_config_error = None;
                            self.reanalyse_all();
                        }
                        _ => {}
                    }
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(n.params) {
                    if let Some(path) = uri_to_path(&p.text_document.uri).filter(|p| is_go(p)) {
                        self.documents.remove(&path);
                        // The package is checked again from the disk: the closed file's
                        // findings are those of its saved text.
                        self.schedule(dir_of(&path));
                    }
                }
            }
            DidChangeWatchedFiles::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidChangeWatchedFilesParams>(n.params) {
                    if !p.changes.is_empty() {
                        self.shown_config_error = None;
                        self.reanalyse_all();
                    }
                }
            }
            _ => {}
        }
    }

    fn did_change(&mut self, p: DidChangeTextDocumentParams) {
        let Some(path) = uri_to_path(&p.text_document.uri) else {
            return;
        };
        let enc = self.encoding;
        let Some(doc) = self.documents.get_mut(&path) else {
            return;
        };
        for change in p.content_changes {
            match change.range {
                None => doc.text = change.text,
                Some(range) => {
                    let index = LineIndex::new(&doc.text);
                    let start = index.offset(&doc.text, range.start, enc);
                    let end = index.offset(&doc.text, range.end, enc).max(start);
                    doc.text.replace_range(start..end, &change.text);
                }
            }
        }
        doc.version = p.text_document.version;
        self.schedule(dir_of(&path));
    }

    /// Asks the worker to analyse `dir` with its open files' text.
    fn schedule(&mut self, dir: PathBuf) {
        self.generation += 1;
        self.latest.insert(dir.clone(), self.generation);
        let overlay = self
            .documents
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir.as_path()))
            .map(|(p, d)| (p.clone(), (d.text.clone(), d.version)))
            .collect();
        let _ = self.jobs.send(Job {
            dir,
            generation: self.generation,
            overlay,
        });
    }

    fn reanalyse_all(&mut self) {
        let dirs: HashSet<PathBuf> = self
            .documents
            .keys()
            .chain(self.findings.keys())
            .map(|p| dir_of(p))
            .collect();
        for dir in dirs {
            self.schedule(dir);
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        if self.latest.get(&outcome.dir) != Some(&outcome.generation) {
            return; // a newer analysis of this package is on its way
        }
        if let Some(e) = outcome.config_error {
            if self.shown_config_error.as_ref() != Some(&e) {
                self.show(MessageType::ERROR, format!("goguard: {e}"));
                self.shown_config_error = Some(e);
            }
            return;
        }
        self.shown_config_error = None;
        for e in &outcome.errors {
            self.log(MessageType::WARNING, format!("goguard: {e}"));
        }
        let analysed: HashSet<PathBuf> = outcome.files.iter().map(|f| f.path.clone()).collect();
        // Files of the package that had findings and are gone (deleted, excluded): cleared.
        let vanished: Vec<PathBuf> = self
            .findings
            .keys()
            .filter(|p| p.parent() == Some(outcome.dir.as_path()) && !analysed.contains(*p))
            .cloned()
            .collect();
        for path in vanished {
            self.findings.remove(&path);
            self.publish(&path, Vec::new(), None);
        }
        // Open files first: they are the ones being looked at.
        let mut files = outcome.files;
        files.sort_by_key(|f| !self.documents.contains_key(&f.path));
        for file in files {
            let had = self
                .findings
                .get(&file.path)
                .is_some_and(|f| !f.findings.is_empty());
            let open = self.documents.contains_key(&file.path);
            if file.findings.is_empty() && !had && !open {
                continue; // nothing to show, nothing to clear
            }
            let diags = file.findings.iter().map(|f| f.diagnostic.clone()).collect();
            self.publish(&file.path, diags, file.version);
            self.findings.insert(file.path.clone(), file);
        }
        self.log(
            MessageType::LOG,
            format!(
                "goguard: analysed {} ({} files) in {} ms",
                outcome.dir.display(),
                analysed.len(),
                outcome.elapsed.as_millis()
            ),
        );
    }

    fn publish(&self, path: &Path, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let uri = match self.documents.get(path) {
            Some(d) => d.uri.clone(),
            None => match path_to_uri(path) {
                Some(u) => u,
                None => return,
            },
        };
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new(PublishDiagnostics::METHOD.to_string(), params).into());
    }

    /// The findings of an open file as of its current text (none while its analysis is
    /// pending: their positions may have moved).
    fn current_findings(&self, uri: &Uri) -> Option<&[Finding]> {
        let path = uri_to_path(uri)?;
        let result = self.findings.get(&path)?;
        let doc_version = self.documents.get(&path).map(|d| d.version);
        (result.version == doc_version).then_some(result.findings.as_slice())
    }

    fn hover(&self, p: HoverParams) -> Option<Hover> {
        let pos = p.text_document_position_params.position;
        let findings = self.current_findings(&p.text_document_position_params.text_document.uri)?;
        let mut rules: Vec<&'static str> = findings
            .iter()
            .filter(|f| analysis::contains(&f.diagnostic.range, pos))
            .map(|f| f.rule)
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let docs: Vec<&str> = rules
            .iter()
            .filter_map(|r| goguard_check::registry::find(r))
            .map(|r| r.doc)
            .collect();
        if docs.is_empty() {
            return None;
        }
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: docs.join("\n\n---\n\n"),
            }),
            range: None,
        })
    }

    fn code_actions(&self, p: CodeActionParams) -> Vec<CodeActionOrCommand> {
        let uri = p.text_document.uri;
        let Some(findings) = self.current_findings(&uri) else {
            return Vec::new();
        };
        let only = p.context.only.as_deref();
        let wants = |kind: &str| {
            only.is_none_or(|o| {
                o.iter()
                    .any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str())))
            })
        };
        let edit = |edits: Vec<TextEdit>| WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), edits)])),
            ..Default::default()
        };
        let mut actions = Vec::new();
        if wants(CodeActionKind::QUICKFIX.as_str()) {
            // By lines: a cursor anywhere on a finding's line offers its actions, as
            // editors show a light bulb for the line.
            let on_lines = |f: &&Finding| {
                f.diagnostic.range.start.line <= p.range.end.line
                    && p.range.start.line <= f.diagnostic.range.end.line
            };
            for f in findings.iter().filter(on_lines) {
                if let Some(fix) = &f.fix {
                    actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                        title: fix.title.clone(),
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: Some(vec![f.diagnostic.clone()]),
                        edit: Some(edit(fix.edits.clone())),
                        is_preferred: Some(fix.safe),
                        ..Default::default()
                    }));
                }
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: format!("Suppress {} with //goguard:ignore", f.rule),
                    kind: Some(CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![f.diagnostic.clone()]),
                    edit: Some(edit(vec![f.suppress.clone()])),
                    ..Default::default()
                }));
            }
        }
        if wants(FIX_ALL) {
            if let Some(action) = self.fix_all(&uri, findings) {
                actions.push(action);
            }
        }
        actions
    }

    /// Every safe fix of the file whose edits do not touch another's (the rest wait for the
    /// next request, as `goguard check --fix` takes them pass by pass).
    fn fix_all(&self, uri: &Uri, findings: &[Finding]) -> Option<CodeActionOrCommand> {
        let mut taken: Vec<&TextEdit> = Vec::new();
        for fix in findings
            .iter()
            .filter_map(|f| f.fix.as_ref())
            .filter(|f| f.safe)
        {
            let clashes = fix
                .edits
                .iter()
                .any(|e| taken.iter().any(|t| analysis::overlaps(&t.range, &e.range)));
            if !clashes {
                taken.extend(&fix.edits);
            }
        }
        if taken.is_empty() {
            return None;
        }
        let edits = taken.into_iter().cloned().collect();
        Some(CodeActionOrCommand::CodeAction(CodeAction {
            title: "Apply goguard's safe fixes".to_string(),
            kind: Some(CodeActionKind::new(FIX_ALL)),
            edit: Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri.clone(), edits)])),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    /// Watches every goguard.toml, when the client can: a change re-analyses the open
    /// packages (each analysis also discovers the configuration anew, so an editor that
    /// cannot watch gets it at the next edit).
    fn register_config_watch(&mut self) {
        if !self.watch_config {
            return;
        }
        let options = DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![FileSystemWatcher {
                glob_pattern: GlobPattern::String(format!(
                    "**/{}",
                    goguard_check::config::CONFIG_FILE
                )),
                kind: None,
            }],
        };
        let params = RegistrationParams {
            registrations: vec![Registration {
                id: "goguard-config".to_string(),
                method: DidChangeWatchedFiles::METHOD.to_string(),
                register_options: serde_json::to_value(options).ok(),
            }],
        };
        self.next_request += 1;
        let req = Request::new(
            RequestId::from(format!("goguard-{}", self.next_request)),
            RegisterCapability::METHOD.to_string(),
            params,
        );
        self.send(req.into());
    }

    fn log(&self, typ: MessageType, message: String) {
        let params = LogMessageParams { typ, message };
        self.send(Notification::new(LogMessage::METHOD.to_string(), params).into());
    }

    fn show(&self, typ: MessageType, message: String) {
        let params = ShowMessageParams { typ, message };
        self.send(Notification::new(ShowMessage::METHOD.to_string(), params).into());
    }

    fn send(&self, msg: Message) {
        // The writer is gone only when the client is: the loop ends at the next read.
        let _ = self.conn.sender.send(msg);
    }
}

/// A request's parameters, or the `InvalidParams` answer.
#[allow(clippy::result_large_err)]
fn params<P: DeserializeOwned>(req: &Request) -> Result<P, Response> {
    serde_json::from_value(req.params.clone()).map_err(|e| {
        Response::new_err(
            req.id.clone(),
            ErrorCode::InvalidParams as i32,
            format!("invalid params for {}: {e}", req.method),
        )
    })
}

fn is_go(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "go")
}

fn is_config(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == goguard_check::config::CONFIG_FILE)
}

/// The package (directory) of a file.
fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}
