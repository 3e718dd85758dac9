//! The language server alone, without the rest of goguard's command line: a release build
//! of it takes a minute where the whole CLI's takes several, for measuring a change to the
//! server quickly (`bench/editor-latency --bin target/release/examples/stdio`; it has no
//! mimalloc, so it is a little slower than `goguard server`). Arguments are ignored, so it
//! stands in for `goguard server`.

fn main() {
    if let Err(e) = goguard_server::run_stdio() {
        eprintln!("goguard-server: {e}");
        std::process::exit(2);
    }
}
