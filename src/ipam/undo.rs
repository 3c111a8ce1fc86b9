//! Exact undo of lease changes, for the undo journal of the network operations: the
//! lease and the network's allocation cursors as they were, through one store
//! transaction each.

use std::net::IpAddr;

use super::{Ipam, IpamError, Network, Owner, Store, StoreTxn};
use crate::error::Result;

/// A network as it was before a connect, and the address `owner` held there then.
pub(crate) struct Before {
    pub(crate) net: Network,
    pub(crate) held: Option<IpAddr>,
}

fn not_found(name: &str) -> IpamError {
    IpamError::NetworkNotFound {
        network: name.to_owned(),
    }
}

/// Network `name` and what `owner` holds there, read before a connect changes them.
pub(crate) fn read(ipam: &Ipam, name: &str, owner: &Owner) -> Result<Before> {
    let mut tx = ipam.store().begin()?;
    let net = tx.network(name)?.ok_or_else(|| not_found(name))?;
    let held = tx.address_of(name, owner)?;
    tx.commit()?;
    Ok(Before { net, held })
}

/// Runs `f` on network `name` in one transaction, and stores the network it leaves.
fn change(
    ipam: &Ipam,
    name: &str,
    f: impl FnOnce(&mut dyn StoreTxn, &mut Network) -> Result<()>,
) -> Result<()> {
    let mut tx = ipam.store().begin()?;
    let mut net = tx.network(name)?.ok_or_else(|| not_found(name))?;
    f(&mut *tx, &mut net)?;
    tx.update_network(&net)?;
    Ok(tx.commit()?)
}

/// Undoes a connect's allocation of `addr`: released, and the cursor back where it was.
pub(crate) fn unhold(
    ipam: &Ipam,
    name: &str,
    owner: &Owner,
    addr: IpAddr,
    before: &Network,
) -> Result<()> {
    change(ipam, name, |tx, net| {
        if tx.owner_of(name, addr)?.as_ref() == Some(owner) {
            tx.free(name, addr)?;
        }
        if net.cursor == Some(addr) {
            net.cursor = before.cursor;
        }
        Ok(())
    })
}

/// Undoes a release: `owner` holds `addr` again, and `last_released` is back to `prev`
/// unless another release came since.
pub(crate) fn rehold(
    ipam: &Ipam,
    name: &str,
    owner: &Owner,
    addr: IpAddr,
    prev: Option<IpAddr>,
) -> Result<()> {
    change(ipam, name, |tx, net| {
        tx.hold(name, addr, owner)?;
        if net.last_released == Some(addr) {
            net.last_released = prev;
        }
        Ok(())
    })
}

/// Undoes the removal of an IPAM network: its record exactly as it was.
pub(crate) fn recreate(ipam: &Ipam, net: &Network) -> Result<()> {
    let mut tx = ipam.store().begin()?;
    tx.create_network(net)?;
    Ok(tx.commit()?)
}
