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
//!
//! Its files: `layout` (names, families, set elements and their keys), `tables` (the
//! batch that writes the tables and the dumps that read them back), `guard` (the
//! [`VxlanGuard`] verbs, which edit the wanted elements and write the difference).

mod guard;
mod layout;
mod tables;

pub use guard::VxlanGuard;
