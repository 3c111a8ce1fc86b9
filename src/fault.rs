//! Test-only fault injection: makes the N-th step of the next network operation on this
//! thread fail, so tests can check that every step's undo leaves nothing behind.
//!
//! The arming functions exist only with the feature `_fault-injection`, which is for the
//! crate's own tests: unstable, outside semver, never for production builds. The injected
//! failure is [`Error::Injected`]. Without the feature each step point is `Ok(())` and
//! compiles to nothing.

#[cfg(feature = "_fault-injection")]
use std::cell::Cell;

#[cfg(feature = "_fault-injection")]
use crate::error::Error;
use crate::error::Result;

#[cfg(feature = "_fault-injection")]
thread_local! {
    static FAIL_AT: Cell<Option<usize>> = const { Cell::new(None) };
    static SEEN: Cell<usize> = const { Cell::new(0) };
}

/// Fails the `n`-th step (0-based) from now on this thread; `None` disarms.
#[cfg(feature = "_fault-injection")]
pub fn fail_at(n: Option<usize>) {
    FAIL_AT.with(|f| f.set(n));
    SEEN.with(|s| s.set(0));
}

/// How many steps ran since the last [`fail_at`].
#[cfg(feature = "_fault-injection")]
pub fn steps_seen() -> usize {
    SEEN.with(Cell::get)
}

/// A step named `what`: fails when it is the armed one.
#[cfg(feature = "_fault-injection")]
pub(crate) fn point(what: &'static str) -> Result<()> {
    let n = SEEN.with(|s| {
        let n = s.get();
        s.set(n + 1);
        n
    });
    if FAIL_AT.with(Cell::get) == Some(n) {
        FAIL_AT.with(|f| f.set(None));
        return Err(Error::Injected { step: n, what });
    }
    Ok(())
}

/// A step named `what`: never fails without the feature `_fault-injection`.
#[cfg(not(feature = "_fault-injection"))]
#[inline(always)]
pub(crate) fn point(_what: &'static str) -> Result<()> {
    Ok(())
}
