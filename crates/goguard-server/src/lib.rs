//! goguard-server: `goguard server`, a language server for goguard's concurrency findings.
//!
//! Built as ruff's server is: [`lsp_server`] for the connection and the message loop we
//! drive ourselves, [`lsp_types`] for the protocol's types. The loop ([`server`]) owns the
//! open documents and answers hover and code-action requests at once; one worker thread
//! ([`analysis`]) re-checks the package (directory) of a changed file with the unsaved text
//! of its open files, debounced, and the loop publishes the newest result for every file of
//! the package.

pub use lsp_server;
pub use lsp_types;

pub mod analysis;
pub mod convert;
pub mod docs;
pub mod server;
pub mod transport;

/// Why the server stopped other than by the client's `exit`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("protocol: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("initialize: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves one client over standard input and output until it says `exit`.
pub fn run_stdio() -> Result<(), ServerError> {
    let (conn, threads) = transport::stdio();
    server::run(conn)?;
    threads.join()?;
    Ok(())
}

/// Serves a client over an in-memory connection (for tests and embedding).
pub fn run(conn: lsp_server::Connection) -> Result<(), ServerError> {
    server::run(conn)
}
