//! `switchyard bench --sub-url`: publishers on one broker, subscribers and
//! consumers on another. Through two nodes of a real NATS cluster every
//! delivery is counted; between two brokers that share nothing, what never
//! arrives shows (a missing count, or the warm-up's error) and the run ends.
//! No timed assertion: only what was counted.

use std::process::{Child, Output};

mod common;

use common::nats::{NatsCluster, Node};
use common::{serve_process, temp_data_dir, BIN};

/// Runs `switchyard bench` with `args`, off the runtime.
async fn bench(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("bench")
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A plain `switchyard serve` on its own data directory, killed when dropped.
struct Plain(Child, String);

impl Plain {
    fn start() -> Plain {
        let (child, url) = serve_process("127.0.0.1:0", &temp_data_dir());
        Plain(child, url)
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn through_two_nodes_every_delivery_is_counted() {
    let cluster = NatsCluster::start();
    let a = Node::start(&cluster, "a");
    let b = Node::start(&cluster, "b");
    let sub_urls = format!("{},{}", b.url, a.url);
    for subs in [b.url.as_str(), sub_urls.as_str()] {
        let out = bench(&[
            "--url",
            &a.url,
            "--sub-url",
            subs,
            "--seconds",
            "1",
            "--scenarios",
            "pubsub:2,dqueue:2",
        ])
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout.contains(&format!(
                "subscribers and consumers at {}",
                subs.replace(',', ", ")
            )),
            "{stdout}"
        );
        assert!(stdout.contains("pubsub 1→2"), "{stdout}");
        assert!(stdout.contains("dqueue 1→2"), "{stdout}");
        // A note under a row says something was missing, duplicated or refused.
        for note in ["missing", "more than", "refused"] {
            assert!(!stdout.contains(note), "{note}: {stdout}");
        }
    }
}

#[tokio::test]
async fn between_brokers_that_share_nothing_the_loss_shows_and_the_run_ends() {
    let x = Plain::start();
    let y = Plain::start();

    // Jobs sent to x's queue never reach y's consumer: all of them are missing.
    let out = bench(&[
        "--url",
        &x.1,
        "--sub-url",
        &y.1,
        "--seconds",
        "1",
        "--scenarios",
        "dqueue:1",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("dqueue 1→1"), "{stdout}");
    assert!(
        stdout.contains("expected deliveries (100.000%): nothing more came for 2 s"),
        "{stdout}"
    );

    // A subscriber on y never hears x's publisher: the warm-up gives up.
    let out = bench(&[
        "--url",
        &x.1,
        "--sub-url",
        &y.1,
        "--seconds",
        "1",
        "--scenarios",
        "pubsub:1",
    ])
    .await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0 of 1 subscribers got a message from the publisher's node within 10 s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sub_url_without_url_is_refused() {
    let out = bench(&[
        "--sub-url",
        "ws://127.0.0.1:1/ws",
        "--scenarios",
        "pubsub:1",
    ])
    .await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--sub-url needs --url"),
        "{out:?}"
    );
}
