//! The proxies: each listens on an address, forwards every connection to its upstream, and
//! applies its toxics to new and existing connections as they are added and removed.
//!
//! A connection is two pipes (client to upstream, upstream to client) and a supervisor. Each
//! pipe reads into a queue and writes from it, so latency delays each chunk from its arrival
//! without slowing the stream down; the toxics are read at every chunk, so a change applies
//! to data already in flight. The supervisor acts on what is not about data: `down` closes
//! the connection, `reset_peer` resets it, `timeout` closes it after its timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use crate::toxic::{Kind, Stream, Toxic, ToxicSpec};
use crate::ChaosError;

/// One proxy of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Its name in the API (`/proxies/{name}`).
    pub name: String,
    /// Where it listens: `IP:PORT` (port 0 picks one; [`ProxySet::listen_addr`] tells).
    pub listen: String,
    /// Where it forwards: `HOST:PORT`, resolved at each new connection.
    pub upstream: String,
}

/// The toxics of a proxy at one moment; replaced whole on each change.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    pub toxics: Vec<Arc<Toxic>>,
}

impl State {
    fn down(&self) -> bool {
        self.toxics.iter().any(|t| t.kind == Kind::Down)
    }
}

/// Counters of one proxy.
#[derive(Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub resets: AtomicU64,
    pub expired: AtomicU64,
}

pub(crate) struct Proxy {
    pub name: String,
    pub listen: SocketAddr,
    pub upstream: String,
    pub state: watch::Sender<Arc<State>>,
    pub counters: Counters,
    /// Whether the listener is open (false while `down`, or when re-binding failed).
    pub listening: std::sync::atomic::AtomicBool,
}

pub(crate) struct Inner {
    pub proxies: Vec<Arc<Proxy>>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
}

/// A set of running proxies. Cloning shares them; [`ProxySet::close`] stops them all.
#[derive(Clone)]
pub struct ProxySet {
    pub(crate) inner: Arc<Inner>,
}

impl ProxySet {
    /// Binds every proxy's listener (all or none: an error names the proxy and the
    /// address) and starts accepting. Needs a tokio runtime with time and IO enabled.
    pub async fn start(configs: Vec<ProxyConfig>) -> Result<ProxySet, ChaosError> {
        let mut seen = std::collections::HashSet::new();
        let mut bound = Vec::new();
        for c in configs {
            if !crate::toxic::valid_name(&c.name) {
                return Err(ChaosError::Config(format!(
                    "proxy name `{}`: must be 1 to 100 letters, digits, `-`, `_` or `.`",
                    c.name
                )));
            }
            if !seen.insert(c.name.clone()) {
                return Err(ChaosError::Config(format!(
                    "proxy `{}` is named twice",
                    c.name
                )));
            }
            crate::config::check_host_port(&c.upstream)
                .map_err(|e| ChaosError::Config(format!("proxy `{}`: upstream: {e}", c.name)))?;
            let listener = TcpListener::bind(&c.listen)
                .await
                .map_err(|e| ChaosError::Listen {
                    proxy: c.name.clone(),
                    addr: c.listen.clone(),
                    source: e,
                })?;
            let addr = listener.local_addr().map_err(|e| ChaosError::Listen {
                proxy: c.name.clone(),
                addr: c.listen.clone(),
                source: e,
            })?;
            bound.push((c, listener, addr));
        }
        let (stop, _) = watch::channel(false);
        let proxies: Vec<Arc<Proxy>> = bound
            .iter()
            .map(|(c, _, addr)| {
                Arc::new(Proxy {
                    name: c.name.clone(),
                    listen: *addr,
                    upstream: c.upstream.clone(),
                    state: watch::channel(Arc::new(State::default())).0,
                    counters: Counters::default(),
                    listening: true.into(),
                })
            })
            .collect();
        for ((_, listener, _), proxy) in bound.into_iter().zip(&proxies) {
            tokio::spawn(accept_loop(proxy.clone(), listener, stop.subscribe()));
        }
        Ok(ProxySet {
            inner: Arc::new(Inner {
                proxies,
                next_id: AtomicU64::new(1),
                stop,
            }),
        })
    }

    /// The address a proxy listens on (the real port when it was configured as 0).
    pub fn listen_addr(&self, name: &str) -> Option<SocketAddr> {
        self.proxy(name).map(|p| p.listen)
    }

    /// The names of the proxies, in the configuration's order.
    pub fn names(&self) -> Vec<String> {
        self.inner.proxies.iter().map(|p| p.name.clone()).collect()
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        let _ = self.inner.stop.send(true);
    }

    pub(crate) fn proxy(&self, name: &str) -> Option<&Arc<Proxy>> {
        self.inner.proxies.iter().find(|p| p.name == name)
    }

    /// Adds a toxic to a proxy; it applies at once to new and existing connections. With a
    /// `ttl`, it removes itself after it. Errors: no such proxy, or a toxic of that name
    /// already there.
    pub fn add_toxic(&self, proxy: &str, spec: ToxicSpec) -> Result<Arc<Toxic>, ChaosError> {
        let p = self
            .proxy(proxy)
            .ok_or_else(|| ChaosError::NoProxy(proxy.to_string()))?;
        let toxic = Arc::new(Toxic {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            name: spec.name,
            kind: spec.kind,
            stream: spec.stream,
            toxicity: spec.toxicity,
            ttl: spec.ttl,
            added: SystemTime::now(),
            added_at: Instant::now(),
        });
        let mut conflict = false;
        p.state.send_if_modified(|s| {
            if s.toxics.iter().any(|t| t.name == toxic.name) {
                conflict = true;
                return false;
            }
            let mut next = (**s).clone();
            next.toxics.push(toxic.clone());
            *s = Arc::new(next);
            true
        });
        if conflict {
            return Err(ChaosError::ToxicExists {
                proxy: proxy.to_string(),
                toxic: toxic.name.clone(),
            });
        }
        tracing::info!(proxy, toxic = %toxic.name, r#type = toxic.kind.type_name(), "toxic added");
        if let Some(ttl) = toxic.ttl {
            let (p, id) = (p.clone(), toxic.id);
            let mut stop = self.inner.stop.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(ttl) => {
                        if remove_where(&p, |t| t.id == id).is_some() {
                            p.counters.expired.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(proxy = %p.name, id, "toxic expired");
                        }
                    }
                    _ = stop.wait_for(|s| *s) => {}
                }
            });
        }
        Ok(toxic)
    }

    /// Removes a proxy's toxic by name.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<Arc<Toxic>, ChaosError> {
        let p = self
            .proxy(proxy)
            .ok_or_else(|| ChaosError::NoProxy(proxy.to_string()))?;
        let removed = remove_where(p, |t| t.name == toxic).ok_or_else(|| ChaosError::NoToxic {
            proxy: proxy.to_string(),
            toxic: toxic.to_string(),
        })?;
        tracing::info!(proxy, toxic, "toxic removed");
        Ok(removed)
    }

    /// The toxics of a proxy.
    pub fn toxics(&self, proxy: &str) -> Result<Vec<Arc<Toxic>>, ChaosError> {
        let p = self
            .proxy(proxy)
            .ok_or_else(|| ChaosError::NoProxy(proxy.to_string()))?;
        let toxics = p.state.borrow().toxics.clone();
        Ok(toxics)
    }

    /// Removes every toxic of every proxy (toxiproxy's reset); returns how many.
    pub fn reset(&self) -> usize {
        let mut n = 0;
        for p in &self.inner.proxies {
            p.state.send_if_modified(|s| {
                n += s.toxics.len();
                if s.toxics.is_empty() {
                    return false;
                }
                *s = Arc::new(State::default());
                true
            });
        }
        n
    }
}

fn remove_where(p: &Proxy, pred: impl Fn(&Toxic) -> bool) -> Option<Arc<Toxic>> {
    let mut removed = None;
    p.state.send_if_modified(|s| {
        let Some(i) = s.toxics.iter().position(|t| pred(t)) else {
            return false;
        };
        let mut next = (**s).clone();
        removed = Some(next.toxics.remove(i));
        *s = Arc::new(next);
        true
    });
    removed
}

/// Accepts while the proxy is not down; while it is, the listener is closed so that new
/// connections are refused, as a stopped server's would be, and opened again after.
async fn accept_loop(proxy: Arc<Proxy>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut state = proxy.state.subscribe();
    let mut listener = Some(listener);
    let for_connections = stop.clone();
    loop {
        let down = state.borrow_and_update().down();
        if down {
            listener = None;
        } else if listener.is_none() {
            match TcpListener::bind(proxy.listen).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(proxy = %proxy.name, addr = %proxy.listen, error = %e, "cannot listen again; retrying");
                }
            }
        }
        proxy.listening.store(listener.is_some(), Ordering::Relaxed);
        match &listener {
            Some(l) => tokio::select! {
                accepted = l.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(connection(proxy.clone(), client, for_connections.clone()));
                    }
                }
                _ = state.changed() => {}
                _ = stop.wait_for(|s| *s) => return,
            },
            None if !down => tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = state.changed() => {}
                _ = stop.wait_for(|s| *s) => return,
            },
            None => tokio::select! {
                _ = state.changed() => {}
                _ = stop.wait_for(|s| *s) => return,
            },
        }
    }
}

/// Whether each toxic applies to this connection (toxicity), decided once per toxic.
#[derive(Default)]
struct Dice(Mutex<HashMap<u64, bool>>);

impl Dice {
    fn applies(&self, t: &Toxic) -> bool {
        if t.toxicity >= 1.0 {
            return true;
        }
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(t.id)
            .or_insert_with(|| fastrand::f64() < t.toxicity)
    }
}

/// How a connection ends.
enum End {
    /// Both sides closed in turn (or a side failed): close what is left.
    Close,
    /// `reset_peer`: RST to the client.
    Reset,
}

async fn connection(proxy: Arc<Proxy>, client: TcpStream, mut stop: watch::Receiver<bool>) {
    let c = &proxy.counters;
    c.connections.fetch_add(1, Ordering::Relaxed);
    c.active.fetch_add(1, Ordering::Relaxed);
    let server = match tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(&proxy.upstream),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(proxy = %proxy.name, upstream = %proxy.upstream, error = %e, "upstream refused");
            c.upstream_errors.fetch_add(1, Ordering::Relaxed);
            c.active.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            c.upstream_errors.fetch_add(1, Ordering::Relaxed);
            c.active.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let client = Arc::new(client);
    let server = Arc::new(server);
    let dice = Arc::new(Dice::default());
    let (done_tx, mut done_rx) = mpsc::channel::<bool>(2);
    let pipes = [
        tokio::spawn(pipe(
            Stream::Upstream,
            client.clone(),
            server.clone(),
            proxy.clone(),
            dice.clone(),
            done_tx.clone(),
        )),
        tokio::spawn(pipe(
            Stream::Downstream,
            server.clone(),
            client.clone(),
            proxy.clone(),
            dice.clone(),
            done_tx,
        )),
    ];
    let mut state = proxy.state.subscribe();
    // When this connection first saw each toxic: its timers run from then.
    let mut seen: HashMap<u64, Instant> = HashMap::new();
    let mut finished = 0;
    let end = loop {
        let now = Instant::now();
        let snapshot = state.borrow_and_update().clone();
        let mut deadline: Option<(Instant, End)> = None;
        let mut close_now = false;
        for t in &snapshot.toxics {
            if !dice.applies(t) {
                continue;
            }
            let first = *seen.entry(t.id).or_insert(now);
            let at = match t.kind {
                Kind::Down => {
                    close_now = true;
                    continue;
                }
                Kind::ResetPeer { timeout } => (first + timeout, End::Reset),
                Kind::Timeout { timeout } if !timeout.is_zero() => (first + timeout, End::Close),
                _ => continue,
            };
            if deadline.as_ref().is_none_or(|(d, _)| at.0 < *d) {
                deadline = Some(at);
            }
        }
        if close_now {
            break End::Close;
        }
        let timer = async {
            match &deadline {
                Some((at, _)) => sleep_until((*at).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = state.changed() => {}
            _ = timer => break deadline.map_or(End::Close, |(_, e)| e),
            ok = done_rx.recv() => match ok {
                Some(true) => {
                    finished += 1;
                    if finished == 2 {
                        break End::Close;
                    }
                }
                _ => break End::Close,
            },
            _ = stop.wait_for(|s| *s) => break End::Close,
        }
    };
    if let End::Reset = end {
        let _ = client.set_zero_linger();
        c.resets.fetch_add(1, Ordering::Relaxed);
    }
    for p in &pipes {
        p.abort();
    }
    for p in pipes {
        let _ = p.await;
    }
    // The last references: the sockets close here (with RST after a zero linger).
    drop(client);
    drop(server);
    c.active.fetch_sub(1, Ordering::Relaxed);
}

/// A chunk read from one side, with when it arrived; `None` data is the end of the stream.
struct Chunk {
    data: Option<bytes::Bytes>,
    at: Instant,
}

/// One direction of a connection: reads `from` into a queue, writes the queue to `to`
/// through the toxics of `stream`. Reports on `done` whether it ended cleanly (the read side
/// closed and the close was passed on) or not (an error, or `limit_data` reached).
async fn pipe(
    stream: Stream,
    from: Arc<TcpStream>,
    to: Arc<TcpStream>,
    proxy: Arc<Proxy>,
    dice: Arc<Dice>,
    done: mpsc::Sender<bool>,
) {
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    // A task of its own, so that it keeps reading while the writer holds a chunk back; it
    // is aborted with the pipe (its socket must not outlive the connection).
    let reader = AbortOnDrop(tokio::spawn(read_loop(from, tx)));
    let ok = write_through_toxics(stream, rx, &to, &proxy, &dice).await;
    drop(reader);
    let _ = done.send(ok).await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads until the end of the stream (sent on as a chunk without data) or an error (the
/// sender is dropped without one, and the writer reports the failure).
async fn read_loop(from: Arc<TcpStream>, tx: mpsc::Sender<Chunk>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        match from.try_read(&mut buf) {
            Ok(0) => {
                let end = Chunk {
                    data: None,
                    at: Instant::now(),
                };
                let _ = tx.send(end).await;
                return;
            }
            Ok(n) => {
                let chunk = Chunk {
                    data: Some(bytes::Bytes::copy_from_slice(&buf[..n])),
                    at: Instant::now(),
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

async fn write_through_toxics(
    stream: Stream,
    mut rx: mpsc::Receiver<Chunk>,
    to: &TcpStream,
    proxy: &Proxy,
    dice: &Dice,
) -> bool {
    let state = proxy.state.subscribe();
    let counter = match stream {
        Stream::Upstream => &proxy.counters.bytes_up,
        Stream::Downstream => &proxy.counters.bytes_down,
    };
    let mut passed: HashMap<u64, u64> = HashMap::new();
    let mut last_due = Instant::now();
    while let Some(chunk) = rx.recv().await {
        let toxics = || -> Vec<Arc<Toxic>> {
            state
                .borrow()
                .toxics
                .iter()
                .filter(|t| t.stream == stream && dice.applies(t))
                .cloned()
                .collect()
        };
        let Some(mut data) = chunk.data else {
            let delay = toxics()
                .iter()
                .filter_map(|t| match t.kind {
                    Kind::SlowClose { delay } => Some(delay),
                    _ => None,
                })
                .max();
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            shutdown_write(to);
            return true;
        };
        // Latency: from the chunk's arrival, never reordering chunks.
        let mut due = chunk.at;
        for t in toxics() {
            if let Kind::Latency { latency, jitter } = t.kind {
                due += jittered(latency, jitter);
            }
        }
        due = due.max(last_due);
        last_due = due;
        sleep_until(due.into()).await;
        while !data.is_empty() {
            let now = toxics();
            if now.iter().any(|t| matches!(t.kind, Kind::Timeout { .. })) {
                // The black hole: swallowed.
                break;
            }
            let mut take = data.len();
            let mut limit_reached = false;
            for t in &now {
                if let Kind::LimitData { bytes } = t.kind {
                    let so_far = passed.entry(t.id).or_insert(0);
                    let left = bytes.saturating_sub(*so_far) as usize;
                    if left <= take {
                        take = left;
                        limit_reached = true;
                    }
                }
            }
            let rate = now
                .iter()
                .filter_map(|t| match t.kind {
                    Kind::Bandwidth { bytes_per_second } => Some(bytes_per_second),
                    _ => None,
                })
                .min();
            if let Some(rate) = rate {
                // Pieces of a tenth of a second's worth, so that a change of rate (or its
                // removal) applies within 100 ms.
                take = take.min(((rate / 10).max(1)) as usize);
            }
            let piece = data.split_to(take);
            if let Some(rate) = rate {
                // Before the write: by any time t, at most rate x t bytes have gone out.
                tokio::time::sleep(Duration::from_secs_f64(piece.len() as f64 / rate as f64)).await;
            }
            if write_all(to, &piece).await.is_err() {
                return false;
            }
            counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
            for t in &now {
                if let Kind::LimitData { .. } = t.kind {
                    *passed.entry(t.id).or_insert(0) += piece.len() as u64;
                }
            }
            if limit_reached {
                return false;
            }
        }
    }
    // The reader failed (its sender is gone without an end-of-stream chunk).
    false
}

fn jittered(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = jitter.as_secs_f64() * (fastrand::f64() * 2.0 - 1.0);
    Duration::from_secs_f64((latency.as_secs_f64() + j).max(0.0))
}

async fn write_all(to: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        to.writable().await?;
        match to.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Passes a half close on (FIN) while the other direction keeps flowing. The socket is
/// shared by both pipes, so tokio's `&mut` shutdown is not available.
fn shutdown_write(s: &TcpStream) {
    // SAFETY: the descriptor is open for as long as `s` is borrowed; shutdown(2) does not
    // close it or touch memory.
    unsafe {
        libc::shutdown(s.as_raw_fd(), libc::SHUT_WR);
    }
}
