//! How many queues and retained topics one user may create (`max_streams`, else
//! `max_streams_per_user`), over real sockets: the cap per user, what counts and
//! what does not, a deleted stream's place given back to its creator, the shared
//! count with auth off, JWT claims, `/metrics`, and the flag and config key of the
//! real binary.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{assert_error, http_get_with, ok, Raw, TestBroker, BIN};
use serde_json::{json, Value};
use switchyard_broker::auth::{digest, Grants, Security, UserRules};
use switchyard_broker::Config;

const ROOT_TOKEN: &str = "root-token-0123456789";
const ORDERS_TOKEN: &str = "orders-token-0123456789";
const BILLING_TOKEN: &str = "billing-token-0123456789";
const SECRET: &[u8] = b"jwt-secret-for-limit-tests";

const ORDERS_CAP: &str = "user `orders` may create at most 3 queues and topics (max_streams)";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A user allowed every verb on every name, with its own cap if `max_streams`.
fn user(name: &str, token: &str, admin: bool, max_streams: Option<usize>) -> UserRules {
    let all = vec![">".to_string()];
    UserRules {
        name: name.into(),
        token_sha256: hex(&digest(token)),
        grants: Grants {
            publish: all.clone(),
            subscribe: all.clone(),
            send: all.clone(),
            consume: all.clone(),
            manage: all,
            admin,
            max_streams,
            ..Grants::default()
        },
    }
}

/// `root` (an admin, no cap of its own), `orders` (`max_streams = 3`) and
/// `billing` (no cap of its own), under a broker-wide cap of 2.
async fn broker_with_users() -> TestBroker {
    TestBroker::with(Config {
        security: Security {
            users: vec![
                user("root", ROOT_TOKEN, true, None),
                user("orders", ORDERS_TOKEN, false, Some(3)),
                user("billing", BILLING_TOKEN, false, None),
            ],
            jwt_hs256_secret: Some(SECRET.to_vec()),
            ..Security::default()
        },
        max_streams_per_user: 2,
        ..Config::default()
    })
    .await
}

async fn login(url: &str, token: &str) -> Raw {
    let mut c = Raw::connect(url).await;
    let r = c.call(json!({"op":"hello","id":0,"token":token})).await;
    assert_eq!(r["ev"], "ok", "hello refused: {r}");
    c
}

/// Sends `frame` with id `id` and returns the frame that answers it.
async fn answer(c: &mut Raw, id: u64, mut frame: Value) -> Value {
    frame["id"] = json!(id);
    c.send(frame).await;
    loop {
        let v = c.recv().await;
        if v["id"] == json!(id) {
            return v;
        }
    }
}

/// Asserts that `frame` (with id `id`) is answered `ok`.
async fn accepted(c: &mut Raw, id: u64, frame: Value) {
    let r = answer(c, id, frame.clone()).await;
    assert_eq!(r["ev"], "ok", "{frame} was refused: {r}");
}

/// Asserts that `frame` is refused with `limit`; returns the message.
async fn limited(c: &mut Raw, id: u64, frame: Value) -> String {
    let r = answer(c, id, frame).await;
    assert_error(&r, Some(id), "limit")
}

/// The queues that exist, and the topics that are retained, by name.
fn streams(b: &TestBroker) -> (Vec<String>, Vec<String>) {
    let snap = b.broker.snapshot();
    let mut queues: Vec<String> = snap.queues.iter().map(|q| q.name.clone()).collect();
    let mut topics: Vec<String> = snap
        .topics
        .iter()
        .filter(|t| t.retained)
        .map(|t| t.name.clone())
        .collect();
    queues.sort();
    topics.sort();
    (queues, topics)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The `streams_limit` line of `/metrics`.
async fn refusals_line(addr: std::net::SocketAddr, auth: &[&str]) -> String {
    let metrics = http_get_with(addr, "/metrics", auth).await;
    metrics
        .lines()
        .find(|l| l.starts_with("switchyard_refusals_total{reason=\"streams_limit\"}"))
        .unwrap_or_else(|| panic!("no streams_limit line in {metrics}"))
        .to_string()
}

fn retain() -> Value {
    json!({"max_messages": 10})
}

#[tokio::test]
async fn a_user_creates_up_to_its_max_streams_and_a_delete_gives_one_back() {
    let b = broker_with_users().await;
    let mut orders = login(&b.url, ORDERS_TOKEN).await;
    // Three ways to create: a declared queue, a retained topic, a first send.
    accepted(&mut orders, 1, json!({"op":"declare","queue":"q1"})).await;
    accepted(
        &mut orders,
        2,
        json!({"op":"declare","topic":"t1","retain":retain()}),
    )
    .await;
    accepted(&mut orders, 3, json!({"op":"send","queue":"q2","data":1})).await;

    // The fourth, however it is asked for, is refused and creates nothing.
    let declare = json!({"op":"declare","queue":"q3"});
    assert_eq!(limited(&mut orders, 4, declare).await, ORDERS_CAP);
    let send = json!({"op":"send","queue":"q3","data":1});
    assert_eq!(limited(&mut orders, 5, send).await, ORDERS_CAP);
    let consume = json!({"op":"consume","queue":"q3","cid":"w"});
    assert_eq!(limited(&mut orders, 6, consume).await, ORDERS_CAP);
    let request = json!({"op":"request","queue":"q3","data":1,"timeout_ms":1000});
    assert_eq!(limited(&mut orders, 7, request).await, ORDERS_CAP);
    let in_memory = json!({"op":"declare","queue":"q3","durable":false});
    assert_eq!(limited(&mut orders, 8, in_memory).await, ORDERS_CAP);
    let topic = json!({"op":"declare","topic":"t2","retain":retain()});
    assert_eq!(limited(&mut orders, 9, topic).await, ORDERS_CAP);
    assert_eq!(
        streams(&b),
        (names(&["q1", "q2"]), names(&["t1"])),
        "nothing refused was created"
    );
    // A send without an id is refused just the same, with an error without id.
    orders
        .send(json!({"op":"send","queue":"q3","data":1}))
        .await;
    let r = orders.recv().await;
    assert_eq!(assert_error(&r, None, "limit"), ORDERS_CAP);

    // What exists is used as before, and topics in memory count against no one.
    accepted(&mut orders, 10, json!({"op":"send","queue":"q1","data":1})).await;
    accepted(
        &mut orders,
        11,
        json!({"op":"declare","queue":"q1","max_len":5}),
    )
    .await;
    accepted(
        &mut orders,
        12,
        json!({"op":"declare","topic":"t1","retain":{"max_messages":20}}),
    )
    .await;
    accepted(&mut orders, 13, json!({"op":"declare","topic":"plain"})).await;
    accepted(
        &mut orders,
        14,
        json!({"op":"pub","topic":"other","data":1}),
    )
    .await;

    // Another user has a count of its own, with the broker's cap.
    let mut billing = login(&b.url, BILLING_TOKEN).await;
    accepted(&mut billing, 1, json!({"op":"declare","queue":"b1"})).await;
    accepted(&mut billing, 2, json!({"op":"send","queue":"b2","data":1})).await;
    assert_eq!(
        limited(&mut billing, 3, json!({"op":"declare","queue":"b3"})).await,
        "user `billing` may create at most 2 queues and topics (max_streams_per_user)"
    );

    // Deleting gives a place back to the stream's creator, whoever deletes it.
    accepted(&mut orders, 15, json!({"op":"delete","queue":"q1"})).await;
    accepted(&mut orders, 16, json!({"op":"declare","queue":"q3"})).await;
    assert_eq!(
        limited(&mut orders, 17, json!({"op":"declare","queue":"q4"})).await,
        ORDERS_CAP
    );
    let mut root = login(&b.url, ROOT_TOKEN).await;
    accepted(&mut root, 1, json!({"op":"delete","topic":"t1"})).await;
    accepted(
        &mut orders,
        18,
        json!({"op":"declare","topic":"t2","retain":retain()}),
    )
    .await;
    assert_eq!(
        streams(&b),
        (names(&["b1", "b2", "q2", "q3"]), names(&["t2"]))
    );

    // Every refusal is counted: eight of orders' above, one of billing's.
    let auth = format!("Authorization: Bearer {ROOT_TOKEN}");
    assert_eq!(
        refusals_line(b.addr, &[&auth]).await,
        "switchyard_refusals_total{reason=\"streams_limit\"} 9"
    );
    b.stop().await;
}

#[tokio::test]
async fn an_admin_has_the_brokers_cap_and_a_jwt_may_carry_its_own() {
    let b = broker_with_users().await;
    let mut root = login(&b.url, ROOT_TOKEN).await;
    accepted(&mut root, 1, json!({"op":"declare","queue":"r1"})).await;
    accepted(&mut root, 2, json!({"op":"declare","queue":"r2"})).await;
    assert_eq!(
        limited(&mut root, 3, json!({"op":"declare","queue":"r3"})).await,
        "user `root` may create at most 2 queues and topics (max_streams_per_user)"
    );

    // `max_streams` in the `switchyard` claim, as in a `[[users]]` entry.
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({"sub":"app-user","exp":exp,
        "switchyard":{"send":[">"],"manage":[">"],"max_streams":1}});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let mut app = login(&b.url, &token).await;
    accepted(&mut app, 1, json!({"op":"send","queue":"a1","data":1})).await;
    assert_eq!(
        limited(&mut app, 2, json!({"op":"send","queue":"a2","data":1})).await,
        "user `app-user` may create at most 1 queue or topic (max_streams)"
    );
    b.stop().await;
}

#[tokio::test]
async fn with_auth_off_every_client_shares_one_count() {
    let b = TestBroker::with(Config {
        max_streams_per_user: 3,
        ..Config::default()
    })
    .await;
    let shared = "clients without a user may create at most 3 queues and topics together \
                  (max_streams_per_user)";
    let mut one = b.raw().await;
    let mut two = b.raw().await;
    accepted(&mut one, 1, json!({"op":"declare","queue":"q1"})).await;
    accepted(&mut two, 1, json!({"op":"send","queue":"q2","data":1})).await;
    accepted(
        &mut two,
        2,
        json!({"op":"declare","queue":"m1","durable":false}),
    )
    .await;
    let consume = json!({"op":"consume","queue":"q3","cid":"w"});
    assert_eq!(limited(&mut one, 2, consume).await, shared);
    let topic = json!({"op":"declare","topic":"t1","retain":retain()});
    assert_eq!(limited(&mut two, 3, topic).await, shared);
    // A client that comes later shares it too, until a stream is deleted.
    let mut three = b.raw().await;
    let send = json!({"op":"send","queue":"q3","data":1});
    assert_eq!(limited(&mut three, 1, send.clone()).await, shared);
    accepted(&mut one, 3, json!({"op":"delete","queue":"m1"})).await;
    accepted(&mut three, 2, send).await;
    assert_eq!(streams(&b), (names(&["q1", "q2", "q3"]), names(&[])));
    assert_eq!(
        refusals_line(b.addr, &[]).await,
        "switchyard_refusals_total{reason=\"streams_limit\"} 3"
    );
    b.stop().await;
}

/// A `switchyard serve` with `args`; killed when dropped.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHYARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Served { child, url }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-limits-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_flag_sets_the_cap() {
    let dir = temp_dir("flag");
    let data = dir.join("data");
    let served = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--max-streams-per-user",
        "2",
    ]);
    let mut c = Raw::connect(&served.url).await;
    accepted(&mut c, 1, json!({"op":"declare","queue":"q1"})).await;
    accepted(&mut c, 2, json!({"op":"declare","queue":"q2"})).await;
    assert_eq!(
        limited(&mut c, 3, json!({"op":"declare","queue":"q3"})).await,
        "clients without a user may create at most 2 queues and topics together \
         (max_streams_per_user)"
    );
}

#[tokio::test]
async fn the_config_file_sets_the_cap_and_each_users_own() {
    let dir = temp_dir("config");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nmax_streams_per_user = 1\n\n\
             [[users]]\nname = \"orders\"\ntoken_sha256 = \"{}\"\nsend = [\">\"]\n\
             max_streams = 2\n\n\
             [[users]]\nname = \"billing\"\ntoken_sha256 = \"{}\"\nsend = [\">\"]\n",
            hex(&digest(ORDERS_TOKEN)),
            hex(&digest(BILLING_TOKEN)),
        ),
    )
    .unwrap();
    let served = serve(&["--config", config.to_str().unwrap()]);
    let mut orders = login(&served.url, ORDERS_TOKEN).await;
    accepted(&mut orders, 1, json!({"op":"send","queue":"o1","data":1})).await;
    accepted(&mut orders, 2, json!({"op":"send","queue":"o2","data":1})).await;
    assert_eq!(
        limited(&mut orders, 3, json!({"op":"send","queue":"o3","data":1})).await,
        "user `orders` may create at most 2 queues and topics (max_streams)"
    );
    let mut billing = login(&served.url, BILLING_TOKEN).await;
    accepted(&mut billing, 1, json!({"op":"send","queue":"b1","data":1})).await;
    assert_eq!(
        limited(&mut billing, 2, json!({"op":"send","queue":"b2","data":1})).await,
        "user `billing` may create at most 1 queue or topic (max_streams_per_user)"
    );
    // Unchanged: the cap has nothing to do with sending to what exists.
    let r = answer(&mut billing, 3, json!({"op":"send","queue":"o1","data":2})).await;
    assert_eq!(r, ok(3, json!({"msg":"2"})));
}
