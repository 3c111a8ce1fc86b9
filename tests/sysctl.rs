//! Per-namespace sysctls: written inside the namespace the caller names, never elsewhere.

mod common;

use netplumb::link::Veth;
use netplumb::sysctl::{Scope, Sysctl};
use netplumb::Netns;

#[test]
fn ip_forward_is_per_namespace() {
    common::sandbox("ip_forward_is_per_namespace", |s| {
        let ns = Netns::new().unwrap();
        let host_before = Sysctl::IpForward.get(s.host()).unwrap();
        Sysctl::IpForward.set_bool(&ns, true).unwrap();
        assert!(Sysctl::IpForward.get_bool(&ns).unwrap());
        assert_eq!(
            Sysctl::IpForward.get(s.host()).unwrap(),
            host_before,
            "other namespace untouched"
        );
        Sysctl::IpForward.set_bool(&ns, false).unwrap();
        assert!(!Sysctl::IpForward.get_bool(&ns).unwrap());
        Sysctl::Ipv6Forward.set_bool(&ns, true).unwrap();
        assert_eq!(Sysctl::Ipv6Forward.get(&ns).unwrap(), "1");
    });
}

#[test]
fn per_interface_keys() {
    common::sandbox("per_interface_keys", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Veth::new("v0").peer("v1")).unwrap();
        let host = s.host();
        for key in [
            Sysctl::DisableIpv6(Scope::dev("v0")),
            Sysctl::RouteLocalnet(Scope::dev("v0")),
            Sysctl::ArpNotify(Scope::dev("v0")),
        ] {
            key.set_bool(host, true).unwrap();
            assert!(key.get_bool(host).unwrap(), "{key}");
            key.set_bool(host, false).unwrap();
            assert!(!key.get_bool(host).unwrap(), "{key}");
        }
        Sysctl::AcceptRa(Scope::dev("v0")).set(host, "2").unwrap();
        assert_eq!(Sysctl::AcceptRa(Scope::dev("v0")).get(host).unwrap(), "2");
        Sysctl::AcceptRa(Scope::Default).set(host, "0").unwrap();
        assert_eq!(Sysctl::AcceptRa(Scope::Default).get(host).unwrap(), "0");
    });
}

#[test]
fn bad_keys_and_values_are_refused() {
    common::sandbox("bad_keys_and_values_are_refused", |s| {
        let host = s.host();
        let e = Sysctl::ArpNotify(Scope::dev("../../ipv4/ip_forward"))
            .set(host, "1")
            .unwrap_err();
        assert!(e.is_invalid(), "{e}");
        let e = Sysctl::IpForward.set(host, "1\n0").unwrap_err();
        assert!(e.is_invalid(), "{e}");
        let e = Sysctl::ArpNotify(Scope::dev("nosuch0"))
            .get(host)
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
    });
}
