//! Several Switchyard nodes on one NATS cluster (`serve --nats`), over real
//! sockets: three `nats-server`s on loopback (tests/common/nats.rs) and two or
//! three `switchyard serve` processes pointing at them.
//!
//! A node's interest in a pattern reaches the NATS servers a moment after its
//! `sub` is answered, so before counting, each test [`settle`]s: it publishes
//! probes until every subscription has heard one, then a fence, and reads up to
//! the fence. What it publishes after that is counted exactly.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::nats::{wait_until, NatsCluster, Node};
use common::*;
use serde_json::{json, Value};

/// The topics' NATS subjects this node's connection subscribes to, from
/// whichever server it is connected to; None while it is connected to none.
/// (The node's other subscriptions, `switchyard.node.…` of the cluster
/// view, are left out.)
fn nats_subs(node: &Node, cluster: &NatsCluster) -> Option<(usize, Vec<String>)> {
    for (i, s) in cluster.servers.iter().enumerate() {
        let Some(connz) = s.monitor("/connz?subs=1") else {
            continue;
        };
        let conns = connz["connections"].as_array().cloned().unwrap_or_default();
        if let Some(c) = conns.iter().find(|c| c["name"] == node.name.as_str()) {
            let mut subs: Vec<String> = c["subscriptions_list"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .filter(|s| s.starts_with("switchyard.topic."))
                        .collect()
                })
                .unwrap_or_default();
            subs.sort();
            return Some((i, subs));
        }
    }
    None
}

/// One client's subscriptions: what each sid got, by `data`.
struct Reader {
    raw: Raw,
    sids: Vec<String>,
}

impl Reader {
    async fn new(raw: Raw) -> Reader {
        Reader { raw, sids: vec![] }
    }

    async fn sub(&mut self, sid: &str, topic: &str, filter: Option<&str>) {
        let mut frame = json!({"op":"sub","id":1,"sid":sid,"topic":topic});
        if let Some(f) = filter {
            frame["filter"] = json!(f);
        }
        assert_eq!(self.raw.call(frame).await, ok(1, json!({})));
        self.sids.push(sid.into());
    }

    /// Every `msg` up to and including the one whose data is `until`, for each
    /// sid, as (topic, data) pairs (the fence left out).
    async fn read_until(&mut self, until: &Value) -> HashMap<String, Vec<(String, Value)>> {
        let mut got: HashMap<String, Vec<(String, Value)>> = HashMap::new();
        let mut done: Vec<String> = vec![];
        while done.len() < self.sids.len() {
            let m = self.raw.recv().await;
            assert_eq!(m["ev"], "msg", "{m}");
            let sid = m["sid"].as_str().unwrap().to_string();
            assert!(!done.contains(&sid), "{sid} got {m} after its fence");
            if &m["data"] == until {
                done.push(sid);
                continue;
            }
            got.entry(sid)
                .or_default()
                .push((m["topic"].as_str().unwrap().into(), m["data"].clone()));
        }
        got
    }
}

/// Publishes probes on `topic` (with `headers`) from `publisher` until every
/// reader's every sid heard one, then a fence, and reads every reader to it:
/// from then on, what `publisher` publishes reaches each of them.
async fn settle(publisher: &mut Raw, topic: &str, headers: Value, readers: &mut [&mut Reader]) {
    let mut heard: Vec<Vec<String>> = readers.iter().map(|_| vec![]).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        publisher
            .send(json!({"op":"pub","topic":topic,"data":{"n":0,"p":"probe"},"headers":headers}))
            .await;
        for (r, heard) in readers.iter_mut().zip(heard.iter_mut()) {
            while let Some(m) = r.raw.try_recv(Duration::from_millis(30)).await {
                let sid = m["sid"].as_str().unwrap_or_default().to_string();
                if !heard.contains(&sid) {
                    heard.push(sid);
                }
            }
        }
        if readers
            .iter()
            .zip(&heard)
            .all(|(r, h)| r.sids.iter().all(|s| h.contains(s)))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "probes not heard: {heard:?}"
        );
    }
    publisher
        .send(json!({"op":"pub","topic":topic,"data":fence(),"headers":headers}))
        .await;
    for r in readers.iter_mut() {
        r.read_until(&fence()).await;
    }
}

/// The last message [`settle`] publishes (passing filters on `data.n`).
fn fence() -> Value {
    json!({"n":0,"p":"fence"})
}

fn data_of(got: &HashMap<String, Vec<(String, Value)>>, sid: &str) -> Vec<(String, Value)> {
    got.get(sid).cloned().unwrap_or_default()
}

#[test]
fn the_harness_starts_a_routed_jetstream_cluster_and_kills_a_server() {
    let mut cluster = NatsCluster::start();
    for s in &cluster.servers {
        let js = s.monitor("/jsz").expect("jsz");
        assert!(js["config"]["store_dir"].is_string(), "{js}");
        assert_eq!(s.monitor("/routez").unwrap()["num_routes"], 2);
    }
    cluster.kill(0);
    assert!(cluster.servers[0].monitor("/varz").is_none());
    wait_until("n2 to lose its route to n1", || {
        cluster.servers[1].monitor("/routez").unwrap()["num_routes"] == 1
    });
    cluster.restart(0);
    assert_eq!(
        cluster.servers[0].monitor("/routez").unwrap()["num_routes"],
        2
    );
}

#[tokio::test]
async fn a_pub_on_one_node_reaches_every_matching_subscription_on_every_node_once() {
    let cluster = NatsCluster::start();
    let (a, b, c) = (
        Node::start(&cluster, "a"),
        Node::start(&cluster, "b"),
        Node::start(&cluster, "c"),
    );
    // On a, a local subscriber: it gets each message once, from a itself.
    let mut on_a = Reader::new(a.client().await).await;
    on_a.sub("all", "orders.>", None).await;
    // On b, two patterns that both match orders.eu: once each, not twice each.
    let mut on_b = Reader::new(b.client().await).await;
    on_b.sub("one", "orders.*", None).await;
    on_b.sub("all", "orders.>", None).await;
    // On c, a filter (evaluated on c) and a second client of the same pattern.
    let mut on_c = Reader::new(c.client().await).await;
    on_c.sub("eu", "orders.>", Some("region = 'eu' AND data.n >= 0"))
        .await;
    let mut on_c2 = Reader::new(c.client().await).await;
    on_c2.sub("all", "orders.>", None).await;

    let mut publisher = a.client().await;
    settle(
        &mut publisher,
        "orders.eu",
        json!({"region":"eu"}),
        &mut [&mut on_a, &mut on_b, &mut on_c, &mut on_c2],
    )
    .await;
    // Names with every character a topic may hold, and headers that are not
    // plain NATS header material.
    let sent = [
        ("orders.eu", json!({"region":"eu"}), json!({"n":1})),
        ("orders.us.east", json!({"region":"us"}), json!({"n":2})),
        (
            "orders.Eu_1-x:y",
            json!({"region":["eu","uk"],"x: y\r\n":"a\nb"}),
            json!({"n":3}),
        ),
        ("other.eu", json!({"region":"eu"}), json!({"n":4})),
        ("orders.eu", json!({"region":"eu"}), json!({"n":-1})),
    ];
    for (i, (topic, headers, data)) in sent.iter().enumerate() {
        let answer = publisher
            .call(json!({"op":"pub","id":i + 10,"topic":topic,"data":data,"headers":headers}))
            .await;
        assert_eq!(answer["ev"], "ok", "{answer}");
    }
    publisher
        .send(json!({"op":"pub","topic":"orders.eu","data":fence(),"headers":{"region":"eu"}}))
        .await;
    let end = fence();
    let (got_a, got_b, got_c, got_c2) = (
        on_a.read_until(&end).await,
        on_b.read_until(&end).await,
        on_c.read_until(&end).await,
        on_c2.read_until(&end).await,
    );
    let t = |topic: &str, n: i64| (topic.to_string(), json!({ "n": n }));
    let everything = vec![
        t("orders.eu", 1),
        t("orders.us.east", 2),
        t("orders.Eu_1-x:y", 3),
        t("orders.eu", -1),
    ];
    assert_eq!(data_of(&got_a, "all"), everything);
    assert_eq!(data_of(&got_b, "all"), everything);
    assert_eq!(
        data_of(&got_b, "one"),
        vec![
            t("orders.eu", 1),
            t("orders.Eu_1-x:y", 3),
            t("orders.eu", -1)
        ]
    );
    assert_eq!(
        data_of(&got_c, "eu"),
        vec![t("orders.eu", 1), t("orders.Eu_1-x:y", 3)]
    );
    assert_eq!(data_of(&got_c2, "all"), everything);
    for r in [&mut on_a, &mut on_b, &mut on_c, &mut on_c2] {
        r.raw.expect_silence(Duration::from_millis(200)).await;
    }

    // Headers, time and a per-node seq survive the trip.
    publisher
        .send(json!({"op":"pub","topic":"orders.eu","data":{"n":9},"headers":{"region":"eu","x: y\r\n":["a\nb","c"]}}))
        .await;
    let m = on_c.raw.recv().await;
    assert_eq!(
        m["headers"],
        json!({"region":"eu","x: y\r\n":["a\nb","c"]}),
        "{m}"
    );
    assert_eq!(m["data"], json!({"n":9}));
    assert!(m["time"].as_u64().unwrap() > 1_700_000_000_000, "{m}");
    assert!(m["seq"].as_u64().unwrap() > 0, "{m}");
}

#[tokio::test]
async fn a_node_holds_one_nats_subscription_per_pattern_its_clients_hold() {
    let cluster = NatsCluster::start();
    let b = Node::start(&cluster, "b");
    let subs_of = |node: &Node| nats_subs(node, &cluster).map(|(_, s)| s);
    assert_eq!(subs_of(&b), Some(vec![]));
    let mut one = b.client().await;
    let mut two = b.client().await;
    for (raw, sid) in [(&mut one, "x"), (&mut two, "y")] {
        let answer = raw
            .call(json!({"op":"sub","id":1,"sid":sid,"topic":"orders.>"}))
            .await;
        assert_eq!(answer, ok(1, json!({})));
    }
    let answer = one
        .call(json!({"op":"sub","id":2,"sid":"z","topic":"orders.*.eu"}))
        .await;
    assert_eq!(answer, ok(2, json!({})));
    let both = vec![
        "switchyard.topic.orders.*.eu".to_string(),
        "switchyard.topic.orders.>".to_string(),
    ];
    wait_until("two NATS subscriptions", || {
        subs_of(&b) == Some(both.clone())
    });
    // The first of two holders going changes nothing; the last one unsubscribes.
    assert_eq!(
        one.call(json!({"op":"unsub","id":3,"sid":"x"})).await,
        ok(3, json!({}))
    );
    assert_eq!(
        one.call(json!({"op":"unsub","id":4,"sid":"z"})).await,
        ok(4, json!({}))
    );
    wait_until("orders.*.eu dropped", || {
        subs_of(&b) == Some(vec!["switchyard.topic.orders.>".into()])
    });
    drop(two);
    wait_until("no NATS subscription left", || subs_of(&b) == Some(vec![]));
}

#[tokio::test]
async fn a_node_rides_out_its_nats_server_and_says_so_when_all_are_gone() {
    let mut cluster = NatsCluster::start();
    let a = Node::start(&cluster, "a");
    let b = Node::start(&cluster, "b");
    let mut on_b = Reader::new(b.client().await).await;
    on_b.sub("s", "jobs.>", None).await;
    let mut publisher = a.client().await;
    settle(&mut publisher, "jobs.x", json!({}), &mut [&mut on_b]).await;

    // Kill the server b is connected to: b reconnects to another, and what a
    // publishes reaches b's subscriber again.
    let (before, _) = nats_subs(&b, &cluster).unwrap();
    cluster.kill(before);
    wait_until("b on another NATS server", || {
        nats_subs(&b, &cluster).is_some_and(|(i, subs)| i != before && subs.len() == 1)
    });
    settle(&mut publisher, "jobs.x", json!({}), &mut [&mut on_b]).await;
    // a may have been on that server too: refused (`unavailable`) until it has
    // moved, as a client sees it, then taken.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = publisher
            .call(json!({"op":"pub","id":1,"topic":"jobs.y","data":1}))
            .await;
        if answer["ev"] == "ok" {
            break;
        }
        assert_eq!(answer["code"], "unavailable", "{answer}");
        assert!(std::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = on_b.raw.recv().await;
    assert_eq!(
        (m["topic"].clone(), m["data"].clone()),
        (json!("jobs.y"), json!(1))
    );

    // Every server gone: b says so and refuses pubs rather than serving its own
    // clients alone; its local subscriptions stay.
    cluster.kill_all();
    wait_until("b unhealthy", || b.health().0 == 503);
    let (_, why) = b.health();
    assert!(why.contains("NATS connection lost"), "{why}");
    let mut local = b.client().await;
    let answer = local
        .call(json!({"op":"pub","id":2,"topic":"jobs.y","data":2}))
        .await;
    let message = assert_error(&answer, Some(2), "unavailable");
    assert!(message.contains("NATS connection lost"), "{message}");
    on_b.raw.expect_silence(Duration::from_millis(100)).await;
    // The snapshot says so too (the console's header shows `NATS down`).
    let stats = local.call(json!({"op":"stats","id":9})).await;
    let link = &stats["server"]["cluster"];
    assert_eq!(
        (&link["node"], &link["connected"]),
        (&json!("b"), &json!(false)),
        "{stats}"
    );
    assert!(
        link["why"]
            .as_str()
            .unwrap()
            .contains("NATS connection lost"),
        "{stats}"
    );

    // Back: healthy again, and messages flow again both ways.
    cluster.start_all();
    wait_until("b healthy again", || b.health().0 == 200);
    wait_until("a healthy again", || a.health().0 == 200);
    let stats = local.call(json!({"op":"stats","id":10})).await;
    let link = &stats["server"]["cluster"];
    assert_eq!(
        (&link["node"], &link["connected"], link.get("why")),
        (&json!("b"), &json!(true), None),
        "{stats}"
    );
    settle(&mut publisher, "jobs.x", json!({}), &mut [&mut on_b]).await;
    let answer = local
        .call(json!({"op":"pub","id":3,"topic":"jobs.z","data":3}))
        .await;
    assert_eq!(answer["ev"], "ok", "{answer}");
    let m = on_b.raw.recv().await;
    assert_eq!(
        (m["topic"].clone(), m["data"].clone()),
        (json!("jobs.z"), json!(3))
    );
}

#[test]
fn bad_cluster_settings_stop_a_node_at_start() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--node", "a"])
        .arg("--data-dir")
        .arg(temp_data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("need --nats"), "{stderr}");
    let creds = temp_data_dir().with_extension("creds");
    std::fs::write(&creds, "not a credentials file").unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            "nats://127.0.0.1:1",
        ])
        .arg("--data-dir")
        .arg(temp_data_dir())
        .arg("--nats-creds")
        .arg(&creds)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NATS credentials"), "{stderr}");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--nats", "nats://h:x", "--node", "a.b"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a NATS server URL"), "{stderr}");
}
