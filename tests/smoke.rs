mod common;
use netplumb::link::*;

#[test]
fn smoke() {
    common::sandbox("smoke", |s| {
        let mut r = common::rtnl(s);
        println!("{:?}", common::link_names(&mut r));
        let ctr = s.netns_dir().create("ctr1").unwrap();
        r.execute(&Veth::new("veth0").peer("eth0").peer_netns(&ctr)).unwrap();
        println!("{:#?}", r.link("veth0").unwrap());
        let mut c = netplumb::Rtnl::open_in(&ctr).unwrap();
        let e = c.link("eth0").unwrap();
        println!("{:#?}", e);
        let (ns, peer) = c.veth_peer(&e, &[s.host().clone()]).unwrap();
        println!("{ns:?} {peer:?}");
        let err = r.execute(&Veth::new("veth0").peer("eth1")).unwrap_err();
        println!("{err}");
        r.execute(&Bridge::new("br0")).unwrap();
        println!("{:#?}", r.link("br0").unwrap());
        println!("{:?}", s.netns_dir().list());
    });
}
