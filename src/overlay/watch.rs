//! [`OverlayWatch`]: a background thread that follows discovery for one overlay network
//! and reconciles the host's kernel state whenever the view changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::OverlayNetwork;
use super::discovery::{PeerDiscovery, PeerHost, PeerView};
use super::driver::{hold, Overlay};
use super::sync::Reconciler;
use crate::error::Result;
use crate::firewall::VxlanGuard;
use crate::ipam::Store;
use crate::netns::{Background, Netns, StopFlag};
use crate::rtnl::Rtnl;

/// How long one wait on discovery lasts: the bound on how late a stop is noticed.
const POLL: Duration = Duration::from_millis(200);
/// How often the kernel state is reconciled even when the view did not change (repairs
/// entries removed by hand, and a sync that found the network not yet set up here),
/// against the view last read: discovery is not asked again while its watch holds.
const RESYNC: Duration = Duration::from_secs(2);
/// How often the view is read again although the watch reported nothing: a safety net,
/// not the way changes arrive.
const REREAD: Duration = Duration::from_secs(60);
/// The longest pause after a failure before retrying.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<S: Store + 'static> Overlay<S> {
    /// Starts a background thread that follows discovery for `net`: it waits for the view
    /// to change and [`sync`](Overlay::sync)s, with its own handles in the host namespace,
    /// until the returned [`OverlayWatch`] is stopped or dropped. Failures are logged and
    /// retried.
    ///
    /// ```no_run
    /// # fn f(ov: &netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// let w = ov.watch(ov1)?;
    /// // ... other hosts join, publish, leave; this host's FDB and guard follow ...
    /// drop(w); // stops and joins the thread
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, net: &OverlayNetwork) -> Result<OverlayWatch> {
        net.validate()?;
        OverlayWatch::start(WatchCtx {
            netns: self.host.netns().clone(),
            me: self.me.clone(),
            net: net.clone(),
            discovery: self.discovery.clone(),
            lock: self.lock.clone(),
        })
    }
}

/// What the watcher thread needs: everything by value, nothing borrowed from the
/// [`Overlay`].
struct WatchCtx {
    netns: Netns,
    me: PeerHost,
    net: OverlayNetwork,
    discovery: Arc<dyn PeerDiscovery>,
    lock: Arc<Mutex<()>>,
}

/// A running watcher ([`Overlay::watch`]). [`stop`](Self::stop) it
/// or drop it: either returns once the thread has finished (within a fraction of a
/// second).
///
/// ```no_run
/// # fn f(ov: &netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
/// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
/// let w = ov.watch(ov1)?;
/// // ... containers come and go on other hosts; this host follows ...
/// println!("{} syncs", w.syncs());
/// w.stop();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OverlayWatch {
    network: String,
    syncs: Arc<AtomicU64>,
    thread: Background,
}

impl OverlayWatch {
    fn start(ctx: WatchCtx) -> Result<OverlayWatch> {
        let syncs = Arc::new(AtomicU64::new(0));
        let network = ctx.net.name.clone();
        let n = syncs.clone();
        let name = format!("overlay-{}", ctx.net.vxlan_id());
        let thread = Background::spawn(name, move |stop| Watcher::new(ctx, stop, n).run())?;
        Ok(OverlayWatch {
            network,
            syncs,
            thread,
        })
    }

    /// The network being watched.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// How many syncs completed so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.thread.halt();
    }
}

/// The thread's state: its own handles in the host namespace, opened (and reopened after
/// a failure) on demand.
struct Watcher {
    ctx: WatchCtx,
    stop: StopFlag,
    syncs: Arc<AtomicU64>,
    rtnl: Option<Rtnl>,
    guard: Option<VxlanGuard>,
}

impl Watcher {
    fn new(ctx: WatchCtx, stop: StopFlag, syncs: Arc<AtomicU64>) -> Self {
        Watcher {
            ctx,
            stop,
            syncs,
            rtnl: None,
            guard: None,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_set()
    }

    fn run(mut self) {
        let name = self.ctx.net.name.clone();
        let (mut seen, mut due, mut failures) = (0u64, true, 0u32);
        let (mut last, mut read) = (Instant::now(), Instant::now());
        let mut view: Option<PeerView> = None;
        while !self.stopped() {
            if due || last.elapsed() >= RESYNC {
                // A quiet tick reuses the view; a change takes it from what discovery
                // followed; every REREAD it is read afresh.
                let stale = read.elapsed() >= REREAD;
                let cached = view.as_ref().filter(|_| !due && !stale);
                let fresh = cached.is_none();
                match self.sync_once(cached, stale) {
                    Ok(v) => {
                        (seen, due, failures, last) = (v.revision, false, 0, Instant::now());
                        if stale {
                            read = last;
                        }
                        if fresh {
                            view = Some(v);
                        }
                        self.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failures += 1;
                        log::warn!("overlay {name}: sync failed ({failures} in a row): {e}");
                        // Fresh handles next time: the old ones may be what failed.
                        (self.rtnl, self.guard) = (None, None);
                        self.pause(backoff(failures));
                        continue;
                    }
                }
            }
            match self.ctx.discovery.wait(&name, seen, POLL) {
                Ok(Some(_)) => due = true,
                Ok(None) => {}
                Err(e) => {
                    log::warn!("overlay {name}: waiting on discovery failed: {e}");
                    self.pause(backoff(1));
                    due = true;
                }
            }
        }
        log::debug!("overlay {name}: watcher stopped");
    }

    /// One reconciliation under the overlay lock, against `cached`, else the view
    /// discovery followed, else (`reread`) one read now; returns the view it used.
    fn sync_once(&mut self, cached: Option<&PeerView>, reread: bool) -> Result<PeerView> {
        let rtnl = match self.rtnl.take() {
            Some(r) => r,
            None => Rtnl::open_in(&self.ctx.netns)?,
        };
        let rtnl = self.rtnl.insert(rtnl);
        let _held = hold(&self.ctx.lock);
        let (discovery, name) = (&self.ctx.discovery, &self.ctx.net.name);
        let view = match cached {
            Some(v) => v.clone(),
            None if reread => discovery.view(name)?,
            None => discovery.view_followed(name)?,
        };
        let report = Reconciler {
            rtnl,
            guard: &mut self.guard,
            netns: &self.ctx.netns,
            me: &self.ctx.me,
        }
        .apply(&self.ctx.net, &view)?;
        for e in &report.added {
            log::trace!("overlay {}: + {e}", self.ctx.net.name);
        }
        for e in &report.removed {
            log::trace!("overlay {}: - {e}", self.ctx.net.name);
        }
        Ok(view)
    }

    /// Sleeps for `d`, waking early when stopped.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// 100 ms doubling per failure in a row, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(failures.min(8))).min(MAX_BACKOFF)
}
