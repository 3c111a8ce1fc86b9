//! The gateway bridge: Docker's `docker_gwbridge`, a local bridge network that gives
//! overlay containers their way out (`eth1`, default route, masquerade) while the overlay
//! itself stays pure layer 2.

use ipnet::IpNet;

use super::driver::Overlay;
use crate::error::{Result, ResultExt};
use crate::ipam::{IpamError, Pools, Store};
use crate::journal::Txn;
use crate::network::{Attachment, Container, Host, NetworkConfig};

/// The gateway bridge network's name (Docker's).
pub const GWBRIDGE_NETWORK: &str = "docker_gwbridge";
/// The gateway bridge's link name (Docker's).
pub const GWBRIDGE_BRIDGE: &str = "docker_gwbridge";
/// The interface overlay containers have on the gateway bridge.
pub const GWBRIDGE_IFNAME: &str = "eth1";
/// The label of a gateway bridge network that the overlay driver created, and so removes
/// again when its last container leaves.
pub const GWBRIDGE_LABEL: &str = "netplumb.overlay.gwbridge";

impl<S: Store + 'static> Overlay<S> {
    /// Creates the gateway bridge network unless it exists: its own subnet from the
    /// default pools (clear of the host's networks, its addresses and the overlay
    /// subnets), masquerade on, inter-container traffic off.
    pub(super) fn ensure_gwbridge(&mut self, tx: &mut Txn) -> Result<()> {
        if self.host.network(GWBRIDGE_NETWORK).optional()?.is_some() {
            return Ok(());
        }
        crate::fault::point("gateway bridge network")?;
        let mut taken: Vec<IpNet> = self
            .host
            .networks()?
            .into_iter()
            .flat_map(|n| n.subnets)
            .collect();
        taken.extend(self.ipam.networks()?.into_iter().map(|n| n.subnet));
        taken.extend(
            self.host
                .rtnl()
                .addrs(None)?
                .into_iter()
                .map(|a| a.addr.trunc()),
        );
        let subnet = Pools::default().first_free(false, &taken).ok_or_else(|| {
            IpamError::PoolsExhausted {
                network: GWBRIDGE_NETWORK.to_owned(),
                family: "IPv4",
            }
        })?;
        let cfg = NetworkConfig::new(GWBRIDGE_NETWORK)
            .bridge(GWBRIDGE_BRIDGE)
            .subnet(subnet)
            .icc(false)
            .masquerade(true)
            .label(GWBRIDGE_LABEL, "true");
        self.host.create_network(&cfg)?;
        let reopen = self.host_opener();
        tx.record(format!("docker network rm {GWBRIDGE_NETWORK}"), move || {
            reopen()?.remove_network(GWBRIDGE_NETWORK, true)
        });
        Ok(())
    }

    /// Connects the container to the gateway bridge as `eth1` with the default route (and
    /// its published ports); the overlay addresses and MAC are not carried over. A
    /// container already there (through another overlay network) keeps its attachment.
    pub(super) fn connect_gwbridge(&mut self, ctr: &Container, tx: &mut Txn) -> Result<Attachment> {
        let had = self
            .host
            .attachments(Some(GWBRIDGE_NETWORK))?
            .into_iter()
            .find(|a| a.container == ctr.id);
        if let Some(a) = had {
            return Ok(a);
        }
        let mut gw = ctr.clone();
        gw.ifname = GWBRIDGE_IFNAME.to_owned();
        (gw.ip, gw.ip6, gw.mac, gw.files) = (None, None, None, None);
        gw.links.clear();
        gw.aliases.clear();
        let att = self.host.connect(GWBRIDGE_NETWORK, &gw)?;
        let (reopen, id) = (self.host_opener(), ctr.id.clone());
        tx.record(
            format!("docker network disconnect {GWBRIDGE_NETWORK} {id}"),
            move || reopen()?.disconnect(GWBRIDGE_NETWORK, &id),
        );
        Ok(att)
    }

    /// Disconnects the container from the gateway bridge, and removes the gateway bridge
    /// network when it is empty and the overlay driver created it.
    pub(super) fn disconnect_gwbridge(&mut self, container: &str) -> Result<()> {
        self.host.disconnect(GWBRIDGE_NETWORK, container)?;
        let ours = self
            .host
            .network(GWBRIDGE_NETWORK)
            .optional()?
            .is_some_and(|n| n.labels.contains_key(GWBRIDGE_LABEL));
        if ours && self.host.attachments(Some(GWBRIDGE_NETWORK))?.is_empty() {
            self.host.remove_network(GWBRIDGE_NETWORK, false)?;
        }
        Ok(())
    }

    /// A closure that opens another [`Host`] on the same namespace, records and firewall
    /// backend: what the undo of a host-level step runs, since it cannot borrow ours.
    fn host_opener(&mut self) -> impl Fn() -> Result<Host> + Send + 'static {
        let ns = self.host.netns().clone();
        let opts = self.host.options().clone();
        move || opts.open(&ns)
    }
}
