//! Deferred link deletion ([`Host::defer_link_deletion`]): the [`Reaper`] thread.
//!
//! Deleting a veth returns only after the kernel has waited for an RCU barrier (~15–20 ms
//! here, whatever else the call did), and a request that deletes many links waits once
//! for all of them. With deferral on, a disconnect does everything else as before, then
//! takes the veth down (the container is cut off at once: no carrier, and a port that is
//! down forwards nothing) and puts it in the reaper's interface group; the reaper thread
//! deletes the whole group in one request while the caller goes on. Disconnects that come
//! while it waits land in the next group, so back-to-back disconnects share the barrier.
//!
//! What is pending is gone after [`Host::flush_link_deletions`], when deferral is turned
//! off, and when the [`Host`] is dropped. A process that dies first leaves down veths on
//! the bridge with no record: [`Host::gc`] deletes them (`GcReport::stray_links`).
//!
//! [`Host`]: crate::network::Host
//! [`Host::defer_link_deletion`]: crate::network::Host::defer_link_deletion
//! [`Host::flush_link_deletions`]: crate::network::Host::flush_link_deletions
//! [`Host::gc`]: crate::network::Host::gc

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::random;
use crate::error::{Error, Result, ResultExt};
use crate::link::{LinkDel, LinkSet};
use crate::netns::Netns;
use crate::rtnl::Rtnl;

/// Interface groups the reapers use: apart from the bulk deletion groups of
/// `disconnect_many` and the small numbers admins use. Two processes that pick the same
/// group only delete each other's pending links early.
const REAP_GROUP_BASE: u32 = 0x6e90_0000;

/// The reaper thread and what it shares with the disconnects.
pub(crate) struct Reaper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Work for the reaper, or the order to stop.
    work: Condvar,
    /// A batch was deleted.
    done: Condvar,
}

struct Pending {
    /// The group links are put in now.
    group: u32,
    /// Links put in `group` since it was last deleted.
    count: usize,
    /// A group is being deleted.
    deleting: bool,
    stop: bool,
    /// The first failure since the last flush.
    error: Option<Error>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn next_group(g: u32) -> u32 {
    REAP_GROUP_BASE + (g.wrapping_add(1) & 0xf_ffff)
}

impl Reaper {
    /// Starts the reaper of namespace `ns`.
    pub(crate) fn start(ns: &Netns) -> Result<Reaper> {
        let rtnl = Rtnl::open_in(ns)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                group: REAP_GROUP_BASE + (random::number() & 0xf_ffff),
                count: 0,
                deleting: false,
                stop: false,
                error: None,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netplumb-reaper".into())
            .spawn(move || reap(&s, rtnl))
            .map_err(|e| Error::io("thread", e))?;
        Ok(Reaper {
            shared,
            thread: Some(thread),
        })
    }

    /// Takes `links` (interface index, interface group) down and into the current group,
    /// for the reaper to delete. Links already gone are skipped. On failure the links are
    /// put back (up, in their groups) before the reaper can see them, so that the caller
    /// can roll back.
    pub(crate) fn defer(&self, rtnl: &mut Rtnl, links: &[(u32, u32)]) -> Result<()> {
        // Held throughout: the reaper cannot swap (and delete) the group meanwhile.
        let mut p = self.shared.lock();
        let reqs: Vec<LinkSet> = links
            .iter()
            .map(|&(i, _)| LinkSet::new(i).group(p.group).down())
            .collect();
        if let Err(e) = rtnl.execute_batch(&reqs).or_gone() {
            let back: Vec<LinkSet> = links
                .iter()
                .map(|&(i, g)| LinkSet::new(i).group(g).up())
                .collect();
            if let Err(b) = rtnl.execute_batch(&back) {
                log::warn!("putting links back after a failed deferral: {b}");
            }
            return Err(e);
        }
        p.count += links.len();
        drop(p);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Whether links wait to be deleted.
    pub(crate) fn pending(&self) -> bool {
        let p = self.shared.lock();
        p.count > 0 || p.deleting
    }

    /// Waits until every link deferred so far is deleted; returns the first failure
    /// since the last flush.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut p = self.shared.lock();
        while p.count > 0 || p.deleting {
            p = self.shared.done.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        match p.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.shared.lock();
        f.debug_struct("Reaper")
            .field("group", &p.group)
            .field("count", &p.count)
            .field("deleting", &p.deleting)
            .finish()
    }
}

impl Drop for Reaper {
    /// Deletes what is pending, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reaper thread: deletes the current group whenever it holds links, until stopped
/// with nothing left.
fn reap(s: &Shared, mut rtnl: Rtnl) {
    let mut p = s.lock();
    loop {
        while p.count == 0 && !p.stop {
            p = s.work.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        if p.count == 0 {
            break; // stopped, nothing left
        }
        let g = p.group;
        p.group = next_group(g);
        p.count = 0;
        p.deleting = true;
        drop(p);
        let r = rtnl.execute(&LinkDel::group(g));
        p = s.lock();
        p.deleting = false;
        if let Err(e) = r.or_gone() {
            log::warn!("deferred deletion of interface group {g}: {e}");
            p.error.get_or_insert(e);
        }
        s.done.notify_all();
    }
    drop(p);
    s.done.notify_all();
}
