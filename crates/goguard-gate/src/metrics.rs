//! The gateway's Prometheus metrics. Per-request figures (requests, latency, in flight) are
//! counted on the request path; the state of the protections (breakers, limits, targets,
//! sinks, Redis) is read from the running stack at each scrape, so the metrics can never
//! disagree with `/admin/status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::gateway::Stack;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteReason {
    pub route: String,
    pub reason: String,
}

/// The metrics registry and the request-path metrics.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub in_flight: Family<RouteLabel, Gauge>,
    pub rejections: Family<RouteReason, Counter>,
    pub reloads_ok: Arc<AtomicU64>,
    pub reloads_failed: Arc<AtomicU64>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl Metrics {
    pub fn new(stack: Arc<ArcSwap<Stack>>) -> Metrics {
        let mut registry = Registry::with_prefix("goguard_gate");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let in_flight = Family::<RouteLabel, Gauge>::default();
        let rejections = Family::<RouteReason, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its response head, by route",
            latency.clone(),
        );
        registry.register(
            "in_flight",
            "Requests in flight, by route",
            in_flight.clone(),
        );
        registry.register(
            "rejections",
            "Requests turned away by a protection, by route and reason (per_key, total, concurrency, breaker_open, limits_unavailable, body_too_large)",
            rejections.clone(),
        );
        let reloads_ok = Arc::new(AtomicU64::new(0));
        let reloads_failed = Arc::new(AtomicU64::new(0));
        registry.register_collector(Box::new(StackCollector {
            stack,
            reloads_ok: reloads_ok.clone(),
            reloads_failed: reloads_failed.clone(),
        }));
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            rejections,
            reloads_ok,
            reloads_failed,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}

#[derive(Debug)]
struct StackCollector {
    stack: Arc<ArcSwap<Stack>>,
    reloads_ok: Arc<AtomicU64>,
    reloads_failed: Arc<AtomicU64>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stack(version {})", self.version)
    }
}

/// One metric with several labelled values.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl IntoIterator<Item = (Vec<(&'a str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in values {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        v.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StackCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stack = self.stack.load();
        let routes = stack.route_states();
        let mut states = Vec::new();
        let mut transitions = Vec::new();
        for r in &routes {
            if let Some(b) = &r.breaker {
                for s in ["closed", "open", "half_open"] {
                    states.push((
                        vec![("route", r.name.clone()), ("state", s.to_string())],
                        ConstGauge::new(i64::from(b.state == s)),
                    ));
                }
                for (to, n) in [
                    ("open", b.transitions_to_open),
                    ("half_open", b.transitions_to_half_open),
                    ("closed", b.transitions_to_closed),
                ] {
                    transitions.push((
                        vec![("route", r.name.clone()), ("to", to.to_string())],
                        ConstCounter::new(n),
                    ));
                }
            }
        }
        family(
            &mut e,
            "breaker_state",
            "1 for the breaker's current state (closed, open, half_open), by route",
            MetricType::Gauge,
            states,
        )?;
        family(
            &mut e,
            "breaker_transitions",
            "Breaker state changes, by route and new state",
            MetricType::Counter,
            transitions,
        )?;
        let keys = routes.iter().filter_map(|r| {
            r.limit.as_ref().map(|l| {
                (
                    vec![("route", r.name.clone())],
                    ConstGauge::new(l.keys as i64),
                )
            })
        });
        family(
            &mut e,
            "limit_keys",
            "Keys remembered by the per-key limiter, by route",
            MetricType::Gauge,
            keys.collect::<Vec<_>>(),
        )?;
        let mut health = Vec::new();
        let mut ejected = Vec::new();
        for (name, targets) in stack.upstream_states() {
            for t in targets {
                let labels = vec![("upstream", name.clone()), ("target", t.addr.clone())];
                health.push((labels.clone(), ConstGauge::new(i64::from(t.healthy))));
                ejected.push((labels, ConstGauge::new(i64::from(t.ejected))));
            }
        }
        family(
            &mut e,
            "upstream_target_healthy",
            "1 when the target passes its health checks (or has none)",
            MetricType::Gauge,
            health,
        )?;
        family(
            &mut e,
            "upstream_target_ejected",
            "1 while the target is ejected for consecutive failures",
            MetricType::Gauge,
            ejected,
        )?;
        let (retries, refused) = stack.retries();
        family(
            &mut e,
            "retries",
            "Retries of idempotent requests",
            MetricType::Counter,
            [(vec![], ConstCounter::new(retries))],
        )?;
        family(
            &mut e,
            "retries_refused_by_budget",
            "Retries the retry budget refused",
            MetricType::Counter,
            [(vec![], ConstCounter::new(refused))],
        )?;
        family(
            &mut e,
            "event_sink_dropped",
            "Abnormal-user events dropped (queue full or sink failing)",
            MetricType::Counter,
            [(vec![], ConstCounter::new(stack.events_dropped()))],
        )?;
        if let Some((fallback, errors)) = stack.redis_state() {
            family(
                &mut e,
                "redis_fallback",
                "1 while Redis is unreachable and limits are local (or failing closed)",
                MetricType::Gauge,
                [(vec![], ConstGauge::new(i64::from(fallback)))],
            )?;
            family(
                &mut e,
                "redis_errors",
                "Shared-limit calls to Redis that failed or timed out",
                MetricType::Counter,
                [(vec![], ConstCounter::new(errors))],
            )?;
        }
        family(
            &mut e,
            "config_version",
            "The running configuration's version (1 at start, +1 per successful reload)",
            MetricType::Gauge,
            [(vec![], ConstGauge::new(stack.version as i64))],
        )?;
        family(
            &mut e,
            "config_reloads",
            "Reload attempts, by result",
            MetricType::Counter,
            [
                (
                    vec![("result", "ok".to_string())],
                    ConstCounter::new(self.reloads_ok.load(Ordering::Relaxed)),
                ),
                (
                    vec![("result", "rejected".to_string())],
                    ConstCounter::new(self.reloads_failed.load(Ordering::Relaxed)),
                ),
            ],
        )?;
        Ok(())
    }
}
