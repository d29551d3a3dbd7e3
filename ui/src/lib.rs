//! Switchyard's dashboard: draws broker state and sends operator commands.
//!
//! The binary calls [`run`] with a [`Source`] (the embedded broker, or later a
//! remote one) and the URL to show; `run` owns the terminal until the operator
//! quits. Everything else is public for tests and for other front ends:
//! [`App`] holds the state and changes it with [`App::update`], [`draw`] renders
//! it, [`keys`] maps keys to actions. With the `testing` feature (and in the
//! crate's own tests), `fixture` provides fixed broker states and a scripted
//! source; release builds do not compile it.

#![warn(missing_docs)]
// Nothing from outside (broker, terminal, user) may panic the dashboard; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod action;
pub mod app;
pub mod delivery;
#[cfg(any(test, feature = "testing"))]
pub mod fixture;
mod format;
pub mod keys;
pub mod publish;
pub mod rates;
pub mod source;
pub mod tables;
mod terminal;
pub mod view;
pub mod views;
pub mod widgets;

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};

pub use action::Action;
pub use app::App;
#[cfg(any(test, feature = "testing"))]
pub use fixture::FixtureSource;
pub use source::Source;
pub use view::View;
pub use views::draw;

/// How often the dashboard takes a snapshot and redraws when nothing happens.
pub const TICK: Duration = Duration::from_millis(250);

/// Run the dashboard on the terminal until the operator quits (`q` or Ctrl-C).
///
/// Takes the terminal into raw mode on the alternate screen and gives it back on
/// return, on error and on panic. Between ticks it sleeps in the terminal's event
/// poll, waking for input or for the next tick, so an idle dashboard costs four
/// snapshots and four (mostly unchanged, so cheap) redraws a second.
///
/// `url` is shown in the header, e.g. `ws://127.0.0.1:7400/ws`.
pub fn run(mut source: impl Source, url: impl Into<String>) -> io::Result<()> {
    let mut guard = terminal::enter()?;
    let mut app = App::new(url);
    let result = event_loop(&mut guard, &mut app, &mut source);
    source.close_tail();
    result
}

fn event_loop(
    guard: &mut terminal::Guard,
    app: &mut App,
    source: &mut dyn Source,
) -> io::Result<()> {
    let mut next_tick = Instant::now();
    let mut dirty = true;
    loop {
        let now = Instant::now();
        if now >= next_tick {
            app.tick(source, now);
            dirty = true;
            next_tick += TICK;
            if next_tick <= now {
                // Fell behind (a slow snapshot, a suspended process): skip the missed
                // ticks rather than running them back to back.
                next_tick = now + TICK;
            }
        }
        // Checked before drawing: after a panic elsewhere has given the terminal
        // back, a frame drawn now would land on the normal screen, over the
        // panic message.
        if terminal::panicked() {
            return Err(io::Error::other(
                "a thread panicked and the terminal was restored; the dashboard stopped",
            ));
        }
        if app.should_quit() || source.stopped() {
            return Ok(());
        }
        if dirty {
            guard.terminal.draw(|frame| draw(frame, app))?;
            dirty = false;
        }
        // Block until input or the next tick: no busy loop.
        let timeout = next_tick.saturating_duration_since(Instant::now());
        if event::poll(timeout)? {
            // Take every event already waiting before drawing again, so a held key
            // or a paste costs one redraw, not one per key.
            loop {
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => {
                        app.handle_key(key, source);
                        dirty = true;
                    }
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
                if app.should_quit() || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}
