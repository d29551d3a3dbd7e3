//! Webhook consumers against a real HTTP receiver on loopback: each job is a POST,
//! a 2xx acks it (and answers a request), a 500, a hang or a refused connection
//! nacks it back after a backoff until `max_attempts` dead-letters it; `kick` stops
//! a webhook; a config file starts one with the broker.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the receiver answers one POST.
#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    /// Never answers (the connection stays open).
    Hang,
}

/// A POST the receiver got.
#[derive(Debug)]
struct Posted {
    at: Instant,
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// An HTTP receiver on loopback answering each POST with `answer(body)`.
async fn receiver(
    answer: impl Fn(&Value) -> Answer + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (tx, answer) = (tx.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_len, length) = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_len + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
                let mut lines = head.lines();
                let path = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_lowercase(), v.to_string()))
                    .collect();
                let body: Value = serde_json::from_slice(&buf[head_len..]).unwrap();
                let what = answer(&body);
                let _ = tx.send(Posted {
                    at: Instant::now(),
                    path,
                    headers,
                    body,
                });
                match what {
                    Answer::Status(code, text) => {
                        let response = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                            text.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                    }
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn next_post(rx: &mut mpsc::UnboundedReceiver<Posted>) -> Posted {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a POST in time")
        .expect("the receiver runs")
}

/// The queue's (ready, unacked, acked, dead) now.
fn counts(b: &TestBroker, name: &str) -> (u64, u64, u64, u64) {
    let snap = b.broker.snapshot();
    let q = snap.queues.iter().find(|q| q.name == name).unwrap();
    (q.ready, q.unacked, q.acked, q.dead)
}

#[tokio::test]
async fn a_webhook_gets_each_job_as_a_post_and_a_2xx_acks_it() {
    let b = TestBroker::start().await;
    let (url, mut posts) = receiver(|_| Answer::Status(200, "")).await;
    let mut c = b.raw().await;
    let started = c
        .call(json!({"op":"consume","id":1,"queue":"mail","webhook":{"url":url,"max_in_flight":2}}))
        .await;
    let client = started["client"].as_str().unwrap().to_string();
    assert_eq!(started, ok(1, json!({"client": client})));
    for n in 1..=3 {
        c.call(
            json!({"op":"send","id":n + 1,"queue":"mail","data":{"n":n},"headers":{"to":"ann"}}),
        )
        .await;
    }
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let p = next_post(&mut posts).await;
        assert_eq!(p.path, "/hook");
        assert_eq!(p.headers["content-type"], "application/json");
        assert_eq!(p.headers["x-switchyard-queue"], "mail");
        assert_eq!(
            p.headers["x-switchyard-msg"],
            p.body["msg"].as_str().unwrap()
        );
        assert_eq!(p.headers["x-switchyard-attempt"], "1");
        bodies.push(p.body);
    }
    bodies.sort_by_key(|b| b["msg"].as_str().unwrap().to_string());
    assert_eq!(
        bodies,
        (1..=3)
            .map(|n| json!({"queue":"mail","msg":n.to_string(),"attempt":1,"data":{"n":n},"headers":{"to":"ann"}}))
            .collect::<Vec<_>>()
    );
    eventually(&b.broker, "the three acks", |s| {
        s.queues.iter().any(|q| q.name == "mail" && q.acked == 3)
    })
    .await;
    assert_eq!(counts(&b, "mail"), (0, 0, 3, 0));
    // The webhook is a client like any other, named by its URL.
    let snap = b.broker.snapshot();
    let row = snap.clients.iter().find(|r| r.id == client).unwrap();
    assert_eq!(row.name.as_deref(), Some(format!("webhook {url}").as_str()));
    assert_eq!((row.consumers, row.unacked), (1, 0));
    b.stop().await;
}

#[tokio::test]
async fn a_failing_webhook_nacks_with_backoff_until_the_job_is_dead_lettered() {
    let b = TestBroker::start().await;
    let (url, mut posts) = receiver(|_| Answer::Status(500, "down")).await;
    let mut c = b.raw().await;
    c.call(
        json!({"op":"declare","id":1,"queue":"mail","max_attempts":3,"dead_letter":"mail.dead"}),
    )
    .await;
    c.call(json!({"op":"consume","id":2,"queue":"mail","webhook":{"url":url}}))
        .await;
    c.call(json!({"op":"send","id":3,"queue":"mail","data":"hi"}))
        .await;
    let tries: Vec<Posted> = vec![
        next_post(&mut posts).await,
        next_post(&mut posts).await,
        next_post(&mut posts).await,
    ];
    let attempts: Vec<&Value> = tries.iter().map(|p| &p.body["attempt"]).collect();
    assert_eq!(attempts, vec![&json!(1), &json!(2), &json!(3)]);
    // Each failure waits before the job goes back: 100 ms, then 200 ms.
    assert!(tries[1].at - tries[0].at >= Duration::from_millis(100));
    assert!(tries[2].at - tries[1].at >= Duration::from_millis(200));
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"mail.dead","cid":"d"}))
        .await;
    let dead = w.recv_ev("job").await;
    assert_eq!(dead["data"], "hi");
    assert_eq!(dead["headers"]["x-dead-letter-reason"], "max_attempts");
    assert_eq!(counts(&b, "mail"), (0, 0, 0, 1));
    // Failures are told once when they begin, not once per job.
    let events: Vec<String> = b
        .broker
        .snapshot()
        .events
        .iter()
        .map(|e| e.text.clone())
        .filter(|t| t.contains("is failing"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].ends_with("is failing: answered 500"),
        "{events:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_hanging_or_absent_receiver_is_a_failure_after_the_timeout() {
    let b = TestBroker::start().await;
    let (url, mut posts) = receiver(|body| {
        if body["attempt"] == 1 {
            Answer::Hang
        } else {
            Answer::Status(204, "")
        }
    })
    .await;
    let mut c = b.raw().await;
    c.call(json!({"op":"consume","id":1,"queue":"slow","webhook":{"url":url,"timeout_ms":300}}))
        .await;
    c.call(json!({"op":"send","id":2,"queue":"slow","data":1}))
        .await;
    let first = next_post(&mut posts).await;
    let second = next_post(&mut posts).await;
    assert_eq!(second.body["attempt"], 2);
    assert!(
        second.at - first.at >= Duration::from_millis(400),
        "300 ms timeout + 100 ms backoff"
    );
    eventually(&b.broker, "the ack", |s| {
        s.queues.iter().any(|q| q.name == "slow" && q.acked == 1)
    })
    .await;

    // Nobody listens at all: refused connections nack the job back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    c.call(json!({"op":"consume","id":3,"queue":"void","webhook":{"url":nowhere}}))
        .await;
    c.call(json!({"op":"send","id":4,"queue":"void","data":1}))
        .await;
    eventually(&b.broker, "redeliveries", |s| {
        s.queues
            .iter()
            .any(|q| q.name == "void" && q.redelivered >= 2)
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn a_request_is_answered_with_the_webhooks_body() {
    let b = TestBroker::start().await;
    let (url, mut posts) = receiver(|body| {
        if body["data"]["q"] == "ping" {
            Answer::Status(200, r#"{"a":"pong"}"#)
        } else {
            Answer::Status(200, "")
        }
    })
    .await;
    let mut c = b.raw().await;
    c.call(json!({"op":"consume","id":1,"queue":"rpc","webhook":{"url":url}}))
        .await;
    let answer = c
        .call(json!({"op":"request","id":"r1","queue":"rpc","data":{"q":"ping"},"timeout_ms":5000}))
        .await;
    assert_eq!(answer, json!({"ev":"reply","id":"r1","data":{"a":"pong"}}));
    assert_eq!(next_post(&mut posts).await.body["reply"], true);
    b.stop().await;
}

#[tokio::test]
async fn kick_stops_a_webhook_and_its_jobs_go_back_to_the_queue() {
    let b = TestBroker::start().await;
    let (url, mut posts) = receiver(|_| Answer::Hang).await;
    let mut c = b.raw().await;
    let started = c
        .call(json!({"op":"consume","id":1,"queue":"mail","webhook":{"url":url,"max_in_flight":1}}))
        .await;
    let client = started["client"].as_str().unwrap().to_string();
    c.call(json!({"op":"send","id":2,"queue":"mail","data":1}))
        .await;
    c.call(json!({"op":"send","id":3,"queue":"mail","data":2}))
        .await;
    next_post(&mut posts).await;
    assert_eq!(counts(&b, "mail"), (1, 1, 0, 0), "max_in_flight 1");
    // It outlives the connection that started it.
    drop(c);
    let mut op = b.raw().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(b.broker.snapshot().clients.iter().any(|r| r.id == client));
    assert_eq!(
        op.call(json!({"op":"kick","id":1,"client":client})).await,
        ok(1, json!({}))
    );
    eventually(&b.broker, "the webhook to go", |s| {
        !s.clients.iter().any(|r| r.id == client)
            && s.queues
                .iter()
                .any(|q| q.name == "mail" && q.ready == 2 && q.unacked == 0)
    })
    .await;

    let bad = op
        .call(
            json!({"op":"consume","id":2,"queue":"mail","webhook":{"url":"https://example.com/"}}),
        )
        .await;
    assert!(
        assert_error(&bad, Some(2), "bad_frame").contains("https is not supported"),
        "{bad}"
    );
    // A POST allowed to outlast the ack deadline would see its job taken back
    // and handed out again while it still waits.
    op.call(json!({"op":"declare","id":3,"queue":"quick","ack_timeout_ms":1000}))
        .await;
    let bad = op
        .call(
            json!({"op":"consume","id":4,"queue":"quick","webhook":{"url":url,"timeout_ms":1000}}),
        )
        .await;
    assert_eq!(
        assert_error(&bad, Some(4), "bad_frame"),
        "webhook.timeout_ms (1000) must be below queue `quick`'s ack_timeout_ms (1000): its jobs would be taken back while their POST still waits"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_config_file_starts_a_webhook_with_the_broker() {
    let (url, mut posts) = receiver(|_| Answer::Status(200, "")).await;
    let dir = temp_data_dir();
    let config = dir.join("switchyard.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &config,
        format!("[[webhooks]]\nqueue = \"mail\"\nurl = \"{url}\"\nmax_in_flight = 4\n"),
    )
    .unwrap();
    let (mut child, ws) = serve_process_with(
        "127.0.0.1:0",
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut c = Raw::connect(&ws).await;
    c.call(json!({"op":"send","id":1,"queue":"mail","data":"from the file"}))
        .await;
    assert_eq!(next_post(&mut posts).await.body["data"], "from the file");
    stop(&mut child);

    std::fs::write(
        &config,
        "[[webhooks]]\nqueue = \"mail\"\nurl = \"ftp://nowhere/\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1") && err.contains("must start with http://"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
