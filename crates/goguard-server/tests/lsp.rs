//! The scripted editing session against the server in this process (the same session runs
//! against `goguard server` as a process in goguard's tests/server_lsp.rs).

mod support;

#[test]
fn editing_session_in_process() {
    let mut client = support::Client::in_process();
    support::session(&mut client, false);
    assert!(client.shutdown().is_none());
}
