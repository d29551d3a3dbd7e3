//! Key handling as state transitions: keys go in through `handle_key`, and the
//! tests look at the state and at the commands the fixture broker received. No
//! terminal is involved.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use switchyard_broker::protocol::{HeaderValue, Headers};
use switchyard_broker::stats::{EventKind, EventRecord, TopicStats};
use switchyard_broker::{Command, ErrorCode, PeekTarget};

use super::*;
use crate::delivery::Verdict;
use crate::fixture::{self, FixtureSource};
use crate::publish::{Field, PublishForm};
use crate::tables::Sort;

struct Harness {
    app: App,
    source: FixtureSource,
    at: Instant,
}

impl Harness {
    /// The typical broker, watched for two snapshots a second apart.
    fn new() -> Harness {
        Harness::with(FixtureSource::typical(10))
    }

    fn with(source: FixtureSource) -> Harness {
        let t0 = Instant::now();
        let mut app = App::new("ws://127.0.0.1:7400/ws");
        let mut before = source.snapshot.clone();
        before.server.msgs_in = before.server.msgs_in.saturating_sub(100);
        app.refresh(before, t0);
        app.refresh(source.snapshot.clone(), t0 + Duration::from_secs(1));
        Harness {
            app,
            source,
            at: t0 + Duration::from_secs(1),
        }
    }

    fn key(&mut self, code: KeyCode) -> &mut Self {
        self.press(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn press(&mut self, key: KeyEvent) -> &mut Self {
        self.app.handle_key(key, &mut self.source);
        self
    }

    fn keys(&mut self, keys: &str) -> &mut Self {
        for c in keys.chars() {
            self.key(KeyCode::Char(c));
        }
        self
    }

    fn tick(&mut self) -> &mut Self {
        self.at += Duration::from_millis(250);
        self.app.tick(&mut self.source, self.at);
        self
    }

    fn table(&self) -> &TableState {
        self.app.table(self.app.view())
    }

    /// The name (or id) of the selected row in the current view.
    fn selected(&self) -> Option<String> {
        let model = tables::model(self.app.view());
        let i = self.table().selected_row()?;
        Some(model.key(&self.app.snapshot, i).into_owned())
    }

    fn status(&self) -> &str {
        self.app.status().map(|s| s.text.as_str()).unwrap_or("")
    }

    fn confirmation(&self) -> Option<&Confirmation> {
        match self.app.overlay() {
            Some(Overlay::Confirm(p)) => Some(p),
            _ => None,
        }
    }

    fn form(&self) -> &PublishForm {
        match self.app.overlay() {
            Some(Overlay::Publish { form, .. }) => form,
            other => panic!("no publish form, but {other:?}"),
        }
    }
}

// Views.

#[test]
fn number_keys_and_tab_switch_views() {
    let mut h = Harness::new();
    assert_eq!(h.app.view(), View::Overview);
    h.keys("3");
    assert_eq!(h.app.view(), View::Queues);
    h.key(KeyCode::Tab);
    assert_eq!(h.app.view(), View::Clients);
    h.key(KeyCode::Tab).key(KeyCode::Tab);
    assert_eq!(h.app.view(), View::Overview, "Tab wraps around");
    h.key(KeyCode::BackTab);
    assert_eq!(h.app.view(), View::InFlight, "Shift-Tab wraps back");
    h.keys("1");
    assert_eq!(h.app.view(), View::Overview);
}

// Selection and paging.

#[test]
fn arrows_and_jk_move_the_selection_and_stop_at_the_ends() {
    let mut h = Harness::new();
    h.keys("2");
    assert_eq!(h.selected().as_deref(), Some("audit.log"));
    h.keys("jj").key(KeyCode::Down);
    assert_eq!(h.selected().as_deref(), Some("metrics.mem"));
    h.keys("k").key(KeyCode::Up);
    assert_eq!(h.selected().as_deref(), Some("chat.lobby"));
    h.keys("kkk");
    assert_eq!(h.selected().as_deref(), Some("audit.log"));
    h.keys("jjjjjjjjjj");
    assert_eq!(h.selected().as_deref(), Some("orders.us"));
}

#[test]
fn page_keys_move_by_the_drawn_height_and_home_end_jump() {
    let mut h = Harness::with(FixtureSource::new(fixture::crowded(0)));
    h.keys("3");
    h.app.tables[View::Queues.index()].page = 25;
    h.key(KeyCode::PageDown);
    assert_eq!(h.table().selected, 25);
    h.key(KeyCode::PageDown).key(KeyCode::PageUp);
    assert_eq!(h.table().selected, 25);
    h.key(KeyCode::End);
    assert_eq!(h.table().selected, 999);
    h.key(KeyCode::PageDown);
    assert_eq!(h.table().selected, 999);
    h.key(KeyCode::Home);
    assert_eq!(h.table().selected, 0);
    h.key(KeyCode::PageUp);
    assert_eq!(h.table().selected, 0);
}

#[test]
fn the_selection_stays_on_its_row_when_rows_move() {
    let mut h = Harness::new();
    h.keys("2jjjj");
    assert_eq!(h.selected().as_deref(), Some("orders.eu"));
    // A new topic sorts before it: the selection follows orders.eu down.
    h.source.snapshot.topics.push(TopicStats {
        name: "billing".into(),
        ..Default::default()
    });
    h.tick();
    assert_eq!(h.selected().as_deref(), Some("orders.eu"));
    assert_eq!(h.table().selected, 5);
    // When it goes away, the selection stays where it was, clamped.
    h.source
        .snapshot
        .topics
        .retain(|t| !t.name.starts_with("orders"));
    h.tick();
    assert_eq!(h.table().rows.len(), 5);
    assert_eq!(h.table().selected, 4);
}

#[test]
fn the_event_log_follows_new_events_unless_scrolled_up() {
    let mut h = Harness::new();
    let last = h.app.snapshot.events.len() - 1;
    assert_eq!(h.table().selected, last, "starts on the newest event");
    let event = |seq| EventRecord {
        seq,
        time: fixture::BASE_TIME_MS,
        kind: EventKind::Connect,
        text: format!("event {seq}"),
    };
    h.source.snapshot.events.push(event(100));
    h.tick();
    assert_eq!(h.selected().as_deref(), Some("100"));
    h.keys("k");
    h.source.snapshot.events.push(event(101));
    h.tick();
    assert_eq!(
        h.selected().as_deref(),
        Some("14"),
        "scrolled up, it stays put"
    );
    h.key(KeyCode::End);
    h.source.snapshot.events.push(event(102));
    h.tick();
    assert_eq!(h.selected().as_deref(), Some("102"));
}

// Filter.

#[test]
fn slash_filters_live_enter_keeps_and_esc_clears() {
    let mut h = Harness::new();
    h.keys("2/");
    assert_eq!(h.app.context(), Context::Filter);
    h.keys("ORD");
    assert_eq!(h.table().filter, "ORD");
    assert_eq!(
        h.table().rows.len(),
        2,
        "case-insensitive, updated as typed"
    );
    h.key(KeyCode::Backspace)
        .key(KeyCode::Backspace)
        .key(KeyCode::Backspace);
    assert_eq!(h.table().rows.len(), 6);
    h.keys("metrics").key(KeyCode::Enter);
    assert_eq!(h.app.context(), Context::Table);
    assert_eq!(h.table().filter, "metrics");
    assert_eq!(h.table().rows.len(), 2);
    // The filter belongs to the topics table only.
    h.keys("3");
    assert_eq!(h.table().rows.len(), 4);
    h.keys("2");
    assert_eq!(h.table().rows.len(), 2);
    // Esc in the table clears it; so does Esc while typing.
    h.key(KeyCode::Esc);
    assert_eq!(h.table().rows.len(), 6);
    h.keys("/sealed");
    assert_eq!(h.table().rows.len(), 1, "flags match too");
    h.key(KeyCode::Esc);
    assert_eq!(h.app.context(), Context::Table);
    assert!(h.table().filter.is_empty());
}

#[test]
fn letters_typed_into_the_filter_are_text_not_commands() {
    let mut h = Harness::new();
    h.keys("4/qjks");
    assert!(!h.app.should_quit());
    assert_eq!(h.table().filter, "qjks");
    assert!(h.app.overlay().is_none());
}

// Sort.

#[test]
fn text_columns_sort_by_the_text_they_show() {
    let mut h = Harness::new();
    h.keys("3ssssssssss"); // Queues, sorted by Kind
    assert_eq!(h.status(), "Sorted by Kind, A to Z");
    let kinds: Vec<bool> = h
        .table()
        .rows
        .iter()
        .map(|&i| h.app.snapshot.queues[i].durable)
        .collect();
    // "durable" before "memory"; names break ties.
    assert_eq!(kinds, [true, true, true, false]);
}

#[test]
fn s_cycles_the_sort_column_and_capital_s_reverses() {
    let mut h = Harness::new();
    h.keys("3");
    assert_eq!(
        h.table().sort,
        Sort {
            column: 0,
            descending: false
        }
    );
    h.keys("s");
    assert_eq!(
        h.table().sort,
        Sort {
            column: 1,
            descending: true
        },
        "numbers start biggest first"
    );
    assert_eq!(h.status(), "Sorted by Ready, highest first");
    let order = |h: &Harness| {
        h.table()
            .rows
            .iter()
            .map(|&i| h.app.snapshot.queues[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&h), ["thumbnails", "reports", "jobs", "emails"]);
    h.keys("S");
    assert_eq!(order(&h), ["emails", "jobs", "reports", "thumbnails"]);
    assert_eq!(h.status(), "Sorted by Ready, lowest first");
    for _ in 1..tables::model(View::Queues).columns().len() {
        h.keys("s");
    }
    assert_eq!(
        h.table().sort,
        Sort {
            column: 0,
            descending: false
        },
        "wraps to Name, A to Z"
    );
}

// Purge.

#[test]
fn x_asks_before_purging_and_n_or_esc_cancel() {
    let mut h = Harness::new();
    h.keys("3jx");
    let confirmation = h.confirmation().cloned();
    assert_eq!(
        confirmation,
        Some(Confirmation::Purge {
            queue: "jobs".into(),
            count: 5
        })
    );
    assert_eq!(
        confirmation.map(|p| p.question()).as_deref(),
        Some("Purge 5 ready messages from jobs? y/n")
    );
    h.keys("n");
    assert!(h.app.overlay().is_none());
    assert_eq!(h.status(), "Cancelled the purge of jobs");
    h.keys("x").key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    assert!(h.source.executed.is_empty(), "nothing was sent");
}

#[test]
fn y_purges_and_the_result_shows_at_once() {
    let mut h = Harness::new();
    h.keys("3jxy");
    assert_eq!(
        h.source.executed,
        [Command::Purge {
            queue: "jobs".into()
        }]
    );
    assert_eq!(h.status(), "Purged 5 ready messages from jobs");
    assert_eq!(
        h.app.snapshot.queues[0].ready, 0,
        "refetched without waiting for a tick"
    );
}

#[test]
fn a_failed_purge_says_why() {
    let mut h = Harness::new();
    h.source.fail_next(ErrorCode::NotFound, "no queue jobs");
    h.keys("3jxy");
    assert_eq!(h.status(), "Purge of jobs failed: not_found: no queue jobs");
    assert_eq!(h.app.status().map(|s| s.level), Some(Level::Error));
}

#[test]
fn purge_does_nothing_outside_the_queues_view() {
    // The key table binds `x` only on Queues; the app refuses the action elsewhere
    // too, whatever sends it.
    let mut h = Harness::new();
    h.keys("3j2"); // a queue is selected on Queues, then another view is shown
    h.app.update(Action::Purge, &mut h.source);
    assert!(h.app.overlay().is_none());
    assert!(h.source.executed.is_empty());
}

// Kick.

#[test]
fn k_on_clients_asks_then_kicks_the_selected_client() {
    let mut h = Harness::new();
    h.keys("4")
        .key(KeyCode::Down)
        .key(KeyCode::Down)
        .key(KeyCode::Down);
    assert_eq!(h.selected().as_deref(), Some("c4"));
    h.keys("k");
    assert_eq!(
        h.confirmation().map(Confirmation::question).as_deref(),
        Some("Kick client c4 (analytics, 10.0.0.9:51820)? y/n")
    );
    h.keys("y");
    assert_eq!(
        h.source.executed,
        [Command::Kick {
            client: "c4".into(),
            reason: Some(KICK_REASON.into())
        }]
    );
    assert_eq!(h.status(), "Kicked c4 (analytics)");
    assert!(h.app.snapshot.clients.iter().all(|c| c.id != "c4"));
}

#[test]
fn k_moves_up_everywhere_but_clients() {
    let mut h = Harness::new();
    h.keys("2jjk");
    assert_eq!(h.selected().as_deref(), Some("chat.lobby"));
    assert!(h.app.overlay().is_none());
}

#[test]
fn capital_k_asks_with_the_count_then_kicks_every_slow_client() {
    let mut source = FixtureSource::typical(10);
    source.snapshot.clients[0].slow = true;
    let mut h = Harness::with(source);
    h.keys("K");
    assert_eq!(
        h.confirmation().map(Confirmation::question).as_deref(),
        Some("Kick 2 slow clients (c1, c4)? y/n")
    );
    h.keys("N");
    assert!(h.source.executed.is_empty());
    h.keys("Ky");
    let kicked: Vec<_> = h
        .source
        .executed
        .iter()
        .map(|c| match c {
            Command::Kick { client, reason } => (client.as_str(), reason.as_deref()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kicked,
        [
            ("c1", Some(KICK_SLOW_REASON)),
            ("c4", Some(KICK_SLOW_REASON))
        ]
    );
    assert_eq!(h.status(), "Kicked 2 slow clients");
}

#[test]
fn kick_slow_reports_partial_failure_and_no_slow_clients() {
    let mut h = Harness::new();
    h.source.fail_next(ErrorCode::NotFound, "no client c4");
    h.keys("Ky");
    assert_eq!(
        h.status(),
        "Kicked 0 of 1 slow client; c4: not_found: no client c4"
    );
    // c4 is still there (the kick failed) and still slow; mark it healthy.
    h.source
        .snapshot
        .clients
        .iter_mut()
        .for_each(|c| c.slow = false);
    h.tick().keys("K");
    assert!(h.app.overlay().is_none());
    assert_eq!(h.status(), "No client is marked slow");
}

// Publish form.

#[test]
fn p_opens_the_form_on_the_payload_for_the_selected_topic() {
    let mut h = Harness::new();
    h.keys("2jjjjp");
    let form = h.form();
    assert_eq!(form.destination.value(), "orders.eu");
    assert_eq!(form.focus, Field::Payload);
    assert_eq!(h.app.context(), Context::Form);
    // Letters are text here, not commands.
    h.keys(r#"{"id": 7, "q": "x"}"#);
    assert!(!h.app.should_quit());
    h.key(KeyCode::Enter);
    assert_eq!(
        h.source.executed,
        [Command::Publish {
            topic: "orders.eu".into(),
            data: json!({"id": 7, "q": "x"}),
            headers: None
        }]
    );
    assert!(h.app.overlay().is_none());
    // The fixture's seq is the topic's message count after the publish.
    assert_eq!(
        h.status(),
        format!("Published to orders.eu (seq {})", msgs_in(&h, "orders.eu"))
    );
}

fn msgs_in(h: &Harness, topic: &str) -> u64 {
    let t = h.source.snapshot.topics.iter().find(|t| t.name == topic);
    t.map_or(0, |t| t.msgs_in)
}

#[test]
fn tab_moves_to_the_destination_which_can_be_edited() {
    let mut h = Harness::new();
    h.keys("3jp").keys("resize cat.png");
    h.key(KeyCode::Tab);
    assert_eq!(h.form().focus, Field::Destination);
    h.keys(".urgent").key(KeyCode::BackTab);
    assert_eq!(h.form().focus, Field::Payload);
    h.key(KeyCode::Enter);
    assert_eq!(
        h.source.executed,
        [Command::Send {
            queue: "jobs.urgent".into(),
            data: json!("resize cat.png"),
            headers: None
        }],
        "text that is not JSON goes as a JSON string"
    );
    assert_eq!(h.status(), "Sent m900001 to jobs.urgent");
}

#[test]
fn a_send_error_stays_in_the_form_until_fixed() {
    let mut h = Harness::new();
    // audit.log is sealed.
    h.keys("2p").keys("42").key(KeyCode::Enter);
    assert_eq!(
        h.form().error.as_deref(),
        Some("sealed: topic audit.log is sealed")
    );
    assert_eq!(h.form().payload.value(), "42", "what was typed is kept");
    h.key(KeyCode::Tab)
        .press(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(h.form().error, None, "editing clears the stale error");
    h.keys("orders.us").key(KeyCode::Enter);
    assert!(h.app.overlay().is_none());
    assert_eq!(
        h.source.executed[1..],
        [Command::Publish {
            topic: "orders.us".into(),
            data: json!(42),
            headers: None
        }]
    );
}

#[test]
fn an_empty_destination_is_caught_before_sending() {
    let mut source = FixtureSource::typical(10);
    source.snapshot.topics.clear();
    let mut h = Harness::with(source);
    h.keys("2p").keys("{}").key(KeyCode::Enter);
    assert_eq!(h.form().error.as_deref(), Some("a topic name is needed"));
    assert!(h.source.executed.is_empty());
}

#[test]
fn esc_cancels_the_form_without_sending() {
    let mut h = Harness::new();
    h.keys("3p").keys("hello").key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    assert!(h.source.executed.is_empty());
    assert_eq!(h.status(), "Publish cancelled");
}

#[test]
fn p_on_an_inflight_job_sends_to_its_queue() {
    let mut h = Harness::new();
    h.keys("5p");
    assert_eq!(h.form().destination.value(), "emails");
    h.keys("p").key(KeyCode::Enter);
    assert_eq!(
        h.source.executed,
        [Command::Send {
            queue: "emails".into(),
            data: json!("p"),
            headers: None
        }]
    );
}

// Requeue.

#[test]
fn r_requeues_the_selected_job() {
    let mut h = Harness::new();
    h.keys("5");
    // Soonest deadline first: the overdue emails job.
    h.keys("r");
    assert_eq!(
        h.source.executed,
        [Command::Requeue {
            queue: "emails".into(),
            msg: "m000012".into()
        }]
    );
    assert_eq!(
        h.status(),
        "Requeued m000012 to emails (taken from c2/mail)"
    );
    assert_eq!(h.app.snapshot.inflight.len(), 2);
    h.source.fail_next(ErrorCode::NotFound, "gone");
    h.keys("r");
    assert_eq!(h.status(), "Requeue of m000039 failed: not_found: gone");
}

#[test]
fn requeue_does_nothing_outside_in_flight() {
    // As for purge: refused by the app itself, not only by the key table.
    let mut h = Harness::new();
    h.keys("3");
    h.app.update(Action::Requeue, &mut h.source);
    assert!(h.source.executed.is_empty());
    assert_eq!(h.app.status(), None);
}

// Peek, tail, client detail, help.

#[test]
fn enter_on_a_queue_peeks_without_consuming() {
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter);
    assert_eq!(
        h.source.executed,
        [Command::Peek {
            target: PeekTarget::Queue("jobs".into()),
            n: PEEK_COUNT
        }]
    );
    match h.app.overlay() {
        Some(Overlay::Peek(peek)) => assert_eq!(peek.messages, fixture::peeked_jobs()),
        other => panic!("{other:?}"),
    }
    h.keys("jj");
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(p)) if p.scroll == 2));
    h.key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
}

#[test]
fn a_failed_peek_shows_in_the_status_line() {
    let mut h = Harness::new();
    h.source.fail_next(ErrorCode::Internal, "disk on fire");
    h.keys("3").key(KeyCode::Enter);
    assert!(h.app.overlay().is_none());
    assert_eq!(h.status(), "Peek of emails failed: internal: disk on fire");
}

#[test]
fn enter_on_a_topic_tails_it_until_closed() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter);
    assert_eq!(h.source.open_tail_pattern(), Some("orders.eu"));
    h.source.push_tail(fixture::tail_orders());
    h.tick();
    let tail = |h: &Harness| match h.app.overlay() {
        Some(Overlay::Tail(t)) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(tail(&h).messages.len(), 4);
    assert_eq!(tail(&h).received, 4);
    // Scrolled back, new messages do not move the view.
    h.keys("k");
    assert_eq!(tail(&h).back, 1);
    h.source.push_tail(fixture::tail_orders());
    h.tick();
    assert_eq!(tail(&h).back, 5);
    h.key(KeyCode::End);
    assert_eq!(tail(&h).back, 0, "End follows again");
    h.key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    assert_eq!(
        h.source.open_tail_pattern(),
        None,
        "closing the popup closes the tail"
    );
}

/// The open tail, in its popup or under the publish form opened from it.
fn open_tail(h: &Harness) -> &LiveTail {
    match h.app.overlay() {
        Some(Overlay::Tail(tail)) => tail,
        Some(Overlay::Publish {
            tail: Some(tail), ..
        }) => tail,
        other => panic!("no tail, but {other:?}"),
    }
}

/// `(label, verdict)` for each subscription of the tail's newest message.
fn newest_delivery(h: &Harness) -> Vec<(String, Verdict)> {
    let newest = open_tail(h).messages.back().expect("a tailed message");
    newest
        .delivery
        .iter()
        .map(|(sub, verdict)| (sub.label(), verdict))
        .collect()
}

#[test]
fn the_tail_lists_the_topics_subscriptions_and_judges_each_message() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter);
    let labels: Vec<String> = open_tail(&h)
        .subscribers
        .list()
        .iter()
        .map(|s| s.label())
        .collect();
    assert_eq!(labels, ["c1/vip", "c4/s1", "c5/john"]);
    h.source.push_tail(fixture::tail_orders());
    h.tick();
    let delivered: Vec<(u64, usize)> = open_tail(&h)
        .messages
        .iter()
        .map(|m| (m.message.seq, m.delivery.delivered()))
        .collect();
    assert_eq!(
        delivered,
        [(48_211, 1), (48_212, 0), (48_213, 2), (48_215, 2)]
    );
    assert_eq!(
        newest_delivery(&h),
        [
            ("c1/vip".to_string(), Verdict::FilteredOut),
            ("c4/s1".to_string(), Verdict::Delivered),
            ("c5/john".to_string(), Verdict::Delivered),
        ]
    );
}

#[test]
fn the_tail_follows_subscriptions_as_snapshots_change_them() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter);
    h.source
        .push_tail(fixture::tail_orders().into_iter().take(1));
    h.tick();
    // c5 unsubscribes from orders.eu.
    h.source.snapshot.clients[4].subscriptions.pop();
    h.source
        .push_tail(fixture::tail_orders().into_iter().take(1));
    h.tick();
    assert_eq!(open_tail(&h).subscribers.list().len(), 2);
    let tail = open_tail(&h);
    let sizes: Vec<usize> = tail.messages.iter().map(|m| m.delivery.len()).collect();
    assert_eq!(
        sizes,
        [3, 2],
        "each message keeps the subscriptions it was judged against"
    );
}

#[test]
fn p_in_the_tail_opens_the_form_on_its_topic_and_returns_to_the_tail() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter).keys("p");
    assert_eq!(h.form().destination.value(), "orders.eu");
    assert_eq!(h.form().focus, Field::Payload);
    assert_eq!(h.app.context(), Context::Form);
    // Underneath, the tail stays open and keeps taking messages.
    h.source.push_tail(fixture::tail_orders());
    h.tick();
    assert_eq!(h.source.open_tail_pattern(), Some("orders.eu"));
    assert_eq!(open_tail(&h).received, 4);

    // Headers too: most filter keys are headers.
    h.keys(r#"{"amount": 75, "account": {"name": "John"}}"#)
        .key(KeyCode::Tab)
        .key(KeyCode::Tab);
    assert_eq!(h.form().focus, Field::Headers);
    h.keys("region=eu tags=[vip]").key(KeyCode::Enter);
    let mut headers = Headers::new();
    headers.insert("region".into(), HeaderValue::One("eu".into()));
    headers.insert("tags".into(), HeaderValue::Many(vec!["vip".into()]));
    assert_eq!(
        h.source.executed,
        [Command::Publish {
            topic: "orders.eu".into(),
            data: json!({"amount": 75, "account": {"name": "John"}}),
            headers: Some(headers)
        }]
    );
    assert!(matches!(h.app.overlay(), Some(Overlay::Tail(_))));
    assert_eq!(h.app.context(), Context::Tail);
    assert_eq!(
        h.status(),
        format!("Published to orders.eu (seq {})", msgs_in(&h, "orders.eu"))
    );
    h.tick();
    assert_eq!(open_tail(&h).received, 5);
    assert_eq!(
        newest_delivery(&h),
        [
            ("c1/vip".to_string(), Verdict::Delivered),
            ("c4/s1".to_string(), Verdict::FilteredOut),
            ("c5/john".to_string(), Verdict::Delivered),
        ]
    );
}

#[test]
fn esc_in_the_form_from_the_tail_goes_back_to_the_tail() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter).keys("p").keys("x");
    h.key(KeyCode::Esc);
    assert!(matches!(h.app.overlay(), Some(Overlay::Tail(t)) if t.pattern == "orders.eu"));
    assert_eq!(h.status(), "Publish cancelled");
    assert!(h.source.executed.is_empty());
    assert_eq!(h.source.open_tail_pattern(), Some("orders.eu"));
    h.key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    assert_eq!(h.source.open_tail_pattern(), None);
}

#[test]
fn p_in_other_popups_does_nothing() {
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter).keys("p");
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(_))));
    h.key(KeyCode::Esc).keys("4").key(KeyCode::Enter).keys("p");
    assert!(matches!(h.app.overlay(), Some(Overlay::Client { .. })));
}

#[test]
fn the_tail_keeps_a_bounded_history() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter);
    let one = fixture::tail_orders().remove(0);
    h.source
        .push_tail(std::iter::repeat_n(one, TAIL_KEEP + 300));
    // A tick takes at most TAIL_BATCH messages: the rest wait for the next ones.
    h.tick().tick().tick();
    match h.app.overlay() {
        Some(Overlay::Tail(t)) => {
            assert_eq!(t.messages.len(), TAIL_KEEP);
            assert_eq!(t.received, (TAIL_KEEP + 300) as u64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn enter_on_a_client_or_a_job_shows_client_details() {
    let mut h = Harness::new();
    h.keys("4jjj").key(KeyCode::Enter);
    assert!(matches!(h.app.overlay(), Some(Overlay::Client { client, .. }) if client == "c4"));
    h.key(KeyCode::Esc).keys("5").key(KeyCode::Enter);
    assert!(matches!(h.app.overlay(), Some(Overlay::Client { client, .. }) if client == "c2"));
}

#[test]
fn question_mark_opens_help_and_esc_or_question_mark_closes_it() {
    let mut h = Harness::new();
    h.keys("?");
    assert!(matches!(h.app.overlay(), Some(Overlay::Help)));
    h.keys("j?");
    assert!(h.app.overlay().is_none());
    h.keys("?").key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
}

// Quitting.

#[test]
fn q_quits_from_tables_and_popups() {
    let mut h = Harness::new();
    h.keys("q");
    assert!(h.app.should_quit());
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter).keys("q");
    assert!(h.app.should_quit());
}

#[test]
fn ctrl_c_quits_even_from_the_form_and_dialogs() {
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    let mut h = Harness::new();
    h.keys("2p").press(ctrl_c);
    assert!(h.app.should_quit());
    let mut h = Harness::new();
    h.keys("3jx").press(ctrl_c);
    assert!(h.app.should_quit());
    assert!(h.source.executed.is_empty());
}

// Rates.

#[test]
fn rates_come_from_counter_deltas_between_snapshots() {
    let h = Harness::new();
    // The harness's first snapshot had 100 fewer messages in, one second earlier.
    assert_eq!(h.app.rates.server.msgs_in, 100.0);
}
