//! Plain `switchyard`: the broker on a tokio runtime and the dashboard on the
//! terminal, in one process, with logs going to a file while the dashboard owns
//! the screen.

use std::time::Duration;

use anyhow::Context;
use switchyard_broker::{Broker, BrokerError, Command, Server, Snapshot, Tail, TailMessage};
use switchyard_ui::{Reply, Source};

use crate::cli::BrokerArgs;

/// Messages a topic tail keeps between two polls of the dashboard.
const TAIL_CAPACITY: usize = 1000;

/// The dashboard's view of the broker in the same process: direct calls, no socket.
pub struct Embedded {
    broker: Broker,
    tail: Option<Tail>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Embedded {
    pub fn new(broker: Broker) -> Embedded {
        let shutdown = broker.shutdown_signal();
        Embedded {
            broker,
            tail: None,
            shutdown,
        }
    }
}

impl Source for Embedded {
    fn snapshot(&mut self) -> Snapshot {
        self.broker.snapshot()
    }

    fn execute(&mut self, command: Command, reply: Reply) {
        // Still on the dashboard's thread: answered before it returns.
        reply.send(self.broker.execute(command, "dashboard"));
    }

    fn open_tail(&mut self, pattern: &str) -> Result<(), BrokerError> {
        self.tail = None;
        self.tail = Some(self.broker.tail(pattern, None, TAIL_CAPACITY)?);
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

/// Runs the broker and the dashboard until `q`, Ctrl-C or a signal; then shuts the
/// broker down gracefully.
pub fn run(args: &BrokerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let log = tracing_appender::rolling::never(&args.data_dir, "switchyard.log");
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
    let server = runtime
        .block_on(Server::bind(crate::cli::config(args)))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
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
    let shown = switchyard_ui::run(Embedded::new(broker.clone()), url);
    broker.shutdown();
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(6), serving).await });
    shown.context("dashboard")?;
    Ok(())
}
