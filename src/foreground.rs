//! Foreground work in flight in this process (a payments search), so that background work
//! that competes with it for the database — the retention run — can step aside: it starts its
//! next batch only when no search is running here, or after a short wait at most.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Held while foreground work runs.
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Mark foreground work as running until the guard is dropped.
pub fn enter() -> Busy {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    Busy(())
}

/// Foreground work running now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Wait until no foreground work runs, for at most `at_most`; how long it waited.
pub async fn quiet(at_most: Duration) -> Duration {
    let started = Instant::now();
    while in_flight() > 0 && started.elapsed() < at_most {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn foreground_guard_counts_and_quiet_waits_at_most() {
        let before = in_flight();
        let g = enter();
        assert!(in_flight() > before);
        let waited = quiet(Duration::from_millis(20)).await;
        assert!(waited >= Duration::from_millis(20));
        drop(g);
    }
}
