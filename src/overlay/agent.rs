//! [`Agent`]: the long-lived process of a host of overlay networks. It holds the host's
//! registrations alive (the discovery's lease), follows every overlay network that has
//! containers on this host (a [`watch`](Overlay::watch) each, started and stopped as
//! containers come and go), announces this host's containers again so that registrations
//! lost with an etcd outage or written by one-shot commands whose processes ended stay
//! current, and puts the firewall back when someone flushes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::OverlayNetwork;
use super::driver::Overlay;
use super::watch::OverlayWatch;
use crate::error::Result;
use crate::firewall::FirewallWatch;
use crate::ipam::Store;
use crate::netns::Background;

/// The networks an agent follows, asked for again at each round (the store's list:
/// `EtcdNetworks::list`).
pub type NetworkList = Box<dyn FnMut() -> Result<Vec<OverlayNetwork>> + Send>;

/// How often the agent looks for networks that gained or lost containers here.
const ROUND: Duration = Duration::from_millis(250);

/// A running agent ([`Agent::start`]); [`stop`](Agent::stop) it or drop it.
///
/// ```no_run
/// # fn f(ov: netplumb::overlay::Overlay<netplumb::ipam::EtcdStore>,
/// #      nets: netplumb::overlay::EtcdNetworks) -> netplumb::Result<()> {
/// use std::time::Duration;
/// use netplumb::overlay::Agent;
/// let agent = Agent::start(ov, Box::new(move || nets.list()), Duration::from_secs(5))?;
/// // ... until SIGTERM ...
/// agent.stop();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Agent {
    rounds: Arc<AtomicU64>,
    thread: Background,
}

impl Agent {
    /// Starts the agent on its own thread with driver `ov` (whose discovery holds this
    /// host's registrations while the agent runs) and the networks `list` gives. Every
    /// `announce_every` (a third of the registrations' TTL is right) it announces this
    /// host's containers again. It also starts [`Host::watch_firewall`] on the driver's
    /// host, so that a flushed firewall is put back.
    ///
    /// [`Host::watch_firewall`]: crate::network::Host::watch_firewall
    pub fn start<S: Store + Send + 'static>(
        ov: Overlay<S>,
        list: NetworkList,
        announce_every: Duration,
    ) -> Result<Agent> {
        let rounds = Arc::new(AtomicU64::new(0));
        let firewall = ov.host().watch_firewall(Duration::from_millis(250))?;
        let r = rounds.clone();
        let thread = Background::spawn("overlay-agent", move |stop| {
            let mut run = Run {
                ov,
                list,
                every: announce_every,
                watches: BTreeMap::new(),
                last_announce: Instant::now(),
                _firewall: firewall,
            };
            while !stop.is_set() {
                run.round();
                r.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(ROUND);
            }
            log::info!(target: "netplumb::overlay", "agent stopped");
        })?;
        log::info!(target: "netplumb::overlay", "agent started");
        Ok(Agent { rounds, thread })
    }

    /// How many rounds the agent has made (a round looks at every network once).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Stops the agent and waits for its thread. The registrations stay until their TTL
    /// (the containers here stay reachable through a restart of the agent).
    pub fn stop(mut self) {
        self.thread.halt();
    }
}

/// The agent thread's state.
struct Run<S: Store + 'static> {
    ov: Overlay<S>,
    list: NetworkList,
    every: Duration,
    watches: BTreeMap<String, OverlayWatch>,
    last_announce: Instant,
    _firewall: FirewallWatch,
}

impl<S: Store + Send + 'static> Run<S> {
    /// One look at every network: start following the ones with containers here, stop
    /// following the ones without, announce again when due. Failures are logged; the
    /// next round tries again.
    fn round(&mut self) {
        let nets = match (self.list)() {
            Ok(n) => n,
            Err(e) => {
                log::warn!(target: "netplumb::overlay", "agent: listing the networks failed: {e}");
                return;
            }
        };
        let announce = self.last_announce.elapsed() >= self.every;
        for net in &nets {
            let here = self
                .ov
                .host_mut()
                .rtnl()
                .link(net.vxlan_name().as_str())
                .is_ok();
            let followed = self.watches.contains_key(net.name());
            if here && !followed {
                // The first sync announces this host and its containers.
                let started = self.ov.sync(net).and_then(|_| self.ov.watch(net));
                match started {
                    Ok(w) => {
                        log::info!(target: "netplumb::overlay", "agent: following {}", net.name());
                        self.watches.insert(net.name().to_owned(), w);
                    }
                    Err(e) => log::warn!(
                        target: "netplumb::overlay",
                        "agent: following {} failed: {e}", net.name()
                    ),
                }
            } else if !here && followed {
                self.watches.remove(net.name());
                log::info!(target: "netplumb::overlay", "agent: {} has no container here any more", net.name());
            } else if here && announce {
                if let Err(e) = self.ov.announce(net) {
                    log::warn!(target: "netplumb::overlay", "agent: announcing {} failed: {e}", net.name());
                }
            }
        }
        // Networks removed from the store.
        self.watches
            .retain(|name, _| nets.iter().any(|n| n.name() == name));
        if announce {
            self.last_announce = Instant::now();
        }
    }
}
