//! goguard-dump: read Go goroutine dumps (`/debug/pprof/goroutine?debug=2`,
//! `runtime.Stack(buf, true)`, panic and SIGQUIT tracebacks), group goroutines whose stacks
//! are the same, classify what they wait on, and point at the likely leak.
//!
//! Parsing streams line by line; memory grows with the number of distinct stacks, not with
//! the number of goroutines.

pub mod analyze;
pub mod fetch;
pub mod html;
pub mod parse;
mod proto;
pub mod race;
pub mod source;
pub mod watch;

pub use analyze::{
    analyze, analyze_reader, diff, diff_across_formats, Analysis, DiffGroup, Group, StateClass,
};
pub use parse::{
    decompressing, for_each_line, parse_dump, DumpInfo, Frame, Goroutine, ParseError, ParseStats,
};
