//! [`VxlanGuard`]: drops VXLAN frames of managed VNIs that come from underlay addresses
//! which are not registered peers, so a host that can reach the VXLAN port cannot inject
//! frames into an overlay network.
//!
//! It is a small nf_tables object set of its own, independent of the firewall backend of
//! bridge networks. Equivalent `nft` layout (`ip6` is the same with `ip6 saddr` and two
//! more rules, below; it is created only once an IPv6 underlay is used):
//!
//! ```text
//! table ip netplumb_vxlan {
//!   set vnis  { typeof @th,96,24 }                 # the guarded VNIs
//!   set peers { typeof ip saddr . @th,96,24 }      # who may send each of them
//!   chain input {
//!     type filter hook input priority filter; policy accept;
//!     udp dport 4789 @th,96,24 @vnis ip saddr . @th,96,24 != @peers counter drop
//!   }
//! }
//! ```
//!
//! `@th,96,24` is the VNI: the VXLAN header (flags, 3 reserved bytes, the 3-byte VNI, a
//! reserved byte) follows the 8-byte UDP header, so the VNI sits at transport offset 12.
//! `vnis` has 3-byte keys, as `nft` makes them for `typeof @th,96,24`. In `peers` each
//! field of the concatenation takes whole 32-bit registers, and the payload expression
//! zeroes the rest of the last one it writes: the key is the address, the VNI's 3 bytes
//! and a zero byte. Frames of VNIs not in `vnis` are not touched.
//!
//! IPv4 packets reach the input hook reassembled; IPv6 packets do not (nothing
//! reassembles them before it unless conntrack runs in the namespace). A first fragment
//! that ends before the VNI would pass the rule above and be reassembled behind it, so
//! the `ip6` chain goes on with `udp dport 4789 @th,96,24 >= 0 accept` (the VNI can be
//! read) and `udp dport 4789 counter drop` (it cannot). Real VXLAN never sends a first
//! fragment that short, and the VXLAN driver drops a datagram that short anyway.
//!
//! Every call is one nf_tables batch: it applies as a whole or not at all.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use super::rule::Proto;
use crate::error::{Errno, Error, Op, Result};
use crate::link::VXLAN_PORT;
use crate::netns::Netns;
use crate::socket::Socket;
use crate::wire::nft::{self, msg_type, BaseChain, CmpOp, ElemData, Expr, KeyField};
use crate::wire::nft::{PayloadBase, SetSpec};
use crate::wire::{MsgBuf, NlmF, RawMsg};

const CHAIN: &str = "input";
const VNIS: &str = "vnis";
const PEERS: &str = "peers";
/// Most elements per `NFT_MSG_*SETELEM` message (its element list has a 16-bit length).
const ELEMS_PER_MSG: usize = 256;
// `nft` data type numbers (`integer`, `ipv4_addr`, `ipv6_addr`), as `nft` sets them for
// our `typeof` keys; the kernel ignores them.
use crate::wire::nft::datatype::{
    INTEGER as TYPE_INTEGER, IP6ADDR as TYPE_IP6ADDR, IPADDR as TYPE_IPADDR,
};
const R0: u32 = nft::NFT_REG32_00;
/// The VNI in the transport header, in bits for `nft`.
const VNI_FIELD: KeyField = KeyField::Raw(PayloadBase::Transport, 96, 24);

/// One family of our tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fam {
    /// `nfgen_family`.
    af: u8,
    /// As `nft` names it.
    name: &'static str,
    /// Address length in bytes.
    alen: u32,
    /// Offset of the source address in the network header.
    saddr: u32,
    /// `nft` data type of an address.
    atype: u32,
}

const V4: Fam = Fam {
    af: nft::NFPROTO_IPV4,
    name: "ip",
    alen: 4,
    saddr: 12,
    atype: TYPE_IPADDR,
};
const V6: Fam = Fam {
    af: nft::NFPROTO_IPV6,
    name: "ip6",
    alen: 16,
    saddr: 8,
    atype: TYPE_IP6ADDR,
};

/// A set element: a guarded VNI, or a peer of a VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Elem {
    Vni(u32),
    Peer(u32, IpAddr),
}

impl Elem {
    fn vni(&self) -> u32 {
        match *self {
            Elem::Vni(v) | Elem::Peer(v, _) => v,
        }
    }

    fn set(&self) -> &'static str {
        match self {
            Elem::Vni(_) => VNIS,
            Elem::Peer(..) => PEERS,
        }
    }

    /// Whether family `fam`'s sets hold it (VNIs are guarded in both).
    fn in_fam(&self, fam: Fam) -> bool {
        match self {
            Elem::Vni(_) => true,
            Elem::Peer(_, ip) => ip.is_ipv6() == (fam == V6),
        }
    }

    /// The set key: `vnis` holds the VNI's 3 bytes; `peers` the address, then the VNI's
    /// 3 bytes and the zero byte the payload expression leaves in its register.
    fn key(&self) -> ([u8; 20], usize) {
        let mut k = [0u8; 20];
        let vni = &self.vni().to_be_bytes()[1..];
        let n = match self {
            Elem::Vni(_) => {
                let n = put(&mut k, vni);
                return (k, n);
            }
            Elem::Peer(_, IpAddr::V4(a)) => put(&mut k, &a.octets()),
            Elem::Peer(_, IpAddr::V6(a)) => put(&mut k, &a.octets()),
        };
        // A whole register word: the VNI and the zero byte `k` already holds.
        let n = n + put(&mut k[n..], vni) + 1;
        (k, n)
    }

    fn parse(set: &str, key: &[u8]) -> Option<Elem> {
        let vni = |b: &[u8]| Some(u32::from_be_bytes([0, *b.first()?, *b.get(1)?, *b.get(2)?]));
        if set == VNIS {
            return (key.len() == 3).then(|| vni(key)).flatten().map(Elem::Vni);
        }
        let ip: IpAddr = match key.len() {
            8 => <[u8; 4]>::try_from(&key[..4]).ok()?.into(),
            20 => <[u8; 16]>::try_from(&key[..16]).ok()?.into(),
            _ => return None,
        };
        Some(Elem::Peer(vni(&key[key.len() - 4..])?, ip))
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Vni(v) => write!(f, "{v}"),
            Elem::Peer(v, ip) => write!(f, "{ip} . {v}"),
        }
    }
}

fn put(out: &mut [u8], data: &[u8]) -> usize {
    out[..data.len()].copy_from_slice(data);
    data.len()
}

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

/// One family's table as read back.
#[derive(Debug, Default)]
struct Table {
    /// Each rule's comment and the packets it counted.
    rules: Vec<(String, u64)>,
    elems: BTreeSet<Elem>,
    /// Its rules and both sets could be read.
    sets: bool,
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
    sock: Socket,
    buf: MsgBuf,
    first: u32,
    what: Vec<String>,
    port: u16,
    ipv6: bool,
}

impl VxlanGuard {
    /// The name of our tables (`ip netplumb_vxlan`, `ip6 netplumb_vxlan`).
    pub const TABLE: &'static str = "netplumb_vxlan";

    /// A guard for namespace `ns` (its netlink socket is opened inside it). Creates
    /// nothing yet: the tables come with the first [`guard`](Self::guard) or peer.
    ///
    /// ```no_run
    /// let g = netplumb::firewall::VxlanGuard::open(&netplumb::Netns::current()?)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn open(ns: &Netns) -> Result<VxlanGuard> {
        Ok(VxlanGuard {
            sock: ns.run(Socket::netfilter)??,
            buf: MsgBuf::with_capacity(8 * 1024),
            first: 0,
            what: Vec::new(),
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
        let all = self.read_all()?.into_iter().flatten();
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
        let all = self.read_all()?.into_iter().flatten();
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
        let all = self.read_all()?.into_iter().flatten();
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
            let present = [g.exists(V4)?, g.exists(V6)?];
            g.begin();
            for (fam, _) in [V4, V6].into_iter().zip(present).filter(|p| p.1) {
                g.del_table(fam);
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
            match self.commit() {
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
            let have = g.read_all()?;
            let mut want: BTreeSet<Elem> = have
                .iter()
                .flatten()
                .flat_map(|t| &t.elems)
                .copied()
                .collect();
            edit(&mut want);
            g.begin();
            for (fam, t) in [V4, V6].into_iter().zip(&have) {
                g.sync(fam, t.as_ref(), &want);
            }
            Ok(())
        })
    }

    /// The comments of a family's rules, in order: they name the port, so a table made
    /// for another port (or by another version) does not match and is rebuilt.
    fn comments(&self, fam: Fam) -> Vec<String> {
        let p = format!("netplumb: VXLAN (udp {})", self.port);
        let mut c = vec![format!("{p} of guarded VNIs from non-peers: drop")];
        if fam == V6 {
            c.push(format!("{p} with its VNI in the first fragment: done"));
            c.push(format!("{p} without it: drop"));
        }
        c
    }

    /// Adds to the batch what family `fam` needs to hold `want`.
    fn sync(&mut self, fam: Fam, have: Option<&Table>, want: &BTreeSet<Elem>) {
        let mine: BTreeSet<Elem> = want.iter().copied().filter(|e| e.in_fam(fam)).collect();
        let peer = mine.iter().any(|e| matches!(e, Elem::Peer(..)));
        let vni = mine.iter().any(|e| matches!(e, Elem::Vni(..)));
        if have.is_none() && !peer && !(vni && (fam == V4 || self.ipv6)) {
            return;
        }
        let comments = self.comments(fam);
        let sound = have.filter(|t| t.sets && t.rules.iter().map(|r| &r.0).eq(comments.iter()));
        let Some(t) = sound else {
            if have.is_some() {
                self.del_table(fam);
            }
            self.skeleton(fam);
            return self.elems(fam, nft::NFT_MSG_NEWSETELEM, mine.iter());
        };
        // One batch: no frame is ever judged by a half-changed peer list.
        self.elems(fam, nft::NFT_MSG_DELSETELEM, t.elems.difference(&mine));
        self.elems(fam, nft::NFT_MSG_NEWSETELEM, mine.difference(&t.elems));
    }
}

// The batch: framing, the skeleton, elements.
impl VxlanGuard {
    fn begin(&mut self) {
        self.buf.clear();
        self.what.clear();
        self.first = self.sock.next_seq(0);
        nft::batch(&mut self.buf, false, self.first.wrapping_sub(1));
    }

    /// The sequence number of the next message, described by `what` (only on failure).
    fn seq(&mut self, what: String) -> u32 {
        let seq = self.first.wrapping_add(self.what.len() as u32);
        self.what.push(what);
        seq
    }

    fn commit(&mut self) -> Result<()> {
        let n = self.what.len();
        if n == 0 {
            return Ok(());
        }
        nft::batch(&mut self.buf, true, self.first.wrapping_add(n as u32));
        self.sock.next_seq(n as u32 + 1);
        let what = &self.what;
        let describe = |i: usize| (Op::Firewall, what.get(i).cloned().unwrap_or_default());
        self.sock
            .transact_batch(&self.buf, self.first, n, &describe)
    }

    fn del_table(&mut self, fam: Fam) {
        let seq = self.seq(format!("nft delete table {} {}", fam.name, Self::TABLE));
        let (m, t) = (nft::NFT_MSG_DELTABLE, Self::TABLE.as_bytes());
        nft::table(&mut self.buf, m, NlmF::CHANGE, seq, fam.af, t);
    }

    /// The table (created exclusively, so two processes racing cannot both make it), the
    /// sets, the chain and its rules.
    fn skeleton(&mut self, fam: Fam) {
        let (t, tb) = (Self::TABLE, Self::TABLE.as_bytes());
        let seq = self.seq(format!("nft add table {} {t}", fam.name));
        let (m, excl) = (nft::NFT_MSG_NEWTABLE, NlmF::NEW_EXCL);
        nft::table(&mut self.buf, m, excl, seq, fam.af, tb);
        let sets = [
            (VNIS, TYPE_INTEGER, 3, &[VNI_FIELD][..]),
            (
                PEERS,
                fam.atype << 6 | TYPE_INTEGER,
                fam.alen + 4,
                &[KeyField::Saddr(fam.af), VNI_FIELD],
            ),
        ];
        for (id, (set, key_type, key_len, fields)) in sets.into_iter().enumerate() {
            let seq = self.seq(format!("nft add set {} {t} {set}", fam.name));
            let (name, id, flags, data) = (set.as_bytes(), id as u32 + 1, 0, None);
            let spec = SetSpec {
                name,
                id,
                flags,
                key_type,
                key_len,
                data,
            };
            let mut ud = [0u8; 128];
            let n = nft::typeof_udata(fields, &mut ud);
            let head = (nft::NFT_MSG_NEWSET, excl, seq);
            nft::set_with_udata(&mut self.buf, head, fam.af, tb, &spec, &ud[..n]);
        }
        let seq = self.seq(format!("nft add chain {} {t} {CHAIN}", fam.name));
        let (hook, priority, kind, policy) = (nft::hook::INPUT, 0, &b"filter"[..], nft::NF_ACCEPT);
        let base = BaseChain {
            hook,
            priority,
            kind,
            policy,
        };
        let (m, names) = (nft::NFT_MSG_NEWCHAIN, (tb, CHAIN.as_bytes()));
        nft::chain(&mut self.buf, m, excl, seq, fam.af, names, Some(&base));
        self.rules(fam);
    }

    fn rules(&mut self, fam: Fam) {
        let load = |base, offset, len, dreg| Expr::Payload {
            base,
            offset,
            len,
            dreg,
        };
        let cmp = |op, data| Expr::Cmp { sreg: R0, op, data };
        let set = |set: &'static str, invert| Expr::Lookup {
            set: set.as_bytes(),
            sreg: R0,
            dreg: None,
            invert,
        };
        let vni = |dreg| load(PayloadBase::Transport, 12, 3, dreg);
        let (udp, port) = ([Proto::Udp.number()], self.port.to_be_bytes());
        let head = [
            Expr::Meta {
                key: nft::meta::L4PROTO,
                dreg: R0,
            },
            cmp(CmpOp::Eq, &udp[..]),
            load(PayloadBase::Transport, 2, 2, R0),
            cmp(CmpOp::Eq, &port[..]),
        ];
        let drop = Expr::Verdict(nft::NF_DROP, None);
        let saddr = load(PayloadBase::Network, fam.saddr, fam.alen, R0);
        let guard = [
            vni(R0),
            set(VNIS, false),
            saddr,
            vni(R0 + fam.alen / 4),
            set(PEERS, true),
            Expr::Counter,
            drop,
        ];
        let readable = [
            vni(R0),
            cmp(CmpOp::Gte, &[0; 3]),
            Expr::Verdict(nft::NF_ACCEPT, None),
        ];
        let bodies: [&[Expr<'_>]; 3] = [&guard, &readable, &[Expr::Counter, drop]];
        for (comment, body) in self.comments(fam).iter().zip(bodies) {
            let seq = self.seq(format!("nft add rule {} {} {CHAIN}", fam.name, Self::TABLE));
            let flags = NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::APPEND;
            let names = (Self::TABLE.as_bytes(), CHAIN.as_bytes());
            let r = nft::begin_rule(&mut self.buf, flags, seq, fam.af, names);
            for e in head.iter().chain(body) {
                e.put(&mut self.buf);
            }
            let mut ud = [0u8; 128];
            let n = nft::comment_udata(comment.as_bytes(), &mut ud);
            nft::end_rule(&mut self.buf, r, &ud[..n]);
        }
    }

    /// Adds (`NFT_MSG_NEWSETELEM` without `NLM_F_EXCL`: present ones are kept) or deletes
    /// elements, one message per set and chunk.
    fn elems<'a>(&mut self, fam: Fam, msg: u16, elems: impl Iterator<Item = &'a Elem>) {
        let (verb, flags) = match msg {
            nft::NFT_MSG_NEWSETELEM => ("add", NlmF::REQUEST | NlmF::ACK | NlmF::CREATE),
            _ => ("delete", NlmF::CHANGE),
        };
        let elems: Vec<&Elem> = elems.collect();
        for set in [VNIS, PEERS] {
            let of_set: Vec<&Elem> = elems.iter().copied().filter(|e| e.set() == set).collect();
            for chunk in of_set.chunks(ELEMS_PER_MSG) {
                let list: Vec<String> = chunk.iter().map(|e| e.to_string()).collect();
                let (t, list) = (Self::TABLE, list.join(", "));
                let seq = self.seq(format!(
                    "nft {verb} element {} {t} {set} {{ {list} }}",
                    fam.name
                ));
                let names = (t.as_bytes(), set.as_bytes());
                let tok = nft::begin_elems(&mut self.buf, msg, flags, seq, fam.af, names);
                for e in chunk {
                    let (k, n) = e.key();
                    nft::elem(&mut self.buf, &k[..n], ElemData::None, &[]);
                }
                nft::end_elems(&mut self.buf, tok);
            }
        }
    }
}

/// The body of an nf_tables message: what follows `struct nfgenmsg`.
fn body<'a>(m: &RawMsg<'a>) -> &'a [u8] {
    m.payload.get(4..).unwrap_or(&[])
}

// Reading back.
impl VxlanGuard {
    /// Runs a dump or a get; `false` when the table or set is not there (`ENOENT`).
    fn dump(
        &mut self,
        enc: &dyn Fn(&mut MsgBuf, u32),
        on: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<bool> {
        let what = "nf_tables vxlan guard";
        match self.sock.dump(what, Op::GetFirewall, enc, &mut || {}, on) {
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(true),
        }
    }

    /// Whether family `fam`'s table exists (a rule dump of a missing table is empty, not
    /// an error: ask for the table).
    fn exists(&mut self, fam: Fam) -> Result<bool> {
        let (get, t) = (NlmF::REQUEST | NlmF::ACK, Self::TABLE.as_bytes());
        let enc = |b: &mut MsgBuf, s| nft::table(b, nft::NFT_MSG_GETTABLE, get, s, fam.af, t);
        self.dump(&enc, &mut |_| Ok(()))
    }

    fn read_all(&mut self) -> Result<[Option<Table>; 2]> {
        Ok([self.read(V4)?, self.read(V6)?])
    }

    /// Family `fam`'s table, or `None` when it does not exist.
    fn read(&mut self, fam: Fam) -> Result<Option<Table>> {
        if !self.exists(fam)? {
            return Ok(None);
        }
        let t = Self::TABLE.as_bytes();
        let mut table = Table::default();
        let enc = |b: &mut MsgBuf, s| nft::dump(b, nft::NFT_MSG_GETRULE, s, fam.af, Some(t));
        table.sets = self.dump(&enc, &mut |m| {
            if m.ty == msg_type(nft::NFT_MSG_NEWRULE) && m.payload.first() == Some(&fam.af) {
                let r = nft::parse_rule(body(m))?;
                let comment = String::from_utf8_lossy(r.comment.unwrap_or_default());
                table.rules.push((comment.into_owned(), r.packets));
            }
            Ok(())
        })?;
        for set in [VNIS, PEERS] {
            let s = set.as_bytes();
            let enc = |b: &mut MsgBuf, seq| nft::dump_elems(b, seq, fam.af, (t, s));
            let elems = &mut table.elems;
            table.sets &= self.dump(&enc, &mut |m| {
                if m.ty == msg_type(nft::NFT_MSG_NEWSETELEM) {
                    nft::elem_keys(body(m), &mut |k| elems.extend(Elem::parse(set, k)))?;
                }
                Ok(())
            })?;
        }
        Ok(Some(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let v4: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        for (e, len) in [
            (Elem::Vni(0xff_ffff), 3),
            (Elem::Peer(42, v4), 8),
            (Elem::Peer(7, v6), 20),
        ] {
            let (k, n) = e.key();
            assert_eq!(n, len);
            assert_eq!(Elem::parse(e.set(), &k[..n]), Some(e));
        }
        assert_eq!(Elem::Vni(0x0a0b0c).key().0[..3], [0x0a, 0x0b, 0x0c]);
        assert_eq!(Elem::Peer(256, v4).key().0[..8], [192, 0, 2, 2, 0, 1, 0, 0]);
        assert_eq!(Elem::parse(VNIS, &[1, 2, 3, 4]), None);
        assert_eq!(Elem::Peer(256, v4).to_string(), "192.0.2.2 . 256");
    }

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
