//! A container's `/etc/hosts` and `resolv.conf` as read back (`HostsFile::parse`,
//! `ResolvConf::parse`, which never fail), `--add-host` values, `--dns*` flags and the
//! container's resolver file derived from the host's. Reading what was written gives what
//! was read: `render` is a fixed point after one parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::network::files::{parse_add_host, DnsConfig, HostsFile, ResolvConf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_whitespace().take(16).collect();

    let mut hosts = HostsFile::parse(&text);
    let once = hosts.render();
    assert_eq!(
        HostsFile::parse(&once).render(),
        once,
        "hosts render is stable"
    );
    let _ = (hosts.entries(), hosts.peers());
    for w in &words {
        let _ = hosts.addrs_of(w);
    }
    if let Some((name, rest)) = words.split_first() {
        let addrs: Vec<_> = rest.iter().filter_map(|w| w.parse().ok()).collect();
        if hosts
            .set_peer(name, &rest[..rest.len().min(2)], &addrs)
            .is_ok()
        {
            let again = HostsFile::parse(&hosts.render());
            if !addrs.is_empty() {
                assert!(
                    !again.addrs_of(name).is_empty(),
                    "peer {name:?} is found again"
                );
            }
        }
        hosts.remove_peer(name);
    }
    for line in text.lines().take(16) {
        if let Ok(h) = parse_add_host(line) {
            assert_eq!(
                parse_add_host(&h.to_string()).ok(),
                Some(h.clone()),
                "{line:?}"
            );
            let _ = h.resolve(&["172.17.0.1".parse().unwrap()]);
        }
    }

    let host = ResolvConf::parse(&text);
    let rendered = host.render();
    assert_eq!(
        ResolvConf::parse(&rendered),
        host,
        "resolv.conf reads back as written"
    );
    let (dns, rest) = words.split_at(words.len().min(2));
    let (search, options) = rest.split_at(rest.len().min(2));
    if let Ok(cfg) = DnsConfig::from_flags(dns, search, options) {
        for ipv6 in [false, true] {
            let ctr = ResolvConf::for_container(&host, &cfg, ipv6).expect("validated flags");
            assert!(
                !ctr.nameservers().is_empty(),
                "a container always gets a nameserver"
            );
            let _ = ResolvConf::parse(&ctr.render());
        }
    }
    let _ = ResolvConf::for_container(&host, &DnsConfig::new(), true);
});
