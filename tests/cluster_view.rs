//! The cluster view over real processes: three `nats-server`s on loopback
//! (tests/common/nats.rs) and two `switchyard serve --nats` nodes. Any node's
//! `stats` shows every node's clients with their node, a `kick` sent to one node
//! for another's client reaches it, a killed node shows as gone, and `/metrics`
//! carries the node's label.
//!
//! One cluster for the whole binary's cases, run in turn in one test: a
//! three-server cluster takes seconds to start.

mod common;

use std::time::{Duration, Instant};

use common::nats::{http_get, NatsCluster, Node};
use common::*;
use serde_json::{json, Value};

/// `switchyard top` in a 120x32 tmux pane of a tmux server of our own (as
/// tests/dashboard.rs runs it: crossterm needs a real terminal emulator).
struct Pane {
    socket: String,
}

impl Pane {
    fn start(cmd: &str) -> Pane {
        let socket = format!("switchyard-test-cluster-view-{}", std::process::id());
        let status = std::process::Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-s", "sy"])
            .args(["-x", "120", "-y", "32", cmd])
            .status()
            .expect("tmux (.ci/run installs it)");
        assert!(status.success());
        Pane { socket }
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "sy"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn key(&self, key: &str) {
        let status = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "sy", key])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to 20 s) until the screen shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// `stats` on `raw` until `cond` holds of it (panics after 10 s, with the last).
async fn stats_until(raw: &mut Raw, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = raw.call(json!({"op":"stats","id":99})).await;
        if cond(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client_row<'a>(stats: &'a Value, id: &str) -> Option<&'a Value> {
    stats["clients"].as_array()?.iter().find(|c| c["id"] == id)
}

fn node_row<'a>(stats: &'a Value, node: &str) -> Option<&'a Value> {
    stats["server"]["cluster"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node"] == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_sees_and_reaches_the_clusters_clients() {
    let cluster = NatsCluster::start();
    let a = Node::start(&cluster, "web1");
    let mut b = Node::start(&cluster, "web2");

    let mut admin = a.client().await;
    let mut worker = b.client().await;
    assert_eq!(
        worker
            .call(json!({"op":"hello","id":1,"name":"worker-b"}))
            .await["ev"],
        "ok"
    );
    let on_b = format!("{}@web2", worker.id());

    // `stats` on A lists B's client, named by its node, beside A's own.
    let stats = stats_until(&mut admin, "B's client in A's view", |s| {
        client_row(s, &on_b).is_some()
    })
    .await;
    let row = client_row(&stats, &on_b).unwrap();
    assert_eq!(
        (&row["node"], &row["name"]),
        (&json!("web2"), &json!("worker-b"))
    );
    let mine = client_row(&stats, &admin.id()).unwrap();
    assert_eq!(mine["node"], "web1", "a node's own clients are named too");
    let web2 = node_row(&stats, "web2").unwrap();
    assert!(web2.get("gone").is_none(), "{web2}");
    assert_eq!(web2["connections"], 1);
    assert_eq!(node_row(&stats, "web1").unwrap()["age_ms"], 0);

    // A kick sent to A for B's client: the client sees what a kick on its own
    // node sends, and A answers as for its own.
    assert_eq!(
        admin
            .call(json!({"op":"kick","id":2,"client":on_b,"reason":"maintenance"}))
            .await,
        ok(2, json!({}))
    );
    assert_eq!(
        worker.recv().await,
        json!({"ev":"kicked","reason":"maintenance"})
    );
    assert_eq!(worker.recv_close().await, Some(1008));
    // The kick is in web2's event log, by web1's client.
    let mut on_web2 = b.client().await;
    let stats = on_web2.call(json!({"op":"stats","id":1})).await;
    let kicked = format!(
        "{} on web1 kicked {} (worker-b): maintenance",
        admin.id(),
        worker.id()
    );
    assert!(
        stats["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == kicked.as_str()),
        "{kicked} in {stats}"
    );
    drop(on_web2);
    // Errors cross with their code: no such client there, no such node.
    let e = admin
        .call(json!({"op":"kick","id":3,"client":"c999@web2"}))
        .await;
    assert_error(&e, Some(3), "not_found");
    let e = admin
        .call(json!({"op":"requeue","id":4,"client":on_b,"cid":"w"}))
        .await;
    assert_error(&e, Some(4), "not_found");
    let e = admin
        .call(json!({"op":"kick","id":5,"client":"c1@nowhere"}))
        .await;
    let why = assert_error(&e, Some(5), "unavailable");
    assert!(why.contains("nowhere"), "{why}");
    // A's own client by its cluster id.
    let mut other = a.client().await;
    let mine = format!("{}@web1", other.id());
    assert_eq!(
        admin.call(json!({"op":"kick","id":6,"client":mine})).await,
        ok(6, json!({}))
    );
    assert_eq!(
        other.recv_ev("kicked").await["reason"],
        "kicked by operator"
    );
    stats_until(&mut admin, "the kicked client gone from A's view", |s| {
        client_row(s, &on_b).is_none()
    })
    .await;

    // /metrics is the node's own, every series labelled with it.
    let (status, metrics) = http_get(a.port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let samples: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(!samples.is_empty());
    for line in &samples {
        assert!(line.contains("{node=\"web1\""), "{line}");
    }
    assert!(
        samples
            .iter()
            .any(|l| l.starts_with("switchyard_connections{node=\"web1\"} ")),
        "{metrics}"
    );

    // B killed: A shows it gone within a few seconds, and none of its clients.
    let mut late = b.client().await;
    let late_id = format!("{}@web2", late.id());
    late.call(json!({"op":"hello","id":1,"name":"late"})).await;
    stats_until(&mut admin, "B's late client", |s| {
        client_row(s, &late_id).is_some()
    })
    .await;
    // `switchyard top` against A: B's client in the Clients view, with its
    // node, and the two nodes in the header.
    let pane = Pane::start(&format!("{BIN} top --url {}", a.url));
    pane.wait_for(&["node web1", "2 nodes"]);
    pane.key("4");
    let screen = pane.wait_for(&["late"]);
    let row = screen.lines().find(|l| l.contains("late")).unwrap();
    assert!(row.contains("web2"), "{screen}");

    // B stopped (SIGSTOP): its NATS connection stays open, but nothing on it
    // answers: a kick of its client is `unavailable` once the 2 s wait is over.
    let signal = |which: &str| {
        let pid = b.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args([which, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let asked = Instant::now();
    let e = admin
        .call(json!({"op":"kick","id":7,"client":late_id}))
        .await;
    let waited = asked.elapsed();
    signal("-CONT");
    let why = assert_error(&e, Some(7), "unavailable");
    assert_eq!(why, "node web2 did not answer within 2000 ms");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&waited),
        "{waited:?}"
    );

    let killed = Instant::now();
    b.kill();
    let stats = stats_until(&mut admin, "web2 gone", |s| {
        node_row(s, "web2").is_some_and(|n| n["gone"] == true)
    })
    .await;
    let after = killed.elapsed();
    assert!(after < Duration::from_secs(6), "{after:?}");
    assert!(client_row(&stats, &late_id).is_none(), "{stats}");
    pane.wait_for(&["web2 gone"]);
    drop(a);
}
