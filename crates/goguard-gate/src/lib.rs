//! goguard-gate: a stability gateway in front of a Go service (chapter 5 of the reference).
//!
//! Built so far: the configuration (model, defaults, validation with file, line and field),
//! the circuit breaker's state machine (5.1) and the GCRA rate limits (5.5), both driven by
//! the caller's clock, and the abnormal-user events (5.5) with their bounded queue and a
//! JSON-lines file sink. The tower layers, degrade and the proxy build on them.

pub mod breaker;
pub mod config;
pub mod events;
pub mod limit;

pub use config::{load, Config, ConfigError};
