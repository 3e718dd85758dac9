//! Times the stages of `goguard check` on a directory: read, parse, index; lists the files
//! slowest to parse. `cargo run --release -p goguard-check --example parse_timing -- DIR`
use std::time::{Duration, Instant};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: parse_timing DIR");
    let files: Vec<_> = ignore::WalkBuilder::new(&dir)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "go"))
        .map(|e| e.path().to_path_buf())
        .collect();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut per_file: Vec<(Duration, usize, &std::path::Path)> = Vec::new();
    let t = Instant::now();
    let mut parsed = Vec::new();
    for (text, p) in texts.iter().zip(&files) {
        let s = Instant::now();
        let len = text.len();
        if let Some(f) = goguard_check::source::SourceFile::parse(p, text.clone()) {
            parsed.push(f);
        }
        per_file.push((s.elapsed(), len, p));
    }
    let el = t.elapsed();
    println!(
        "{} files, {} MB: parse {el:?} ({:.1} MB/s)",
        texts.len(),
        bytes >> 20,
        bytes as f64 / 1e6 / el.as_secs_f64()
    );
    per_file.sort_by_key(|p| std::cmp::Reverse(p.0));
    for (d, len, p) in per_file.iter().take(8) {
        println!(
            "  {d:?} {:.1} MB/s {} KB {}",
            *len as f64 / 1e6 / d.as_secs_f64(),
            len / 1024,
            p.display()
        );
    }
    let t = Instant::now();
    let calls: usize = parsed
        .iter()
        .map(|f| goguard_check::package::FileIndex::build(f).calls.len())
        .sum();
    println!("index: {:?} ({calls} calls)", t.elapsed());
}
