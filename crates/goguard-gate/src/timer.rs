//! A cheap timer for hyper's HTTP/1 header-read timeout (the slowloris defence).
//!
//! hyper arms that timer each time it starts reading a request head and drops it once the
//! head is in, so on a keep-alive connection it is set and cancelled once per request. With
//! tokio's timer each of those boxes a `Sleep`, enters it in the runtime's timer wheel and
//! takes it out again under the driver's lock: about 4% of the gateway's instructions per
//! request on `bench/gate`. Here a sleep polled before its deadline puts its waker in a slot
//! of its accept loop's list, and a task sweeps the list every [`TICK`] while it is not
//! empty, waking the sleeps whose deadline has passed. A deadline is met up to one tick
//! late, which is nothing next to header timeouts of seconds.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// How often the sleepers are looked at: how late a deadline may be met.
pub const TICK: Duration = Duration::from_millis(100);

/// A [`hyper::rt::Timer`] for one accept loop. Its sweeping task runs on the runtime of
/// the first sleep that waits, and only while some sleep waits.
#[derive(Clone, Default)]
pub struct CoarseTimer(Arc<Mutex<Sleepers>>);

#[derive(Default)]
struct Sleepers {
    /// A waiting sleep's deadline and waker (taken when woken), in the slot it was given.
    slots: Slab<(Instant, Option<Waker>)>,
    sweeping: bool,
}

impl CoarseTimer {
    pub fn new() -> CoarseTimer {
        CoarseTimer::default()
    }

    /// The sleeps waiting for their deadline.
    pub fn waiting(&self) -> usize {
        lock(&self.0).slots.len()
    }

    /// A sleep until `after` from now.
    pub fn sleep_for(&self, after: Duration) -> CoarseSleep {
        self.sleep_at(now() + after)
    }

    fn sleep_at(&self, deadline: Instant) -> CoarseSleep {
        CoarseSleep {
            sleepers: Arc::clone(&self.0),
            deadline,
            slot: None,
        }
    }

    /// `fut`, or `Err(Elapsed)` when it has not finished `after` from now (up to one tick
    /// later).
    pub fn timeout<F: Future>(&self, after: Duration, fut: F) -> Timeout<F> {
        Timeout {
            fut,
            sleep: self.sleep_for(after),
        }
    }
}

/// The time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// See [`CoarseTimer::timeout`].
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: CoarseSleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

fn lock(m: &Mutex<Sleepers>) -> MutexGuard<'_, Sleepers> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The runtime's clock (the real one, unless a test has paused it).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl hyper::rt::Timer for CoarseTimer {
    fn now(&self) -> Instant {
        now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_at(deadline))
    }
}

/// A sleep of a [`CoarseTimer`].
pub struct CoarseSleep {
    sleepers: Arc<Mutex<Sleepers>>,
    deadline: Instant,
    /// Its slot once it has waited, and the waker put there.
    slot: Option<(usize, Waker)>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if now() >= self.deadline {
            return Poll::Ready(());
        }
        let this = &mut *self;
        match &mut this.slot {
            Some((_, waker)) if waker.will_wake(cx.waker()) => {}
            Some((key, waker)) => {
                *waker = cx.waker().clone();
                let mut s = lock(&this.sleepers);
                s.slots[*key] = (this.deadline, Some(waker.clone()));
                ensure_sweeper(&mut s, &this.sleepers);
            }
            None => {
                let waker = cx.waker().clone();
                let mut s = lock(&this.sleepers);
                let key = s.slots.insert((this.deadline, Some(waker.clone())));
                ensure_sweeper(&mut s, &this.sleepers);
                this.slot = Some((key, waker));
            }
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some((key, _)) = self.slot.take() {
            lock(&self.sleepers).slots.remove(key);
        }
    }
}

/// Starts the sweeping task on the current runtime unless one runs.
fn ensure_sweeper(s: &mut Sleepers, sleepers: &Arc<Mutex<Sleepers>>) {
    if !s.sweeping {
        s.sweeping = true;
        tokio::spawn(sweep(Arc::clone(sleepers)));
    }
}

/// Wakes the sleeps past their deadline every tick, until none waits.
async fn sweep(sleepers: Arc<Mutex<Sleepers>>) {
    // Dropped with its runtime, mid-sleep: the next sleep to wait starts another.
    struct Dropped(Option<Arc<Mutex<Sleepers>>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(sleepers) = &self.0 {
                lock(sleepers).sweeping = false;
            }
        }
    }
    let mut dropped = Dropped(Some(Arc::clone(&sleepers)));
    loop {
        tokio::time::sleep(TICK).await;
        let t = now();
        let mut s = lock(&sleepers);
        if s.slots.is_empty() {
            // Under the lock, so that a sleep starting to wait now starts another.
            s.sweeping = false;
            dropped.0 = None;
            return;
        }
        for (_, (deadline, waker)) in s.slots.iter_mut() {
            if *deadline <= t {
                if let Some(w) = waker.take() {
                    w.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_within_a_tick_of_its_deadline_and_the_sweeper_stops_after() {
        let timer = CoarseTimer::new();
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_millis(250)).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took <= Duration::from_millis(250) + TICK,
            "{took:?}"
        );
        assert_eq!(timer.waiting(), 0);
        // With nothing waiting the sweeper ends; a new sleep starts another.
        tokio::time::sleep(TICK * 2).await;
        assert!(!lock(&timer.0).sweeping);
        timer.sleep(Duration::from_millis(150)).await;
        assert_eq!(timer.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_lets_a_quick_future_through_and_cuts_a_slow_one() {
        let timer = CoarseTimer::new();
        let quick = timer.timeout(Duration::from_secs(1), async { 7 });
        assert_eq!(quick.await, Ok(7));
        let start = tokio::time::Instant::now();
        let slow = timer.timeout(Duration::from_millis(200), std::future::pending::<()>());
        assert_eq!(slow.await, Err(Elapsed));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200) && took <= Duration::from_millis(200) + TICK);
        assert_eq!(timer.waiting(), 0);
    }

    #[tokio::test]
    async fn a_sleep_still_wakes_after_the_runtime_of_the_sweeper_is_gone() {
        let timer = CoarseTimer::new();
        // The first sweeper runs on a runtime that then shuts down with a sleep waiting.
        let other = timer.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async {
                let waiting = other.sleep_for(Duration::from_secs(3600));
                let _ = tokio::time::timeout(Duration::from_millis(1), waiting).await;
            });
        })
        .join()
        .unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(5), timer.sleep_for(TICK)).await;
        assert!(woke.is_ok(), "no sweeper left to wake it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_dropped_before_its_deadline_gives_its_slot_back() {
        let timer = CoarseTimer::new();
        let early = timer.sleep(Duration::from_secs(10));
        let later = timer.sleep(Duration::from_millis(300));
        // The first waits (it is polled once), then goes away; the second still wakes.
        let raced = tokio::time::timeout(Duration::from_millis(1), early).await;
        assert!(raced.is_err());
        assert_eq!(timer.waiting(), 0, "the dropped sleep left its slot");
        later.await;
        let mut again = timer.sleep(Duration::from_millis(100));
        let polled = tokio::time::timeout(Duration::from_millis(1), &mut again).await;
        assert!(polled.is_err());
        let keys: Vec<usize> = lock(&timer.0).slots.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [0], "the slot is reused");
    }
}
