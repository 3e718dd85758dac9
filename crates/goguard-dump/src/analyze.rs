//! Groups goroutines with the same stack and wait state, classifies what they wait on, and
//! names the likely leak.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::parse::{Frame, Goroutine, ParseStats};

/// What a goroutine waits on, by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateClass {
    Channel,
    Sync,
    IoWait,
    Sleep,
    Syscall,
    Running,
    Runtime,
    /// A debug=1 profile that does not show what the goroutine waits on.
    Unknown,
    Other,
}

/// The family of a printed wait state.
pub fn classify(state: &str) -> StateClass {
    match state {
        s if s.starts_with("chan ") || s.starts_with("select") => StateClass::Channel,
        s if s.starts_with("sync.") || s.starts_with("semacquire") => StateClass::Sync,
        "IO wait" => StateClass::IoWait,
        "sleep" | "timer goroutine (idle)" => StateClass::Sleep,
        "syscall" => StateClass::Syscall,
        "running" | "runnable" => StateClass::Running,
        s if s.starts_with("GC")
            || s.contains("finalizer")
            || s.contains("(idle)")
            || matches!(
                s,
                "idle" | "cleanup wait" | "preempted" | "wait for GC cycle"
            ) =>
        {
            StateClass::Runtime
        }
        "unknown" => StateClass::Unknown,
        _ => StateClass::Other,
    }
}

/// Goroutines with the same state, frames and creator.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub count: usize,
    pub state: String,
    pub class: StateClass,
    /// Shortest and longest wait in minutes, when the dump says.
    pub wait_minutes: Option<[u32; 2]>,
    /// The first frame in the program's own code (not the runtime or standard library).
    pub top_frame: Option<Frame>,
    pub frames: Vec<Frame>,
    pub created_by: Option<Frame>,
    /// Label values seen in the group, with counts.
    pub labels: BTreeMap<String, BTreeMap<String, usize>>,
    pub suspect: bool,
    /// Go's leak profile marked it leaked: a certain leak, not a heuristic.
    pub leaked: bool,
    /// The goguard check rule this stack most likely comes from.
    pub rule: Option<&'static str>,
    pub reason: String,
    /// The first goroutine ids of the group (at most [`MAX_IDS`]), to find them in the dump.
    pub ids: Vec<u64>,
    /// `ids` lists every goroutine of the group (false when the group has more than
    /// [`MAX_IDS`], or comes from a profile that prints no ids).
    pub ids_complete: bool,
    /// Source lines around the top frame, when `--source` maps it to a checkout.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<SourceLine>,
    /// Static findings (goguard check) in the functions of this group's stack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<StaticFinding>,
    /// What the group was formed on (see [`Similarity`]); diffs match groups by it.
    #[serde(skip)]
    pub key: Key,
}

/// A line of the program's source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceLine {
    pub line: u32,
    pub text: String,
    /// The line the frame points at (the others are context).
    pub target: bool,
}

/// A finding of the static rules, attached to the runtime evidence.
#[derive(Debug, Clone, Serialize)]
pub struct StaticFinding {
    pub rule: String,
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// The analysis of one dump.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub total: usize,
    /// Goroutines left out by the ignore options (not in `total`).
    pub ignored: usize,
    pub truncated: bool,
    /// The runtime's fatal error or panic message, when the dump is a crash.
    pub fatal: Option<String>,
    /// The fatal error, what it means, and the goroutine and line that hit it.
    pub crash: Option<crate::race::Crash>,
    /// Data races, one entry per distinct pair of access locations.
    pub races: Vec<RaceReport>,
    pub groups: Vec<Group>,
    /// The highest goroutine id of the dump (text dumps only).
    pub max_id: Option<u64>,
}

/// The JSON report of one dump: the analysis and what the parser saw. Serialized straight
/// to its writer, so that a dump of 500,000 distinct stacks is never held as a JSON tree.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    pub analysis: &'a Analysis,
    /// `debug=2`, `debug=1`, `proto`, with `(goroutineleak)` for the leak profile.
    pub format: &'a str,
    /// How many dumps the input held.
    pub dumps: usize,
    /// What was taken off the lines (log prefixes, JSON records, stray bytes).
    pub carriers: &'a [String],
    /// Per-thread stacks of a GOTRACEBACK=crash report, not counted as goroutines.
    pub thread_stacks: usize,
    /// The file, or the URL that answered.
    pub source: &'a str,
}

/// A data race and how many times it was reported.
#[derive(Debug, Clone, Serialize)]
pub struct RaceReport {
    pub count: usize,
    /// `file:line` of each access's first program frame.
    pub locations: Vec<String>,
    /// The first report, with every access's stack and the goroutines' origins.
    pub race: crate::race::Race,
}

/// Folds repeated reports of the same race (same access locations) into one entry.
pub fn dedup_races(races: &[crate::race::Race]) -> Vec<RaceReport> {
    let mut out: Vec<RaceReport> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for r in races {
        match index.get(&r.key()) {
            Some(&i) => out[i].count += 1,
            None => {
                index.insert(r.key(), out.len());
                out.push(RaceReport {
                    count: 1,
                    locations: r.locations(),
                    race: r.clone(),
                });
            }
        }
    }
    out
}

/// How many goroutine ids a group lists.
pub const MAX_IDS: usize = 5;

/// Goroutines blocked at the same place in at least this number are suspect (a leak grows;
/// a healthy program rarely parks this many at one operation).
pub const SUSPECT_COUNT: usize = 5;
/// Blocked this long on a channel or lock is suspect.
pub const SUSPECT_MINUTES: u32 = 10;

/// What makes goroutines one group: the wait state, the frames, the creator, and with
/// `exact` the labels too.
pub type Key = (String, Vec<Frame>, Option<Frame>, Vec<(String, String)>);

/// How alike two goroutines must be to share a group (like panicparse's `-s` levels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// Same state, frames (function, file, line), creator, and the same pprof labels.
    Exact,
    /// Same state, frames (function, file, line) and creator; labels become a breakdown.
    #[default]
    Lines,
    /// Same state and the same functions, whatever the lines: merges goroutines parked in
    /// one function at different lines, or dumps of two builds of the same code.
    Function,
}

/// How to group, and which goroutines to leave out (like goleak's ignore options).
#[derive(Debug, Clone, Default)]
pub struct GroupOptions {
    pub similarity: Similarity,
    /// Leave out goroutines whose top frame is one of these.
    pub ignore_top: Vec<String>,
    /// Leave out goroutines with one of these functions anywhere in their stack.
    pub ignore_any: Vec<String>,
    /// Leave out goroutines started by one of these functions.
    pub ignore_creator: Vec<String>,
}

impl GroupOptions {
    /// The grouping key of a goroutine.
    pub fn key(&self, g: &Goroutine) -> Key {
        let strip = |f: &Frame| Frame {
            function: f.function.clone(),
            file: String::new(),
            line: 0,
        };
        match self.similarity {
            Similarity::Function => (
                g.state.clone(),
                g.frames.iter().map(strip).collect(),
                g.created_by.as_ref().map(strip),
                Vec::new(),
            ),
            Similarity::Lines => (
                g.state.clone(),
                g.frames.clone(),
                g.created_by.clone(),
                Vec::new(),
            ),
            Similarity::Exact => (
                g.state.clone(),
                g.frames.clone(),
                g.created_by.clone(),
                g.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }
    }

    /// True when an ignore option matches the goroutine. `ignore_top` looks at the top
    /// frame only, as goleak's IgnoreTopFunction does (`main.main` must not drop goroutine
    /// 1 when it is running pprof's writer).
    pub fn ignores(&self, g: &Goroutine) -> bool {
        g.frames
            .first()
            .is_some_and(|f| self.ignore_top.iter().any(|p| matches(p, &f.function)))
            || g.frames
                .iter()
                .any(|f| self.ignore_any.iter().any(|p| matches(p, &f.function)))
            || g.created_by
                .iter()
                .any(|f| self.ignore_creator.iter().any(|p| matches(p, &f.function)))
    }
}

/// A function name pattern: exact, or a prefix when it ends in `*`.
fn matches(pattern: &str, function: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => function.starts_with(prefix),
        None => function == pattern,
    }
}

/// Aggregates goroutines into groups as they stream in.
#[derive(Default)]
pub struct Grouper {
    options: GroupOptions,
    groups: rustc_hash::FxHashMap<Key, Group>,
    total: usize,
    ignored: usize,
    leaked: rustc_hash::FxHashMap<Key, bool>,
}

impl Grouper {
    pub fn new(options: GroupOptions) -> Grouper {
        Grouper {
            options,
            ..Grouper::default()
        }
    }

    pub fn add(&mut self, mut g: Goroutine) {
        let weight = g.weight.max(1);
        if self.options.ignores(&g) {
            self.ignored += weight;
            return;
        }
        self.total += weight;
        // Dumps hold hundreds of thousands of goroutines on a few dozen stacks: the key takes
        // the frames over instead of copying them, and a group copies them once, when new.
        let function_level = self.options.similarity == Similarity::Function;
        let key = if function_level {
            self.options.key(&g)
        } else {
            let labels = if self.options.similarity == Similarity::Exact {
                g.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            (
                std::mem::take(&mut g.state),
                std::mem::take(&mut g.frames),
                g.created_by.take(),
                labels,
            )
        };
        if g.leaked && !self.leaked.contains_key(&key) {
            self.leaked.insert(key.clone(), true);
        }
        if let Some(group) = self.groups.get_mut(&key) {
            group.absorb(g, weight);
            return;
        }
        let (frames, created_by) = if function_level {
            (std::mem::take(&mut g.frames), g.created_by.take())
        } else {
            (key.1.clone(), key.2.clone())
        };
        let group = Group {
            // The map holds the key; the group gets it when the grouping is done.
            key: Key::default(),
            count: 0,
            class: classify(&key.0),
            state: key.0.clone(),
            wait_minutes: None,
            top_frame: user_frame(&frames).cloned(),
            frames,
            created_by,
            labels: BTreeMap::new(),
            suspect: false,
            leaked: false,
            rule: None,
            reason: String::new(),
            ids: Vec::new(),
            ids_complete: true,
            source: Vec::new(),
            findings: Vec::new(),
        };
        self.groups.entry(key).or_insert(group).absorb(g, weight);
    }
}

impl Group {
    /// Counts one more goroutine (or a weighted record) into the group.
    fn absorb(&mut self, g: Goroutine, weight: usize) {
        self.count += weight;
        if self.ids.len() < MAX_IDS && g.weight <= 1 && g.id != 0 {
            self.ids.push(g.id);
        }
        self.ids_complete = self.ids.len() == self.count;
        if let Some(m) = g.wait_minutes {
            self.wait_minutes = Some(match self.wait_minutes {
                Some([lo, hi]) => [lo.min(m), hi.max(m)],
                None => [m, m],
            });
        }
        for (k, v) in g.labels {
            *self.labels.entry(k).or_default().entry(v).or_default() += weight;
        }
    }
}

impl Grouper {
    /// The groups, judged and sorted: suspects first, then by count and wait.
    pub fn finish(self, stats: &ParseStats) -> Analysis {
        let groups: Vec<Group> = self
            .groups
            .into_iter()
            .map(|(key, mut g)| {
                let context = Context {
                    leaked: self.leaked.contains_key(&key),
                    leak_checked: stats.leak_checked,
                    deadlock: stats
                        .crash
                        .as_ref()
                        .is_some_and(|c| c.kind == crate::race::CrashKind::Deadlock),
                };
                judge(&mut g, context);
                g.key = key;
                g
            })
            .collect();
        // Sorted through indices: a group is hundreds of bytes, and a dump can hold
        // hundreds of thousands of them.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&groups[a], &groups[b]);
            (b.suspect, b.count, b.wait_minutes.map(|w| w[1]))
                .cmp(&(a.suspect, a.count, a.wait_minutes.map(|w| w[1])))
                .then_with(|| a.frames.cmp(&b.frames))
        });
        let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
        let groups: Vec<Group> = order.iter().filter_map(|&i| slots[i].take()).collect();
        Analysis {
            total: self.total,
            ignored: self.ignored,
            truncated: stats.truncated,
            fatal: stats.fatal.clone(),
            crash: stats.crash.clone(),
            races: dedup_races(&stats.races),
            groups,
            max_id: stats.max_id,
        }
    }
}

/// Analyses a whole dump held in memory.
pub fn analyze(text: &str) -> Result<Analysis, crate::parse::ParseError> {
    let mut grouper = Grouper::default();
    let stats = crate::parse::parse_dump(text.as_bytes(), |g| grouper.add(g))?;
    Ok(grouper.finish(&stats))
}

/// Analyses a dump from any reader: text or protobuf, gzipped or not. A reader holding
/// several dumps gives the analysis of the last one.
pub fn analyze_reader(
    reader: impl std::io::BufRead + 'static,
) -> Result<Analysis, crate::parse::ParseError> {
    analyze_last(reader).map(|(analysis, _)| analysis)
}

/// Like [`analyze_reader`], with what the parser saw (every race report, not deduplicated;
/// the format; whether the input was cut).
pub fn analyze_last(
    reader: impl std::io::BufRead + 'static,
) -> Result<(Analysis, ParseStats), crate::parse::ParseError> {
    let reader = crate::parse::decompressing(reader)?;
    let mut grouper = Grouper::default();
    let mut last = 0;
    let stats = crate::parse::parse_dump(reader, |g| {
        if g.dump != last {
            last = g.dump;
            grouper = Grouper::default();
        }
        grouper.add(g)
    })?;
    let stats = stats.for_dump(stats.dumps.saturating_sub(1));
    Ok((grouper.finish(&stats), stats))
}

/// The first elements of the standard library's package paths (and `vendor`, where it
/// keeps golang.org/x copies). A module may well have a path without a dot (`myservice`,
/// `goguardlab/ch2range`), so "no dot means standard library" is not enough.
const STD_ROOTS: &[&str] = &[
    "archive",
    "bufio",
    "builtin",
    "bytes",
    "cmp",
    "compress",
    "container",
    "context",
    "crypto",
    "database",
    "debug",
    "embed",
    "encoding",
    "errors",
    "expvar",
    "flag",
    "fmt",
    "go",
    "hash",
    "html",
    "image",
    "index",
    "internal",
    "io",
    "iter",
    "log",
    "maps",
    "math",
    "mime",
    "net",
    "os",
    "path",
    "plugin",
    "reflect",
    "regexp",
    "runtime",
    "slices",
    "sort",
    "strconv",
    "strings",
    "structs",
    "sync",
    "syscall",
    "testing",
    "text",
    "time",
    "unicode",
    "unique",
    "unsafe",
    "vendor",
    "weak",
];

/// True for frames of the runtime and the standard library: their package path starts with
/// one of the standard library's roots (`runtime`, `sync`, `net/http`), unlike `main`,
/// `example.com/x` or a dotless module path such as `myservice/api`.
pub fn is_std_frame(f: &Frame) -> bool {
    let name = f.function.as_str();
    // `panic`, `goexit`: the runtime's frames without a package (GOTRACEBACK=system).
    if !name.contains('.') {
        return true;
    }
    let first = match name.find('/') {
        Some(i) => &name[..i],
        None => name.split('.').next().unwrap_or(""),
    };
    // A dot in the first element is a domain (go.opencensus.io): never the standard library.
    !first.contains('.') && STD_ROOTS.contains(&first)
}

/// The first frame a person should open.
pub fn user_frame(frames: &[Frame]) -> Option<&Frame> {
    frames.iter().find(|f| !is_std_frame(f)).or(frames.first())
}

/// What the dump says about a group besides its own goroutines.
#[derive(Clone, Copy)]
struct Context {
    /// Go's leak profile marked the group's goroutines leaked.
    leaked: bool,
    /// The dump is a leak profile (unmarked goroutines wait on something reachable).
    leak_checked: bool,
    /// The runtime stopped the program because every goroutine was blocked.
    deadlock: bool,
}

/// Decides whether a group looks leaked, why, and which rule describes it.
fn judge(g: &mut Group, context: Context) {
    let Context {
        leaked,
        leak_checked,
        deadlock,
    } = context;
    g.leaked = leaked;
    let blocked = matches!(g.class, StateClass::Channel | StateClass::Sync);
    // Go's leak detector found this channel reachable: many goroutines waiting on it, even
    // for long, is what an idle worker pool on a live queue looks like. (Lock waits stay
    // suspect: a mutex held for minutes is a bug even when reachable.)
    let live_queue = leak_checked && !leaked && g.class == StateClass::Channel;
    let long = g.wait_minutes.is_some_and(|w| w[1] >= SUSPECT_MINUTES);
    let healthy = is_healthy(g);
    // `chan send (durable)` in a synctest bubble, `chan receive (nil chan)`.
    let state = g.state.split(" (").next().unwrap_or(&g.state);
    // The check rule whose bug leaves a goroutine in this state (`select {}` blocks on
    // purpose: no rule).
    g.rule = if g.state == "select (no cases)" {
        None
    } else {
        goguard_check::registry::explaining(state).map(|r| r.code)
    };
    let place = g
        .top_frame
        .as_ref()
        .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
        .unwrap_or_default();
    if leaked {
        g.suspect = true;
        g.reason = format!(
            "marked leaked by Go's goroutine leak profile: blocked on {} at {place}",
            g.state
        );
    } else if deadlock && blocked && !healthy {
        // The runtime proved every goroutine blocked for ever: each blocked group is stuck,
        // whatever its size.
        g.suspect = true;
        g.reason = format!(
            "{} goroutine(s) blocked on {} at {place} when the runtime found every goroutine asleep (a deadlock)",
            g.count, g.state
        );
    } else if live_queue && !healthy && (long || g.count >= SUSPECT_COUNT) {
        g.reason = format!(
            "{} goroutine(s) wait on {} at {place}, but Go's leak profile found the channel still reachable: likely a worker pool on a live queue (goguard watch tells whether it grows)",
            g.count, g.state
        );
        g.rule = None;
    } else if blocked && !healthy && long {
        g.suspect = true;
        g.reason = format!(
            "{} goroutine(s) blocked on {} for up to {} minutes at {place}",
            g.count,
            g.state,
            g.wait_minutes.map_or(0, |w| w[1])
        );
    } else if blocked && !healthy && g.count >= SUSPECT_COUNT {
        g.suspect = true;
        g.reason = format!(
            "{} goroutines blocked on {} at the same place: {place}",
            g.count, g.state
        );
    } else if g.class == StateClass::Unknown && !healthy && g.count >= SUSPECT_COUNT {
        g.suspect = true;
        g.reason = format!(
            "{} goroutines parked at the same place: {place} (a debug=1 profile does not say on what; a debug=2 dump does)",
            g.count
        );
    } else {
        g.rule = if blocked && !healthy { g.rule } else { None };
        g.reason = if healthy {
            "a known long-lived goroutine (server loop, signal handler, runtime)".into()
        } else {
            String::new()
        };
    }
    if g.state == "select (no cases)" {
        g.rule = None;
    }
}

/// Goroutines that wait forever by design: accept loops, os/signal, the runtime's helpers.
fn is_healthy(g: &Group) -> bool {
    const HEALTHY: &[&str] = &[
        "net/http.(*Server).Serve",
        "net/http.(*conn).serve",
        "os/signal.signal_recv",
        "os/signal.loop",
        "runtime.ensureSigM",
        "testing.(*T).Run",
        "testing.tRunner",
        "testing.runTests",
    ];
    let is_healthy_loop = |f: &Frame| HEALTHY.iter().any(|h| f.function.starts_with(h));
    // A goroutine with no frames (its stack was not printed) is not known to be anything.
    if g.frames.is_empty() {
        return false;
    }
    // A server loop's own wait is healthy; a handler it runs that blocks in the program's
    // code is the program's: only the frames above the first program frame count.
    let mut above_program = g.frames.iter().take_while(|f| is_std_frame(f));
    let program_below = g.frames.iter().any(|f| !is_std_frame(f));
    above_program.any(is_healthy_loop)
        || !program_below && g.created_by.as_ref().is_none_or(is_std_frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> Frame {
        Frame {
            function: function.into(),
            file: "x.go".into(),
            line: 1,
        }
    }

    #[test]
    fn std_frames() {
        assert!(is_std_frame(&frame("runtime.gopark")));
        assert!(is_std_frame(&frame("net/http.(*conn).serve")));
        assert!(!is_std_frame(&frame("main.worker")));
        assert!(!is_std_frame(&frame("example.com/app/queue.(*Q).Pop")));
        // Module paths without a dot are the program's own code.
        assert!(!is_std_frame(&frame("goguardlab/ch2range.Buggy.func1")));
        assert!(!is_std_frame(&frame("myservice.handler")));
        assert!(is_std_frame(&frame("internal/poll.runtime_pollWait")));
        assert!(!is_std_frame(&frame("go.opencensus.io/trace.(*Span).End")));
        assert!(is_std_frame(&frame("go/ast.Inspect")));
        assert!(is_std_frame(&frame(
            "vendor/golang.org/x/net/http2.(*Framer).ReadFrame"
        )));
    }

    const TWO_LINES: &str = "goroutine 1 [chan send]{\"user\": \"a\"}:
main.f(...)
\t/x/main.go:10 +0x1
created by main.main in goroutine 1
\t/x/main.go:30 +0x1

goroutine 2 [chan send]{\"user\": \"b\"}:
main.f(...)
\t/x/main.go:10 +0x1
created by main.main in goroutine 1
\t/x/main.go:30 +0x1

goroutine 3 [chan send]{\"user\": \"a\"}:
main.f(...)
\t/x/main.go:12 +0x1
created by main.main in goroutine 1
\t/x/main.go:31 +0x1

goroutine 4 [chan send]:
main.g(...)
\t/x/main.go:40 +0x1
created by main.spawn in goroutine 1
\t/x/main.go:50 +0x1
";

    fn counts(options: GroupOptions) -> (Vec<usize>, usize) {
        let mut grouper = Grouper::new(options);
        let stats = crate::parse::parse_dump(TWO_LINES.as_bytes(), |g| grouper.add(g)).unwrap();
        let a = grouper.finish(&stats);
        let mut c: Vec<usize> = a.groups.iter().map(|g| g.count).collect();
        c.sort();
        (c, a.ignored)
    }

    #[test]
    fn similarity_levels_split_and_merge() {
        let with = |similarity| GroupOptions {
            similarity,
            ..GroupOptions::default()
        };
        assert_eq!(counts(with(Similarity::Lines)).0, [1, 1, 2]);
        assert_eq!(counts(with(Similarity::Function)).0, [1, 3]);
        assert_eq!(counts(with(Similarity::Exact)).0, [1, 1, 1, 1]);
    }

    #[test]
    fn ignore_options_leave_goroutines_out() {
        let top = GroupOptions {
            ignore_top: vec!["main.f".into()],
            ..GroupOptions::default()
        };
        assert_eq!(counts(top), (vec![1], 3));
        let creator = GroupOptions {
            ignore_creator: vec!["main.sp*".into()],
            ..GroupOptions::default()
        };
        assert_eq!(counts(creator), (vec![1, 2], 1));
        let any = GroupOptions {
            ignore_any: vec!["main.nothing".into()],
            ..GroupOptions::default()
        };
        assert_eq!(counts(any), (vec![1, 1, 2], 0));
    }

    #[test]
    fn classifies_states() {
        assert_eq!(classify("chan send"), StateClass::Channel);
        assert_eq!(classify("select (no cases)"), StateClass::Channel);
        assert_eq!(classify("sync.Mutex.Lock"), StateClass::Sync);
        assert_eq!(classify("semacquire"), StateClass::Sync);
        assert_eq!(classify("IO wait"), StateClass::IoWait);
        assert_eq!(classify("chan receive (nil chan)"), StateClass::Channel);
        assert_eq!(classify("sync.Cond.Wait"), StateClass::Sync);
        assert_eq!(classify("idle"), StateClass::Runtime);
        assert_eq!(classify("cleanup wait"), StateClass::Runtime);
    }
}

/// A group compared across two dumps.
#[derive(Debug, Clone, Serialize)]
pub struct DiffGroup {
    #[serde(flatten)]
    pub group: Group,
    pub before: usize,
    pub after: usize,
    pub delta: i64,
}

/// Matches the groups of two dumps (same state, frames and creator) and counts the change,
/// biggest growth first. Groups present in one dump only have 0 on the other side.
pub fn diff(before: &Analysis, after: &Analysis) -> Vec<DiffGroup> {
    diff_by(before, after, |g| g.key.clone())
}

/// Like [`diff`], for two dumps in different formats (a debug=1 or protobuf profile against
/// a debug=2 dump): they share neither the wait state (debug=1 does not print it), nor the
/// creator, nor the runtime's frames, so groups are matched on what both have: the
/// program's frames, function and line (or, for goroutines with none, the standard library
/// functions outside the runtime). Groups that fall together on one side are added up.
pub fn diff_across_formats(before: &Analysis, after: &Analysis) -> Vec<DiffGroup> {
    diff_by(before, after, portable_key)
}

/// What a group is in every format: see [`diff_across_formats`].
fn portable_key(g: &Group) -> Key {
    let program: Vec<Frame> = g
        .frames
        .iter()
        .filter(|f| !is_std_frame(f))
        .map(|f| Frame {
            function: f.function.clone(),
            file: String::new(),
            line: f.line,
        })
        .collect();
    let frames = if program.is_empty() {
        g.frames
            .iter()
            .filter(|f| !f.function.starts_with("runtime.") && f.function.contains('.'))
            .map(|f| Frame {
                function: f.function.clone(),
                file: String::new(),
                line: 0,
            })
            .collect()
    } else {
        program
    };
    (String::new(), frames, None, Vec::new())
}

fn diff_by(before: &Analysis, after: &Analysis, key: impl Fn(&Group) -> Key) -> Vec<DiffGroup> {
    let mut out: Vec<DiffGroup> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for g in &before.groups {
        match index.get(&key(g)) {
            Some(&i) => out[i].before += g.count,
            None => {
                index.insert(key(g), out.len());
                out.push(DiffGroup {
                    group: g.clone(),
                    before: g.count,
                    after: 0,
                    delta: 0,
                });
            }
        }
    }
    let mut seen_after: rustc_hash::FxHashSet<usize> = Default::default();
    for g in &after.groups {
        match index.get(&key(g)) {
            Some(&i) => {
                let d = &mut out[i];
                d.after += g.count;
                // The after side's group stands for both (its state, its current verdict);
                // the biggest when several fall together.
                if seen_after.insert(i) || g.count > d.group.count {
                    d.group = g.clone();
                }
            }
            None => {
                index.insert(key(g), out.len());
                seen_after.insert(out.len());
                out.push(DiffGroup {
                    group: g.clone(),
                    before: 0,
                    after: g.count,
                    delta: 0,
                });
            }
        }
    }
    for d in &mut out {
        d.delta = d.after as i64 - d.before as i64;
    }
    out.sort_by(|a, b| b.delta.cmp(&a.delta).then(b.after.cmp(&a.after)));
    out
}
