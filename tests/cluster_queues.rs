//! Queues across Switchyard nodes on one NATS JetStream cluster (`serve
//! --nats`), over real sockets: three `nats-server`s on loopback and three
//! `switchyard serve` processes. Every case runs in one test on one cluster
//! (starting one takes seconds), each on queues of its own.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::nats::{
    consume, http_get, runtime, send_confirmed, stats_row, wait_until, NatsCluster, Node,
};
use common::*;
use serde_json::{json, Value};

async fn declare(c: &mut Raw, queue: &str, options: Value) {
    let mut frame = json!({"op":"declare","id":1,"queue":queue});
    frame
        .as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    assert_eq!(c.call(frame).await, ok(1, json!({})), "declare {queue}");
}

async fn job(w: &mut Raw, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = w.try_recv(left).await?;
        if f["ev"] == "job" {
            return Some(f);
        }
    }
}

/// Polls `cond` until it holds (5 s at most).
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn queues_across_nodes() {
    let mut cluster = NatsCluster::start();
    // A data directory with a queue of one node's own, from a run without --nats.
    let data = temp_data_dir();
    let (mut single, url) = serve_process("127.0.0.1:0", &data);
    let runtime = runtime();
    runtime.block_on(async {
        let mut c = Raw::connect(&url).await;
        send_confirmed(&mut c, "old", 0..1).await;
    });
    stop(&mut single);
    let a = Node::start_on(&cluster, "qa", &data);
    let b = Node::start(&cluster, "qb");
    let mut c = Some(Node::start(&cluster, "qc"));
    runtime.block_on(async {
        a_queue_kept_on_one_node_is_not_served_with_nats(&a).await;
        consumers_on_two_nodes_share_the_work(&a, &b).await;
        a_disconnected_consumers_jobs_go_to_another_node_at_once(&a, &b).await;
        a_killed_nodes_jobs_come_back_after_the_ack_wait(&b, c.take().unwrap()).await;
        nack_requeues_or_dead_letters(&a, &b).await;
        max_attempts_counts_deliveries_on_every_node(&a, &b).await;
        requests_and_confirms_are_answered_across_nodes(&a, &b).await;
        purge_and_delete_from_any_node(&a, &b).await;
        no_confirmed_send_is_lost_when_a_nats_server_dies(&a, &b, &mut cluster).await;
        without_nats_sends_and_acks_are_refused(&a, &b, &mut cluster).await;
    });
}

async fn a_queue_kept_on_one_node_is_not_served_with_nats(a: &Node) {
    // The name is the cluster's: its stream, without the message kept on disk.
    let mut w = a.client().await;
    consume(&mut w, "old", "w", 1).await;
    w.expect_silence(Duration::from_millis(500)).await;
    let mut p = a.client().await;
    let ids = send_confirmed(&mut p, "old", 7..8).await;
    let j = job(&mut w, WAIT).await.expect("the stream's job");
    assert_eq!(
        (j["data"].clone(), j["msg"].clone()),
        (json!({"n":7}), json!(ids[0]))
    );
    w.send(json!({"op":"ack","tag":j["tag"]})).await;
}

async fn consumers_on_two_nodes_share_the_work(a: &Node, b: &Node) {
    let (mut wa, mut wb, mut p) = (a.client().await, b.client().await, a.client().await);
    consume(&mut wa, "share", "w", 4).await;
    consume(&mut wb, "share", "w", 4).await;
    let ids = send_confirmed(&mut p, "share", 0..200).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 200, "message ids are the stream's seqs");
    // Each worker holds at most its prefetch; each job is delivered once.
    let mut got: HashMap<u64, usize> = HashMap::new();
    let mut per_node = [0usize; 2];
    while got.len() < 200 {
        for (i, w) in [&mut wa, &mut wb].into_iter().enumerate() {
            while let Some(j) = job(w, Duration::from_millis(20)).await {
                assert_eq!(j["attempt"], 1, "{j}");
                *got.entry(j["data"]["n"].as_u64().unwrap()).or_default() += 1;
                per_node[i] += 1;
                w.send(json!({"op":"ack","tag":j["tag"]})).await;
            }
        }
    }
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert_eq!(got.len(), 200);
    assert!(
        per_node[0] > 0 && per_node[1] > 0,
        "both nodes worked: {per_node:?}"
    );
    for w in [&mut wa, &mut wb] {
        w.expect_silence(Duration::from_millis(300)).await;
    }
    // The depth is the stream's, the same from either node once the acks land.
    until("share drained", || async {
        let mut c = b.client().await;
        let row = stats_row(&mut c, "queues", "share").await;
        row["ready"] == 0 && row["unacked"] == 0 && row["stored"] == 0
    })
    .await;
}

async fn a_disconnected_consumers_jobs_go_to_another_node_at_once(a: &Node, b: &Node) {
    let (mut wa, mut p) = (a.client().await, a.client().await);
    consume(&mut wa, "dc", "w", 3).await;
    send_confirmed(&mut p, "dc", 0..3).await;
    let mut held = HashSet::new();
    for _ in 0..3 {
        let j = job(&mut wa, WAIT)
            .await
            .expect("A's consumer gets the jobs");
        held.insert(j["data"]["n"].as_u64().unwrap());
    }
    let mut wb = b.client().await;
    consume(&mut wb, "dc", "w", 10).await;
    wb.expect_silence(Duration::from_millis(300)).await;
    drop(wa);
    let gone = Instant::now();
    let mut again = HashSet::new();
    for _ in 0..3 {
        let j = job(&mut wb, Duration::from_secs(1))
            .await
            .expect("redelivered within 1 s");
        assert_eq!(j["attempt"], 2, "{j}");
        again.insert(j["data"]["n"].as_u64().unwrap());
        wb.send(json!({"op":"ack","tag":j["tag"]})).await;
    }
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "{:?}",
        gone.elapsed()
    );
    assert_eq!(again, held);
}

async fn a_killed_nodes_jobs_come_back_after_the_ack_wait(b: &Node, mut c: Node) {
    let mut wc = c.client().await;
    declare(&mut wc, "killed", json!({"ack_timeout_ms": 1500})).await;
    consume(&mut wc, "killed", "w", 2).await;
    send_confirmed(&mut c.client().await, "killed", 0..2).await;
    for _ in 0..2 {
        job(&mut wc, WAIT)
            .await
            .expect("C's consumer gets the jobs");
    }
    let mut wb = b.client().await;
    consume(&mut wb, "killed", "w", 10).await;
    c.child.kill().unwrap(); // SIGKILL: no nak from C
    let killed = Instant::now();
    let mut again = HashSet::new();
    for _ in 0..2 {
        let j = job(&mut wb, Duration::from_secs(6))
            .await
            .expect("back after the ack wait");
        assert_eq!(j["attempt"], 2, "{j}");
        again.insert(j["data"]["n"].as_u64().unwrap());
        wb.send(json!({"op":"ack","tag":j["tag"]})).await;
    }
    let after = killed.elapsed();
    // JetStream's ack wait is ack_timeout_ms + 1 s of grace.
    assert!(after >= Duration::from_millis(1000), "{after:?}");
    assert!(after < Duration::from_millis(4500), "{after:?}");
    assert_eq!(again, HashSet::from([0, 1]));
    drop(c);
}

async fn nack_requeues_or_dead_letters(a: &Node, b: &Node) {
    let mut wb = b.client().await;
    declare(&mut wb, "nk", json!({"dead_letter": "nk.dead"})).await;
    consume(&mut wb, "nk", "w", 1).await;
    let mut p = a.client().await;
    send_confirmed(&mut p, "nk", 0..1).await;
    let j = job(&mut wb, WAIT).await.unwrap();
    assert_eq!(
        (j["attempt"].clone(), j["data"].clone()),
        (json!(1), json!({"n":0}))
    );
    let answer = wb.call(json!({"op":"nack","id":2,"tag":j["tag"]})).await;
    assert_eq!(answer, ok(2, json!({})));
    let j = job(&mut wb, WAIT).await.unwrap();
    assert_eq!(j["attempt"], 2);
    let answer = wb
        .call(json!({"op":"nack","id":3,"tag":j["tag"],"requeue":false}))
        .await;
    assert_eq!(answer, ok(3, json!({})));
    wb.expect_silence(Duration::from_millis(300)).await;
    // The dead letter, in its own stream, from another node.
    let mut wa = a.client().await;
    consume(&mut wa, "nk.dead", "d", 1).await;
    let d = job(&mut wa, WAIT).await.expect("a dead letter");
    assert_eq!(d["data"], json!({"n":0}));
    assert_eq!(d["attempt"], 1);
    assert_eq!(
        (
            d["headers"]["x-dead-letter-queue"].clone(),
            d["headers"]["x-dead-letter-reason"].clone()
        ),
        (json!("nk"), json!("rejected"))
    );
    wa.send(json!({"op":"ack","tag":d["tag"]})).await;
    until("nk emptied", || async {
        let mut c = a.client().await;
        stats_row(&mut c, "queues", "nk").await["stored"] == 0
    })
    .await;
}

async fn max_attempts_counts_deliveries_on_every_node(a: &Node, b: &Node) {
    let mut wa = a.client().await;
    declare(
        &mut wa,
        "ma",
        json!({"max_attempts": 3, "dead_letter": "ma.dead"}),
    )
    .await;
    let mut wb = b.client().await;
    consume(&mut wa, "ma", "w", 1).await;
    consume(&mut wb, "ma", "w", 1).await;
    send_confirmed(&mut wa, "ma", 0..1).await;
    let mut attempts = vec![];
    while attempts.len() < 3 {
        for w in [&mut wa, &mut wb] {
            if let Some(j) = job(w, Duration::from_millis(50)).await {
                attempts.push(j["attempt"].as_u64().unwrap());
                w.send(json!({"op":"nack","tag":j["tag"]})).await;
            }
        }
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    let mut d = a.client().await;
    consume(&mut d, "ma.dead", "d", 1).await;
    let dead = job(&mut d, WAIT).await.expect("dead after 3 attempts");
    assert_eq!(dead["headers"]["x-dead-letter-reason"], "max_attempts");
    for w in [&mut wa, &mut wb] {
        w.expect_silence(Duration::from_millis(200)).await;
    }
}

async fn requests_and_confirms_are_answered_across_nodes(a: &Node, b: &Node) {
    let mut wb = b.client().await;
    consume(&mut wb, "rpc", "w", 1).await;
    let mut caller = a.client().await;
    caller
        .send(json!({"op":"request","id":"r1","queue":"rpc","data":{"q":"ping"},"timeout_ms":5000}))
        .await;
    let j = job(&mut wb, WAIT).await.unwrap();
    assert_eq!(
        (j["reply"].clone(), j["data"].clone()),
        (json!(true), json!({"q":"ping"}))
    );
    wb.send(json!({"op":"reply","tag":j["tag"],"data":{"a":"pong"}}))
        .await;
    assert_eq!(
        caller.recv().await,
        json!({"ev":"reply","id":"r1","data":{"a":"pong"}})
    );
    // Nobody replies: the requester's timeout.
    caller
        .send(json!({"op":"request","id":"r2","queue":"rpc","data":2,"timeout_ms":300}))
        .await;
    let j = job(&mut wb, WAIT).await.unwrap();
    let t = caller.recv().await;
    assert_eq!(
        (t["ev"].clone(), t["code"].clone()),
        (json!("error"), json!("timeout")),
        "{t}"
    );
    wb.send(json!({"op":"ack","tag":j["tag"]})).await;
    // `confirm: "done"`: answered once B's consumer acked it.
    caller
        .send(json!({"op":"send","id":5,"queue":"rpc","data":3,"confirm":"done"}))
        .await;
    let j = job(&mut wb, WAIT).await.unwrap();
    caller.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        wb.call(json!({"op":"ack","id":6,"tag":j["tag"]})).await,
        ok(6, json!({}))
    );
    let done = caller.recv().await;
    assert_eq!(done, ok(5, json!({"msg": j["msg"]})));
}

async fn purge_and_delete_from_any_node(a: &Node, b: &Node) {
    let mut pa = a.client().await;
    send_confirmed(&mut pa, "pg", 0..5).await;
    let mut pb = b.client().await;
    // B has never seen `pg`: the stream is the queue.
    assert_eq!(
        pb.call(json!({"op":"purge","id":2,"queue":"pg"})).await,
        ok(2, json!({"purged": 5}))
    );
    let mut wa = a.client().await;
    consume(&mut wa, "pg", "w", 1).await;
    wa.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(
        pb.call(json!({"op":"delete","id":3,"queue":"pg"})).await,
        ok(3, json!({}))
    );
    // A's consumer learns of it from its node, which saw the stream go.
    let f = wa
        .try_recv(Duration::from_secs(4))
        .await
        .expect("cancelled");
    assert_eq!(f, json!({"ev":"cancelled","cid":"w"}));
    let gone = pb.call(json!({"op":"delete","id":4,"queue":"pg"})).await;
    assert_error(&gone, Some(4), "not_found");
}

/// What a worker saw: jobs acked (their `ok` came back), jobs delivered
/// again after that, and jobs nobody sent.
#[derive(Default)]
struct Tally {
    acked: HashSet<u64>,
    duplicated_after_ack: usize,
    unexpected: usize,
    /// Acks answered with an error (their jobs come back).
    refused_acks: usize,
}

const ACK_IDS: u64 = 1_000_000;

impl Tally {
    /// Reads what the worker has for `wait`: acks each job, counts each answer.
    async fn read(&mut self, w: &mut Raw, sent: u64, wait: Duration) {
        while let Some(f) = w.try_recv(wait).await {
            if f["ev"] == "job" {
                let n = f["data"]["n"].as_u64().unwrap_or(u64::MAX);
                if n >= sent {
                    self.unexpected += 1;
                }
                if self.acked.contains(&n) {
                    self.duplicated_after_ack += 1;
                }
                w.send(json!({"op":"ack","id":ACK_IDS + n,"tag":f["tag"]}))
                    .await;
            } else if let Some(n) = f["id"].as_u64().and_then(|id| id.checked_sub(ACK_IDS)) {
                match f["ev"].as_str() {
                    Some("ok") => {
                        self.acked.insert(n);
                    }
                    _ => self.refused_acks += 1,
                }
            }
        }
    }
}

async fn no_confirmed_send_is_lost_when_a_nats_server_dies(
    a: &Node,
    b: &Node,
    cluster: &mut NatsCluster,
) {
    let mut wb = b.client().await;
    // An ack refused while the server's death is handled (`unavailable`) is not
    // pretended: its job comes back after the ack wait (this + 1 s), within
    // the wait below.
    declare(&mut wb, "dur", json!({"ack_timeout_ms": 2000})).await;
    consume(&mut wb, "dur", "w", 16).await;
    let mut p = a.client().await;
    let mut confirmed: HashSet<u64> = HashSet::new();
    let mut answered: HashSet<u64> = HashSet::new();
    let mut tally = Tally::default();
    let sent = 600u64;
    let read_answers =
        |p: &mut Raw, f: Value, confirmed: &mut HashSet<u64>, answered: &mut HashSet<u64>| {
            let _ = p;
            if let Some(id) = f["id"].as_u64() {
                answered.insert(id);
                if f["ev"] == "ok" {
                    confirmed.insert(id);
                }
            }
        };
    for i in 0..sent {
        if i == 200 {
            cluster.kill(0); // SIGKILL, mid-stream
        }
        p.send(json!({"op":"send","id":i,"queue":"dur","data":{"n":i}}))
            .await;
        // Paced (about 9 s after the kill), so that sends go on across the
        // server's death, the node's reconnection and JetStream's election of
        // new leaders (a few seconds, during which sends are refused).
        let pace = if i < 200 { 2 } else { 20 };
        while let Some(f) = p.try_recv(Duration::from_millis(pace)).await {
            read_answers(&mut p, f, &mut confirmed, &mut answered);
        }
        tally.read(&mut wb, sent, Duration::from_millis(1)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.len() < sent as usize && Instant::now() < deadline {
        if let Some(f) = p.try_recv(Duration::from_millis(100)).await {
            read_answers(&mut p, f, &mut confirmed, &mut answered);
        }
        tally.read(&mut wb, sent, Duration::from_millis(1)).await;
    }
    assert_eq!(answered.len(), sent as usize, "every send answered");
    while !confirmed.is_subset(&tally.acked) && Instant::now() < deadline {
        tally.read(&mut wb, sent, Duration::from_millis(200)).await;
    }
    // Anything delivered again after its ack would show now.
    tally.read(&mut wb, sent, Duration::from_millis(500)).await;
    let lost = confirmed.difference(&tally.acked).count();
    eprintln!(
        "{} confirmed, {} acks refused across the server's death",
        confirmed.len(),
        tally.refused_acks
    );
    assert!(
        confirmed.iter().filter(|n| **n >= 200).count() > 50,
        "sends confirmed after the death: {}",
        confirmed.len()
    );
    assert_eq!(
        (lost, tally.duplicated_after_ack, tally.unexpected),
        (0, 0, 0),
        "lost, duplicated after ack, unexpected ({} confirmed, {} acks refused)",
        confirmed.len(),
        tally.refused_acks
    );
    cluster.restart(0);
}

async fn without_nats_sends_and_acks_are_refused(a: &Node, b: &Node, cluster: &mut NatsCluster) {
    let mut wb = b.client().await;
    consume(&mut wb, "lost", "w", 1).await;
    let mut p = a.client().await;
    send_confirmed(&mut p, "lost", 0..1).await;
    let j = job(&mut wb, WAIT).await.expect("a job");
    cluster.kill_all();
    for node in [a, b] {
        wait_until("the node sees NATS gone", || {
            http_get(node.port, "/healthz").is_some_and(|(c, _)| c == 503)
        });
    }
    let refused = p
        .call(json!({"op":"send","id":1,"queue":"lost","data":1}))
        .await;
    assert_error(&refused, Some(1), "unavailable");
    // The consumer keeps its job; its ack is not pretended.
    wb.send(json!({"op":"ack","id":2,"tag":j["tag"]})).await;
    let answer = wb
        .try_recv(Duration::from_secs(15))
        .await
        .expect("an answer to the ack");
    assert_error(&answer, Some(2), "unavailable");
}
