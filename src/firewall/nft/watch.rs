//! [`FirewallWatch`]: notices, from nf_tables change notifications, that another process
//! deleted something of ours (`nft flush ruleset`, a firewalld reload, `nft delete table`,
//! `iptables -F` with iptables-nft), and runs a repair once things are quiet.
//!
//! The watcher joins nfnetlink's `NFNLGRP_NFTABLES` multicast group on a socket in the
//! watched namespace (what `nft monitor` reads). The kernel ends the notifications of
//! each transaction with `NFT_MSG_NEWGEN`, which names the thread that made it: a
//! transaction that deleted a table, chain, rule, set or element of a watched table
//! counts as damage unless one of this process's own netplumb writes made it (nf_tables
//! batches are noted by thread, `iptables-restore` runs by child pid), since those are
//! the library's own deliberate changes.
//!
//! Damage starts a quiet period (the debounce); every further damage restarts it; when it
//! ends (or after ten debounces of continuous damage), the repair runs once on the
//! watcher's thread. A receive queue that overflowed
//! (events lost) counts as damage too. iptables-legacy changes send no notifications at
//! all: with that backend, repair on a timer instead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Errno, Error, Result};
use crate::firewall::writers::is_ours;
use crate::netns::{Background, Netns, StopFlag};
use crate::socket::Socket;
use crate::wire::nft::{self, msg_type};
use crate::wire::parse::Attrs;
use crate::wire::Messages;

use crate::wire::nft::{
    NFNLGRP_NFTABLES, NFTA_GEN_PROC_PID, NFT_MSG_DELFLOWTABLE, NFT_MSG_DELOBJ, NFT_MSG_NEWGEN,
};

/// How often a waiting watcher looks at its stop flag.
const TICK: Duration = Duration::from_millis(100);
/// What a [`FirewallWatch`] has seen and done so far.
///
/// ```
/// use netplumb::firewall::WatchStats;
/// let s = WatchStats::default();
/// assert_eq!((s.damage, s.runs, s.repairs), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStats {
    /// Transactions of other processes that deleted something of ours (and overflows).
    pub damage: u64,
    /// Repairs run.
    pub runs: u64,
    /// Repairs that restored something.
    pub repairs: u64,
    /// Repairs that failed.
    pub errors: u64,
    /// The last failure, as text.
    pub last_error: Option<String>,
}

/// The repair a [`FirewallWatch`] runs: `Ok(true)` when it restored something.
///
/// ```
/// let repair: netplumb::firewall::RepairFn = Box::new(|| Ok(false));
/// ```
pub type RepairFn = Box<dyn FnMut() -> Result<bool> + Send>;

/// Watches nf_tables change notifications of one namespace and runs a repair (debounced)
/// after another process deleted something in the watched tables. [`stop`](Self::stop)
/// and `Drop` end the watcher's thread within about 100 ms.
///
/// Networks made with [`Host`](crate::network::Host) get one with
/// [`Host::watch_firewall`](crate::network::Host::watch_firewall), which repairs them from
/// the records.
///
/// ```no_run
/// use std::time::Duration;
/// use netplumb::firewall::{Firewall, FirewallWatch, Nftables, NetworkRules};
/// let ns = netplumb::Netns::current()?;
/// let net = NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap());
/// let mut fw = Nftables::open_in(&ns)?;
/// fw.add_network(&net)?;
/// let watch = FirewallWatch::start(&ns, &["netplumb"], Duration::from_millis(200), Box::new(move || {
///     Ok(!fw.repair(std::slice::from_ref(&net), &[])?.is_empty())
/// }))?;
/// // ... `nft flush ruleset` elsewhere: the rules come back ...
/// println!("{:?}", watch.stop());
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct FirewallWatch {
    stats: Arc<Mutex<WatchStats>>,
    thread: Background,
}

impl FirewallWatch {
    /// Starts watching the nf_tables tables named `tables` (of the `ip`, `ip6` and
    /// `bridge` families) in `ns`: `["netplumb"]` for the nf_tables backend,
    /// `["nat", "filter"]` for iptables-nft. `repair` runs on the watcher's thread once
    /// `debounce` has passed without further damage.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use netplumb::firewall::FirewallWatch;
    /// let ns = netplumb::Netns::current()?;
    /// let watch = FirewallWatch::start(&ns, &["netplumb"], Duration::from_millis(200), Box::new(|| {
    ///     eprintln!("our tables were touched");
    ///     Ok(false)
    /// }))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn start(
        ns: &Netns,
        tables: &[&str],
        debounce: Duration,
        repair: RepairFn,
    ) -> Result<FirewallWatch> {
        let sock = ns.run(|| Socket::netfilter_group(NFNLGRP_NFTABLES))??;
        let stats = Arc::new(Mutex::new(WatchStats::default()));
        let (tables, st) = (
            tables.iter().map(|t| t.to_string()).collect(),
            stats.clone(),
        );
        let thread = Background::spawn("netplumb-fw-watch", move |stop| {
            Watcher {
                sock,
                tables,
                debounce,
                repair,
                stop,
                stats: st,
                hit: false,
                damaged: None,
            }
            .run()
        })?;
        Ok(FirewallWatch { stats, thread })
    }

    /// What the watcher has seen and done so far.
    ///
    /// ```no_run
    /// # let watch: netplumb::firewall::FirewallWatch = unimplemented!();
    /// let s = watch.stats();
    /// println!("{} repairs, {} failed", s.repairs, s.errors);
    /// ```
    pub fn stats(&self) -> WatchStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the watcher, waits for its thread (a repair under way finishes first) and
    /// returns its final statistics.
    ///
    /// ```no_run
    /// # let watch: netplumb::firewall::FirewallWatch = unimplemented!();
    /// let s = watch.stop();
    /// assert!(s.last_error.is_none(), "{s:?}");
    /// ```
    pub fn stop(mut self) -> WatchStats {
        self.thread.halt();
        self.stats()
    }
}

/// The watcher's thread state.
struct Watcher {
    sock: Socket,
    tables: Vec<String>,
    debounce: Duration,
    repair: RepairFn,
    stop: StopFlag,
    stats: Arc<Mutex<WatchStats>>,
    /// The transaction being read deleted something of ours.
    hit: bool,
    /// When the first and the last damage were seen, while a repair is due.
    damaged: Option<(Instant, Instant)>,
}

impl Watcher {
    fn run(&mut self) {
        while !self.stop.is_set() {
            let wait = match self.damaged {
                Some((_, last)) => self.debounce.saturating_sub(last.elapsed()).min(TICK),
                None => TICK,
            };
            match self
                .sock
                .recv_notifications(wait.max(Duration::from_millis(1)))
            {
                Ok(Some(buf)) => {
                    let damage = scan(buf, &self.tables, &mut self.hit);
                    if damage {
                        self.damage();
                    }
                }
                Ok(None) => {}
                Err(e) if e.errno() == Some(Errno::ENOBUFS) => self.damage(),
                Err(e) => {
                    self.failed(&e);
                    std::thread::sleep(TICK);
                }
            }
            if self.due() {
                self.damaged = None;
                self.run_repair();
            }
        }
    }

    fn damage(&mut self) {
        let now = Instant::now();
        self.damaged = Some((self.damaged.map_or(now, |(first, _)| first), now));
        self.stats().damage += 1;
    }

    /// Quiet for `debounce` since the last damage, or damaged for ten debounces in a
    /// row (a tool that keeps deleting does not postpone the repair for ever).
    fn due(&self) -> bool {
        self.damaged.is_some_and(|(first, last)| {
            last.elapsed() >= self.debounce || first.elapsed() >= self.debounce * 10
        })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, WatchStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, e: &Error) {
        log::warn!("firewall watch: {e}");
        let mut s = self.stats();
        s.errors += 1;
        s.last_error = Some(e.to_string());
    }

    fn run_repair(&mut self) {
        let r = (self.repair)();
        self.stats().runs += 1;
        match r {
            Ok(true) => {
                log::info!("firewall watch: restored what another process removed");
                self.stats().repairs += 1;
            }
            Ok(false) => {}
            Err(e) => self.failed(&e),
        }
    }
}

/// Reads one datagram of notifications; `hit` carries "this transaction deleted
/// something of ours" across datagrams. Returns whether a transaction of another process
/// ended that did.
fn scan(buf: &[u8], tables: &[String], hit: &mut bool) -> bool {
    let mut damage = false;
    for m in Messages::new(buf) {
        let Ok(m) = m else {
            return true; // unreadable: better check once too often
        };
        let Some(msg) = m.ty.checked_sub(msg_type(0)).filter(|t| *t < 0x100) else {
            continue;
        };
        let (fam, body) = (
            m.payload.first().copied(),
            m.payload.get(4..).unwrap_or(&[]),
        );
        match msg {
            NFT_MSG_NEWGEN if std::mem::take(hit) => {
                damage |= !attr_be32(body, NFTA_GEN_PROC_PID).is_some_and(is_ours);
            }
            nft::NFT_MSG_DELTABLE
            | nft::NFT_MSG_DELCHAIN
            | nft::NFT_MSG_DELRULE
            | nft::NFT_MSG_DELSET
            | nft::NFT_MSG_DELSETELEM
            | NFT_MSG_DELOBJ
            | NFT_MSG_DELFLOWTABLE => {
                let ours_family = matches!(fam, Some(nft::NFPROTO_IPV4 | nft::NFPROTO_IPV6 | 7));
                // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,SET_ELEM_LIST_TABLE} = 1.
                let name = attr_str(body, 1);
                if ours_family && name.is_some_and(|n| tables.iter().any(|t| t == n)) {
                    *hit = true;
                }
            }
            _ => {}
        }
    }
    damage
}

fn attr(body: &[u8], ty: u16) -> Option<&[u8]> {
    Attrs::new(body)
        .filter_map(|a| a.ok())
        .find(|(t, _)| *t == ty)
        .map(|(_, v)| v)
}

fn attr_str(body: &[u8], ty: u16) -> Option<&str> {
    let v = attr(body, ty)?;
    std::str::from_utf8(v.split(|&c| c == 0).next()?).ok()
}

fn attr_be32(body: &[u8], ty: u16) -> Option<u32> {
    let v = attr(body, ty)?;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::writers::note_writer;
    use crate::wire::{MsgBuf, NlmF};

    fn notification(buf: &mut MsgBuf, msg: u16, attrs: &[(u16, &[u8])]) {
        let m = nft::begin(buf, msg, NlmF::empty(), 0, nft::NFPROTO_IPV4);
        for (t, v) in attrs {
            buf.attr(*t, v);
        }
        buf.end_msg(m);
    }

    #[test]
    fn deletions_of_other_processes_are_damage() {
        let tables = vec!["netplumb".to_owned()];
        let mut b = MsgBuf::new();
        notification(&mut b, nft::NFT_MSG_DELTABLE, &[(1, b"netplumb\0")]);
        let stranger = 0x7fff_fff0u32.to_be_bytes();
        notification(&mut b, NFT_MSG_NEWGEN, &[(1, &[0; 4]), (2, &stranger)]);
        let mut hit = false;
        assert!(scan(b.as_bytes(), &tables, &mut hit));
        assert!(!hit, "the transaction ended");
        // Another table, or our own thread: no damage.
        b.clear();
        notification(&mut b, nft::NFT_MSG_DELRULE, &[(1, b"filter\0")]);
        notification(&mut b, NFT_MSG_NEWGEN, &[(2, &stranger)]);
        assert!(!scan(b.as_bytes(), &tables, &mut hit));
        note_writer(None);
        let me = (nix::unistd::gettid().as_raw() as u32).to_be_bytes();
        b.clear();
        notification(&mut b, nft::NFT_MSG_DELSETELEM, &[(1, b"netplumb\0")]);
        notification(&mut b, NFT_MSG_NEWGEN, &[(2, &me)]);
        assert!(!scan(b.as_bytes(), &tables, &mut hit));
        // A transaction split over two datagrams.
        b.clear();
        notification(&mut b, nft::NFT_MSG_DELCHAIN, &[(1, b"netplumb\0")]);
        assert!(!scan(b.as_bytes(), &tables, &mut hit));
        assert!(hit);
        b.clear();
        notification(&mut b, NFT_MSG_NEWGEN, &[(2, &stranger)]);
        assert!(scan(b.as_bytes(), &tables, &mut hit));
    }
}
