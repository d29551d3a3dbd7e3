//! File descriptors: a broker holding more durable queues and retained topics than
//! its open-files limit keeps serving, and comes back with all of them after a
//! SIGKILL, because its log files are closed when idle and reopened on use.

mod common;

use std::process::Child;

use common::*;
use serde_json::json;
use switchyard_client::Client;

/// The open-files limit (soft and hard) the broker runs under.
const NOFILE: u64 = 256;
const QUEUES: usize = 400;
const TOPICS: usize = 200;

/// `switchyard serve` under a soft and hard open-files limit of `nofile`, so it
/// cannot raise it; returns the process and its URL.
fn serve_limited(dir: &std::path::Path, nofile: u64, flags: &[&str]) -> (Child, String) {
    let mut cmd = serve_command("127.0.0.1:0", dir, flags);
    limit_open_files(&mut cmd, nofile, Some(nofile));
    start_serve(cmd)
}

fn queue(i: usize) -> String {
    format!("jobs.{i}")
}

fn topic(i: usize) -> String {
    format!("ledger.{i}")
}

/// Descriptors the process holds now.
fn open_descriptors(child: &Child) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count()
}

/// Every queue holds its second job (the first was acked), every topic its message.
async fn check_every_stream(c: &Client) {
    for i in 0..QUEUES {
        let peeked = c.peek(&queue(i), 10).await.unwrap();
        let data: Vec<_> = peeked.iter().map(|m| m.data.clone()).collect();
        assert_eq!(data, vec![json!({"q": i, "n": 2})], "queue {}", queue(i));
    }
    for i in 0..TOPICS {
        let mut sub = c
            .subscribe_with(&topic(i), json!({"from": "first"}))
            .await
            .unwrap();
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.seq, m.data), (1, json!({"t": i})), "topic {}", topic(i));
        c.unsubscribe(&sub.sid).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_streams_than_descriptors_keep_working_and_come_back_after_sigkill() {
    let dir = temp_data_dir();
    let (mut child, url) = serve_limited(&dir, NOFILE, &[]);
    let c = Client::connect(&url).await.unwrap();
    for i in 0..QUEUES {
        for n in 1..=2 {
            c.send(&queue(i), json!({"q": i, "n": n}))
                .await
                .unwrap_or_else(|e| panic!("send to {}: {e}", queue(i)));
        }
        // Acking the first job gives the queue its acks file too.
        let mut consumer = c.consume(&queue(i), 1).await.unwrap();
        let job = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.data, json!({"q": i, "n": 1}));
        c.ack(job.tag).await.unwrap();
        c.cancel(&consumer.cid).await.unwrap();
    }
    for i in 0..TOPICS {
        c.call(json!({"op": "declare", "topic": topic(i), "retain": {}}))
            .await
            .unwrap_or_else(|e| panic!("declare {}: {e}", topic(i)));
        c.publish(&topic(i), json!({"t": i})).await.unwrap();
    }
    check_every_stream(&c).await;
    assert!(
        open_descriptors(&child) < NOFILE as usize / 2 + 32,
        "{} descriptors open",
        open_descriptors(&child)
    );
    // New clients still connect and work.
    for k in 0..20 {
        let fresh = tokio::time::timeout(WAIT, Client::connect(&url))
            .await
            .unwrap_or_else(|_| panic!("client {k} hangs"))
            .unwrap();
        fresh.send("fresh", json!({"k": k})).await.unwrap();
        fresh.close().await;
    }
    c.close().await;

    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, url) = serve_limited(&dir, NOFILE, &[]);
    let c = Client::connect(&url).await.unwrap();
    check_every_stream(&c).await;
    assert_eq!(c.peek("fresh", 100).await.unwrap().len(), 20);
    c.close().await;
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
