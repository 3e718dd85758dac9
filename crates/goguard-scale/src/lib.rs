//! goguard-scale: scaling decisions for a Go service (5.4 of the reference).
//!
//! Every `every` (15 s) the reference's tree is evaluated on figures read from a Prometheus
//! server ([`prometheus`]) or a goguard gateway ([`gateway`]): CPU > 75% and queue > 200 ->
//! connection-pool use > 90% ? add 2 instances : add a core. The recommendation goes
//! through the stabilisation of Kubernetes' HPA ([`decide`]: tolerance, windows, policies,
//! cooldown); an action goes to a hook ([`hook`]: a command or a webhook); within a minute
//! the scaler checks that p95 came under 200 ms ([`scaler`]). Every decision and
//! verification is logged, kept on the [`board`] and served by [`admin`].

pub mod admin;
pub mod board;
pub mod config;
pub mod decide;
pub mod gateway;
pub mod hook;
pub mod http;
pub mod prometheus;
pub mod reading;
pub mod scaler;

pub use board::{Board, Decision, Verdict, Verification};
pub use config::{load, parse, Config, ConfigError};
pub use decide::{Action, Size};
pub use reading::Reading;
pub use scaler::Scaler;

/// A number as people write it: `2`, `0.75`, `2.5` (at most 3 decimals, no trailing zeros).
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
