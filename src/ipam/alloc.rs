//! What each IPAM call does inside one [`StoreTxn`]: the store-independent logic of
//! networks, next-free allocation, specific requests, release and garbage collection.

use std::collections::HashSet;
use std::net::IpAddr;

use super::pool::{from_u128, to_u128};
use super::{IpamError, Lease, Network, NetworkSpec, Owner, Pools, Released, StoreTxn};

/// What a release names.
#[derive(Clone, Copy)]
pub(super) enum Holder<'a> {
    Address(IpAddr),
    Owner(&'a Owner),
}

pub(super) fn network(tx: &mut dyn StoreTxn, name: &str) -> Result<Network, IpamError> {
    tx.network(name)?.ok_or_else(|| IpamError::NetworkNotFound {
        network: name.to_string(),
    })
}

pub(super) fn create(
    tx: &mut dyn StoreTxn,
    spec: &NetworkSpec,
    pools: &Pools,
) -> Result<Network, IpamError> {
    let existing = tx.networks()?;
    let net = spec.resolve(&existing, pools)?;
    tx.create_network(&net)?;
    Ok(net)
}

pub(super) fn remove(tx: &mut dyn StoreTxn, name: &str) -> Result<(), IpamError> {
    let net = network(tx, name)?;
    let leases = tx.leases(name)?.len();
    if leases > 0 {
        return Err(IpamError::NetworkInUse {
            network: name.to_string(),
            leases,
        });
    }
    tx.delete_network(&net)
}

/// Gives `owner` an address: `want`, or the next free one. Returns the owner's existing
/// lease if it already has one that satisfies the request (a retried call after a crash
/// gets the same answer).
pub(super) fn allocate(
    tx: &mut dyn StoreTxn,
    name: &str,
    owner: &Owner,
    want: Option<IpAddr>,
) -> Result<Lease, IpamError> {
    check_owner(owner)?;
    // The owner's key first: a store can read it together with the network's.
    let held = tx.address_of(name, owner)?;
    let mut net = network(tx, name)?;
    if let Some(held) = held {
        if want.map_or(true, |w| w == held) {
            log::debug!("ipam {name}: {owner} keeps {held}, its lease");
            return Ok(Lease::new(&net, held, owner.clone()));
        }
        return Err(IpamError::OwnerHasLease {
            network: net.name,
            owner: owner.clone(),
            address: held,
        });
    }
    let address = match want {
        Some(a) => {
            if let Some(e) = net.refuse(a) {
                return Err(e);
            }
            if let Some(other) = tx.owner_of(name, a)? {
                return Err(IpamError::AddressTaken {
                    network: net.name,
                    address: a,
                    owner: other,
                });
            }
            log::debug!("ipam {name}: {owner} gets {a}, as asked");
            a
        }
        None => {
            let a = next_free(tx, &net)?;
            log::debug!(
                "ipam {name}: {owner} gets {a}, the next free address after {}",
                net.cursor
                    .map_or("the start of the range".into(), |c| c.to_string())
            );
            net.cursor = Some(a);
            a
        }
    };
    tx.hold(name, address, owner)?;
    tx.update_network(&net)?;
    Ok(Lease::new(&net, address, owner.clone()))
}

/// The address next-free allocation hands out: the first free one after the cursor,
/// going round the range, and not the most recently released one while another is free.
fn next_free(tx: &mut dyn StoreTxn, net: &Network) -> Result<IpAddr, IpamError> {
    let exhausted = || IpamError::Exhausted {
        network: net.name.clone(),
        subnet: net.subnet,
        range: net.range,
    };
    let (lo, hi) = net.bounds_u128().ok_or_else(exhausted)?;
    let start = match net.cursor.map(to_u128) {
        Some(c) if (lo..hi).contains(&c) => c + 1,
        _ => lo,
    };
    let found = round(tx, net, start, (lo, hi))?.ok_or_else(exhausted)?;
    if net.last_released != Some(found) {
        return Ok(found);
    }
    // Skip the address just released if anything else is free.
    let f = to_u128(found);
    let next = if f == hi { lo } else { f + 1 };
    match round(tx, net, next, (lo, hi))? {
        Some(other) if other != found => Ok(other),
        _ => Ok(found),
    }
}

/// The first free, unreserved address at or after `start`, wrapping to `lo` after `hi`.
fn round(
    tx: &mut dyn StoreTxn,
    net: &Network,
    start: u128,
    (lo, hi): (u128, u128),
) -> Result<Option<IpAddr>, IpamError> {
    if let Some(a) = search(tx, net, start, hi)? {
        return Ok(Some(a));
    }
    if start > lo {
        return search(tx, net, lo, start - 1);
    }
    Ok(None)
}

/// The first free address in `from..=to` that is neither the gateway nor reserved.
fn search(
    tx: &mut dyn StoreTxn,
    net: &Network,
    mut from: u128,
    to: u128,
) -> Result<Option<IpAddr>, IpamError> {
    let v6 = net.is_ipv6();
    loop {
        let Some(a) = tx.first_free(&net.name, from_u128(from, v6), from_u128(to, v6))? else {
            return Ok(None);
        };
        if net.gateway != Some(a) && !net.reserved.contains(&a) {
            return Ok(Some(a));
        }
        let a = to_u128(a);
        if a >= to {
            return Ok(None);
        }
        from = a + 1;
    }
}

pub(super) fn release(
    tx: &mut dyn StoreTxn,
    name: &str,
    holder: Holder<'_>,
) -> Result<Released, IpamError> {
    let mut net = network(tx, name)?;
    let address = match holder {
        // An address of the other family is never held; its integer may equal one that is.
        Holder::Address(a) if a.is_ipv6() != net.is_ipv6() => return Ok(Released::NotHeld),
        Holder::Address(a) => a,
        Holder::Owner(o) => match tx.address_of(name, o)? {
            Some(a) => a,
            None => return Ok(Released::NotHeld),
        },
    };
    let Some(owner) = tx.free(name, address)? else {
        return Ok(Released::NotHeld);
    };
    log::debug!("ipam {name}: {owner} releases {address}");
    net.last_released = Some(address);
    tx.update_network(&net)?;
    Ok(Released::Freed(Lease::new(&net, address, owner)))
}

/// Releases every lease of network `name` whose owner is not in `live`.
/// Frees at most `limit` leases of `name` whose owner is not in `live` (a transaction of a
/// distributed store has a bounded number of writes; the caller repeats until fewer than
/// `limit` come back).
pub(super) fn gc(
    tx: &mut dyn StoreTxn,
    name: &str,
    live: &HashSet<&Owner>,
    limit: usize,
) -> Result<Vec<Lease>, IpamError> {
    let net = network(tx, name)?;
    let mut freed = Vec::new();
    for (address, owner) in tx.leases(name)? {
        if freed.len() == limit {
            break;
        }
        if !live.contains(&owner) {
            log::debug!("ipam {name}: gc frees {address} of {owner}, who is gone");
            tx.free(name, address)?;
            freed.push(Lease::new(&net, address, owner));
        }
    }
    if !freed.is_empty() {
        tx.update_network(&net)?;
    }
    Ok(freed)
}

/// Refuses an owner without a container id.
fn check_owner(owner: &Owner) -> Result<(), IpamError> {
    if owner.container.is_empty() {
        return Err(IpamError::invalid(
            "container id",
            &owner.container,
            "is empty",
        ));
    }
    Ok(())
}
