//! [`Overlay::gc`]: this host's containers on an overlay network whose namespace died
//! (their veth went with it) keep their address in the store and their endpoint in
//! discovery until something disconnects them; `gc` does.

use super::config::{veth_name, OverlayNetwork};
use super::driver::Overlay;
use crate::error::{Result, ResultExt};
use crate::ipam::{IpamError, Store};

impl<S: Store> Overlay<S> {
    /// Disconnects this host's containers on `net` that are gone: those whose endpoint
    /// this host published and whose overlay veth no longer exists (the container's
    /// namespace was deleted without a disconnect). Their address, endpoint and gateway
    /// bridge attachment go as in [`Overlay::disconnect`]. Returns their ids. Containers
    /// of other hosts are never touched.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// for id in ov.gc(ov1)? {
    ///     println!("disconnected {id} from {}", ov1.name());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gc(&mut self, net: &OverlayNetwork) -> Result<Vec<String>> {
        net.validate()?;
        let leases = match self.ipam.leases(&net.name) {
            Ok(l) => l,
            Err(IpamError::NetworkNotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mine: Vec<_> = self
            .discovery
            .view(&net.name)?
            .endpoints
            .into_iter()
            .filter(|e| e.host == self.me.id)
            .collect();
        let mut gone = Vec::new();
        for l in leases {
            if !mine.iter().any(|e| e.ip == l.address) {
                continue;
            }
            let veth = veth_name(&l.owner.container, &net.name);
            if self.host.rtnl().link(veth.as_str()).optional()?.is_none() {
                gone.push(l.owner.container.clone());
            }
        }
        for id in &gone {
            self.disconnect(net, id)?;
        }
        Ok(gone)
    }
}
