//! The real `switchyard` binary: `serve` on port 0, the client subcommands against it,
//! and a graceful stop on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::{serve_process, BIN};

struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start() -> Served {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data = std::env::temp_dir().join(format!("switchyard-cli-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let (child, url) = serve_process("127.0.0.1:0", &data);
        assert!(
            url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
            "{url}"
        );
        Served { child, url }
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(BIN)
            .args(args)
            .args(["--url", &self.url])
            .output()
            .expect("run switchyard");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .args(["--url", &self.url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard")
    }

    fn stats(&self) -> Value {
        let (ok, out) = self.run(&["stats"]);
        assert!(ok);
        serde_json::from_str(&out).expect("stats prints JSON")
    }

    /// Waits until `cond` holds on `stats`.
    fn wait_for(&self, what: &str, cond: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(&self.stats()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(child: Child) -> Vec<Value> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn pub_sub_send_consume_request_and_stats() {
    let s = Served::start();

    let sub = s.spawn(&["sub", "orders.>", "--count", "2", "--filter", "data.n >= 1"]);
    let plain = s.spawn(&["sub", "notes", "--count", "1"]);
    s.wait_for("the subscriptions", |v| {
        v["topics"].as_array().is_some_and(|t| t.len() == 1)
            && v["clients"]
                .as_array()
                .is_some_and(|c| c.iter().filter(|c| c["subs"] == 1).count() == 2)
    });
    let (ok, out) = s.run(&["pub", "orders.eu", r#"{"n":0}"#]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"topic":"orders.eu","seq":1})
    );
    assert!(
        s.run(&["pub", "orders.eu", r#"{"n":1}"#, "-H", "region=eu"])
            .0
    );
    assert!(s.run(&["pub", "orders.us", r#"{"n":2}"#]).0);
    assert!(s.run(&["pub", "notes", "plain text"]).0);
    let got = lines(sub);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0]["topic"].as_str(), got[0]["data"].clone()),
        (Some("orders.eu"), json!({"n":1}))
    );
    assert_eq!(got[0]["headers"], json!({"region":"eu"}));
    assert_eq!(
        (got[1]["topic"].as_str(), got[1]["seq"].as_u64()),
        (Some("orders.us"), Some(1))
    );
    assert_eq!(
        lines(plain)[0]["data"],
        json!("plain text"),
        "text that is not JSON is sent as a string"
    );

    let (ok, out) = s.run(&["send", "jobs", r#"{"job":1}"#]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"msg":"1"})
    );
    assert!(s.run(&["send", "jobs", r#"{"job":2}"#]).0);
    let (ok, out) = s.run(&["consume", "jobs", "--count", "2"]);
    assert!(ok);
    let jobs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        jobs,
        vec![
            json!({"queue":"jobs","msg":"1","attempt":1,"data":{"job":1}}),
            json!({"queue":"jobs","msg":"2","attempt":1,"data":{"job":2}}),
        ]
    );
    let jobs_stats = s.stats()["queues"][0].clone();
    assert_eq!(
        (jobs_stats["ready"].as_u64(), jobs_stats["acked"].as_u64()),
        (Some(0), Some(2))
    );

    // A worker that acks after printing lets `send --confirm done` return.
    let worker = s.spawn(&["consume", "work", "--count", "1"]);
    let (ok, out) = s.run(&["send", "work", "7", "--confirm", "done"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"msg":"1"})
    );
    assert_eq!(lines(worker)[0]["data"], json!(7));

    // No one answers: `request` reports the timeout and fails.
    let (ok, _) = s.run(&["request", "rpc", "1", "--timeout-ms", "200"]);
    assert!(!ok);
}

#[test]
fn sigterm_stops_gracefully_and_tells_clients() {
    let mut s = Served::start();
    let sub = s.spawn(&["sub", "t"]);
    s.wait_for("the subscriber", |v| v["server"]["connections"] == 2);
    let pid = s.child.id().to_string();
    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = s.child.wait().unwrap();
    assert!(status.success(), "broker exits 0 on SIGTERM: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The subscriber was told the broker went away, and exits with an error saying so.
    let out = sub.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1001"), "{err}");
}
