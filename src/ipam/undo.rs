//! Exact undo of lease changes, for the undo journal of the network operations: the
//! lease and the network's allocation cursors as they were, inside the caller's store
//! transaction (so that one undo puts leases, ports and records back together).

use std::net::IpAddr;

use super::{IpamError, Network, Owner, StoreTxn};
use crate::error::Result;

fn not_found(name: &str) -> IpamError {
    IpamError::NetworkNotFound {
        network: name.to_owned(),
    }
}

/// Runs `f` on network `name`, and stores the network it leaves.
fn change(
    tx: &mut dyn StoreTxn,
    name: &str,
    f: impl FnOnce(&mut dyn StoreTxn, &mut Network) -> Result<()>,
) -> Result<()> {
    let mut net = tx.network(name)?.ok_or_else(|| not_found(name))?;
    f(tx, &mut net)?;
    tx.update_network(&net)?;
    Ok(())
}

/// Undoes a release: `owner` holds `addr` again, and `last_released` is back to `prev`
/// unless another release came since.
pub(crate) fn rehold(
    tx: &mut dyn StoreTxn,
    name: &str,
    owner: &Owner,
    addr: IpAddr,
    prev: Option<IpAddr>,
) -> Result<()> {
    change(tx, name, |tx, net| {
        tx.hold(name, addr, owner)?;
        if net.last_released == Some(addr) {
            net.last_released = prev;
        }
        Ok(())
    })
}

/// Undoes the removal of an IPAM network: its record exactly as it was.
pub(crate) fn recreate(tx: &mut dyn StoreTxn, net: &Network) -> Result<()> {
    Ok(tx.create_network(net)?)
}
