//! The language server alone, without the rest of goguard's command line: a release build
//! of it takes minutes where the whole CLI's takes much longer, for measuring the server
//! (README, "In your editor"). Arguments are ignored, so it stands in for `goguard server`.

fn main() {
    if let Err(e) = goguard_server::run_stdio() {
        eprintln!("goguard-server: {e}");
        std::process::exit(2);
    }
}
