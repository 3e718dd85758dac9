//! goguard-gate: a stability gateway in front of a Go service (chapter 5 of the reference).
//!
//! This first part is the configuration: its model, defaults and validation, with errors
//! that name the file, the line and the field. The protections (breaker, limits, degrade,
//! events) and the proxy build on it.

pub mod config;

pub use config::{load, Config, ConfigError};
