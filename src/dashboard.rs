//! Plain `switchyard`: the broker on a tokio runtime and the dashboard on the
//! terminal, in one process, with logs going to a file while the dashboard owns
//! the screen.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use switchyard_broker::{
    Broker, BrokerError, Command, Config, ErrorCode, MessageQuery, Server, Snapshot, Tail,
    TailMessage,
};
use switchyard_ui::{Reply, Source};
use tracing_subscriber::fmt::MakeWriter;

/// Messages a topic tail keeps between two polls of the dashboard.
const TAIL_CAPACITY: usize = 1000;

/// Commands the dashboard may have waiting for the command thread. An operator
/// types far fewer; past this the broker has stopped answering (a disk that
/// hangs), and a new command is refused at once rather than queued without end.
const COMMAND_QUEUE: usize = 64;

/// The dashboard's view of the broker in the same process: direct calls, no
/// socket. Snapshots and tails are read on the dashboard's thread (they only
/// copy); commands run on a thread of their own, since a publish to a retained
/// topic waits for its fsync (up to 10 s) and the screen must not.
pub struct Embedded {
    broker: Broker,
    tail: Option<Tail>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    commands: SyncSender<(Command, Reply)>,
}

impl Embedded {
    /// Starts the command thread. It ends when the `Embedded` is dropped, after
    /// the command in hand; nothing waits for it, so quitting never waits on a
    /// disk, and the broker's own shutdown follows.
    pub fn new(broker: Broker) -> std::io::Result<Embedded> {
        let shutdown = broker.shutdown_signal();
        let (commands, queue) = mpsc::sync_channel(COMMAND_QUEUE);
        let runner = broker.clone();
        std::thread::Builder::new()
            .name("dashboard-commands".into())
            .spawn(move || run_commands(&runner, queue))?;
        Ok(Embedded {
            broker,
            tail: None,
            shutdown,
            commands,
        })
    }
}

/// Runs the dashboard's commands one at a time, in the order given (a kick of
/// every slow client kicks them in order), and answers each.
fn run_commands(broker: &Broker, queue: mpsc::Receiver<(Command, Reply)>) {
    for (command, reply) in queue {
        reply.send(broker.execute(command, "dashboard"));
    }
}

impl Source for Embedded {
    fn snapshot(&mut self) -> Snapshot {
        self.broker.snapshot()
    }

    fn execute(&mut self, command: Command, reply: Reply) {
        match self.commands.try_send((command, reply)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, reply))) => {
                let why = format!("the broker is not answering: {COMMAND_QUEUE} commands wait");
                reply.send(Err(BrokerError::new(ErrorCode::Limit, why)));
            }
            Err(TrySendError::Disconnected((_, reply))) => reply.send(Err(BrokerError::new(
                ErrorCode::Internal,
                "the dashboard's command thread has stopped",
            ))),
        }
    }

    fn open_tail(&mut self, pattern: &str, query: &MessageQuery) -> Result<(), BrokerError> {
        self.tail = None;
        self.tail = Some(self.broker.tail(pattern, query, TAIL_CAPACITY)?);
        Ok(())
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        self.tail.as_ref().map(|t| t.drain(max)).unwrap_or_default()
    }

    fn close_tail(&mut self) {
        self.tail = None;
    }

    fn stopped(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The dashboard's log file, opened (for appending) at its first line, not at
/// start: a broker that another one's data-directory lock turns away writes no
/// line before it stops, so it touches no file there.
struct LazyLog {
    path: PathBuf,
    file: OnceLock<Option<Mutex<File>>>,
}

impl LazyLog {
    fn new(path: PathBuf) -> LazyLog {
        LazyLog {
            path,
            file: OnceLock::new(),
        }
    }
}

impl Write for &LazyLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.get_or_init(|| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok()
                .map(Mutex::new)
        });
        match file {
            // A poisoned lock only means a thread panicked mid-line; keep logging.
            Some(f) => f.lock().unwrap_or_else(|e| e.into_inner()).write(buf),
            // Nowhere to write: the line is dropped, as a full disk would drop it.
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LazyLog {
    type Writer = &'a LazyLog;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Runs the broker and the dashboard until `q`, Ctrl-C or a signal; then shuts the
/// broker down gracefully.
pub fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let log = LazyLog::new(config.data_dir.join("switchyard.log"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(log)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    crate::cli::warn_if_open(&config);
    let server = runtime
        .block_on(Server::bind(config))
        .context("cannot start the broker")?;
    let url = server.url();
    let broker = server.broker();
    tracing::info!("listening on {url}");
    let serving = runtime.spawn(server.run());
    let on_signal = broker.clone();
    runtime.spawn(async move {
        crate::cli::wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        on_signal.shutdown();
    });
    let shown = Embedded::new(broker.clone())
        .context("cannot start the dashboard's command thread")
        .and_then(|embedded| switchyard_ui::run(embedded, url).context("dashboard"));
    broker.shutdown();
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(6), serving).await });
    shown?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use switchyard_broker::{CommandOutcome, Config};
    use switchyard_ui::Replies;

    use super::*;

    /// A broker on a data dir of its own, in a runtime; `test` runs with it, then
    /// both go and the data dir is removed.
    fn with_broker(name: &str, test: impl FnOnce(&Broker)) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let data_dir =
            std::env::temp_dir().join(format!("switchyard-embedded-{name}-{}", std::process::id()));
        {
            let _in_runtime = runtime.enter();
            let config = Config {
                data_dir: data_dir.clone(),
                ..Config::default()
            };
            let broker = Broker::open(config).unwrap();
            test(&broker);
            broker.shutdown();
        }
        drop(runtime);
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    #[test]
    fn commands_run_on_their_own_thread_and_answer_through_their_reply_in_order() {
        with_broker("order", |broker| {
            let mut embedded = Embedded::new(broker.clone()).unwrap();
            let mut replies = Replies::new();
            let woken_on = Arc::new(Mutex::new(Vec::new()));
            let record = Arc::clone(&woken_on);
            replies.wake_with(move || {
                let name = std::thread::current().name().map(str::to_string);
                record.lock().unwrap().push(name);
            });
            let publish = Command::Publish {
                topic: "orders.eu".into(),
                data: json!({"n": 1}),
                headers: None,
            };
            let (first, second) = (replies.reply(), replies.reply());
            let ids = (first.id(), second.id());
            embedded.execute(publish, first);
            let purge = Command::Purge {
                queue: "no-such-queue".into(),
            };
            embedded.execute(purge, second);

            let wait = Duration::from_secs(10);
            let published = replies.wait_next(wait).expect("the publish is answered");
            assert_eq!(published.id, ids.0);
            assert!(
                matches!(published.result, Ok(CommandOutcome::Published { .. })),
                "{:?}",
                published.result
            );
            let purged = replies.wait_next(wait).expect("the purge is answered");
            assert_eq!(purged.id, ids.1);
            assert!(purged.result.is_err(), "{:?}", purged.result);
            // Each wake-up follows its outcome on the command thread: wait for the last.
            let deadline = std::time::Instant::now() + wait;
            while woken_on.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let thread = Some("dashboard-commands".to_string());
            assert_eq!(*woken_on.lock().unwrap(), [thread.clone(), thread]);
        });
    }

    #[test]
    fn a_full_or_stopped_command_thread_answers_at_once_with_why() {
        with_broker("full", |broker| {
            // A queue with no room and nobody taking from it: the worker is stuck.
            let (commands, queue) = mpsc::sync_channel(0);
            let mut embedded = Embedded {
                broker: broker.clone(),
                tail: None,
                shutdown: broker.shutdown_signal(),
                commands,
            };
            let mut replies = Replies::new();
            let purge = || Command::Purge {
                queue: "jobs".into(),
            };
            embedded.execute(purge(), replies.reply());
            let full = replies
                .try_next()
                .expect("answered before execute returned");
            assert_eq!(full.result.unwrap_err().code, ErrorCode::Limit);
            drop(queue);
            embedded.execute(purge(), replies.reply());
            let gone = replies
                .try_next()
                .expect("answered before execute returned");
            assert_eq!(gone.result.unwrap_err().code, ErrorCode::Internal);
        });
    }
}
