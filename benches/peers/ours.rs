//! netplumb: `Host::connect` with one published port on a bridge network with masquerade;
//! `Host::disconnect` one by one and `Host::disconnect_many`.

use crate::world::{Ctr, World, CONTAINER_PORT, SUBNET};
use crate::Subject;

use netplumb::network::{Container, Host, NetworkConfig};

const NET: &str = "bench";

/// netplumb on one network in the sandbox.
pub struct Ours {
    host: Host,
}

impl Ours {
    /// Opens the host context (records on the sandbox's `/run`) and creates the network:
    /// its bridge, gateway address and base firewall rules.
    pub fn open(w: &World) -> Result<Ours, String> {
        let mut host = Host::open_in(w.host(), "/run/peers-netplumb").map_err(|e| e.to_string())?;
        let cfg = NetworkConfig::new(NET)
            .bridge("npbr0")
            .subnet(SUBNET.parse().expect("subnet"));
        host.create_network(&cfg).map_err(|e| e.to_string())?;
        Ok(Ours { host })
    }
}

impl Subject for Ours {
    fn attach(&mut self, c: &Ctr) -> Result<(), String> {
        let port = format!("{}:{CONTAINER_PORT}/tcp", c.host_port)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let ctr = Container::new(&c.id, &c.ns).publish(port);
        self.host
            .connect(NET, &ctr)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn detach(&mut self, c: &Ctr) -> Result<(), String> {
        self.host.disconnect(NET, &c.id).map_err(|e| e.to_string())
    }

    fn detach_many(&mut self, cs: &[Ctr]) -> Result<(), String> {
        let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
        self.host
            .disconnect_many(NET, &ids)
            .map_err(|e| e.to_string())
    }

    fn detach_deferred(&mut self, c: &Ctr) -> Result<(), String> {
        self.host
            .defer_link_deletion(true)
            .and_then(|()| self.host.disconnect(NET, &c.id))
            .map_err(|e| e.to_string())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.host
            .defer_link_deletion(false)
            .map_err(|e| e.to_string())
    }

    fn finish(&mut self) -> Result<(), String> {
        let left = self.host.attachments(None).map_err(|e| e.to_string())?;
        if !left.is_empty() {
            return Err(format!("{} attachments left", left.len()));
        }
        self.host
            .remove_network(NET, false)
            .map_err(|e| e.to_string())
    }
}
