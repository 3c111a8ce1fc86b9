//! Test-only fault injection: makes the N-th step of the next network operation on this
//! thread fail, so tests can check that every step's undo leaves nothing behind. Not part
//! of the stable API.

use std::cell::Cell;

use crate::error::{Error, Result};

thread_local! {
    static FAIL_AT: Cell<Option<usize>> = const { Cell::new(None) };
    static SEEN: Cell<usize> = const { Cell::new(0) };
}

/// Fails the `n`-th step (0-based) from now on this thread; `None` disarms.
pub fn fail_at(n: Option<usize>) {
    FAIL_AT.with(|f| f.set(n));
    SEEN.with(|s| s.set(0));
}

/// How many steps ran since the last [`fail_at`].
pub fn steps_seen() -> usize {
    SEEN.with(Cell::get)
}

/// A step named `what`: fails when it is the armed one.
pub(crate) fn point(what: &str) -> Result<()> {
    let n = SEEN.with(|s| {
        let n = s.get();
        s.set(n + 1);
        n
    });
    if FAIL_AT.with(Cell::get) == Some(n) {
        FAIL_AT.with(|f| f.set(None));
        return Err(Error::Busy(format!("injected fault at step {n} ({what})")));
    }
    Ok(())
}
