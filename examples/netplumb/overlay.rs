//! Overlay networks on the command line (`--store etcd://HOST:PORT`, feature `etcd`; over
//! TLS with `--store-cacert`, `--store-cert` and `--store-key`, as a user with
//! `--store-user`):
//! `network create --driver overlay`, and `ls`, `inspect`, `rm`, `connect`, `disconnect`
//! on overlay networks. The definitions and addresses live in etcd; this host's part (the
//! bridge, the VXLAN device, the container's veths) is made by `connect`, which also
//! writes the FDB/neighbour entries for the other hosts' containers known at that moment
//! (`network sync NAME` refreshes them).

use std::net::IpAddr;
use std::sync::Arc;

use netplumb::etcd::{Etcd, EtcdConfig};
use netplumb::ipam::{EtcdStore, Ipam};
use netplumb::network::Container;
use netplumb::overlay::{
    EtcdDiscovery, EtcdNetworks, Overlay, OverlayNetwork, OverlaySpec, PeerDiscovery, PeerHost,
};
use serde_json::json;

use crate::{Ctx, Res};

fn etcd(ctx: &Ctx) -> Res<Etcd> {
    let url = ctx
        .store
        .as_deref()
        .ok_or("overlay networks need a store: --store etcd://HOST:PORT")?;
    let mut cfg = EtcdConfig::new(url)?;
    if let Some(ca) = &ctx.store_cacert {
        cfg = cfg.ca_file(ca);
    }
    if let Some((cert, key)) = &ctx.store_cert {
        cfg = cfg.client_cert(cert, key);
    }
    if let Some(u) = &ctx.store_user {
        cfg = cfg.user(&u.name, &u.password);
    }
    Ok(Etcd::connect(cfg)?)
}

/// The definitions and the shared IPAM, if `--store` was given.
pub struct Cluster {
    etcd: Etcd,
    nets: EtcdNetworks,
    ipam: Ipam<EtcdStore>,
}

impl Cluster {
    /// Connects to the store of `--store`.
    pub fn open(ctx: &Ctx) -> Res<Cluster> {
        let etcd = etcd(ctx)?;
        Ok(Cluster {
            nets: EtcdNetworks::new(etcd.clone()),
            ipam: Ipam::new(EtcdStore::new(etcd.clone())),
            etcd,
        })
    }

    /// The overlay network `name`, if there is one.
    pub fn get(&self, name: &str) -> Res<Option<OverlayNetwork>> {
        Ok(self.nets.get(name)?)
    }

    /// Every overlay network.
    pub fn list(&self) -> Res<Vec<OverlayNetwork>> {
        Ok(self.nets.list()?)
    }

    /// `docker network create -d overlay [--subnet S] [--gateway G] NAME`.
    pub fn create(
        &self,
        name: &str,
        subnet: Option<netplumb::IpNet>,
        gateway: Option<IpAddr>,
        mtu: Option<u32>,
    ) -> Res<OverlayNetwork> {
        let mut spec = OverlaySpec::new(name);
        if let Some(s) = subnet {
            spec = spec.subnet(s);
        }
        if let Some(g) = gateway {
            spec = spec.gateway(g);
        }
        if let Some(m) = mtu {
            spec = spec.mtu(m);
        }
        Ok(self.nets.create(&self.ipam, &spec)?)
    }

    /// `docker network rm NAME` (refused while any host has a container on it).
    pub fn remove(&self, name: &str) -> Res {
        Ok(self.nets.remove(&self.ipam, name)?)
    }

    /// `docker network inspect` for an overlay network.
    pub fn inspect(&self, net: &OverlayNetwork) -> Res<serde_json::Value> {
        let containers: serde_json::Map<String, serde_json::Value> = self
            .ipam
            .leases(net.name())?
            .iter()
            .map(|l| {
                (
                    l.owner.container.clone(),
                    json!({ "IPv4Address": l.cidr().to_string() }),
                )
            })
            .collect();
        Ok(json!({
            "Name": net.name(),
            "Scope": "global",
            "Driver": "overlay",
            "EnableIPv6": false,
            "IPAM": {
                "Driver": "default",
                "Options": null,
                "Config": [{ "Subnet": net.subnet().to_string(), "Gateway": net.gateway_ip().to_string() }]
            },
            "Internal": false,
            "Attachable": true,
            "Containers": containers,
            "Id": net.id(),
            "Options": { "com.docker.network.driver.overlay.vxlanid_list": net.vxlan_id().to_string() },
            "Labels": {}
        }))
    }

    /// This host's overlay driver (`--host-id`, `--advertise-addr`).
    pub fn driver(&self, ctx: &Ctx) -> Res<Overlay<EtcdStore>> {
        let underlay = ctx
            .advertise_addr
            .ok_or("overlay networks need this host's underlay address: --advertise-addr IP")?;
        let id = match &ctx.host_id {
            Some(id) => id.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
                .trim()
                .to_owned(),
        };
        // Two hosts with one id (the hostname, shared) would take each other's entries.
        for net in self.list()? {
            let view = EtcdDiscovery::new(self.etcd.clone()).view(net.name())?;
            if let Some(h) = view
                .hosts
                .iter()
                .find(|h| h.id == id && h.underlay != underlay)
            {
                return Err(format!(
                    "host id {id:?} is registered by a live host at {} (network {}): give this host its own with --host-id",
                    h.underlay,
                    net.name()
                )
                .into());
            }
        }
        let discovery = EtcdDiscovery::new(self.etcd.clone()).ttl(ttl(ctx));
        let discovery: Arc<dyn PeerDiscovery> = Arc::new(discovery);
        Ok(Overlay::new(
            ctx.host()?,
            PeerHost { id, underlay },
            Ipam::new(EtcdStore::new(self.etcd.clone())),
            discovery,
        )?)
    }

    /// Connects container `id` (namespace `ns`) to overlay `net`.
    pub fn connect(&self, ctx: &Ctx, net: &OverlayNetwork, ctr: &Container) -> Res {
        let mut ov = self.driver(ctx)?;
        let att = ov.connect(net, ctr)?;
        eprintln!(
            "{} on {} (vni {}), way out via {}",
            att.addr,
            net.name(),
            att.vni,
            att.gateway.addrs[0]
        );
        Ok(())
    }

    /// Disconnects container `id` from overlay `net`.
    pub fn disconnect(&self, ctx: &Ctx, net: &OverlayNetwork, id: &str) -> Res {
        Ok(self.driver(ctx)?.disconnect(net, id)?)
    }

    /// Disconnects container `id` from every overlay network it holds an address of
    /// (`rm`): its veth, its address in the store, its endpoint, the way out.
    pub fn disconnect_all(&self, ctx: &Ctx, id: &str) -> Res {
        let mut on = Vec::new();
        for net in self.list()? {
            if self
                .ipam
                .leases(net.name())?
                .iter()
                .any(|l| l.owner.container == id)
            {
                on.push(net);
            }
        }
        if on.is_empty() {
            return Ok(());
        }
        let mut ov = self.driver(ctx)?;
        for net in &on {
            ov.disconnect(net, id)?;
        }
        Ok(())
    }

    /// `netplumb agent`: follows this host's overlay networks (see `overlay::Agent`) until
    /// SIGTERM or SIGINT.
    pub fn agent(&self, ctx: &Ctx) -> Res {
        use nix::sys::signal::{SigSet, Signal};
        // Blocked before any thread starts, so that every thread inherits the mask and
        // the signal waits for `wait` below.
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.thread_block()?;
        let ov = self.driver(ctx)?;
        let nets = EtcdNetworks::new(self.etcd.clone());
        let every = ttl(ctx) / 3;
        let agent = netplumb::overlay::Agent::start(ov, Box::new(move || nets.list()), every)?;
        log::info!(
            "agent of host {} running",
            ctx.host_id.as_deref().unwrap_or("(hostname)")
        );
        let sig = set.wait()?;
        log::info!("agent: {sig:?}, stopping");
        agent.stop();
        Ok(())
    }

    /// Writes this host's FDB/neighbour entries for the other hosts' containers.
    pub fn sync(&self, ctx: &Ctx, net: &OverlayNetwork) -> Res {
        let r = self.driver(ctx)?.sync(net)?;
        for e in &r.added {
            println!("+ {e}");
        }
        for e in &r.removed {
            println!("- {e}");
        }
        Ok(())
    }
}

/// This host's registration TTL: `--store-ttl`, else the library's default.
fn ttl(ctx: &Ctx) -> std::time::Duration {
    ctx.store_ttl
        .map_or(netplumb::overlay::ETCD_TTL, std::time::Duration::from_secs)
}
