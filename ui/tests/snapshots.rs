//! Every view and popup of the dashboard drawn at 120x32 from fixed fixtures and
//! compared with the insta snapshots in the workspace's `snapshots/` directory.
//!
//! The dashboard is driven the way an operator drives it, through key presses on
//! [`App::handle_key`] against a [`FixtureSource`]; nothing reads the clock or a
//! random source, so every snapshot is the same on every run.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use insta::assert_snapshot;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use switchyard_broker::Snapshot;
use switchyard_ui::{draw, fixture, App, FixtureSource};

const URL: &str = "ws://127.0.0.1:7400/ws";

/// Seconds of traffic the app has watched before a snapshot: enough for a
/// sparkline with a shape.
const WARM_STEPS: u64 = 90;

/// The dashboard and the broker it watches.
struct Fixture {
    app: App,
    source: FixtureSource,
    at: Instant,
}

impl Fixture {
    /// An app that watched a broker for `steps` seconds, one snapshot a second, and
    /// a source serving the last of those snapshots.
    fn watching(states: impl Fn(u64) -> Snapshot, steps: u64) -> Fixture {
        // Only differences between instants reach the screen (as rates), so the
        // starting instant does not make the drawing depend on the clock.
        let t0 = Instant::now();
        let mut app = App::new(URL);
        for step in 0..=steps {
            app.refresh(states(step), t0 + Duration::from_secs(step));
        }
        let mut source = FixtureSource::new(states(steps));
        source.peeks.insert("jobs".into(), fixture::peeked_jobs());
        source
            .peeks
            .insert("thumbnails".into(), fixture::peeked_many(1_250));
        Fixture {
            app,
            source,
            at: t0 + Duration::from_secs(steps),
        }
    }

    fn typical() -> Fixture {
        Fixture::watching(fixture::typical, WARM_STEPS)
    }

    fn crowded() -> Fixture {
        Fixture::watching(fixture::crowded, 30)
    }

    fn empty() -> Fixture {
        Fixture::watching(|_| fixture::empty(), 2)
    }

    /// Press one key.
    fn key(&mut self, code: KeyCode) -> &mut Self {
        self.press(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// Press one key, with its modifiers.
    fn press(&mut self, key: KeyEvent) -> &mut Self {
        self.app.handle_key(key, &mut self.source);
        self
    }

    /// Type each character of `keys` as a key press.
    fn keys(&mut self, keys: &str) -> &mut Self {
        for c in keys.chars() {
            self.key(KeyCode::Char(c));
        }
        self
    }

    /// One tick of the event loop, half a second later.
    fn tick(&mut self) -> &mut Self {
        self.at += Duration::from_millis(500);
        self.app.tick(&mut self.source, self.at);
        self
    }

    /// Draw and compare with the snapshot `name`.
    fn check(&mut self, name: &str) {
        self.check_at(name, 120, 32);
    }

    /// Draw on a terminal of `width` x `height` and compare with the snapshot `name`.
    fn check_at(&mut self, name: &str, width: u16, height: u16) {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, &mut self.app)).unwrap();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| assert_snapshot!(name, terminal.backend()));
    }
}

// Below 80×24 a number would lose its leading digits (Dead 290 as "90", 5m06s
// as "06s"): one line says the terminal is too small instead, on any view.
#[test]
fn a_terminal_below_80_by_24_is_told_so() {
    Fixture::crowded().check_at("too_small__40x10", 40, 10);
    Fixture::crowded()
        .keys("3")
        .check_at("too_small__79x24", 79, 24);
    Fixture::crowded()
        .keys("4")
        .check_at("too_small__80x23", 80, 23);
}

// Views, three situations each: a typical broker, an empty one, a crowded one.

#[test]
fn overview_view() {
    Fixture::typical().check("overview_view__typical");
    Fixture::empty().check("overview_view__empty_broker");
    Fixture::crowded().check("overview_view__crowded");
}

#[test]
fn topics_view() {
    Fixture::typical().keys("2").check("topics_view__typical");
    Fixture::empty()
        .keys("2")
        .check("topics_view__empty_broker");
    Fixture::crowded().keys("2").check("topics_view__crowded");
}

#[test]
fn queues_view() {
    Fixture::typical().keys("3").check("queues_view__typical");
    Fixture::empty()
        .keys("3")
        .check("queues_view__empty_broker");
    Fixture::crowded().keys("3").check("queues_view__crowded");
}

#[test]
fn clients_view() {
    Fixture::typical().keys("4").check("clients_view__typical");
    Fixture::empty()
        .keys("4")
        .check("clients_view__empty_broker");
    Fixture::crowded().keys("4").check("clients_view__crowded");
}

#[test]
fn inflight_view() {
    Fixture::typical().keys("5").check("inflight_view__typical");
    Fixture::empty()
        .keys("5")
        .check("inflight_view__empty_broker");
    Fixture::crowded().keys("5").check("inflight_view__crowded");
}

// Every list view at the smallest size drawn, 80×24: optional columns (flags,
// address, totals) give way so that names stay readable and numbers whole.

#[test]
fn list_views_at_80_by_24() {
    for (keys, view) in [
        ("1", "overview"),
        ("2", "topics"),
        ("3", "queues"),
        ("4", "clients"),
        ("5", "inflight"),
    ] {
        Fixture::typical()
            .keys(keys)
            .check_at(&format!("{view}_view__typical_80x24"), 80, 24);
        Fixture::crowded()
            .keys(keys)
            .check_at(&format!("{view}_view__crowded_80x24"), 80, 24);
    }
}

// The header's `auth off`: only for a broker beyond loopback with no tokens asked
// (the crowded fixture listens on 0.0.0.0 with auth on, the others on loopback,
// and their snapshots show no mark).

#[test]
fn header_marks_auth_off_on_the_network() {
    let open = || {
        let mut snap = fixture::empty();
        snap.server.listen = "0.0.0.0:7400".into();
        snap.server.auth = false;
        snap
    };
    Fixture::watching(|_| open(), 2).check("overview_view__auth_off_on_the_network");
    Fixture::watching(|_| open(), 2).check_at(
        "overview_view__auth_off_on_the_network_80x24",
        80,
        24,
    );
}

// A node of a cluster (`serve --nats`): its name, and `NATS down` while its
// link to NATS is.

#[test]
fn header_names_the_node_and_marks_nats_down() {
    let node = |connected: bool| {
        move |_| {
            let mut snap = fixture::empty();
            snap.server.cluster = Some(switchyard_broker::stats::ClusterStats {
                node: "web1-4711".into(),
                connected,
                why: (!connected).then(|| "NATS connection lost, reconnecting".into()),
                ..Default::default()
            });
            snap
        }
    };
    Fixture::watching(node(true), 2).check("overview_view__cluster_node");
    Fixture::watching(node(false), 2).check("overview_view__cluster_nats_down");
    Fixture::watching(node(false), 2).check_at("overview_view__cluster_nats_down_80x24", 80, 24);
}

/// The typical broker as node web1 of a cluster of three, whose web3 is gone:
/// every other client is web2's (`c4@web2`), as the cluster view has them.
fn cluster_view(step: u64) -> switchyard_broker::Snapshot {
    use switchyard_broker::stats::{ClusterStats, NodeStats};
    let mut snap = fixture::typical(step);
    for (i, c) in snap.clients.iter_mut().enumerate() {
        let node = if i % 2 == 0 { "web1" } else { "web2" };
        if node != "web1" {
            c.id = format!("{}@{node}", c.id);
        }
        c.node = Some(node.into());
    }
    for job in &mut snap.inflight {
        if let Some(c) = snap
            .clients
            .iter()
            .find(|c| c.id.split('@').next() == Some(&job.client))
        {
            job.client = c.id.clone();
        }
    }
    let node = |name: &str, age_ms, gone| NodeStats {
        node: name.into(),
        age_ms,
        gone,
        connections: 3,
        truncated: false,
    };
    snap.server.cluster = Some(ClusterStats {
        node: "web1".into(),
        connected: true,
        why: None,
        nodes: vec![
            node("web1", 0, false),
            node("web2", 400, false),
            node("web3", 3_600, true),
        ],
    });
    snap
}

// A node of a cluster: its Clients view has a Node column, its header the
// nodes it sees and the one gone.

#[test]
fn cluster_clients_view_names_each_clients_node() {
    Fixture::watching(cluster_view, 2)
        .keys("4")
        .check("clients_view__cluster");
    Fixture::watching(cluster_view, 2)
        .keys("4")
        .check_at("clients_view__cluster_80x24", 80, 24);
    Fixture::watching(cluster_view, 2)
        .keys("5")
        .check("inflight_view__cluster");
    Fixture::watching(cluster_view, 2)
        .keys("5")
        .check_at("inflight_view__cluster_80x24", 80, 24);
    Fixture::watching(cluster_view, 2).check("overview_view__cluster_nodes_one_gone");
    Fixture::watching(cluster_view, 2).check_at(
        "overview_view__cluster_nodes_one_gone_80x24",
        80,
        24,
    );
}

// Moving around crowded tables.

#[test]
fn crowded_tables_scroll() {
    Fixture::crowded()
        .keys("4")
        .key(KeyCode::PageDown)
        .key(KeyCode::PageDown)
        .keys("jjj")
        .check("clients_view__crowded_two_pages_down");
    Fixture::crowded()
        .keys("3")
        .key(KeyCode::End)
        .check("queues_view__crowded_at_the_end");
}

#[test]
fn filtering_and_sorting() {
    Fixture::typical()
        .keys("2/orders")
        .check("topics_view__typing_a_filter");
    Fixture::crowded()
        .keys("3/acme-international")
        .key(KeyCode::Enter)
        .check("queues_view__crowded_filtered");
    Fixture::typical()
        .keys("2/nothing-matches")
        .check("topics_view__filter_matches_nothing");
    // One `s` moves from Name to Ready, biggest first.
    Fixture::typical()
        .keys("3s")
        .check("queues_view__sorted_by_ready");
}

// Popups and dialogs.

#[test]
fn help_overlay() {
    Fixture::typical().keys("2?").check("help_overlay__topics");
    // At 80x24 the keys do not fit: one column, scrolled, saying there is more.
    Fixture::typical()
        .keys("2?")
        .check_at("help_overlay__topics_80x24", 80, 24);
    Fixture::typical()
        .keys("2?")
        .key(KeyCode::PageDown)
        .check_at("help_overlay__topics_80x24_a_page_down", 80, 24);
    Fixture::typical().keys("2?").key(KeyCode::End).check_at(
        "help_overlay__topics_80x24_at_the_end",
        80,
        24,
    );
}

#[test]
fn publish_form() {
    // orders.eu is the fifth topic by name.
    Fixture::typical()
        .keys("2jjjjp")
        .keys(r#"{"id": 7, "amount": 12.5}"#)
        .check("publish_form__topic");
    // audit.log is sealed: the broker refuses and the form shows why.
    Fixture::typical()
        .keys("2p")
        .keys("late entry")
        .key(KeyCode::Enter)
        .check("publish_form__sealed_topic_error");
    Fixture::typical()
        .keys("3jp")
        .keys("{\"task\": \"resize\"}")
        .key(KeyCode::Tab)
        .check("publish_form__queue_destination_focused");
}

#[test]
fn confirm_dialogs() {
    Fixture::typical()
        .keys("3jx")
        .check("confirm_dialog__purge");
    Fixture::typical()
        .keys("4jjjk")
        .check("confirm_dialog__kick");
    Fixture::crowded()
        .keys("4K")
        .check("confirm_dialog__kick_slow");
    // From the peek popup of a dead-letter queue (thumbnails, here).
    let mut dead = Fixture::typical();
    let letters = fixture::dead_letters_of_jobs(1_250);
    dead.source.peeks.insert("thumbnails".into(), letters);
    dead.keys("3jjj").key(KeyCode::Enter).key(KeyCode::Enter);
    dead.check("peek_popup__dead_letters");
    dead.keys("M").check("confirm_dialog__move_back");
    dead.check_at("confirm_dialog__move_back_80x24", 80, 24);
    // One selected dead letter (m), and a drop (d), each counted.
    dead.key(KeyCode::Esc)
        .keys("jjm")
        .check("confirm_dialog__move_one");
    dead.key(KeyCode::Esc)
        .keys("d")
        .check_at("confirm_dialog__drop_80x24", 80, 24);
}

#[test]
fn stop_broker_dialog() {
    // A crowded broker: thousands of in-memory messages, counted in full.
    Fixture::crowded()
        .keys("q")
        .check("stop_broker_dialog__crowded");
    Fixture::crowded()
        .keys("q")
        .check_at("stop_broker_dialog__crowded_80x24", 80, 24);
    // Over the publish form it interrupts, which stays underneath.
    Fixture::typical()
        .keys("2p")
        .press(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
        .check("stop_broker_dialog__over_the_publish_form");
}

#[test]
fn action_results_show_in_the_status_line() {
    Fixture::typical()
        .keys("3jxy")
        .check("queues_view__after_purge");
    Fixture::typical()
        .keys("5")
        .key(KeyCode::Enter)
        .key(KeyCode::Esc)
        .keys("r")
        .check("inflight_view__after_requeue");
}

#[test]
fn peek_popup() {
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check("peek_popup__jobs");
    // Headers whole, wrapped, at 80x24 too: the dead-letter reason is not cut.
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check_at("peek_popup__jobs_80x24", 80, 24);
    // thumbnails holds 1,250: the second page, and the last the broker shows.
    Fixture::typical()
        .keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .key(KeyCode::Right)
        .check_at("peek_popup__thumbnails_second_page_80x24", 80, 24);
    // The broker's cursor pages past its old 1,000: the last of 125 pages.
    let mut f = Fixture::typical();
    f.keys("3jjj").key(KeyCode::Enter).key(KeyCode::Enter);
    for _ in 0..124 {
        f.keys("n");
    }
    f.key(KeyCode::End)
        .check("peek_popup__thumbnails_last_page");
}

#[test]
fn peek_popup_browsing() {
    // ↓↓: the second message selected, drawn from its first line.
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("jj")
        .check("peek_popup__selected");
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("jj")
        .check_at("peek_popup__selected_80x24", 80, 24);
    // `/` with a filter being typed, then with text that is not one.
    let mut f = Fixture::typical();
    f.keys("3jjj").key(KeyCode::Enter).key(KeyCode::Enter);
    f.keys("/data.image = 'img3.png'")
        .check("peek_popup__search_prompt");
    f.key(KeyCode::Enter).check("peek_popup__search_filter");
    let mut f = Fixture::typical();
    f.keys("3jjj").key(KeyCode::Enter).key(KeyCode::Enter);
    f.keys("/img12")
        .check_at("peek_popup__search_prompt_text_80x24", 80, 24);
    f.key(KeyCode::Enter)
        .check_at("peek_popup__search_text_80x24", 80, 24);
    // A search nothing matches: an empty page that says so.
    Fixture::typical()
        .keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("/nowhere")
        .key(KeyCode::Enter)
        .check("peek_popup__search_matched_nothing");
    // A queue with nothing ready.
    Fixture::typical()
        .keys("3jj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check("peek_popup__empty");
    // A page of long messages with many headers, one selected.
    let mut f = Fixture::typical();
    let long: Vec<_> = (1..=10u64)
        .map(|i| {
            let mut headers = switchyard_broker::Headers::new();
            for h in 0..4 {
                headers.insert(
                    format!("x-header-{h}"),
                    switchyard_broker::HeaderValue::One("v".repeat(30 + 10 * h)),
                );
            }
            switchyard_broker::PeekedMessage {
                msg: Some(format!("m2{i:05}")),
                seq: None,
                time: fixture::BASE_TIME_MS + i * 1000,
                attempt: (i % 3) as u32,
                expires: None,
                data: serde_json::json!({"text": "lorem ipsum ".repeat(20), "n": i, "tags": ["a", "b", "c"]}),
                headers: Some(headers),
            }
        })
        .collect();
    f.source.peeks.insert("thumbnails".into(), long);
    f.keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("jjj");
    f.check("peek_popup__crowded");
    f.check_at("peek_popup__crowded_80x24", 80, 24);
}

#[test]
fn tail_view_search() {
    let mut f = Fixture::typical();
    f.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
    f.keys("/tags CONTAINS 'urgent'")
        .check("tail_view__search_prompt");
    f.key(KeyCode::Enter);
    f.source.push_tail(fixture::tail_orders());
    f.tick().check("tail_view__search");
    f.check_at("tail_view__search_80x24", 80, 24);
}

#[test]
fn fullest_first() {
    // `f`: the clients whose buffers fill, soonest kicked at the top.
    Fixture::crowded()
        .keys("4f")
        .check("clients_view__fullest_first");
    Fixture::crowded()
        .keys("4f")
        .check_at("clients_view__fullest_first_80x24", 80, 24);
}

#[test]
fn queue_and_topic_pages() {
    // jobs: consumers holding jobs, a dead-letter queue, 15 minutes of history.
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .check("queue_page__jobs");
    Fixture::typical()
        .keys("3j")
        .key(KeyCode::Enter)
        .check_at("queue_page__jobs_80x24", 80, 24);
    // Just attached to a broker that has sampled nothing yet.
    let mut fresh = Fixture::typical();
    fresh.source.history = Some(0);
    fresh
        .keys("3j")
        .key(KeyCode::Enter)
        .check("queue_page__no_history_yet");
    // Thousands of queues, one of them stuck.
    Fixture::crowded()
        .keys("3/0005")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check("queue_page__crowded_stuck");
    // orders.eu: three subscriptions with filters.
    Fixture::typical()
        .keys("2jjjj")
        .key(KeyCode::Enter)
        .check("topic_page__orders_eu");
    Fixture::typical()
        .keys("2jjjj")
        .key(KeyCode::Enter)
        .check_at("topic_page__orders_eu_80x24", 80, 24);
    // A broker of 10,000 queues, clients and topics: the page is one queue's
    // or topic's, whatever the broker holds.
    Fixture::watching(|step| fixture::crowded_with(10_000, step), 1)
        .keys("3/0005")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check_at("queue_page__ten_thousand_80x24", 80, 24);
    Fixture::watching(|step| fixture::crowded_with(10_000, step), 1)
        .keys("2/globex.orders.0001")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .check("topic_page__ten_thousand");
    // Hundreds of subscribers on one topic, scrolled.
    Fixture::crowded()
        .keys("2/globex.orders.0001")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("jjj")
        .check("topic_page__crowded_subscribers");
}

#[test]
fn tail_view() {
    // orders.eu has three subscriptions, each filtering; the scripted messages
    // pass some filters and not others (#48212 passes none).
    let mut f = Fixture::typical();
    f.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
    f.check("tail_view__waiting");
    f.source.push_tail(fixture::tail_orders());
    f.tick().check("tail_view__orders_eu");
}

#[test]
fn tail_view_test_publish() {
    let mut f = Fixture::typical();
    f.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
    f.source.push_tail(fixture::tail_orders());
    f.tick()
        .keys("p")
        .keys(r#"{"amount": 75, "account": {"name": "John"}}"#)
        .key(KeyCode::Tab)
        .key(KeyCode::Tab)
        .keys("region=eu tags=[vip]")
        .check("tail_view__test_publish_form");
    // Sent, the form gives way to the tail, where the message shows who got it.
    f.key(KeyCode::Enter)
        .tick()
        .check("tail_view__after_test_publish");
}

#[test]
fn tail_view_crowded() {
    // Hundreds of subscriptions on one topic: both the list and each message's
    // line end in `+N more`.
    let mut f = Fixture::crowded();
    f.keys("2/globex.orders.0001")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .key(KeyCode::Enter);
    let messages = fixture::tail_orders().into_iter().map(|mut m| {
        m.topic = "tenants.globex.orders.0001".into();
        m
    });
    f.source.push_tail(messages);
    f.tick().check("tail_view__crowded_subscribers");
}

#[test]
fn client_detail() {
    Fixture::typical()
        .keys("4jjj")
        .key(KeyCode::Enter)
        .check("client_detail__slow_client");
    Fixture::typical()
        .keys("4jjjjj")
        .key(KeyCode::Enter)
        .check("client_detail__metrics_sink");
}

/// Not a snapshot: while the broker takes its time with a publish, frames go on
/// being drawn, with the publish shown on its way, and then its outcome.
#[test]
fn a_slow_publish_is_drawn_on_its_way_then_done() {
    let mut f = Fixture::typical();
    f.source.hold_answers = true;
    f.keys("2jjjjp").keys("{}").key(KeyCode::Enter);
    let screen = |f: &mut Fixture| {
        let mut terminal = Terminal::new(TestBackend::new(120, 32)).unwrap();
        terminal.draw(|frame| draw(frame, &mut f.app)).unwrap();
        terminal.backend().to_string()
    };
    for _ in 0..3 {
        let drawn = screen(f.tick());
        assert!(drawn.contains("Publishing to orders.eu…"), "{drawn}");
        assert!(
            drawn.contains("Publish to a topic"),
            "the form waits:\n{drawn}"
        );
    }
    f.source.answer_held();
    let drawn = screen(f.tick());
    assert!(
        drawn.contains("✓ Published to orders.eu: 3 subscribers (seq"),
        "{drawn}"
    );
    assert!(
        !drawn.contains("Publish to a topic"),
        "the form closed:\n{drawn}"
    );
}

/// Not a snapshot: 10,000 rows of everything stay usable, and the table draws
/// the rows that fit (so the last row is reachable and drawn, with its position).
#[test]
fn ten_thousand_rows() {
    let mut f = Fixture::watching(|step| fixture::crowded_with(10_000, step), 1);
    for view in ['2', '3', '4', '5'] {
        f.keys(&view.to_string()).key(KeyCode::End);
        let mut terminal = Terminal::new(TestBackend::new(120, 32)).unwrap();
        terminal.draw(|frame| draw(frame, &mut f.app)).unwrap();
        let screen = terminal.backend().to_string();
        assert!(screen.contains("10000/10000"), "view {view}:\n{screen}");
        assert!(
            screen.contains('▶'),
            "view {view} has no selected row:\n{screen}"
        );
        f.key(KeyCode::Home).key(KeyCode::PageDown);
        terminal.draw(|frame| draw(frame, &mut f.app)).unwrap();
        // A page is the height the table was last drawn with: 25 rows.
        assert!(
            terminal.backend().to_string().contains("26/10000"),
            "view {view}"
        );
    }
}

/// Not a snapshot: every screen draws without panicking on terminals far smaller
/// (or larger) than the 120x32 the snapshots use.
#[test]
fn any_terminal_size_draws() {
    let situations: [(&str, &[KeyCode]); 12] = [
        ("1", &[]),
        ("2", &[KeyCode::Enter]),
        (
            "2jjjj",
            &[KeyCode::Enter, KeyCode::Enter, KeyCode::Char('p')],
        ),
        ("3", &[KeyCode::Enter]),
        ("3j", &[KeyCode::Enter]),
        ("3j", &[KeyCode::Enter, KeyCode::Enter]),
        ("3x", &[]),
        ("3p", &[KeyCode::Enter]),
        ("4", &[KeyCode::Enter]),
        ("5", &[]),
        ("?", &[]),
        ("2/", &[]),
    ];
    for (width, height) in [(1, 1), (20, 6), (60, 12), (80, 24), (300, 90)] {
        for (keys, extra) in situations {
            for mut f in [Fixture::typical(), Fixture::empty()] {
                f.keys(keys);
                for &code in extra {
                    f.key(code);
                }
                f.source.push_tail(fixture::tail_orders());
                f.tick();
                let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
                terminal.draw(|frame| draw(frame, &mut f.app)).unwrap();
            }
        }
    }
}

/// A remote console whose broker went away: the header says so and when it
/// tries again, the last data stays (greyed, which a text snapshot cannot show).
#[test]
fn a_lost_link_says_so_in_the_header() {
    let mut f = Fixture::typical();
    f.source.remote = true;
    f.source.link = switchyard_ui::Link::Down {
        why: "closed by broker (1001): shutting down".into(),
        // 2.5 s after the tick below: the header rounds up.
        retry_at: f.at + Duration::from_millis(3000),
    };
    f.tick();
    f.check("lost_link");
    f.check_at("lost_link_80x24", 80, 24);
}

/// `--read-only`: the footer offers no key that changes the broker.
#[test]
fn a_read_only_console_offers_no_actions() {
    let mut f = Fixture::typical();
    f.source.read_only = true;
    f.tick();
    f.keys("3");
    f.check("read_only_queues");
    f.keys("x");
    f.check_at("read_only_refusal_80x24", 80, 24);
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// The `:` line: typed with its completions under it, after Tab, and an
/// unknown command that stays in the line with the error above it.
#[test]
fn command_line() {
    let mut f = Fixture::typical();
    f.keys("3:purge ");
    f.check("command_line__completions");
    f.check_at("command_line__completions_80x24", 80, 24);
    f.keys("th").key(KeyCode::Tab);
    f.check("command_line__after_tab");
    let mut f = Fixture::typical();
    f.keys(":zap jobs").key(KeyCode::Enter);
    f.check("command_line__unknown_command");
    f.check_at("command_line__unknown_command_80x24", 80, 24);
    // `:t` with a pattern: the topics it matches, and the pattern said below.
    Fixture::typical()
        .keys(":t metrics.*")
        .key(KeyCode::Enter)
        .check("command_line__topics_matching");
    Fixture::empty()
        .keys(":q ")
        .check("command_line__empty_broker");
    // 10,000 queues: the first few names that fit, and how many more.
    Fixture::watching(|step| fixture::crowded_with(10_000, step), 1)
        .keys("3:q jobs.h")
        .check("command_line__ten_thousand_queues");
}

/// Space: the header says the tables are frozen.
#[test]
fn paused() {
    let mut f = Fixture::typical();
    f.keys("3 ");
    f.check("paused__queues");
    f.check_at("paused__queues_80x24", 80, 24);
    Fixture::empty().keys(" ").check("paused__empty_broker");
}

/// The question before acting on every row a filter lists, with the count.
#[test]
fn bulk_confirm_dialogs() {
    let mut f = Fixture::typical();
    f.keys("3/e").key(KeyCode::Enter);
    f.check("queues_view__filter_kept_offers_purge_listed");
    f.press(ctrl('x'));
    f.check("confirm_dialog__purge_listed");
    f.check_at("confirm_dialog__purge_listed_80x24", 80, 24);
    let mut f = Fixture::typical();
    f.keys("5/jobs").key(KeyCode::Enter).press(ctrl('r'));
    f.check("confirm_dialog__requeue_listed");
    let mut f = Fixture::crowded();
    f.keys("4/worker").key(KeyCode::Enter).press(ctrl('k'));
    f.check("confirm_dialog__kick_listed_crowded");
    Fixture::empty()
        .keys("3/x")
        .key(KeyCode::Enter)
        .press(ctrl('x'))
        .check("queues_view__purge_listed_on_an_empty_broker");
}

/// 10,000 queues filtered down, then the question to purge every one listed.
#[test]
fn ten_thousand_rows_filtered() {
    let mut f = Fixture::watching(|step| fixture::crowded_with(10_000, step), 1);
    f.keys("3/thumbnail").key(KeyCode::Enter);
    f.check("queues_view__ten_thousand_filtered");
    f.check_at("queues_view__ten_thousand_filtered_80x24", 80, 24);
    f.press(ctrl('x'));
    f.check("confirm_dialog__purge_listed_ten_thousand");
}
