//! Leases: the calls that grant, renew and revoke one (`etcdctl lease …`), and
//! [`LeaseKeeper`], a lease kept alive by a background thread for as long as its holder
//! lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::kv::I64;
use super::reply::Streamed;
use super::{Etcd, EtcdError};
use crate::error::Result;

/// gRPC's NOT_FOUND, which the gateway sends for an unknown lease.
const NOT_FOUND: i64 = 5;

/// The shortest pause between two keep-alives.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Etcd {
    /// Grants a lease of `ttl` (whole seconds, at least 1) and returns its id
    /// (`etcdctl lease grant`). Keys put with it vanish when it expires or is revoked.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let lease = etcd.grant(Duration::from_secs(10))?;
    /// etcd.put("/hosts/a", "10.0.0.5", Some(lease))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn grant(&self, ttl: Duration) -> Result<i64> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let req = json!({ "TTL": secs.max(1).to_string() });
        let r: WireLease = self.call("lease grant", "/v3/lease/grant", &req)?;
        if !r.error.is_empty() {
            return Err(EtcdError::Server {
                op: "lease grant",
                code: 0,
                message: r.error,
            }
            .into());
        }
        Ok(r.id.0)
    }

    /// Renews lease `id` once (`etcdctl lease keep-alive --once`); returns its TTL, or
    /// `None` if it has expired or was revoked. [`super::LeaseKeeper`] does this in the
    /// background.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// # let lease = etcd.grant(Duration::from_secs(10))?;
    /// if etcd.keep_alive(lease)?.is_none() {
    ///     println!("lease {lease} is gone, and its keys with it");
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn keep_alive(&self, id: i64) -> Result<Option<Duration>> {
        let req = json!({ "ID": id.to_string() });
        // A streaming call: the one reply comes wrapped in {"result": …}.
        let r: Streamed<WireLease> = self.call("lease keep-alive", "/v3/lease/keepalive", &req)?;
        let r = r.into_result("lease keep-alive")?;
        Ok((r.ttl.0 > 0).then(|| Duration::from_secs(r.ttl.0 as u64)))
    }

    /// Revokes lease `id`, deleting its keys (`etcdctl lease revoke`). Revoking a lease
    /// that has already expired is not an error.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// # let lease = etcd.grant(Duration::from_secs(10))?;
    /// etcd.revoke(lease)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn revoke(&self, id: i64) -> Result<()> {
        let req = json!({ "ID": id.to_string() });
        match self.call::<Value>("lease revoke", "/v3/lease/revoke", &req) {
            Err(crate::Error::Etcd(EtcdError::Server {
                code: NOT_FOUND, ..
            })) => Ok(()),
            r => r.map(drop),
        }
    }
}

/// A lease grant's or keep-alive's reply.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireLease {
    #[serde(rename = "ID")]
    id: I64,
    #[serde(rename = "TTL")]
    ttl: I64,
    error: String,
}

/// A lease renewed every third of its TTL by a background thread.
///
/// Put keys with [`id`](LeaseKeeper::id) to make them live exactly as long as this
/// holder: [`revoke`](LeaseKeeper::revoke) deletes them at once; dropping the keeper
/// stops the renewals *without* revoking, so the keys vanish one TTL later, just as they
/// would if the process had crashed. The thread ends at once when idle, or right after
/// the renewal it is sending.
///
/// ```no_run
/// use std::time::Duration;
/// use netplumb::etcd::{Etcd, EtcdConfig, LeaseKeeper};
/// let etcd = Etcd::connect(EtcdConfig::new("127.0.0.1:2379")?)?;
/// let lease = LeaseKeeper::grant(&etcd, Duration::from_secs(10))?;
/// etcd.put("/hosts/host-a", "10.0.0.5", Some(lease.id()))?;
/// // … the key stays while this process runs …
/// lease.revoke()?; // and goes now
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct LeaseKeeper {
    etcd: Etcd,
    id: i64,
    ttl: Duration,
    alive: Arc<AtomicBool>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` (whole seconds, at least 1) and starts renewing it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let lease = netplumb::etcd::LeaseKeeper::grant(&etcd, Duration::from_secs(5))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn grant(etcd: &Etcd, ttl: Duration) -> Result<LeaseKeeper> {
        let id = etcd.grant(ttl)?;
        let ttl = Duration::from_secs(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .max(Duration::from_secs(1));
        let alive = Arc::new(AtomicBool::new(true));
        let (stop, stopped) = mpsc::channel();
        let thread = {
            let (etcd, alive) = (etcd.clone(), alive.clone());
            std::thread::Builder::new()
                .name(format!("etcd-lease-{id:x}"))
                .spawn(move || keep(&etcd, id, ttl, &alive, &stopped))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = etcd.revoke(id);
                return Err(crate::Error::io("etcd lease keeper thread", e));
            }
        };
        Ok(LeaseKeeper {
            etcd: etcd.clone(),
            id,
            ttl,
            alive,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The lease id, for [`Etcd::put`].
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL granted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// False once a renewal found the lease gone (it expired while etcd could not be
    /// reached, or someone revoked it): its keys are gone too.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Stops the renewals and revokes the lease, deleting its keys now.
    pub fn revoke(mut self) -> Result<()> {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.etcd.revoke(self.id)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which ends; the lease runs out by itself.
        self.stop.take();
    }
}

/// The keeper thread: renew every third of the TTL until told to stop or the lease is gone.
fn keep(etcd: &Etcd, id: i64, ttl: Duration, alive: &AtomicBool, stopped: &mpsc::Receiver<()>) {
    let mut interval = (ttl / 3).max(MIN_INTERVAL);
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        match etcd.keep_alive(id) {
            Ok(Some(t)) => interval = (t / 3).max(MIN_INTERVAL),
            Ok(None) => {
                log::warn!("etcd lease {id:x} expired or was revoked; its keys are gone");
                alive.store(false, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                // Try again sooner: two more misses and the lease is lost.
                log::warn!("etcd lease {id:x}: keep-alive failed: {e}");
                interval = (ttl / 6).max(MIN_INTERVAL);
            }
        }
    }
}
