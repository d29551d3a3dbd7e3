//! `switchyard bench`: a load generator for throughput and latency.
//!
//! It runs in its own process (the broker it measures is a separate `switchyard
//! serve`, started here unless `--url` is given) and speaks either Switchyard's
//! protocol or NATS's text protocol over WebSocket, so both brokers face the same
//! generator. Each message carries the time it was (meant to be) sent; receivers
//! record the latency in an HDR histogram. Without `--rate`, the publisher runs
//! closed-loop, at most a window of messages ahead of the slowest receiver; with
//! `--rate`, it runs open-loop and stamps each message with its intended send time,
//! so a stall shows in the latency instead of hiding in a slower send.
//!
//! A crate of its own so the product's `src/` holds only the command line: the
//! `switchyard` binary parses [`BenchArgs`] and calls [`run`]. It speaks raw frames
//! rather than using `switchyard-client`, to control batching and to load
//! nats-server the same way.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod broker;
mod endpoints;
mod error;
mod measure;
mod nats;
mod report;
mod scenarios;

pub use error::BenchError;

use endpoints::Endpoints;
use scenarios::{Scenario, WINDOW};

/// The flags of `switchyard bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which broker to load: `switchyard` (started here unless --url) or `nats` (at --url).
    #[arg(long, value_enum, default_value_t = Target::Switchyard)]
    target: Target,
    /// Broker WebSocket URL; for switchyard, omit it to start a broker process here.
    /// With --sub-url: the publishers' and senders' node.
    #[arg(long)]
    url: Option<String>,
    /// Subscribers' and consumers' broker URLs (comma-separated or repeated),
    /// taken round-robin, for `pubsub:N` and `queue:N`/`dqueue:N`: with another
    /// node of a cluster than --url, every message crosses between the nodes.
    /// Default: --url. Every other scenario runs at --url alone.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    sub_url: Vec<String>,
    /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Message payload size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Scenarios: `pubsub:N` (1 publisher, N subscribers), `queue:N` (1 sender, N
    /// consumers, queue in memory), `dqueue:N` (the same, durable), `filters:N` /
    /// `nofilters:N` (N subscriptions on one topic over 10 connections, each with a
    /// distinct filter that one message in N matches, or none), `durable:N` (N
    /// senders each waiting for its confirm), `replay:MiB` (replay a retained topic),
    /// `idle:N` (N idle connections: the broker's resident memory per connection),
    /// `slow:MB` (a burst of MB megabytes of 4 KB messages, one per frame, to a
    /// reader of 20 MB/s, a stuck one and a fast one; run it against a broker with
    /// the default 8 MiB outbound buffer).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pubsub:1,pubsub:10,pubsub:100,queue:1,queue:4"
    )]
    scenarios: Vec<String>,
    /// Messages a publisher or sender packs into one WebSocket frame, and acks a
    /// consumer packs into one: 1 is how a browser's `send`, Python's
    /// `websockets` and most client libraries send.
    #[arg(long, default_value_t = 100)]
    per_frame: usize,
    /// Open loop: publish this many messages per second (default: as fast as receivers keep up).
    #[arg(long)]
    rate: Option<u64>,
    /// The broker's process id, for `idle:N` against a broker at --url (nats-server
    /// too); a broker started here is known already.
    #[arg(long)]
    pid: Option<u32>,
}

/// Which broker is loaded.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Switchyard,
    Nats,
}

/// Runs the scenarios and prints one table row each. Without `--url`, a broker is
/// started from this process's own executable (`switchyard serve`, given `fsync`:
/// the `--fsync` flag's value) and stopped, its data removed, at the end.
pub async fn run(args: BenchArgs, fsync: &str) -> Result<(), BenchError> {
    let scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<_, _>>()?;
    if args.size < 40 {
        return Err(BenchError::PayloadTooSmall);
    }
    if let Some(ca) = &args.ca {
        broker::trust_ca(ca)?;
    }
    let mut broker = None;
    let ends = match (
        Endpoints::from_flags(args.url.clone(), &args.sub_url, args.target)?,
        args.target,
    ) {
        (Some(ends), _) => ends,
        (None, Target::Switchyard) => {
            let (child, url, data) = broker::start_broker(fsync)?;
            broker = Some((child, data));
            Endpoints::single(url)
        }
        (None, Target::Nats) => return Err(BenchError::NatsNeedsUrl),
    };
    let url = ends.publish.clone();
    println!(
        "# {} at {url}{}: {} B messages, {} s per scenario, {}",
        match (args.target, &broker) {
            (Target::Switchyard, Some(_)) => format!("switchyard (--fsync {fsync})"),
            (Target::Switchyard, None) => "switchyard".to_string(),
            (Target::Nats, _) => "nats-server".to_string(),
        },
        ends.describe(),
        args.size,
        args.seconds,
        match args.rate {
            Some(r) => format!("open loop at {r} msgs/s"),
            None => format!("closed loop (window {WINDOW})"),
        }
    );
    report::print_columns();
    let pid = args
        .pid
        .or_else(|| broker.as_ref().map(|(child, _)| child.id()));
    for (i, scenario) in scenarios.iter().enumerate() {
        if let Scenario::Idle(n) = *scenario {
            match pid {
                Some(pid) => report::print_idle(&scenarios::idle(&url, n, pid).await?),
                None => report::print_idle_unknown(n),
            }
            continue;
        }
        // Named for this run: a queue left by an earlier run on the same broker
        // or cluster (its unacked jobs come back) must not count in this one.
        let subject = format!("bench.r{}.s{i}", std::process::id());
        if let Scenario::Slow(mb) = *scenario {
            report::print_slow(mb, &scenarios::slow(&url, args.target, &subject, mb).await?);
            continue;
        }
        if let Scenario::Watch(n) = *scenario {
            match args.target {
                Target::Switchyard => {
                    report::print_watch(&scenarios::watch(&url, &subject, n).await?)
                }
                Target::Nats => report::print_skipped(),
            }
            continue;
        }
        match scenario.run(&ends, args.target, &subject, &args).await? {
            Some(outcome) => report::print_row(&outcome),
            None => report::print_skipped(),
        }
    }
    if let Some((mut child, data)) = broker {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(data);
    }
    Ok(())
}
