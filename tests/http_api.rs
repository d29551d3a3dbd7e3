//! The HTTP API under `/v1`, over real sockets: requests written by hand on a
//! TCP socket and answers parsed from the bytes, checked against what raw
//! WebSocket clients see of the same broker (deliveries, jobs, the `peek` and
//! `stats` frames), and its refusals counted where the WebSocket's are.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{eventually, ok, temp_data_dir, Raw, TestBroker, WAIT};
use serde_json::{json, Value};
use switchyard_broker::auth::{digest, Grants, Security, UserRules};
use switchyard_broker::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer as it came off the socket.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// Writes `request` as it is, reads until the broker closes, parses the answer.
async fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s).await
}

async fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let response = Response {
        status,
        headers,
        body: body.to_string(),
    };
    let length: usize = response.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, body.len(), "Content-Length matches the body");
    assert_eq!(response.header("connection"), Some("close"));
    response
}

/// A POST with a `Content-Length` for `body` and the given header lines.
fn post(path: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str, headers: &[&str]) -> Vec<u8> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// A raw client consuming `queue` with `cid` "w1".
async fn consumer(tb: &TestBroker, queue: &str) -> Raw {
    let mut c = tb.raw().await;
    let answer = c
        .call(json!({"op":"consume","id":1,"queue":queue,"cid":"w1"}))
        .await;
    assert_eq!(answer, ok(1, json!({})));
    c
}

#[tokio::test]
async fn a_publish_reaches_a_subscriber_with_its_data_headers_and_seq() {
    let tb = TestBroker::start().await;
    let mut sub = tb.raw().await;
    let answer = sub
        .call(json!({"op":"sub","id":1,"topic":"orders.>","sid":"s1"}))
        .await;
    assert_eq!(answer, ok(1, json!({})));

    let r = http(
        tb.addr,
        &post(
            "/v1/topics/orders.eu",
            &[
                "X-Switchyard-Header-Region: eu",
                "x-switchyard-header-tag: a",
                "X-Switchyard-Header-Tag: b",
                "Content-Type: application/json",
            ],
            r#"{"n": [1, 2], "s": "é"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"topic": "orders.eu", "seq": 1}));
    let msg = sub.recv().await;
    assert_eq!(msg["ev"], "msg");
    assert_eq!(msg["sid"], "s1");
    assert_eq!(msg["topic"], "orders.eu");
    assert_eq!(msg["seq"], r.json()["seq"]);
    assert_eq!(msg["data"], json!({"n": [1, 2], "s": "é"}));
    assert_eq!(msg["headers"], json!({"region": "eu", "tag": ["a", "b"]}));

    // An envelope carries headers of its own; the seq goes on as the topic's.
    let r = http(
        tb.addr,
        &post(
            "/v1/topics/orders.uk",
            &["Content-Type: application/vnd.switchyard+json"],
            r#"{"data": "plain", "headers": {"Mixed.Case": ["x", "y"]}}"#,
        ),
    )
    .await;
    assert_eq!(r.json(), json!({"topic": "orders.uk", "seq": 1}));
    let msg = sub.recv().await;
    assert_eq!(msg["seq"], 1);
    assert_eq!(msg["data"], "plain");
    assert_eq!(msg["headers"], json!({"Mixed.Case": ["x", "y"]}));

    let r = http(tb.addr, &post("/v1/topics/orders.eu", &[], "3")).await;
    assert_eq!(r.json(), json!({"topic": "orders.eu", "seq": 2}));
    let msg = sub.recv().await;
    assert_eq!(
        (msg["seq"].clone(), msg["data"].clone()),
        (json!(2), json!(3))
    );
    assert!(msg.get("headers").is_none(), "{msg}");

    // A name the WebSocket refuses, refused the same way.
    let r = http(tb.addr, &post("/v1/topics/orders..eu", &[], "1")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_name");
    tb.stop().await;
}

#[tokio::test]
async fn a_send_reaches_a_consumer_and_is_confirmed_stored_by_default() {
    let tb = TestBroker::start().await;
    let mut worker = consumer(&tb, "jobs").await;
    let r = http(
        tb.addr,
        &post(
            "/v1/queues/jobs",
            &["X-Switchyard-Header-Kind: email"],
            r#"{"to":"a@b"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let msg = body["msg"].as_str().unwrap().to_string();
    assert_eq!(
        body,
        json!({"queue": "jobs", "msg": msg, "confirm": "stored"})
    );
    let job = worker.recv().await;
    assert_eq!(job["ev"], "job");
    assert_eq!(job["queue"], "jobs");
    assert_eq!(job["msg"], msg.as_str());
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["data"], json!({"to": "a@b"}));
    assert_eq!(job["headers"], json!({"kind": "email"}));
    tb.stop().await;
}

#[tokio::test]
async fn confirm_stored_on_a_durable_queue_means_it_survives_a_restart() {
    let data_dir = temp_data_dir();
    let config = || Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let tb = TestBroker::with(config()).await;
    let mut admin = tb.raw().await;
    let answer = admin
        .call(json!({"op":"declare","id":1,"queue":"durable","durable":true}))
        .await;
    assert_eq!(answer, ok(1, json!({})));
    let r = http(
        tb.addr,
        &post("/v1/queues/durable?confirm=stored", &[], "\"kept\""),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert_eq!(
        r.json(),
        json!({"queue": "durable", "msg": msg, "confirm": "stored"})
    );
    drop(admin);
    tb.stop().await;

    let tb = TestBroker::with(config()).await;
    let r = http(tb.addr, &get("/v1/queues/durable/peek", &[])).await;
    assert_eq!(r.status, 200, "{r:?}");
    let messages = &r.json()["messages"];
    assert_eq!(messages.as_array().unwrap().len(), 1, "{messages}");
    assert_eq!(messages[0]["msg"], msg.as_str());
    assert_eq!(messages[0]["data"], "kept");
    tb.stop().await;
}

#[tokio::test]
async fn confirm_done_is_answered_only_once_the_consumer_acks() {
    let tb = TestBroker::start().await;
    let mut worker = consumer(&tb, "jobs").await;
    let addr = tb.addr;
    let waiting = tokio::spawn(async move {
        http(
            addr,
            &post("/v1/queues/jobs?confirm=done&timeout=5s", &[], "1"),
        )
        .await
    });
    let job = worker.recv().await;
    let msg = job["msg"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered before the ack");
    worker.send(json!({"op":"ack","tag":job["tag"]})).await;
    let r = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"queue": "jobs", "msg": msg, "confirm": "done"})
    );

    // Rejected (nack without requeue): the message is dead, and the answer says so.
    let waiting =
        tokio::spawn(
            async move { http(addr, &post("/v1/queues/jobs?confirm=done", &[], "2")).await },
        );
    let job = worker.recv().await;
    let msg = job["msg"].as_str().unwrap().to_string();
    worker
        .send(json!({"op":"nack","tag":job["tag"],"requeue":false}))
        .await;
    let r = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(r.status, 409, "{r:?}");
    let mut want = error_body("dead", &format!("message {msg} is dead: rejected"));
    want["queue"] = json!("jobs");
    want["msg"] = json!(msg);
    assert_eq!(r.json(), want);
    tb.stop().await;
}

#[tokio::test]
async fn confirm_done_without_a_consumer_times_out_with_504_and_the_message_stays() {
    let tb = TestBroker::start().await;
    let r = http(
        tb.addr,
        &post("/v1/queues/idle?confirm=done&timeout=300ms", &[], "\"x\""),
    )
    .await;
    assert_eq!(r.status, 504, "{r:?}");
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    let mut want = error_body(
        "timeout",
        &format!("message {msg} was not confirmed within 300ms; it is still in queue idle"),
    );
    want["queue"] = json!("idle");
    want["msg"] = json!(msg);
    assert_eq!(r.json(), want);
    let snapshot = tb.broker.snapshot();
    let queue = snapshot.queues.iter().find(|q| q.name == "idle").unwrap();
    assert_eq!((queue.ready, queue.unacked), (1, 0));
    assert_eq!(snapshot.server.errors["timeout"], 1);
    // The request's session is gone with its answer.
    assert_eq!(snapshot.server.connections, 0);
    let mut worker = consumer(&tb, "idle").await;
    assert_eq!(worker.recv().await["msg"], msg.as_str());
    tb.stop().await;
}

#[tokio::test]
async fn peek_and_stats_answer_what_the_websocket_frames_do() {
    let tb = TestBroker::start().await;
    for n in 1..=3 {
        let r = http(tb.addr, &post("/v1/queues/jobs", &[], &n.to_string())).await;
        assert_eq!(r.status, 200);
    }
    let mut op = tb.raw().await;
    let frame = op
        .call(json!({"op":"peek","id":1,"queue":"jobs","n":2}))
        .await;
    let r = http(tb.addr, &get("/v1/queues/jobs/peek?count=2", &[])).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"queue": "jobs", "messages": frame["messages"], "next": 2})
    );
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 2);
    // Paged with the cursor, selected by a filter or a search, as the frame is.
    let r = http(tb.addr, &get("/v1/queues/jobs/peek?after=2", &[])).await;
    let ids: Vec<Value> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"].clone())
        .collect();
    assert_eq!(
        (ids, r.json().get("next").cloned()),
        (vec![json!("3")], None)
    );
    let r = http(
        tb.addr,
        &get(
            "/v1/queues/jobs/peek?filter=topic+%3D+%27jobs%27&search=3",
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ids: Vec<Value> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"].clone())
        .collect();
    assert_eq!(ids, vec![json!("3")]);
    let r = http(tb.addr, &get("/v1/queues/jobs/peek?filter=topic+%3D", &[])).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_filter");
    let r = http(tb.addr, &get("/v1/queues/nope/peek", &[])).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");

    let mut frame = op.call(json!({"op":"stats","id":2})).await;
    let r = http(tb.addr, &get("/v1/stats", &[])).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut body = r.json();
    let fields = frame.as_object_mut().unwrap();
    assert_eq!(
        (fields.remove("ev"), fields.remove("id")),
        (Some(json!("stats")), Some(json!(2)))
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&body), keys(&frame));
    assert_eq!(keys(&body["server"]), keys(&frame["server"]));
    // Everything but the age of the oldest message, which moved meanwhile.
    for queues in [&mut body["queues"], &mut frame["queues"]] {
        queues[0].as_object_mut().unwrap().remove("oldest_ready_ms");
    }
    assert_eq!(body["queues"], frame["queues"]);
    // The request is a client while it is answered, named by its request line.
    let clients = body["clients"].as_array_mut().unwrap();
    let me = clients
        .iter()
        .find(|c| c["name"] == "GET /v1/stats")
        .unwrap();
    assert_eq!(me["subs"], 0);
    assert_eq!(body["server"]["connections"], 2);
    tb.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_bad_frame() {
    let tb = TestBroker::start().await;
    let r = http(tb.addr, &post("/v1/topics/t", &[], r#"{"a":"#)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_body(
            "bad_frame",
            "the body is not JSON: EOF while parsing a value at line 1 column 5"
        )
    );
    let r = http(
        tb.addr,
        &post(
            "/v1/queues/q",
            &["Content-Type: application/vnd.switchyard+json"],
            r#"{"data":1,"tll_ms":5}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_frame");
    // Nesting past the WebSocket's limit is refused as there.
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let r = http(tb.addr, &post("/v1/topics/t", &[], &deep)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_body("bad_frame", "`data` nests deeper than 64 levels")
    );
    assert_eq!(tb.broker.snapshot().server.errors["bad_frame"], 3);
    tb.stop().await;
}

#[tokio::test]
async fn a_body_over_max_payload_is_413_and_counted() {
    let tb = TestBroker::with(Config {
        max_payload: 1000,
        ..Config::default()
    })
    .await;
    // Refused from its Content-Length, before it is read.
    let big = format!("\"{}\"", "x".repeat(1500));
    let r = http(tb.addr, &post("/v1/topics/t", &[], &big)).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json(),
        error_body("too_large", "a body of 1502 bytes is over max_payload 1000")
    );
    // Under the limit itself, but not once the frame holds its topic and headers.
    let near = format!("\"{}\"", "x".repeat(950));
    let r = http(
        tb.addr,
        &post("/v1/queues/jobs", &["X-Switchyard-Header-H: v"], &near),
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "too_large");
    let snapshot = tb.broker.snapshot();
    assert_eq!(snapshot.server.refusals["body_too_large"], 2);
    assert!(snapshot.queues.is_empty(), "nothing was sent");
    let metrics = common::http_get_with(tb.addr, "/metrics", &[]).await;
    assert!(
        metrics.contains("switchyard_refusals_total{reason=\"body_too_large\"} 2"),
        "{metrics}"
    );
    tb.stop().await;
}

#[tokio::test]
async fn a_body_without_a_content_length_is_411_and_counted() {
    let tb = TestBroker::start().await;
    let r = http(tb.addr, b"POST /v1/topics/t HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 411);
    assert_eq!(
        r.json(),
        error_body("bad_frame", "a body needs a Content-Length header")
    );
    let r = http(
        tb.addr,
        b"POST /v1/topics/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 411);
    assert_eq!(
        r.json(),
        error_body(
            "bad_frame",
            "Transfer-Encoding is not accepted: send the body with a Content-Length"
        )
    );
    assert_eq!(tb.broker.snapshot().server.refusals["length_required"], 2);
    tb.stop().await;
}

#[tokio::test]
async fn a_body_not_in_within_frame_timeout_is_408_and_counted() {
    let tb = TestBroker::with(Config {
        frame_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let mut s = TcpStream::connect(tb.addr).await.unwrap();
    s.write_all(b"POST /v1/topics/t HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n[1,")
        .await
        .unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 408);
    assert_eq!(
        r.json(),
        error_body(
            "timeout",
            "the body was not all in within frame_timeout (1s)"
        )
    );
    assert_eq!(tb.broker.snapshot().server.refusals["body_timeout"], 1);
    tb.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow_and_an_unknown_path_404_naming_v1() {
    let tb = TestBroker::start().await;
    let r = http(tb.addr, &get("/v1/topics/t", &[])).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(
        r.json(),
        error_body("unknown_op", "/v1/topics/t takes POST, not GET")
    );
    let r = http(tb.addr, &post("/v1/stats", &[], "1")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = http(tb.addr, &post("/v1/queues/q/peek", &[], "1")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));

    let r = http(tb.addr, &get("/v1/nothing", &[])).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not_found", "no endpoint /v1/nothing: the HTTP API has POST /v1/topics/{topic}, POST /v1/queues/{queue}, GET /v1/queues/{queue}/peek and GET /v1/stats")
    );
    let r = common::http_get_with(tb.addr, "/nothing", &[]).await;
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert!(r.ends_with("not found: try / (an example page), /ws, /healthz, /metrics or the HTTP API under /v1 (docs/PROTOCOL.md, \"HTTP\")\n"), "{r}");

    let r = http(tb.addr, &post("/v1/queues/q?confim=done", &[], "1")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_body(
            "bad_frame",
            "unknown parameter `confim` (this endpoint takes confirm, timeout, ttl, token)"
        )
    );
    tb.stop().await;
}

const ADMIN_TOKEN: &str = "admin-token-0123456789";
const ORDERS_TOKEN: &str = "orders-token-0123456789";

fn user(name: &str, token: &str, grants: Grants) -> UserRules {
    UserRules {
        name: name.into(),
        token_sha256: digest(token).iter().map(|b| format!("{b:02x}")).collect(),
        grants,
    }
}

#[tokio::test]
async fn with_auth_on_a_request_needs_a_token_with_the_permission() {
    let tb = TestBroker::with(Config {
        security: Security {
            users: vec![
                user(
                    "root",
                    ADMIN_TOKEN,
                    Grants {
                        admin: true,
                        ..Grants::default()
                    },
                ),
                user(
                    "orders",
                    ORDERS_TOKEN,
                    Grants {
                        publish: vec!["orders.>".into()],
                        send: vec!["jobs".into()],
                        ..Grants::default()
                    },
                ),
            ],
            ..Security::default()
        },
        ..Config::default()
    })
    .await;
    let orders = format!("Authorization: Bearer {ORDERS_TOKEN}");
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");

    let r = http(tb.addr, &post("/v1/topics/orders.eu", &[], "1")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        r.json(),
        error_body(
            "unauthorized",
            "present a token: Authorization: Bearer TOKEN"
        )
    );
    let r = http(
        tb.addr,
        &post(
            "/v1/topics/orders.eu",
            &["Authorization: Bearer wrong"],
            "1",
        ),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");

    let r = http(tb.addr, &post("/v1/topics/audit.x", &[&orders], "1")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), error_body("forbidden", "pub to audit.x"));
    let r = http(tb.addr, &post("/v1/queues/other", &[&orders], "1")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), error_body("forbidden", "send to other"));
    let r = http(tb.addr, &get("/v1/stats", &[&orders])).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        error_body("forbidden", "stats: an operator frame")
    );
    let r = http(tb.addr, &get("/v1/queues/jobs/peek", &[&orders])).await;
    assert_eq!(r.status, 403);

    let r = http(tb.addr, &post("/v1/topics/orders.eu", &[&orders], "1")).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"topic": "orders.eu", "seq": 1}))
    );
    let r = http(tb.addr, &post("/v1/queues/jobs", &[&orders], "1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // `?token=`, as on the WebSocket's upgrade.
    let r = http(
        tb.addr,
        &get(&format!("/v1/queues/jobs/peek?token={ADMIN_TOKEN}"), &[]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 1);
    let r = http(tb.addr, &get("/v1/stats", &[&admin])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["queues"][0]["name"], "jobs");
    tb.stop().await;
}

#[tokio::test]
async fn requests_past_max_http_requests_get_503_and_leave_websockets_alone() {
    let dir = temp_data_dir();
    let (mut child, url) = common::serve_process_with(
        "127.0.0.1:0",
        &dir,
        &[
            "--max-http-requests",
            "1",
            "--max-connections",
            "1",
            "--max-connections-per-ip",
            "0",
        ],
    );
    let addr: SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|u| u.strip_suffix("/ws"))
        .unwrap()
        .parse()
        .unwrap();
    // One request waits for a consumer that never comes: it holds the only place.
    let waiting = tokio::spawn(async move {
        http(
            addr,
            &post("/v1/queues/jobs?confirm=done&timeout=3s", &[], "1"),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = http(addr, &get("/v1/stats", &[])).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        error_body(
            "limit",
            "too many HTTP requests being answered (max_http_requests)"
        )
    );
    // The WebSocket's one place is its own.
    let mut ws = Raw::connect(&url).await;
    let stats = ws.call(json!({"op":"stats","id":1})).await;
    assert_eq!(stats["server"]["refusals"]["http_requests_full"], 1);
    assert_eq!(stats["queues"][0]["ready"], 1);
    let r = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(r.status, 504);
    common::stop(&mut child);
}

#[tokio::test]
async fn a_send_takes_a_time_to_live_from_the_query_or_the_envelope() {
    let tb = TestBroker::start().await;
    let r = http(tb.addr, &post("/v1/queues/mail?ttl=2h", &[], r#""a""#)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let envelope = "Content-Type: application/vnd.switchyard+json";
    let r = http(
        tb.addr,
        &post(
            "/v1/queues/mail",
            &[envelope],
            r#"{"data":"b","ttl_ms":150}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut admin = tb.raw().await;
    let peeked = admin.call(json!({"op":"peek","id":1,"queue":"mail"})).await;
    let lives: Vec<u64> = peeked["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["expires"].as_u64().unwrap() - m["time"].as_u64().unwrap())
        .collect();
    assert_eq!(lives, vec![7_200_000, 150]);
    eventually(&tb.broker, "the short one to expire", |s| {
        s.queues
            .iter()
            .any(|q| q.name == "mail" && q.expired == 1 && q.ready == 1)
    })
    .await;
    for (path, headers, body) in [
        ("/v1/queues/mail?ttl=0s", &[][..], r#""c""#),
        ("/v1/queues/mail?ttl=soon", &[][..], r#""c""#),
        (
            "/v1/queues/mail?ttl=1s",
            &[envelope][..],
            r#"{"data":"c","ttl_ms":5}"#,
        ),
        (
            "/v1/topics/news",
            &[envelope][..],
            r#"{"data":"c","ttl_ms":5}"#,
        ),
    ] {
        let r = http(tb.addr, &post(path, headers, body)).await;
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (400, &json!("bad_frame")),
            "{path}: {r:?}"
        );
    }
    tb.stop().await;
}
