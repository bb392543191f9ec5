//! A gate that lets a few holders through at once and, when it is full, serves the waiter with the highest
//! priority first (the earliest among equals). Dropping a waiting `acquire` leaves the queue.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Waiters by priority (a longer duration first), then by arrival.
type Key = (Reverse<Duration>, u64);

#[derive(Debug)]
pub struct PriorityGate {
    state: Mutex<State>,
    changed: Notify,
    arrivals: AtomicU64,
}

#[derive(Debug)]
struct State {
    free: usize,
    waiting: BTreeSet<Key>,
}

/// Holds one place in the gate until dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    gate: &'a PriorityGate,
}

/// Takes a waiter out of the queue if its `acquire` is dropped before it got through.
struct Queued<'a> {
    gate: &'a PriorityGate,
    key: Key,
}

impl PriorityGate {
    /// A gate with `places` places (at least one).
    pub fn new(places: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: places.max(1),
                waiting: BTreeSet::new(),
            }),
            changed: Notify::new(),
            arrivals: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent after every statement: a panic elsewhere cannot leave it half changed.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a place; among waiters, a higher `priority` goes first.
    pub async fn acquire(&self, priority: Duration) -> Permit<'_> {
        let key = (Reverse(priority), self.arrivals.fetch_add(1, Ordering::Relaxed));
        self.state().waiting.insert(key);
        let queued = Queued { gate: self, key };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change between the look and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if state.free > 0 && state.waiting.first() == Some(&key) {
                    state.free -= 1;
                    state.waiting.remove(&key);
                    std::mem::forget(queued);
                    return Permit { gate: self };
                }
            }
            notified.await;
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.state().free += 1;
        self.gate.changed.notify_waiters();
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.gate.state().waiting.remove(&self.key);
        self.gate.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Lets spawned tasks run until they wait.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_full_gate_serves_the_highest_priority_then_the_earliest() {
        let gate = Arc::new(PriorityGate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.acquire(ms(0)).await;
        let mut tasks = Vec::new();
        for (name, priority) in [("low", 1), ("high", 3), ("mid", 2), ("mid-later", 2)] {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire(ms(priority)).await;
                order.lock().unwrap().push(name);
                settle().await;
            }));
            settle().await;
        }
        assert!(order.lock().unwrap().is_empty(), "nobody passes a full gate");
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["high", "mid", "mid-later", "low"]);
    }

    #[tokio::test]
    async fn places_are_shared_and_a_dropped_waiter_leaves_the_queue() {
        let gate = Arc::new(PriorityGate::new(2));
        let first = gate.acquire(ms(0)).await;
        let _second = gate.acquire(ms(0)).await;
        // The highest-priority waiter gives up: the one behind it must not be blocked by its place in the queue.
        let quitter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let _permit = gate.acquire(ms(9)).await;
            })
        };
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let _permit = gate.acquire(ms(1)).await;
            })
        };
        settle().await;
        quitter.abort();
        assert!(quitter.await.unwrap_err().is_cancelled());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter got the freed place")
            .unwrap();
    }
}
