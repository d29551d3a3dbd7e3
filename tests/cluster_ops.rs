//! Operator frames about queues across Switchyard nodes on one NATS JetStream
//! cluster (`serve --nats`), over real sockets: `peek`, `drop`, `move` and
//! `requeue` sent to one node about messages sent on, or held by, another.
//! Three `nats-server`s on loopback and two `switchyard serve` processes; every
//! case runs in one test on one cluster, each on queues of its own.

mod common;

use std::process::Command;
use std::time::Duration;

use common::nats::{consume, runtime, send_confirmed, NatsCluster, Node, STREAM_WAIT};
use common::*;
use serde_json::{json, Value};

async fn job(w: &mut Raw) -> Value {
    loop {
        let f = w.try_recv(WAIT).await.expect("a job");
        if f["ev"] == "job" {
            return f;
        }
    }
}

/// A peek's messages as (msg, attempt, data).
fn peeked(answer: &Value) -> Vec<(String, u64, Value)> {
    assert_eq!(answer["ev"], "ok", "{answer}");
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["msg"].as_str().unwrap().to_string(),
                m["attempt"].as_u64().unwrap(),
                m["data"].clone(),
            )
        })
        .collect()
}

fn ready(ids: &[String], ns: &[u64]) -> Vec<(String, u64, Value)> {
    ns.iter()
        .map(|&n| (ids[n as usize].clone(), 0, json!({"n": n})))
        .collect()
}

fn number(id: &str) -> Value {
    json!(id.parse::<u64>().unwrap())
}

#[test]
fn operator_frames_across_nodes() {
    let cluster = NatsCluster::start();
    let a = Node::start(&cluster, "oa");
    let b = Node::start(&cluster, "ob");
    let runtime = runtime();
    runtime.block_on(async {
        // A node asks the others it knows of (from their snapshots) what they hold.
        for node in [&a, &b] {
            let mut c = node.client().await;
            let mut seen = 0;
            for _ in 0..100 {
                let s = c.call(json!({"op":"stats","id":1})).await;
                seen = s["server"]["cluster"]["nodes"]
                    .as_array()
                    .map_or(0, Vec::len);
                if seen == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(seen, 2, "each node sees the other");
        }
        peek_and_drop_see_the_whole_stream(&a, &b).await;
        a_dropped_message_s_sender_hears_it_is_dead(&a, &b).await;
        move_takes_ready_messages_from_any_node(&a, &b).await;
        requeue_reaches_the_node_that_holds_the_job(&a, &b).await;
    });
    the_cli_moves_and_drops_through_another_node(&a, &b, &runtime);
}

async fn peek_and_drop_see_the_whole_stream(a: &Node, b: &Node) {
    let mut p = a.client().await;
    let ids = send_confirmed(&mut p, "ops_peek", 0..5).await;
    // Node B never served the queue: it reads the stream.
    let mut o = b.client().await;
    let page = o
        .call(json!({"op":"peek","id":2,"queue":"ops_peek","n":2}))
        .await;
    assert_eq!(peeked(&page), ready(&ids, &[0, 1]));
    assert_eq!(page["next"], number(&ids[1]), "{page}");
    let page = o
        .call(json!({"op":"peek","id":3,"queue":"ops_peek","n":10,"after":page["next"]}))
        .await;
    assert_eq!(peeked(&page), ready(&ids, &[2, 3, 4]));
    assert!(page.get("next").is_none(), "{page}");

    // A consumer on A holds the first: it is in flight, not ready, to B.
    let mut w = a.client().await;
    consume(&mut w, "ops_peek", "w", 1).await;
    let first = job(&mut w).await;
    assert_eq!(
        (&first["msg"], &first["attempt"]),
        (&json!(ids[0]), &json!(1))
    );
    let page = o
        .call(json!({"op":"peek","id":4,"queue":"ops_peek","n":10}))
        .await;
    assert_eq!(peeked(&page), ready(&ids, &[1, 2, 3, 4]));
    let page = o
        .call(json!({"op":"peek","id":5,"queue":"ops_peek","filter":"data.n >= 3"}))
        .await;
    assert_eq!(peeked(&page), ready(&ids, &[3, 4]));

    // Drop on B: a ready message goes for every node; one in flight on A does not.
    let held = o
        .call(json!({"op":"drop","id":6,"queue":"ops_peek","msg":ids[0]}))
        .await;
    let why = assert_error(&held, Some(6), "not_found");
    assert!(why.contains("in flight"), "{why}");
    let dropped = o
        .call(json!({"op":"drop","id":7,"queue":"ops_peek","msg":ids[2]}))
        .await;
    assert_eq!(dropped, ok(7, json!({})));
    let again = o
        .call(json!({"op":"drop","id":8,"queue":"ops_peek","msg":ids[2]}))
        .await;
    assert_error(&again, Some(8), "not_found");
    let nothing = o
        .call(json!({"op":"drop","id":9,"queue":"no_such_queue","msg":"1"}))
        .await;
    assert_error(&nothing, Some(9), "not_found");

    // A's consumer gets the rest, without the dropped one.
    let mut tag = first["tag"].clone();
    for n in [1, 3, 4] {
        w.send(json!({"op":"ack","tag":tag})).await;
        let j = job(&mut w).await;
        assert_eq!(j["msg"], json!(ids[n]), "{j}");
        tag = j["tag"].clone();
    }
    w.send(json!({"op":"ack","tag":tag})).await;
    w.expect_silence(Duration::from_millis(300)).await;
    let page = o
        .call(json!({"op":"peek","id":10,"queue":"ops_peek"}))
        .await;
    assert_eq!(page, ok(10, json!({"messages": []})));
}

async fn a_dropped_message_s_sender_hears_it_is_dead(a: &Node, b: &Node) {
    let mut s = a.client().await;
    // Its stream first: a look at a stream being made waits for its leader.
    s.send(json!({"op":"declare","id":4,"queue":"ops_done"}))
        .await;
    let declared = s.try_recv(STREAM_WAIT).await.expect("an answer to declare");
    assert_eq!(declared, ok(4, json!({})));
    s.send(json!({"op":"send","id":5,"queue":"ops_done","data":"x","confirm":"done"}))
        .await;
    let mut o = b.client().await;
    let mut msg = Value::Null;
    for _ in 0..100 {
        let page = o.call(json!({"op":"peek","id":1,"queue":"ops_done"})).await;
        if let Some(m) = page["messages"].get(0) {
            msg = m["msg"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(msg.is_string(), "the send was stored");
    let dropped = o
        .call(json!({"op":"drop","id":2,"queue":"ops_done","msg":msg}))
        .await;
    assert_eq!(dropped, ok(2, json!({})));
    let answer = s.try_recv(WAIT).await.expect("the sender's answer");
    let why = assert_error(&answer, Some(5), "dead");
    assert!(why.contains("dropped"), "{why}");
}

async fn move_takes_ready_messages_from_any_node(a: &Node, b: &Node) {
    let mut p = a.client().await;
    let ids = send_confirmed(&mut p, "ops_from", 0..6).await;
    let mut f = a.client().await;
    consume(&mut f, "ops_from", "f", 1).await;
    let held = job(&mut f).await;
    assert_eq!(held["msg"], json!(ids[0]));

    let mut o = b.client().await;
    // The first move makes `to`'s stream.
    o.send(json!({"op":"move","id":1,"from":"ops_from","to":"ops_to","n":2}))
        .await;
    let two = o.try_recv(STREAM_WAIT).await.expect("an answer to move");
    assert_eq!(two, ok(1, json!({"moved": 2})));
    let in_flight = o
        .call(json!({"op":"move","id":2,"from":"ops_from","to":"ops_to","msg":ids[0]}))
        .await;
    assert_error(&in_flight, Some(2), "not_found");
    let filtered = o
        .call(json!({"op":"move","id":3,"from":"ops_from","to":"ops_to","filter":"data.n >= 5"}))
        .await;
    assert_eq!(filtered, ok(3, json!({"moved": 1})));
    let one = o
        .call(json!({"op":"move","id":4,"from":"ops_from","to":"ops_to","msg":ids[3]}))
        .await;
    assert_eq!(one, ok(4, json!({"moved": 1})));
    let itself = o
        .call(json!({"op":"move","id":5,"from":"ops_from","to":"ops_from"}))
        .await;
    assert_error(&itself, Some(5), "bad_frame");
    let page = o.call(json!({"op":"peek","id":6,"queue":"ops_from"})).await;
    assert_eq!(peeked(&page), ready(&ids, &[4]));

    // The moved messages are consumed on A, in the order they moved.
    let mut t = a.client().await;
    consume(&mut t, "ops_to", "t", 10).await;
    let mut got = vec![];
    for _ in 0..4 {
        let j = job(&mut t).await;
        assert_eq!(j["headers"]["x-moved-from"], "ops_from", "{j}");
        assert_eq!(j["attempt"], 1, "{j}");
        got.push(j["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(got, [1, 2, 5, 3]);
    t.expect_silence(Duration::from_millis(300)).await;
}

async fn requeue_reaches_the_node_that_holds_the_job(a: &Node, b: &Node) {
    let mut w = a.client().await;
    consume(&mut w, "ops_rq", "w", 1).await;
    let mut o = b.client().await;
    let ids = send_confirmed(&mut o, "ops_rq", 0..1).await;
    let first = job(&mut w).await;
    assert_eq!(
        (&first["msg"], &first["attempt"]),
        (&json!(ids[0]), &json!(1))
    );
    // B's page of the queue shows A's consumer, named as in the view.
    let mut mine = b.client().await;
    consume(&mut mine, "ops_rq", "b1", 3).await;
    let page = o
        .call(json!({"op":"describe","id":6,"queue":"ops_rq"}))
        .await;
    let page = &page["queue"];
    let consumers: Vec<Value> = page["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["client"], c["cid"], c["prefetch"], c["unacked"]]))
        .collect();
    assert_eq!(
        consumers,
        [
            json!([mine.id(), "b1", 3, 0]),
            json!([format!("{}@oa", w.id()), "w", 1, 1])
        ],
        "{page}"
    );
    assert_eq!(page["stats"]["consumers"], 2, "{page}");
    // Gone before the job comes back, so that only A's consumer can get it.
    let cancelled = mine.call(json!({"op":"cancel","id":7,"cid":"b1"})).await;
    assert_eq!(cancelled, ok(7, json!({})));
    let requeued = o
        .call(json!({"op":"requeue","id":2,"queue":"ops_rq","msg":ids[0]}))
        .await;
    assert_eq!(requeued, ok(2, json!({})));
    let again = job(&mut w).await;
    assert_eq!(
        (&again["msg"], &again["attempt"]),
        (&json!(ids[0]), &json!(2))
    );
    let late = w.call(json!({"op":"ack","id":3,"tag":first["tag"]})).await;
    assert_error(&late, Some(3), "unknown_tag");
    let acked = w.call(json!({"op":"ack","id":4,"tag":again["tag"]})).await;
    assert_eq!(acked, ok(4, json!({})));
    let gone = o
        .call(json!({"op":"requeue","id":5,"queue":"ops_rq","msg":ids[0]}))
        .await;
    assert_error(&gone, Some(5), "not_found");
}

fn the_cli_moves_and_drops_through_another_node(
    a: &Node,
    b: &Node,
    runtime: &tokio::runtime::Runtime,
) {
    let ids = runtime.block_on(async {
        let mut p = a.client().await;
        send_confirmed(&mut p, "cli_from", 0..3).await
    });
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .args(["-s", &b.url])
            .output()
            .expect("run switchyard");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        cli(&["move", "cli_from", "cli_to", "--count", "2"]),
        "{\"from\":\"cli_from\",\"moved\":2,\"to\":\"cli_to\"}\n"
    );
    assert_eq!(
        cli(&["drop", "cli_from", &ids[2]]),
        format!("{{\"dropped\":\"{}\",\"queue\":\"cli_from\"}}\n", ids[2])
    );
    runtime.block_on(async {
        let mut o = a.client().await;
        let from = o.call(json!({"op":"peek","id":1,"queue":"cli_from"})).await;
        assert_eq!(from, ok(1, json!({"messages": []})));
        let to = o.call(json!({"op":"peek","id":2,"queue":"cli_to"})).await;
        let moved: Vec<Value> = peeked(&to).into_iter().map(|(_, _, d)| d).collect();
        assert_eq!(moved, [json!({"n": 0}), json!({"n": 1})]);
    });
}
