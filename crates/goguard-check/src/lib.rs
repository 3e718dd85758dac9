//! goguard-check: static analysis of Go source for concurrency bugs.
//!
//! Each file is parsed once with tree-sitter-golang (Go 1.27 syntax); the files of a package are indexed
//! together; every selected rule runs over the same trees. See [`registry`] for the rules
//! and [`engine::check_paths`] for the entry point.

pub mod baseline;
pub mod buildtags;
pub mod cache;
pub mod callgraph;
pub mod cfg;
pub mod changed;
pub mod channels;
pub mod checker;
pub mod config;
pub mod dataflow;
pub mod diagnostic;
pub mod engine;
pub mod fix;
pub mod gomod;
pub mod output;
pub mod package;
pub mod paths;
pub mod registry;
pub mod resolve;
mod rules;
pub mod source;
pub mod summary;
pub mod suppress;
pub mod syntax;
pub mod testfail;

pub use diagnostic::{Diagnostic, Severity};
pub use engine::{check_paths, ConfigChoice, Options, Report};
pub use gomod::{GoVersion, ModuleInfo};
