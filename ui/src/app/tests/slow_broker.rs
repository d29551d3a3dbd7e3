//! A broker that takes its time: the command is on its way while the dashboard
//! keeps taking snapshots and keys, and its outcome shows when it comes. (That
//! frames keep being drawn meanwhile is checked in `tests/snapshots.rs`, with the
//! drawing.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

/// A harness whose broker holds every command until told to answer, and a count
/// of the times the app was woken by an answer.
fn slow() -> (Harness, Arc<AtomicUsize>) {
    let mut h = Harness::new();
    h.source.hold_answers = true;
    let woken = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&woken);
    h.app.wake_on_reply(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    (h, woken)
}

#[test]
fn a_slow_publish_shows_as_running_while_the_dashboard_goes_on() {
    let (mut h, woken) = slow();
    h.keys("2jjjjp").keys("{}").key(KeyCode::Enter);
    assert_eq!(h.source.held(), 1);
    assert!(
        h.source.executed.is_empty(),
        "the broker has not run it yet"
    );
    assert!(
        matches!(h.app.overlay(), Some(Overlay::Publish { .. })),
        "the form waits open"
    );
    assert_eq!(
        h.app.in_progress().as_deref(),
        Some("Publishing to orders.eu…")
    );
    h.key(KeyCode::Enter);
    assert_eq!(h.source.held(), 1, "a second Enter sends nothing more");

    // Meanwhile: new snapshots and keys.
    h.source.snapshot.topics.push(TopicStats {
        name: "billing".into(),
        ..Default::default()
    });
    h.tick();
    assert!(h.app.snapshot().topics.iter().any(|t| t.name == "billing"));
    h.key(KeyCode::Tab);
    assert_eq!(h.form().focus, Field::Destination);

    // The answer comes: it wakes the loop, and shows the next time the app looks.
    h.source.answer_held();
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    h.tick();
    assert_eq!(h.app.in_progress(), None);
    assert!(h.app.overlay().is_none(), "the form closed on success");
    assert_eq!(
        h.status(),
        format!(
            "Published to orders.eu: 3 subscribers (seq {})",
            msgs_in(&h, "orders.eu")
        )
    );
}

#[test]
fn a_slow_failure_lands_in_the_form_or_after_it_closed_in_the_status_line() {
    // Still open: the error shows in the form, which can send again.
    let (mut h, _) = slow();
    h.keys("2p").keys("42").key(KeyCode::Enter); // audit.log is sealed
    h.source.answer_held();
    h.tick();
    assert_eq!(
        h.form().error.as_deref(),
        Some("sealed: topic audit.log is sealed")
    );
    h.key(KeyCode::Enter);
    assert_eq!(h.source.held(), 1, "sent again once the answer came");

    // Closed meanwhile: the form is gone, so the status line says it.
    let (mut h, _) = slow();
    h.keys("2p")
        .keys("42")
        .key(KeyCode::Enter)
        .key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    h.source.answer_held();
    h.tick();
    assert_eq!(
        h.status(),
        "Publish to audit.log failed: sealed: topic audit.log is sealed"
    );
    assert_eq!(h.app.status().map(|s| s.level), Some(Level::Error));
}

#[test]
fn kicking_every_slow_client_finishes_when_the_last_kick_is_answered() {
    let mut source = FixtureSource::typical(10);
    source.snapshot.clients[0].slow = true;
    let mut h = Harness::with(source);
    h.source.hold_answers = true;
    h.keys("Ky");
    assert_eq!(h.source.held(), 2);
    assert_eq!(
        h.app.in_progress().as_deref(),
        Some("Kicking 2 slow clients…")
    );
    h.source.answer_held();
    h.tick();
    assert_eq!(h.app.in_progress(), None);
    assert_eq!(h.status(), "Kicked 2 slow clients");
}
