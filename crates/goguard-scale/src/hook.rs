//! Where an action goes: a command run without a shell (its argv a template), or a webhook
//! (a JSON POST of the decision). Either has a timeout; what came of it (exit status,
//! stderr, HTTP status) is kept with the decision. A hook that fails is reported, never
//! fatal: the loop goes on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::config::Hook;
use crate::http::HttpClient;

/// The placeholders of a command template.
pub const PLACEHOLDERS: [&str; 5] = [
    "replicas",
    "cores",
    "action",
    "previous_replicas",
    "previous_cores",
];

/// Checks the placeholders of one word (`{replicas}`; `{{` and `}}` are braces).
pub fn check_template(word: &str) -> Result<(), String> {
    expand(word, &|name| {
        PLACEHOLDERS
            .contains(&name)
            .then(String::new)
            .ok_or_else(|| {
                format!(
                    "`{{{name}}}` is not a placeholder: {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                )
            })
    })
    .map(|_| ())
}

/// Replaces `{name}` by `value(name)`.
pub fn expand(
    word: &str,
    value: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(format!(
                "`{word}`: a `}}` without its `{{` (write `}}}}` for a brace)"
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(format!("`{word}`: a `{{` without its `}}`"));
        };
        out.push_str(&value(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a hook did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HookOutcome {
    /// `command` or `webhook`.
    pub kind: &'static str,
    /// The argv as run, or the URL.
    pub target: String,
    pub ok: bool,
    /// The exit status, or the HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// The end of the command's stderr, or of the webhook's answer (at most 2 KiB).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Why it failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub took_ms: u64,
}

const KEEP: usize = 2048;

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(KEEP);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Runs `hook` for a decision: `vars` fill a command's placeholders, `body` is the
/// webhook's JSON.
pub async fn run(
    hook: &Hook,
    vars: &[(&str, String)],
    body: &serde_json::Value,
    client: &HttpClient,
) -> HookOutcome {
    let started = Instant::now();
    let mut outcome = match (&hook.command, &hook.webhook) {
        (Some(cmd), _) => {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("no value for `{{{name}}}`"))
            };
            let argv: Result<Vec<String>, String> =
                cmd.words().iter().map(|w| expand(w, &lookup)).collect();
            match argv {
                Ok(argv) => command(&argv, hook.timeout).await,
                Err(e) => failed("command", cmd.words().join(" "), e),
            }
        }
        (None, Some(url)) => webhook(url, body, hook.timeout, client).await,
        (None, None) => failed("command", String::new(), "no command or webhook".into()),
    };
    outcome.took_ms = started.elapsed().as_millis() as u64;
    outcome
}

fn failed(kind: &'static str, target: String, error: String) -> HookOutcome {
    HookOutcome {
        kind,
        target,
        ok: false,
        status: None,
        output: String::new(),
        error: Some(error),
        took_ms: 0,
    }
}

async fn command(argv: &[String], timeout: Duration) -> HookOutcome {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return failed("command", shown, "an empty command".into());
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed("command", shown, format!("cannot run `{program}`: {e}")),
    };
    let mut stderr = child.stderr.take();
    let read_err = async {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            // Bounded: a chatty command cannot fill the memory.
            let _ = s.take(1 << 20).read_to_end(&mut buf).await;
        }
        buf
    };
    let waited = tokio::time::timeout(timeout, async {
        let (err, status) = tokio::join!(read_err, child.wait());
        (err, status)
    })
    .await;
    match waited {
        Ok((err, Ok(status))) => HookOutcome {
            kind: "command",
            target: shown,
            ok: status.success(),
            status: status.code(),
            output: tail(&err),
            error: (!status.success()).then(|| match status.code() {
                Some(c) => format!("exited with status {c}"),
                None => "killed by a signal".to_string(),
            }),
            took_ms: 0,
        },
        Ok((_, Err(e))) => failed("command", shown, format!("cannot wait for it: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            failed(
                "command",
                shown,
                format!(
                    "did not finish within {} (killed)",
                    humantime::format_duration(timeout)
                ),
            )
        }
    }
}

async fn webhook(
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
    client: &HttpClient,
) -> HookOutcome {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    match client.post_json(url, bytes, timeout).await {
        Ok(a) => {
            let ok = (200..300).contains(&a.status);
            HookOutcome {
                kind: "webhook",
                target: url.to_string(),
                ok,
                status: Some(i32::from(a.status)),
                output: tail(&a.body),
                error: (!ok).then(|| format!("answered HTTP {}", a.status)),
                took_ms: 0,
            }
        }
        Err(e) => failed("webhook", url.to_string(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Argv;

    fn hook(cmd: &[&str], timeout_ms: u64) -> Hook {
        Hook {
            command: Some(Argv::List(cmd.iter().map(|s| s.to_string()).collect())),
            webhook: None,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn templates() {
        let v = |n: &str| Ok(format!("<{n}>"));
        assert_eq!(
            expand("--replicas={replicas}", &v).unwrap(),
            "--replicas=<replicas>"
        );
        assert_eq!(expand("{{literal}}", &v).unwrap(), "{literal}");
        assert!(check_template("{replica}").is_err());
        assert!(check_template("{replicas").is_err());
        assert!(check_template("x}").is_err());
        assert!(check_template("cpu={cores}").is_ok());
    }

    #[tokio::test]
    async fn a_command_runs_without_a_shell_and_its_failure_is_kept() {
        let client = HttpClient::new();
        let vars = [("replicas", "5".to_string())];
        let ok = run(
            &hook(&["sh", "-c", "test \"$0\" = 'a;b' || exit 3", "a;b"], 5000),
            &vars,
            &serde_json::json!({}),
            &client,
        )
        .await;
        assert!(ok.ok, "{ok:?}");
        let out = run(
            &hook(&["sh", "-c", "echo no such deployment >&2; exit 1"], 5000),
            &vars,
            &serde_json::json!({}),
            &client,
        )
        .await;
        assert!(!out.ok);
        assert_eq!(out.status, Some(1));
        assert_eq!(out.output, "no such deployment");
        assert_eq!(out.error.as_deref(), Some("exited with status 1"));
        let slow = run(
            &hook(&["sleep", "5"], 100),
            &vars,
            &serde_json::json!({}),
            &client,
        )
        .await;
        assert_eq!(
            slow.error.as_deref(),
            Some("did not finish within 100ms (killed)")
        );
        assert!(slow.took_ms < 2000);
        let missing = run(
            &hook(&["/no/such/kubectl", "--replicas={replicas}"], 1000),
            &vars,
            &serde_json::json!({}),
            &client,
        )
        .await;
        assert!(missing
            .error
            .unwrap()
            .starts_with("cannot run `/no/such/kubectl`"));
        assert_eq!(missing.target, "/no/such/kubectl --replicas=5");
    }

    #[tokio::test]
    async fn an_unreachable_webhook_fails_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let h = Hook {
            command: None,
            webhook: Some(format!("http://127.0.0.1:{port}/scale")),
            timeout: Duration::from_secs(2),
        };
        let out = run(
            &h,
            &[],
            &serde_json::json!({"action": "out"}),
            &HttpClient::new(),
        )
        .await;
        assert!(!out.ok);
        assert!(
            out.error.as_deref().unwrap().contains("onnection refused"),
            "{out:?}"
        );
    }
}
