//! What can stop a benchmark run, as one error type for the crate.

use tokio_tungstenite::tungstenite;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The broker's resident memory could not be read.
    #[error("reading the memory of process {pid}: {why}")]
    Memory {
        /// The broker's process id.
        pid: u32,
        /// What went wrong.
        why: String,
    },
    /// A `--scenarios` entry that names no scenario.
    #[error("scenario `{scenario}`: expected {expected}")]
    Scenario {
        /// The entry as given.
        scenario: String,
        /// What would have been understood.
        expected: &'static str,
    },
    /// A `--scenarios` entry whose count is not a number.
    #[error("scenario `{scenario}`")]
    ScenarioCount {
        /// The entry as given.
        scenario: String,
        /// Why the count did not parse.
        source: std::num::ParseIntError,
    },
    /// `--size` leaves no room for the timestamp each message carries.
    #[error("--size must be at least 40 bytes (the timestamp takes some)")]
    PayloadTooSmall,
    /// nats-server is never started here: it needs an address.
    #[error("--target nats needs --url (see bench/compare-nats.sh)")]
    NatsNeedsUrl,
    /// `--sub-url` given where it cannot be used.
    #[error("{0}")]
    SubUrl(&'static str),
    /// Subscribers on another node than the publisher's never got its warm-up
    /// messages: the message path between the nodes is down.
    #[error("{reached} of {of} subscribers got a message from the publisher's node within {secs} s (is the route between the nodes up?)")]
    NotReached {
        /// Subscribers that got one.
        reached: usize,
        /// Subscribers in all.
        of: usize,
        /// How long the publisher kept trying.
        secs: u64,
    },
    /// The broker did not answer a setup frame in time.
    #[error("no answer to {what} within {secs} s")]
    NoAnswer {
        /// The frame's op.
        what: &'static str,
        /// How long it was waited for.
        secs: u64,
    },
    /// The broker process to measure could not be started.
    #[error("starting switchyard serve")]
    StartBroker(#[source] std::io::Error),
    /// The broker process started but did not print the URL it listens on.
    #[error("unexpected broker output: {0:?}")]
    BrokerOutput(String),
    /// The `--ca` file could not be read or holds no usable certificate.
    #[error("--ca {path}: {why}")]
    Ca {
        /// The file given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The broker's WebSocket could not be opened.
    #[error("connecting to {url}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why it failed.
        source: tungstenite::Error,
    },
    /// The broker answered a setup frame (`sub`, `declare`, `consume`, `send`)
    /// with an error.
    #[error("{what} failed: {frame}")]
    Refused {
        /// The frame's op.
        what: &'static str,
        /// The broker's answer.
        frame: String,
    },
    /// A connection closed while the generator still needed it.
    #[error("connection closed")]
    Closed,
    /// The connection filling a retained topic closed before the last confirm.
    #[error("connection closed while filling the topic")]
    ClosedWhileFilling,
    /// A replay ended (or stalled for 30 s) before every message came back.
    #[error("replay stopped after {got} of {total} messages")]
    ReplayStopped {
        /// Messages replayed.
        got: u64,
        /// Messages stored.
        total: u64,
    },
    /// nats-server said or did something its protocol does not allow here.
    #[error("{0}")]
    Nats(String),
    /// A receiver's latencies could not be merged into the scenario's.
    #[error("merging latency histograms: {0}")]
    Histogram(#[from] hdrhistogram::errors::AdditionError),
    /// A socket failed mid-run.
    #[error(transparent)]
    WebSocket(#[from] tungstenite::Error),
    /// Reading the broker process's output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A receiver or sender task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}
