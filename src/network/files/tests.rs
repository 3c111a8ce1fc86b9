//! Unit tests of the container files: names, `hosts` and `resolv.conf` (writing them is
//! tested in `write_tests.rs`, with the fixtures of this file).

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::hosts::PEERS_MARKER;
use super::*;
use crate::error::Error;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The field and value of an `InvalidInput` error.
pub(super) fn invalid(e: Error) -> (&'static str, String) {
    match e {
        Error::InvalidInput { field, value, .. } => (field, value),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("netplumb-files-{}-{n}-{tag}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (xorshift64*), for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const DOCKER_HEAD: &str = "127.0.0.1\tlocalhost\n\
    ::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\n\
    ff00::0\tip6-mcastprefix\n\
    ff02::1\tip6-allnodes\n\
    ff02::2\tip6-allrouters\n";

#[test]
fn hostname_rules() {
    for good in [
        "web",
        "3f2a1c0b9d8e",
        "123456789012",
        "a-b.example.com",
        "X",
        &"a".repeat(63),
    ] {
        assert_eq!(Hostname::new(good).unwrap().as_str(), good);
    }
    let long = vec!["a".repeat(63); 4].join("."); // 255 bytes
    for (bad, reason) in [
        ("", "empty"),
        ("-web", "starts or ends"),
        ("web-", "starts or ends"),
        ("web.", "empty label"),
        (".web", "empty label"),
        ("a..b", "empty label"),
        ("we_b", "character other"),
        ("we b", "character other"),
        ("wéb", "character other"),
        (&"a".repeat(64), "longer than 63"),
        (&long, "longer than 253"),
    ] {
        let e = Hostname::new(bad).unwrap_err();
        assert!(e.is_invalid());
        assert!(e.to_string().contains(reason), "{bad:?}: {e}");
        assert_eq!(invalid(e), ("hostname", bad.to_owned()));
    }
    assert_eq!(Hostname::new("web.example.com").unwrap().short(), "web");
    assert_eq!("web".parse::<Hostname>().unwrap().short(), "web");
}

#[test]
fn default_hostname_is_the_short_id() {
    let id = "3F2A1C0B9D8E7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    assert_eq!(default_hostname(id).unwrap().as_str(), "3f2a1c0b9d8e");
    assert_eq!(
        default_hostname("123456789012").unwrap().as_str(),
        "123456789012"
    );
    for bad in [
        "",
        "3f2a1c0b9d8",
        "3f2a1c0b9d8g0000",
        "éééééééééééé",
        "3f2a1c0b9d8é",
    ] {
        assert_eq!(
            invalid(default_hostname(bad).unwrap_err()).0,
            "container id"
        );
    }
}

#[test]
fn docker_exact_hosts_for_a_sample_container() {
    let mut hosts = HostsFile::new();
    for spec in [
        "www.example.com:1.1.1.1",
        "v6.example.com=[2001:db8::1]",
        "host.docker.internal:host-gateway",
    ] {
        for entry in parse_add_host(spec)
            .unwrap()
            .resolve(&[ip("172.17.0.1")])
            .unwrap()
        {
            hosts = hosts.add_host(entry);
        }
    }
    let hosts = hosts
        .hostname(Hostname::new("web").unwrap())
        .domainname(Hostname::new("example.com").unwrap())
        .alias("web_1")
        .unwrap()
        .addr(ip("172.17.0.2"))
        .addr(ip("2001:db8:1::2"))
        .addr(ip("172.17.0.2"));
    let expected = format!(
        "{DOCKER_HEAD}1.1.1.1\twww.example.com\n\
         2001:db8::1\tv6.example.com\n\
         172.17.0.1\thost.docker.internal\n\
         172.17.0.2\tweb.example.com web web_1\n\
         2001:db8:1::2\tweb.example.com web web_1\n"
    );
    assert_eq!(hosts.render(), expected);
    assert_eq!(hosts.to_string(), expected);

    // Docker's plain default: short id, one address.
    let plain = HostsFile::new()
        .hostname(Hostname::new("3f2a1c0b9d8e").unwrap())
        .addr(ip("172.17.0.2"));
    assert_eq!(
        plain.render(),
        format!("{DOCKER_HEAD}172.17.0.2\t3f2a1c0b9d8e\n")
    );
    // `--network none`: no address, no own line.
    let none = HostsFile::new().hostname(Hostname::new("3f2a1c0b9d8e").unwrap());
    assert_eq!(none.render(), DOCKER_HEAD);
    assert_eq!(HostsFile::default(), HostsFile::new());
}

#[test]
fn hosts_without_ipv6_drop_every_ipv6_line() {
    let mut hosts = HostsFile::new()
        .ipv6(false)
        .add_host(HostEntry::new(ip("::1"), &["six"]).unwrap())
        .add_host(HostEntry::new(ip("1.1.1.1"), &["four"]).unwrap())
        .hostname(Hostname::new("ctr").unwrap())
        .addr(ip("fd00::2"))
        .addr(ip("10.0.0.2"));
    hosts
        .set_peer("db", &[], &[ip("fd00::3"), ip("10.0.0.3")])
        .unwrap();
    hosts.set_peer("v6only", &[], &[ip("fd00::4")]).unwrap();
    assert_eq!(
        hosts.render(),
        "127.0.0.1\tlocalhost\n1.1.1.1\tfour\n10.0.0.2\tctr\n\
         # peers on shared networks (netplumb)\n10.0.0.3\tdb\n"
    );
    assert!(hosts.addrs_of("v6only").is_empty());
    assert_eq!(hosts.peers().len(), 1);
}

#[test]
fn add_host_every_form() {
    let cases = [
        ("www.example.com:1.1.1.1", "www.example.com", "1.1.1.1"),
        ("www=1.1.1.1", "www", "1.1.1.1"),
        ("loop:::1", "loop", "::1"),
        ("six:2001:db8::1", "six", "2001:db8::1"),
        ("six:[2001:db8::1]", "six", "2001:db8::1"),
        ("six=::1", "six", "::1"),
        ("six=[::1]", "six", "::1"),
        ("four:[1.2.3.4]", "four", "1.2.3.4"),
        ("spaced: 1.2.3.4 ", "spaced", "1.2.3.4"),
        ("my_host:1.2.3.4", "my_host", "1.2.3.4"),
    ];
    for (spec, name, addr) in cases {
        let h = parse_add_host(spec).unwrap();
        assert_eq!(
            (h.name(), h.target()),
            (name, AddHostTarget::Addr(ip(addr))),
            "{spec}"
        );
        assert_eq!(h.to_string(), format!("{name}:{addr}"));
        assert_eq!(
            parse_add_host(&h.to_string()).unwrap(),
            h,
            "normalised form parses back"
        );
        let entries = h.resolve(&[]).unwrap();
        assert_eq!(entries, [HostEntry::new(ip(addr), &[name]).unwrap()]);
    }
    let gw = parse_add_host("host.docker.internal:host-gateway").unwrap();
    assert_eq!(gw.target(), AddHostTarget::HostGateway);
    assert_eq!(gw.to_string(), "host.docker.internal:host-gateway");
    assert_eq!(
        parse_add_host("gw=host-gateway").unwrap().target(),
        AddHostTarget::HostGateway
    );
    let both = gw.resolve(&[ip("172.17.0.1"), ip("fd00::1")]).unwrap();
    assert_eq!(
        both.iter().map(HostEntry::addr).collect::<Vec<_>>(),
        [ip("172.17.0.1"), ip("fd00::1")]
    );
    assert_eq!(both[1].to_string(), "fd00::1\thost.docker.internal");
    assert_eq!(
        invalid(gw.resolve(&[]).unwrap_err()),
        ("add-host address", HOST_GATEWAY.to_owned())
    );
}

#[test]
fn add_host_errors_name_the_bad_part() {
    let cases = [
        ("nosep", "add-host", "nosep"),
        ("", "add-host", ""),
        (":1.2.3.4", "add-host name", ""),
        ("=1.2.3.4", "add-host name", ""),
        ("a:b=1.2.3.4", "add-host name", "a:b"),
        ("two words:1.2.3.4", "add-host name", "two words"),
        ("hash#tag:1.2.3.4", "add-host name", "hash#tag"),
        ("name:", "add-host address", ""),
        ("name:1.2.3", "add-host address", "1.2.3"),
        ("name:1.2.3.4.5", "add-host address", "1.2.3.4.5"),
        ("name:example.com", "add-host address", "example.com"),
        ("name:[host-gateway]", "add-host address", "host-gateway"),
        ("name:[::1", "add-host address", "[::1"),
        ("name:[]", "add-host address", "[]"),
        ("name:fe80::1%eth0", "add-host address", "fe80::1%eth0"),
        ("a=b:1.2.3.4", "add-host address", "b:1.2.3.4"),
    ];
    for (spec, field, value) in cases {
        let e = parse_add_host(spec).unwrap_err();
        assert!(e.is_invalid());
        assert_eq!(invalid(e), (field, value.to_owned()), "{spec:?}");
    }
}

#[test]
fn host_entries_check_their_names() {
    assert_eq!(
        invalid(HostEntry::new::<&str>(ip("1.2.3.4"), &[]).unwrap_err()).0,
        "hosts entry"
    );
    for bad in ["", "a b", "a\tb", "a\nb", "a#b", "é"] {
        assert_eq!(
            invalid(HostEntry::new(ip("1.2.3.4"), &["ok", bad]).unwrap_err()),
            ("hosts name", bad.to_owned())
        );
    }
    assert_eq!(
        invalid(HostsFile::new().alias("a b").unwrap_err()).0,
        "alias"
    );
    let mut hosts = HostsFile::new();
    assert_eq!(
        invalid(hosts.set_peer("a b", &[], &[ip("10.0.0.1")]).unwrap_err()).0,
        "peer name"
    );
    assert_eq!(
        invalid(
            hosts
                .set_peer("db", &["x\ny"], &[ip("10.0.0.1")])
                .unwrap_err()
        )
        .0,
        "peer alias"
    );
    assert_eq!(hosts, HostsFile::new(), "a refused peer changes nothing");
}

#[test]
fn peers_added_and_removed_keep_the_file_current() {
    let base = HostsFile::new()
        .hostname(Hostname::new("web").unwrap())
        .addr(ip("172.18.0.2"));
    let mut hosts = base.clone();
    assert!(!hosts.remove_peer("db"));
    hosts
        .set_peer("db", &["database", "db"], &[ip("172.18.0.3")])
        .unwrap();
    hosts
        .set_peer(
            "cache",
            &[],
            &[ip("172.18.0.4"), ip("fd00::4"), ip("172.18.0.4")],
        )
        .unwrap();
    let head = format!("{DOCKER_HEAD}172.18.0.2\tweb\n# peers on shared networks (netplumb)\n");
    assert_eq!(
        hosts.render(),
        format!("{head}172.18.0.3\tdb database\n172.18.0.4\tcache\nfd00::4\tcache\n")
    );
    assert_eq!(hosts.addrs_of("DATABASE"), [ip("172.18.0.3")]);
    assert_eq!(hosts.addrs_of("cache"), [ip("172.18.0.4"), ip("fd00::4")]);

    // db reconnects with a new address: its line changes in place.
    hosts.set_peer("db", &[], &[ip("172.18.0.9")]).unwrap();
    assert_eq!(
        hosts.render(),
        format!("{head}172.18.0.9\tdb\n172.18.0.4\tcache\nfd00::4\tcache\n")
    );
    // Read back from the text, cache leaves; then db leaves: the file is the base again.
    let mut read = HostsFile::parse(&hosts.render());
    assert_eq!(read.peers().len(), 3);
    assert!(read.remove_peer("cache"));
    assert_eq!(read.render(), format!("{head}172.18.0.9\tdb\n"));
    read.set_peer("db", &[], &[]).unwrap();
    assert_eq!(read.render(), base.render());
    assert!(read.peers().is_empty());
    assert!(!read.remove_peer("db"));
}

#[test]
fn a_peer_named_like_the_container_or_an_add_host_leaves_those_lines_alone() {
    let mut hosts = HostsFile::new()
        .add_host(HostEntry::new(ip("1.1.1.1"), &["db"]).unwrap())
        .hostname(Hostname::new("db").unwrap())
        .addr(ip("10.0.0.2"));
    hosts.set_peer("db", &[], &[ip("10.0.0.3")]).unwrap();
    let mut read = HostsFile::parse(&hosts.render());
    assert!(read.remove_peer("db"));
    assert_eq!(read.addrs_of("db"), [ip("1.1.1.1"), ip("10.0.0.2")]);
}

#[test]
fn parse_keeps_every_line_and_finds_the_entries() {
    let text = "# a comment\n\n127.0.0.1   localhost\t# trailing\n  10.0.0.5\tfoo  bar  \r\n\
                garbage here\n1.2.3.4\n300.1.1.1 bad\n::1 ip6-localhost";
    let hosts = HostsFile::parse(text);
    assert_eq!(hosts.render(), format!("{text}\n"));
    let entries = hosts.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1].names(), ["foo", "bar"]);
    assert_eq!(entries[2].addr(), ip("::1"));
    assert_eq!(hosts.addrs_of("bar"), [ip("10.0.0.5")]);
    assert!(hosts.addrs_of("garbage").is_empty());
    assert_eq!(HostsFile::parse("").render(), "");
    assert_eq!(HostsFile::parse("\n\n").render(), "\n\n");

    // Docker's own file, read back: same text, peers go after it.
    let docker = format!("{DOCKER_HEAD}172.17.0.2\t3f2a1c0b9d8e\n");
    let mut read = HostsFile::parse(&docker);
    assert_eq!(read.render(), docker);
    read.set_peer("db", &[], &[ip("172.17.0.3")]).unwrap();
    let with_peer = format!("{docker}# peers on shared networks (netplumb)\n172.17.0.3\tdb\n");
    assert_eq!(read.render(), with_peer);
    // Garbage after the marker stays where it was.
    let mut odd = HostsFile::parse(&format!("{with_peer}junk\n"));
    odd.set_peer("web", &[], &[ip("172.17.0.4")]).unwrap();
    assert!(odd.remove_peer("db"));
    assert!(odd
        .render()
        .ends_with("(netplumb)\njunk\n172.17.0.4\tweb\n"));
}

/// Random text, half from hosts/resolv.conf-like words, half arbitrary bytes.
fn random_text(rng: &mut Rng) -> String {
    const WORDS: &[&str] = &[
        "nameserver",
        "search",
        "options",
        "domain",
        "127.0.0.53",
        "::1",
        "8.8.8.8",
        "fe80::1%eth0",
        "#",
        ";",
        " ",
        "\t",
        "\n",
        "\r\n",
        "[",
        "]",
        "=",
        ":",
        "localhost",
        "example.com",
        ".",
        "\u{0}",
        "é",
        "ndots:5",
        "# peers on shared networks (netplumb)\n",
        "1.1.1.1\tweb\n",
    ];
    let mut bytes = Vec::new();
    for _ in 0..rng.below(40) {
        if rng.below(2) == 0 {
            bytes.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        } else {
            bytes.extend((0..rng.below(8)).map(|_| rng.next() as u8));
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn parsers_never_panic_on_random_input() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let text = random_text(&mut rng);
        let mut hosts = HostsFile::parse(&text);
        let out = hosts.render();
        if !text.contains(PEERS_MARKER) {
            let expected = if text.is_empty() || text.ends_with('\n') {
                text.clone()
            } else {
                format!("{text}\n")
            };
            assert_eq!(out, expected, "hosts text must come back as read");
        }
        assert_eq!(
            HostsFile::parse(&out).render(),
            out,
            "stable after one pass"
        );
        let _ = hosts.entries();
        hosts.set_peer("p", &[], &[ip("10.0.0.1")]).unwrap();
        hosts.remove_peer("p");
        let _ = parse_add_host(&text);
        let _ = default_hostname(&text);
        let _ = Hostname::new(&text);

        let rc = ResolvConf::parse(&text);
        let again = ResolvConf::parse(&rc.render());
        assert_eq!(
            again, rc,
            "resolv.conf render parses back to the same value"
        );
        for ipv6 in [false, true] {
            let ctr = ResolvConf::for_container(&rc, &DnsConfig::new(), ipv6).unwrap();
            assert!(!ctr.nameservers().is_empty());
            assert!(ctr
                .nameservers()
                .iter()
                .all(|a| !a.is_loopback() && (ipv6 || a.is_ipv4())));
        }
    }
}

#[test]
fn host_file_follows_systemd_resolved_to_its_upstream_list() {
    let dir = TempDir::new("resolv");
    let (etc, upstream) = (dir.0.join("etc-resolv.conf"), dir.0.join("upstream.conf"));
    fs::write(&etc, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
    let read = || ResolvConf::read_host_from(&etc, &upstream).unwrap();
    assert_eq!(
        read().nameservers(),
        [ip("127.0.0.53")],
        "no upstream list: the stub file"
    );
    fs::write(&upstream, "nameserver 192.168.1.1\n").unwrap();
    assert_eq!(read().nameservers(), [ip("192.168.1.1")]);
    fs::write(&etc, "nameserver 127.0.0.53\nnameserver 10.0.0.1\n").unwrap();
    assert_eq!(read().nameservers(), [ip("127.0.0.53"), ip("10.0.0.1")]);
    let e = ResolvConf::read(&dir.0.join("missing")).unwrap_err();
    assert!(e.is_not_found() && matches!(e, Error::Io { .. }));
}
