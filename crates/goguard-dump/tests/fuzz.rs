//! A bounded fuzz run over the dump parsers: random bytes and mutated real dumps (debug=2,
//! debug=1, a crash) from a Go program the test runs, and the carriers' tokens (log prefixes,
//! JSON records, byte order marks). Nothing may panic or run for ever; every input either
//! parses or is rejected with an error. GOGUARD_FUZZ_SECS (default 5) and GOGUARD_FUZZ_SEED.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn real_dumps() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let run = |prog: &str, args: &[&str], debug: &str| {
        let out = Command::new("go")
            .arg("run")
            .args(args)
            .current_dir(dir.join(prog))
            .env("GOTOOLCHAIN", "local")
            .env("DUMP_DEBUG", debug)
            .output()
            .expect("the Go toolchain must be installed (scripts/test installs it)");
        if out.stdout.is_empty() {
            out.stderr
        } else {
            out.stdout
        }
    };
    let proto_gz = run("leaky", &["."], "0");
    let mut proto = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&proto_gz[..]), &mut proto)
        .unwrap();
    vec![
        run("leaky", &["."], "2"),
        run("leaky", &["."], "1"),
        proto_gz,
        proto,
        run("crash", &[".", "deadlock"], "2"),
        run("crash", &["-race", ".", "race"], "2"),
        run("crash", &[".", "maps"], "2"),
    ]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "goroutine ",
    "goroutine 1 [",
    "]:",
    "[chan send, 99999999999 minutes]:",
    "\n",
    "\t",
    "\n\n",
    "created by ",
    " in goroutine ",
    "...additional frames elided...",
    "goroutine profile: total ",
    " @ 0x",
    "#\t0x1\t",
    ":",
    "+0x",
    "(...)",
    "{",
    "}",
    "\r\n",
    "fatal error: ",
    "\u{0}",
    "\u{1f}\u{8b}",
    "WARNING: DATA RACE\n",
    "==================\n",
    "Write at 0x00c0 by goroutine 7:\n",
    "Goroutine 7 (running) created at:\n",
    "  main.f()\n      /x.go:1 +0x1\n",
    "SIGQUIT: quit\n",
    " gp=0x1 m=0 mp=0x2 ",
    " (leaked)",
    "goroutineleak profile: total ",
    "\u{a}\u{4}\u{8}\u{1}\u{10}\u{2}",
    // Carriers: log prefixes, JSON records, quoted values, byte order marks, crash sections.
    "2026-12-05T10:00:00.1Z stderr F ",
    "web-1  | ",
    "{\"log\":\"goroutine 1 [running]:\\n\",\"stream\":\"stderr\"}\n",
    "{\"msg\":\"",
    "stack=\"goroutine 2 [select]:\\nmain.f()\\n\\t/x.go:1\"",
    "\u{feff}",
    "\u{ff}\u{fe}",
    "g\u{0}o\u{0}",
    "\n-----\n\nSIGQUIT: quit\nPC=0x1 m=1 sigcode=0\n\ngoroutine 0 gp=0x1 m=1 [idle]:\n",
    "    \t",
    "        ",
    "panic: deadlock: all goroutines in bubble are blocked\n",
];

#[test]
fn no_input_panics_the_parsers() {
    let secs = std::env::var("GOGUARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("GOGUARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let corpus = real_dumps();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0;
    while Instant::now() < deadline {
        let mut b = if rng.below(8) == 0 {
            (0..rng.below(256)).map(|_| rng.next() as u8).collect()
        } else {
            corpus[rng.below(corpus.len())].clone()
        };
        for _ in 0..1 + rng.below(8) {
            let len = b.len();
            match rng.below(4) {
                0 if len > 0 => {
                    let at = rng.below(len);
                    b.drain(at..(at + rng.below(64) + 1).min(len));
                }
                1 => {
                    let at = rng.below(len + 1);
                    b.splice(at..at, TOKENS[rng.below(TOKENS.len())].bytes());
                }
                2 if len > 0 => b.truncate(rng.below(len)),
                _ if len > 0 => {
                    let at = rng.below(len);
                    b[at] = rng.next() as u8;
                }
                _ => {}
            }
        }
        let input = b.clone();
        // On a thread of its own, so that an input the parser never finishes is caught too.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(move || {
                let reader = goguard_dump::decompressing(std::io::Cursor::new(b)).unwrap();
                let mut g = goguard_dump::analyze::Grouper::default();
                if let Ok(stats) = goguard_dump::parse_dump(reader, |x| g.add(x)) {
                    let _ = g.finish(&stats);
                }
            });
            let _ = done_tx.send(outcome.is_ok());
        });
        let verdict = match done_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(true) => None,
            Ok(false) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some("panicked"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Some("did not finish in 10 s"),
        };
        if let Some(what) = verdict {
            let path = std::env::temp_dir().join(format!("goguard-dump-fuzz-{seed}.txt"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "seed {seed}: the parser {what}; input saved to {}",
                path.display()
            );
        }
        runs += 1;
    }
    eprintln!("fuzz: {runs} dumps in {secs} s, seed {seed}, no panic");
    assert!(runs > 0);
}
