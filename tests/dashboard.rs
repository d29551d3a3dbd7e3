//! The real binary's dashboard, driven through tmux as a person would: traffic from
//! the client library, keys typed with `send-keys`, the screen read with
//! `capture-pane`, and every effect checked through `stats`.
//!
//! tmux is required (`.ci/run` installs it when missing): crossterm asks the terminal
//! for the cursor position at start, and only a real terminal emulator answers.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_client::{Client, Snapshot};

mod common;

use common::BIN;

/// The longest any step may take: generous, since CI runs the tests side by
/// side on two cores; a step that passes returns as soon as it does.
const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of our own running `switchyard` in a 120x32 pane.
struct Pane {
    socket: String,
}

impl Pane {
    /// Runs `cmd` (a shell command line) in a pane of a tmux server named after
    /// this process and `name`.
    fn start(name: &str, cmd: &str) -> Pane {
        let socket = format!("switchyard-test-{name}-{}", std::process::id());
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
                cmd,
            ])
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tmux ({e}): the dashboard tests need it (Debian's `tmux`; \
                     .ci/run installs it with apt-get)"
                )
            });
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
        let deadline = Instant::now() + WAIT;
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

    /// The process id of the program in the pane.
    fn pid(&self) -> u32 {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "list-panes",
                "-t",
                "sy",
                "-F",
                "#{pane_pid}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
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
    let deadline = Instant::now() + WAIT;
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

/// Outbound buffer of the brokers under test: small, so a client that stops
/// reading is marked slow after a few publishes.
const MAX_PENDING: &str = "262144";
/// And a client that reads nothing stays (slow) until the operator kicks it,
/// rather than being kicked by the broker after the default 2 s.
const SLOW_TIMEOUT: &str = "3600";

/// The broker's URL, read from the dashboard's header.
fn url_in(pane: &Pane) -> String {
    pane.wait_for("/ws")
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("the header shows the broker URL")
        .to_string()
}

/// A client that subscribes to `slow.x` and then reads nothing, and publishes
/// until the broker marks it slow (over half of MAX_PENDING waits for it) but
/// not so much that it is kicked.
async fn make_slow_client(url: &str, ops: &Client) -> (common::Raw, String) {
    let mut stuck = common::Raw::connect(url).await;
    let id = stuck.id();
    stuck
        .call(json!({"op":"sub","id":1,"topic":"slow.x","sid":"s"}))
        .await;
    // Loopback's socket buffers take several MB before the broker holds any.
    let block = "x".repeat(16 * 1024);
    for _ in 0..4000 {
        let snap = ops.stats().await.unwrap();
        if snap.clients.iter().any(|c| c.id == id && c.slow) {
            return (stuck, id);
        }
        ops.publish("slow.x", json!(block)).await.unwrap();
    }
    panic!("the client that reads nothing was never marked slow");
}

/// What the operator does, the same against either console: purge after a
/// confirm that states the count, peek, requeue, kick, kick slow, publish with
/// the form; each effect checked through `stats`. `actor` is how the broker's
/// event log names the console.
async fn operate(pane: &Pane, url: &str, actor: impl Fn(&Snapshot) -> String) {
    // Traffic: five jobs, a worker holding one more, a subscriber, a named
    // client to kick, one that stopped reading.
    let ops = Client::connect_named(url, "ops").await.unwrap();
    let worker = Client::connect_named(url, "worker").await.unwrap();
    let mut held = worker.consume("work", 1).await.unwrap();
    ops.send("work", json!({"held": true})).await.unwrap();
    let first = tokio::time::timeout(WAIT, held.next())
        .await
        .expect("the worker gets its job")
        .unwrap();
    for n in 1..=5 {
        ops.send("jobs", json!({"n": n})).await.unwrap();
    }
    for n in 1..=2 {
        ops.send("spare", json!({"n": n})).await.unwrap();
    }
    let listener = Client::connect_named(url, "listener").await.unwrap();
    let mut orders = listener.subscribe("orders.eu").await.unwrap();
    let victim = Client::connect_named(url, "victim").await.unwrap();
    let (_stuck, stuck_id) = make_slow_client(url, &ops).await;
    let actor = actor(&ops.stats().await.unwrap());

    // Queues view: peek (not consumed), then purge after a confirm with the count.
    pane.keys(&["3", "/"]);
    pane.literal("jobs");
    pane.keys(&["Enter"]);
    pane.wait_for("▶ jobs");
    // Its page first (the consumers, the charts), then the peek from there.
    pane.keys(&["Enter"]);
    pane.wait_for("Queue jobs");
    pane.wait_for("ready 5");
    pane.keys(&["Enter"]);
    pane.wait_for("Peek jobs: messages 1–5 of 5 ready");
    pane.wait_for(r#""n": 5"#);
    pane.keys(&["Escape", "Escape", "x"]);
    pane.wait_for("Purge 5 ready messages from jobs? y/n");
    pane.keys(&["y"]);
    pane.wait_for("Purged 5 ready messages from jobs");
    eventually(&ops, "the purge", |s| {
        s.queues
            .iter()
            .any(|q| q.name == "jobs" && q.ready == 0 && q.msgs_in == 5)
    })
    .await;

    // The `:` line: a purge typed, Tab completing the queue's name, asked about
    // with the count as `x` asks.
    pane.keys(&[":"]);
    pane.literal("purge spa");
    pane.keys(&["Tab"]);
    pane.wait_for(" : purge spare");
    pane.keys(&["Enter"]);
    pane.wait_for("Purge 2 ready messages from spare? y/n");
    pane.keys(&["y"]);
    eventually(&ops, "the typed purge", |s| {
        s.queues.iter().any(|q| q.name == "spare" && q.ready == 0)
    })
    .await;

    // Dead letters back to work: M in the peek of a dead-letter queue (from its
    // page), after the question, moves them to the queue they died in; `stats`
    // shows them there and none left behind.
    let mut letters = common::Raw::connect(url).await;
    for n in 1..=2 {
        let sent = letters
            .call(
                json!({"op":"send","id":n,"queue":"mail.dead","data":{"n":n},
                "headers":{"x-dead-letter-queue":"mail"},"confirm":"stored"}),
            )
            .await;
        assert_eq!(sent["ev"], "ok", "{sent}");
    }
    // Tab completes the name once the console has seen the queue (a remote
    // console's snapshot comes up to a second after the send).
    pane.keys(&[":"]);
    pane.literal("q mail.d");
    pane.wait_for("Tab mail.dead");
    pane.keys(&["Tab"]);
    pane.wait_for(" : q mail.dead");
    pane.keys(&["Enter"]);
    pane.wait_for("▶ mail.dead");
    pane.keys(&["Enter"]);
    pane.wait_for("Queue mail.dead");
    pane.keys(&["Enter"]);
    pane.wait_for("Peek mail.dead: messages 1–2 of 2 ready");
    pane.keys(&["M"]);
    pane.wait_for("Move dead letters back");
    pane.keys(&["y"]);
    pane.wait_for("Moved 2 messages from mail.dead back to mail");
    eventually(&ops, "the dead letters back in mail", |s| {
        let ready = |name: &str| s.queues.iter().find(|q| q.name == name).map(|q| q.ready);
        ready("mail") == Some(2) && ready("mail.dead") == Some(0)
    })
    .await;
    // The peek, then the page; `:q` cleared the filter that hid mail.dead, and
    // the restart below purges what that filter (`jobs`) shows: back to it.
    pane.keys(&["Escape", "Escape", "/"]);
    pane.literal("jobs");
    pane.keys(&["Enter"]);
    pane.wait_for("Queues 1 of 5 · filter “jobs”");

    // In-flight view: requeue the worker's job; it comes back, one attempt on.
    pane.keys(&["5"]);
    pane.wait_for("▶ work");
    pane.keys(&["r"]);
    let again = tokio::time::timeout(WAIT, held.next())
        .await
        .expect("the requeued job comes back")
        .unwrap();
    assert_eq!((again.msg.as_str(), again.attempt), (first.msg.as_str(), 2));

    // Clients view: kick the victim after a confirm, then every slow client.
    pane.keys(&["4", "/"]);
    pane.literal("victim");
    pane.keys(&["Enter"]);
    pane.wait_for("▶ c");
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
    pane.keys(&["Escape", "K"]);
    pane.wait_for("Kick 1 slow client");
    pane.keys(&["y"]);
    eventually(&ops, "the slow kick", |s| {
        s.clients.iter().all(|c| c.id != stuck_id)
    })
    .await;
    // An operator's kick of a slow client counts as a slow client kicked.
    assert_eq!(ops.stats().await.unwrap().server.slow_consumers, 1);

    // Topics view: publish to the selected topic with the form.
    pane.keys(&["2", "/"]);
    pane.literal("orders");
    pane.keys(&["Enter"]);
    pane.wait_for("▶ orders.eu");
    pane.keys(&["p"]);
    pane.literal(r#"{"from":"dashboard"}"#);
    pane.keys(&["Enter"]);
    let m = tokio::time::timeout(WAIT, orders.next())
        .await
        .expect("the published message arrives")
        .unwrap();
    assert_eq!(
        (m.topic.as_str(), m.data),
        ("orders.eu", json!({"from": "dashboard"}))
    );
    pane.wait_for("1 subscriber");

    // The event log records who did what.
    let events = ops.stats().await.unwrap().events;
    let said = |text: String| {
        assert!(
            events.iter().any(|e| e.text.starts_with(&text)),
            "no event {text:?} in {events:#?}"
        );
    };
    said(format!("{actor} purged 5 ready messages from jobs"));
    said(format!("{actor} requeued message {} of work", first.msg));
    said(format!("{actor} kicked {victim_id} (victim)"));
    said(format!("{actor} kicked {stuck_id}"));
    // A remote console publishes as any client does (`pub`), which the event log
    // does not list; the broker's own console logs its publishes.
    if actor == "dashboard" {
        said(format!("{actor} published seq 1 to orders.eu"));
    }
    pane.keys(&["Escape", "1"]);
}

/// A broker process killed when the test ends, passed or not: a failed test
/// must not leave brokers running.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Ready column of the selected queue row, as the screen shows it.
fn ready_shown(screen: &str, queue: &str) -> Option<u64> {
    let row = screen
        .lines()
        .find(|l| l.contains(&format!("▶ {queue} ")))?;
    let mut words = row.split_whitespace().skip_while(|w| *w != queue);
    words.nth(1)?.parse().ok()
}

/// The embedded console: the broker in the dashboard's own process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operate_the_broker_from_the_dashboard() {
    let data = std::env::temp_dir().join(format!("switchyard-dash-{}", std::process::id()));
    let pane = Pane::start(
        "embedded",
        &format!(
            "{BIN} --listen 127.0.0.1:0 --max-pending {MAX_PENDING} --slow-timeout {SLOW_TIMEOUT} --data-dir {}",
            data.display()
        ),
    );
    let url = url_in(&pane);
    operate(&pane, &url, |_| "dashboard".to_string()).await;

    // q leaves, restores the terminal and stops the broker: with clients still
    // connected, only after asking.
    pane.keys(&["q"]);
    pane.wait_for("Stop the broker?");
    pane.keys(&["y"]);
    let deadline = Instant::now() + WAIT;
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

/// `switchyard top`: the same console for a broker running as a service, over
/// the wire. It does everything the embedded one does, survives the broker's
/// restart as a blip, and quits without asking (it stops nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operate_a_running_broker_with_top_through_a_restart() {
    let data = common::temp_data_dir();
    let flags = ["--max-pending", MAX_PENDING, "--slow-timeout", SLOW_TIMEOUT];
    let (broker, url) = common::serve_process_with("127.0.0.1:0", &data, &flags);
    let mut broker = Stopped(broker);
    let pane = Pane::start("top", &format!("{BIN} top --url {url}"));
    pane.wait_for("1 connections");
    operate(&pane, &url, |snap| {
        let top = snap
            .clients
            .iter()
            .find(|c| c.name.as_deref() == Some("switchyard top"))
            .expect("top is a client of the broker");
        format!("{} (switchyard top)", top.id)
    })
    .await;

    // The broker restarts on the same port: the console says it is down and
    // retrying, keeps the last data, and is live again once the broker is back.
    let listen = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    common::stop(&mut broker.0);
    pane.wait_for("disconnected, retrying in");
    assert!(pane.alive(), "top never exits on its own");
    assert!(
        pane.screen().contains("Totals"),
        "the last data stays on screen"
    );
    let (again, again_url) = common::serve_process_with(&listen, &data, &flags);
    broker = Stopped(again);
    assert_eq!(again_url, url);
    pane.wait_for("up 00:00:0");
    let ops = Client::connect_named(&url, "ops").await.unwrap();
    ops.send("jobs", json!({"after": "restart"})).await.unwrap();
    // The queues table keeps its filter (`jobs`) across the blip. The purge asks
    // about what the console has seen: wait for it to see the new message.
    pane.keys(&["3"]);
    let deadline = Instant::now() + WAIT;
    while ready_shown(&pane.screen(), "jobs") != Some(1) {
        assert!(Instant::now() < deadline, "{}", pane.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    pane.keys(&["x"]);
    pane.wait_for("Purge 1 ready message from jobs? y/n");
    pane.keys(&["y"]);
    eventually(&ops, "a purge after the restart", |s| {
        s.queues.iter().any(|q| q.name == "jobs" && q.ready == 0)
    })
    .await;

    // q leaves at once: quitting top stops nothing.
    pane.keys(&["Escape", "q"]);
    let deadline = Instant::now() + WAIT;
    while pane.alive() {
        assert!(Instant::now() < deadline, "top did not exit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    ops.ping()
        .await
        .expect("the broker runs on after top quits");
    common::stop(&mut broker.0);
    let _ = std::fs::remove_dir_all(&data);
}

/// A closed terminal (the tmux server killed, as a dropped SSH session would
/// close it) stops the embedded broker gracefully and ends the process: it
/// used to stay, its input thread spinning on the dead terminal, holding a core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_terminal_ends_the_embedded_broker() {
    let data = common::temp_data_dir();
    let pane = Pane::start(
        "hangup",
        &format!("{BIN} --listen 127.0.0.1:0 --data-dir {}", data.display()),
    );
    let url = url_in(&pane);
    let pid = pane.pid();
    let _client = Client::connect(&url).await.unwrap();
    drop(pane);
    let deadline = Instant::now() + WAIT;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the dashboard's process {pid} outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Client::connect(&url).await.is_err(), "its broker stopped");
    let log = std::fs::read_to_string(data.join("switchyard.log")).unwrap();
    assert!(log.contains("shutting down"), "a graceful stop: {log}");
    let _ = std::fs::remove_dir_all(&data);
}
