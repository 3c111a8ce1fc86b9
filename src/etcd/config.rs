//! [`EtcdConfig`]: where etcd is, how to talk to it (plain or TLS, and as which user),
//! how long to wait for it, and which namespace to dial from.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::auth::Credentials;
use super::tls::TlsFiles;
use crate::error::{Error, Result};
use crate::netns::Netns;

/// The client port etcd listens on unless told otherwise.
const DEFAULT_PORT: u16 = 2379;

/// One etcd server: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Endpoint {
    /// A host name, an IPv4 address or an IPv6 address (without brackets).
    pub(super) host: String,
    pub(super) port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to reach etcd: one or more endpoints, a timeout, optionally TLS files, a user, and
/// the network namespace connections are made in.
///
/// ```
/// use std::time::Duration;
/// use netplumb::etcd::EtcdConfig;
/// let cfg = EtcdConfig::new("http://10.0.0.5:2379,10.0.0.6:2379")?
///     .timeout(Duration::from_secs(2));
/// assert_eq!(cfg.endpoints(), ["10.0.0.5:2379", "10.0.0.6:2379"]);
/// assert!(!cfg.uses_tls());
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// Over TLS, with a client certificate and a user (etcdctl's `--endpoints`, `--cacert`,
/// `--cert`, `--key` and `--user`); the files are read by
/// [`Etcd::connect`](super::Etcd::connect):
///
/// ```no_run
/// use netplumb::etcd::{Etcd, EtcdConfig};
/// let cfg = EtcdConfig::new("https://10.0.0.5:2379,https://10.0.0.6:2379")?
///     .ca_file("/etc/etcd/ca.pem")
///     .client_cert("/etc/etcd/client.pem", "/etc/etcd/client-key.pem")
///     .user("netplumb", "s3cret");
/// let etcd = Etcd::connect(cfg)?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EtcdConfig {
    pub(super) endpoints: Vec<Endpoint>,
    /// The scheme the endpoints name: `Some(true)` for `https`, `Some(false)` for
    /// `http`, `None` when none does (`HOST:PORT`, `etcd://`).
    scheme_tls: Option<bool>,
    pub(super) timeout: Duration,
    pub(super) netns: Option<Netns>,
    pub(super) tls: TlsFiles,
    pub(super) user: Option<Arc<Credentials>>,
}

impl EtcdConfig {
    /// Parses a comma-separated list of endpoints, each `https://HOST:PORT` (TLS),
    /// `http://HOST:PORT` (plain), or `etcd://HOST:PORT` or `HOST:PORT` (TLS if a CA file
    /// or a client certificate is set, plain otherwise, as etcdctl does). The port
    /// defaults to 2379; IPv6 addresses go in brackets, `[fd00::5]:2379`. Endpoints are
    /// tried in this order.
    ///
    /// A malformed list fails with [`Error::InvalidInput`] naming the bad part: the
    /// scheme, the host, the port or a path. A list that mixes `http://` and `https://`
    /// is refused too: one client speaks one of them.
    ///
    /// ```
    /// use netplumb::etcd::EtcdConfig;
    /// let err = EtcdConfig::new("127.0.0.1:99999").unwrap_err();
    /// assert!(err.is_invalid());
    /// assert!(err.to_string().contains("99999"), "{err}");
    /// let err = EtcdConfig::new("https://10.0.0.5:2379,http://10.0.0.6:2379").unwrap_err();
    /// assert!(err.to_string().contains("mixes http and https"), "{err}");
    /// ```
    pub fn new(urls: &str) -> Result<Self> {
        let mut endpoints = Vec::new();
        let mut scheme_tls = None;
        for part in urls.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(Error::invalid(
                    "etcd endpoint list",
                    urls,
                    "has an empty endpoint",
                ));
            }
            let (ep, tls) = parse_endpoint(part)?;
            match (scheme_tls, tls) {
                (Some(a), Some(b)) if a != b => {
                    return Err(Error::invalid(
                        "etcd endpoint list",
                        urls,
                        "mixes http and https endpoints",
                    ))
                }
                (None, Some(_)) => scheme_tls = tls,
                _ => {}
            }
            endpoints.push(ep);
        }
        Ok(EtcdConfig {
            endpoints,
            scheme_tls,
            timeout: Duration::from_secs(5),
            netns: None,
            tls: TlsFiles::default(),
            user: None,
        })
    }

    /// How long one call may take, connecting included (default 5 s). A watch waits as
    /// long as [`Watch::next`](super::Watch::next) is told to instead. Host names are
    /// resolved by the system resolver, under its own timeouts: give addresses where
    /// that matters.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Make every connection inside `netns`, whatever namespace the calling thread is in
    /// (the socket is created on a helper thread in `netns`, and keeps that namespace).
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let host = netplumb::Netns::open("/proc/1/ns/net")?;
    /// let etcd = Etcd::connect(EtcdConfig::new("127.0.0.1:2379")?.dial_in(&host))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn dial_in(mut self, netns: &Netns) -> Self {
        self.netns = Some(netns.clone());
        self
    }

    /// Check the servers' certificates against the CA certificates in the PEM file at
    /// `path` (etcdctl's `--cacert`), instead of the system's CA bundle. Setting it makes
    /// endpoints without a scheme TLS ones.
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let cfg = EtcdConfig::new("https://10.0.0.5:2379")?.ca_file("/etc/etcd/ca.pem");
    /// let etcd = Etcd::connect(cfg)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca = Some(path.into());
        self
    }

    /// Present the certificate in the PEM file `cert` (with its chain, if the file has
    /// one) and its private key in the PEM file `key` (PKCS#8, RSA or EC) to servers
    /// that ask for one: mutual TLS, for etcd's `--client-cert-auth` (etcdctl's `--cert`
    /// and `--key`). Setting it makes endpoints without a scheme TLS ones.
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let cfg = EtcdConfig::new("https://10.0.0.5:2379")?
    ///     .ca_file("/etc/etcd/ca.pem")
    ///     .client_cert("/etc/etcd/client.pem", "/etc/etcd/client-key.pem");
    /// let etcd = Etcd::connect(cfg)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client = Some((cert.into(), key.into()));
        self
    }

    /// Authenticate as user `name` with `password` (etcdctl's `--user name:password`),
    /// for a server with authentication on. The client asks etcd for a token once and
    /// sends it with every call, watches included; when etcd says the token is no
    /// longer valid (simple tokens expire after `--auth-token-ttl` unused, 5 minutes by
    /// default), it authenticates again and retries the call once. A server with
    /// authentication off is used without a token.
    ///
    /// The password appears in no `Debug` output and no error message.
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let cfg = EtcdConfig::new("http://10.0.0.5:2379")?.user("netplumb", "s3cret");
    /// assert!(!format!("{cfg:?}").contains("s3cret"));
    /// let etcd = Etcd::connect(cfg)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(Arc::new(Credentials::new(name.into(), password.into())));
        self
    }

    /// The endpoints, as `host:port`, in the order they are tried.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(Endpoint::to_string).collect()
    }

    /// Whether connections use TLS: the endpoints are `https://` ones, or name no scheme
    /// and a CA file or a client certificate is set.
    ///
    /// ```
    /// use netplumb::etcd::EtcdConfig;
    /// assert!(EtcdConfig::new("https://10.0.0.5:2379")?.uses_tls());
    /// assert!(EtcdConfig::new("10.0.0.5:2379")?.ca_file("ca.pem").uses_tls());
    /// assert!(!EtcdConfig::new("10.0.0.5:2379")?.uses_tls());
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn uses_tls(&self) -> bool {
        self.scheme_tls.unwrap_or_else(|| self.tls.is_set())
    }

    /// The user name of [`user`](EtcdConfig::user), if one is set.
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_deref().map(Credentials::name)
    }

    /// Refuses TLS files with `http://` endpoints: they would be ignored, and the
    /// connection not protected as the caller meant.
    pub(super) fn check(&self) -> Result<()> {
        if self.scheme_tls == Some(false) && self.tls.is_set() {
            return Err(Error::invalid(
                "etcd endpoint scheme",
                "http",
                "is plain HTTP, and a CA file or client certificate is set (use https://)",
            ));
        }
        Ok(())
    }
}

/// One endpoint, and whether its scheme says TLS (`None`: it names none).
fn parse_endpoint(part: &str) -> Result<(Endpoint, Option<bool>)> {
    let (rest, tls) = match part.split_once("://") {
        Some(("http", rest)) => (rest, Some(false)),
        Some(("https", rest)) => (rest, Some(true)),
        Some(("etcd", rest)) => (rest, None),
        Some((scheme, _)) => {
            return Err(Error::invalid(
                "etcd endpoint scheme",
                scheme,
                "is not http, https or etcd",
            ))
        }
        None => (part, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(Error::invalid(
            "etcd endpoint path",
            path,
            "is not allowed (give host and port only)",
        ));
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(Error::invalid(
                    "etcd endpoint port",
                    p,
                    "is not a number from 1 to 65535",
                ))
            }
        },
    };
    Ok((Endpoint { host, port }, tls))
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>)> {
    let bad_host = |reason| Err(Error::invalid("etcd endpoint host", authority, reason));
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return bad_host("has no closing ']'");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return bad_host("is not an IPv6 address in brackets");
        }
        return match after {
            "" => Ok((v6.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((v6.to_string(), Some(p))),
                None => bad_host("has text after ']' that is not ':PORT'"),
            },
        };
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return bad_host("is empty");
    }
    if host.contains(':') {
        return bad_host("is an IPv6 address without brackets");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    if !host.chars().all(ok) {
        return bad_host("is not a host name or address");
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(s: &str) -> Vec<String> {
        EtcdConfig::new(s).unwrap().endpoints()
    }

    fn bad(s: &str) -> String {
        let e = EtcdConfig::new(s).unwrap_err();
        assert!(e.is_invalid(), "{e}");
        e.to_string()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(eps("http://127.0.0.1:2379"), ["127.0.0.1:2379"]);
        assert_eq!(eps("etcd://etcd-0.local:32379/"), ["etcd-0.local:32379"]);
        assert_eq!(eps("10.0.0.5"), ["10.0.0.5:2379"]);
        assert_eq!(
            eps("[fd00::5]:2379, [::1]"),
            ["[fd00::5]:2379", "[::1]:2379"]
        );
        assert_eq!(
            eps("a:1,http://b:2,etcd://c:3"),
            ["a:1", "b:2", "c:3"],
            "order kept"
        );
        assert_eq!(eps("https://[::1]:2379,a"), ["[::1]:2379", "a:2379"]);
    }

    #[test]
    fn the_scheme_and_the_files_decide_tls() {
        let cfg = |s: &str| EtcdConfig::new(s).unwrap();
        assert!(cfg("https://a:1").uses_tls());
        assert!(cfg("https://a:1,b:2").uses_tls(), "a bare endpoint follows");
        assert!(!cfg("http://a:1,b:2").uses_tls());
        assert!(!cfg("etcd://a:1").uses_tls());
        assert!(cfg("etcd://a:1").ca_file("ca.pem").uses_tls());
        assert!(cfg("a:1").client_cert("c.pem", "k.pem").uses_tls());
        assert!(cfg("https://a:1").check().is_ok());
        assert!(cfg("a:1").ca_file("ca.pem").check().is_ok());
        let e = cfg("http://a:1").ca_file("ca.pem").check().unwrap_err();
        assert!(e.is_invalid(), "{e}");
        assert!(e.to_string().contains("use https://"), "{e}");
    }

    #[test]
    fn names_the_bad_part() {
        let cases = [
            ("https://a:1,http://b:2", "mixes http and https"),
            ("a:1,http://b:2,https://c:3", "mixes http and https"),
            ("ftp://a:1", "etcd endpoint scheme \"ftp\""),
            ("a:1,,b:2", "etcd endpoint list"),
            ("", "etcd endpoint list"),
            ("a:x", "etcd endpoint port \"x\""),
            ("a:0", "etcd endpoint port \"0\""),
            ("a:65536", "etcd endpoint port \"65536\""),
            ("a:", "etcd endpoint port \"\""),
            ("http://a:1/v3", "etcd endpoint path \"/v3\""),
            (":2379", "etcd endpoint host \":2379\""),
            ("fd00::5", "etcd endpoint host"),
            ("[fd00::5", "etcd endpoint host"),
            ("[nope]:1", "etcd endpoint host"),
            ("a b:1", "etcd endpoint host \"a b:1\""),
        ];
        for (input, want) in cases {
            let msg = bad(input);
            assert!(msg.contains(want), "{input:?}: {msg}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let cfg = EtcdConfig::new("a:1").unwrap().user("root", "hunter2");
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(shown.contains("root"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(cfg.user_name(), Some("root"));
    }
}
