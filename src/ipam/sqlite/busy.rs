//! Waiting for another process's transaction. SQLite's own busy timeout sleeps up to
//! 100 ms between tries, so under contention one process can wait for many others'
//! transactions in a row; this handler tries again after 50 µs to 1 ms, with jitter, until
//! a deadline set by the thread that is about to lock (handlers run on the calling thread).

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Lets the statements this thread runs next wait up to `timeout` for the database lock.
pub(super) fn wait_up_to(timeout: Duration) {
    DEADLINE.with(|d| d.set(Instant::now().checked_add(timeout)));
}

/// The busy handler: `true` to try again, `false` to give up with `SQLITE_BUSY`.
pub(super) fn on_busy(attempt: i32) -> bool {
    if DEADLINE
        .with(Cell::get)
        .map_or(true, |d| Instant::now() >= d)
    {
        return false;
    }
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos() % 50);
    let step = u64::from(attempt.clamp(0, 19).unsigned_abs()) + 1;
    std::thread::sleep(Duration::from_micros(step * 50 + u64::from(jitter)));
    true
}
