//! Switchyard's dashboard: draws broker state and sends operator commands.
//!
//! The binary calls [`run`] with a [`Source`] (the embedded broker, or later a
//! remote one) and the URL to show; `run` owns the terminal until the operator
//! quits. Everything else is public for tests and for other front ends:
//! [`App`] holds the state and changes it with [`App::update`], [`draw`] renders
//! it, [`keys`] maps keys to actions. Commands are answered later, through a
//! [`Reply`], so the screen never waits on the broker. With the `testing` feature (and in the
//! crate's own tests), `fixture` provides fixed broker states and a scripted
//! source; release builds do not compile it.

#![warn(missing_docs)]
// Nothing from outside (broker, terminal, user) may panic the dashboard; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod action;
pub mod app;
pub mod command_line;
pub mod delivery;
#[cfg(any(test, feature = "testing"))]
pub mod fixture;
mod format;
mod input;
pub mod keys;
pub mod publish;
pub mod rates;
pub mod reply;
pub mod source;
pub mod tables;
mod terminal;
pub mod view;
pub mod views;
pub mod widgets;

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TrySendError};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEventKind};

use input::{InputThread, Wake};

pub use action::Action;
pub use app::App;
#[cfg(any(test, feature = "testing"))]
pub use fixture::FixtureSource;
pub use reply::{Replies, Reply};
pub use source::{Link, Source, Wants};
pub use view::View;
pub use views::draw;

/// How often the dashboard takes a snapshot and redraws when nothing happens.
pub const TICK: Duration = Duration::from_millis(250);

/// Wake-ups the event loop has not taken yet. Input beyond this makes the input
/// thread wait (no key is lost); a reply's wake-up beyond it is dropped, since
/// the loop is awake anyway and takes every outcome each time it wakes.
const WAKE_CAPACITY: usize = 256;

/// Run the dashboard on the terminal until the operator quits (`q` or Ctrl-C).
///
/// Takes the terminal into raw mode on the alternate screen and gives it back on
/// return, on error and on panic. Between ticks it sleeps until a key, a
/// command's outcome or the next tick, so an idle dashboard costs four snapshots
/// and four (mostly unchanged, so cheap) redraws a second, and a command that
/// takes seconds (a publish waiting for an fsync) never stops the screen.
///
/// `url` is shown in the header, e.g. `ws://127.0.0.1:7400/ws`.
pub fn run(mut source: impl Source, url: impl Into<String>) -> io::Result<()> {
    let mut guard = terminal::enter()?;
    let (wake, wakes) = mpsc::sync_channel(WAKE_CAPACITY);
    let input = InputThread::start(wake.clone())?;
    let mut app = App::new(url);
    app.wake_on_reply(move || match wake.try_send(Wake::Reply) {
        // Full: the loop has wake-ups waiting and takes every outcome on each.
        // Disconnected: the loop has returned; nobody is left to show it to.
        Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
    });
    let result = event_loop(&mut guard, &mut app, &mut source, &wakes);
    // In this order: a dropped receiver frees an input thread waiting to send,
    // and the thread stops before the guard gives the terminal back.
    drop(wakes);
    let stopped = input.stop();
    source.close_tail();
    result.and(stopped)
}

fn event_loop(
    guard: &mut terminal::Guard,
    app: &mut App,
    source: &mut dyn Source,
    wakes: &Receiver<Wake>,
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
        // Block until input, an outcome or the next tick: no busy loop.
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let mut wake = match wakes.recv_timeout(timeout) {
            Ok(wake) => Some(wake),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the terminal input thread stopped"));
            }
        };
        // Take every wake-up already waiting before drawing again, so a held key
        // or a paste costs one redraw, not one per key.
        while let Some(next) = wake {
            match next {
                Wake::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    app.handle_key(key, source);
                    dirty = true;
                }
                Wake::Input(Event::Resize(..)) => dirty = true,
                Wake::Input(_) | Wake::Reply => {}
                Wake::InputFailed(e) => return Err(e),
            }
            if app.should_quit() {
                break;
            }
            wake = wakes.try_recv().ok();
        }
        if app.receive_outcomes(source) {
            dirty = true;
        }
    }
}
