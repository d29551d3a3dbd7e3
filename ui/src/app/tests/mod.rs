//! Key handling as state transitions: keys go in through `handle_key`, and the
//! tests look at the state and at the commands the fixture broker received. No
//! terminal is involved. One file per topic: moving around (`navigation.rs`),
//! the actions that change the broker (`actions.rs`), popups and quitting
//! (`popups.rs`), and a broker that takes its time to answer (`slow_broker.rs`).

mod actions;
mod habits;
mod navigation;
mod popups;
mod slow_broker;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use switchyard_broker::stats::{EventKind, EventRecord, TopicStats};
use switchyard_broker::{Command, ErrorCode, MessageQuery, PeekTarget};
use switchyard_broker::{HeaderValue, Headers};

use super::*;
use crate::delivery::Verdict;
use crate::fixture::{self, FixtureSource};
use crate::format;
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

/// The message count of `topic` in the fixture broker.
fn msgs_in(h: &Harness, topic: &str) -> u64 {
    let t = h.source.snapshot.topics.iter().find(|t| t.name == topic);
    t.map_or(0, |t| t.msgs_in)
}
