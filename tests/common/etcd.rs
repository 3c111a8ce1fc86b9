//! A throwaway etcd server for tests: `etcd` (found on `PATH`) as a child process inside the
//! calling thread's network namespace (a sandbox's, where 127.0.0.1:2379 and :2380 are
//! free and private), with its data in a temp dir. Killed, and its data removed, on drop.
//! It can serve its clients over TLS, and with authentication on ([`EtcdOptions`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netplumb::link::LinkSet;
use netplumb::{Netns, Rtnl};

use super::certs::Pair;
use super::TempDir;

/// The etcd binary the tests run, looked up on `PATH`.
pub const ETCD: &str = "etcd";

/// Whether etcd is installed. Under `CI=true` a missing binary fails the test; elsewhere
/// this [`skip`](super::skip)s `test`, which returns.
pub fn available(test: &str) -> bool {
    super::tool(test, ETCD).is_some()
}

/// Where etcd serves `/health` and `/metrics` in plain HTTP when its client port speaks
/// TLS (`--listen-metrics-urls`), for the harness's own requests.
const METRICS_PORT: u16 = 2381;

/// How to start a test's etcd, beyond the defaults (plain HTTP, no authentication).
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// TLS on the client port, with this certificate and key (`--cert-file`,
    /// `--key-file`).
    pub tls: Option<Pair>,
    /// Mutual TLS: clients must present a certificate signed by this CA
    /// (`--client-cert-auth --trusted-ca-file`).
    pub client_ca: Option<PathBuf>,
    /// More flags, such as `--auth-token-ttl=1`.
    pub args: Vec<String>,
    /// An address of the namespace (such as an underlay's) the server listens on besides
    /// 127.0.0.1.
    pub also_on: Option<std::net::IpAddr>,
}

/// A running (or stopped) etcd on 127.0.0.1:2379 of one namespace.
pub struct EtcdServer {
    child: Option<Child>,
    ns: Netns,
    opts: EtcdOptions,
    dir: TempDir,
}

impl EtcdServer {
    /// Starts etcd in the calling thread's namespace (bringing its loopback up) and
    /// waits until it answers `/health`. Panics (with the server's log) if it does not.
    pub fn start() -> Self {
        Self::start_with(EtcdOptions::default())
    }

    /// [`start`](EtcdServer::start), with `opts`.
    pub fn start_with(opts: EtcdOptions) -> Self {
        let ns = Netns::current().expect("current namespace");
        let mut rtnl = Rtnl::open_in(&ns).expect("rtnl");
        rtnl.execute(&LinkSet::new("lo").up()).expect("loopback up");
        let mut srv = EtcdServer {
            child: None,
            ns,
            opts,
            dir: TempDir::new("etcd"),
        };
        srv.spawn();
        srv
    }

    /// `http://127.0.0.1:2379`, or `https://…` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:2379")
    }

    /// The namespace the server listens in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Kills the server (SIGKILL, as a crash) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data, in the same namespace.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: frozen, it accepts connections
    /// and never answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("etcd running").id().to_string();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let st = Command::new(super::need("kill"))
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {pid}");
        if frozen {
            // The signal is delivered to each thread as it is next scheduled: until every
            // thread shows the stopped state, a request sent now may still be served.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !all_threads_stopped(&pid) {
                assert!(
                    Instant::now() < deadline,
                    "etcd {pid} not stopped after 10 s"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Compacts the history up to `revision` (a raw gateway call, independent of the
    /// client under test).
    pub fn compact(&self, revision: i64) {
        let body = format!("{{\"revision\":\"{revision}\",\"physical\":true}}");
        let reply = self.raw("POST", "/v3/kv/compaction", &body);
        assert!(is_ok(&reply), "compaction: {reply}");
    }

    /// Turns authentication on through raw gateway calls (independent of the client
    /// under test): user `root` with [`ROOT_PASSWORD`] and the role `root`, then `auth
    /// enable`. Plain HTTP only.
    pub fn enable_auth(&self) {
        self.auth_call("/v3/auth/user/add", &user_json("root", ROOT_PASSWORD));
        self.auth_call("/v3/auth/role/add", r#"{"name":"root"}"#);
        self.auth_call("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#);
        self.auth_call("/v3/auth/enable", "{}");
    }

    /// Adds user `name` with a role of the same name that may read and write the keys
    /// under `prefix` only (after [`enable_auth`](EtcdServer::enable_auth)).
    pub fn add_user(&self, name: &str, password: &str, prefix: &str) {
        let token = self.authenticate("root", ROOT_PASSWORD);
        let with = |path: &str, body: &str| self.raw_as(&token, path, body);
        // The range end of the prefix: its last byte plus one (this module is built
        // without the `etcd` feature too, so not `etcd::prefix_end`).
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("a prefix") += 1;
        for (path, body) in [
            ("/v3/auth/user/add", user_json(name, password)),
            ("/v3/auth/role/add", format!(r#"{{"name":"{name}"}}"#)),
            (
                "/v3/auth/role/grant",
                format!(
                    r#"{{"name":"{name}","perm":{{"permType":"READWRITE","key":"{}","range_end":"{}"}}}}"#,
                    b64(prefix.as_bytes()),
                    b64(&end)
                ),
            ),
            (
                "/v3/auth/user/grant",
                format!(r#"{{"user":"{name}","role":"{name}"}}"#),
            ),
        ] {
            let reply = with(path, &body);
            assert!(is_ok(&reply), "{path}: {reply}");
        }
    }

    /// A token for `user`, straight from the gateway (panics if refused).
    pub fn authenticate(&self, user: &str, password: &str) -> String {
        let reply = self.raw("POST", "/v3/auth/authenticate", &user_json(user, password));
        let start = reply.find(r#""token":""#).map(|i| i + 9);
        let token = start.and_then(|i| Some(&reply[i..i + reply[i..].find('"')?]));
        token
            .unwrap_or_else(|| panic!("authenticate {user}: {reply}"))
            .to_string()
    }

    /// A raw gateway call with `token` as the `Authorization` header; the whole reply.
    pub fn raw_as(&self, token: &str, path: &str, body: &str) -> String {
        self.request(&format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn auth_call(&self, path: &str, body: &str) {
        let reply = self.raw("POST", path, body);
        assert!(is_ok(&reply), "{path}: {reply}");
    }

    fn log(&self) -> PathBuf {
        self.dir.0.join("etcd.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.log()).expect("etcd log file");
        let err = log.try_clone().expect("etcd log file");
        let mut client = self.url();
        if let Some(a) = self.opts.also_on {
            let also = client.replace("127.0.0.1", &a.to_string());
            client = format!("{client},{also}");
        }
        let peer = "http://127.0.0.1:2380";
        let mut cmd = Command::new(super::need(ETCD));
        cmd.arg("--name=default")
            .arg(format!("--data-dir={}", self.dir.0.join("data").display()))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
            ])
            .arg(format!("--initial-cluster=default={peer}"))
            // A one-member cluster elects itself within milliseconds at these settings.
            .args(["--heartbeat-interval=10", "--election-timeout=100"])
            .args(["--logger=zap", "--log-level=warn"])
            .args(self.tls_args())
            .args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        self.child = Some(self.ns.spawn(&mut cmd).expect("spawn etcd"));
        self.wait_ready();
    }

    fn tls_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(pair) = &self.opts.tls {
            args.push(format!("--cert-file={}", pair.cert.display()));
            args.push(format!("--key-file={}", pair.key.display()));
            args.push(format!(
                "--listen-metrics-urls=http://127.0.0.1:{METRICS_PORT}"
            ));
        }
        if let Some(ca) = &self.opts.client_ca {
            args.push("--client-cert-auth".into());
            args.push(format!("--trusted-ca-file={}", ca.display()));
        }
        args
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("etcd exited with {status}: {}", self.log_text());
            }
            if self
                .raw("GET", "/health", "")
                .contains("\"health\":\"true\"")
            {
                return;
            }
            if Instant::now() > deadline {
                let log = self.log_text();
                self.stop();
                panic!("etcd not ready after 30 s: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// How many watch requests the server has served so far (its Prometheus counter
    /// `grpc_server_started_total{grpc_method="Watch"}`), read from `/metrics`.
    pub fn watches_started(&self) -> u64 {
        self.started("Watch")
    }

    /// How many range requests (reads) the server has served so far
    /// (`grpc_server_started_total{grpc_method="Range"}`).
    pub fn ranges_started(&self) -> u64 {
        self.started("Range")
    }

    /// How many requests of gRPC method `method` (`Range`, `Txn`, `Watch`, …) the server
    /// has started so far.
    pub fn started(&self, method: &str) -> u64 {
        let tag = format!("grpc_method=\"{method}\"");
        self.raw("GET", "/metrics", "")
            .lines()
            .filter(|l| l.starts_with("grpc_server_started_total") && l.contains(&tag))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// One HTTP/1.0 request to the gateway (plain HTTP only: not with TLS), or to
    /// `/health` and `/metrics` (with TLS, on the metrics port); the whole reply, or ""
    /// if the server cannot be reached.
    pub fn raw(&self, method: &str, path: &str, body: &str) -> String {
        let port = match &self.opts.tls {
            Some(_) if path == "/health" || path == "/metrics" => METRICS_PORT,
            Some(_) => panic!("raw {path}: the client port speaks TLS"),
            None => 2379,
        };
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.request_at(port, &req)
    }

    /// One raw HTTP request to the client port (plain HTTP only).
    fn request(&self, req: &str) -> String {
        assert!(
            self.opts.tls.is_none(),
            "raw request: the client port speaks TLS"
        );
        self.request_at(2379, req)
    }

    fn request_at(&self, port: u16, req: &str) -> String {
        let req = req.to_string();
        self.ns
            .run(move || -> std::io::Result<String> {
                let addr = ([127, 0, 0, 1], port).into();
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(req.as_bytes())?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .expect("enter etcd namespace")
            .unwrap_or_default()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Before the temp dir (a later field) is removed.
        self.stop();
    }
}

/// The password [`EtcdServer::enable_auth`] is given in the tests.
pub const ROOT_PASSWORD: &str = "root-pw";

fn user_json(name: &str, password: &str) -> String {
    format!(r#"{{"name":"{name}","password":"{password}"}}"#)
}

/// Whether a raw reply is a 200.
pub fn is_ok(reply: &str) -> bool {
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}

/// Standard base64 with padding, as the gateway takes keys.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether every thread of process `pid` is stopped by a signal (state `T` in its stat).
fn all_threads_stopped(pid: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
            // A thread that exited meanwhile is no longer serving anything.
            .unwrap_or(true)
    })
}
