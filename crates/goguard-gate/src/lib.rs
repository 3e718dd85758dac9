//! goguard-gate: a stability gateway in front of a Go service (chapter 5 of the reference).
//!
//! The protections are `tower` layers ([`layer`]) usable in any Rust service: the circuit
//! breaker of 5.1, the rate and concurrency limits of 5.5 (local or shared through Redis),
//! the cache of 5.2, and the traffic colouring and fault injection of 5.3.
//! The gateway ([`server::Gateway`]) stacks them per route in front of a pooled hyper client
//! ([`upstream`]), answers with the route's fallback when its breaker is open, reports
//! abnormal users ([`events`]), reloads its configuration atomically, and exposes Prometheus
//! metrics and a status API on its admin listener.

pub mod access_log;
pub mod breaker;
pub mod clock;
pub mod codec;
pub mod config;
pub mod config_center;
pub mod connections;
pub mod drain;
pub mod events;
pub mod gateway;
pub mod gray;
pub mod h1;
pub mod inbound;
pub mod layer;
pub mod limit;
pub mod metrics;
pub mod plain_h1;
pub mod proxy;
pub mod redis_link;
pub mod server;
pub mod shared_limits;
pub mod timer;
pub mod upstream;

pub use config::{load, Config, ConfigError};
pub use server::Gateway;
