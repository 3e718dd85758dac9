//! The gateway's Prometheus metrics. Per-request figures (requests, latency, in flight) are
//! counted on the request path; the state of the protections (breakers, limits, targets,
//! sinks, Redis) is read from the running stack at each scrape, so the metrics can never
//! disagree with `/admin/status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::gateway::Stack;
use crate::layer::MetricKind;

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

/// The metrics every request updates, by route. Every stack records into the same families
/// (a clone shares them).
#[derive(Clone, Default)]
pub struct RequestMetrics {
    pub requests: Family<RouteStatus, sharded::Counter>,
    pub latency: Family<RouteLabel, sharded::Histogram>,
    pub in_flight: Family<RouteLabel, sharded::Gauge>,
    pub rejections: Family<RouteReason, sharded::Counter>,
}

/// The metrics registry and the request-path metrics.
pub struct Metrics {
    registry: Registry,
    pub request: RequestMetrics,
    pub reloads_ok: Arc<AtomicU64>,
    pub reloads_failed: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The registry with the request metrics, made before the first stack (which records
    /// into them); [`Metrics::watch`] adds what is read from the running stack.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("goguard_gate");
        let request = RequestMetrics::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            request.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its response head, by route",
            request.latency.clone(),
        );
        registry.register(
            "in_flight",
            "Requests in flight, by route",
            request.in_flight.clone(),
        );
        registry.register(
            "rejections",
            "Requests turned away by a protection, by route and reason (per_key, total, concurrency, breaker_open, limits_unavailable, body_too_large)",
            request.rejections.clone(),
        );
        Metrics {
            registry,
            request,
            reloads_ok: Arc::new(AtomicU64::new(0)),
            reloads_failed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reads the state of the running stack (protections, upstreams, events, Redis,
    /// configuration) at each scrape.
    pub fn watch(&mut self, stack: Arc<ArcSwap<Stack>>, gray: Arc<crate::gray::Board>) {
        self.registry.register_collector(Box::new(StackCollector {
            stack,
            gray,
            reloads_ok: self.reloads_ok.clone(),
            reloads_failed: self.reloads_failed.clone(),
        }));
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
    gray: Arc<crate::gray::Board>,
    reloads_ok: Arc<AtomicU64>,
    reloads_failed: Arc<AtomicU64>,
}

impl std::fmt::Debug for crate::gray::Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Board")
    }
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
        // Each protection's metrics, whether or not a route has it.
        let (descs, samples) = stack.protection_metrics();
        for d in descs {
            let values = samples
                .iter()
                .filter(|(_, s)| s.metric == d.name)
                .map(|(route, s)| {
                    let mut labels = vec![("route", route.clone())];
                    labels.extend(s.labels.iter().cloned());
                    (labels, s.value)
                });
            match d.kind {
                MetricKind::Gauge => family(
                    &mut e,
                    d.name,
                    d.help,
                    MetricType::Gauge,
                    values.map(|(l, v)| (l, ConstGauge::new(v))),
                )?,
                MetricKind::Counter => family(
                    &mut e,
                    d.name,
                    d.help,
                    MetricType::Counter,
                    values.map(|(l, v)| (l, ConstCounter::new(v as u64))),
                )?,
            }
        }
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
        let rollout = self.gray.current();
        family(
            &mut e,
            "gray_share",
            "The share of users on the version being rolled out (0 when none is)",
            MetricType::Gauge,
            [(
                vec![],
                ConstGauge::new(rollout.as_ref().map_or(0.0, |r| r.share())),
            )],
        )?;
        family(
            &mut e,
            "gray_version",
            "The version being rolled out (0 when none is)",
            MetricType::Gauge,
            [(
                vec![],
                ConstGauge::new(rollout.as_ref().map_or(0, |r| r.version() as i64)),
            )],
        )?;
        family(
            &mut e,
            "gray_transitions",
            "Gray release steps (a share taken), promotions and rollbacks (aborts and superseded versions included)",
            MetricType::Counter,
            [("step", &self.gray.steps), ("promoted", &self.gray.promoted), ("rolled_back", &self.gray.rolled_back)]
                .map(|(to, n)| (vec![("to", to.to_string())], ConstCounter::new(n.load(Ordering::Relaxed)))),
        )?;
        let last = self
            .gray
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        family(
            &mut e,
            "gray_last_users_on_new",
            "Users the last ended rollout's version served (the users a rollback affected)",
            MetricType::Gauge,
            [(
                vec![],
                ConstGauge::new(last.as_ref().map_or(0, |o| o.users_on_new as i64)),
            )],
        )?;
        family(
            &mut e,
            "gray_last_share_of_users",
            "The share of the users seen during the last ended rollout that its version served",
            MetricType::Gauge,
            [(
                vec![],
                ConstGauge::new(last.as_ref().map_or(0.0, |o| o.share_of_users)),
            )],
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

/// Request-path metrics kept per serving thread ([`crate::connections::worker`]), each
/// thread on cache lines of its own, and summed when scraped. prometheus_client's histogram
/// takes a mutex on every observation and its counters share one atomic: on two threads
/// each request bounced those lines between the cores.
pub mod sharded {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
    use prometheus_client::metrics::{MetricType, TypedMetric};

    use crate::connections::{worker, WORKER_LISTS};
    use crate::layer::per_thread::Padded;

    /// A value per serving thread ([`worker`]), each alone on its cache line(s).
    fn shards<T: Default>() -> Arc<[Padded<T>]> {
        (0..WORKER_LISTS).map(|_| Padded::default()).collect()
    }

    /// A counter.
    #[derive(Clone)]
    pub struct Counter(Arc<[Padded<AtomicU64>]>);

    impl Default for Counter {
        fn default() -> Self {
            Counter(shards())
        }
    }

    impl Counter {
        pub fn inc(&self) {
            self.0[worker()].0.fetch_add(1, Ordering::Relaxed);
        }

        pub fn get(&self) -> u64 {
            self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
        }
    }

    impl std::fmt::Debug for Counter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counter({})", self.get())
        }
    }

    impl TypedMetric for Counter {
        const TYPE: MetricType = MetricType::Counter;
    }

    impl EncodeMetric for Counter {
        fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
            encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
        }

        fn metric_type(&self) -> MetricType {
            Self::TYPE
        }
    }

    /// A gauge that goes up and down by one.
    #[derive(Clone)]
    pub struct Gauge(Arc<[Padded<AtomicI64>]>);

    impl Default for Gauge {
        fn default() -> Self {
            Gauge(shards())
        }
    }

    impl Gauge {
        pub fn inc(&self) {
            self.0[worker()].0.fetch_add(1, Ordering::Relaxed);
        }

        /// Down by one (on any thread: only the sum means anything).
        pub fn dec(&self) {
            self.0[worker()].0.fetch_sub(1, Ordering::Relaxed);
        }

        pub fn get(&self) -> i64 {
            self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
        }
    }

    impl std::fmt::Debug for Gauge {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Gauge({})", self.get())
        }
    }

    impl TypedMetric for Gauge {
        const TYPE: MetricType = MetricType::Gauge;
    }

    impl EncodeMetric for Gauge {
        fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
            encoder.encode_gauge(&self.get())
        }

        fn metric_type(&self) -> MetricType {
            Self::TYPE
        }
    }

    /// Upper bounds of the latency buckets in seconds: 0.25 ms doubling to about 8 s.
    const BOUNDS: [f64; 16] = {
        let mut b = [0.0; 16];
        let mut i = 0;
        let mut v = 0.00025;
        while i < 16 {
            b[i] = v;
            v *= 2.0;
            i += 1;
        }
        b
    };

    #[derive(Default)]
    struct HistogramShard {
        /// Observations per bucket (not cumulative); the last is above every bound.
        buckets: [AtomicU64; 17],
        count: AtomicU64,
        sum_nanos: AtomicU64,
    }

    /// A latency histogram in seconds.
    #[derive(Clone)]
    pub struct Histogram(Arc<[Padded<HistogramShard>]>);

    impl Default for Histogram {
        fn default() -> Self {
            Histogram(shards())
        }
    }

    impl Histogram {
        pub fn observe(&self, d: Duration) {
            let secs = d.as_secs_f64();
            let i = BOUNDS
                .iter()
                .position(|&b| secs <= b)
                .unwrap_or(BOUNDS.len());
            let s = &self.0[worker()].0;
            s.buckets[i].fetch_add(1, Ordering::Relaxed);
            s.count.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            s.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        }

        /// The sum in seconds, the count, and each bucket's upper bound and count.
        pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
            let total = |f: &dyn Fn(&HistogramShard) -> u64| -> u64 {
                self.0.iter().map(|s| f(&s.0)).sum()
            };
            let sum = total(&|s| s.sum_nanos.load(Ordering::Relaxed)) as f64 / 1e9;
            let count = total(&|s| s.count.load(Ordering::Relaxed));
            let buckets = BOUNDS
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .enumerate()
                .map(|(i, b)| (b, total(&|s| s.buckets[i].load(Ordering::Relaxed))))
                .collect();
            (sum, count, buckets)
        }
    }

    impl std::fmt::Debug for Histogram {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let (sum, count, _) = self.snapshot();
            write!(f, "Histogram(sum {sum}, count {count})")
        }
    }

    impl TypedMetric for Histogram {
        const TYPE: MetricType = MetricType::Histogram;
    }

    impl EncodeMetric for Histogram {
        fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
            let (sum, count, buckets) = self.snapshot();
            encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
        }

        fn metric_type(&self) -> MetricType {
            Self::TYPE
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn shards_add_up_across_threads() {
            let c = Counter::default();
            let g = Gauge::default();
            let h = Histogram::default();
            std::thread::scope(|s| {
                for i in 0..4 {
                    let (c, g, h) = (&c, &g, &h);
                    s.spawn(move || {
                        crate::connections::set_worker(i);
                        for _ in 0..1000 {
                            c.inc();
                            g.inc();
                            h.observe(Duration::from_micros(100));
                        }
                        h.observe(Duration::from_secs(60));
                        g.dec();
                    });
                }
            });
            assert_eq!(c.get(), 4000);
            assert_eq!(g.get(), 4000 - 4);
            let (sum, count, buckets) = h.snapshot();
            assert_eq!(count, 4004);
            assert!((sum - (0.4 + 240.0)).abs() < 1e-6, "{sum}");
            assert_eq!(buckets[0], (0.00025, 4000));
            assert_eq!(buckets[16], (f64::INFINITY, 4));
            assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 4004);
        }
    }
}
