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
fn sigterm_and_sighup_stop_gracefully_and_tell_clients() {
    for signal in ["-TERM", "-HUP"] {
        stops_gracefully_on(signal);
    }
}

/// A closed terminal (SIGHUP) is a graceful stop like SIGTERM, not a kill.
fn stops_gracefully_on(signal: &str) {
    let mut s = Served::start();
    let sub = s.spawn(&["sub", "t"]);
    s.wait_for("the subscriber", |v| v["server"]["connections"] == 2);
    let pid = s.child.id().to_string();
    let started = Instant::now();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let status = s.child.wait().unwrap();
    assert!(status.success(), "broker exits 0 on {signal}: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The subscriber was told the broker went away, and exits with an error saying so.
    let out = sub.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1001"), "{signal}: {err}");
}

/// `switchyard sub t | head -1`: once `head` has its line and goes, the
/// subscriber's next write meets a closed pipe and it exits quietly, no panic.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::io::BufRead;
    let s = Served::start();
    let mut sub = s.spawn(&["sub", "t"]);
    s.wait_for("the subscriber", |v| v["server"]["connections"] == 2);
    let mut stdout = std::io::BufReader::new(sub.stdout.take().unwrap());
    assert!(s.run(&["pub", "t", "1"]).0);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"data\":1"), "{first}");
    drop(stdout);
    // Written after the pipe closed: more than a pipe holds, so a write fails.
    let big = "x".repeat(70_000);
    for _ in 0..3 {
        s.run(&["pub", "t", &big]);
    }
    let (out, err) = output_within(sub, Duration::from_secs(10));
    assert_eq!(out, "");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

/// What a spawned client subcommand printed, waiting at most `wait` for it to
/// exit: one that hangs (a message dropped, a job never acked) is killed and fails
/// the test instead of hanging it.
fn output_within(mut child: Child, wait: Duration) -> (String, String) {
    let deadline = Instant::now() + wait;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {wait:?}; stdout: {:?}, stderr: {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `data` that is valid JSON, which the broker forwards as sent, but which
/// `serde_json::Value` cannot hold: a number beyond f64, a lone surrogate.
const UNDECODABLE: [&str; 2] = ["1e400", r#"["\ud800",-1e400]"#];

/// Sends raw frames, each answered `ok`, from a client of the broker at `url`.
async fn send_raw(url: &str, frames: &[String]) {
    let mut raw = common::Raw::connect(url).await;
    for frame in frames {
        raw.send_text(frame.clone()).await;
        let answer = raw.recv().await;
        assert_eq!(answer["ev"], "ok", "{frame} -> {answer}");
    }
}

#[tokio::test]
async fn sub_prints_a_message_it_cannot_decode_as_the_broker_sent_it() {
    let s = Served::start();
    let sub = s.spawn(&["sub", "t", "--count", "3"]);
    s.wait_for("the subscription", |v| {
        v["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["subs"] == 1))
    });
    let frames: Vec<String> = UNDECODABLE
        .iter()
        .chain([r#"{"n":3}"#].iter())
        .map(|d| format!(r#"{{"op":"pub","topic":"t","id":1,"data":{d}}}"#))
        .collect();
    send_raw(&s.url, &frames).await;

    let (out, err) = output_within(sub, Duration::from_secs(10));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (seq, (line, data)) in lines.iter().zip(UNDECODABLE).enumerate() {
        let seq = seq + 1;
        assert!(
            line.starts_with(&format!(r#"{{"seq":{seq},"time":"#)),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(r#","topic":"t","data":{data}}}"#)),
            "{line}"
        );
        assert!(
            err.contains(&format!(
                "message {seq} on t is shown as the broker sent it; this client cannot decode it: field `data`"
            )),
            "{err}"
        );
    }
    let last: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(last["data"], json!({"n": 3}));
}

#[tokio::test]
async fn consume_shows_and_acks_a_job_it_cannot_decode_so_the_queue_moves_on() {
    let s = Served::start();
    let frames: Vec<String> = UNDECODABLE
        .iter()
        .chain([r#"{"n":3}"#].iter())
        .map(|d| format!(r#"{{"op":"send","queue":"q","id":1,"data":{d}}}"#))
        .collect();
    send_raw(&s.url, &frames).await;

    let consume = s.spawn(&["consume", "q", "--count", "3"]);
    let (out, err) = output_within(consume, Duration::from_secs(10));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (n, (line, data)) in lines.iter().zip(UNDECODABLE).enumerate() {
        let msg = n + 1;
        assert_eq!(
            *line,
            format!(r#"{{"attempt":1,"msg":"{msg}","queue":"q","data":{data}}}"#)
        );
        assert!(
            err.contains(&format!("job {msg} of q is shown as the broker sent it")),
            "{err}"
        );
    }
    let q = s.stats()["queues"][0].clone();
    assert_eq!(
        (q["ready"].clone(), q["unacked"].clone(), q["acked"].clone()),
        (json!(0), json!(0), json!(3)),
        "every job acked, none left holding the queue: {q}"
    );
}

/// A stand-in broker on a free port: welcomes one client, answers its first call
/// `ok`, then sends `frames` (each `{sid}` replaced by the sid the call named) and
/// holds the connection until the client closes it.
async fn stand_in(frames: Vec<String>) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let welcome = r#"{"ev":"welcome","client":"c1","server":"stand-in","max_payload":1048576}"#;
        ws.send(Message::text(welcome)).await.unwrap();
        let call: Value = loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                break serde_json::from_str(t.as_str()).unwrap();
            }
        };
        let ok = json!({"ev": "ok", "id": call["id"]}).to_string();
        ws.send(Message::text(ok)).await.unwrap();
        let sid = call["sid"].as_str().unwrap_or_default().to_string();
        for frame in frames {
            ws.send(Message::text(frame.replace("{sid}", &sid)))
                .await
                .unwrap();
        }
        while let Some(Ok(_)) = ws.next().await {}
    });
    url
}

#[tokio::test]
async fn sub_names_on_stderr_an_event_it_does_not_know_and_a_field_it_cannot_read() {
    let url = stand_in(vec![
        r#"{"ev":"surprise","n":1}"#.to_string(),
        r#"{"ev":"msg","sid":"{sid}","topic":"t","seq":"one","time":5,"data":{"a":1}}"#.to_string(),
    ])
    .await;
    let sub = Command::new(BIN)
        .args(["sub", "t", "--count", "1", "--url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) =
        tokio::task::spawn_blocking(move || output_within(sub, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"seq": 0, "time": 5, "topic": "t", "data": {"a": 1}})
    );
    assert!(
        err.contains(r#"an event this client does not know: {"ev":"surprise","n":1}"#),
        "{err}"
    );
    assert!(
        err.contains("message 0 on t is shown as the broker sent it; this client cannot decode it: field `seq`: invalid type: string \"one\", expected u64"),
        "{err}"
    );
}
