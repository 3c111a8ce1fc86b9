//! The crate's parsers of outside input that are not public, reachable for the fuzz targets
//! in `fuzz/` and the property test `tests/parse_props.rs`. Not part of the API: no
//! stability promise. Each function calls the parser the library itself uses, with no
//! socket or server around it.

use crate::wire::RawMsg;
use crate::Result;

/// An `RTM_NEWLINK` message, as [`Rtnl::links`](crate::Rtnl::links) decodes it.
pub fn link(m: &RawMsg<'_>) -> Result<Option<crate::link::Link>> {
    crate::link::info::parse_link(m)
}

/// An `RTM_NEWADDR` message, as [`Rtnl::addrs`](crate::Rtnl::addrs) decodes it.
pub fn addr(m: &RawMsg<'_>) -> Result<Option<crate::addr::AddrInfo>> {
    crate::addr::parse_addr(m)
}

/// An `RTM_NEWROUTE` message, as the route dump decodes it.
pub fn route(m: &RawMsg<'_>) -> Result<Option<crate::route::RouteInfo>> {
    crate::route::parse_route(m)
}

/// An `RTM_NEWNEIGH` message, as the neighbour and FDB dumps decode it.
pub fn neigh(m: &RawMsg<'_>) -> Result<Option<crate::neigh::NeighInfo>> {
    crate::neigh::parse_neigh(m)
}

/// An `RTM_NEWNSID` message, as the namespace-id query decodes it.
pub fn nsid(m: &RawMsg<'_>) -> Result<Option<i32>> {
    crate::rtnl::parse_nsid(m)
}

/// An nf_tables table-dump message: its family if it is table `table`.
pub fn nft_table(m: &RawMsg<'_>, table: &str) -> Result<Option<u8>> {
    crate::firewall::nft::dump::table_family(m, table)
}

/// An nf_tables rule-dump message of family `af`: chain, handle and comment.
pub fn nft_rule(m: &RawMsg<'_>, af: u8) -> Result<Option<(String, u64, String)>> {
    let r = crate::firewall::nft::dump::tagged_rule(m, af)?;
    Ok(r.map(|r| (r.chain, r.handle, r.comment)))
}

/// A dumped set element: key, data and comment.
pub type NftElem = (Vec<u8>, Vec<u8>, String);

/// The body (after `struct nfgenmsg`) of an nf_tables set-element dump message: its
/// elements.
pub fn nft_elements(body: &[u8]) -> Result<Vec<NftElem>> {
    let mut out = Vec::new();
    crate::firewall::nft::dump::parse_elements(body, &mut out)?;
    Ok(out)
}

/// The network an nf_tables comment of ours names.
pub fn nft_network_of(comment: &[u8]) -> Option<&str> {
    crate::firewall::nft::layout::network_of(comment)
}

/// A published port from a dumped port-map element (`ports`, or `ports_any` if `any`).
pub fn nft_port(
    network: &str,
    v6: bool,
    any: bool,
    key: &[u8],
    value: &[u8],
) -> Option<crate::firewall::PortRule> {
    crate::firewall::nft::elems::decode(network, v6, any, key, value)
}

/// An HTTP status line and headers (without the empty line): what was read, or the
/// framing error.
#[cfg(feature = "etcd")]
pub fn http_head(text: &str) -> std::result::Result<String, String> {
    crate::etcd::http::parse_head(text)
        .map(|h| format!("{h:?}"))
        .map_err(|e| format!("{e:?}"))
}

/// Takes one chunk off the front of a chunked body: `Ok(None)` when more bytes are
/// needed, `Ok(Some(None))` after the last chunk.
#[cfg(feature = "etcd")]
pub fn http_chunk(buf: &mut Vec<u8>) -> std::result::Result<Option<Option<Vec<u8>>>, String> {
    crate::etcd::http::take_chunk(buf).map_err(|e| format!("{e:?}"))
}

/// The body of an etcd gateway reply to a range request.
#[cfg(feature = "etcd")]
pub fn etcd_range(body: &[u8]) -> std::result::Result<crate::etcd::RangeResponse, String> {
    let w: crate::etcd::kv::WireRange = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(w.into())
}

/// The body of an etcd gateway reply to a transaction.
#[cfg(feature = "etcd")]
pub fn etcd_txn(body: &[u8]) -> std::result::Result<crate::etcd::TxnResponse, String> {
    let w: crate::etcd::kv::WireTxn = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    w.try_into()
}

/// The body of an etcd gateway reply to a put or a delete.
#[cfg(feature = "etcd")]
pub fn etcd_write(body: &[u8]) -> std::result::Result<(), String> {
    serde_json::from_slice::<crate::etcd::kv::WireWrite>(body)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The body of an etcd gateway reply to a lease grant, and to a keep-alive (wrapped in
/// `{"result": …}`).
#[cfg(feature = "etcd")]
pub fn etcd_lease(body: &[u8]) -> std::result::Result<(), String> {
    use crate::etcd::lease::WireLease;
    use crate::etcd::reply::Streamed;
    let grant = serde_json::from_slice::<WireLease>(body).map(drop);
    let keep = serde_json::from_slice::<Streamed<WireLease>>(body).map(|s| {
        let _ = s.into_result("lease keep-alive");
    });
    grant.and(keep).map_err(|e| e.to_string())
}

/// The error of a non-200 reply with `body`.
#[cfg(feature = "etcd")]
pub fn etcd_status(status: u16, body: &[u8]) -> crate::etcd::EtcdError {
    crate::etcd::reply::status_err("fuzz", status, body)
}

/// The messages of a watch stream (JSON objects one after another), read one at a time
/// as a watch reads them; stops at the first incomplete or malformed one.
#[cfg(feature = "etcd")]
pub fn etcd_watch(stream: &[u8]) -> usize {
    use crate::etcd::reply::Streamed;
    use crate::etcd::watch::WireWatch;
    let mut it = serde_json::Deserializer::from_slice(stream).into_iter::<Streamed<WireWatch>>();
    let mut n = 0;
    while let Some(Ok(m)) = it.next() {
        let _ = m.into_result("watch");
        n += 1;
    }
    n
}

/// A stored IPAM network record (`EtcdStore`).
#[cfg(feature = "etcd")]
pub fn ipam_record(
    key: &[u8],
    value: &[u8],
) -> std::result::Result<crate::ipam::Network, crate::ipam::IpamError> {
    crate::ipam::etcd_store::record::parse_network(key, value)
}

/// A stored overlay network definition.
#[cfg(all(feature = "etcd", feature = "store"))]
pub fn overlay_network(key: &[u8], value: &[u8]) -> Result<crate::overlay::OverlayNetwork> {
    crate::overlay::etcd_records::def_parse(key, value)
}

/// A stored overlay host registration.
#[cfg(all(feature = "etcd", feature = "store"))]
pub fn overlay_host(key: &[u8], value: &[u8]) -> Result<crate::overlay::PeerHost> {
    crate::overlay::etcd_records::parse_host(key, value)
}

/// The published-port registry file's text, as [`PortAllocator`](crate::ports::PortAllocator)
/// reads it: the ports it holds.
pub fn port_registry(text: &str) -> Result<Vec<crate::ports::PublishedPort>> {
    let reg = crate::ports::registry::Registry::parse(std::path::Path::new("published"), text)?;
    Ok(reg.all())
}

/// `iptables-save` output, as the iptables backend reads it: what it holds of ours.
#[cfg(feature = "iptables")]
pub fn iptables_save(text: &str) -> crate::firewall::FirewallState {
    crate::firewall::state_from_save(text)
}

/// A stored overlay endpoint registration.
#[cfg(all(feature = "etcd", feature = "store"))]
pub fn overlay_endpoint(key: &[u8], value: &[u8]) -> Result<crate::overlay::PeerEndpoint> {
    crate::overlay::etcd_records::parse_ep(key, value)
}
