//! A bounded fuzz run on stable Rust: arbitrary bytes and mutated real Go files (the rule
//! fixtures, the reference examples and a sample of the Go standard library) through every
//! rule, the text renderer and the fixes. No input may make a rule crash (the engine would catch it
//! and report an internal error, which fails this test) or the process panic.
//!
//! Budget: GOGUARD_FUZZ_SECS seconds (default 15; the reparse test takes a third of it);
//! seed: GOGUARD_FUZZ_SEED (default: time).
//! A failure prints the seed and the input to reproduce it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use goguard_check::engine::check_source_report;
use goguard_check::output::text;
use goguard_check::{GoVersion, ModuleInfo};

/// xorshift64*: enough randomness for mutations, reproducible from a seed.
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
    "{",
    "}",
    "(",
    ")",
    "go ",
    "func() {",
    "defer ",
    "<-",
    "ch <- 1\n",
    "select {\n",
    "case ",
    "default:\n",
    "for {\n",
    "for range ",
    "return\n",
    "break\n",
    "continue\n",
    "wg.Add(1)\n",
    "wg.Done()\n",
    "mu.Lock()\n",
    "mu.Unlock()\n",
    "make(chan int)",
    "time.After(1)",
    "context.WithCancel(ctx)",
    "var wg sync.WaitGroup\n",
    "sync.Mutex",
    "*",
    "&",
    ":=",
    "=",
    ",",
    ";",
    "\n",
    "\"",
    "`",
    "/*",
    "//",
    "new(",
    "[T any]",
    "goto L\n",
    "L:\n",
    "\u{feff}",
    "é",
    "\0",
];

fn corpus() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("tests/fixtures"),
        root.join("../../examples/reference"),
    ];
    let goroot = std::process::Command::new("go")
        .args(["env", "GOROOT"])
        .output()
        .expect("the Go toolchain must be installed (scripts/test installs it)");
    let goroot = PathBuf::from(String::from_utf8_lossy(&goroot.stdout).trim());
    for pkg in ["sync", "context", "time", "net/http"] {
        dirs.push(goroot.join("src").join(pkg));
    }
    let mut out = Vec::new();
    for dir in dirs {
        for e in ignore::WalkBuilder::new(&dir)
            .max_depth(Some(3))
            .build()
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "go") {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    if t.len() < 200_000 {
                        out.push((e.path().to_path_buf(), t));
                    }
                }
            }
        }
    }
    assert!(out.len() > 50, "corpus too small: {}", out.len());
    out
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut b: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = b.len();
        match rng.below(6) {
            0 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(64)) + 1;
                b.drain(at..(at + n).min(len));
            }
            1 => {
                let at = rng.below(len + 1);
                let tok = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, tok.bytes());
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(200)) + 1;
                let chunk: Vec<u8> = b[at..(at + n).min(len)].to_vec();
                let to = rng.below(len + 1);
                b.splice(to..to, chunk);
            }
            3 if len > 0 => b.truncate(rng.below(len)),
            4 if len > 0 => {
                let at = rng.below(len);
                b[at] = rng.next() as u8;
            }
            _ => {
                let n = rng.below(64);
                b.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// This test's seconds (GOGUARD_FUZZ_SECS, default 15, divided by `share`) and seed.
fn budget(share: u64) -> (u64, u64) {
    let secs = std::env::var("GOGUARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(15)
        .div_ceil(share);
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
    (secs, seed)
}

#[test]
fn no_input_crashes_a_rule() {
    let (secs, seed) = budget(1);
    let corpus = corpus();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let versions = [
        GoVersion::new(1, 21),
        GoVersion::new(1, 24),
        GoVersion::LATEST,
    ];
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let input = if rng.below(10) == 0 {
            let n = rng.below(512);
            String::from_utf8_lossy(&(0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>())
                .into_owned()
        } else {
            let (_, text) = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, text)
        };
        let module = ModuleInfo {
            version: versions[rng.below(versions.len())],
            go_mod: None,
        };
        let (diags, errors) = check_source_report(Path::new("fuzz.go"), &input, &module, None);
        if !errors.is_empty() {
            let path = std::env::temp_dir().join(format!("goguard-fuzz-{seed}.go"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "seed {seed}: {:?}; input saved to {}",
                errors,
                path.display()
            );
        }
        for d in &diags {
            let _ = text::render(d);
        }
        // Applying every fix offered, however odd the input, must not panic either.
        let fixes: Vec<&goguard_check::fix::Fix> =
            diags.iter().filter_map(|d| d.fix.as_ref()).collect();
        let _ = goguard_check::fix::apply(&input, &fixes);
        runs += 1;
    }
    eprintln!("fuzz: {runs} inputs in {secs} s, seed {seed}, no crash");
    assert!(runs > 0);
}

/// Every node of a tree: kind, byte span, and whether it is an error or missing node.
fn shape(file: &goguard_check::source::SourceFile) -> Vec<(u16, usize, usize, bool)> {
    let mut out = Vec::new();
    let mut cursor = file.root().walk();
    'walk: loop {
        let n = cursor.node();
        out.push((
            n.kind_id(),
            n.start_byte(),
            n.end_byte(),
            n.is_error() || n.is_missing(),
        ));
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                continue 'walk;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    out
}

/// The language server reparses an edited file from its last tree (`SourceFile::reparse`):
/// the tree must be the one a parse from scratch gives, whatever the edit. Mutated real
/// files, and each mutation edited back (the undo an editor sends).
#[test]
fn a_reparse_after_an_edit_gives_the_tree_of_a_fresh_parse() {
    use goguard_check::source::SourceFile;
    let (secs, seed) = budget(3);
    let corpus = corpus();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let path = Path::new("edit.go");
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let (_, text) = &corpus[rng.below(corpus.len())];
        let edited = mutate(&mut rng, text);
        let before = SourceFile::parse(path, text.clone()).unwrap();
        let reparsed = SourceFile::reparse(path, edited.clone(), &before).unwrap();
        let fresh = SourceFile::parse(path, edited.clone()).unwrap();
        if shape(&reparsed) != shape(&fresh) {
            let saved = std::env::temp_dir().join(format!("goguard-reparse-{seed}.go"));
            std::fs::write(&saved, &edited).unwrap();
            panic!(
                "seed {seed}: the reparse differs from a fresh parse; edited text saved to {}",
                saved.display()
            );
        }
        // And back: the undo.
        let undone = SourceFile::reparse(path, text.clone(), &reparsed).unwrap();
        assert!(
            shape(&undone) == shape(&before),
            "seed {seed}: undoing the edit does not give the first tree back"
        );
        runs += 1;
    }
    eprintln!("reparse: {runs} edits in {secs} s, seed {seed}, every tree as a fresh parse");
    assert!(runs > 0);
}
