//! A real NATS JetStream cluster for tests: three `nats-server` processes on
//! loopback, routed to each other, each with its own data directory and free
//! ports. Dropping the [`NatsCluster`] kills every server it started, so a test
//! that panics leaks none.
//!
//! The binary is `$NATS_SERVER`, else `nats-server` on `PATH`, else Debian's
//! `/usr/sbin/nats-server` (`.ci/run` installs it when it is missing).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server has to come up (and its cluster to form).
const READY: Duration = Duration::from_secs(20);

/// One server of the cluster: its ports, its config file and, while it runs, its process.
pub struct NatsServer {
    pub name: String,
    pub client_port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    process: Option<Child>,
}

impl NatsServer {
    /// The URL a client connects to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    fn start(&mut self) {
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary().display()));
        self.process = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The JSON of a monitoring endpoint (`/connz?subs=1`, `/routez`, ...), or
    /// None if the server does not answer it.
    pub fn monitor(&self, path: &str) -> Option<Value> {
        let (status, body) = http_get(self.monitor_port, path)?;
        if status != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }
}

/// Three routed `nats-server`s with JetStream, stopped when dropped.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _dir: PathBuf,
    /// One cluster at a time in a test binary: three JetStream servers forming
    /// routes are slow to settle when several clusters start at once on a
    /// small machine (seen: not routed within 20 s under the full suite), and
    /// their free ports are chosen before they are bound.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl NatsCluster {
    /// Starts the three servers and waits until each is routed to the other two
    /// and healthy (JetStream included).
    pub fn start() -> NatsCluster {
        // A test that panicked while holding it left nothing running (its
        // cluster's Drop killed the servers): the lock is still good.
        let one_at_a_time = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = super::temp_data_dir();
        let ports: Vec<[u16; 3]> = (0..3)
            .map(|_| [free_port(), free_port(), free_port()])
            .collect();
        let mut servers = Vec::new();
        for (i, [client, cluster, monitor]) in ports.iter().copied().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            std::fs::create_dir_all(&store).unwrap();
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p[1]))
                .collect();
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{\n  name: switchyard-test\n  listen: 127.0.0.1:{cluster}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            );
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(&config, text).unwrap();
            servers.push(NatsServer {
                name,
                client_port: client,
                cluster_port: cluster,
                monitor_port: monitor,
                config,
                process: None,
            });
        }
        let mut cluster = NatsCluster {
            servers,
            _dir: dir,
            _one_at_a_time: one_at_a_time,
        };
        cluster.start_all();
        cluster
    }

    /// Every server's client URL, comma-separated, as `serve --nats` takes them.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills server `i` with SIGKILL (no goodbye to its clients or routes).
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Kills every server.
    pub fn kill_all(&mut self) {
        self.servers.iter_mut().for_each(NatsServer::kill);
    }

    /// Starts every server that is not running, and waits until the cluster is
    /// whole again.
    pub fn start_all(&mut self) {
        for s in self.servers.iter_mut().filter(|s| s.process.is_none()) {
            s.start();
        }
        self.wait_ready();
    }

    /// Starts server `i` again (same ports, same data) and waits for the cluster.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].start();
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        for s in &mut self.servers {
            if s.process.is_none() {
                continue;
            }
            loop {
                if let Some(Ok(Some(status))) = s.process.as_mut().map(Child::try_wait) {
                    panic!("nats-server {} exited at start: {status}", s.name);
                }
                let routed = s
                    .monitor("/routez")
                    .and_then(|r| r["num_routes"].as_u64())
                    .unwrap_or(0)
                    >= 2;
                let healthy =
                    routed && http_get(s.monitor_port, "/healthz").is_some_and(|(c, _)| c == 200);
                if healthy {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server {} not ready within {READY:?}",
                    s.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Where the `nats-server` binary is.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nats-server");
        assert!(
            debian.is_file(),
            "nats-server not found (set NATS_SERVER, or run .ci/run, which installs it)"
        );
        debian
    })
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback: the status and the body, or None if nobody answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after 10 s.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `switchyard serve --nats` process on a free loopback port, killed when
/// dropped.
pub struct Node {
    /// Its `--node` name.
    pub name: String,
    pub child: Child,
    pub url: String,
    pub port: u16,
}

impl Node {
    /// Starts node `name` on `cluster` with a fresh data directory, once healthy.
    pub fn start(cluster: &NatsCluster, name: &str) -> Node {
        Node::start_on(cluster, name, &super::temp_data_dir())
    }

    /// The same, on the data directory `data`.
    pub fn start_on(cluster: &NatsCluster, name: &str, data: &std::path::Path) -> Node {
        let (child, url) = super::serve_process_with(
            "127.0.0.1:0",
            data,
            &["--nats", &cluster.urls(), "--node", name],
        );
        let port = url
            .trim_start_matches("ws://127.0.0.1:")
            .trim_end_matches("/ws")
            .parse()
            .unwrap();
        let node = Node {
            name: name.into(),
            child,
            url,
            port,
        };
        wait_until(&format!("node {name} healthy"), || node.health().0 == 200);
        node
    }

    /// `/healthz`: its status and body (0 if the node does not answer).
    pub fn health(&self) -> (u16, String) {
        http_get(self.port, "/healthz").unwrap_or((0, String::new()))
    }

    /// A raw client of this node.
    pub async fn client(&self) -> super::Raw {
        super::Raw::connect(&self.url).await
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The longest a first use of a queue or retained topic (its stream's creation,
/// replicated, on a busy machine) may take to be answered.
pub const STREAM_WAIT: Duration = Duration::from_secs(15);

/// Starts consumer `cid` of `queue` on `w`, answered `ok` within [`STREAM_WAIT`].
pub async fn consume(w: &mut super::Raw, queue: &str, cid: &str, prefetch: u32) {
    w.send(serde_json::json!({"op":"consume","id":1,"queue":queue,"cid":cid,"prefetch":prefetch}))
        .await;
    let answer = w.try_recv(STREAM_WAIT).await.expect("an answer to consume");
    assert_eq!(
        answer,
        super::ok(1, serde_json::json!({})),
        "consume {queue}"
    );
}

/// Sends `{"n": i}` for each i of `range` to `queue`, each confirmed (stored)
/// within [`STREAM_WAIT`]; returns their message ids.
pub async fn send_confirmed(
    p: &mut super::Raw,
    queue: &str,
    range: std::ops::Range<u64>,
) -> Vec<String> {
    let mut ids = vec![];
    for i in range {
        p.send(serde_json::json!({"op":"send","id":i,"queue":queue,"data":{"n":i}}))
            .await;
        let a = p.try_recv(STREAM_WAIT).await.expect("an answer to send");
        assert_eq!(a["ev"], "ok", "{a}");
        ids.push(a["msg"].as_str().unwrap().to_string());
    }
    ids
}

/// The runtime a cluster test drives its clients on (two workers, as the
/// machine has cores), for tests that share one cluster across their cases.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The row named `name` in a node's `stats` list `list` (`queues`, `topics`),
/// or null.
pub async fn stats_row(c: &mut super::Raw, list: &str, name: &str) -> serde_json::Value {
    let s = c.call(serde_json::json!({"op":"stats","id":77})).await;
    s[list]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}
