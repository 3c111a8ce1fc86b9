//! [`VxlanGuard`]: guarding VNIs and allowing peers, each change one batch that writes
//! the difference between the elements there and the elements wanted.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::layout::{Elem, Fam, TABLE, V4, V6};
use super::tables::{comments, Table, Tables};
use crate::error::{Errno, Error, Result};
use crate::link::VXLAN_PORT;
use crate::netns::Netns;
use crate::socket::Socket;
use crate::wire::nft;

fn check_vni(vni: u32) -> Result<()> {
    if vni >= 1 << 24 {
        return Err(Error::invalid("vni", vni, "must be below 2^24"));
    }
    Ok(())
}

/// A peer as the kernel sees it: IPv4-mapped IPv6 addresses become IPv4.
fn check_peer(peer: IpAddr) -> Result<IpAddr> {
    let peer = peer.to_canonical();
    if peer.is_unspecified() || peer.is_multicast() {
        return Err(Error::invalid("peer", peer, "must be a unicast address"));
    }
    Ok(peer)
}

/// Guards VXLAN VNIs in one network namespace: frames of a guarded VNI are dropped unless
/// their underlay source address is an allowed peer of that VNI.
///
/// ```no_run
/// use netplumb::firewall::VxlanGuard;
/// let mut g = VxlanGuard::open(&netplumb::Netns::current()?)?;
/// // Register the peers first, then guard: no frame from a peer is ever dropped.
/// g.set_peers(42, &["192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap()])?;
/// g.guard(42)?;
/// assert_eq!(g.vnis()?, [42]);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct VxlanGuard {
    tables: Tables,
    port: u16,
    ipv6: bool,
}

impl VxlanGuard {
    /// The name of our tables (`ip netplumb_vxlan`, `ip6 netplumb_vxlan`).
    pub const TABLE: &'static str = TABLE;

    /// A guard for namespace `ns` (its netlink socket is opened inside it). Creates
    /// nothing yet: the tables come with the first [`guard`](Self::guard) or peer.
    ///
    /// ```no_run
    /// let g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn open(ns: &Netns) -> Result<VxlanGuard> {
        Ok(VxlanGuard {
            tables: Tables::new(ns.run(Socket::netfilter)??),
            port: VXLAN_PORT,
            ipv6: false,
        })
    }

    /// The UDP port VXLAN arrives on (default [`VXLAN_PORT`](crate::link::VXLAN_PORT),
    /// 4789; the Linux driver's own default is 8472). Tables made for another port are
    /// rebuilt, with their elements, by the next change.
    ///
    /// ```no_run
    /// let g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?.port(8472);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Guards IPv6 underlays from the first [`guard`](Self::guard) on, before any IPv6
    /// peer is allowed. Without it the `ip6` table comes with the first IPv6 peer, and
    /// until then VXLAN over IPv6 is not filtered.
    ///
    /// ```no_run
    /// let g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?.ipv6(true);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    #[must_use]
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Starts dropping frames of `vni` from underlay addresses that are not its peers
    /// (`nft add element ip netplumb_vxlan vnis { VNI }`). Creates the tables, chains,
    /// sets and rules on first use. Guarding a guarded VNI changes nothing.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.guard(42)?;
    /// assert!(g.guard(1 << 24).unwrap_err().is_invalid());
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn guard(&mut self, vni: u32) -> Result<()> {
        check_vni(vni)?;
        self.change(&mut |w| {
            w.insert(Elem::Vni(vni));
        })
    }

    /// Stops guarding `vni` and forgets its peers, in one batch. A VNI that is not
    /// guarded is not an error.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.unguard(42)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn unguard(&mut self, vni: u32) -> Result<()> {
        check_vni(vni)?;
        self.change(&mut |w| w.retain(|e| e.vni() != vni))
    }

    /// Accepts frames of `vni` from underlay address `peer`
    /// (`nft add element ip netplumb_vxlan peers { PEER . VNI }`). Peers may be allowed
    /// before the VNI is guarded; allowing an allowed peer changes nothing.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.allow(42, "2001:db8::2".parse().unwrap())?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn allow(&mut self, vni: u32, peer: IpAddr) -> Result<()> {
        check_vni(vni)?;
        let peer = check_peer(peer)?;
        self.change(&mut |w| {
            w.insert(Elem::Peer(vni, peer));
        })
    }

    /// Stops accepting frames of `vni` from `peer`; a peer that is not allowed is not an
    /// error.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.revoke(42, "192.0.2.3".parse().unwrap())?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn revoke(&mut self, vni: u32, peer: IpAddr) -> Result<()> {
        check_vni(vni)?;
        let peer = check_peer(peer)?;
        self.change(&mut |w| {
            w.remove(&Elem::Peer(vni, peer));
        })
    }

    /// Makes the peers of `vni` exactly `peers`, in one atomic batch: what a reconcile
    /// loop calls with the membership it learned. Does not guard or unguard the VNI.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.set_peers(42, &["192.0.2.2".parse().unwrap()])?;
    /// assert_eq!(g.peers()?, [(42, "192.0.2.2".parse().unwrap())]);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn set_peers(&mut self, vni: u32, peers: &[IpAddr]) -> Result<()> {
        check_vni(vni)?;
        let peers: Vec<IpAddr> = peers
            .iter()
            .map(|p| check_peer(*p))
            .collect::<Result<_>>()?;
        self.change(&mut |w| {
            w.retain(|e| !matches!(e, Elem::Peer(v, _) if *v == vni));
            w.extend(peers.iter().map(|p| Elem::Peer(vni, *p)));
        })
    }

    /// The allowed peers, read back from the kernel, sorted by VNI then address.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// for (vni, peer) in g.peers()? {
    ///     println!("{vni}: {peer}");
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn peers(&mut self) -> Result<Vec<(u32, IpAddr)>> {
        let all = self.tables.read_all()?.into_iter().flatten();
        let peers = all.flat_map(|t| t.elems).filter_map(|e| match e {
            Elem::Peer(v, ip) => Some((v, ip)),
            Elem::Vni(_) => None,
        });
        Ok(peers.collect::<BTreeSet<_>>().into_iter().collect())
    }

    /// The guarded VNIs, read back from the kernel, sorted.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// let guarded: Vec<u32> = g.vnis()?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn vnis(&mut self) -> Result<Vec<u32>> {
        let all = self.tables.read_all()?.into_iter().flatten();
        let vnis = all.flat_map(|t| t.elems).filter_map(|e| match e {
            Elem::Vni(v) => Some(v),
            Elem::Peer(..) => None,
        });
        Ok(vnis.collect::<BTreeSet<_>>().into_iter().collect())
    }

    /// How many packets the guard has dropped since its tables were made (the rules'
    /// counters, both families).
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// println!("{} VXLAN packets from non-peers dropped", g.dropped()?);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn dropped(&mut self) -> Result<u64> {
        let all = self.tables.read_all()?.into_iter().flatten();
        Ok(all.flat_map(|t| t.rules).map(|r| r.1).sum())
    }

    /// Deletes our tables, guards and peers, in one batch
    /// (`nft delete table ip netplumb_vxlan`). Tables that are not there are skipped.
    ///
    /// ```no_run
    /// # let mut g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// g.remove()?;
    /// g.remove()?; // nothing left: not an error
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn remove(&mut self) -> Result<()> {
        self.retrying(&mut |g| {
            let present = [g.tables.exists(V4)?, g.tables.exists(V6)?];
            g.tables.begin();
            for (fam, _) in [V4, V6].into_iter().zip(present).filter(|p| p.1) {
                g.tables.del_table(fam);
            }
            Ok(())
        })
    }
}

// Applying changes: read both families, edit the wanted elements, write the difference.
impl VxlanGuard {
    /// Runs `build` into a fresh batch and commits it, once more when another process
    /// changed our tables in between (our exclusive table create or an element delete
    /// then fails as a whole, with `EEXIST` or `ENOENT`).
    fn retrying(&mut self, build: &mut dyn FnMut(&mut VxlanGuard) -> Result<()>) -> Result<()> {
        if self.port == 0 {
            return Err(Error::invalid("port", 0, "must not be 0"));
        }
        let mut tries = 0;
        loop {
            build(self)?;
            match self.tables.commit() {
                Err(e)
                    if tries == 0 && matches!(e.errno(), Some(Errno::EEXIST | Errno::ENOENT)) =>
                {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    fn change(&mut self, edit: &mut dyn FnMut(&mut BTreeSet<Elem>)) -> Result<()> {
        self.retrying(&mut |g| {
            let have = g.tables.read_all()?;
            let mut want: BTreeSet<Elem> = have
                .iter()
                .flatten()
                .flat_map(|t| &t.elems)
                .copied()
                .collect();
            edit(&mut want);
            g.tables.begin();
            for (fam, t) in [V4, V6].into_iter().zip(&have) {
                g.sync(fam, t.as_ref(), &want);
            }
            Ok(())
        })
    }

    /// Adds to the batch what family `fam` needs to hold `want`.
    fn sync(&mut self, fam: Fam, have: Option<&Table>, want: &BTreeSet<Elem>) {
        let mine: BTreeSet<Elem> = want.iter().copied().filter(|e| e.in_fam(fam)).collect();
        let peer = mine.iter().any(|e| matches!(e, Elem::Peer(..)));
        let vni = mine.iter().any(|e| matches!(e, Elem::Vni(..)));
        if have.is_none() && !peer && !(vni && (fam == V4 || self.ipv6)) {
            return;
        }
        let comments = comments(self.port, fam);
        let sound = have.filter(|t| t.sets && t.rules.iter().map(|r| &r.0).eq(comments.iter()));
        let Some(t) = sound else {
            if have.is_some() {
                self.tables.del_table(fam);
            }
            self.tables.skeleton(fam, self.port);
            let add = nft::NFT_MSG_NEWSETELEM;
            return self.tables.elems(fam, add, mine.iter());
        };
        // One batch: no frame is ever judged by a half-changed peer list.
        let tables = &mut self.tables;
        tables.elems(fam, nft::NFT_MSG_DELSETELEM, t.elems.difference(&mine));
        tables.elems(fam, nft::NFT_MSG_NEWSETELEM, mine.difference(&t.elems));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn input_is_checked() {
        assert!(check_vni(1 << 24).unwrap_err().is_invalid());
        assert!(check_vni((1 << 24) - 1).is_ok());
        let e = check_peer("0.0.0.0".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "peer", .. }));
        let mapped = check_peer("::ffff:192.0.2.9".parse().unwrap()).unwrap();
        assert_eq!(mapped, "192.0.2.9".parse::<IpAddr>().unwrap());
    }
}
