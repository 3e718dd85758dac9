//! State cut per thread: what every request updates (a success count, an allowed count) is
//! kept in one slot per thread, each alone on its cache line(s), and summed when read. On one
//! shared atomic or lock, threads counting at once bounce its cache line between cores.
//!
//! A thread takes the next slot the first time it uses one, so the layers need to know
//! nothing of the threads of the service they run in; with more threads than slots, some
//! share a slot, which stays correct (the slots are atomics or locks), only slower.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Slots per value: at least the serving threads of a gateway on a large machine.
pub const SLOTS: usize = 16;

/// One thread's value, alone on its cache line(s).
#[derive(Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

thread_local! {
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The calling thread's slot, taken at its first call.
fn slot() -> usize {
    SLOT.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
        s.set(i);
        i
    })
}

/// A value per thread, shared by the clones.
pub struct PerThread<T>(Arc<[Padded<T>]>);

impl<T> Clone for PerThread<T> {
    fn clone(&self) -> Self {
        PerThread(self.0.clone())
    }
}

impl<T: Default> Default for PerThread<T> {
    fn default() -> Self {
        PerThread((0..SLOTS).map(|_| Padded::default()).collect())
    }
}

impl<T> PerThread<T> {
    /// The calling thread's value.
    pub fn mine(&self) -> &T {
        &self.0[slot()]
    }

    /// Every thread's value.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|p| &p.0)
    }
}

/// A counter each thread adds to on its own line.
#[derive(Clone, Default)]
pub struct Counter(PerThread<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.mine().fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_apart_and_add_up() {
        let c = Counter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.inc();
                    }
                });
            }
        });
        assert_eq!(c.get(), 4000);
    }
}
