//! Moving around: views, selection, paging, filter and sort.

use super::*;

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
    h.keys("3sssssssssssss"); // Queues, sorted by Kind
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
    assert_eq!(order(&h), ["thumbnails", "reports", "jobs", "emails.send"]);
    h.keys("S");
    assert_eq!(order(&h), ["emails.send", "jobs", "reports", "thumbnails"]);
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

// Toasts.

#[test]
fn a_toast_goes_after_four_seconds_of_ticks() {
    let mut h = Harness::new();
    h.keys("3s");
    assert_eq!(h.status(), "Sorted by Ready, highest first");
    // Ticks are 250 ms apart: fifteen of them are 3.75 s.
    for _ in 0..15 {
        h.tick();
    }
    assert_eq!(
        h.status(),
        "Sorted by Ready, highest first",
        "still up at 3.75 s"
    );
    h.tick();
    assert!(h.app.status().is_none(), "gone at 4 s");
}

#[test]
fn a_toast_stays_on_the_view_it_was_raised_on() {
    let mut h = Harness::new();
    h.keys("3s");
    assert!(h.app.status().is_some());
    h.keys("4");
    assert!(h.app.status().is_none(), "not carried to Clients");
}

/// After `s` the new order shows from its top: the selection and the scroll
/// go to the first row, where the rows the order is for are.
#[test]
fn a_new_sort_starts_at_the_top() {
    let mut h = Harness::with(FixtureSource::new(fixture::crowded(10)));
    h.keys("3");
    h.app.tables[View::Queues.index()].page = 20;
    h.key(KeyCode::End);
    h.app.tables[View::Queues.index()].scroll_to_show(20);
    assert!(h.table().offset > 0 && h.table().selected > 0);
    h.keys("s");
    assert_eq!((h.table().selected, h.table().offset), (0, 0));
    let top = h.table().rows[0];
    let ready = |i: usize| h.app.snapshot.queues[i].ready;
    assert!(h.table().rows.iter().all(|&i| ready(i) <= ready(top)));
    assert_eq!(
        h.selected().as_deref(),
        Some(h.app.snapshot.queues[top].name.as_str())
    );
}
