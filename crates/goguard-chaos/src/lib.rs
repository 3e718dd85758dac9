//! goguard's chaos tools (the reference's 5.3): a TCP fault proxy for a service's own
//! dependencies (Redis, MySQL, Kafka, any TCP), with toxiproxy's toxics switched on and off
//! at run time through an HTTP API, and drills that switch faults and measure how fast the
//! service shows them and recovers.
//!
//! The proxy is [`ProxySet`]: start it from [`ProxyConfig`]s, change it with
//! [`ProxySet::add_toxic`] or through [`ProxySet::admin`] (method, path, body in; status and
//! JSON out), which an HTTP server of your own can mount anywhere; [`admin::serve`] is the
//! standalone one. [`drill`] runs scenarios.

pub mod admin;
pub mod config;
pub mod drill;
pub mod http_client;
pub mod proxy;
pub mod toxic;

pub use config::ChaosConfig;
pub use proxy::{ProxyConfig, ProxySet};
pub use toxic::{Kind, Stream, Toxic, ToxicSpec};

/// What can go wrong with the proxies.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0}")]
    Config(String),
    #[error("proxy `{proxy}`: cannot listen on {addr}: {source}")]
    Listen {
        proxy: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("admin API: cannot listen on {addr}: {source}")]
    AdminListen {
        addr: String,
        source: std::io::Error,
    },
    #[error("no proxy named `{0}`")]
    NoProxy(String),
    #[error("proxy `{proxy}` has no toxic named `{toxic}`")]
    NoToxic { proxy: String, toxic: String },
    #[error("proxy `{proxy}` already has a toxic named `{toxic}`")]
    ToxicExists { proxy: String, toxic: String },
}
