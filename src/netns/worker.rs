//! [`Worker`]: one long-lived helper thread that does short jobs inside other network
//! namespaces (setns(2) there, the job, setns(2) back home), so that an owner who enters
//! many namespaces (a [`Host`](crate::network::Host) making a socket inside each container
//! it connects) starts one thread instead of one per namespace.
//!
//! The worker's thread is never a caller's thread: the caller's namespace never changes,
//! as with [`Netns::run`]. Between jobs the thread sits in its home namespace, so it keeps
//! no container's namespace alive. Should it fail to get back home, it stops, and later
//! jobs run on a short-lived thread each, as [`Netns::run`] does.

use std::os::fd::AsFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};

use super::handle::on_thread;
use super::Netns;
use crate::error::{Error, IntoErrno, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A helper thread living in namespace `home` that runs jobs inside other namespaces.
pub(crate) struct Worker {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

fn enter(ns: &Netns) -> Result<()> {
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
        what: "enter network namespace",
        errno: e.into_errno(),
    })
}

impl Worker {
    /// Starts the thread, in namespace `home`.
    pub(crate) fn start(home: &Netns) -> Result<Worker> {
        let (tx, rx) = channel::<Job>();
        let home = home.clone();
        let thread = std::thread::Builder::new()
            .name("netplumb-netns".into())
            .spawn(move || {
                if enter(&home).is_err() {
                    return;
                }
                for job in rx {
                    job();
                    if let Err(e) = enter(&home) {
                        log::warn!("namespace worker: cannot go back to {home}: {e}");
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("thread", e))?;
        Ok(Worker {
            jobs: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Runs `f` inside `ns` on the worker's thread and returns what it returns (a panic
    /// in `f` is raised again here); without a working thread, on a short-lived one.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = channel();
        let target = ns.clone();
        let job: Job = Box::new(move || {
            let r = enter(&target).map(|()| catch_unwind(AssertUnwindSafe(f)));
            let _ = tx.send(r);
        });
        let sent = match &*self.jobs.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(jobs) => jobs.send(job).map_err(|back| back.0),
            None => Err(job),
        };
        if let Err(job) = sent {
            // The thread has stopped: the job runs on a thread of its own.
            return on_thread(None, move || {
                job();
                Ok(())
            })
            .and_then(|()| unpack(rx.recv().ok()));
        }
        unpack(rx.recv().ok())
    }
}

type Outcome<T> = Result<std::thread::Result<T>>;

fn unpack<T>(r: Option<Outcome<T>>) -> Result<T> {
    match r {
        Some(Ok(Ok(v))) => Ok(v),
        Some(Ok(Err(panic))) => resume_unwind(panic),
        Some(Err(e)) => Err(e),
        None => Err(Error::io(
            "namespace worker",
            std::io::Error::other("the job was dropped"),
        )),
    }
}

impl Drop for Worker {
    /// Closes the queue and joins the thread.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Netns {
    /// [`Netns::run`] on `worker`'s thread instead of a new one (at once when `self` is the
    /// calling thread's namespace).
    pub(crate) fn run_on<T: Send + 'static>(
        &self,
        worker: &Worker,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        if self.is_current() {
            return Ok(f());
        }
        worker.run(self, f)
    }
}
