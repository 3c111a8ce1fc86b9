//! [`Txn`]: the one undo journal. Every step that creates a kernel object, a firewall
//! element, a sysctl change or an address lease records its inverse right after it
//! succeeds; when a later step fails, or when an uncommitted transaction is dropped, the
//! inverses run in reverse order.
//!
//! The journal knows nothing of what it undoes: each layer records a closure (or an
//! [`Undo`] value) that carries everything it needs, namespace handles included, so a
//! rollback works even after the caller's handles are gone.

use std::fmt;

use crate::error::{Error, Result};

/// One recorded inverse.
pub trait Undo: Send {
    /// What the inverse does, as the equivalent command (`ip link del veth1234567`).
    fn describe(&self) -> String;
    /// Runs the inverse.
    fn undo(self: Box<Self>) -> Result<()>;
}

impl<U: Undo + ?Sized> Undo for Box<U> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn undo(self: Box<Self>) -> Result<()> {
        (*self).undo()
    }
}

struct FnUndo<F> {
    what: String,
    f: F,
}

impl<F: FnOnce() -> Result<()> + Send> Undo for FnUndo<F> {
    fn describe(&self) -> String {
        self.what.clone()
    }
    fn undo(self: Box<Self>) -> Result<()> {
        (self.f)()
    }
}

/// An undo journal.
///
/// ```
/// use netplumb::journal::Txn;
/// let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// {
///     let mut tx = Txn::new();
///     for step in ["bridge", "address", "veth"] {
///         let log = log.clone();
///         tx.record(format!("undo {step}"), move || {
///             log.lock().unwrap().push(step);
///             Ok(())
///         });
///     }
///     // dropped without commit: rolled back, last step first
/// }
/// assert_eq!(*log.lock().unwrap(), ["veth", "address", "bridge"]);
/// ```
#[derive(Default)]
#[must_use = "a transaction rolls back when dropped without commit"]
pub struct Txn {
    steps: Vec<Box<dyn Undo>>,
}

impl fmt::Debug for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| s.describe()))
            .finish()
    }
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Records an inverse that is a value, such as
    /// [`LinkDelIn`](crate::link::LinkDelIn), the undo of creating a link.
    pub fn push(&mut self, undo: impl Undo + 'static) {
        self.steps.push(Box::new(undo));
    }

    /// Records a closure as the inverse of the step that just succeeded.
    pub fn record(
        &mut self,
        what: impl Into<String>,
        f: impl FnOnce() -> Result<()> + Send + 'static,
    ) {
        self.steps.push(Box::new(FnUndo {
            what: what.into(),
            f,
        }));
    }

    /// How many inverses are recorded.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// What a rollback would do, in the order it would do it.
    pub fn pending(&self) -> Vec<String> {
        self.steps.iter().rev().map(|s| s.describe()).collect()
    }

    /// Keeps every change: forgets the inverses.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Runs every inverse, last first, going on after a failure. Returns the failures.
    pub fn rollback(mut self) -> Vec<Error> {
        self.run()
    }

    /// Rolls back because `original` happened, and returns the error to report: the
    /// original one when everything was undone, else [`Error::RolledBack`] carrying both.
    pub fn fail(self, original: Error) -> Error {
        if !self.steps.is_empty() {
            log::debug!("rollback of {} step(s) after: {original}", self.steps.len());
        }
        let undo = self.rollback();
        if undo.is_empty() {
            original
        } else {
            Error::RolledBack {
                original: Box::new(original),
                undo,
            }
        }
    }

    fn run(&mut self) -> Vec<Error> {
        let mut failures = Vec::new();
        while let Some(step) = self.steps.pop() {
            let what = step.describe();
            match step.undo() {
                Ok(()) => log::debug!("rollback: {what}: undone"),
                Err(e) => {
                    log::warn!("rollback: {what}: {e}");
                    failures.push(e);
                }
            }
        }
        failures
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.steps.is_empty() {
            let n = self.steps.len();
            let failures = self.run();
            log::debug!(
                "uncommitted transaction dropped: {n} step(s) undone, {} failed",
                failures.len()
            );
        }
    }
}

/// Runs `f` with a fresh transaction: commits on success, rolls back on error. Every
/// multi-step operation of netplumb (creating and removing a network, connecting and
/// disconnecting a container, on a bridge or an overlay) runs its steps through this.
///
/// ```
/// use netplumb::journal::{atomically, Txn};
/// let r: netplumb::Result<()> = atomically(|tx: &mut Txn| {
///     tx.record("noop", || Ok(()));
///     Err(netplumb::Error::invalid("demo", 1, "fails on purpose"))
/// });
/// assert!(r.unwrap_err().is_invalid());
/// ```
pub fn atomically<T>(f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
    let mut tx = Txn::new();
    match f(&mut tx) {
        Ok(v) => {
            tx.commit();
            Ok(v)
        }
        Err(e) => Err(tx.fail(e)),
    }
}
