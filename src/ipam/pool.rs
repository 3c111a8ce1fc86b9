//! Address pools (Docker's `default-address-pools`), the choice of a free subnet for a new
//! network, parsing of user-given prefixes and addresses, and the integer arithmetic on
//! addresses that the rest of IPAM uses.
//!
//! Addresses are handled as `u128` (IPv4 in the low 32 bits), so that IPv4 and IPv6 share
//! one code path and an IPv6 /64 costs no more than an IPv4 /24.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use super::IpamError;

/// One address pool: `base` split into subnets of prefix length `size`
/// (`{"base": "10.0.0.0/8", "size": 24}` in Docker's `daemon.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool {
    base: IpNet,
    size: u8,
}

impl Pool {
    /// A pool handing out `/size` subnets of `base`.
    ///
    /// `base` must have no host bits set, and `size` must lie between `base`'s prefix
    /// length and the family's maximum.
    ///
    /// ```
    /// use netplumb::ipam::Pool;
    /// let pool = Pool::new("10.0.0.0/8".parse()?, 24)?;
    /// assert_eq!(pool.size(), 24);
    /// assert!(Pool::new("10.0.0.0/8".parse()?, 7).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(base: IpNet, size: u8) -> Result<Self, IpamError> {
        if base.trunc() != base {
            return Err(IpamError::cidr("pool", base, "host bits are set"));
        }
        if size < base.prefix_len() || size > base.max_prefix_len() || size == 0 {
            return Err(IpamError::invalid(
                "pool size",
                size,
                "must lie between the base's prefix length and the family's maximum",
            ));
        }
        Ok(Pool { base, size })
    }

    /// The prefix the subnets are taken from.
    pub fn base(&self) -> IpNet {
        self.base
    }

    /// The prefix length of each subnet.
    pub fn size(&self) -> u8 {
        self.size
    }

    /// The first `/size` subnet of this pool that overlaps none of `taken`, skipping
    /// whole taken networks at once (so a pool of 2^56 IPv6 /64s costs what it costs to
    /// walk `taken`, not the pool).
    fn first_free(&self, taken: &[IpNet]) -> Option<IpNet> {
        let start = to_u128(self.base.network());
        let end = to_u128(self.base.broadcast());
        let step = block(self.base.max_prefix_len(), self.size);
        let mut c = start;
        loop {
            let c_last = c + (step - 1);
            let blocker = taken
                .iter()
                .filter(|t| to_u128(t.network()) <= c_last && to_u128(t.broadcast()) >= c)
                .map(|t| to_u128(t.broadcast()))
                .max();
            let Some(blocked_to) = blocker else {
                let addr = from_u128(c, self.base.max_prefix_len() == 128);
                return IpNet::new(addr, self.size).ok();
            };
            if blocked_to >= end {
                return None;
            }
            // Next subnet boundary after the blocking network (`base` is aligned to `step`).
            let offset = blocked_to + 1 - start;
            c = start.checked_add(offset.div_ceil(step).checked_mul(step)?)?;
            if c > end {
                return None;
            }
        }
    }
}

/// The address pools new networks get their subnet from, in order of preference.
///
/// [`Pools::default`] is Docker's: 172.17.0.0/16 … 172.31.0.0/16 as /16s, then
/// 192.168.0.0/16 split into /20s. It has no IPv6 pool; add one to create IPv6 networks
/// without a subnet.
///
/// ```
/// use netplumb::ipam::{Pool, Pools};
/// let pools = Pools::new(vec![
///     Pool::new("10.0.0.0/8".parse()?, 24)?,
///     Pool::new("fd00:1::/48".parse()?, 64)?,
/// ]);
/// assert_eq!(pools.iter().count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools(Vec<Pool>);

impl Pools {
    /// Pools tried in the given order.
    pub fn new(pools: Vec<Pool>) -> Self {
        Pools(pools)
    }

    /// The pools, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Pool> {
        self.0.iter()
    }

    /// The first subnet of the given family, in pool order, that overlaps none of `taken`.
    pub fn first_free(&self, ipv6: bool, taken: &[IpNet]) -> Option<IpNet> {
        self.0
            .iter()
            .filter(|p| (p.base.max_prefix_len() == 128) == ipv6)
            .find_map(|p| p.first_free(taken))
    }
}

impl Default for Pools {
    fn default() -> Self {
        let mut pools: Vec<Pool> = (17..=31)
            .map(|b| Pool {
                base: IpNet::new(Ipv4Addr::new(172, b, 0, 0).into(), 16).expect("valid prefix"),
                size: 16,
            })
            .collect();
        pools.push(Pool {
            base: IpNet::new(Ipv4Addr::new(192, 168, 0, 0).into(), 16).expect("valid prefix"),
            size: 20,
        });
        Pools(pools)
    }
}

/// Parses a subnet or range in CIDR notation, refusing a malformed value or one with host
/// bits set (`172.28.5.0/16`, as Docker does). `field` names the parameter in the error.
///
/// ```
/// use netplumb::ipam::{parse_subnet, IpamError};
/// assert_eq!(parse_subnet("subnet", "172.28.0.0/16")?.to_string(), "172.28.0.0/16");
/// let err = parse_subnet("subnet", "172.28.0.0/33").unwrap_err();
/// assert!(matches!(err, IpamError::InvalidCidr { field: "subnet", ref value, .. } if value == "172.28.0.0/33"));
/// # Ok::<(), IpamError>(())
/// ```
pub fn parse_subnet(field: &'static str, value: &str) -> Result<IpNet, IpamError> {
    let net = IpNet::from_str(value.trim()).map_err(|_| {
        IpamError::cidr(
            field,
            value,
            "not an address/prefix-length in CIDR notation",
        )
    })?;
    if net.trunc() != net {
        return Err(IpamError::cidr(field, value, "host bits are set"));
    }
    Ok(net)
}

/// Parses an address (a gateway, a requested `--ip`, a reserved address). `field` names
/// the parameter in the error.
///
/// ```
/// use netplumb::ipam::parse_address;
/// assert!(parse_address("gateway", "172.28.0.1").is_ok());
/// assert!(parse_address("gateway", "172.28.0.256").is_err());
/// ```
pub fn parse_address(field: &'static str, value: &str) -> Result<IpAddr, IpamError> {
    IpAddr::from_str(value.trim())
        .map_err(|_| IpamError::invalid(field, value, "not an IP address"))
}

/// Number of addresses in a `/size` block of a `bits`-bit family (`size >= 1`).
fn block(bits: u8, size: u8) -> u128 {
    1u128 << (bits - size)
}

/// An address as an integer (IPv4 in the low 32 bits).
pub(super) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for the given family.
pub(super) fn from_u128(v: u128, ipv6: bool) -> IpAddr {
    if ipv6 {
        Ipv6Addr::from(v).into()
    } else {
        Ipv4Addr::from(v as u32).into()
    }
}

/// The first and last address of `subnet` that may be handed out: not the network
/// address, and for IPv4 not the broadcast address (RFC 3021: /31 and /32 use all).
pub(super) fn usable(subnet: &IpNet) -> (u128, u128) {
    let (lo, hi) = (to_u128(subnet.network()), to_u128(subnet.broadcast()));
    match subnet {
        IpNet::V4(n) if n.prefix_len() >= 31 => (lo, hi),
        IpNet::V4(_) => (lo + 1, hi - 1),
        IpNet::V6(n) if n.prefix_len() == 128 => (lo, hi),
        IpNet::V6(_) => (lo + 1, hi),
    }
}

/// Whether two prefixes share an address.
pub(super) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults_in_order() {
        let p = Pools::default();
        assert_eq!(p.first_free(false, &[]), Some(net("172.17.0.0/16")));
        let taken: Vec<IpNet> = (17..=31).map(|b| net(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(p.first_free(false, &taken), Some(net("192.168.0.0/20")));
        assert_eq!(
            p.first_free(false, &[net("172.16.0.0/12")]),
            Some(net("192.168.0.0/20"))
        );
        assert_eq!(p.first_free(true, &[]), None);
    }

    #[test]
    fn skips_overlaps_of_any_size() {
        let p = Pools::new(vec![Pool::new(net("10.0.0.0/8"), 24).unwrap()]);
        assert_eq!(
            p.first_free(false, &[net("10.0.0.128/25")]),
            Some(net("10.0.1.0/24"))
        );
        assert_eq!(
            p.first_free(false, &[net("10.0.0.0/16"), net("10.1.0.0/24")]),
            Some(net("10.1.1.0/24"))
        );
        assert_eq!(p.first_free(false, &[net("0.0.0.0/0")]), None);
        let last = net("10.255.255.0/24");
        let all_but_last = [
            net("10.0.0.0/9"),
            net("10.128.0.0/10"),
            net("10.192.0.0/11"),
            net("10.224.0.0/12"),
            net("10.240.0.0/13"),
            net("10.248.0.0/14"),
            net("10.252.0.0/15"),
            net("10.254.0.0/16"),
            net("10.255.0.0/17"),
            net("10.255.128.0/18"),
            net("10.255.192.0/19"),
            net("10.255.224.0/20"),
            net("10.255.240.0/21"),
            net("10.255.248.0/22"),
            net("10.255.252.0/23"),
            net("10.255.254.0/24"),
        ];
        assert_eq!(p.first_free(false, &all_but_last), Some(last));
    }

    #[test]
    fn ipv6_pools_do_not_enumerate() {
        let p = Pools::new(vec![Pool::new(net("fd00::/8"), 64).unwrap()]);
        assert_eq!(
            p.first_free(true, &[net("fd00::/9")]),
            Some(net("fd80::/64"))
        );
        assert_eq!(p.first_free(true, &[net("fd00::/8")]), None);
    }

    #[test]
    fn usable_bounds() {
        assert_eq!(usable(&net("10.0.0.0/30")), (0x0a00_0001, 0x0a00_0002));
        assert_eq!(usable(&net("10.0.0.0/31")), (0x0a00_0000, 0x0a00_0001));
        assert_eq!(
            usable(&net("fd00::/64")).0,
            to_u128("fd00::1".parse().unwrap())
        );
        assert_eq!(
            usable(&net("fd00::/64")).1,
            to_u128("fd00::ffff:ffff:ffff:ffff".parse().unwrap())
        );
    }

    #[test]
    fn parse_errors_name_the_value() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "banana",
            "10.0.0.1/24",
        ] {
            match parse_subnet("subnet", bad) {
                Err(IpamError::InvalidCidr {
                    field: "subnet",
                    value,
                    ..
                }) => assert_eq!(value, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(Pool::new(net("10.0.0.1/8"), 24).is_err());
        assert!(Pool::new(net("10.0.0.0/8"), 33).is_err());
    }
}
