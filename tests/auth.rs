//! Who may do what, over real sockets with the raw JSON client: the permission
//! matrix (an admin, a limited user, no token), the three ways of presenting a
//! token, refused tokens and JWTs, the closes for no token and for bad tokens,
//! `/metrics` behind an admin token, and who did what in the snapshot.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{assert_error, http_get_with, Raw, TestBroker};
use serde_json::{json, Value};
use switchyard_broker::auth::{digest, Grants, Security, UserRules};
use switchyard_broker::Config;

const ROOT_TOKEN: &str = "root-token-0123456789";
const ORDERS_TOKEN: &str = "orders-token-0123456789";
const SECRET: &[u8] = b"jwt-secret-for-tests";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn user(name: &str, token: &str, grants: Grants) -> UserRules {
    UserRules {
        name: name.into(),
        token_sha256: hex(&digest(token)),
        grants,
    }
}

/// An admin allowed everything, and `orders`, allowed a little.
fn security() -> Security {
    let all = list(&[">"]);
    Security {
        users: vec![
            user(
                "root",
                ROOT_TOKEN,
                Grants {
                    publish: all.clone(),
                    subscribe: all.clone(),
                    send: all.clone(),
                    consume: all,
                    admin: true,
                    ..Grants::default()
                },
            ),
            user(
                "orders",
                ORDERS_TOKEN,
                Grants {
                    publish: list(&["orders.>"]),
                    deny_publish: list(&["orders.internal.>"]),
                    subscribe: list(&["orders.>"]),
                    deny_subscribe: list(&["orders.internal.>"]),
                    send: list(&["jobs", "rpc"]),
                    consume: list(&["jobs"]),
                    manage: list(&["orders.managed"]),
                    ..Grants::default()
                },
            ),
        ],
        jwt_hs256_secret: Some(SECRET.to_vec()),
        ..Security::default()
    }
}

async fn broker_with_auth(auth_timeout: Duration) -> TestBroker {
    TestBroker::with(Config {
        security: security(),
        auth_timeout,
        ..Config::default()
    })
    .await
}

async fn login(b: &TestBroker, token: &str) -> Raw {
    let mut c = b.raw().await;
    let r = c.call(json!({"op":"hello","id":0,"token":token})).await;
    assert_eq!(r["ev"], "ok", "hello refused: {r}");
    c
}

/// Sends `frame` with id `id` and says how it was answered: `ok` (or a
/// frame that is the op's answer: `stats`, `reply`) or the error code.
async fn outcome(c: &mut Raw, id: u64, mut frame: Value) -> String {
    frame["id"] = json!(id);
    c.send(frame).await;
    loop {
        let v = c.recv().await;
        if v["id"] != json!(id) {
            continue;
        }
        return match v["ev"].as_str() {
            Some("error") => v["code"].as_str().unwrap_or("?").to_string(),
            Some(_) => "ok".into(),
            None => panic!("no ev in {v}"),
        };
    }
}

#[tokio::test]
async fn the_permission_matrix() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    // Holds tag 1 of `jobs`, a job delivered to it and not to the others.
    let mut worker = login(&b, ROOT_TOKEN).await;
    worker
        .call(json!({"op":"consume","id":1,"queue":"jobs","cid":"w"}))
        .await;
    worker
        .send(json!({"op":"send","queue":"jobs","data":1}))
        .await;
    let job = worker.recv_ev("job").await;
    assert_eq!(job["tag"], 1);
    let victim_conn = b.raw().await;
    let victim = victim_conn.id();

    // (frame, admin, limited, no token)
    // The acks come before this connection consumes: tag 1 is the worker's only.
    let rows: Vec<(Value, [&str; 3])> = vec![
        (
            json!({"op":"ack","tag":1}),
            ["unknown_tag", "unknown_tag", "unauthorized"],
        ),
        (
            json!({"op":"reply","tag":1,"data":0}),
            ["unknown_tag", "unknown_tag", "unauthorized"],
        ),
        (
            json!({"op":"pub","topic":"orders.eu","data":1}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"pub","topic":"orders.internal.x","data":1}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"pub","topic":"billing.x","data":1}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"exact","topic":"orders.eu"}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"not-mine","topic":"billing.x"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"star","topic":"orders.*"}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"all","topic":">"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"over","topic":"orders.>"}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"sub","sid":"denied","topic":"orders.internal.>"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"send","queue":"jobs","data":2}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"send","queue":"secret","data":2}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"request","queue":"rpc","data":3,"timeout_ms":100}),
            ["timeout", "timeout", "unauthorized"],
        ),
        (
            json!({"op":"request","queue":"secret","data":3,"timeout_ms":100}),
            ["timeout", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"consume","queue":"jobs","cid":"c"}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"consume","queue":"secret","cid":"c2"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"declare","topic":"orders.managed"}),
            ["ok", "ok", "unauthorized"],
        ),
        (
            json!({"op":"declare","queue":"secret"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"purge","queue":"jobs"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"seal","topic":"orders.eu.sealed"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"delete","queue":"secret"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (json!({"op":"stats"}), ["ok", "forbidden", "unauthorized"]),
        (
            json!({"op":"watch","interval_ms":100000}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (json!({"op":"unwatch"}), ["ok", "forbidden", "unauthorized"]),
        (
            json!({"op":"peek","queue":"jobs"}),
            ["ok", "forbidden", "unauthorized"],
        ),
        (
            json!({"op":"kick","client":victim}),
            ["ok", "forbidden", "unauthorized"],
        ),
    ];
    // Refused first, so the admin's seal, delete and kick come last.
    let mut anonymous = b.raw().await;
    let mut limited = login(&b, ORDERS_TOKEN).await;
    let mut admin = login(&b, ROOT_TOKEN).await;
    let mut failures = Vec::new();
    for (column, c) in [(2, &mut anonymous), (1, &mut limited), (0, &mut admin)] {
        for (i, (frame, want)) in rows.iter().enumerate() {
            let got = outcome(c, 100 + i as u64, frame.clone()).await;
            if got != want[column] {
                let who = ["admin", "limited", "no token"][column];
                failures.push(format!("{who} {frame}: got {got}, want {}", want[column]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(victim_conn);
    b.stop().await;
}

#[tokio::test]
async fn refusals_name_the_op_and_the_name_and_never_the_rules() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let mut c = login(&b, ORDERS_TOKEN).await;
    let r = c
        .call(json!({"op":"pub","id":1,"topic":"orders.internal.x","data":1}))
        .await;
    assert_eq!(
        assert_error(&r, Some(1), "forbidden"),
        "pub to orders.internal.x"
    );
    let r = c.call(json!({"op":"hello","id":2,"token":"nope"})).await;
    let unknown = assert_error(&r, Some(2), "unauthorized");
    let mut d = b.raw().await;
    let r = d.call(json!({"op":"hello","id":3,"token":"orders"})).await;
    assert_eq!(assert_error(&r, Some(3), "unauthorized"), unknown);
    assert!(!unknown.contains("orders"));
    b.stop().await;
}

#[tokio::test]
async fn a_sub_overlapping_a_deny_gets_nothing_from_the_denied_topics() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let mut limited = login(&b, ORDERS_TOKEN).await;
    let mut admin = login(&b, ROOT_TOKEN).await;
    let r = limited
        .call(json!({"op":"sub","id":1,"sid":"s","topic":"orders.>"}))
        .await;
    assert_eq!(r["ev"], "ok");
    for topic in [
        "orders.internal.x",
        "orders.eu",
        "orders.internal.y.z",
        "orders.us",
    ] {
        admin
            .call(json!({"op":"pub","id":2,"topic":topic,"data":topic}))
            .await;
    }
    let got: Vec<Value> = vec![
        limited.recv().await["topic"].clone(),
        limited.recv().await["topic"].clone(),
    ];
    assert_eq!(got, vec![json!("orders.eu"), json!("orders.us")]);
    limited.expect_silence(Duration::from_millis(200)).await;
    b.stop().await;
}

#[tokio::test]
async fn a_token_in_hello_a_bearer_header_or_the_url() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let mut c = b.raw().await;
    let r = c
        .call(json!({"op":"hello","id":1,"name":"svc","token":ORDERS_TOKEN}))
        .await;
    assert_eq!(r, json!({"ev":"ok","id":1,"user":"orders"}));

    let mut h =
        Raw::connect_with_header(&b.url, "Authorization", &format!("Bearer {ORDERS_TOKEN}")).await;
    let r = h
        .call(json!({"op":"pub","id":1,"topic":"orders.eu","data":1}))
        .await;
    assert_eq!(r["ev"], "ok", "{r}");
    let r = h.call(json!({"op":"hello","id":2,"name":"h"})).await;
    assert_eq!(r, json!({"ev":"ok","id":2,"user":"orders"}));

    let mut q = Raw::connect(&format!("{}?token={ROOT_TOKEN}", b.url)).await;
    let stats = q.call(json!({"op":"stats","id":1})).await;
    assert_eq!(stats["ev"], "stats", "{stats}");
    let users: Vec<(String, Value)> = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["user"].clone()))
        .collect();
    assert!(users.contains(&(c.id(), json!("orders"))), "{users:?}");
    assert!(users.contains(&(q.id(), json!("root"))), "{users:?}");

    // A bad token in the upgrade is told at once; the connection may still log in.
    let mut bad = Raw::connect(&format!("{}?token=wrong", b.url)).await;
    assert_error(&bad.recv().await, None, "unauthorized");
    let r = bad
        .call(json!({"op":"hello","id":1,"token":ROOT_TOKEN}))
        .await;
    assert_eq!(r["user"], "root");
    b.stop().await;
}

#[tokio::test]
async fn with_auth_off_hello_names_no_user() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let r = c
        .call(json!({"op":"hello","id":1,"token":"anything"}))
        .await;
    assert_eq!(r, json!({"ev":"ok","id":1,"user":null}));
    let r = c.call(json!({"op":"stats","id":2})).await;
    assert_eq!(r["ev"], "stats");
    b.stop().await;
}

#[tokio::test]
async fn three_bad_tokens_close_the_connection_with_one_event_line() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let mut c = b.raw().await;
    let id = c.id();
    for i in 1..=3 {
        c.send(json!({"op":"hello","id":i,"token":format!("bad-{i}")}))
            .await;
    }
    for i in 1..=3 {
        assert_error(&c.recv().await, Some(i), "unauthorized");
    }
    assert_eq!(c.recv_close().await, Some(1008));
    let lines: Vec<_> = b
        .broker
        .snapshot()
        .events
        .into_iter()
        .filter(|e| e.text.starts_with(&format!("{id} ")) && e.text.contains("refused"))
        .map(|e| (e.kind, e.text))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, switchyard_broker::stats::EventKind::Refused);
    b.stop().await;
}

#[tokio::test]
async fn no_valid_token_in_time_closes_the_connection() {
    let b = broker_with_auth(Duration::from_millis(300)).await;
    let mut idle = b.raw().await;
    let mut ok = login(&b, ORDERS_TOKEN).await;
    let r = idle.call(json!({"op":"ping","id":1})).await;
    assert_error(&r, Some(1), "unauthorized");
    assert_eq!(idle.recv_close().await, Some(1008));
    let r = ok.call(json!({"op":"ping","id":2})).await;
    assert_eq!(r["ev"], "pong");
    b.stop().await;
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(alg: jsonwebtoken::Algorithm, secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn jwts_signed_with_hs256_carry_their_rules() {
    use jsonwebtoken::Algorithm;
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let claims = |exp: u64| json!({"sub":"app-user","exp":exp,"switchyard":{"publish":["app.>"],"deny_publish":["app.secret"]}});
    let good = jwt(Algorithm::HS256, SECRET, claims(now_s() + 600));
    let mut c = b.raw().await;
    let r = c.call(json!({"op":"hello","id":1,"token":good})).await;
    assert_eq!(r, json!({"ev":"ok","id":1,"user":"app-user"}));
    let r = c
        .call(json!({"op":"pub","id":2,"topic":"app.x","data":1}))
        .await;
    assert_eq!(r["ev"], "ok", "{r}");
    let r = c
        .call(json!({"op":"pub","id":3,"topic":"app.secret","data":1}))
        .await;
    assert_error(&r, Some(3), "forbidden");
    let r = c.call(json!({"op":"stats","id":4})).await;
    assert_error(&r, Some(4), "forbidden");

    // Within the 30 s leeway is still good; past it is not.
    let lately = jwt(Algorithm::HS256, SECRET, claims(now_s() - 10));
    let expired = jwt(Algorithm::HS256, SECRET, claims(now_s() - 100));
    let forged = jwt(Algorithm::HS256, b"another secret", claims(now_s() + 600));
    let hs384 = jwt(Algorithm::HS384, SECRET, claims(now_s() + 600));
    let not_yet = jwt(
        Algorithm::HS256,
        SECRET,
        json!({"sub":"app-user","exp":now_s() + 600,"nbf":now_s() + 300}),
    );
    let no_exp = jwt(Algorithm::HS256, SECRET, json!({"sub":"app-user"}));
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(claims(now_s() + 600).to_string().as_bytes())
    );
    let r = b
        .raw()
        .await
        .call(json!({"op":"hello","id":1,"token":lately}))
        .await;
    assert_eq!(r["user"], "app-user", "{r}");
    for (what, token) in [
        ("expired", expired),
        ("bad signature", forged),
        ("HS384", hs384),
        ("nbf in the future", not_yet),
        ("no exp", no_exp),
        ("alg none", unsigned),
    ] {
        let mut d = b.raw().await;
        let r = d.call(json!({"op":"hello","id":1,"token":token})).await;
        assert_eq!(r["code"], "unauthorized", "{what}: {r}");
    }
    b.stop().await;
}

#[tokio::test]
async fn metrics_need_an_admin_token_when_auth_is_on() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let none = http_get_with(b.addr, "/metrics", &[]).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let wrong = http_get_with(b.addr, "/metrics", &["Authorization: Bearer wrong"]).await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let limited = format!("Authorization: Bearer {ORDERS_TOKEN}");
    let limited = http_get_with(b.addr, "/metrics", &[&limited]).await;
    assert!(limited.starts_with("HTTP/1.1 403"), "{limited}");
    let admin = format!("Authorization: Bearer {ROOT_TOKEN}");
    let admin = http_get_with(b.addr, "/metrics", &[&admin]).await;
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    assert!(admin.contains("switchyard_connections"));
    let health = http_get_with(b.addr, "/healthz", &[]).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    b.stop().await;

    let open = TestBroker::start().await;
    let metrics = http_get_with(open.addr, "/metrics", &[]).await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    open.stop().await;
}

#[tokio::test]
async fn the_event_log_says_which_user_did_it() {
    let b = broker_with_auth(Duration::from_secs(30)).await;
    let mut admin = login(&b, ROOT_TOKEN).await;
    admin.call(json!({"op":"hello","id":1,"name":"ops"})).await;
    let mut limited = login(&b, ORDERS_TOKEN).await;
    admin
        .call(json!({"op":"declare","id":2,"queue":"doomed"}))
        .await;
    admin
        .call(json!({"op":"purge","id":3,"queue":"doomed"}))
        .await;
    admin
        .call(json!({"op":"delete","id":4,"queue":"doomed"}))
        .await;
    // Forbidden ops, many in a second: one line.
    for i in 0..20 {
        limited
            .send(json!({"op":"pub","id":10 + i,"topic":"nope","data":1}))
            .await;
    }
    for i in 0..20 {
        assert_error(&limited.recv().await, Some(10 + i), "forbidden");
    }
    admin
        .call(json!({"op":"kick","id":5,"client":limited.id()}))
        .await;
    let events: Vec<String> = b
        .broker
        .snapshot()
        .events
        .into_iter()
        .map(|e| e.text)
        .collect();
    let who = format!("{} (ops) as root", admin.id());
    for did in ["purged", "deleted queue doomed", "kicked"] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&who) && e.contains(did)),
            "no `{who} ... {did}` in {events:#?}"
        );
    }
    let forbidden: Vec<&String> = events
        .iter()
        .filter(|e| {
            e.starts_with(&format!("{} as orders", limited.id())) && e.contains("pub to nope")
        })
        .collect();
    assert_eq!(forbidden.len(), 1, "{events:#?}");
    b.stop().await;
}

/// A webhook makes the broker itself call a URL: only an admin may start one, even
/// on a queue the user may consume from.
#[tokio::test]
async fn only_an_admin_may_start_a_webhook() {
    let b = broker_with_auth(Duration::from_secs(10)).await;
    let mut orders = login(&b, ORDERS_TOKEN).await;
    let hook = json!({"op":"consume","queue":"jobs","webhook":{"url":"http://127.0.0.1:9/"}});
    assert_eq!(outcome(&mut orders, 1, hook.clone()).await, "forbidden");
    let mut root = login(&b, ROOT_TOKEN).await;
    assert_eq!(outcome(&mut root, 2, hook).await, "ok");
    b.stop().await;
}
