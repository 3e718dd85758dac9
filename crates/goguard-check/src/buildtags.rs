//! Build constraints: which files of a package can be compiled together.
//!
//! A Go file is built only under its constraints: the `//go:build` line before the package
//! clause and the `_GOOS`, `_GOARCH` or `_GOOS_GOARCH` suffix of its name (as `go/build`
//! reads them). Two declarations of one name in `run_linux.go` and `run_windows.go` are two
//! functions, never both in one build; a rule following a call from `serve_linux.go` must
//! reach the first. [`compatible`] answers "is there a build with both files in it?" by
//! trying every assignment of the names the two constraints mention (GOOS and GOARCH take
//! one value each; `unix` follows GOOS; other tags are free).

/// The operating systems and architectures `go tool dist list` knows, as file-name suffixes
/// and build tags.
const GOOS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];
const GOARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "arm64",
    "arm64be",
    "armbe",
    "loong64",
    "mips",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "mipsle",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];
/// GOOS values the `unix` tag is true for (go/build's `unixOS`).
const UNIX: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "linux",
    "netbsd",
    "openbsd",
    "solaris",
];

/// A boolean build expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Tag(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// What one file requires to be built; `None` parts require nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraint {
    pub goos: Option<String>,
    pub goarch: Option<String>,
    pub expr: Option<Expr>,
}

impl Constraint {
    /// Reads the constraints of a file from its name and text.
    pub fn of_file(file_name: &str, text: &str) -> Constraint {
        let (goos, goarch) = name_constraint(file_name);
        Constraint {
            goos,
            goarch,
            expr: build_line(text).and_then(|l| parse(&l)),
        }
    }

    /// True when the file is always built (no constraint at all).
    pub fn is_unconstrained(&self) -> bool {
        *self == Constraint::default()
    }
}

/// The GOOS and GOARCH a file name requires: `x_linux.go`, `x_amd64.go`, `x_linux_amd64.go`
/// (also before `_test`), as go/build's `goodOSArchFile` reads it.
fn name_constraint(name: &str) -> (Option<String>, Option<String>) {
    let stem = name.strip_suffix(".go").unwrap_or(name);
    let stem = stem.strip_suffix("_test").unwrap_or(stem);
    let parts: Vec<&str> = stem.split('_').collect();
    // The first element is the name proper: `linux.go` alone constrains nothing.
    let n = parts.len();
    if n >= 3 && GOOS.contains(&parts[n - 2]) && GOARCH.contains(&parts[n - 1]) {
        return (Some(parts[n - 2].into()), Some(parts[n - 1].into()));
    }
    if n >= 2 && GOOS.contains(&parts[n - 1]) {
        return (Some(parts[n - 1].into()), None);
    }
    if n >= 2 && GOARCH.contains(&parts[n - 1]) {
        return (None, Some(parts[n - 1].into()));
    }
    (None, None)
}

/// The expression of the `//go:build` line in the header (the comments and blank lines
/// before the package clause).
fn build_line(text: &str) -> Option<String> {
    let mut in_block_comment = false;
    for line in text.lines() {
        let l = line.trim();
        if in_block_comment {
            in_block_comment = !l.contains("*/");
            continue;
        }
        if let Some(expr) = l.strip_prefix("//go:build") {
            return Some(expr.trim().to_string());
        }
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        if l.starts_with("/*") {
            in_block_comment = !l.contains("*/");
            continue;
        }
        return None; // the package clause or code: the header is over
    }
    None
}

/// Parses a build expression (`linux && (amd64 || arm64) && !cgo`); `None` when malformed
/// (the go command rejects such a file; here it is then treated as unconstrained).
pub fn parse(text: &str) -> Option<Expr> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let e = p.or()?;
    (p.pos == p.tokens.len()).then_some(e)
}

fn tokenize(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => {}
            '(' | ')' | '!' => out.push(c.to_string()),
            '&' | '|' => {
                if chars.next().map(|(_, d)| d) != Some(c) {
                    return None;
                }
                out.push(format!("{c}{c}"));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(text[i..end].to_string());
            }
            _ => return None,
        }
    }
    Some(out)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn or(&mut self) -> Option<Expr> {
        let mut left = self.and()?;
        while self.peek() == Some("||") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Expr> {
        let mut left = self.not()?;
        while self.peek() == Some("&&") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Some(left)
    }

    fn not(&mut self) -> Option<Expr> {
        match self.peek()? {
            "!" => {
                self.pos += 1;
                Some(Expr::Not(Box::new(self.not()?)))
            }
            "(" => {
                self.pos += 1;
                let e = self.or()?;
                (self.peek() == Some(")")).then(|| self.pos += 1)?;
                Some(e)
            }
            "&&" | "||" | ")" => None,
            tag => {
                let e = Expr::Tag(tag.to_string());
                self.pos += 1;
                Some(e)
            }
        }
    }
}

impl Expr {
    fn tags<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::Tag(t) => out.push(t),
            Expr::Not(e) => e.tags(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.tags(out);
                b.tags(out);
            }
        }
    }

    fn eval(&self, build: &Build) -> bool {
        match self {
            Expr::Tag(t) => build.has(t),
            Expr::Not(e) => !e.eval(build),
            Expr::And(a, b) => a.eval(build) && b.eval(build),
            Expr::Or(a, b) => a.eval(build) || b.eval(build),
        }
    }
}

/// One build configuration being tried.
struct Build<'n> {
    goos: &'n str,
    goarch: &'n str,
    /// The other tags that are set.
    tags: Vec<&'n str>,
}

impl Build<'_> {
    fn has(&self, tag: &str) -> bool {
        if GOOS.contains(&tag) {
            // GOOS=android also satisfies `linux`, ios satisfies `darwin`, illumos `solaris`.
            return tag == self.goos
                || matches!(
                    (tag, self.goos),
                    ("linux", "android") | ("darwin", "ios") | ("solaris", "illumos")
                );
        }
        if GOARCH.contains(&tag) {
            return tag == self.goarch;
        }
        if tag == "unix" {
            return UNIX.contains(&self.goos);
        }
        self.tags.contains(&tag)
    }

    fn satisfies(&self, c: &Constraint) -> bool {
        c.goos.as_deref().is_none_or(|g| self.has(g))
            && c.goarch.as_deref().is_none_or(|a| self.goarch == a)
            && c.expr.as_ref().is_none_or(|e| e.eval(self))
    }
}

/// Whether some build includes both files.
pub fn compatible(a: &Constraint, b: &Constraint) -> bool {
    if a.is_unconstrained() || b.is_unconstrained() {
        return true;
    }
    let mut names: Vec<&str> = Vec::new();
    for c in [a, b] {
        names.extend(c.goos.as_deref());
        names.extend(c.goarch.as_deref());
        if let Some(e) = &c.expr {
            e.tags(&mut names);
        }
    }
    names.sort_unstable();
    names.dedup();
    // The GOOS values worth trying are the ones named, plus one no constraint names; `unix`
    // brings in one unix and one other system.
    let mut oses: Vec<&str> = names.iter().copied().filter(|n| GOOS.contains(n)).collect();
    oses.extend(["linux", "windows", "zz-other-os"]);
    let mut arches: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| GOARCH.contains(n))
        .collect();
    arches.push("zz-other-arch");
    let free: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !GOOS.contains(n) && !GOARCH.contains(n) && *n != "unix")
        .collect();
    if free.len() > 12 {
        return true; // too many to try: claim nothing
    }
    for &goos in &oses {
        for &goarch in &arches {
            for mask in 0u32..(1 << free.len()) {
                let build = Build {
                    goos,
                    goarch,
                    tags: free
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, t)| *t)
                        .collect(),
                };
                if build.satisfies(a) && build.satisfies(b) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, build: &str) -> Constraint {
        let text = if build.is_empty() {
            "package p\n".to_string()
        } else {
            format!("// Copyright\n\n//go:build {build}\n\npackage p\n")
        };
        Constraint::of_file(name, &text)
    }

    #[test]
    fn reads_file_names_as_go_build_does() {
        assert_eq!(name_constraint("x_linux.go"), (Some("linux".into()), None));
        assert_eq!(
            name_constraint("x_linux_test.go"),
            (Some("linux".into()), None)
        );
        assert_eq!(
            name_constraint("x_linux_amd64.go"),
            (Some("linux".into()), Some("amd64".into()))
        );
        assert_eq!(name_constraint("x_arm64.go"), (None, Some("arm64".into())));
        assert_eq!(name_constraint("linux.go"), (None, None));
        assert_eq!(name_constraint("server.go"), (None, None));
    }

    #[test]
    fn reads_the_build_line_only_in_the_header() {
        assert_eq!(c("a.go", "linux && !cgo").expr, parse("linux && !cgo"));
        let late = Constraint::of_file("a.go", "package p\n\n//go:build linux\n");
        assert!(late.is_unconstrained());
        assert_eq!(parse("linux &&"), None);
        assert_eq!(parse("(a || b"), None);
    }

    #[test]
    fn decides_which_files_build_together() {
        assert!(!compatible(&c("a_linux.go", ""), &c("a_windows.go", "")));
        assert!(compatible(&c("a_linux.go", ""), &c("b_amd64.go", "")));
        assert!(!compatible(&c("a.go", "unix"), &c("b.go", "windows")));
        assert!(compatible(&c("a.go", "unix"), &c("b_linux.go", "")));
        assert!(!compatible(&c("a.go", "cgo"), &c("b.go", "!cgo")));
        assert!(compatible(&c("a.go", "cgo || race"), &c("b.go", "!cgo")));
        assert!(!compatible(
            &c("a.go", "linux && arm64"),
            &c("b.go", "!arm64")
        ));
        assert!(compatible(&c("a.go", "ignore"), &c("b.go", "")));
        // android builds files for linux too.
        assert!(compatible(&c("a_android.go", ""), &c("b_linux.go", "")));
    }
}
