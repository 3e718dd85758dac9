//! goguard-trace: read the runtime's own observability output, `GODEBUG=schedtrace=N`
//! (with `scheddetail=1`) and `gctrace=1`, from logs where it is mixed with the program's
//! lines, into series; summarise them and name what looks wrong.

pub mod analyze;
pub mod html;
pub mod parse;

pub use analyze::{analyze, Anomaly, Report};
pub use parse::{parse_trace, GcCycle, SchedSample, Trace};
