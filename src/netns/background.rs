//! [`Background`]: a long-lived thread that runs until it is told to stop, and is joined
//! when stopped or dropped (the watchers of the firewall and of overlay networks, the
//! overlay agent).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// The stop flag a background thread polls: set once, when it must return.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// True once the thread has been told to stop.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running background thread; setting its flag and joining it is [`halt`], which
/// dropping it does too.
///
/// [`halt`]: Background::halt
pub(crate) struct Background {
    name: String,
    stop: StopFlag,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("name", &self.name)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Background {
    /// Runs `body` on a thread named `name`; `body` returns once its flag is set.
    pub(crate) fn spawn(
        name: impl Into<String>,
        body: impl FnOnce(StopFlag) + Send + 'static,
    ) -> Result<Background> {
        let name = name.into();
        let stop = StopFlag::default();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || body(flag))
            .map_err(|e| Error::io(format!("{name} thread"), e))?;
        Ok(Background {
            name,
            stop,
            thread: Some(thread),
        })
    }

    /// Tells the thread to stop and waits for it (a panic of it is logged). Idempotent.
    pub(crate) fn halt(&mut self) {
        self.stop.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("thread {} panicked", self.name);
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn halt_stops_and_joins_the_thread() {
        let rounds = Arc::new(AtomicU64::new(0));
        let r = rounds.clone();
        let mut bg = Background::spawn("bg-test", move |stop| {
            while !stop.is_set() {
                r.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .unwrap();
        while rounds.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        bg.halt();
        let after = rounds.load(Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(
            rounds.load(Ordering::Relaxed),
            after,
            "still running after halt"
        );
        bg.halt(); // idempotent
    }
}
