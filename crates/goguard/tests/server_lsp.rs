//! `goguard server` as editors run it: a process spoken to over its standard input and
//! output by a scripted client (the session is goguard-server's tests/support).

#[path = "../../goguard-server/tests/support/mod.rs"]
mod support;

use std::path::Path;

fn goguard() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_goguard"))
}

#[test]
fn editing_session_over_stdio() {
    let mut client = support::Client::spawn(goguard());
    support::session(&mut client, true);
    let status = client.shutdown().expect("a process");
    assert!(status.success(), "{status:?}");
}

/// The client closing the pipe without `exit` ends the server too.
#[test]
fn end_of_input_ends_the_server() {
    let mut child = std::process::Command::new(goguard())
        .arg("server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + support::TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Time from a didChange of one file of GOROOT/src/net/http to the diagnostics for it, as
/// README's "In your editor" reports: `bench/editor-latency` runs it against a release build
/// (GOGUARD_BIN) for each file of its table (GOGUARD_LATENCY_FILE). Needs a Go toolchain.
#[test]
#[ignore]
fn reanalysis_after_one_edit_in_net_http() {
    let goroot = std::process::Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    let goroot = String::from_utf8_lossy(&goroot.stdout).trim().to_string();
    // GOGUARD_LATENCY_FILE: another file of GOROOT/src to edit.
    let rel = std::env::var("GOGUARD_LATENCY_FILE").unwrap_or("net/http/server.go".into());
    let file = Path::new(&goroot).join("src").join(rel);
    let text = std::fs::read_to_string(&file).expect("the file to edit");
    let uri = goguard_server::convert::path_to_uri(&file).unwrap();
    // GOGUARD_BIN: measure another build (a release one) with this test's client.
    let bin = std::env::var_os("GOGUARD_BIN").map(std::path::PathBuf::from);
    let mut client = support::Client::spawn(bin.as_deref().unwrap_or(goguard()));
    client
        .request(
            "initialize",
            serde_json::json!({ "processId": null, "capabilities": {} }),
        )
        .expect("initialized");
    client.notify("initialized", serde_json::json!({}));
    let opened = std::time::Instant::now();
    client.notify(
        "textDocument/didOpen",
        serde_json::json!({ "textDocument": { "uri": uri, "languageId": "go", "version": 1,
                                               "text": text } }),
    );
    client.wait_diagnostics(&uri, |p| p.version == Some(1));
    println!("didOpen -> publishDiagnostics: {:?}", opened.elapsed());
    let pid = client.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let cpu_before = cpu_ticks(pid);
    let mut times = Vec::new();
    // Edits go to the start of the middle line of the file: the reparse then has text on
    // both sides of the change to keep.
    let lines = text.lines().count();
    let middle = text
        .match_indices('\n')
        .nth(lines / 2)
        .map_or(text.len(), |(i, _)| i + 1);
    for v in 2..22 {
        // A comment line added, as a keystroke's worth of change.
        let edit = format!("{}// edit {v}\n{}", &text[..middle], &text[middle..]);
        let t = std::time::Instant::now();
        client.notify(
            "textDocument/didChange",
            serde_json::json!({ "textDocument": { "uri": uri, "version": v },
                                "contentChanges": [{ "text": edit }] }),
        );
        client.wait_diagnostics(&uri, |p| p.version == Some(v));
        times.push(t.elapsed());
    }
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before);
    times.sort();
    let files = client
        .logs
        .iter()
        .rev()
        .find(|l| l.contains("analysed"))
        .cloned()
        .unwrap_or_default();
    println!(
        "didChange -> publishDiagnostics over {} edits: median {:?}, min {:?}, max {:?}; \
         server CPU {} ms per edit ({files})",
        times.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        cpu * 10 / times.len() as u64,
    );
    client.shutdown();
}

/// User and system CPU time of a process so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold blanks) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12) // utime and stime: fields 14 and 15 of proc(5)
}
