//! The process-based floor: what a hand-written script does for the same container with
//! the fewest processes. Attach: `ip -batch` on the host (veth with its peer straight in the
//! container, on the bridge, up), `ip -n CTR -batch` inside (`lo` and `eth0` up, address,
//! default route), one `iptables-restore --noflush` (the DNAT and the forward accept).
//! Detach: `iptables-restore --noflush` of the deletions, then `ip link del`. The address is
//! given (no IPAM). The network (bridge, gateway, forwarding, masquerade and the two
//! chains) is made once before, untimed, as netplumb's network is.

use std::process::Command;

use crate::world::{exec, first_line, Ctr, World, CONTAINER_PORT, GATEWAY, SUBNET};
use crate::Subject;

use netplumb::sysctl::Sysctl;

const BRIDGE: &str = "pbr0";

/// `ip -batch + iptables-restore --noflush (iproute2-X, iptables vX (backend))`.
pub fn label() -> String {
    let ip = first_line(Command::new("ip").arg("-V")).unwrap_or_default();
    let ip = ip
        .split([' ', ','])
        .find(|w| w.starts_with("iproute2"))
        .unwrap_or("iproute2");
    let ipt = first_line(Command::new("iptables").arg("--version")).unwrap_or_default();
    format!("ip -batch + iptables-restore --noflush ({ip}, {ipt})")
}

/// Whether `ip` and `iptables-restore` are there.
pub fn available() -> bool {
    first_line(Command::new("ip").arg("-V")).is_some()
        && first_line(Command::new("iptables-restore").arg("--version")).is_some()
}

/// The script runner, on a network made by [`IpBatch::open`].
pub struct IpBatch {
    attached: usize,
}

fn ip_batch(args: &[&str], script: &str) -> Result<(), String> {
    exec(Command::new("ip").args(args).args(["-batch", "-"]), script).map(|_| ())
}

fn restore(script: &str) -> Result<(), String> {
    exec(
        Command::new("iptables-restore").args(["--noflush", "--wait"]),
        script,
    )
    .map(|_| ())
}

impl IpBatch {
    /// The bridge with the gateway address, forwarding on, masquerade for the subnet, and
    /// the chains the containers' rules go to.
    pub fn open(w: &World) -> Result<IpBatch, String> {
        ip_batch(
            &[],
            &format!(
                "link add {BRIDGE} type bridge\naddr add {GATEWAY}/16 dev {BRIDGE}\nlink set {BRIDGE} up\n"
            ),
        )?;
        Sysctl::IpForward
            .set_bool(w.host(), true)
            .map_err(|e| e.to_string())?;
        restore(&format!(
            "*nat\n:PEERS-DNAT - [0:0]\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -j PEERS-DNAT\n\
             -A OUTPUT -m addrtype --dst-type LOCAL -j PEERS-DNAT\n\
             -A POSTROUTING -s {SUBNET} ! -o {BRIDGE} -j MASQUERADE\nCOMMIT\n\
             *filter\n:PEERS-FORWARD - [0:0]\n\
             -A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A FORWARD -o {BRIDGE} -j PEERS-FORWARD\n\
             -A FORWARD -i {BRIDGE} -j ACCEPT\nCOMMIT\n"
        ))?;
        Ok(IpBatch { attached: 0 })
    }
}

/// The container's two rules, appended (`-A`) or deleted (`-D`).
fn rules(op: &str, c: &Ctr) -> String {
    format!(
        "*nat\n{op} PEERS-DNAT -p tcp -m tcp --dport {port} -j DNAT --to-destination {ip}:{CONTAINER_PORT}\nCOMMIT\n\
         *filter\n{op} PEERS-FORWARD -d {ip}/32 -p tcp -m tcp --dport {CONTAINER_PORT} -j ACCEPT\nCOMMIT\n",
        port = c.host_port,
        ip = c.ip,
    )
}

fn veth(c: &Ctr) -> String {
    format!("vp{}", c.i)
}

impl Subject for IpBatch {
    fn attach(&mut self, c: &Ctr) -> Result<(), String> {
        let v = veth(c);
        ip_batch(
            &[],
            &format!(
                "link add {v} type veth peer name eth0 netns {id}\nlink set {v} master {BRIDGE} up\n",
                id = c.id
            ),
        )?;
        ip_batch(
            &["-n", &c.id],
            &format!(
                "link set lo up\nlink set eth0 up\naddr add {ip}/16 dev eth0\nroute add default via {GATEWAY}\n",
                ip = c.ip
            ),
        )?;
        restore(&rules("-A", c))?;
        self.attached += 1;
        Ok(())
    }

    fn detach(&mut self, c: &Ctr) -> Result<(), String> {
        restore(&rules("-D", c))?;
        exec(Command::new("ip").args(["link", "del", &veth(c)]), "")?;
        self.attached -= 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        match self.attached {
            0 => Ok(()),
            n => Err(format!("{n} containers still attached")),
        }
    }
}
