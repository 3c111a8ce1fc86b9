//! Shared test policy: every privileged test runs inside `netns::sandbox`.
//!
//! With `CI=true`, a test that cannot create its namespaces fails; elsewhere it prints
//! `SKIPPED <name>: ...` to stderr, logs it (see [`skip`]) and returns.

#![allow(dead_code)]

pub mod certs;
pub mod etcd;
pub mod props;
pub mod raw;
pub mod skip;

#[allow(unused_imports)] // each test binary uses some of them
pub use skip::{
    cni_plugin, need, not_applicable, not_applicable_here, skip, skip_here, tool, witness,
};

use netplumb::netns::Sandbox;
use netplumb::{Netns, Rtnl};

/// Runs `f` in a fresh sandbox, applying the privilege policy above. `None` when the
/// test was skipped: no privileges, or a binary it [`need`]s is missing.
pub fn sandbox<T: Send>(name: &str, f: impl FnOnce(&Sandbox) -> T + Send) -> Option<T> {
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    // Resolved here, before the mount namespace changes: see `test_exe`.
    test_exe();
    let host_ino = Netns::current().map(|n| n.inode()).ok();
    let r = netplumb::netns::sandbox(|s| {
        // Guard: the body never runs in the namespace the test started in.
        assert_ne!(
            Some(s.host().inode()),
            host_ino,
            "sandbox still in the host namespace"
        );
        skip::set_current(name);
        match catch_unwind(AssertUnwindSafe(|| f(s))) {
            Ok(v) => Some(v),
            Err(p) if p.is::<skip::Skipped>() => None,
            Err(p) => resume_unwind(p),
        }
    });
    match r {
        Ok(v) => v,
        Err(e) => {
            skip(
                name,
                format_args!("needs CAP_NET_ADMIN+CAP_SYS_ADMIN ({e})"),
            );
            None
        }
    }
}

/// This test binary's path, read once from the thread the test started on.
///
/// Inside a sandbox the kernel resolves `/proc/self/exe` against the sandbox's new mount
/// namespace, where the binary's mount may be unreachable (a test run in a chroot then
/// gets the path outside the chroot, and spawning it fails with ENOENT). [`sandbox`] calls
/// this before entering, so later calls from inside return the path seen from outside.
pub fn test_exe() -> &'static std::path::Path {
    static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| std::env::current_exe().expect("this test binary's path"))
}

/// Gives the namespace of `inside` a default route of its own (via 192.0.2.254 on a
/// veth pair `d0`/`d1`), so that a connect into it fails when it adds its own, after its
/// veth is made. Returns the route, to delete it afterwards.
pub fn occupy_default_route(inside: &mut Rtnl) -> netplumb::route::Route {
    use netplumb::link::{LinkSet, Veth};
    inside.execute(&Veth::new("d0").peer("d1").up()).unwrap();
    inside.execute(&LinkSet::new("d1").up()).unwrap();
    let d0 = inside.link("d0").unwrap();
    inside
        .execute(&netplumb::addr::Addr::new(
            &d0,
            "192.0.2.1/24".parse().unwrap(),
        ))
        .unwrap();
    let gw = netplumb::route::Route::default_v4()
        .via("192.0.2.254".parse().unwrap())
        .dev(&d0);
    inside.execute(&gw).unwrap();
    gw
}

/// `target/<profile>/examples/NAME`, built by cargo (a no-op when `cargo test` has already
/// built the examples) into the target folder this test runs from, with this test's
/// features.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    use std::path::Path;
    let exe = test_exe();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target folder");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name, "--target-dir"])
        .arg(target_dir);
    cargo.current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    // The same features as this test, so the binary has the same backends.
    let features: Vec<&str> = [
        (cfg!(feature = "iptables"), "iptables"),
        (cfg!(feature = "etcd"), "etcd"),
    ]
    .iter()
    .filter_map(|&(on, f)| on.then_some(f))
    .collect();
    if !features.is_empty() {
        cargo.args(["--features", &features.join(",")]);
    }
    let st = cargo.status().expect("run cargo");
    assert!(st.success(), "cargo build --example {name} failed");
    let bin = profile_dir.join("examples").join(name);
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// Runs the witness `bin ARGS` inside `ns` (`nft list ruleset`, `iptables-save`, …) and
/// returns what it printed; fails the test when it fails. Without `bin` on PATH the test is
/// skipped ([`need`]); `None` when it cannot be started in `ns`.
pub fn run_in(ns: &Netns, bin: &str, args: &[&str]) -> Option<String> {
    run_path(ns, &need(bin), bin, args)
}

/// [`run_in`] for a witness the test can do without: `None` (and the test counted as
/// skipped, [`witness`]) when `bin` is not installed.
pub fn witness_in(ns: &Netns, bin: &str, args: &[&str]) -> Option<String> {
    run_path(ns, &witness(bin)?, bin, args)
}

fn run_path(ns: &Netns, path: &std::path::Path, bin: &str, args: &[&str]) -> Option<String> {
    let out = ns
        .spawn(
            std::process::Command::new(path)
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
        .ok()?
        .wait_with_output()
        .ok()?;
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An rtnl handle on the sandbox's host namespace.
pub fn rtnl(s: &Sandbox) -> Rtnl {
    Rtnl::open_in(s.host()).expect("rtnl in sandbox")
}

/// Names of the links in the namespace `rtnl` serves.
pub fn link_names(rtnl: &mut Rtnl) -> Vec<String> {
    rtnl.links()
        .expect("dump links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Whether a TCP client in `client` reaches a server bound to `bind` in `server`, and a
/// message goes there and back. Sockets keep the namespace they were created in, so they
/// are created inside each namespace and used from here.
pub fn tcp_reaches(server: &Netns, bind: SocketAddr, client: &Netns) -> bool {
    let listener = server
        .run(|| TcpListener::bind(bind))
        .expect("enter server namespace")
        .expect("bind server socket");
    let addr = listener.local_addr().expect("server address");
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        listener.set_nonblocking(false)?;
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut b = [0u8; 4];
        c.read_exact(&mut b)?;
        c.write_all(&b)
    });
    let ok = client
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
        .expect("enter client namespace")
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"ping")?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b)?;
            Ok(&b == b"ping")
        })
        .unwrap_or(false);
    if ok {
        srv.join().expect("server thread").expect("server side");
    }
    ok
}

/// The error a UDP send to `to` from inside `ns` gets, if any.
pub fn udp_send_error(ns: &Netns, to: SocketAddr) -> Option<std::io::Error> {
    ns.run(|| {
        let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .unwrap();
        let s = std::net::UdpSocket::bind(bind).ok()?;
        s.send_to(b"x", to).err()
    })
    .expect("enter namespace")
}

/// A TCP server in `ns` on `bind` that answers each connection with the address it sees
/// the client at, then closes. Returns the port.
pub fn serve_peer(ns: &Netns, bind: SocketAddr) -> u16 {
    let l = ns
        .run(|| TcpListener::bind(bind))
        .expect("enter namespace")
        .expect("bind server");
    let port = l.local_addr().expect("server address").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(peer.as_bytes());
        }
    });
    port
}

/// Connects from `ns` to `to`; returns what a [`serve_peer`] server said (the client
/// address it saw), or `None` when the connection fails.
pub fn call_peer(ns: &Netns, to: SocketAddr) -> Option<String> {
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(1500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .expect("enter namespace")
}

/// "Another machine": a namespace on an uplink of the sandbox's host, 192.0.2.2 to the
/// host's 192.0.2.1.
pub fn outside(s: &Sandbox) -> Netns {
    use netplumb::addr::Addr;
    use netplumb::link::{LinkSet, Veth};
    let o = Netns::new().expect("outside namespace");
    let mut r = rtnl(s);
    r.execute(&Veth::new("uplink").peer("eth0").peer_netns(&o).up())
        .expect("uplink");
    let up = r.link("uplink").expect("uplink");
    r.execute(&Addr::new(&up, "192.0.2.1/24".parse().expect("addr")))
        .expect("host address");
    let mut ro = Rtnl::open_in(&o).expect("rtnl outside");
    let e = ro.link("eth0").expect("eth0");
    ro.execute(&LinkSet::new(&e).up()).expect("eth0 up");
    ro.execute(&Addr::new(&e, "192.0.2.2/24".parse().expect("addr")))
        .expect("outside address");
    o
}

/// A folder under the system temp dir, unique to this process and call, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh, empty folder whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("netplumb-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: small and seeded, so a failing random test reproduces.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock and the process id (for tests that want variety).
    pub fn from_clock() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .expect("clock after 1970");
        Rng(t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32 | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A machine on an underlay segment: a fresh namespace whose `eth0` has `cidr` and is a
/// port of the sandbox's bridge `underlay` (created on first use), with `lo` up. What the
/// overlay tests use as hosts, rogue endpoints and "outside" machines.
pub fn underlay_machine(s: &Sandbox, name: &str, cidr: &str) -> Netns {
    use netplumb::addr::Addr;
    use netplumb::link::{Bridge, LinkSet, Veth};
    let ns = Netns::new().expect("namespace");
    let mut r = rtnl(s);
    if r.link("underlay").is_err() {
        r.execute(&Bridge::new("underlay").stp(false).up())
            .expect("underlay bridge");
    }
    let br = r.link("underlay").expect("underlay bridge");
    r.execute(
        &Veth::new(&format!("u-{name}"))
            .controller(br.index)
            .up()
            .peer("eth0")
            .peer_netns(&ns),
    )
    .expect("underlay veth");
    let mut inside = Rtnl::open_in(&ns).expect("rtnl inside");
    inside.execute(&LinkSet::new("lo").up()).expect("lo up");
    let e = inside.link("eth0").expect("eth0");
    inside.execute(&LinkSet::new(&e).up()).expect("eth0 up");
    inside
        .execute(&Addr::new(&e, cidr.parse().expect("cidr")))
        .expect("underlay address");
    ns
}

/// Runs `body(sandbox, backend)` in a fresh sandbox once `open(backend, host)` has shown
/// the firewall backend can be opened there. One that cannot (no iptables binaries) fails
/// the test under `CI=true` and skips it elsewhere. What the per-backend firewall, security
/// and reconcile tests share.
pub fn with_backend<T: Copy + Send + Sync>(
    name: &str,
    backend: T,
    open: fn(T, &Netns) -> netplumb::Result<netplumb::firewall::AnyFirewall>,
    body: fn(&Sandbox, T),
) {
    sandbox(name, |s| {
        if let Err(e) = open(backend, s.host()) {
            skip(name, format_args!("cannot open the firewall backend: {e}"));
            return;
        }
        body(s, backend)
    });
}

/// IPv6 link-local addresses and their routes, and multicast routes: the kernel adds them
/// by itself, some time after a link gets carrier, so snapshots leave them out.
pub fn kernel_made(net: &netplumb::IpNet) -> bool {
    match net.addr() {
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80 || a.is_multicast(),
        std::net::IpAddr::V4(_) => false,
    }
}

/// The addresses and routes of `r`'s namespace, kernel-made ones left out, as text.
pub fn addrs_and_routes(r: &mut Rtnl) -> (Vec<String>, Vec<String>) {
    let addrs = r
        .addrs(None)
        .unwrap()
        .iter()
        .filter(|a| !kernel_made(&a.addr))
        .map(|a| format!("{} {}", a.index, a.addr))
        .collect();
    let routes = r
        .routes()
        .unwrap()
        .iter()
        .filter(|r| !kernel_made(&r.dst))
        .map(|r| format!("{} {:?} {:?} {}", r.dst, r.via, r.oif, r.table))
        .collect();
    (addrs, routes)
}

/// Everything a network operation may change on `h`'s host, as text, for before/after
/// comparisons: links (name, kind, bridge, up), addresses and routes, the firewall
/// summary, networks, leases and attachments.
#[cfg(feature = "store")]
pub fn host_snapshot(h: &mut netplumb::network::Host) -> String {
    use netplumb::firewall::Firewall as _;
    let mut links: Vec<String> = h
        .rtnl()
        .links()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {:?} {:?} up={}",
                l.name,
                l.kind,
                l.controller,
                l.is_up()
            )
        })
        .collect();
    links.sort();
    let (addrs, routes) = addrs_and_routes(h.rtnl());
    let fw = format!("{:?}", h.firewall().state().unwrap());
    let nets: Vec<String> = h
        .networks()
        .unwrap()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let mut leases = Vec::new();
    for n in &nets {
        leases.extend(h.ipam().leases(n).unwrap().into_iter().map(|l| l.address));
    }
    let atts = h.attachments(None).unwrap().len();
    format!(
        "links {links:?}\naddrs {addrs:?}\nroutes {routes:?}\nfw {fw}\nnets {nets:?}\nleases {leases:?}\natts {atts}"
    )
}

/// One `#[test]` per firewall backend (module `nftables`, and `iptables` with that feature)
/// for each named `fn(&Sandbox, Backend)` of the calling file, each run in a fresh sandbox
/// through [`with_backend`] with `netplumb::firewall::open`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod nftables {
            use netplumb::firewall::Backend;
            $( #[test] fn $name() {
                $crate::common::with_backend(concat!("nftables::", stringify!($name)),
                    Backend::Nftables, netplumb::firewall::open, super::$name);
            } )*
        }
        #[cfg(feature = "iptables")]
        mod iptables {
            use netplumb::firewall::Backend;
            $( #[test] fn $name() {
                $crate::common::with_backend(concat!("iptables::", stringify!($name)),
                    Backend::Iptables, netplumb::firewall::open, super::$name);
            } )*
        }
    };
}

/// This test binary again, running only its ignored test `worker_process` (quietly, one
/// thread): the child process of the multi-process tests; they add its environment.
pub fn worker_command() -> std::process::Command {
    let mut c = std::process::Command::new(test_exe());
    c.args([
        "--exact",
        "worker_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ]);
    c
}

/// The names of the ports of bridge `bridge` in `r`'s namespace.
pub fn bridge_ports(r: &mut Rtnl, bridge: &str) -> std::collections::BTreeSet<String> {
    let br = r.link(bridge).unwrap().index;
    r.links()
        .unwrap()
        .into_iter()
        .filter(|l| l.controller == Some(br))
        .map(|l| l.name)
        .collect()
}

/// Makes new interfaces in `ns` skip IPv6 duplicate address detection, so link-local
/// addresses (and neighbour discovery with them) work at once.
pub fn no_dad(ns: &Netns) {
    ns.run(|| std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", "0"))
        .unwrap()
        .unwrap();
}

/// A fresh anonymous namespace with [`no_dad`].
pub fn fresh_ns() -> Netns {
    let ns = Netns::new().unwrap();
    no_dad(&ns);
    ns
}

/// A bridge `name`, up, with gateway address `v4` (and `v6`, without DAD).
pub fn bridge(host: &mut Rtnl, name: &str, v4: &str, v6: Option<&str>) {
    use netplumb::addr::Addr;
    use netplumb::link::Bridge;
    host.execute(&Bridge::new(name).stp(false).up()).unwrap();
    let br = host.link(name).unwrap();
    host.execute(&Addr::new(&br, v4.parse().unwrap())).unwrap();
    if let Some(a) = v6 {
        host.execute(&Addr::new(&br, a.parse().unwrap()).nodad())
            .unwrap();
    }
}
