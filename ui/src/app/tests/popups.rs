//! Peek, tail, client detail and help popups; quitting; rates.

use super::*;

// Peek, tail, client detail, help.

#[test]
fn enter_on_a_queue_peeks_without_consuming() {
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter).key(KeyCode::Enter);
    assert_eq!(h.source.executed, [peek_of("jobs", None)]);
    match h.app.overlay() {
        Some(Overlay::Peek(peek)) => assert_eq!(peek.messages, fixture::peeked_jobs()),
        other => panic!("{other:?}"),
    }
    // ↓ selects the first message, then the next.
    h.keys("jj");
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(p)) if p.selected == Some(1)));
    h.key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
}

/// The open peek popup, or a panic.
fn open_peek(h: &Harness) -> &Peek {
    match h.app.overlay() {
        Some(Overlay::Peek(peek)) => peek,
        other => panic!("no peek, but {other:?}"),
    }
}

/// The peek command asking for a page of `queue` after the cursor `after`.
fn peek_of(queue: &str, after: Option<u64>) -> Command {
    Command::Peek {
        target: PeekTarget::Queue(queue.into()),
        n: PEEK_COUNT,
        after,
        query: MessageQuery::default(),
    }
}

/// The ids of the open peek's messages.
fn peeked_ids(h: &Harness) -> Vec<String> {
    let messages = &open_peek(h).messages;
    messages.iter().filter_map(|m| m.msg.clone()).collect()
}

#[test]
fn the_peek_popup_pages_by_asking_the_broker_again() {
    let mut h = Harness::new();
    // thumbnails, the fourth queue by name, holds 1,250 ready messages.
    h.keys("3jjj").key(KeyCode::Enter).key(KeyCode::Enter);
    assert_eq!(open_peek(&h).page, 0);
    assert_eq!(peeked_ids(&h).first().map(String::as_str), Some("m100001"));
    h.keys("jj").key(KeyCode::Right);
    assert_eq!(
        h.source.executed.last(),
        Some(&peek_of("thumbnails", Some(100_010)))
    );
    let ids: Vec<String> = (11..=20).map(|i| format!("m1{i:05}")).collect();
    assert_eq!(peeked_ids(&h), ids);
    assert_eq!((open_peek(&h).first(), open_peek(&h).scroll), (11, 0));
    assert_eq!(open_peek(&h).ready, Some(1_250));
    h.keys("n");
    assert_eq!(
        h.source.executed.last(),
        Some(&peek_of("thumbnails", Some(100_020)))
    );
    assert_eq!(open_peek(&h).page, 2);
    h.key(KeyCode::Left);
    assert_eq!(
        h.source.executed.last(),
        Some(&peek_of("thumbnails", Some(100_010)))
    );
    h.keys("p");
    assert_eq!(h.source.executed.last(), Some(&peek_of("thumbnails", None)));
    assert_eq!(open_peek(&h).page, 0);
    h.keys("p");
    assert_eq!(h.source.executed.len(), 5, "no page before the first");
    assert_eq!(h.status(), "This is the first page");
}

#[test]
fn peek_paging_goes_through_the_whole_queue_and_stops_after_its_last_message() {
    let mut h = Harness::new();
    // jobs has three messages to peek: one page.
    h.keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("n");
    assert_eq!(h.source.executed, [peek_of("jobs", None)]);
    assert_eq!(h.status(), "No more ready messages in jobs");
    // thumbnails has 1,250: past the broker's old 1,000 by its cursor.
    h.key(KeyCode::Esc)
        .key(KeyCode::Esc)
        .keys("jj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter);
    for _ in 0..124 {
        h.keys("n");
    }
    assert_eq!(
        h.source.executed.last(),
        Some(&peek_of("thumbnails", Some(101_240)))
    );
    assert_eq!(open_peek(&h).first(), 1241);
    assert_eq!(peeked_ids(&h).last().map(String::as_str), Some("m101250"));
    let asked = h.source.executed.len();
    h.keys("n");
    assert_eq!(h.source.executed.len(), asked, "nothing after the last");
    assert_eq!(h.status(), "No more ready messages in thumbnails");
}

#[test]
fn a_failed_peek_shows_in_the_status_line() {
    let mut h = Harness::new();
    h.keys("3").key(KeyCode::Enter);
    h.source.fail_next(ErrorCode::Internal, "disk on fire");
    h.key(KeyCode::Enter);
    assert!(h.app.overlay().is_none());
    assert_eq!(
        h.status(),
        "Peek of emails.send failed: internal: disk on fire"
    );
}

#[test]
fn enter_on_a_topic_tails_it_until_closed() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
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
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
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
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
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
    h.keys("2jjjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("p");
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
        format!(
            "Published to orders.eu: 3 subscribers (seq {})",
            msgs_in(&h, "orders.eu")
        )
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
    h.keys("2jjjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("p")
        .keys("x");
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
    h.keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("p");
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(_))));
    h.key(KeyCode::Esc)
        .key(KeyCode::Esc)
        .keys("4")
        .key(KeyCode::Enter)
        .keys("p");
    assert!(matches!(h.app.overlay(), Some(Overlay::Client { .. })));
}

#[test]
fn the_tail_keeps_a_bounded_history() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
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
    assert!(matches!(h.app.overlay(), Some(Overlay::Help { scroll: 0 })));
    h.keys("j?");
    assert!(h.app.overlay().is_none());
    h.keys("?").key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
}

/// The help popup's scroll, or a panic if help is not open.
fn help_scroll(h: &Harness) -> usize {
    match h.app.overlay() {
        Some(Overlay::Help { scroll }) => *scroll,
        other => panic!("no help, but {other:?}"),
    }
}

#[test]
fn help_scrolls_with_the_popup_keys_and_leaves_the_table_alone() {
    let mut h = Harness::new();
    h.keys("3?jj");
    assert_eq!(help_scroll(&h), 2);
    h.keys("k").key(KeyCode::Down);
    assert_eq!(help_scroll(&h), 2);
    h.key(KeyCode::PageDown);
    assert_eq!(help_scroll(&h), 12);
    h.key(KeyCode::PageUp).key(KeyCode::Up);
    assert_eq!(help_scroll(&h), 1);
    // Drawing clamps the end to the content's last page.
    h.key(KeyCode::End);
    assert_eq!(help_scroll(&h), usize::MAX);
    h.key(KeyCode::Home);
    assert_eq!(help_scroll(&h), 0);
    h.key(KeyCode::Esc);
    assert_eq!(h.selected().as_deref(), Some("emails.send"));
}

// Quitting: the embedded console's `q` stops the broker, so it asks first when
// that would drop anything.

/// The question asked before stopping the broker, if it is open.
fn stop_question(h: &Harness) -> Option<String> {
    h.app.stopping().map(|s| s.question())
}

fn ctrl_c() -> KeyEvent {
    KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
}

/// A broker with no client and messages only in a durable queue: a restart
/// finds them on disk, so stopping it loses nothing.
fn nothing_to_lose() -> FixtureSource {
    let mut snapshot = fixture::typical(10);
    snapshot.clients.clear();
    snapshot.inflight.clear();
    snapshot.server.connections = 0;
    snapshot.queues.retain(|q| q.durable);
    assert!(snapshot.queues.iter().any(|q| q.ready > 0));
    FixtureSource::new(snapshot)
}

#[test]
fn q_with_clients_connected_asks_before_stopping_the_broker() {
    let mut h = Harness::new();
    h.keys("q");
    assert!(
        !h.app.should_quit(),
        "q must not stop a broker with clients"
    );
    assert_eq!(h.app.context(), Context::Confirm);
    assert_eq!(
        stop_question(&h).as_deref(),
        Some(
            "Stop the broker? 6 clients connected, 42 messages in memory queues will be lost. y/n"
        )
    );
    // Asked from another view, the same question: it is the broker, not the row.
    let mut h = Harness::new();
    h.keys("4q");
    assert!(!h.app.should_quit());
    assert!(stop_question(&h).is_some());
}

#[test]
fn n_or_esc_keeps_the_broker_running_and_y_stops_it() {
    let mut h = Harness::new();
    h.keys("qn");
    assert!(!h.app.should_quit());
    assert!(stop_question(&h).is_none());
    assert_eq!(h.status(), "Not stopped: the broker keeps running");
    h.keys("q").key(KeyCode::Esc);
    assert!(!h.app.should_quit());
    assert!(stop_question(&h).is_none());
    h.keys("qy");
    assert!(h.app.should_quit());
    assert!(h.source.executed.is_empty());
}

#[test]
fn the_question_names_only_what_would_be_lost_and_follows_the_broker() {
    let mut source = nothing_to_lose();
    source.snapshot.server.connections = 1;
    let mut h = Harness::with(source);
    h.keys("q");
    assert_eq!(
        stop_question(&h).as_deref(),
        Some("Stop the broker? 1 client connected will be lost. y/n")
    );
    // While it is open, the count is the latest snapshot's.
    h.source.snapshot.server.connections = 0;
    h.source.snapshot.queues[0].durable = false;
    let ready = h.source.snapshot.queues[0].ready + h.source.snapshot.queues[0].unacked;
    h.tick();
    assert_eq!(
        stop_question(&h),
        Some(format!(
            "Stop the broker? {} messages in memory queues will be lost. y/n",
            format::grouped(ready)
        ))
    );
}

#[test]
fn q_with_nothing_to_lose_quits_at_once() {
    let mut h = Harness::with(nothing_to_lose());
    h.keys("q");
    assert!(h.app.should_quit());
    let mut h = Harness::with(FixtureSource::new(fixture::empty()));
    h.press(ctrl_c());
    assert!(h.app.should_quit());
}

#[test]
fn a_console_whose_quitting_stops_no_broker_quits_at_once() {
    let mut source = FixtureSource::typical(10);
    source.remote = true;
    let mut h = Harness::with(source);
    h.keys("q");
    assert!(h.app.should_quit());
}

#[test]
fn ctrl_c_in_the_publish_form_asks_and_no_leaves_the_form_as_it_was() {
    let mut h = Harness::new();
    h.keys("2p").keys("hello").press(ctrl_c());
    assert!(
        !h.app.should_quit(),
        "Ctrl-C while typing must not stop the broker"
    );
    assert!(stop_question(&h).is_some());
    // The question sits over the form; typed keys answer it, not the payload.
    h.keys("n");
    assert_eq!(h.app.context(), Context::Form);
    assert!(h.form().payload.value().ends_with("hello"));
    h.press(ctrl_c()).keys("y");
    assert!(h.app.should_quit());
    assert!(h.source.executed.is_empty());
}

#[test]
fn ctrl_c_in_a_confirm_dialog_asks_and_runs_nothing() {
    let mut h = Harness::new();
    h.keys("3jx").press(ctrl_c());
    assert!(!h.app.should_quit());
    assert!(stop_question(&h).is_some());
    // `y` answers the question on top, not the purge underneath.
    h.keys("y");
    assert!(h.app.should_quit());
    assert!(h.source.executed.is_empty());
}

#[test]
fn q_in_a_popup_closes_it_and_never_stops_the_broker() {
    // Help.
    let mut h = Harness::new();
    h.keys("?q");
    assert!(!h.app.should_quit());
    assert!(h.app.overlay().is_none());
    assert!(stop_question(&h).is_none());
    // Peek.
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter).key(KeyCode::Enter);
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(_))));
    h.keys("q");
    assert!(!h.app.should_quit());
    assert!(h.app.overlay().is_none());
    assert!(stop_question(&h).is_none());
    // Tail: closing it closes the tail.
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
    assert!(matches!(h.app.overlay(), Some(Overlay::Tail(_))));
    h.keys("q");
    assert!(!h.app.should_quit());
    assert!(h.app.overlay().is_none());
    assert_eq!(h.source.open_tail_pattern(), None);
    // Client details.
    let mut h = Harness::new();
    h.keys("4").key(KeyCode::Enter);
    assert!(matches!(h.app.overlay(), Some(Overlay::Client { .. })));
    h.keys("q");
    assert!(!h.app.should_quit());
    assert!(h.app.overlay().is_none());
}

#[test]
fn q_in_the_publish_form_is_text() {
    let mut h = Harness::new();
    h.keys("2p").keys("q");
    assert!(!h.app.should_quit());
    assert!(stop_question(&h).is_none());
    assert!(h.form().payload.value().ends_with('q'));
}

// Rates.

#[test]
fn rates_come_from_counter_deltas_between_snapshots() {
    let h = Harness::new();
    // The harness's first snapshot had 100 fewer messages in, one second earlier.
    assert_eq!(h.app.rates.server.msgs_in, 100.0);
}

/// `thumbnails` as a dead-letter queue: its peeked messages died in `jobs`.
fn dead_letters_of_jobs() -> Harness {
    let mut source = FixtureSource::typical(10);
    let dead = fixture::dead_letters_of_jobs(1_250);
    source.peeks.insert("thumbnails".into(), dead);
    Harness::with(source)
}

#[test]
fn capital_m_in_a_dead_letter_peek_asks_then_moves_them_back_where_they_died() {
    let mut h = dead_letters_of_jobs();
    h.keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("M");
    let confirmation = h.confirmation().cloned();
    assert_eq!(
        confirmation,
        Some(Confirmation::MoveBack {
            from: "thumbnails".into(),
            to: "jobs".into(),
            count: 1_250
        })
    );
    assert_eq!(
        confirmation.map(|c| c.question()).as_deref(),
        Some("Move the ready messages of thumbnails that died in jobs back to jobs (1250 ready messages in thumbnails)? y/n")
    );
    h.keys("y");
    // The move, then the peek again: it shows what is left.
    let n = h.source.executed.len();
    assert_eq!(
        h.source.executed[n - 2],
        Command::Move {
            from: "thumbnails".into(),
            to: "jobs".into(),
            n: None,
            filter: Some("x-dead-letter-queue = 'jobs'".into()),
            msg: None,
        }
    );
    assert!(matches!(h.app.overlay(), Some(Overlay::Peek(_))));
    assert_eq!(
        h.status(),
        "Moved 1250 messages from thumbnails back to jobs"
    );
    assert_eq!(
        h.app.snapshot.queues[0].ready,
        5 + 1_250,
        "refetched at once"
    );
}

#[test]
fn capital_m_on_messages_that_are_not_dead_letters_moves_nothing() {
    let mut h = Harness::new();
    h.keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("M");
    assert!(h.confirmation().is_none());
    assert_eq!(
        h.status(),
        "Nothing to move back: the messages shown of jobs are not dead letters (no x-dead-letter-queue)"
    );
    let executed = h.source.executed.len();
    h.keys("n").key(KeyCode::Esc);
    assert_eq!(h.source.executed.len(), executed);
}

// Queue and topic pages.

#[test]
fn enter_opens_a_queues_page_asked_again_each_second_and_esc_leaves_it() {
    let mut h = Harness::new();
    h.keys("3j").key(KeyCode::Enter);
    assert_eq!(h.source.described, [PeekTarget::Queue("jobs".into())]);
    assert!(h.source.executed.is_empty(), "looking is not acting");
    assert_eq!(h.app.context(), keys::Context::Page);
    let page = h.app.shown_page().unwrap();
    match &page.data {
        PageData::Queue(q) => {
            assert_eq!(q.stats.name, "jobs");
            assert_eq!(q.history.ready.len(), 900);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(page.ack_rates, [None, None], "one answer: no rates yet");
    // The page is asked again a second after its answer, not sooner, and the
    // asking is not shown as waiting.
    h.tick().tick().tick();
    assert_eq!(h.source.described.len(), 1);
    h.tick();
    assert_eq!(h.source.described.len(), 2);
    assert_eq!(h.app.in_progress(), None);
    // The fixture's consumers acked nothing between the two answers.
    assert_eq!(
        h.app.shown_page().unwrap().ack_rates,
        [Some(0.0), Some(0.0)]
    );
    h.key(KeyCode::Esc);
    assert!(h.app.shown_page().is_none());
    assert_eq!(h.app.context(), keys::Context::Table);
    h.tick().tick().tick().tick().tick();
    assert_eq!(
        h.source.described.len(),
        2,
        "a closed page is not asked for"
    );
}

#[test]
fn a_topics_page_tails_it_on_enter_and_a_failed_describe_says_why() {
    let mut h = Harness::new();
    h.keys("2jjjj").key(KeyCode::Enter);
    match &h.app.shown_page().unwrap().data {
        PageData::Topic(t) => {
            assert_eq!(t.stats.name, "orders.eu");
            assert_eq!(t.subscribers.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    h.key(KeyCode::Enter);
    assert_eq!(h.source.open_tail_pattern(), Some("orders.eu"));
    // Esc closes the tail, back to the page; the next describe fails.
    h.key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    h.source
        .fail_next(ErrorCode::NotFound, "no topic `orders.eu`");
    h.tick().tick().tick().tick();
    assert_eq!(
        h.app.shown_page().unwrap().data,
        PageData::Failed("not_found: no topic `orders.eu`".into())
    );
}

#[test]
fn f_sorts_the_clients_fullest_first() {
    let mut h = Harness::new();
    h.keys("4f");
    assert_eq!(h.status(), "Sorted by outbound buffer, fullest first");
    // By the percentage the gauge shows: 0.2% and 0.03% both read 0%.
    let fills: Vec<u64> = h
        .table()
        .rows
        .iter()
        .map(|&i| {
            let c = &h.app.snapshot.clients[i];
            (crate::tables::clients::buffer_fill(c.pending_bytes, c.pending_limit) * 100.0).round()
                as u64
        })
        .collect();
    assert_eq!(fills, [70, 0, 0, 0, 0, 0]);
    assert_eq!(
        h.selected().as_deref(),
        Some("c4"),
        "the fullest, at the top"
    );
    h.keys("3f");
    assert_eq!(h.app.view(), View::Queues, "f is the Clients view's");
}

#[test]
fn m_moves_the_selected_dead_letter_back_after_asking() {
    let mut h = dead_letters_of_jobs();
    h.keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("m");
    assert_eq!(h.status(), "Select a message first (↑↓); M moves them all");
    h.keys("jjm");
    let confirmation = h.confirmation().cloned();
    let second = open_peek_id(&dead_letters_of_jobs(), 1);
    assert_eq!(
        confirmation,
        Some(Confirmation::MoveOne {
            from: "thumbnails".into(),
            to: "jobs".into(),
            msg: second.clone(),
        })
    );
    assert_eq!(
        confirmation.map(|c| c.question()),
        Some(format!(
            "Move 1 message (message {second}) from thumbnails back to jobs? y/n"
        ))
    );
    h.keys("y");
    let moved = Command::Move {
        from: "thumbnails".into(),
        to: "jobs".into(),
        n: None,
        filter: None,
        msg: Some(second),
    };
    // The move, then the same page again: it changed.
    let n = h.source.executed.len();
    assert_eq!(h.source.executed[n - 2], moved);
    assert!(matches!(
        h.source.executed[n - 1],
        Command::Peek { after: None, .. }
    ));
}

/// The id of the `i`th dead letter the fixture peeks.
fn open_peek_id(_: &Harness, i: usize) -> String {
    fixture::dead_letters_of_jobs(1_250)[i].msg.clone().unwrap()
}

#[test]
fn d_drops_the_selected_message_after_asking() {
    let mut h = Harness::new();
    h.keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("d");
    assert_eq!(h.status(), "Select a message first (↑↓)");
    h.keys("jd");
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Drop 1 message (message m000042) from jobs? y/n")
    );
    h.keys("y");
    let n = h.source.executed.len();
    assert_eq!(
        h.source.executed[n - 2],
        Command::Drop {
            queue: "jobs".into(),
            msg: "m000042".into()
        }
    );
    assert_eq!(h.status(), "Dropped message m000042 from jobs");
}

#[test]
fn slash_in_a_peek_searches_by_filter_or_by_text_broker_side() {
    let mut h = Harness::new();
    h.keys("3jjj")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("/");
    assert_eq!(h.app.search_input(), Some(""));
    h.keys("data.image = 'img3.png'").key(KeyCode::Enter);
    let filter = MessageQuery {
        filter: Some("data.image = 'img3.png'".into()),
        search: None,
    };
    assert_eq!(
        h.source.executed.last(),
        Some(&Command::Peek {
            target: PeekTarget::Queue("thumbnails".into()),
            n: PEEK_COUNT,
            after: None,
            query: filter.clone(),
        })
    );
    assert_eq!(peeked_ids(&h), ["m100003"]);
    assert_eq!(open_peek(&h).query, filter);
    // Not a filter: a substring. `/` starts from the query shown.
    h.keys("/");
    assert_eq!(h.app.search_input(), Some("data.image = 'img3.png'"));
    for _ in 0.."data.image = 'img3.png'".len() {
        h.key(KeyCode::Backspace);
    }
    h.keys("img12").key(KeyCode::Enter);
    assert_eq!(open_peek(&h).query.search.as_deref(), Some("img12"));
    assert_eq!(peeked_ids(&h)[..2], ["m100012", "m100120"]);
    // Nothing matches: an empty page that says so.
    h.keys("/").key(KeyCode::Esc);
    assert_eq!(
        h.app.search_input(),
        None,
        "Esc leaves the search as it was"
    );
    assert_eq!(open_peek(&h).query.search.as_deref(), Some("img12"));
}

#[test]
fn e_exports_the_page_or_the_selected_message_as_json_lines() {
    let dir = std::env::temp_dir().join(format!("sy-ui-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = Harness::new();
    h.app.export_into(&dir);
    h.keys("3j")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter)
        .keys("e");
    let path = h
        .status()
        .strip_prefix("Exported 3 messages to ")
        .unwrap()
        .to_string();
    let lines: Vec<String> = fixture::peeked_jobs()
        .iter()
        .map(switchyard_broker::export::peeked_line)
        .collect();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        lines.join("\n") + "\n"
    );
    h.keys("jje");
    let path = h
        .status()
        .strip_prefix("Exported 1 message to ")
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        lines[1].clone() + "\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slash_in_a_tail_restarts_it_with_the_query_and_e_exports_it() {
    let dir = std::env::temp_dir().join(format!("sy-ui-tail-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = Harness::new();
    h.app.export_into(&dir);
    h.keys("2jjjj").key(KeyCode::Enter).key(KeyCode::Enter);
    let pattern = h.source.tails_opened[0].clone();
    h.keys("/status = 'new'").key(KeyCode::Enter);
    assert_eq!(h.source.tails_opened, [pattern.clone(), pattern]);
    assert_eq!(
        open_tail(&h).query.filter.as_deref(),
        Some("status = 'new'")
    );
    h.keys("e");
    assert_eq!(h.status(), "Nothing to export: no messages shown");
    // What the tail took in, one line each, as `switchyard peek` prints them.
    h.source.push_tail(fixture::tail_orders());
    h.tick().keys("e");
    let tailed: Vec<String> = open_tail(&h)
        .messages
        .iter()
        .map(|e| switchyard_broker::export::tail_line(&e.message))
        .collect();
    assert!(!tailed.is_empty());
    let want = format!("Exported {} messages to ", tailed.len());
    let path = h.status().strip_prefix(want.as_str()).unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        tailed.join("\n") + "\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
