//! A scripted LSP client, and the editing session that both the in-process test
//! (`goguard-server/tests/lsp.rs`) and the real binary's (`goguard/tests/server_lsp.rs`) play.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use goguard_server::convert::{path_to_uri, Encoding, LineIndex};
use goguard_server::lsp_server::{
    Connection, Message, Notification, Request, RequestId, Response, ResponseError,
};
use goguard_server::lsp_types::{PublishDiagnosticsParams, Range, Uri};
use serde_json::{json, Value};
use std::sync::mpsc::{channel, Sender};

/// How long any awaited message may take (a debug build on a loaded machine).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What the client writes: a message, or bytes as they are (for malformed input).
pub enum Out {
    Msg(Message),
    Raw(Vec<u8>),
}

pub struct Client {
    out: Sender<Out>,
    /// Its receiver is what the server sent (the channels are lsp-server's, crossbeam's).
    incoming: Connection,
    /// Notifications and server requests received and not yet looked at, in order.
    queue: VecDeque<Message>,
    next_id: i32,
    pub child: Option<Child>,
    server_thread: Option<std::thread::JoinHandle<()>>,
    /// Every `window/logMessage` text seen.
    pub logs: Vec<String>,
}

impl Client {
    /// The server in this process, over lsp-server's in-memory connection.
    pub fn in_process() -> Client {
        let (server, client) = Connection::memory();
        let thread = std::thread::spawn(move || {
            goguard_server::run(server).expect("server ran");
        });
        let (out, out_rx) = channel::<Out>();
        let to_server = client.sender.clone();
        std::thread::spawn(move || {
            for o in out_rx {
                if let Out::Msg(m) = o {
                    if to_server.send(m).is_err() {
                        return;
                    }
                }
            }
        });
        Client::new(out, client, None, Some(thread))
    }

    /// `bin server` as a child process, over its standard input and output.
    pub fn spawn(bin: &Path) -> Client {
        let mut child = Command::new(bin)
            .arg("server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn goguard server");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (out, out_rx) = channel::<Out>();
        std::thread::spawn(move || {
            for o in out_rx {
                let ok = match o {
                    Out::Msg(m) => m.write(&mut stdin).is_ok(),
                    Out::Raw(b) => stdin.write_all(&b).and_then(|_| stdin.flush()).is_ok(),
                };
                if !ok {
                    return;
                }
            }
        });
        let (from_server, incoming) = Connection::memory();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Ok(Some(m)) = Message::read(&mut r) {
                if from_server.sender.send(m).is_err() {
                    return;
                }
            }
        });
        Client::new(out, incoming, Some(child), None)
    }

    fn new(
        out: Sender<Out>,
        incoming: Connection,
        child: Option<Child>,
        server_thread: Option<std::thread::JoinHandle<()>>,
    ) -> Client {
        Client {
            out,
            incoming,
            queue: VecDeque::new(),
            next_id: 0,
            child,
            server_thread,
            logs: Vec::new(),
        }
    }

    pub fn raw(&self, bytes: &[u8]) {
        self.out.send(Out::Raw(bytes.to_vec())).expect("writer");
    }

    pub fn notify(&self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        self.out.send(Out::Msg(n.into())).expect("writer");
    }

    /// Sends a request and waits for its response; notifications meanwhile are queued.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ResponseError> {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let req = Request::new(id.clone(), method.to_string(), params);
        self.out.send(Out::Msg(req.into())).expect("writer");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.next_message(deadline) {
                Some(Message::Response(r)) if r.id == id => return r.response_result,
                Some(Message::Response(_)) => {}
                Some(other) => self.queue.push_back(other),
                None => panic!("no response to {method} within {TIMEOUT:?}"),
            }
        }
    }

    /// The next message from the server, answering its requests (capability registration)
    /// on the way and recording its log messages.
    fn next_message(&mut self, deadline: Instant) -> Option<Message> {
        loop {
            let msg = self.incoming.receiver.recv_deadline(deadline).ok()?;
            match &msg {
                Message::Request(r) => {
                    let resp = Response::new_ok(r.id.clone(), Value::Null);
                    self.out.send(Out::Msg(resp.into())).expect("writer");
                    self.queue.push_back(msg);
                    continue;
                }
                Message::Notification(n) if n.method == "window/logMessage" => {
                    self.logs
                        .push(n.params["message"].as_str().unwrap_or("").to_string());
                }
                _ => {}
            }
            return Some(msg);
        }
    }

    /// Waits for a notification `method` satisfying `pred`, dropping the ones before it.
    pub fn wait_notification(
        &mut self,
        method: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let msg = match self.queue.pop_front() {
                Some(m) => m,
                None => self.next_message(deadline)?,
            };
            if let Message::Notification(n) = msg {
                if n.method == method && pred(&n.params) {
                    return Some(n.params);
                }
            }
        }
    }

    /// Waits for diagnostics of `uri` that satisfy `pred`.
    pub fn wait_diagnostics(
        &mut self,
        uri: &Uri,
        pred: impl Fn(&PublishDiagnosticsParams) -> bool,
    ) -> PublishDiagnosticsParams {
        let found = self.wait_notification("textDocument/publishDiagnostics", |v| {
            let Ok(p) = serde_json::from_value::<PublishDiagnosticsParams>(v.clone()) else {
                return false;
            };
            &p.uri == uri && pred(&p)
        });
        let v = found.unwrap_or_else(|| panic!("no matching diagnostics for {}", uri.as_str()));
        serde_json::from_value(v).expect("publishDiagnostics params")
    }

    /// `shutdown` and `exit`; the child's exit status when it is a process.
    pub fn shutdown(mut self) -> Option<std::process::ExitStatus> {
        let r = self.request("shutdown", Value::Null);
        assert!(r.is_ok(), "{r:?}");
        self.notify("exit", Value::Null);
        if let Some(t) = self.server_thread.take() {
            t.join().expect("server thread");
        }
        let mut child = self.child.take()?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not exit after `exit`");
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(10)); // polling, not synchronisation
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A package on disk: a go.mod and Go files, removed when dropped.
pub struct Package {
    pub dir: PathBuf,
}

impl Package {
    pub fn new(name: &str) -> Package {
        let dir = std::env::temp_dir().join(format!("goguard-lsp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create package dir");
        std::fs::write(dir.join("go.mod"), "module example.com/pkg\n\ngo 1.24\n").unwrap();
        Package { dir }
    }

    pub fn write(&self, name: &str, text: &str) -> (PathBuf, Uri) {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write file");
        let uri = path_to_uri(&path).expect("uri");
        (path, uri)
    }
}

impl Drop for Package {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// G304 at line 16 (0-based): the Done an early return skips.
pub const BUGGY_A: &str = "package pkg

import (
\t\"errors\"
\t\"sync\"
)

func step() error { return errors.New(\"x\") }

func run() {
\tvar wg sync.WaitGroup
\twg.Add(1)
\tgo func() {
\t\tif err := step(); err != nil {
\t\t\treturn
\t\t}
\t\twg.Done()
\t}()
\twg.Wait()
}
";

pub const FIXED_A: &str = "package pkg

import (
\t\"errors\"
\t\"sync\"
)

func step() error { return errors.New(\"x\") }

func run() {
\tvar wg sync.WaitGroup
\twg.Add(1)
\tgo func() {
\t\tdefer wg.Done()
\t\tif err := step(); err != nil {
\t\t\treturn
\t\t}
\t}()
\twg.Wait()
}
";

/// G401 on the Lock an early return leaves held.
pub const BUGGY_B: &str = "package pkg

import \"sync\"

var mu sync.Mutex
var n int

func bump(skip bool) {
\tmu.Lock()
\tif skip {
\t\treturn
\t}
\tn++
\tmu.Unlock()
}
";

pub const FIXED_B: &str = "package pkg

import \"sync\"

var mu sync.Mutex
var n int

func bump(skip bool) {
\tmu.Lock()
\tdefer mu.Unlock()
\tif skip {
\t\treturn
\t}
\tn++
}
";

pub fn codes(p: &PublishDiagnosticsParams) -> Vec<(String, u32)> {
    p.diagnostics
        .iter()
        .map(|d| {
            let code = match &d.code {
                Some(goguard_server::lsp_types::NumberOrString::String(s)) => s.clone(),
                other => format!("{other:?}"),
            };
            (code, d.range.start.line)
        })
        .collect()
}

/// Applies LSP text edits (UTF-16 positions) to `text`, as an editor does.
pub fn apply_edits(text: &str, edits: &[Value]) -> String {
    let index = LineIndex::new(text);
    let mut spans: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|e| {
            let range: Range = serde_json::from_value(e["range"].clone()).expect("range");
            let s = index.offset(text, range.start, Encoding::Utf16);
            let t = index.offset(text, range.end, Encoding::Utf16);
            (s, t, e["newText"].as_str().unwrap_or("").to_string())
        })
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    let mut out = text.to_string();
    for (s, t, new) in spans {
        out.replace_range(s..t, &new);
    }
    out
}

fn pos(line: u32, character: u32) -> Value {
    json!({ "line": line, "character": character })
}

fn did_change_full(c: &Client, uri: &Uri, version: i32, text: &str) {
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "text": text }] }),
    );
}

/// The edits of the code action titled with `prefix` for `uri`.
fn action_edits(actions: &Value, prefix: &str, uri: &Uri) -> Vec<Value> {
    let action = actions
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["title"].as_str().unwrap_or("").starts_with(prefix))
        .unwrap_or_else(|| panic!("no action {prefix:?} in {actions:#}"));
    action["edit"]["changes"][uri.as_str()]
        .as_array()
        .expect("edits for the file")
        .clone()
}

/// The whole editing session; `stdio` adds what only a real process can be sent.
pub fn session(client: &mut Client, stdio: bool) {
    let pkg = Package::new(if stdio { "stdio" } else { "memory" });
    let (_, a) = pkg.write("a.go", BUGGY_A);
    let (b_path, b) = pkg.write("b.go", BUGGY_B);

    let init = client.request(
        "initialize",
        json!({
            "processId": null,
            "rootUri": path_to_uri(&pkg.dir),
            "capabilities": {
                "general": { "positionEncodings": ["utf-16"] },
                "workspace": { "didChangeWatchedFiles": { "dynamicRegistration": true } }
            },
            "initializationOptions": { "debounceMs": 20 }
        }),
    );
    let caps = &init.as_ref().expect("initialize result")["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(caps["hoverProvider"], true);
    client.notify("initialized", json!({}));

    // Open a.go: its finding, and b.go's (not open, same package) with it.
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": a, "languageId": "go", "version": 1, "text": BUGGY_A } }),
    );
    let d = client.wait_diagnostics(&a, |p| !p.diagnostics.is_empty());
    assert_eq!(codes(&d), [("G304".to_string(), 16)]);
    assert_eq!(d.version, Some(1));
    let diag = &d.diagnostics[0];
    assert_eq!(diag.source.as_deref(), Some("goguard"));
    assert_eq!(
        diag.severity,
        Some(goguard_server::lsp_types::DiagnosticSeverity::ERROR)
    );
    assert!(diag.message.contains("\nwhy: ") && diag.message.contains("\nhelp: "));
    let href = diag.code_description.as_ref().expect("a link").href.clone();
    assert!(href.as_str().ends_with("G304.md"), "{}", href.as_str());
    let db = client.wait_diagnostics(&b, |p| !p.diagnostics.is_empty());
    assert_eq!(codes(&db)[0].0, "G401");
    assert_eq!(db.version, None);

    // Hover on the finding: the rule's documentation.
    let at = diag.range.start;
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": a }, "position": pos(at.line, at.character + 1) }),
    );
    let value = hover.expect("hover")["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        value.starts_with("# G304 waitgroup-done-skippable"),
        "{value}"
    );
    let none = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": a }, "position": pos(0, 0) }),
    );
    assert_eq!(none.ok(), Some(Value::Null));

    // Code actions on the finding: the quick fix (preferred, safe) and the suppression.
    let range = json!({ "start": pos(at.line, 0), "end": pos(at.line, 0) });
    let actions = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": a }, "range": range,
                "context": { "diagnostics": [] } }),
    );
    let actions = actions.expect("actions");
    let fix = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["isPreferred"] == true)
        .unwrap_or_else(|| panic!("a preferred fix in {actions:#}"));
    assert_eq!(fix["kind"], "quickfix");

    // Suppress: apply the edit as an incremental change, re-check: gone.
    let edits = action_edits(&actions, "Suppress G304", &a);
    let suppressed = apply_edits(BUGGY_A, &edits);
    assert!(
        suppressed.contains("\t\t//goguard:ignore G304 "),
        "{suppressed}"
    );
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": a, "version": 2 },
                "contentChanges": [{ "range": edits[0]["range"], "text": edits[0]["newText"] }] }),
    );
    let d = client.wait_diagnostics(&a, |p| p.version == Some(2));
    assert!(d.diagnostics.is_empty(), "{:?}", codes(&d));

    // Back to the bug, then the quick fix applied: gone.
    did_change_full(client, &a, 3, BUGGY_A);
    let d = client.wait_diagnostics(&a, |p| p.version == Some(3));
    assert_eq!(codes(&d).len(), 1);
    let fix_edits = fix["edit"]["changes"][a.as_str()]
        .as_array()
        .unwrap()
        .clone();
    let fixed = apply_edits(BUGGY_A, &fix_edits);
    assert!(
        fixed.contains("go func() {\n\t\tdefer wg.Done()\n"),
        "{fixed}"
    );
    did_change_full(client, &a, 4, &fixed);
    let d = client.wait_diagnostics(&a, |p| p.version == Some(4));
    assert!(d.diagnostics.is_empty(), "{:?}", codes(&d));

    // The source.fixAll action on b.go once it is open.
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": b, "languageId": "go", "version": 1, "text": BUGGY_B } }),
    );
    let db = client.wait_diagnostics(&b, |p| p.version == Some(1));
    assert_eq!(codes(&db)[0].0, "G401");
    let all = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": b }, "range": { "start": pos(0, 0), "end": pos(0, 0) },
                "context": { "diagnostics": [], "only": ["source.fixAll"] } }),
    );
    let all = all.expect("fixAll");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all:#}");
    let edits = action_edits(&all, "Apply goguard's safe fixes", &b);
    assert!(apply_edits(BUGGY_B, &edits).contains("defer mu.Unlock()"));

    // goguard.toml ignoring G401, announced as a watched-file change: b.go cleared.
    std::fs::write(pkg.dir.join("goguard.toml"), "ignore = [\"G401\"]\n").unwrap();
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": path_to_uri(&pkg.dir.join("goguard.toml")), "type": 1 }] }),
    );
    let db = client.wait_diagnostics(&b, |p| p.diagnostics.is_empty());
    assert_eq!(db.version, Some(1));
    // A broken one is shown once, and nothing is analysed with it.
    std::fs::write(pkg.dir.join("goguard.toml"), "ignore = [\"G999\"]\n").unwrap();
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": path_to_uri(&pkg.dir.join("goguard.toml")), "type": 2 }] }),
    );
    let shown = client
        .wait_notification("window/showMessage", |_| true)
        .expect("the configuration error shown");
    assert!(
        shown["message"].as_str().unwrap().contains("G999"),
        "{shown}"
    );
    std::fs::remove_file(pkg.dir.join("goguard.toml")).unwrap();
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": path_to_uri(&pkg.dir.join("goguard.toml")), "type": 3 }] }),
    );
    let db = client.wait_diagnostics(&b, |p| !p.diagnostics.is_empty());
    assert_eq!(codes(&db)[0].0, "G401");

    // An unsaved fix of b.go, while the disk still has the bug.
    did_change_full(client, &b, 2, FIXED_B);
    let db = client.wait_diagnostics(&b, |p| p.version == Some(2));
    assert!(db.diagnostics.is_empty(), "{:?}", codes(&db));
    assert_eq!(std::fs::read_to_string(&b_path).unwrap(), BUGGY_B);

    // A burst of edits: the last version's result arrives, none older after it.
    for v in 5..25 {
        let text = if v % 2 == 0 { BUGGY_A } else { FIXED_A };
        did_change_full(client, &a, v, text);
    }
    let seen = std::cell::RefCell::new(Vec::new());
    let last = client.wait_diagnostics(&a, |p| {
        seen.borrow_mut().extend(p.version);
        p.version == Some(24)
    });
    let seen = seen.into_inner();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.len() < 20, "debounced: {seen:?}");
    assert_eq!(codes(&last), [("G304".to_string(), 16)]);

    // Requests goguard does not handle, or with bad parameters: errors, and the server goes on.
    let r = client.request("textDocument/definition", json!({}));
    assert_eq!(r.expect_err("an error").code, -32601);
    let r = client.request("textDocument/hover", json!({ "nonsense": true }));
    assert_eq!(r.expect_err("an error").code, -32602);
    if stdio {
        client.raw(b"Content-Length: 9\r\n\r\n{not json");
        client.raw(b"Content-Length: 11\r\n\r\n{\"hello\":1}");
        let logged = client
            .wait_notification("window/logMessage", |p| {
                p["message"].as_str().unwrap_or("").contains("not JSON-RPC")
            })
            .expect("the malformed message reported");
        assert!(logged["message"].as_str().unwrap().contains("{not json"));
    }
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": a }, "position": pos(16, 3) }),
    );
    assert!(hover.expect("hover")["contents"]["value"]
        .as_str()
        .unwrap()
        .contains("G304"));

    // Closing b.go: checked from disk again, where the bug still is.
    client.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": b } }),
    );
    let db = client.wait_diagnostics(&b, |p| p.version.is_none());
    assert_eq!(codes(&db)[0].0, "G401");
}
