//! Owning the terminal: raw mode and the alternate screen while the dashboard runs,
//! and the terminal given back on every way out: return, error, or a panic on any
//! thread (the broker's included, since it shares the process).

use std::io::{self, stdout, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

static HOOK: Once = Once::new();
static PANICKED: AtomicBool = AtomicBool::new(false);
/// Is the terminal ours (raw, alternate screen)? Restoring twice would move the
/// cursor back to where the dashboard started, over whatever a panic printed.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal, in raw mode on the alternate screen until dropped.
pub struct Guard {
    /// The ratatui terminal to draw on.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

/// Take over the terminal. The returned guard gives it back when dropped; a panic
/// gives it back first, so the panic message lands on the normal screen.
pub fn enter() -> io::Result<Guard> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    if let Err(e) = execute!(stdout(), EnterAlternateScreen) {
        restore();
        return Err(e);
    }
    match Terminal::new(CrosstermBackend::new(stdout())) {
        Ok(terminal) => Ok(Guard { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Has a panic (on any thread) given the terminal back?
pub fn panicked() -> bool {
    PANICKED.load(Ordering::Relaxed)
}

/// Leave raw mode and the alternate screen, showing the cursor, once. Every step
/// is tried even if one fails: a half-restored terminal is still better than none.
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::Relaxed);
            restore();
            previous(info);
        }));
    });
}
