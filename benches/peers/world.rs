//! The throwaway world one run happens in: the sandbox's namespace is the "host", an
//! uplink leads to an "outside" namespace (another machine, 192.0.2.2 to the host's
//! 192.0.2.1), and each container is a named namespace under the sandbox's `/run/netns`.
//! Also: running a peer's process, and the correctness and leftover checks.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
use netplumb::link::{LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::{Netns, Rtnl};

/// Every subject's network: the same subnet, each in its own sandbox.
pub const SUBNET: &str = "10.88.0.0/16";
/// The network's gateway (the bridge's address).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// The host's address on the uplink.
pub const HOST_UPLINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The outside namespace's address.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The port every container publishes (host port `8000 + i`).
pub const CONTAINER_PORT: u16 = 80;

/// One container: its namespace and what it asks for.
pub struct Ctr {
    /// The container id (also the name of its namespace).
    pub id: String,
    /// Its network namespace.
    pub ns: Netns,
    /// The namespace's file (`CNI_NETNS`, netavark's argument).
    pub path: PathBuf,
    /// Its address, for the peers that take a static one (netavark gets addresses from
    /// its caller; the `ip` floor has no IPAM). netplumb and CNI allocate their own.
    pub ip: Ipv4Addr,
    /// The published host port (`8000 + i` → 80/tcp).
    pub host_port: u16,
    /// Its index.
    pub i: usize,
}

/// The sandbox of one run and its outside namespace.
pub struct World<'s> {
    sandbox: &'s Sandbox,
    outside: Netns,
}

fn err(what: &str) -> impl Fn(netplumb::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl<'s> World<'s> {
    /// Sets up the uplink to the outside namespace.
    pub fn new(sandbox: &'s Sandbox) -> Result<World<'s>, String> {
        let outside = Netns::new().map_err(err("outside namespace"))?;
        let mut r = Rtnl::open_in(sandbox.host()).map_err(err("rtnl"))?;
        let veth = Veth::new("uplink").peer("eth0").peer_netns(&outside).up();
        r.execute(&veth).map_err(err("uplink"))?;
        let up = r.link("uplink").map_err(err("uplink"))?;
        let host = Addr::new(&up, format!("{HOST_UPLINK}/24").parse().expect("addr"));
        r.execute(&host).map_err(err("uplink address"))?;
        let mut ro = Rtnl::open_in(&outside).map_err(err("rtnl outside"))?;
        for name in ["lo", "eth0"] {
            let l = ro.link(name).map_err(err("outside link"))?;
            ro.execute(&LinkSet::new(&l).up())
                .map_err(err("outside up"))?;
        }
        let e = ro.link("eth0").map_err(err("outside eth0"))?;
        let a = Addr::new(&e, format!("{OUTSIDE}/24").parse().expect("addr"));
        ro.execute(&a).map_err(err("outside address"))?;
        Ok(World { sandbox, outside })
    }

    /// The sandbox's namespace (the host).
    pub fn host(&self) -> &Netns {
        self.sandbox.host()
    }

    /// Container `i`: a fresh named namespace `peersNNNNN`.
    pub fn ctr(&self, i: usize) -> Result<Ctr, String> {
        let id = format!("peers{i:05}");
        let ns = self.sandbox.netns_dir().create(&id).map_err(err("netns"))?;
        Ok(Ctr {
            path: self.sandbox.netns_dir().path(&id),
            ns,
            ip: Ipv4Addr::from(u32::from(GATEWAY) + 1 + i as u32),
            host_port: 8000 + i as u16,
            id,
            i,
        })
    }

    /// Deletes a container's namespace name (the namespace goes with the last handle).
    pub fn drop_ctr(&self, c: Ctr) {
        let _ = self.sandbox.netns_dir().delete(&c.id);
    }

    /// Checks that `c` reaches the outside through masquerade (the outside sees the host's
    /// uplink address) and that its published port is reachable from the outside.
    pub fn check(&self, c: &Ctr) -> Result<(), String> {
        let l = listen(&self.outside, SocketAddr::from((OUTSIDE, 0)))?;
        let to = l.local_addr().map_err(|e| e.to_string())?;
        let srv = serve_once(l, |mut s, peer| {
            let _ = s.write_all(peer.ip().to_string().as_bytes());
        });
        let seen =
            c.ns.run(|| {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut out = String::new();
                s.read_to_string(&mut out).map(|_| out)
            })
            .map_err(err("enter container"))?;
        let _ = srv.join();
        match seen {
            Ok(ip) if ip == HOST_UPLINK.to_string() => {}
            Ok(ip) => return Err(format!("outbound: the outside saw {ip}, not {HOST_UPLINK}")),
            Err(e) => return Err(format!("outbound from {}: {e}", c.id)),
        }
        let l = listen(&c.ns, SocketAddr::from(([0, 0, 0, 0], CONTAINER_PORT)))?;
        let srv = serve_once(l, |mut s, _| {
            let mut b = [0u8; 4];
            if s.read_exact(&mut b).is_ok() {
                let _ = s.write_all(&b);
            }
        });
        let to = SocketAddr::from((HOST_UPLINK, c.host_port));
        let echo = self
            .outside
            .run(|| -> std::io::Result<[u8; 4]> {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"ping")?;
                let mut b = [0u8; 4];
                s.read_exact(&mut b).map(|_| b)
            })
            .map_err(err("enter outside"))?;
        let _ = srv.join();
        match echo {
            Ok(b) if &b == b"ping" => Ok(()),
            Ok(b) => Err(format!("published port {to}: got {b:?}")),
            Err(e) => Err(format!("published port {to} → {}:80: {e}", c.id)),
        }
    }

    /// What a detached run left in the sandbox: veths other than the uplink, and DNAT
    /// rules in the iptables tables (netplumb's nf_tables state is checked by netplumb).
    pub fn leftovers(&self) -> Result<Vec<String>, String> {
        let mut r = Rtnl::open_in(self.host()).map_err(err("rtnl"))?;
        let links = r.links().map_err(err("links"))?;
        let mut left: Vec<String> = links
            .into_iter()
            .filter(|l| l.is_kind("veth") && l.name != "uplink")
            .map(|l| format!("link {}", l.name))
            .collect();
        if let Ok(save) = exec(&mut Command::new("iptables-save"), "") {
            left.extend(
                save.lines()
                    .filter(|l| l.contains("--to-destination"))
                    .map(str::to_owned),
            );
        }
        Ok(left)
    }
}

/// A listening socket created inside `ns` (sockets keep their namespace).
fn listen(ns: &Netns, at: SocketAddr) -> Result<TcpListener, String> {
    ns.run(|| TcpListener::bind(at))
        .map_err(err("enter namespace"))?
        .map_err(|e| format!("bind {at}: {e}"))
}

/// Accepts one connection within 3 s on another thread and hands it to `f`.
fn serve_once(
    l: TcpListener,
    f: impl FnOnce(TcpStream, SocketAddr) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        if l.set_nonblocking(true).is_err() {
            return;
        }
        while Instant::now() < deadline {
            match l.accept() {
                Ok((s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    return f(s, peer);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// Runs `cmd` (started from the calling thread, so in its namespaces) with `stdin` on its
/// standard input; returns its standard output, or an error naming its output.
pub fn exec(cmd: &mut Command, stdin: &str) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))?;
    let mut input = child.stdin.take().expect("piped stdin");
    let written = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait {:?}: {e}", cmd.get_program()))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    if !out.status.success() || written.is_err() {
        return Err(format!(
            "{:?} {:?}: {}: {} {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line `cmd` prints (a `--version`), or `None` if it does not run.
pub fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| s.lines().next().unwrap_or("").trim().to_owned())
}
