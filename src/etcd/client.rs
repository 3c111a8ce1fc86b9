//! [`Etcd`]: the client handle, its connection pool and endpoint failover, and the KV and
//! lease calls.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::auth::{self, Credentials, Token};
use super::config::{Endpoint, EtcdConfig};
use super::http::{dial, Conn, HttpError, Response};
use super::kv::{put_json, range_json, WireRange, WireTxn, WireWrite};
use super::reply::{http_err, snippet, status_err, timed_out};
use super::stream::Stream;
use super::{prefix_end, EtcdError, KeyValue, RangeResponse, TxnRequest, TxnResponse, Watch};
use crate::error::Result;

/// Idle keep-alive connections kept per client.
const MAX_IDLE: usize = 8;

/// A synchronous etcd v3 client, speaking JSON to etcd's HTTP gateway (`/v3/…`, etcd 3.4
/// and later).
///
/// Cheap to clone (an [`Arc`] inside) and usable from any number of threads: each call
/// takes an idle keep-alive connection from a small pool, or opens one, trying the
/// endpoints in order from the last one that answered. Every call returns within the
/// configured timeout, with [`EtcdError`] (inside [`crate::Error::Etcd`]) on failure.
///
/// ```no_run
/// use netplumb::etcd::{Etcd, EtcdConfig};
/// let etcd = Etcd::connect(EtcdConfig::new("http://127.0.0.1:2379")?)?;
/// etcd.put("/greeting", "hello", None)?;
/// let kv = etcd.get("/greeting")?.expect("just written");
/// assert_eq!(kv.value, b"hello");
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EtcdConfig,
    /// The TLS configuration made from `cfg`'s files, for TLS endpoints.
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<Conn>>,
    /// The endpoint to try first.
    preferred: AtomicUsize,
    /// The token of `cfg.user`. Held while authenticating, so that threads whose token
    /// was refused together authenticate once.
    token: Mutex<Token>,
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.inner.cfg.endpoints())
            .field("timeout", &self.inner.cfg.timeout)
            .field("tls", &self.inner.tls.is_some())
            .field("user", &self.inner.cfg.user_name())
            .field("netns", &self.inner.cfg.netns)
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// A client for `cfg`, after checking with one cheap read that an endpoint answers;
    /// with a [user](EtcdConfig::user), by authenticating instead (which checks the
    /// password too, and needs no permission on any key). A wrong user name or password
    /// fails with [`EtcdError::Auth`].
    ///
    /// The TLS files of the configuration are read here: one that cannot be used fails
    /// with [`EtcdError::TlsFile`] naming it. TLS files with `http://` endpoints are
    /// refused ([`crate::Error::InvalidInput`]). A server whose certificate is not
    /// trusted, or that refuses this client's, fails with [`EtcdError::Certificate`].
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let etcd = Etcd::connect(EtcdConfig::new("10.0.0.5:2379,10.0.0.6:2379")?)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn connect(cfg: EtcdConfig) -> Result<Etcd> {
        cfg.check()?;
        let tls = if cfg.uses_tls() {
            Some(cfg.tls.client_config()?)
        } else {
            None
        };
        let etcd = Etcd {
            inner: Arc::new(Inner {
                cfg,
                tls,
                idle: Mutex::new(Vec::new()),
                preferred: AtomicUsize::new(0),
                token: Mutex::new(Token::Unknown),
            }),
        };
        let deadline = Instant::now() + etcd.inner.cfg.timeout;
        if etcd.token(deadline)?.is_none() {
            etcd.range(b"\0", None, 1)?;
        }
        Ok(etcd)
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.cfg
    }

    /// The value at `key` (`etcdctl get KEY`).
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// if let Some(kv) = etcd.get("/config/mtu")? {
    ///     println!("{} (revision {})", kv.value_str().unwrap_or("?"), kv.mod_revision);
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        Ok(self.range(key, None, 0)?.kvs.into_iter().next())
    }

    /// The keys in `key..range_end` (just `key` without a range end), at most `limit` of
    /// them (0: all), in key order (`etcdctl get KEY END --limit N`). A range end of
    /// `"\0"` means every key from `key` on; [`prefix_end`] gives a prefix's range end.
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let first = etcd.range("/a", Some(b"/b"), 10)?;
    /// if first.more {
    ///     println!("{} keys in all", first.count);
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn range(
        &self,
        key: impl AsRef<[u8]>,
        range_end: Option<&[u8]>,
        limit: i64,
    ) -> Result<RangeResponse> {
        self.range_at(key, range_end, limit, 0)
    }

    /// As [`range`](Etcd::range), but reading the store as it was at `revision` (0:
    /// now), so that several reads see one snapshot. A revision compacted away fails
    /// with [`EtcdError::Compacted`].
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let a = etcd.range("/a", None, 0)?;
    /// let b = etcd.range_at("/b", None, 0, a.revision)?; // as of the first read
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn range_at(
        &self,
        key: impl AsRef<[u8]>,
        range_end: Option<&[u8]>,
        limit: i64,
        revision: i64,
    ) -> Result<RangeResponse> {
        let req = range_json(key.as_ref(), range_end, limit, revision);
        match self.call::<WireRange>("range", "/v3/kv/range", &req) {
            Err(crate::Error::Etcd(EtcdError::Server { message, .. }))
                if revision != 0 && message.contains("compacted") =>
            {
                Err(EtcdError::Compacted { revision }.into())
            }
            r => Ok(r?.into()),
        }
    }

    /// Every key starting with `prefix`, in key order (`etcdctl get --prefix PREFIX`);
    /// an empty prefix means every key.
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// for kv in etcd.prefix("/netplumb/")? {
    ///     println!("{}", String::from_utf8_lossy(&kv.key));
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<KeyValue>> {
        let p = prefix.as_ref();
        Ok(self.range(first_key(p), Some(&prefix_end(p)), 0)?.kvs)
    }

    /// Writes `value` at `key`, attached to `lease` if given (`etcdctl put KEY VALUE
    /// --lease ID`). Returns the revision of the write.
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let rev = etcd.put("/config/mtu", "1450", None)?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        lease: Option<i64>,
    ) -> Result<i64> {
        let req = put_json(key.as_ref(), value.as_ref(), lease);
        let r: WireWrite = self.call("put", "/v3/kv/put", &req)?;
        Ok(r.header.revision.0)
    }

    /// Deletes `key` (`etcdctl del KEY`); returns how many keys went (0 or 1).
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// etcd.delete("/config/mtu")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.delete_range(key.as_ref(), None)
    }

    /// Deletes every key starting with `prefix` (`etcdctl del --prefix PREFIX`; an empty
    /// prefix means every key); returns how many went.
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let n = etcd.delete_prefix("/scratch/")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<i64> {
        let p = prefix.as_ref();
        self.delete_range(first_key(p), Some(&prefix_end(p)))
    }

    fn delete_range(&self, key: &[u8], end: Option<&[u8]>) -> Result<i64> {
        let req = range_json(key, end, 0, 0);
        let r: WireWrite = self.call("delete", "/v3/kv/deleterange", &req)?;
        Ok(r.deleted.0)
    }

    /// Runs a transaction (`etcdctl txn`): its comparisons and the branch they select
    /// happen atomically, at one revision.
    ///
    /// ```no_run
    /// use netplumb::etcd::{CmpOp, Compare, TxnRequest, TxnOp};
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let seen = etcd.get("/counter")?.map_or(0, |kv| kv.mod_revision);
    /// let r = etcd.txn(&TxnRequest::new()
    ///     .when(Compare::mod_revision("/counter", CmpOp::Equal, seen))
    ///     .then(TxnOp::put("/counter", "2", None)))?;
    /// if !r.succeeded {
    ///     println!("someone else wrote /counter first");
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn txn(&self, txn: &TxnRequest) -> Result<TxnResponse> {
        let r: WireTxn = self.call("txn", "/v3/kv/txn", &txn.to_json())?;
        TxnResponse::try_from(r).map_err(|d| EtcdError::protocol("txn", d).into())
    }

    /// Watches `key` (or `key..range_end`) for changes from `start_revision` on (`None`:
    /// from now), on a connection of its own (`etcdctl watch`).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use netplumb::etcd::{prefix_end, EventKind};
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let mut w = etcd.watch("/hosts/", Some(&prefix_end(b"/hosts/")), None)?;
    /// while let Some(events) = w.next(Duration::from_secs(30))? {
    ///     for e in events {
    ///         let verb = if e.kind == EventKind::Put { "up" } else { "down" };
    ///         println!("{} {verb}", String::from_utf8_lossy(&e.kv.key));
    ///     }
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn watch(
        &self,
        key: impl AsRef<[u8]>,
        range_end: Option<&[u8]>,
        start_revision: Option<i64>,
    ) -> Result<Watch> {
        let mut create = range_json(key.as_ref(), range_end, 0, 0);
        if let (Some(rev), Value::Object(m)) = (start_revision, &mut create) {
            m.insert("start_revision".into(), rev.to_string().into());
        }
        let body = serde_json::to_vec(&json!({ "create_request": create }))
            .map_err(|e| EtcdError::protocol("watch", e.to_string()))?;
        let deadline = Instant::now() + self.inner.cfg.timeout;
        self.authorized(deadline, |token| {
            let mut conn = self.open(deadline)?;
            let head = conn
                .send("/v3/watch", &body, token, deadline)
                .and_then(|()| conn.read_head(deadline))
                .map_err(|e| http_err(&conn.name, "watch", e))?;
            Watch::start(conn, head, deadline)
        })
    }

    /// Posts `req` to `path` and parses the reply of a 200 as `T`.
    pub(super) fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        req: &Value,
    ) -> Result<T> {
        let body = serde_json::to_vec(req).map_err(|e| EtcdError::protocol(op, e.to_string()))?;
        let deadline = Instant::now() + self.inner.cfg.timeout;
        let resp = self.authorized(deadline, |token| {
            let resp = self.exchange(op, path, &body, token, deadline)?;
            if resp.status != 200 {
                return Err(status_err(op, resp.status, &resp.body).into());
            }
            Ok(resp)
        })?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| EtcdError::protocol(op, format!("{e} in {}", snippet(&resp.body))).into())
    }

    /// Runs `f` with the token to send (authenticating first if a user is configured
    /// and no token is held). When etcd refuses the token (expired, or the server
    /// restarted and forgot it), authenticates again and runs `f` once more.
    fn authorized<R>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(Option<&str>) -> Result<R>,
    ) -> Result<R> {
        let user = self.inner.cfg.user.as_deref();
        let token = self.token(deadline)?;
        let r = match f(token.as_deref()) {
            Err(crate::Error::Etcd(e)) if user.is_some() && auth::token_rejected(&e) => {
                log::debug!("etcd: token refused ({e}); authenticating again");
                self.forget_token(token.as_ref());
                let token = self.token(deadline)?;
                f(token.as_deref())
            }
            r => r,
        };
        r.map_err(|e| match e {
            crate::Error::Etcd(e) => auth::explain(e, user).into(),
            e => e,
        })
    }

    /// The token to send: `None` without a user, or when the server has authentication
    /// off.
    fn token(&self, deadline: Instant) -> Result<Option<Arc<str>>> {
        let Some(user) = self.inner.cfg.user.as_deref() else {
            return Ok(None);
        };
        let mut token = self.inner.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Token::Unknown = *token {
            *token = self.authenticate(user, deadline)?;
        }
        Ok(token.value())
    }

    /// Drops the token `used` (unless another thread has renewed it since).
    fn forget_token(&self, used: Option<&Arc<str>>) {
        let mut token = self.inner.token.lock().unwrap_or_else(|e| e.into_inner());
        let same = match (&*token, used) {
            (Token::Held(held), Some(used)) => Arc::ptr_eq(held, used),
            (Token::NotNeeded, None) => true,
            _ => false,
        };
        if same {
            *token = Token::Unknown;
        }
    }

    /// Asks etcd for a token (`POST /v3/auth/authenticate`).
    fn authenticate(&self, user: &Credentials, deadline: Instant) -> Result<Token> {
        const OP: &str = "authenticate";
        let body = serde_json::to_vec(&user.request())
            .map_err(|e| EtcdError::protocol(OP, e.to_string()))?;
        let resp = self.exchange(OP, "/v3/auth/authenticate", &body, None, deadline)?;
        if resp.status == 200 {
            return Ok(auth::parse_token(&resp.body)?);
        }
        match user.refused(status_err(OP, resp.status, &resp.body)) {
            Some(e) => Err(e.into()),
            None => {
                log::debug!("etcd: authentication is off; calls go without a token");
                Ok(Token::NotNeeded)
            }
        }
    }

    /// One request and its response, on a pooled connection or a new one. A pooled
    /// connection that broke before any byte of the answer came (the server closed it
    /// while idle, or restarted) is dropped and the request sent on a new one.
    ///
    /// That resend could apply a request twice if a server died after applying it and
    /// before answering, and another endpoint then takes it; etcd's compare-and-swap
    /// transactions fail the second time instead, and a repeated put or delete leaves
    /// the same state.
    fn exchange(
        &self,
        op: &'static str,
        path: &str,
        body: &[u8],
        token: Option<&str>,
        deadline: Instant,
    ) -> Result<Response> {
        loop {
            let (mut conn, pooled) = match self.take_idle() {
                Some(c) => (c, true),
                None => (self.open(deadline)?, false),
            };
            match conn.exchange(path, body, token, deadline) {
                Ok(r) => {
                    if r.reusable {
                        self.put_idle(conn);
                    }
                    return Ok(r);
                }
                Err(HttpError::Io(e)) if pooled && !conn.answered && !timed_out(&e) => {
                    log::debug!(
                        "etcd: idle connection to {} broke ({e}); redialing",
                        conn.name
                    );
                }
                Err(e) => return Err(http_err(&conn.name, op, e).into()),
            }
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = idle.pop() {
            if c.is_reusable() {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Opens a connection, trying every endpoint once from the preferred one, each with
    /// a fair share of the time left. When none can be used, and TLS failed with one of
    /// them (a certificate refused, most likely on every endpoint alike), that is the
    /// error; else [`EtcdError::Unreachable`].
    fn open(&self, deadline: Instant) -> Result<Conn> {
        let cfg = &self.inner.cfg;
        let n = cfg.endpoints.len();
        let first = self.inner.preferred.load(Ordering::Relaxed) % n;
        let (mut last, mut tls_failure) = (None, None);
        for i in 0..n {
            let idx = (first + i) % n;
            let ep = &cfg.endpoints[idx];
            let share = deadline.saturating_duration_since(Instant::now()) / (n - i) as u32;
            match self.dial(ep, share)? {
                Ok(s) => {
                    self.inner.preferred.store(idx, Ordering::Relaxed);
                    return Ok(Conn::new(s, ep.to_string()));
                }
                Err(e) => {
                    log::debug!("etcd: cannot connect to {ep}: {e}");
                    let tls = EtcdError::tls_failure(&ep.to_string(), &e);
                    tls_failure = tls_failure.or(tls);
                    last = Some(e);
                }
            }
        }
        if let Some(e) = tls_failure {
            return Err(e.into());
        }
        Err(EtcdError::Unreachable {
            endpoint: cfg.endpoints().join(", "),
            source: last.unwrap_or_else(|| io::Error::other("no endpoint")),
        }
        .into())
    }

    /// Connects to `ep` within `time`, and runs the TLS handshake for TLS endpoints. The
    /// outer error is a failure to enter the configured namespace.
    fn dial(&self, ep: &Endpoint, time: Duration) -> Result<io::Result<Stream>> {
        if time.is_zero() {
            return Ok(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out",
            )));
        }
        let deadline = Instant::now() + time;
        let tcp = match dial(ep, self.inner.cfg.netns.as_ref(), time)? {
            Ok(tcp) => tcp,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match &self.inner.tls {
            Some(tls) => Stream::tls(tcp, tls, &ep.host, deadline),
            None => Ok(Stream::Plain(tcp)),
        })
    }
}

/// The first key of a prefix's range: etcd refuses an empty key, and no key sorts
/// before `"\0"`.
fn first_key(prefix: &[u8]) -> &[u8] {
    if prefix.is_empty() {
        b"\0"
    } else {
        prefix
    }
}
