//! Rules on packages of several files: what one file declares under build constraints is
//! found from the files built with it, and not from the others.

use std::path::{Path, PathBuf};

use goguard_check::engine::{check_paths, ConfigChoice, Options};

/// A fresh directory holding `files` (name, text) and a go.mod.
fn package(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("goguard-pkg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), "module example.com/p\n\ngo 1.24\n").unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn findings(dir: &Path, rule: &str) -> Vec<(String, usize)> {
    let opts = Options {
        select: Some(vec![rule.to_string()]),
        ignore: Vec::new(),
        include_vendor: false,
        include_testdata: false,
        show_info: false,
        config: ConfigChoice::Isolated,
    };
    let report = check_paths(&[dir.to_path_buf()], &opts).unwrap();
    let mut out: Vec<(String, usize)> = report
        .diagnostics
        .iter()
        .map(|d| {
            let name = d.path.file_name().unwrap().to_string_lossy().to_string();
            (name, d.line)
        })
        .collect();
    out.sort();
    out
}

const START: &str = "package p

import \"sync\"

func start() {
	var wg sync.WaitGroup
	wg.Add(1)
	go worker(&wg)
	wg.Wait()
}
";

#[test]
fn a_function_declared_per_os_is_followed_in_its_own_build() {
    // `worker` exists once per OS; one can skip Done, the other cannot. Whichever file holds
    // the bug (and whichever the package reads last), it is found there and only there.
    let skips = format!(
        "{START}
func ready() bool {{ return false }}

func worker(wg *sync.WaitGroup) {{
	if !ready() {{
		return
	}}
	wg.Done()
}}
"
    );
    let defers = "package p

import \"sync\"

func worker(wg *sync.WaitGroup) {
	defer wg.Done()
}
";
    for (buggy, clean) in [
        ("run_linux.go", "run_windows.go"),
        ("run_windows.go", "run_linux.go"),
    ] {
        let dir = package(
            &format!("per-os-{buggy}"),
            &[(buggy, skips.as_str()), (clean, defers)],
        );
        assert_eq!(findings(&dir, "G304"), vec![(buggy.to_string(), 18)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_goroutine_started_in_another_file_is_checked_where_it_is() {
    let main = "package p

import (
	\"context\"
	\"sync\"
)

func Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go worker(&wg)
	go poll(ctx)
	wg.Wait()
}
";
    let workers = "package p

import (
	\"context\"
	\"sync\"
	\"time\"
)

func ready() bool { return false }

func worker(wg *sync.WaitGroup) {
	if !ready() {
		return
	}
	wg.Done()
}

func poll(ctx context.Context) {
	for {
		time.Sleep(time.Second)
	}
}
";
    let dir = package(
        "started-elsewhere",
        &[("run.go", main), ("workers.go", workers)],
    );
    assert_eq!(findings(&dir, "G304"), vec![("workers.go".to_string(), 15)]);
    assert_eq!(findings(&dir, "G102"), vec![("workers.go".to_string(), 19)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_method_started_in_another_file_is_checked_where_it_is() {
    let main = "package p

import \"context\"

func Start(ctx context.Context) {
	s := &server{}
	go s.loop(ctx)
}
";
    let server = "package p

import (
	\"context\"
	\"time\"
)

type server struct{ ticks int }

func (s *server) loop(ctx context.Context) {
	for {
		s.ticks++
		time.Sleep(time.Second)
	}
}
";
    let dir = package(
        "method-elsewhere",
        &[("start.go", main), ("server.go", server)],
    );
    assert_eq!(findings(&dir, "G102"), vec![("server.go".to_string(), 11)]);
    std::fs::remove_dir_all(&dir).unwrap();
}
