//! Running the gateway: the client listener, the admin listener (metrics, status, reload),
//! reloads (file watch, `SIGHUP`, `POST /admin/reload`), and the graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{self, Config};
use crate::config_center::{Backoff, Etcd, Source};
use crate::connections::{worker, WORKER_LISTS};
use crate::drain::Drain;
use crate::events::{Event, Reason};
use crate::gateway::{handle, Running, Stack};
use crate::gray::{percent, Board, GcReading, Rollout};
use crate::layer::fault::ResetConnection;
use crate::layer::{full, Body};
use crate::metrics::Metrics;
use crate::plain_h1::{self, Prefixed, Served};
use crate::proxy::Peer;
use crate::timer::CoarseTimer;

/// A running gateway's shared state.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    stack: Arc<ArcSwap<Stack>>,
    metrics: Arc<Metrics>,
    /// The same stack (and the metrics) for each serving thread, each behind an `Arc` of
    /// its own: the threads take one per request without sharing a reference count.
    running: Box<[ArcSwap<Running>]>,
    /// The file reloads read; `None` for a gateway built from a value (tests).
    path: Option<PathBuf>,
    base: PathBuf,
    clock: SharedClock,
    reloading: tokio::sync::Mutex<()>,
    /// One clone per open client connection, on every serving thread: its count is the
    /// number open.
    open: Arc<()>,
    /// Open connections per client address.
    per_client: crate::connections::PerClient,
    /// The config centre the file names (`[source]`): new versions come from there.
    source: Option<Source>,
    /// Gray releases: the one in progress, and the record of the others.
    gray: Arc<Board>,
}

/// What `/admin/status` answers.
#[derive(serde::Serialize)]
struct Status {
    config_version: u64,
    /// Seconds since the Unix epoch.
    loaded_at: f64,
    config_file: Option<String>,
    routes: Vec<crate::gateway::RouteState>,
    upstreams: std::collections::BTreeMap<String, Vec<crate::upstream::TargetStatus>>,
    events_dropped: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_fallback: Option<bool>,
    /// The config centre's key, when the configuration comes from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_source: Option<String>,
    /// The gray release in progress, how the last one ended, and the steps of each.
    gray: crate::gray::BoardStatus,
}

impl Gateway {
    /// A gateway for a configuration file, on the system clock.
    pub fn from_file(path: &Path) -> Result<Gateway, String> {
        let config = config::load(path).map_err(|e| e.to_string())?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Gateway::new(
            config,
            Some(path.to_path_buf()),
            base,
            Arc::new(SystemClock),
        )
    }

    /// A gateway for a configuration value and a clock (tests drive a manual one).
    pub fn new(
        config: Config,
        path: Option<PathBuf>,
        base: PathBuf,
        clock: SharedClock,
    ) -> Result<Gateway, String> {
        check(&config)?;
        let source = config.source.clone();
        let gray = Arc::new(Board::default());
        let mut metrics = Metrics::new();
        let stack = Stack::build(config, None, &base, clock.clone(), &metrics.request)?;
        let stack = Arc::new(ArcSwap::from_pointee(stack));
        metrics.watch(stack.clone(), gray.clone());
        let metrics = Arc::new(metrics);
        let running = (0..WORKER_LISTS)
            .map(|_| {
                ArcSwap::from_pointee(Running {
                    stack: stack.load_full(),
                    metrics: metrics.clone(),
                    gray: None,
                })
            })
            .collect();
        Ok(Gateway(Arc::new(Inner {
            stack,
            metrics,
            running,
            path,
            base,
            clock,
            reloading: tokio::sync::Mutex::new(()),
            open: Arc::new(()),
            per_client: Default::default(),
            source,
            gray,
        })))
    }

    /// The running stack.
    pub fn stack(&self) -> Arc<Stack> {
        self.0.stack.load_full()
    }

    /// Reads the file again (or the config centre's key, when the file names one), validates
    /// it whole and swaps it in, or starts its gray release when the running configuration
    /// asks for one; the running configuration stays when anything is wrong. Returns the new
    /// version.
    pub async fn reload(&self, trigger: &str) -> Result<u64, String> {
        if let Some(source) = &self.0.source {
            let etcd = Etcd::new(source.clone());
            return match etcd.get().await {
                Ok((version, _)) => self.offer_text(source, version, trigger, false).await,
                Err(e) => Err(self.rejected(trigger, format!("the config centre: {e}"))),
            };
        }
        let Some(path) = &self.0.path else {
            return Err("this gateway has no configuration file".into());
        };
        // `load` validates, naming the file and line of each problem.
        match config::load(path) {
            Ok(c) => {
                let gray = self.stack().config.gray.clone();
                self.offer(c, trigger, gray).await
            }
            Err(e) => Err(self.rejected(trigger, e.to_string())),
        }
    }

    /// Swaps in a configuration value (validated like a file), at once.
    pub async fn apply(&self, config: Config, trigger: &str) -> Result<u64, String> {
        self.offer(config, trigger, None).await
    }

    /// A version of the config centre's key: parsed and validated (errors name the key and
    /// its revision), then rolled out through the gray path (the running configuration's
    /// `[gray]`, or its defaults), or swapped in `at_once` (the first version read replaces
    /// the file's stand-in).
    async fn offer_text(
        &self,
        source: &Source,
        version: crate::config_center::Version,
        trigger: &str,
        at_once: bool,
    ) -> Result<u64, String> {
        let Some(text) = version.value else {
            return Err(self.rejected(
                trigger,
                format!(
                    "{}: the key is absent; the running configuration stays",
                    source.name(version.revision)
                ),
            ));
        };
        let config = match config::parse(&text, &source.name(version.revision)) {
            Ok(c) => c,
            Err(e) => return Err(self.rejected(trigger, e.to_string())),
        };
        if config.source.is_some() {
            return Err(self.rejected(
                trigger,
                format!(
                    "{}: source: only the file read at start may name the config centre",
                    source.name(version.revision)
                ),
            ));
        }
        let gray = self.stack().config.gray.clone().unwrap_or_default();
        self.offer(config, trigger, (!at_once).then_some(gray))
            .await
    }

    /// A new configuration: swapped in at once, or rolled out by `gray`.
    async fn offer(
        &self,
        config: Config,
        trigger: &str,
        gray: Option<crate::gray::Rule>,
    ) -> Result<u64, String> {
        if let Err(e) = check(&config) {
            return Err(self.rejected(trigger, e));
        }
        match gray {
            None => self.swap(config, trigger).await,
            Some(rule) => self.start_gray(config, rule, trigger).await,
        }
    }

    /// Builds the stack for a validated configuration and swaps it in.
    async fn swap(&self, config: Config, trigger: &str) -> Result<u64, String> {
        let _one_at_a_time = self.0.reloading.lock().await;
        self.end_rollout("superseded", "a new version was applied at once");
        let current = self.0.stack.load_full();
        let next = Stack::build(
            config,
            Some(&current),
            &self.0.base,
            self.0.clock.clone(),
            &self.0.metrics.request,
        );
        match next {
            Ok(next) => {
                let version = next.version;
                self.publish(Arc::new(next), None);
                self.0.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(version, trigger, "configuration reloaded");
                Ok(version)
            }
            Err(e) => Err(self.rejected(trigger, e)),
        }
    }

    /// Makes `main` the running stack, with `gray` beside it, for every serving thread.
    fn publish(&self, main: Arc<Stack>, gray: Option<Arc<Rollout>>) {
        // Faults switched on at run time stay with their routes, and go with them.
        let mut names = main.route_names();
        if let Some(g) = &gray {
            names.extend(g.candidate.route_names());
        }
        for (route, f) in main.faults().keep_routes(&names) {
            let mut e = Event::gateway(Reason::named("fault_dropped"), &route);
            e.detail = format!(
                "fault {} ({}) dropped: the new configuration has no route `{route}`",
                f.id,
                f.rule.kind.as_str()
            );
            tracing::info!(fault = %f.id, route = %route, "fault dropped with its route");
            main.emit(e);
        }
        self.0.stack.store(main.clone());
        for r in self.0.running.iter() {
            r.store(Arc::new(Running {
                stack: main.clone(),
                metrics: self.0.metrics.clone(),
                gray: gray.clone(),
            }));
        }
    }

    /// Starts the gray release of a validated configuration: its stack beside the running
    /// one, serving the first share of the users. A release in progress is superseded.
    async fn start_gray(
        &self,
        config: Config,
        rule: crate::gray::Rule,
        trigger: &str,
    ) -> Result<u64, String> {
        let _one_at_a_time = self.0.reloading.lock().await;
        self.end_rollout("superseded", "a newer version arrived");
        let current = self.0.stack.load_full();
        let key = rule
            .key
            .clone()
            .or_else(|| current.config.events.user.clone())
            .unwrap_or(crate::config::KeySpec::ClientAddr);
        let candidate = match Stack::build_beside(
            config,
            &current,
            &self.0.base,
            self.0.clock.clone(),
            &self.0.metrics.request,
        ) {
            Ok(c) => Arc::new(c),
            Err(e) => return Err(self.rejected(trigger, e)),
        };
        let rollout = Arc::new(Rollout::new(
            rule.clone(),
            key,
            candidate,
            current.version,
            trigger,
            self.0.clock.now(),
        ));
        if let Some(url) = rule.gc_metrics.clone() {
            rollout.gc_start(scrape(url).await);
        }
        let version = rollout.version();
        *self
            .0
            .gray
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(rollout.clone());
        self.publish(current.clone(), Some(rollout.clone()));
        self.0.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.step_noted(
            &rollout,
            "gray_step",
            format!(
                "version {version} ({trigger}) serves {} of the users beside version {}",
                percent(rollout.share()),
                current.version
            ),
        );
        tokio::spawn(self.clone().drive(rollout));
        Ok(version)
    }

    /// A step of a rollout: a line of history, an event, a metric.
    fn step_noted(&self, rollout: &Rollout, reason: &'static str, line: String) {
        self.0.gray.steps.fetch_add(1, Ordering::Relaxed);
        self.0.gray.note(line.clone());
        let mut e = Event::gateway(Reason::named(reason), "-");
        e.detail = line;
        e.count = rollout.users().1 as u32;
        self.stack().emit(e);
    }

    /// Ends the rollout in progress, if any, keeping the running version (under the reload
    /// lock). Its outcome is recorded.
    fn end_rollout(&self, result: &'static str, reason: &str) {
        let Some(r) = self
            .0
            .gray
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        r.ended.store(true, Ordering::Relaxed);
        self.publish(self.0.stack.load_full(), None);
        self.finish(&r, result, reason);
    }

    /// Records how a rollout ended: the history, an event with the users it touched, the
    /// metrics.
    fn finish(&self, r: &Rollout, result: &'static str, reason: &str) {
        let outcome = r.outcome(result, reason);
        let line = format!(
            "version {} {}: {}; users on it: {} of {} ({}), {} of them with an error there",
            outcome.version,
            result.replace('_', " "),
            reason,
            outcome.users_on_new,
            outcome.users_seen,
            percent(outcome.share_of_users),
            outcome.users_with_errors_on_new,
        );
        match result {
            "promoted" => self.0.gray.promoted.fetch_add(1, Ordering::Relaxed),
            _ => self.0.gray.rolled_back.fetch_add(1, Ordering::Relaxed),
        };
        self.0.gray.note(line.clone());
        let mut e = Event::gateway(
            Reason::named(match result {
                "promoted" => "gray_promoted",
                "superseded" => "gray_superseded",
                "aborted" => "gray_aborted",
                _ => "gray_rolled_back",
            }),
            "-",
        );
        e.detail = line;
        e.count = outcome.users_on_new as u32;
        self.stack().emit(e);
        *self.0.gray.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    /// Runs a rollout's steps until it ends: checks the gates every `check_every`, steps up
    /// at each window's end while they hold, promotes after the last step, rolls back at
    /// the first failure.
    async fn drive(self, rollout: Arc<Rollout>) {
        let rule = rollout.rule.clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(rule.check_every) => {}
                () = rollout.poke.notified() => {}
            }
            if rollout.ended.load(Ordering::Relaxed) {
                return;
            }
            if rollout.paused.load(Ordering::Relaxed) {
                continue;
            }
            let failed = match rollout.traffic_gates() {
                Err(why) => Some(why),
                Ok(judged) => {
                    let now = self.0.clock.now();
                    let since = *rollout.since.lock().unwrap_or_else(|e| e.into_inner());
                    if !judged || now.saturating_duration_since(since) < rule.window {
                        continue;
                    }
                    let reading = match rule.gc_metrics.clone() {
                        Some(url) => Some(scrape(url).await),
                        None => None,
                    };
                    rollout.gc_gate(reading).err()
                }
            };
            let _one_at_a_time = self.0.reloading.lock().await;
            if rollout.ended.load(Ordering::Relaxed) || rollout.paused.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(why) = failed {
                self.end_rollout("rolled_back", &why);
                return;
            }
            let next = rollout.step.load(Ordering::Relaxed) as usize + 1;
            if next < rule.steps.len() {
                rollout.enter_step(next, self.0.clock.now());
                self.step_noted(
                    &rollout,
                    "gray_step",
                    format!(
                        "version {}: every gate held; {} of the users now",
                        rollout.version(),
                        percent(rollout.share())
                    ),
                );
            } else {
                self.promote(&rollout, "every gate held at every step");
                return;
            }
        }
    }

    /// Makes the rollout's version the running one for every user (under the reload lock).
    fn promote(&self, rollout: &Arc<Rollout>, reason: &str) {
        let mut current = self
            .0
            .gray
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, rollout)) {
            return;
        }
        *current = None;
        drop(current);
        rollout.ended.store(true, Ordering::Relaxed);
        self.publish(rollout.candidate.clone(), None);
        self.finish(rollout, "promoted", reason);
    }

    /// `POST /admin/gray/ACTION`: pause, resume, promote or abort the rollout in progress.
    pub async fn gray_command(&self, action: &str) -> Result<String, String> {
        let _one_at_a_time = self.0.reloading.lock().await;
        let Some(r) = self.0.gray.current() else {
            return Err("no gray release in progress".into());
        };
        let v = r.version();
        match action {
            "pause" => {
                r.paused.store(true, Ordering::Relaxed);
                self.0.gray.note(format!(
                    "version {v} paused at {} (admin)",
                    percent(r.share())
                ));
            }
            "resume" => {
                r.paused.store(false, Ordering::Relaxed);
                self.0.gray.note(format!(
                    "version {v} resumed at {} (admin)",
                    percent(r.share())
                ));
            }
            "promote" => self.promote(&r, "promoted by the admin API"),
            "abort" => self.end_rollout("aborted", "aborted by the admin API"),
            other => {
                return Err(format!(
                    "unknown action `{other}`: pause, resume, promote or abort"
                ))
            }
        }
        r.poke.notify_one();
        Ok(format!("{action}: version {v}"))
    }

    fn rejected(&self, trigger: &str, e: String) -> String {
        self.0
            .metrics
            .reloads_failed
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(trigger, error = %e, "configuration rejected; the running one stays");
        e
    }

    fn status(&self) -> Status {
        let s = self.stack();
        Status {
            config_version: s.version,
            loaded_at: s
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            config_file: self.0.path.as_ref().map(|p| p.display().to_string()),
            routes: s.route_states(),
            upstreams: s.upstream_states().into_iter().collect(),
            events_dropped: s.events_dropped(),
            redis_fallback: s.redis_state().map(|(f, _)| f),
            config_source: self
                .0
                .source
                .as_ref()
                .map(|src| format!("etcd:{}", src.key)),
            gray: self.0.gray.status(self.0.clock.now()),
        }
    }

    /// Serves clients on `listener` and the admin API on `admin` until `shutdown` resolves,
    /// then stops accepting, drains in-flight requests for up to `server.drain`, and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let admin_task = tokio::spawn(self.clone().serve_admin(admin));
        self.accept(listener, shutdown).await;
        admin_task.abort();
    }

    /// Serves client connections only (the admin listener is another thread's): for serving
    /// threads beside the one running [`Gateway::serve`], each on its own runtime, with its
    /// own socket on the listen address ([`listen_beside`]). Stops, and drains, like `serve`.
    pub async fn serve_worker(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        self.accept(listener, shutdown).await;
    }

    async fn accept(&self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let drain = Drain::new();
        let timer = CoarseTimer::new();
        let open = &self.0.open;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: pause rather than spin.
                            tracing::error!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let server = self.stack().config.server.clone();
                    // Past max_connections a client gets an explicit 503 rather than a
                    // silent wait in the kernel's backlog; so does one address holding more
                    // than its share (a trusted proxy speaks for many clients: not counted).
                    if Arc::strong_count(open) > server.max_connections as usize {
                        tokio::spawn(refuse(stream));
                        continue;
                    }
                    let per_client = if self.stack().trusted_peer(peer.ip()) {
                        None
                    } else {
                        match self.0.per_client.open(peer.ip(), server.per_client_limit()) {
                            Some(slot) => Some(slot),
                            None => {
                                tokio::spawn(refuse(stream));
                                continue;
                            }
                        }
                    };
                    let gw = self.clone();
                    let client_ip = peer.ip();
                    let peer = Peer::new(peer);
                    // The socket, for a reset fault once hyper has the connection.
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                    let service = {
                        let (gw, peer) = (gw.clone(), peer.clone());
                        hyper::service::service_fn(move |req: Request<Incoming>| {
                            let running = gw.0.running[worker()].load_full();
                            let h2 = req.version() == http::Version::HTTP_2;
                            let answer = handle(running, req, peer.clone());
                            async move {
                                let Ok(resp) = answer.await;
                                if resp.extensions().get::<ResetConnection>().is_none() {
                                    return Ok(resp);
                                }
                                // A reset fault: hyper closes an HTTP/1 connection on a
                                // service error without answering (with a RST, after
                                // SO_LINGER 0), and resets an HTTP/2 stream alone.
                                if !h2 {
                                    plain_h1::reset_on_close(fd);
                                }
                                Err(ResetConnection)
                            }
                        })
                    };
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(timer.clone())
                        .header_read_timeout(server.header_timeout)
                        .max_buf_size((server.max_header_bytes as usize).max(8192));
                    builder
                        .http2()
                        .timer(TokioTimer::new())
                        .max_header_list_size(server.max_header_bytes as u32)
                        .keep_alive_interval(Some(server.idle_timeout / 2));
                    // Plain HTTP/1.1 requests on our own loop; hyper takes the connection at
                    // the first request that is not (plain_h1.rs).
                    let closing = Arc::new(AtomicBool::new(false));
                    let plain = plain_h1::serve(
                        stream,
                        timer.clone(),
                        plain_h1::Limits {
                            header_timeout: server.header_timeout,
                            send_timeout: server.send_timeout,
                            max_head: server.max_header_bytes as usize,
                        },
                        closing.clone(),
                        move |req| {
                            let running = gw.0.running[worker()].load_full();
                            handle(running, req, peer.clone())
                        },
                    );
                    let hand_over = move |io: Prefixed| {
                        builder.serve_connection(TokioIo::new(io), service).into_owned()
                    };
                    let conn = drain.watch(Served::new(plain, closing, hand_over));
                    let slot = open.clone();
                    let gw = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            gw.hyper_refused(&*e, client_ip);
                        }
                        drop((slot, per_client));
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let deadline = self.stack().config.server.drain;
        tracing::info!(drain = ?deadline, "shutting down: draining in-flight requests");
        match tokio::time::timeout(deadline, drain.start()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!(drain = ?deadline, "drain deadline passed; closing the rest"),
        }
        self.stack().flush_access_log();
    }

    /// Counts and logs a request hyper refused itself (a head it could not parse: 400, or
    /// over its limit: 431), which never reached [`handle`].
    fn hyper_refused(&self, e: &(dyn std::error::Error + 'static), client: std::net::IpAddr) {
        let Some(e) = e.downcast_ref::<hyper::Error>() else {
            return;
        };
        let status = if e.is_parse_too_large() {
            431
        } else if e.is_parse() || e.is_parse_status() {
            400
        } else {
            return;
        };
        let running = self.0.running[worker()].load_full();
        running.stack.refused(&running.metrics, client, status);
    }

    async fn serve_admin(self, listener: TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin a core.
                    tracing::error!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let gw = self.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let gw = gw.clone();
                async move { Ok::<_, std::convert::Infallible>(gw.admin(req).await) }
            });
            tokio::spawn(async move {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let _ = b.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }

    async fn admin(&self, req: Request<Incoming>) -> Response<Body> {
        let json = json_answer;
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(full(self.0.metrics.encode()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            (&Method::GET, "/admin/status") => json(
                StatusCode::OK,
                serde_json::to_value(self.status()).unwrap_or_default(),
            ),
            (&Method::GET, "/admin/config") => {
                let mut c = (*self.stack().config).clone();
                if c.admin_token.is_some() {
                    c.admin_token = Some("(set)".into());
                }
                if let Some(colour) = c.colour.as_mut().filter(|c| c.key.is_some()) {
                    colour.key = Some("(set)".into());
                }
                json(StatusCode::OK, serde_json::to_value(c).unwrap_or_default())
            }
            (&Method::GET, "/healthz") => Response::new(full("ok\n")),
            (_, path) if path == "/admin/faults" || path.starts_with("/admin/faults/") => {
                if req.method() != Method::GET {
                    if let Some(refused) = self.refusal(&req, "changes over HTTP") {
                        return refused;
                    }
                }
                self.admin_faults(req).await
            }
            (
                &Method::POST,
                path @ ("/admin/reload"
                | "/admin/gray/pause"
                | "/admin/gray/resume"
                | "/admin/gray/promote"
                | "/admin/gray/abort"),
            ) => {
                let purpose =
                    "reloads and gray commands over HTTP (SIGHUP and file changes reload too)";
                if let Some(refused) = self.refusal(&req, purpose) {
                    return refused;
                }
                if let Some(action) = path.strip_prefix("/admin/gray/") {
                    return match self.gray_command(action).await {
                        Ok(done) => json(StatusCode::OK, serde_json::json!({"done": done})),
                        Err(e) => json(StatusCode::CONFLICT, serde_json::json!({"error": e})),
                    };
                }
                match self.reload("admin").await {
                    Ok(v) => json(StatusCode::OK, serde_json::json!({"config_version": v})),
                    Err(e) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        serde_json::json!({"error": e, "config_version": self.stack().version}),
                    ),
                }
            }
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "not found", "endpoints": ["GET /metrics", "GET /admin/status", "GET /admin/config", "GET /healthz", "POST /admin/reload", "POST /admin/gray/{pause,resume,promote,abort}", "GET /admin/faults", "POST /admin/faults", "DELETE /admin/faults", "DELETE /admin/faults/{id}"]}),
            ),
        }
    }

    /// The refusal of a mutating admin call without the admin token: 403 when no token is
    /// configured (saying it would allow `purpose`), 401 when it is missing or wrong; `None`
    /// when authorized.
    fn refusal<B>(&self, req: &Request<B>, purpose: &str) -> Option<Response<Body>> {
        let token = self.stack().config.admin_token.clone();
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (token, given) {
            (None, _) => Some(json_answer(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": format!("set admin_token in the configuration to allow {purpose}")}),
            )),
            (Some(t), Some(g)) if constant_time_eq(t.as_bytes(), g.as_bytes()) => None,
            _ => Some(json_answer(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "Authorization: Bearer <admin_token> required"}),
            )),
        }
    }

    /// `/admin/faults`: list (GET), switch on (POST), remove one (`DELETE /admin/faults/ID`)
    /// or all (DELETE). Mutating calls are authorized by the caller.
    async fn admin_faults(&self, req: Request<Incoming>) -> Response<Body> {
        use http_body_util::BodyExt;
        self.sweep_faults();
        let stack = self.stack();
        let id = req
            .uri()
            .path()
            .strip_prefix("/admin/faults/")
            .map(str::to_string);
        let error = |status, e: String| json_answer(status, serde_json::json!({ "error": e }));
        match (req.method().clone(), id) {
            (Method::GET, None) => {
                let faults: Vec<_> = stack
                    .faults()
                    .list()
                    .iter()
                    .map(|(route, f)| f.to_json(route))
                    .collect();
                json_answer(StatusCode::OK, serde_json::json!({ "faults": faults }))
            }
            (Method::POST, None) => {
                let limited = http_body_util::Limited::new(
                    req.into_body(),
                    crate::gateway::faults::MAX_REQUEST_BYTES,
                );
                let body = match limited.collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("the body could not be read (at most 128 KiB): {e}"),
                        )
                    }
                };
                let wanted = crate::gateway::faults::parse_request(
                    &body,
                    &stack.route_names(),
                    &stack.config.faults,
                    stack.config.colour.is_some(),
                );
                let w = match wanted {
                    Ok(w) => w,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                let (route, ttl) = (w.route.clone(), w.ttl);
                let fault = match stack.faults().add(w) {
                    Ok(f) => f,
                    Err(e) => return error(StatusCode::CONFLICT, e),
                };
                let shown = fault.to_json(&route);
                let mut e = Event::gateway(Reason::named("fault_added"), &route);
                e.detail = format!("fault {} on: {shown}", fault.id);
                stack.emit(e);
                tracing::info!(fault = %fault.id, route = %route, ttl = ?ttl, "fault switched on");
                // It ends by itself: checked by every request, and swept (with its event)
                // when its time is up.
                let gw = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ttl).await;
                    gw.sweep_faults();
                });
                json_answer(StatusCode::CREATED, shown)
            }
            (Method::DELETE, None) => {
                let gone = stack.faults().remove(|_, _| true);
                self.removed_events(&gone, "removed by the admin API (all)");
                json_answer(StatusCode::OK, serde_json::json!({ "removed": gone.len() }))
            }
            (Method::DELETE, Some(id)) => {
                let gone = stack.faults().remove(|_, f| f.id == id);
                if gone.is_empty() {
                    return error(StatusCode::NOT_FOUND, format!("no fault `{id}`"));
                }
                self.removed_events(&gone, "removed by the admin API");
                json_answer(StatusCode::OK, serde_json::json!({ "removed": id }))
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET, POST or DELETE /admin/faults; DELETE /admin/faults/{id}".into(),
            ),
        }
    }

    /// Removes the faults whose time is up, each with an event.
    fn sweep_faults(&self) {
        let stack = self.stack();
        for (route, f) in stack.faults().sweep() {
            let mut e = Event::gateway(Reason::named("fault_expired"), &route);
            e.detail = format!("fault {} ({}) expired", f.id, f.rule.kind.as_str());
            tracing::info!(fault = %f.id, route = %route, "fault expired");
            stack.emit(e);
        }
    }

    fn removed_events(&self, gone: &[(String, Arc<crate::layer::fault::Fault>)], why: &str) {
        let stack = self.stack();
        for (route, f) in gone {
            let mut e = Event::gateway(Reason::named("fault_removed"), route);
            e.detail = format!("fault {} ({}) {why}", f.id, f.rule.kind.as_str());
            tracing::info!(fault = %f.id, route = %route, "fault removed");
            stack.emit(e);
        }
    }

    /// Reloads when the file changes (polled every `every`: editors that replace the file by
    /// renaming another over it are seen too; `None` to not poll) and on `SIGHUP`, until
    /// the task is dropped.
    pub async fn watch(self, every: Option<Duration>) {
        if let Some(source) = self.0.source.clone() {
            // The file named the config centre: new versions come from there (SIGHUP and
            // POST /admin/reload read the key again), not from the file.
            let gw = self.clone();
            let follow = tokio::spawn(async move { gw.follow(source).await });
            let _stop_with_this_task = AbortOnDrop(follow);
            return self.watch_file(None).await;
        }
        self.watch_file(every).await
    }

    /// Follows the config centre's key: reads it, applies it when it differs from what
    /// runs, watches it from the next revision, and after any failure reads it again, after
    /// a pause that doubles up to 8 s. While etcd is away the last good configuration
    /// serves; its loss and its return are events.
    pub async fn follow(self, source: Source) {
        let mut etcd = Etcd::new(source.clone());
        let mut backoff = Backoff::default();
        let mut applied: Option<i64> = None;
        // Until a first version comes from etcd, the file's configuration stands in.
        let mut first = true;
        let mut lost = false;
        loop {
            let failure = match etcd.get().await {
                Err(e) => e,
                Ok((version, revision)) => {
                    if lost {
                        lost = false;
                        tracing::info!(key = %source.key, "config centre: reachable again");
                        self.stack().emit(Event::gateway(
                            Reason::named("config_center_recovered"),
                            "-",
                        ));
                    }
                    backoff.reset();
                    if applied != Some(version.revision) {
                        applied = Some(version.revision);
                        if self
                            .offer_text(&source, version, "etcd", first)
                            .await
                            .is_ok()
                        {
                            first = false;
                        }
                    }
                    match etcd.watch(revision + 1).await {
                        Err(e) => e,
                        Ok(mut watch) => loop {
                            match watch.next().await {
                                Ok(version) => {
                                    applied = Some(version.revision);
                                    if self
                                        .offer_text(&source, version, "etcd", first)
                                        .await
                                        .is_ok()
                                    {
                                        first = false;
                                    }
                                }
                                Err(e) => break e,
                            }
                        },
                    }
                }
            };
            if !lost {
                lost = true;
                tracing::warn!(key = %source.key, error = %failure, "config centre: unreachable; the running configuration stays");
                let mut e = Event::gateway(Reason::named("config_center_unavailable"), "-");
                e.detail = failure;
                self.stack().emit(e);
            }
            etcd.rotate();
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    async fn watch_file(self, every: Option<Duration>) {
        let Some(path) = self.0.path.clone() else {
            return;
        };
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut seen = stamp(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tick => {
                    let now = stamp(&path);
                    if now != seen {
                        seen = now;
                        let _ = self.reload("file").await;
                    }
                }
                () = hangup => {
                    seen = stamp(&path);
                    let _ = self.reload("SIGHUP").await;
                }
            }
        }
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the service's GC pause figures off the runtime (a blocking HTTP call).
async fn scrape(url: String) -> Result<GcReading, String> {
    tokio::task::spawn_blocking(move || GcReading::scrape(&url))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    )
    .await;
}

/// Validates a configuration value; the problems as `field: message` lines.
fn check(config: &Config) -> Result<(), String> {
    let problems = config::validate(config);
    if problems.is_empty() {
        return Ok(());
    }
    Err(problems
        .into_iter()
        .map(|(f, m)| format!("{}: {m}", f.join(".")))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A JSON answer of the admin API.
fn json_answer(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{v:#}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds both listeners of a configuration, naming the address that failed.
pub async fn bind(config: &Config) -> Result<(TcpListener, TcpListener), String> {
    bind_shared(config, false).await
}

/// [`bind`], with the client listener open to more sockets on its address when `shared`
/// (`SO_REUSEPORT`): each serving thread then listens on its own socket
/// ([`listen_beside`]) and the kernel spreads new connections across them evenly.
pub async fn bind_shared(
    config: &Config,
    shared: bool,
) -> Result<(TcpListener, TcpListener), String> {
    let listen = if shared {
        // A plain bind first: with SO_REUSEPORT alone, a second gateway started on the same
        // address would share the port with the first instead of failing.
        std::net::TcpListener::bind(config.listen)
            .and_then(|probe| probe.local_addr())
            .and_then(listen_reusable)
    } else {
        TcpListener::bind(config.listen).await
    }
    .map_err(|e| format!("cannot listen on {} (listen): {e}", config.listen))?;
    let admin = TcpListener::bind(config.admin)
        .await
        .map_err(|e| format!("cannot listen on {} (admin): {e}", config.admin))?;
    Ok((listen, admin))
}

/// Another socket on the address of a listener made by [`bind_shared`], for a serving
/// thread; call it on that thread's runtime.
pub fn listen_beside(addr: SocketAddr) -> Result<TcpListener, String> {
    listen_reusable(addr).map_err(|e| format!("cannot listen on {addr} (listen): {e}"))
}

fn listen_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
