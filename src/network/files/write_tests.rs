//! Unit tests of writing the container files: atomic replacement, rewriting in place (a
//! bind-mounted file keeps its inode), and `ContainerFiles` end to end.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::tests::{invalid, ip, TempDir};
use super::*;
use crate::error::Error;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn atomic_write_replaces_the_file_and_leaves_no_temp_file() {
    let dir = TempDir::new("atomic");
    write_atomic(&dir.0, "hosts", "one\n").unwrap();
    assert_eq!(fs::read_to_string(dir.0.join("hosts")).unwrap(), "one\n");
    assert_eq!(mode(&dir.0.join("hosts")), 0o644);
    let before = fs::metadata(dir.0.join("hosts")).unwrap().ino();

    fs::set_permissions(dir.0.join("hosts"), fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&dir.0, "hosts", "two\n").unwrap();
    assert_eq!(fs::read_to_string(dir.0.join("hosts")).unwrap(), "two\n");
    assert_eq!(mode(&dir.0.join("hosts")), 0o644);
    assert_ne!(
        fs::metadata(dir.0.join("hosts")).unwrap().ino(),
        before,
        "renamed over"
    );
    assert_eq!(dir.names(), ["hosts"]);

    for bad in ["", ".", "..", "a/b", "nul\0"] {
        assert_eq!(
            invalid(write_atomic(&dir.0, bad, "x").unwrap_err()).0,
            "file name"
        );
    }
    let missing = dir.0.join("no-such-dir");
    match write_atomic(&missing, "hosts", "x").unwrap_err() {
        Error::Io { path, source } => {
            assert_eq!(path, missing.join("hosts"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    // A directory in the way: the rename fails and the temp file is removed.
    fs::create_dir(dir.0.join("taken")).unwrap();
    fs::write(dir.0.join("taken").join("f"), "x").unwrap();
    assert!(matches!(
        write_atomic(&dir.0, "taken", "x"),
        Err(Error::Io { .. })
    ));
    assert_eq!(dir.names(), ["hosts", "taken"]);
}

#[test]
fn rewrite_in_place_keeps_the_inode() {
    let dir = TempDir::new("inplace");
    let path = dir.0.join("hosts");
    assert!(rewrite_in_place(&dir.0, "hosts", "x")
        .unwrap_err()
        .is_not_found());
    fs::write(&path, "a long first version\n").unwrap();
    let ino = fs::metadata(&path).unwrap().ino();
    rewrite_in_place(&dir.0, "hosts", "short\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "short\n");
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
    assert_eq!(
        invalid(rewrite_in_place(&dir.0, "../hosts", "x").unwrap_err()).0,
        "file name"
    );
}

#[test]
fn container_files_are_written_read_and_updated() {
    let dir = TempDir::new("ctr");
    let files = ContainerFiles::new(&dir.0);
    assert_eq!(files.dir(), dir.0);
    let hostname = default_hostname("3f2a1c0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a").unwrap();
    let hosts = HostsFile::new()
        .hostname(hostname.clone())
        .addr(ip("172.18.0.2"));
    let resolv =
        ResolvConf::for_container(&ResolvConf::default(), &DnsConfig::new(), false).unwrap();

    // update_hosts before anything exists writes the file.
    files.update_hosts(&hosts).unwrap();
    files.write(&hostname, &hosts, &resolv).unwrap();
    assert_eq!(dir.names(), ["hostname", "hosts", "resolv.conf"]);
    assert_eq!(
        fs::read_to_string(files.path(ContainerFiles::HOSTNAME)).unwrap(),
        "3f2a1c0b9d8e\n"
    );
    assert_eq!(
        fs::read_to_string(files.path(ContainerFiles::RESOLV_CONF)).unwrap(),
        resolv.render()
    );
    assert_eq!(files.read_hosts().unwrap().render(), hosts.render());

    let ino = fs::metadata(files.path(ContainerFiles::HOSTS))
        .unwrap()
        .ino();
    let mut read = files.read_hosts().unwrap();
    read.set_peer("db", &[], &[ip("172.18.0.3")]).unwrap();
    files.update_hosts(&read).unwrap();
    assert_eq!(
        fs::metadata(files.path(ContainerFiles::HOSTS))
            .unwrap()
            .ino(),
        ino,
        "bind mounts see it"
    );
    assert_eq!(
        files.read_hosts().unwrap().addrs_of("db"),
        [ip("172.18.0.3")]
    );
    assert_eq!(dir.names(), ["hostname", "hosts", "resolv.conf"]);
}
