//! [`PortAllocator`]: resolves [`PortMapping`]s to concrete host ports, handing out free
//! ports for "any port" mappings the way Docker's port allocator does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;

use super::book::PortBook;
use super::error::AllocError;
use super::published::PublishedPort;
use super::range::{HostPorts, PortRange, Proto};
use super::registry::{Cached, Locked, Registry, Stamp};
use super::spec::PortMapping;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::sysctl::Sysctl;

/// The folder of the published-port registry unless [`PortAllocator::registry_dir`] says
/// otherwise. `/run` is cleared at boot, as the host ports it records are.
pub const DEFAULT_REGISTRY_DIR: &str = "/run/netplumb/ports";

/// The host address of mappings that name none: `0.0.0.0`, every IPv4 address, as Docker's
/// default `host_binding_ipv4` (its `--ip` option).
pub const DEFAULT_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Hands out host ports in one namespace and keeps the registry of what it published.
///
/// - **Fixed ports** (`8080:80`, `8000-8010:80-90`) are taken as asked, or refused when
///   already published through the registry ([`AllocError::AlreadyPublished`]) or used by a
///   socket in the namespace ([`AllocError::InUse`]).
/// - **Any port** (`80`, `127.0.0.1::80`, `-P`) comes from the dynamic range: the one set
///   with [`PortAllocator::range`], else the namespace's `net.ipv4.ip_local_port_range`
///   (32768-60999 on a stock kernel), read inside the namespace at each call. A host range
///   with one container port (`8000-8010:80`) is searched the same way.
/// - **Order**, as Docker's allocator: per protocol, host address and range, the search
///   starts after the last port handed out and goes round to the range start, so the first
///   mappings get 32768, 32769, … and a released port is reused only after the others.
/// - **Free** means: no published port of the same protocol on the same host address, or
///   on an unspecified address (`0.0.0.0`, `::`) of the same family, which covers all
///   others ([`PublishedPort::overlaps`]); and, for TCP and UDP, a socket of that protocol
///   can be bound to the address and port inside the namespace (so a listening server or
///   a connection's local port makes it skip the port). SCTP relies on the registry alone.
/// - **Concurrency**: the registry is a file in [`PortAllocator::registry_dir`], read and
///   rewritten under an exclusive `flock`, so threads and processes sharing the folder
///   never get the same port. Use one folder per host namespace.
///
/// - **Loopback**: a port on 127.0.0.1 is served to the host's own clients (see
///   [`Host`](crate::network::Host)); one on `::1` is refused
///   ([`AllocError::Ipv6Loopback`]): IPv6 has no `route_localnet`, and only a userland
///   proxy, which netplumb does not run, could serve it.
///
/// The probe sockets are closed again at once: the ports are reserved by the registry, and
/// carrying traffic to the container is the firewall rules' job.
///
/// ```no_run
/// use netplumb::ports::{port_lines, PortAllocator, PortMapping};
/// use netplumb::Netns;
///
/// let alloc = PortAllocator::new(&Netns::current()?);
/// let published = alloc.publish(&[PortMapping::parse("80")?, PortMapping::parse("127.0.0.1:8080:80")?])?;
/// println!("{}", port_lines(&published).join("\n")); // 80/tcp -> 0.0.0.0:32768 …
/// alloc.release(&published)?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PortAllocator {
    netns: Netns,
    dir: PathBuf,
    range: Option<PortRange>,
    default_ip: IpAddr,
    /// The registry as this process last read or wrote it (shared by clones).
    cache: std::sync::Arc<std::sync::Mutex<Option<Cached>>>,
}

/// One container port to place.
#[derive(Debug, Clone, Copy)]
struct Job {
    proto: Proto,
    ip: IpAddr,
    container: u16,
    want: Want,
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Fixed(u16),
    AnyIn(PortRange),
}

impl PortAllocator {
    /// An allocator for host ports in `netns`, with the registry in
    /// [`DEFAULT_REGISTRY_DIR`], the namespace's ephemeral range and [`DEFAULT_HOST_IP`].
    pub fn new(netns: &Netns) -> Self {
        PortAllocator {
            netns: netns.clone(),
            dir: PathBuf::from(DEFAULT_REGISTRY_DIR),
            range: None,
            default_ip: DEFAULT_HOST_IP,
            cache: Default::default(),
        }
    }

    /// Keeps the registry in `dir` (created on first use) instead of [`DEFAULT_REGISTRY_DIR`].
    #[must_use]
    pub fn registry_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self.cache = Default::default();
        self
    }

    /// Hands out "any port" mappings from `range` instead of `net.ipv4.ip_local_port_range`.
    #[must_use]
    pub fn range(mut self, range: PortRange) -> Self {
        self.range = Some(range);
        self
    }

    /// The host address of mappings that name none (Docker's `--ip`,
    /// `com.docker.network.bridge.host_binding_ipv4`); [`DEFAULT_HOST_IP`] unless set.
    ///
    /// Docker also publishes such mappings on `[::]` when IPv6 is on; here that is a second
    /// mapping with `host_ip` `::`.
    #[doc(alias = "host_binding_ipv4")]
    #[must_use]
    pub fn default_host_ip(mut self, ip: IpAddr) -> Self {
        self.default_ip = ip;
        self
    }

    /// The namespace whose ports are handed out.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The range "any port" mappings come from: the configured one, else the namespace's
    /// `net.ipv4.ip_local_port_range`.
    pub fn dynamic_range(&self) -> Result<PortRange> {
        match self.range {
            Some(r) => Ok(r),
            None => parse_local_port_range(&Sysctl::IpLocalPortRange.get(&self.netns)?),
        }
    }

    /// Publishes `mappings`, all or none: resolves each container port to a host address
    /// and port, records them in the registry and returns them in order.
    ///
    /// A mapping's container range yields one [`PublishedPort`] per port. On any failure
    /// the registry is left as it was.
    pub fn publish(&self, mappings: &[PortMapping]) -> Result<Vec<PublishedPort>> {
        let jobs = self.plan(mappings)?;
        let locked = Locked::acquire(&self.dir)?;
        let (stamp, mut reg) = locked.load(self.take_cache())?;
        let published = self.netns.run(|| assign(&mut reg, &jobs))??;
        let stamp = locked.store(stamp, &mut reg)?;
        self.put_cache(stamp, reg);
        if log::log_enabled!(log::Level::Trace) {
            for p in &published {
                log::trace!("publish {p}");
            }
        }
        Ok(published)
    }

    /// Returns `ports` to the pool (matching on protocol, host address and host port).
    /// Ports that are not published are ignored, so releasing twice is harmless.
    pub fn release(&self, ports: &[PublishedPort]) -> Result<()> {
        let locked = Locked::acquire(&self.dir)?;
        let (mut stamp, mut reg) = locked.load(self.take_cache())?;
        let mut changed = false;
        for p in ports {
            changed |= reg.remove(p);
        }
        if changed {
            stamp = locked.store(stamp, &mut reg)?;
        }
        self.put_cache(stamp, reg);
        Ok(())
    }

    /// Every port published through the registry, ordered by protocol and host port.
    pub fn published(&self) -> Result<Vec<PublishedPort>> {
        let locked = Locked::acquire(&self.dir)?;
        let (stamp, reg) = locked.load(self.take_cache())?;
        let all = reg.all();
        self.put_cache(stamp, reg);
        Ok(all)
    }

    /// Publishes `mappings` as [`PortAllocator::publish_in`] does, and each one without a
    /// host address on `[::]` too, with the host port it got on the default address (as
    /// Docker 27+ and netavark publish on a dual-stack network).
    pub(crate) fn publish_dual_stack_in(
        &self,
        book: &mut dyn PortBook,
        mappings: &[PortMapping],
    ) -> Result<Vec<PublishedPort>> {
        let (bare, named): (Vec<PortMapping>, Vec<PortMapping>) =
            mappings.iter().cloned().partition(|m| m.host_ip.is_none());
        let mut out = self.publish_in(book, &bare)?;
        let twins: Vec<PortMapping> = out
            .iter()
            .map(|p| {
                let one = |port| PortRange::new(port, port);
                Ok(PortMapping::new(one(p.container_port)?)
                    .proto(p.proto)
                    .host_ip(Ipv6Addr::UNSPECIFIED.into())
                    .host_ports(HostPorts::Range(one(p.host_port)?)))
            })
            .collect::<Result<_>>()?;
        out.extend(self.publish_in(book, &twins)?);
        out.extend(self.publish_in(book, &named)?);
        Ok(out)
    }

    /// Publishes `mappings` as [`PortAllocator::publish`] does, recorded in `book` (the
    /// caller's transaction) instead of the registry file.
    pub(crate) fn publish_in(
        &self,
        book: &mut dyn PortBook,
        mappings: &[PortMapping],
    ) -> Result<Vec<PublishedPort>> {
        let jobs = self.plan(mappings)?;
        self.netns.run(|| assign(book, &jobs))?
    }

    /// Releases `ports` from `book`, as [`PortAllocator::release`] does from the registry.
    pub(crate) fn release_in(book: &mut dyn PortBook, ports: &[PublishedPort]) -> Result<()> {
        for p in ports {
            book.remove(p)?;
        }
        Ok(())
    }

    fn take_cache(&self) -> Option<Cached> {
        self.cache.lock().ok().and_then(|mut c| c.take())
    }

    fn put_cache(&self, stamp: Stamp, reg: Registry) {
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((stamp, reg));
        }
    }

    /// Validates `mappings` and splits them into one job per container port.
    fn plan(&self, mappings: &[PortMapping]) -> Result<Vec<Job>> {
        let mut dynamic = None;
        let mut jobs = Vec::new();
        for m in mappings {
            m.validate()?;
            let (proto, ip, ctr) = (
                m.proto,
                m.host_ip.unwrap_or(self.default_ip),
                m.container_ports,
            );
            if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
                return Err(AllocError::Ipv6Loopback { proto, host_ip: ip }.into());
            }
            let job = |container, want| Job {
                proto,
                ip,
                container,
                want,
            };
            match m.host_ports {
                HostPorts::Range(h) if h.count() == ctr.count() => {
                    jobs.extend(
                        h.iter()
                            .zip(ctr.iter())
                            .map(|(hp, cp)| job(cp, Want::Fixed(hp))),
                    );
                }
                HostPorts::Range(h) => jobs.push(job(ctr.start(), Want::AnyIn(h))),
                HostPorts::Any => {
                    let r = match dynamic {
                        Some(r) => r,
                        None => *dynamic.insert(self.dynamic_range()?),
                    };
                    jobs.extend(ctr.iter().map(|cp| job(cp, Want::AnyIn(r))));
                }
            }
        }
        Ok(jobs)
    }
}

/// Parses `LOW HIGH` as the kernel prints `ip_local_port_range`.
fn parse_local_port_range(value: &str) -> Result<PortRange> {
    let mut it = value.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo > 0 && lo <= hi => Ok(PortRange::new(lo, hi)?),
        _ => Err(Error::invalid(
            "net.ipv4.ip_local_port_range",
            value,
            "expected two ports LOW HIGH",
        )),
    }
}

/// Places every job, recording each in `reg` so later jobs see it. Runs inside the
/// namespace, where the probe sockets are made.
fn assign(reg: &mut dyn PortBook, jobs: &[Job]) -> Result<Vec<PublishedPort>> {
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let port = match job.want {
            Want::Fixed(p) => take_fixed(reg, job, p)?,
            Want::AnyIn(r) => take_any(reg, job, r)?,
        };
        let p = PublishedPort::new(job.proto, job.ip, port, job.container);
        reg.insert(p)?;
        out.push(p);
    }
    Ok(out)
}

fn take_fixed(reg: &mut dyn PortBook, job: &Job, port: u16) -> Result<u16> {
    let addr = SocketAddr::new(job.ip, port);
    let proto = job.proto;
    if reg.conflict(proto, job.ip, port)? {
        return Err(AllocError::AlreadyPublished { proto, addr }.into());
    }
    if !probe(proto, addr)? {
        return Err(AllocError::InUse { proto, addr }.into());
    }
    Ok(port)
}

/// The first free port of `range` after the range's cursor, going round; moves the cursor.
fn take_any(reg: &mut dyn PortBook, job: &Job, range: PortRange) -> Result<u16> {
    let key = (job.proto, job.ip, range);
    let first = match reg.cursor(&key)? {
        Some(last) if range.contains(last) && last < range.end() => last + 1,
        _ => range.start(),
    };
    let (start, count) = (u32::from(range.start()), u32::from(range.count()));
    for i in 0..count {
        let offset = (u32::from(first) - start + i) % count;
        let port = u16::try_from(start + offset).expect("inside a u16 range");
        if reg.conflict(job.proto, job.ip, port)? {
            continue;
        }
        if probe(job.proto, SocketAddr::new(job.ip, port))? {
            reg.set_cursor(key, port)?;
            return Ok(port);
        }
    }
    Err(AllocError::Exhausted {
        proto: job.proto,
        host_ip: job.ip,
        range,
    }
    .into())
}

/// Whether a socket of `proto` can be bound to `addr` in this thread's namespace: `false`
/// when the address is in use, an error when binding fails otherwise.
fn probe(proto: Proto, addr: SocketAddr) -> Result<bool> {
    let bound = match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
        Proto::Sctp => return Ok(true),
    };
    match bound {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(false),
        Err(source) => Err(AllocError::Probe {
            proto,
            addr,
            source,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_port_range_values() {
        assert_eq!(
            parse_local_port_range("32768\t60999\n").unwrap(),
            PortRange::new(32768, 60999).unwrap()
        );
        assert_eq!(
            parse_local_port_range("40000 40000").unwrap(),
            PortRange::single(40000).unwrap()
        );
        for bad in [
            "",
            "32768",
            "60999 32768",
            "0 10",
            "1 2 3",
            "a b",
            "1 70000",
        ] {
            let e = parse_local_port_range(bad).unwrap_err();
            assert!(e.is_invalid(), "{bad:?}: {e}");
        }
    }
}
