//! The actions that change the broker: purge, kick, publish, requeue.

use super::*;

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
fn the_purge_question_follows_new_snapshots_while_open() {
    // Asked for 5, then 10 more arrive before `y`: the question and the result
    // both say what is purged now.
    let mut h = Harness::new();
    h.keys("3jx");
    h.source.snapshot.queues[0].ready = 15;
    h.tick();
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Purge 15 ready messages from jobs? y/n")
    );
    h.keys("y");
    assert_eq!(h.status(), "Purged 15 ready messages from jobs");
}

#[test]
fn a_purge_question_whose_queue_emptied_says_so() {
    let mut h = Harness::new();
    h.keys("3jx");
    h.source.snapshot.queues[0].ready = 0;
    h.tick();
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("jobs has no ready messages now; purge anyway? y/n")
    );
}

#[test]
fn purging_an_empty_queue_asks_nothing() {
    // `emails.send` has no ready messages: there is no question to ask.
    let mut h = Harness::new();
    h.keys("3x");
    assert!(h.app.overlay().is_none());
    assert_eq!(
        h.status(),
        "Nothing to purge: emails.send has no ready messages"
    );
    assert!(h.source.executed.is_empty());
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
        Some("Kick 2 slow clients (c1 (order-service), c4 (analytics))? y/n")
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
        format!(
            "Published to orders.eu: 3 subscribers (seq {})",
            msgs_in(&h, "orders.eu")
        )
    );
}

#[test]
fn publishing_to_a_topic_nobody_listens_to_says_so() {
    // chat.lobby has no subscription: a bare success would hide that the
    // message went nowhere.
    let mut h = Harness::new();
    h.keys("2jp").keys("{}").key(KeyCode::Enter);
    assert_eq!(
        h.status(),
        format!(
            "Published to chat.lobby: 0 subscribers (seq {})",
            msgs_in(&h, "chat.lobby")
        )
    );
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
    assert_eq!(h.status(), "Sent to jobs.urgent as message m900001");
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
    assert_eq!(h.form().destination.value(), "emails.send");
    h.keys("p").key(KeyCode::Enter);
    assert_eq!(
        h.source.executed,
        [Command::Send {
            queue: "emails.send".into(),
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
    // Soonest deadline first: the overdue emails.send job.
    h.keys("r");
    assert_eq!(
        h.source.executed,
        [Command::Requeue {
            queue: "emails.send".into(),
            msg: "m000012".into()
        }]
    );
    assert_eq!(
        h.status(),
        "Requeued message m000012 to emails.send (taken from c2/mail)"
    );
    assert_eq!(h.app.snapshot.inflight.len(), 2);
    h.source.fail_next(ErrorCode::NotFound, "gone");
    h.keys("r");
    assert_eq!(
        h.status(),
        "Requeue of message m000039 failed: not_found: gone"
    );
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

#[test]
fn capital_r_asks_with_the_count_then_requeues_every_job_of_the_consumer() {
    let mut h = Harness::new();
    h.keys("5");
    let job = h.app.snapshot.inflight[h.app.table(View::InFlight).selected_row().unwrap()].clone();
    let count = (h.app.snapshot.inflight.iter())
        .filter(|j| j.client == job.client && j.cid == job.cid)
        .count() as u64;
    h.keys("R");
    let confirmation = h.confirmation().cloned();
    assert_eq!(
        confirmation,
        Some(Confirmation::RequeueConsumer {
            client: job.client.clone(),
            cid: job.cid.clone(),
            name: Some("worker-1".into()),
            count
        })
    );
    let s = if count == 1 { "" } else { "s" };
    assert_eq!(
        confirmation.map(|c| c.question()),
        Some(format!(
            "Requeue the {count} job{s} {}/{} (worker-1) holds? y/n",
            job.client, job.cid
        ))
    );
    h.keys("y");
    assert_eq!(
        h.source.executed.last(),
        Some(&Command::RequeueConsumer {
            client: job.client.clone(),
            cid: job.cid.clone()
        })
    );
    assert_eq!(
        h.status(),
        format!("Requeued {count} job{s} of {}/{}", job.client, job.cid)
    );
}
