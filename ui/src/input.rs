//! Reading the terminal on a thread of its own, so that the event loop can wait
//! for a key, a command's outcome and the next tick at once (gitui's pattern:
//! one channel of wake-ups, fed by the input thread and by finished work).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event::{self, Event};

/// How long the input thread waits for the terminal before it looks whether it
/// should stop: what quitting waits for it, at most.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Why the event loop woke up.
#[derive(Debug)]
pub enum Wake {
    /// The terminal sent an event.
    Input(Event),
    /// A command's outcome has arrived in the app's replies.
    Reply,
    /// Reading the terminal failed; the input thread has stopped.
    InputFailed(io::Error),
}

/// The thread that reads the terminal and sends what it reads as [`Wake::Input`].
pub struct InputThread {
    stop: Arc<AtomicBool>,
    /// Set by the thread as it ends.
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// How long stopping waits for the thread before leaving it behind. A terminal
/// that went away (its pty closed) can leave crossterm's `read` spinning on end
/// of input without returning; waiting for it would hold the process for good
/// after the broker has shut down (two such dashboards were found at 60% of a
/// core each, an hour after their tmux server was killed).
const JOIN_FOR: Duration = Duration::from_millis(500);

impl InputThread {
    /// Start reading the terminal into `wakes`.
    ///
    /// `wakes` is bounded: when it is full the thread waits for the event loop,
    /// so no key is dropped (the terminal holds them meanwhile).
    pub fn start(wakes: SyncSender<Wake>) -> io::Result<InputThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (stopping, ending) = (Arc::clone(&stop), Arc::clone(&done));
        let handle = std::thread::Builder::new()
            .name("dashboard-input".into())
            .spawn(move || {
                read_terminal(&wakes, &stopping);
                ending.store(true, Ordering::Release);
            })?;
        Ok(InputThread {
            stop,
            done,
            handle: Some(handle),
        })
    }

    /// Stop reading and wait for the thread (at most [`STOP_CHECK`]), so that
    /// nothing reads the terminal once it is given back. The receiver must be
    /// dropped first, or a thread waiting on a full channel would never see it.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + JOIN_FOR.max(STOP_CHECK * 2);
        while !self.done.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.done.load(Ordering::Acquire) {
            // Stuck in a read of a terminal that is gone: left behind, it ends
            // with the process.
            self.handle = None;
            return Ok(());
        }
        match self.handle.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(io::Error::other("the terminal input thread panicked")),
            _ => Ok(()),
        }
    }
}

impl Drop for InputThread {
    fn drop(&mut self) {
        // Only reached without `stop` on an early return; a panic of the thread
        // has been reported by the panic hook already.
        let _ = self.stop_and_join();
    }
}

fn read_terminal(wakes: &SyncSender<Wake>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let read = match event::poll(STOP_CHECK) {
            Ok(false) => continue,
            Ok(true) => event::read(),
            Err(e) => Err(e),
        };
        let wake = match read {
            Ok(event) => Wake::Input(event),
            Err(e) => {
                // The event loop returns this error; the thread has nothing left to do.
                let _ = wakes.send(Wake::InputFailed(e));
                return;
            }
        };
        if wakes.send(wake).is_err() {
            // The event loop has gone.
            return;
        }
    }
}
