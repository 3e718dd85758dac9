//! JSON-RPC over standard input and output, as `lsp_server::Connection::stdio` does, except
//! that a malformed message is reported to the client and skipped: lsp-server's own reader
//! stops at the first body that is not a valid message, and the server with it.

use std::io::{self, BufRead, Write};
use std::thread;

use crossbeam_channel::{bounded, unbounded, Sender};
use lsp_server::{Connection, Message, Notification};
use lsp_types::notification::{LogMessage, Notification as _};
use lsp_types::{LogMessageParams, MessageType};

/// The reader and writer threads.
pub struct IoThreads {
    reader: thread::JoinHandle<()>,
    writer: thread::JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for both threads; the writer's error, if it had one.
    pub fn join(self) -> io::Result<()> {
        // The reader may be blocked on a standard input the client keeps open after `exit`:
        // it ends with the process.
        drop(self.reader);
        self.writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
    }
}

/// A connection over the process's standard input and output.
pub fn stdio() -> (Connection, IoThreads) {
    let (writer_tx, writer_rx) = unbounded::<Message>();
    let writer = thread::Builder::new()
        .name("lsp-writer".into())
        .spawn(move || {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            for msg in writer_rx {
                msg.write(&mut out)?;
            }
            out.flush()
        })
        .expect("spawn the writer thread");
    let (reader_tx, reader_rx) = bounded::<Message>(16);
    let log = writer_tx.clone();
    let reader = thread::Builder::new()
        .name("lsp-reader".into())
        .spawn(move || {
            let stdin = io::stdin();
            read_messages(&mut stdin.lock(), &reader_tx, &log);
        })
        .expect("spawn the reader thread");
    let conn = Connection {
        sender: writer_tx,
        receiver: reader_rx,
    };
    (conn, IoThreads { reader, writer })
}

/// Reads framed messages until end of input or `exit`, sending each to `to`; a frame whose
/// body is not a message is logged to the client through `log` and skipped.
pub fn read_messages(input: &mut dyn BufRead, to: &Sender<Message>, log: &Sender<Message>) {
    loop {
        match read_frame(input) {
            Ok(None) => return,
            Ok(Some(body)) => match serde_json::from_slice::<Message>(&body) {
                Ok(msg) => {
                    let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
                    if to.send(msg).is_err() || exit {
                        return;
                    }
                }
                Err(e) => warn(
                    log,
                    format!(
                        "goguard: skipped a message that is not JSON-RPC ({e}): {}",
                        preview(&body)
                    ),
                ),
            },
            Err(FrameError::Io) => return,
            Err(FrameError::Header(h)) => warn(log, format!("goguard: skipped a bad header: {h}")),
        }
    }
}

enum FrameError {
    /// The input ended or failed mid-frame: nothing more can be read.
    Io,
    Header(String),
}

/// One message body: headers up to a blank line (`Content-Length` required), then that
/// many bytes. Lenient about a bare `\n` line end.
fn read_frame(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>, FrameError> {
    let mut length = None;
    let mut line = String::new();
    let mut saw_header = false;
    loop {
        line.clear();
        let n = input.read_line(&mut line).map_err(|_| FrameError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            if !saw_header {
                continue;
            }
            break;
        }
        saw_header = true;
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(FrameError::Header(preview(trimmed.as_bytes())));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<usize>() {
                Ok(n) if n <= MAX_MESSAGE => length = Some(n),
                _ => return Err(FrameError::Header(preview(trimmed.as_bytes()))),
            }
        }
    }
    let Some(length) = length else {
        return Err(FrameError::Header("no Content-Length".into()));
    };
    let mut body = vec![0; length];
    input.read_exact(&mut body).map_err(|_| FrameError::Io)?;
    Ok(Some(body))
}

/// No editor sends a message this large (a 64 MiB file); a header claiming more is garbage.
const MAX_MESSAGE: usize = 256 << 20;

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut p: String = s.chars().take(120).collect();
    if s.chars().count() > 120 {
        p.push_str("...");
    }
    p
}

fn warn(log: &Sender<Message>, message: String) {
    let params = LogMessageParams {
        typ: MessageType::ERROR,
        message,
    };
    let _ = log.send(Message::Notification(Notification::new(
        LogMessage::METHOD.to_string(),
        params,
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn a_malformed_message_is_skipped_and_logged() {
        let input = [
            frame("{not json"),
            frame(r#"{"hello":1}"#),
            "Garbage\r\n\r\n".to_string(),
            frame(r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#),
            frame(r#"{"jsonrpc":"2.0","method":"exit"}"#),
            frame(r#"{"jsonrpc":"2.0","method":"never read"}"#),
        ]
        .concat();
        let (to, got) = unbounded();
        let (log, logged) = unbounded();
        read_messages(&mut input.as_bytes(), &to, &log);
        let methods: Vec<String> = got
            .try_iter()
            .map(|m| match m {
                Message::Notification(n) => n.method,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(methods, ["initialized", "exit"]);
        assert_eq!(logged.try_iter().count(), 3);
    }
}
