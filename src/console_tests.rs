//! One key-driven scenario against both of the dashboard's sources: the broker in
//! this process ([`Embedded`]) and a broker over the wire ([`Remote`], as
//! `switchyard top` runs it). Keys go in through `App::handle_key`, ticks as the
//! event loop makes them, and every effect is read back from the broker itself.
//! No terminal (the tmux tests in tests/dashboard.rs drive the real binary).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use switchyard_broker::auth::{digest, Grants, Security, UserRules};
use switchyard_broker::{Broker, Config, Server, Snapshot};
use switchyard_client::{Client, ConnectOptions};
use switchyard_ui::app::{Overlay, PageData};
use switchyard_ui::delivery::Verdict;
use switchyard_ui::{App, Link, Source, View};

use crate::dashboard::Embedded;
use crate::remote::Remote;

/// The longest any step may take: generous, since CI runs these tests side by
/// side on two cores; a step that passes returns as soon as it does.
const WAIT: Duration = Duration::from_secs(30);

/// A broker listening on a port of its own, with a runtime to drive clients.
struct Live {
    runtime: tokio::runtime::Runtime,
    broker: Broker,
    url: String,
    data_dir: std::path::PathBuf,
}

impl Live {
    fn start(name: &str) -> Live {
        Live::with(name, Security::default())
    }

    fn with(name: &str, security: Security) -> Live {
        Live::configured(name, security, None)
    }

    /// A node of a cluster on the NATS server at `nats`.
    fn node(name: &str, nats: &str) -> Live {
        let cluster = switchyard_broker::cluster::ClusterConfig {
            urls: vec![nats.to_string()],
            creds: None,
            node: name.to_string(),
        };
        Live::configured(name, Security::default(), Some(cluster))
    }

    fn configured(
        name: &str,
        security: Security,
        cluster: Option<switchyard_broker::cluster::ClusterConfig>,
    ) -> Live {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data_dir =
            std::env::temp_dir().join(format!("switchyard-console-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            max_connections_per_ip: Some(0),
            security,
            cluster,
            ..Config::default()
        };
        let server = runtime.block_on(Server::bind(config)).unwrap();
        let (url, broker) = (server.url(), server.broker());
        runtime.spawn(server.run());
        Live {
            runtime,
            broker,
            url,
            data_dir,
        }
    }

    fn client(&self, name: &str) -> Client {
        let options = ConnectOptions::new().name(name);
        self.runtime
            .block_on(Client::connect_with(&self.url, &options))
            .unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.broker.shutdown();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The app and its source, ticked as the event loop ticks them.
struct Console<S: Source> {
    app: App,
    source: S,
}

impl<S: Source> Console<S> {
    fn new(source: S) -> Console<S> {
        Console {
            app: App::new("ws://test"),
            source,
        }
    }

    fn tick(&mut self) {
        self.app.tick(&mut self.source, Instant::now());
    }

    fn key(&mut self, code: KeyCode) {
        let key = KeyEvent::new(code, KeyModifiers::NONE);
        self.app.handle_key(key, &mut self.source);
    }

    fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Ticks (every 50 ms, for at most WAIT) until `done` holds of the app.
    fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.tick();
            if done(&self.app) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: status {:?}, overlay {:?}",
                self.app.status(),
                self.app.overlay().map(|_| "open")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status(&self) -> String {
        self.app
            .status()
            .map(|s| s.text.clone())
            .unwrap_or_default()
    }

    /// Shows `view` with its table filtered to `filter`.
    fn show_filtered(&mut self, view: char, filter: &str) {
        self.key(KeyCode::Char(view));
        self.key(KeyCode::Char('/'));
        self.type_text(filter);
        self.key(KeyCode::Enter);
    }
}

/// Waits (up to WAIT) until the broker's snapshot satisfies `done`.
fn broker_until(broker: &Broker, what: &str, done: impl Fn(&Snapshot) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(&broker.snapshot()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The scenario: purge after a confirm with the count, peek, requeue, kick,
/// publish with the form, and a tail that sees a message with its verdicts.
fn operate<S: Source>(live: &Live, console: &mut Console<S>) {
    let ops = live.client("ops");
    let worker = live.client("worker");
    let victim = live.client("victim");
    let listener = live.client("listener");
    let rt = &live.runtime;
    let mut held = rt.block_on(worker.consume("work", 1)).unwrap();
    rt.block_on(ops.send("work", json!({"held": true})))
        .unwrap();
    let first = rt.block_on(held.next()).unwrap();
    for n in 1..=3 {
        rt.block_on(ops.send("jobs", json!({"n": n}))).unwrap();
    }
    let _orders = rt
        .block_on(listener.subscribe_with("orders.eu", json!({"filter": "data.n > 1"})))
        .unwrap();
    rt.block_on(ops.publish("orders.eu", json!({"n": 0})))
        .unwrap();
    console.until("the broker's state", |app| {
        let s = app.snapshot();
        s.queues.iter().any(|q| q.name == "jobs" && q.ready == 3)
            && s.topics.iter().any(|t| t.name == "orders.eu")
    });

    // Peek, then purge: the question states the count, the answer says it.
    console.show_filtered('3', "jobs");
    // Enter: the queue's page, described by the broker (through the source).
    console.key(KeyCode::Enter);
    console.until("the queue's page", |app| {
        matches!(app.shown_page().map(|p| &p.data), Some(PageData::Queue(q))
            if q.stats.name == "jobs" && q.stats.ready == 3 && q.ack_timeout_ms == 30_000)
    });
    console.key(KeyCode::Enter);
    console.until(
        "the peek",
        |app| matches!(app.overlay(), Some(Overlay::Peek(p)) if p.messages.len() == 3),
    );
    // Esc: back to the page, then back to the view.
    console.key(KeyCode::Esc);
    assert!(console.app.shown_page().is_some());
    console.key(KeyCode::Esc);
    assert!(console.app.shown_page().is_none());
    console.key(KeyCode::Char('x'));
    match console.app.overlay() {
        Some(Overlay::Confirm(c)) => {
            assert_eq!(c.question(), "Purge 3 ready messages from jobs? y/n");
        }
        _ => panic!("x asks first"),
    }
    console.key(KeyCode::Char('y'));
    console.until("the purge's answer", |app| {
        app.status()
            .is_some_and(|s| s.text == "Purged 3 ready messages from jobs")
    });
    let jobs = |s: &Snapshot| s.queues.iter().find(|q| q.name == "jobs").cloned();
    assert_eq!(jobs(&live.broker.snapshot()).map(|q| q.ready), Some(0));

    // Requeue the worker's job from the in-flight view: it comes back, one attempt on.
    console.key(KeyCode::Char('5'));
    console.until("the in-flight job", |app| {
        app.view() == View::InFlight && app.snapshot().inflight.len() == 1
    });
    console.key(KeyCode::Char('r'));
    let again = rt
        .block_on(async { tokio::time::timeout(WAIT, held.next()).await })
        .expect("the requeued job comes back")
        .unwrap();
    assert_eq!((again.msg.as_str(), again.attempt), (first.msg.as_str(), 2));

    // Kick the victim after a confirm.
    console.show_filtered('4', "victim");
    console.until("the victim listed", |app| {
        app.table(View::Clients).selected_row().is_some()
    });
    console.key(KeyCode::Char('k'));
    console.key(KeyCode::Char('y'));
    let victim_id = victim.id().to_string();
    broker_until(&live.broker, "the kick", |s| {
        s.clients.iter().all(|c| c.id != victim_id)
    });

    // Publish with the form; the toast counts the subscribers.
    console.key(KeyCode::Esc);
    console.show_filtered('2', "orders");
    console.until("the topic listed", |app| {
        app.table(View::Topics).selected_row().is_some()
    });
    console.key(KeyCode::Char('p'));
    console.type_text(r#"{"n":5}"#);
    console.key(KeyCode::Enter);
    console.until("the publish's answer", |app| {
        app.status()
            .is_some_and(|s| s.text.contains("orders.eu") && s.text.contains("1 subscriber"))
    });
    broker_until(&live.broker, "the publish", |s| {
        s.topics
            .iter()
            .any(|t| t.name == "orders.eu" && t.msgs_in == 2)
    });

    // Tail the topic, from its page: a message published elsewhere shows, with
    // which filter passed it (the listener's `data.n > 1` filters out n = 1).
    console.key(KeyCode::Enter);
    console.until("the topic's page", |app| {
        matches!(app.shown_page().map(|p| &p.data), Some(PageData::Topic(t))
            if t.stats.name == "orders.eu"
                && t.subscribers.iter().any(|s| s.filter.as_deref() == Some("data.n > 1")))
    });
    console.key(KeyCode::Enter);
    console.until(
        "the tail's subscriptions",
        |app| matches!(app.overlay(), Some(Overlay::Tail(t)) if !t.subscribers.list().is_empty()),
    );
    // The tail is live once the broker counts it among the topic's subscribers
    // (a remote console's tail starts a moment after the key).
    broker_until(&live.broker, "the tail", |s| {
        s.topics
            .iter()
            .any(|t| t.name == "orders.eu" && t.subscribers == 2)
    });
    rt.block_on(ops.publish("orders.eu", json!({"n": 1})))
        .unwrap();
    console.until(
        "the tailed message",
        |app| matches!(app.overlay(), Some(Overlay::Tail(t)) if t.received == 1),
    );
    if let Some(Overlay::Tail(tail)) = console.app.overlay() {
        let entry = &tail.messages[0];
        assert_eq!(entry.message.data, json!({"n": 1}));
        let verdicts: Vec<_> = entry
            .delivery
            .iter()
            .map(|(sub, verdict)| (sub.filter.clone(), verdict))
            .collect();
        assert_eq!(
            verdicts,
            [(Some("data.n > 1".to_string()), Verdict::FilteredOut)]
        );
    }
    // `/` restarts the tail with a filter the broker evaluates.
    console.key(KeyCode::Char('/'));
    console.type_text("data.n = 7");
    console.key(KeyCode::Enter);
    console.until("the searching tail", |app| {
        matches!(app.overlay(), Some(Overlay::Tail(t))
            if t.query.filter.as_deref() == Some("data.n = 7") && t.received == 0)
    });
    // A remote tail starts again a moment after the key.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        console.tick();
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in [5, 7] {
        rt.block_on(ops.publish("orders.eu", json!({"n": n})))
            .unwrap();
    }
    console.until(
        "the one message the filter selects",
        |app| matches!(app.overlay(), Some(Overlay::Tail(t)) if t.received == 1),
    );
    if let Some(Overlay::Tail(tail)) = console.app.overlay() {
        assert_eq!(tail.messages[0].message.data, json!({"n": 7}));
    }
    console.key(KeyCode::Esc);
    console.key(KeyCode::Esc);

    // Dead letters back to work, browsing them: `/` finds one by a filter the
    // broker evaluates, m moves the selected one back, e exports the page, d
    // drops one, M moves all that are left; each question states the count.
    for n in 1..=3 {
        let letter = json!({"op": "send", "queue": "mail.dead", "data": {"n": n},
                            "headers": {"x-dead-letter-queue": "mail"}});
        rt.block_on(ops.call(letter)).unwrap();
    }
    // The Queues view's filter still reads `jobs`: Esc clears it first.
    console.key(KeyCode::Char('3'));
    console.key(KeyCode::Esc);
    console.show_filtered('3', "mail.dead");
    console.until("the dead-letter queue listed", |app| {
        app.table(View::Queues).selected_row().is_some()
            && app
                .snapshot()
                .queues
                .iter()
                .any(|q| q.name == "mail.dead" && q.ready == 3)
    });
    console.key(KeyCode::Enter);
    console.key(KeyCode::Enter);
    console.until(
        "the dead letters' peek",
        |app| matches!(app.overlay(), Some(Overlay::Peek(p)) if p.messages.len() == 3),
    );
    let peeked = |app: &App| -> Vec<serde_json::Value> {
        match app.overlay() {
            Some(Overlay::Peek(p)) => p.messages.iter().map(|m| m.data["n"].clone()).collect(),
            _ => Vec::new(),
        }
    };
    console.key(KeyCode::Char('/'));
    console.type_text("data.n = 2");
    console.key(KeyCode::Enter);
    console.until("the search's page", |app| {
        matches!(app.overlay(), Some(Overlay::Peek(p)) if p.query.filter.is_some())
            && peeked(app) == [json!(2)]
    });
    console.key(KeyCode::Down);
    console.key(KeyCode::Char('m'));
    match console.app.overlay() {
        Some(Overlay::Confirm(c)) => assert_eq!(
            c.question(),
            "Move 1 message (message 2) from mail.dead back to mail? y/n"
        ),
        _ => panic!("m asks first"),
    }
    console.key(KeyCode::Char('y'));
    console.until("the move's answer, and the page again", |app| {
        app.status()
            .is_some_and(|s| s.text == "Moved 1 message from mail.dead back to mail")
            && matches!(app.overlay(), Some(Overlay::Peek(p)) if p.messages.is_empty())
    });
    // An empty search shows everything again.
    console.key(KeyCode::Char('/'));
    for _ in 0.."data.n = 2".len() {
        console.key(KeyCode::Backspace);
    }
    console.key(KeyCode::Enter);
    console.until("the whole page", |app| peeked(app) == [json!(1), json!(3)]);
    let exports = live.data_dir.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    console.app.export_into(&exports);
    console.key(KeyCode::Char('e'));
    let status = console.status();
    let path = status
        .strip_prefix("Exported 2 messages to ")
        .unwrap_or_else(|| panic!("{status}"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exported: Vec<_> = lines
        .iter()
        .map(|l| (l["msg"].clone(), l["data"].clone()))
        .collect();
    assert_eq!(
        exported,
        [(json!("1"), json!({"n": 1})), (json!("3"), json!({"n": 3}))]
    );
    assert_eq!(lines[0]["headers"], json!({"x-dead-letter-queue": "mail"}));
    console.key(KeyCode::Down);
    console.key(KeyCode::Char('d'));
    match console.app.overlay() {
        Some(Overlay::Confirm(c)) => {
            assert_eq!(
                c.question(),
                "Drop 1 message (message 1) from mail.dead? y/n"
            )
        }
        _ => panic!("d asks first"),
    }
    console.key(KeyCode::Char('y'));
    console.until("the drop's answer, and the page again", |app| {
        app.status()
            .is_some_and(|s| s.text == "Dropped message 1 from mail.dead")
            && peeked(app) == [json!(3)]
    });
    console.key(KeyCode::Char('M'));
    // The count follows the snapshots (a remote one comes with the next frame).
    console.until("the question, with the count", |app| {
        matches!(app.overlay(), Some(Overlay::Confirm(c)) if c.question()
            == "Move the ready messages of mail.dead that died in mail back to mail (1 ready message in mail.dead)? y/n")
    });
    console.key(KeyCode::Char('y'));
    console.until("the move's answer", |app| {
        app.status()
            .is_some_and(|s| s.text == "Moved 1 message from mail.dead back to mail")
    });
    let mail = live.broker.peek_queue("mail", 10).unwrap();
    let moved: Vec<_> = mail.iter().map(|m| m.data.clone()).collect();
    assert_eq!(moved, [json!({"n": 2}), json!({"n": 3})]);
    assert_eq!(live.broker.peek_queue("mail.dead", 10).unwrap(), []);
}

/// The keyboard habits against a real broker: `:purge` asks with the count and
/// purges, and Ctrl-K kicks every client a filter lists (one kick each), the
/// others staying connected.
fn habits<S: Source>(live: &Live, console: &mut Console<S>) {
    let ops = live.client("ops");
    let _bulk = [live.client("bulk-1"), live.client("bulk-2")];
    let _keeper = live.client("keeper");
    let rt = &live.runtime;
    for n in 1..=4 {
        rt.block_on(ops.send("tasks", json!({"n": n}))).unwrap();
    }
    console.until("the broker's state", |app| {
        let s = app.snapshot();
        s.queues.iter().any(|q| q.name == "tasks" && q.ready == 4)
            && s.clients.iter().filter(|c| c.name.is_some()).count() >= 4
    });

    // `:purge`: the same question as x, then the purge.
    console.key(KeyCode::Char(':'));
    console.type_text("purge ta");
    console.key(KeyCode::Tab);
    assert_eq!(
        console.app.command_line().map(|l| l.value().to_string()),
        Some("purge tasks ".into())
    );
    console.key(KeyCode::Enter);
    match console.app.overlay() {
        Some(Overlay::Confirm(c)) => {
            assert_eq!(c.question(), "Purge 4 ready messages from tasks? y/n");
        }
        other => panic!(":purge asks first, not {other:?}"),
    }
    console.key(KeyCode::Char('y'));
    console.until("the purge's answer", |app| {
        app.status()
            .is_some_and(|s| s.text == "Purged 4 ready messages from tasks")
    });
    let tasks = live
        .broker
        .snapshot()
        .queues
        .into_iter()
        .find(|q| q.name == "tasks");
    assert_eq!(tasks.map(|q| q.ready), Some(0));

    // Ctrl-K on a kept filter: one question for both, one kick each.
    console.show_filtered('4', "bulk-");
    console.until("the two listed", |app| {
        app.table(View::Clients).rows.len() == 2
    });
    console.app.handle_key(
        KeyEvent::new(KeyCode::Char('k'), KeyModifiers::CONTROL),
        &mut console.source,
    );
    match console.app.overlay() {
        Some(Overlay::Confirm(c)) => {
            let q = c.question();
            assert!(q.starts_with("Kick the 2 listed clients (c"), "{q}");
            assert!(q.contains(" (bulk-1)") && q.contains(" (bulk-2)"), "{q}");
        }
        other => panic!("Ctrl-K asks first, not {other:?}"),
    }
    console.key(KeyCode::Char('y'));
    console.until("the kicks' answer", |app| {
        app.status().is_some_and(|s| s.text == "Kicked 2 clients")
    });
    broker_until(&live.broker, "both gone, the keeper kept", |s| {
        let named = |n: &str| s.clients.iter().any(|c| c.name.as_deref() == Some(n));
        !named("bulk-1") && !named("bulk-2") && named("keeper") && named("ops")
    });
}

#[test]
fn the_embedded_console_keeps_the_keyboard_habits() {
    let live = Live::start("habits-embedded");
    let embedded = {
        let _in_runtime = live.runtime.enter();
        Embedded::new(live.broker.clone()).unwrap()
    };
    let mut console = Console::new(embedded);
    habits(&live, &mut console);
}

#[test]
fn a_remote_console_keeps_the_keyboard_habits() {
    let live = Live::start("habits-remote");
    let remote = Remote::start(live.url.clone(), ConnectOptions::new().name("top"), false).unwrap();
    let mut console = Console::new(remote);
    console.until("the link", |app| *app.link() == Link::Up);
    habits(&live, &mut console);
}

#[test]
fn the_embedded_console_operates_the_broker_in_its_process() {
    let live = Live::start("embedded");
    let embedded = {
        let _in_runtime = live.runtime.enter();
        Embedded::new(live.broker.clone()).unwrap()
    };
    let mut console = Console::new(embedded);
    operate(&live, &mut console);
}

#[test]
fn a_remote_console_operates_a_broker_over_the_wire() {
    let live = Live::start("remote");
    let remote = Remote::start(live.url.clone(), ConnectOptions::new().name("top"), false).unwrap();
    let mut console = Console::new(remote);
    console.until("the link", |app| *app.link() == Link::Up);
    operate(&live, &mut console);
    let top = live
        .broker
        .snapshot()
        .clients
        .into_iter()
        .find(|c| c.name.as_deref() == Some("top"))
        .expect("the console is a client of the broker");
    let events = live.broker.snapshot().events;
    let by_top = format!("{} (top) purged 3 ready messages from jobs", top.id);
    assert!(events.iter().any(|e| e.text == by_top), "{events:#?}");
}

/// A read-only console shows everything and changes nothing: the keys that
/// would are refused, and the source refuses a command that gets through.
#[test]
fn a_read_only_remote_console_refuses_every_action() {
    let live = Live::start("read-only");
    let ops = live.client("ops");
    live.runtime
        .block_on(ops.send("jobs", json!({"n": 1})))
        .unwrap();
    let remote = Remote::start(live.url.clone(), ConnectOptions::new(), true).unwrap();
    let mut console = Console::new(remote);
    console.until("the queue", |app| {
        app.snapshot().queues.iter().any(|q| q.ready == 1)
    });
    console.show_filtered('3', "jobs");
    for key in ['x', 'p'] {
        console.key(KeyCode::Char(key));
        assert!(console.app.overlay().is_none(), "{key} opened something");
        assert!(
            console.status().starts_with("Read-only console"),
            "{key}: {}",
            console.status()
        );
    }
    // The `:` line and the listed-rows keys are refused the same way.
    for line in ["purge jobs", "move jobs ops", "kick ops"] {
        console.key(KeyCode::Char(':'));
        console.type_text(line);
        console.key(KeyCode::Enter);
        assert!(console.app.overlay().is_none(), ":{line} opened something");
        assert!(console.status().starts_with("Read-only console"), ":{line}");
    }
    console.app.handle_key(
        KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL),
        &mut console.source,
    );
    assert!(console.app.overlay().is_none(), "Ctrl-X opened something");
    // A command that gets past the keys is refused by the source itself.
    let mut replies = switchyard_ui::Replies::new();
    console.source.execute(
        switchyard_broker::Command::Purge {
            queue: "jobs".into(),
        },
        replies.reply(),
    );
    let refused = replies.wait_next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        refused.result.unwrap_err().code,
        switchyard_broker::ErrorCode::Forbidden
    );
    for key in ['k', 'K'] {
        console.show_filtered('4', "ops");
        console.key(KeyCode::Char(key));
        assert!(console.app.overlay().is_none(), "{key} opened something");
    }
    console.key(KeyCode::Char('5'));
    console.key(KeyCode::Char('r'));
    assert!(console.status().starts_with("Read-only console"));
    // Looking still works (the queues table keeps its filter).
    console.key(KeyCode::Char('3'));
    console.key(KeyCode::Enter);
    console.key(KeyCode::Enter);
    console.until(
        "the peek",
        |app| matches!(app.overlay(), Some(Overlay::Peek(p)) if p.messages.len() == 1),
    );
    let ready = live.broker.snapshot().queues[0].ready;
    assert_eq!(ready, 1);
}

/// With no broker to reach, the console says so and keeps trying; a command is
/// answered at once that nothing was done, never queued for later.
#[test]
fn a_remote_console_without_its_broker_says_so_and_does_nothing() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let remote = Remote::start(url, ConnectOptions::new(), false).unwrap();
    let mut console = Console::new(remote);
    console.until(
        "the link down",
        |app| matches!(app.link(), Link::Down { why, .. } if why.contains("refused")),
    );
    let mut replies = switchyard_ui::Replies::new();
    console.source.execute(
        switchyard_broker::Command::Purge {
            queue: "jobs".into(),
        },
        replies.reply(),
    );
    let answer = replies
        .wait_next(Duration::from_secs(5))
        .expect("answered at once");
    let e = answer.result.unwrap_err();
    assert_eq!(e.message, "not connected to the broker: nothing was done");
    assert!(!console.source.quitting_stops_broker());
}

/// With auth on, `top` needs an admin's token: a user who is not an admin is
/// told why and the console keeps retrying (a fixed token may come); an
/// admin's token shows the broker.
#[test]
fn a_remote_console_needs_an_admin_token() {
    let hex =
        |token: &str| -> String { digest(token).iter().map(|b| format!("{b:02x}")).collect() };
    let all = vec![">".to_string()];
    let user = |name: &str, token: &str, admin: bool| UserRules {
        name: name.into(),
        token_sha256: hex(token),
        grants: Grants {
            publish: all.clone(),
            subscribe: all.clone(),
            admin,
            ..Grants::default()
        },
    };
    let security = Security {
        users: vec![
            user("root", "root-token-0123456789", true),
            user("app", "app-token-0123456789", false),
        ],
        ..Security::default()
    };
    let live = Live::with("auth", security);
    let as_app = ConnectOptions::new().token("app-token-0123456789");
    let mut console = Console::new(Remote::start(live.url.clone(), as_app, false).unwrap());
    console.until(
        "the refusal",
        |app| matches!(app.link(), Link::Down { why, .. } if why.contains("forbidden")),
    );
    // A refusal is retried at the slowest pace, and each try's connection is
    // closed, not left open on the broker.
    match console.app.link() {
        Link::Down { retry_at, .. } => {
            let wait = retry_at.saturating_duration_since(Instant::now());
            assert!(wait > Duration::from_secs(4), "retrying in {wait:?}");
        }
        Link::Up => unreachable!(),
    }
    broker_until(
        &live.broker,
        "the refused console's connection closed",
        |s| s.server.connections == 0,
    );
    let wrong = ConnectOptions::new().token("not-a-token-0123456789");
    let mut console = Console::new(Remote::start(live.url.clone(), wrong, false).unwrap());
    console.until(
        "the refusal",
        |app| matches!(app.link(), Link::Down { why, .. } if why.contains("unauthorized")),
    );
    let root = ConnectOptions::new().token("root-token-0123456789");
    let mut console = Console::new(Remote::start(live.url.clone(), root, false).unwrap());
    console.until("the broker's state", |app| {
        *app.link() == Link::Up && app.snapshot().server.auth
    });
}

/// One `nats-server` on a free loopback port (core NATS is all the cluster view
/// needs), killed when dropped.
struct Nats {
    child: std::process::Child,
    url: String,
}

impl Nats {
    fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = std::env::var_os("NATS_SERVER").unwrap_or_else(|| {
            let debian = std::path::Path::new("/usr/sbin/nats-server");
            if debian.is_file() {
                debian.into()
            } else {
                "nats-server".into()
            }
        });
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server (run .ci/run, which installs it)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A console on node web1 lists web2's client with its node and kicks it there.
fn kick_across<S: Source>(web1: &Live, web2: &Live, console: &mut Console<S>, name: &str) {
    let far = web2.client(name);
    let far_id = format!("{}@web2", far.id());
    console.until("web2's client in web1's view", |app| {
        app.snapshot()
            .clients
            .iter()
            .any(|c| c.id == far_id && c.node.as_deref() == Some("web2"))
    });
    let nodes: Vec<String> = console
        .app
        .snapshot()
        .server
        .cluster
        .iter()
        .flat_map(|c| c.nodes.iter().map(|n| n.node.clone()))
        .collect();
    assert_eq!(nodes, ["web1", "web2"]);
    console.show_filtered('4', name);
    console.until("the far client selected", |app| {
        app.table(View::Clients).selected_row().is_some()
    });
    console.key(KeyCode::Char('k'));
    console.key(KeyCode::Char('y'));
    broker_until(&web2.broker, "the kick on web2", |s| {
        s.clients.iter().all(|c| c.name.as_deref() != Some(name))
    });
    console.until("the kick's answer", |app| {
        app.status().is_some_and(|s| s.text.contains("Kicked"))
    });
    console.key(KeyCode::Esc);
    assert_eq!(web1.broker.node(), Some("web1"));
}

#[test]
fn both_consoles_of_a_node_see_and_kick_another_nodes_clients() {
    let nats = Nats::start();
    let web1 = Live::node("web1", &nats.url);
    let web2 = Live::node("web2", &nats.url);
    let embedded = {
        let _in_runtime = web1.runtime.enter();
        Embedded::new(web1.broker.clone()).unwrap()
    };
    let mut console = Console::new(embedded);
    kick_across(&web1, &web2, &mut console, "far-embedded");
    let remote = Remote::start(web1.url.clone(), ConnectOptions::new().name("top"), false).unwrap();
    let mut console = Console::new(remote);
    console.until("the link", |app| *app.link() == Link::Up);
    kick_across(&web1, &web2, &mut console, "far-remote");
}
