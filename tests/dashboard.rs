//! The real binary's dashboard, driven through tmux as a person would: traffic from
//! the client library, keys typed with `send-keys`, the screen read with
//! `capture-pane`, and every effect checked through `stats`.
//!
//! tmux is required (`.ci/run` installs it when missing): crossterm asks the terminal
//! for the cursor position at start, and only a real terminal emulator answers.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_client::Client;

mod common;

use common::BIN;

/// A tmux server of our own running `switchyard` in a 120x32 pane.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(data_dir: &std::path::Path) -> Pane {
        let socket = format!("switchyard-test-{}", std::process::id());
        let cmd = format!(
            "{BIN} --listen 127.0.0.1:0 --data-dir {}",
            data_dir.display()
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "sy",
                "-x",
                "120",
                "-y",
                "32",
                &cmd,
            ])
            .status()
            .expect("tmux must be installed (see .ci/run)");
        assert!(status.success());
        Pane { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "sy"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Types keys one at a time (an Esc followed at once by a key would read as Alt).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "sy", k])
                .status()
                .unwrap();
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn literal(&self, text: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "sy", "-l", text])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "sy"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

async fn eventually(
    client: &Client,
    what: &str,
    cond: impl Fn(&switchyard_broker::Snapshot) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = client.stats().await.unwrap();
        if cond(&snap) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {snap:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operate_the_broker_from_the_dashboard() {
    let data = std::env::temp_dir().join(format!("switchyard-dash-{}", std::process::id()));
    let pane = Pane::start(&data);
    let header = pane.wait_for("/ws");
    let url = header
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("the header shows the broker URL")
        .to_string();

    // Traffic: five jobs, a subscriber, a named client to kick.
    let ops = Client::connect_named(&url, "ops").await.unwrap();
    for n in 1..=5 {
        ops.send("jobs", json!({"n": n})).await.unwrap();
    }
    let listener = Client::connect_named(&url, "listener").await.unwrap();
    let mut orders = listener.subscribe("orders.eu").await.unwrap();
    let victim = Client::connect_named(&url, "victim").await.unwrap();

    // Queues view: purge after a confirm that states the count.
    pane.keys(&["3"]);
    pane.wait_for("jobs");
    pane.keys(&["x"]);
    pane.wait_for("Purge 5 ready messages from jobs? y/n");
    pane.keys(&["y"]);
    eventually(&ops, "the purge", |s| {
        s.queues.iter().any(|q| q.name == "jobs" && q.ready == 0)
    })
    .await;
    assert_eq!(ops.stats().await.unwrap().queues[0].msgs_in, 5);

    // Clients view: filter to the victim, kick it after a confirm.
    pane.keys(&["4", "/"]);
    pane.literal("victim");
    pane.keys(&["Enter"]);
    pane.wait_for("victim");
    pane.keys(&["k"]);
    pane.wait_for("y/n");
    pane.keys(&["y"]);
    let victim_id = victim.id().to_string();
    eventually(&ops, "the kick", |s| {
        s.clients.iter().all(|c| c.id != victim_id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        victim
            .closed_reason()
            .unwrap_or_default()
            .starts_with("kicked"),
        "{:?}",
        victim.closed_reason()
    );

    // Topics view: publish to the selected topic with the form.
    pane.keys(&["Escape", "2"]);
    pane.wait_for("orders.eu");
    pane.keys(&["p"]);
    pane.literal(r#"{"from":"dashboard"}"#);
    pane.keys(&["Enter"]);
    let m = tokio::time::timeout(Duration::from_secs(10), orders.next())
        .await
        .expect("the published message arrives")
        .unwrap();
    assert_eq!(
        (m.topic.as_str(), m.data),
        ("orders.eu", json!({"from": "dashboard"}))
    );

    // The event log records who did what.
    let events = ops.stats().await.unwrap().events;
    assert!(
        events
            .iter()
            .any(|e| e.text == "dashboard purged 5 ready messages from jobs"),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e
        .text
        .starts_with(&format!("dashboard kicked {victim_id} (victim)"))));

    // q leaves, restores the terminal and stops the broker: with clients still
    // connected, only after asking.
    pane.keys(&["1", "q"]);
    pane.wait_for("Stop the broker?");
    pane.keys(&["y"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pane.alive() {
        assert!(Instant::now() < deadline, "the dashboard did not exit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        Client::connect(&url).await.is_err(),
        "the broker stopped with the dashboard"
    );
    let log = std::fs::read_to_string(data.join("switchyard.log")).unwrap();
    assert!(log.contains("shutting down"), "logs go to the data dir");
    let _ = std::fs::remove_dir_all(&data);
}
