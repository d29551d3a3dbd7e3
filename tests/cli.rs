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

    /// Runs a client verb against this broker: (success, stdout, stderr).
    fn run_full(&self, args: &[&str]) -> (bool, String, String) {
        full(Command::new(BIN).args(args).args(["-s", &self.url]))
    }

    /// The `host:port` this broker listens on.
    fn addr(&self) -> &str {
        self.url
            .strip_prefix("ws://")
            .and_then(|u| u.strip_suffix("/ws"))
            .unwrap()
    }

    /// `reply QUEUE ARGS...` with `-s` first: its command takes the rest of the line.
    fn spawn_reply(&self, queue: &str, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(["reply", "-s", &self.url, queue])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard reply")
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

/// Runs `cmd` to its end: (success, stdout, stderr).
fn full(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run switchyard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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

/// Parses each line of `out` as JSON.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

impl Served {
    /// Waits until some client consumes `queue`.
    fn wait_for_consumer(&self, queue: &str) {
        self.wait_for(&format!("a consumer of {queue}"), |v| {
            v["queues"]
                .as_array()
                .is_some_and(|q| q.iter().any(|q| q["name"] == queue && q["consumers"] == 1))
        });
    }

    /// Waits until `n` clients hold a subscription; returns their ids.
    fn wait_for_subscribers(&self, n: usize) -> Vec<String> {
        let ids = |v: &Value| -> Vec<String> {
            v["clients"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter(|c| c["subs"] == 1)
                        .map(|c| c["id"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        self.wait_for("the subscribers", |v| ids(v).len() == n);
        ids(&self.stats())
    }
}

/// The README tour's request step: `reply` answers through a shell command,
/// the request's data on its stdin and its stdout as the reply.
#[test]
fn reply_answers_requests_with_a_command_its_own_data_or_fixed_data() {
    let s = Served::start();
    // One word: a shell line.
    let upper = s.spawn_reply("rpc", &["--count", "1", "tr a-z A-Z"]);
    s.wait_for_consumer("rpc");
    let (ok, out, err) = s.run_full(&["request", "rpc", "ping", "--timeout", "5s"]);
    assert!(ok, "{err}");
    assert_eq!(out, "\"PING\"\n");
    let answered = lines(upper);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["data"], json!("ping"));

    // Several words: a program and its arguments; JSON in, JSON out.
    let cat = s.spawn_reply("objects", &["--count", "1", "cat"]);
    s.wait_for_consumer("objects");
    let (ok, out, _) = s.run_full(&["request", "objects", r#"{"q":"ping"}"#]);
    assert!(ok);
    assert_eq!(out, "{\"q\":\"ping\"}\n");
    lines(cat);

    let echo = s.spawn_reply("echo", &["--count", "1", "--echo"]);
    s.wait_for_consumer("echo");
    assert_eq!(s.run_full(&["request", "echo", "[1,2]"]).1, "[1,2]\n");
    lines(echo);

    let fixed = s.spawn_reply("fixed", &["--count", "1", "--data", r#"{"pong":true}"#]);
    s.wait_for_consumer("fixed");
    assert_eq!(
        s.run_full(&["request", "fixed", "1"]).1,
        "{\"pong\":true}\n"
    );
    lines(fixed);

    // A command that fails refuses the request at once: no 30 s wait.
    let failing = s.spawn_reply("broken", &["--count", "1", "exit 1"]);
    s.wait_for_consumer("broken");
    let started = Instant::now();
    let (ok, _, err) = s.run_full(&["request", "broken", "1"]);
    assert!(!ok);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains("the request to queue `broken` was dropped unanswered"),
        "{err}"
    );
    lines(failing);
}

/// With nothing answering, `request --timeout 500ms` fails in about that long,
/// naming the queue and what answers requests, not the broker's message id.
#[test]
fn request_without_an_answer_fails_fast_naming_the_queue() {
    let s = Served::start();
    let started = Instant::now();
    let (ok, out, err) = s.run_full(&["request", "nobody", "1", "--timeout", "500ms"]);
    assert!(!ok);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out, "");
    assert!(
        err.contains(
            "no reply from queue `nobody` within 500ms: nothing answered it \
             (`switchyard reply nobody --echo` answers requests)"
        ),
        "{err}"
    );
    assert!(!err.contains("no reply to 1"), "{err}");
    // A duration needs its unit.
    let (ok, _, err) = s.run_full(&["request", "nobody", "1", "--timeout", "500"]);
    assert!(!ok);
    assert!(
        err.contains("`500` has no unit: write 500ms or 500s"),
        "{err}"
    );
}

#[test]
fn pub_count_fills_in_count_and_headers_take_a_colon() {
    let s = Served::start();
    let sub = s.spawn(&["sub", "ticks", "--count", "3"]);
    s.wait_for_subscribers(1);
    let (ok, out, err) = s.run_full(&[
        "pub",
        "ticks",
        r#"{"n":{{Count}}}"#,
        "--count",
        "3",
        "--sleep",
        "10ms",
        "-H",
        "region:eu",
        "-H",
        "kind=tick",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        json_lines(&out),
        (1..=3)
            .map(|seq| json!({"topic": "ticks", "seq": seq}))
            .collect::<Vec<_>>()
    );
    let got = lines(sub);
    let seen: Vec<(Value, Value)> = got
        .iter()
        .map(|m| (m["data"].clone(), m["headers"].clone()))
        .collect();
    let headers = json!({"region": "eu", "kind": "tick"});
    assert_eq!(
        seen,
        vec![
            (json!({"n": 1}), headers.clone()),
            (json!({"n": 2}), headers.clone()),
            (json!({"n": 3}), headers),
        ]
    );
}

/// `-s`, `SWITCHYARD_URL`, `--url` and a URL without `/ws` all reach the broker.
#[test]
fn the_server_is_named_by_s_by_the_environment_and_without_ws() {
    let s = Served::start();
    let bare = format!("ws://{}", s.addr());
    let ways: [(&str, Vec<&str>, Option<&str>); 4] = [
        ("-s without /ws", vec!["-s", &bare], None),
        ("--server", vec!["--server", &s.url], None),
        ("--url", vec!["--url", &s.url], None),
        ("SWITCHYARD_URL without /ws", vec![], Some(&bare)),
    ];
    for (n, (how, flags, env)) in ways.into_iter().enumerate() {
        let topic = format!("t{n}");
        let mut cmd = Command::new(BIN);
        cmd.args(["pub", &topic, "1"])
            .args(&flags)
            .env_remove("SWITCHYARD_URL");
        if let Some(url) = env {
            cmd.env("SWITCHYARD_URL", url);
        }
        let (ok, out, err) = full(&mut cmd);
        assert!(ok, "{how}: {err}");
        assert_eq!(
            out,
            format!("{{\"seq\":1,\"topic\":\"{topic}\"}}\n"),
            "{how}"
        );
    }
    // A flag beats the environment.
    let (ok, _, _) = full(
        Command::new(BIN)
            .args(["pub", "t", "1", "-s", &s.url])
            .env("SWITCHYARD_URL", "ws://127.0.0.1:1"),
    );
    assert!(ok);
}

#[test]
fn declare_peek_purge_and_delete_a_queue_and_a_retained_topic() {
    let s = Served::start();
    let (ok, out, err) = s.run_full(&["declare", "jobs", "--max-len", "3", "--max-attempts", "2"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "{\"options\":{\"max_attempts\":2,\"max_len\":3},\"queue\":\"jobs\"}\n"
    );
    for n in 1..=3 {
        assert!(s.run_full(&["send", "jobs", &n.to_string()]).0);
    }
    let (ok, _, err) = s.run_full(&["send", "jobs", "4"]);
    assert!(!ok, "max_len is applied");
    assert!(err.contains("limit"), "{err}");

    let (ok, out, _) = s.run_full(&["peek", "jobs", "-n", "2"]);
    assert!(ok);
    let peeked: Vec<(Value, Value)> = json_lines(&out)
        .iter()
        .map(|m| (m["msg"].clone(), m["data"].clone()))
        .collect();
    assert_eq!(peeked, vec![(json!("1"), json!(1)), (json!("2"), json!(2))]);

    let (ok, out, _) = s.run_full(&["purge", "jobs"]);
    assert!(ok);
    assert_eq!(out, "{\"purged\":3,\"queue\":\"jobs\"}\n");
    assert_eq!(s.run_full(&["peek", "jobs"]).1, "");

    let (ok, out, _) = s.run_full(&["delete", "jobs"]);
    assert!(ok);
    assert_eq!(out, "{\"deleted\":{\"queue\":\"jobs\"}}\n");
    assert_eq!(s.stats()["queues"], json!([]));

    // A retained topic: declared with its limits, peeked, replayed, deleted.
    let (ok, out, err) = s.run_full(&["declare", "news", "--retain", "--max-messages", "2"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "{\"retain\":{\"max_messages\":2},\"topic\":\"news\"}\n"
    );
    for n in 1..=3 {
        assert!(s.run_full(&["pub", "news", &n.to_string()]).0);
    }
    let (ok, out, _) = s.run_full(&["peek", "news", "--topic", "-n", "2"]);
    assert!(ok);
    let last: Vec<Value> = json_lines(&out).iter().map(|m| m["data"].clone()).collect();
    assert_eq!(last, vec![json!(2), json!(3)], "the last 2, oldest first");
    let (ok, out, _) = s.run_full(&["sub", "news", "--from", "first", "--count", "1"]);
    assert!(ok);
    assert_eq!(json_lines(&out)[0]["topic"], json!("news"));
    let (ok, out, _) = s.run_full(&["sub", "news", "--from", "3", "--count", "1"]);
    assert!(ok);
    assert_eq!(json_lines(&out)[0]["data"], json!(3));
    assert!(s.run_full(&["delete", "news", "--topic"]).0);
    let (ok, _, err) = s.run_full(&["peek", "news", "--topic"]);
    assert!(!ok, "deleted: {err}");
}

/// `seal` ends a subscriber normally (exit 0) after what came before, and
/// refuses later publishes.
#[test]
fn seal_ends_a_subscriber_and_refuses_later_publishes() {
    let s = Served::start();
    let sub = s.spawn(&["sub", "feed"]);
    s.wait_for_subscribers(1);
    assert!(s.run_full(&["pub", "feed", "last"]).0);
    let (ok, out, _) = s.run_full(&["seal", "feed"]);
    assert!(ok);
    assert_eq!(out, "{\"sealed\":\"feed\"}\n");
    let (out, err) = output_within(sub, Duration::from_secs(10));
    assert_eq!(json_lines(&out)[0]["data"], json!("last"));
    assert!(err.contains("feed ended (sealed or deleted)"), "{err}");
    let (ok, _, err) = s.run_full(&["pub", "feed", "late"]);
    assert!(!ok);
    assert!(err.contains("sealed"), "{err}");
}

#[test]
fn kick_disconnects_a_client_by_its_id() {
    let s = Served::start();
    let sub = s.spawn(&["sub", "t"]);
    let ids = s.wait_for_subscribers(1);
    let (ok, out, err) = s.run_full(&["kick", &ids[0], "--reason", "maintenance"]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{{\"kicked\":\"{}\"}}\n", ids[0]));
    let out = sub.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kicked: maintenance"), "{err}");
}

/// The tour's redelivery: a consumer that goes without acking leaves its job
/// to the next one, as attempt 2; a command that fails under `--ack-after`
/// nacks it (here its last attempt: to the dead letters), and one that
/// succeeds, reading the job on stdin, acks it.
#[test]
fn consume_no_ack_and_ack_after_leave_or_settle_the_job() {
    let s = Served::start();
    let declared = s.run_full(&[
        "declare",
        "work",
        "--max-attempts",
        "2",
        "--dead-letter",
        "failed",
    ]);
    assert!(declared.0, "{}", declared.2);
    assert!(s.run_full(&["send", "work", r#"{"file":"cat.png"}"#]).0);
    let (ok, out, _) = s.run_full(&["consume", "work", "--count", "1", "--no-ack"]);
    assert!(ok);
    assert_eq!(json_lines(&out)[0]["attempt"], json!(1));

    let (ok, out, err) = s.run_full(&["consume", "work", "--count", "1", "--ack-after", "exit 3"]);
    assert!(ok, "{err}");
    assert_eq!(json_lines(&out)[0]["attempt"], json!(2));
    assert!(err.contains("nacked, back to the queue"), "{err}");

    let seen = std::env::temp_dir().join(format!("switchyard-ack-after-{}", std::process::id()));
    let line = format!("cat > {}", seen.display());
    let (ok, out, err) = s.run_full(&["consume", "failed", "--count", "1", "--ack-after", &line]);
    assert!(ok, "{err}");
    let job = &json_lines(&out)[0];
    assert_eq!(
        job["headers"]["x-dead-letter-reason"],
        json!("max_attempts")
    );
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        r#"{"file":"cat.png"}"#
    );
    let _ = std::fs::remove_file(&seen);
    let queues = s.stats()["queues"].clone();
    let counts: Vec<(Value, Value, Value, Value)> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].clone(),
                q["ready"].clone(),
                q["acked"].clone(),
                q["dead"].clone(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (json!("failed"), json!(0), json!(1), json!(0)),
            (json!("work"), json!(0), json!(0), json!(1)),
        ]
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, mark) in [
        ("bash", "_switchyard()"),
        ("zsh", "#compdef switchyard"),
        ("fish", "complete -c switchyard"),
    ] {
        let (ok, out, err) = full(Command::new(BIN).args(["completions", shell]));
        assert!(ok, "{shell}: {err}");
        assert!(
            out.contains(mark),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        assert!(out.contains("reply"), "{shell} completes the new verbs");
    }
}

/// The broker's flags are on `serve` and plain `switchyard`, not on client
/// verbs: not in their help, and refused before them rather than ignored.
#[test]
fn server_flags_show_only_where_a_broker_runs() {
    let help = |args: &[&str]| full(Command::new(BIN).args(args)).1;
    let pub_help = help(&["pub", "--help"]);
    assert!(!pub_help.contains("--fsync"), "{pub_help}");
    assert!(!pub_help.contains("--listen"), "{pub_help}");
    assert!(pub_help.contains("-s, --server <URL>"), "{pub_help}");
    assert!(pub_help.contains("--token <TOKEN>"), "{pub_help}");
    assert!(help(&["serve", "--help"]).contains("--fsync"));
    assert!(help(&["--help"]).contains("--fsync"));

    let (ok, _, err) = full(Command::new(BIN).args(["--fsync", "always", "pub", "t", "1"]));
    assert!(!ok);
    assert!(
        err.contains("--fsync is a flag of the broker (`switchyard serve --fsync ...`)"),
        "{err}"
    );
    let (ok, out, _) = full(Command::new(BIN).arg("--version"));
    assert!(ok);
    assert!(out.starts_with("switchyard "), "{out}");
}

#[test]
fn serve_listens_on_localhost_and_takes_flags_before_it() {
    let data = common::temp_data_dir();
    for args in [
        vec!["serve", "--listen", "localhost:0"],
        vec!["--listen", "localhost:0", "serve"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (mut child, url) = common::start_serve(cmd);
        assert!(url.starts_with("ws://127.0.0.1:"), "{args:?}: {url}");
        common::stop(&mut child);
    }
}

/// Plain `switchyard` in a service, a pipe or CI says it needs a terminal and
/// what to run instead, rather than `dashboard: No such device or address`.
#[test]
fn plain_switchyard_without_a_terminal_suggests_serve() {
    let data = common::temp_data_dir();
    let (ok, _, err) = full(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env_remove("SWITCHYARD_CONFIG")
            .stdin(Stdio::null()),
    );
    assert!(!ok);
    assert!(
        err.contains(
            "needs a terminal, and this has none (a service, a pipe, CI): run `switchyard serve`"
        ),
        "{err}"
    );
    assert!(!err.contains("No such device"), "{err}");
}

/// With auth on, every client verb presents `--token`, or `SWITCHYARD_TOKEN`.
#[test]
fn client_verbs_present_a_token_from_the_flag_or_the_environment() {
    let dir = common::temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.toml");
    // The SHA-256 of `test`.
    std::fs::write(
        &config,
        "[[users]]\nname = \"u\"\ntoken_sha256 = \
         \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
         admin = true\npublish = [\">\"]\n",
    )
    .unwrap();
    let (mut child, url) = common::serve_process_with(
        "127.0.0.1:0",
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let verb = |extra: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["pub", "t", "1", "-s", &url])
            .args(extra)
            .env_remove("SWITCHYARD_TOKEN");
        if let Some(token) = env {
            cmd.env("SWITCHYARD_TOKEN", token);
        }
        full(&mut cmd)
    };
    let (ok, _, err) = verb(&[], None);
    assert!(!ok);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(verb(&["--token", "test"], None).0);
    assert!(verb(&[], Some("test")).0);
    let (ok, _, err) = verb(&[], Some("wrong"));
    assert!(!ok);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(
        full(Command::new(BIN).args(["stats", "-s", &url, "--token", "test"])).0,
        "stats too"
    );
    common::stop(&mut child);
}

/// `send --ttl` gives the message a time to live: peek shows when it runs out, and
/// once it has, the queue no longer holds it.
#[test]
fn send_ttl_sets_a_time_to_live_the_queue_applies() {
    let s = Served::start();
    let (ok, _, err) = s.run_full(&["send", "mail", "hello", "--ttl", "400ms"]);
    assert!(ok, "{err}");
    let (ok, out, _) = s.run_full(&["peek", "mail"]);
    assert!(ok);
    let m = &json_lines(&out)[0];
    assert_eq!(m["expires"].as_u64(), m["time"].as_u64().map(|t| t + 400));
    s.wait_for("the message to expire", |stats| {
        stats["queues"][0]["expired"] == json!(1) && stats["queues"][0]["ready"] == json!(0)
    });
    let (ok, _, err) = s.run_full(&["send", "mail", "x", "--ttl", "soon"]);
    assert!(!ok);
    assert!(err.contains("--ttl"), "{err}");
}

/// `consume --webhook URL` starts a webhook consumer and prints its client id,
/// which shows in `stats` named by the URL.
#[test]
fn consume_webhook_starts_a_webhook_and_prints_its_client() {
    let s = Served::start();
    let (ok, out, err) = s.run_full(&[
        "consume",
        "mail",
        "--webhook",
        "http://127.0.0.1:9/hook",
        "--max-in-flight",
        "3",
    ]);
    assert!(ok, "{err}");
    let printed = &json_lines(&out)[0];
    assert_eq!(printed["queue"], "mail");
    let client = printed["client"].as_str().unwrap().to_string();
    let stats = s.stats();
    let row = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == client.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["name"], "webhook http://127.0.0.1:9/hook");
    assert_eq!(row["consumers"], 1);
}

/// `move` brings messages from one queue to another and says how many; `drop`
/// removes one by its id.
#[test]
fn move_and_drop_manage_ready_messages() {
    let s = Served::start();
    for n in 1..=3 {
        assert!(
            s.run_full(&["send", "jobs.dead", &n.to_string(), "-H", "why:late"])
                .0
        );
    }
    let (ok, out, err) = s.run_full(&[
        "move",
        "jobs.dead",
        "jobs",
        "--count",
        "2",
        "--filter",
        "why = 'late'",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "{\"from\":\"jobs.dead\",\"moved\":2,\"to\":\"jobs\"}\n"
    );
    let (ok, out, _) = s.run_full(&["peek", "jobs"]);
    assert!(ok);
    let moved: Vec<(Value, Value)> = json_lines(&out)
        .iter()
        .map(|m| (m["data"].clone(), m["headers"]["x-moved-from"].clone()))
        .collect();
    assert_eq!(
        moved,
        vec![
            (json!(1), json!("jobs.dead")),
            (json!(2), json!("jobs.dead"))
        ]
    );
    let (ok, out, err) = s.run_full(&["drop", "jobs.dead", "3"]);
    assert!(ok, "{err}");
    assert_eq!(out, "{\"dropped\":\"3\",\"queue\":\"jobs.dead\"}\n");
    assert_eq!(s.run_full(&["peek", "jobs.dead"]).1, "");
    let (ok, _, err) = s.run_full(&["drop", "jobs.dead", "3"]);
    assert!(!ok);
    assert!(err.contains("no ready message 3"), "{err}");
}

/// `requeue QUEUE MSG` puts one in-flight job back; `requeue --client --cid` all
/// of one consumer's.
#[test]
fn requeue_puts_one_job_or_a_consumers_jobs_back() {
    let s = Served::start();
    for n in 1..=2 {
        assert!(s.run_full(&["send", "work", &n.to_string()]).0);
    }
    let holder = s.spawn(&["consume", "work", "--no-ack", "--prefetch", "2"]);
    s.wait_for("both jobs in flight", |stats| {
        stats["queues"][0]["unacked"] == json!(2)
    });
    let stats = s.stats();
    let client = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumers"] == json!(1))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = s.run_full(&["requeue", "work", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out, "{\"msg\":\"1\",\"queue\":\"work\",\"requeued\":1}\n");
    s.wait_for("the job back and taken again", |stats| {
        stats["queues"][0]["redelivered"] == json!(1) && stats["queues"][0]["unacked"] == json!(2)
    });
    let (ok, out, err) = s.run_full(&["requeue", "--client", &client, "--cid", "w1"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!("{{\"cid\":\"w1\",\"client\":\"{client}\",\"requeued\":2}}\n")
    );
    let (ok, _, err) = s.run_full(&["requeue", "work"]);
    assert!(!ok, "a queue without a msg is refused: {err}");
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
}

/// `peek` pages through a whole queue with the broker's cursor (1,000 a call),
/// selects with `--filter` or `--search` broker-side, and prints the console's
/// export lines: `{"msg","time","attempt","headers","data"}`.
#[tokio::test]
async fn peek_pages_through_a_queue_and_selects_by_filter_or_search() {
    let s = Served::start();
    let mut raw = common::Raw::connect(&s.url).await;
    raw.call(json!({"op":"declare","id":0,"queue":"big","durable":false}))
        .await;
    let sends: Vec<String> = (1..=1200)
        .map(|n| json!({"op":"send","queue":"big","data":{"n":n}}).to_string())
        .collect();
    for frame in sends.chunks(400) {
        raw.send_text(frame.join("\n")).await;
    }
    s.wait_for("1200 ready", |v| v["queues"][0]["ready"] == json!(1200));

    let ids = |out: &str| -> Vec<u64> {
        json_lines(out)
            .iter()
            .map(|m| m["msg"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let (ok, out, err) = s.run_full(&["peek", "big", "--all"]);
    assert!(ok, "{err}");
    assert_eq!(ids(&out), (1..=1200).collect::<Vec<u64>>());
    let (_, out, _) = s.run_full(&["peek", "big", "-n", "1100"]);
    assert_eq!(ids(&out), (1..=1100).collect::<Vec<u64>>());
    let (_, out, _) = s.run_full(&["peek", "big", "--filter", "data.n > 1195"]);
    assert_eq!(ids(&out), vec![1196, 1197, 1198, 1199, 1200]);
    let (_, out, _) = s.run_full(&["peek", "big", "--all", "--search", "\"n\":7}"]);
    let line = out.lines().collect::<Vec<_>>();
    assert_eq!(line.len(), 1, "{out}");
    let mut m: Value = serde_json::from_str(line[0]).unwrap();
    assert!(line[0].starts_with("{\"msg\":\"7\",\"time\":"), "{out}");
    m.as_object_mut().unwrap().remove("time");
    assert_eq!(
        m,
        json!({"msg":"7","attempt":0,"headers":{},"data":{"n":7}})
    );
    let (ok, _, err) = s.run_full(&["peek", "big", "--filter", "n ="]);
    assert!(!ok);
    assert!(err.contains("bad_filter"), "{err}");
}
