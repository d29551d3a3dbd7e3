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

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Messages per frame the publisher packs.
const BATCH: usize = 100;
/// How far (in messages) a closed-loop publisher may run ahead of its slowest receiver.
const WINDOW: u64 = 20_000;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which broker to load: `switchyard` (started here unless --url) or `nats` (at --url).
    #[arg(long, value_enum, default_value_t = Target::Switchyard)]
    target: Target,
    /// Broker WebSocket URL; for switchyard, omit it to start a broker process here.
    #[arg(long)]
    url: Option<String>,
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
    /// senders each waiting for its confirm), `replay:MiB` (replay a retained topic).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pubsub:1,pubsub:10,pubsub:100,queue:1,queue:4"
    )]
    scenarios: Vec<String>,
    /// Open loop: publish this many messages per second (default: as fast as receivers keep up).
    #[arg(long)]
    rate: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Switchyard,
    Nats,
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    PubSub(usize),
    /// 1 sender, N consumers; `durable` puts the queue on disk (the protocol's
    /// default), else it is declared in memory.
    Queue {
        consumers: usize,
        durable: bool,
    },
    Filters {
        subs: usize,
        filtered: bool,
    },
    /// N concurrent senders, each waiting for its stored confirm (durable queue).
    Durable(usize),
    /// Fill a retained topic with N MiB, then time a replay from the first message.
    Replay(usize),
}

fn parse_scenario(s: &str) -> anyhow::Result<Scenario> {
    let (kind, n) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("scenario `{s}`: expected pubsub:N or queue:N"))?;
    let n: usize = n.parse().with_context(|| format!("scenario `{s}`"))?;
    match kind {
        "pubsub" if n > 0 => Ok(Scenario::PubSub(n)),
        "queue" if n > 0 => Ok(Scenario::Queue {
            consumers: n,
            durable: false,
        }),
        "dqueue" if n > 0 => Ok(Scenario::Queue {
            consumers: n,
            durable: true,
        }),
        "filters" if n > 0 => Ok(Scenario::Filters {
            subs: n,
            filtered: true,
        }),
        "nofilters" if n > 0 => Ok(Scenario::Filters {
            subs: n,
            filtered: false,
        }),
        "durable" if n > 0 => Ok(Scenario::Durable(n)),
        "replay" if n > 0 => Ok(Scenario::Replay(n)),
        _ => bail!("scenario `{s}`: expected pubsub:N, queue:N, dqueue:N, filters:N, nofilters:N, durable:N or replay:MiB with N > 0"),
    }
}

/// One scenario's outcome.
struct Outcome {
    label: String,
    received: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

/// Runs the scenarios; a broker started here gets `fsync` (the `--fsync` flag).
pub async fn run(
    args: BenchArgs,
    fsync: switchyard_broker::store::FsyncPolicy,
) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .map(|s| parse_scenario(s))
        .collect::<anyhow::Result<_>>()?;
    if args.size < 40 {
        bail!("--size must be at least 40 bytes (the timestamp takes some)");
    }
    let mut broker = None;
    let url = match (&args.url, args.target) {
        (Some(url), _) => url.clone(),
        (None, Target::Switchyard) => {
            let (child, url, data) = start_broker(fsync)?;
            broker = Some((child, data));
            url
        }
        (None, Target::Nats) => bail!("--target nats needs --url (see bench/compare-nats.sh)"),
    };
    println!(
        "# {} at {url}: {} B messages, {} s per scenario, {}",
        match (args.target, &broker) {
            (Target::Switchyard, Some(_)) => format!("switchyard (--fsync {fsync})"),
            (Target::Switchyard, None) => "switchyard".to_string(),
            (Target::Nats, _) => "nats-server".to_string(),
        },
        args.size,
        args.seconds,
        match args.rate {
            Some(r) => format!("open loop at {r} msgs/s"),
            None => format!("closed loop (window {WINDOW})"),
        }
    );
    println!(
        "{:<16} {:>14} {:>10} {:>10} {:>10}",
        "scenario", "msgs/s", "p50", "p99", "p99.9"
    );
    for (i, scenario) in scenarios.iter().enumerate() {
        let subject = format!("bench.s{i}");
        let outcome = match (*scenario, args.target) {
            (Scenario::PubSub(n), target) => pubsub(&url, target, &subject, n, &args).await?,
            (Scenario::Queue { consumers, durable }, Target::Switchyard) => {
                queue(&url, &subject, consumers, durable, &args).await?
            }
            (Scenario::Filters { subs, filtered }, Target::Switchyard) => {
                filters(&url, &subject, subs, filtered, &args).await?
            }
            (Scenario::Durable(n), Target::Switchyard) => durable(&url, &subject, n, &args).await?,
            (Scenario::Replay(mib), Target::Switchyard) => replay(&url, &subject, mib).await?,
            (
                Scenario::Queue { .. }
                | Scenario::Filters { .. }
                | Scenario::Durable(_)
                | Scenario::Replay(_),
                Target::Nats,
            ) => {
                println!("{:<16} (not a core NATS feature; skipped)", "queue/filters");
                continue;
            }
        };
        let rate = outcome.received as f64 / outcome.elapsed.as_secs_f64();
        println!(
            "{:<16} {:>14} {:>10} {:>10} {:>10}",
            outcome.label,
            group(rate as u64),
            micros(outcome.latency.value_at_quantile(0.5)),
            micros(outcome.latency.value_at_quantile(0.99)),
            micros(outcome.latency.value_at_quantile(0.999)),
        );
    }
    if let Some((mut child, data)) = broker {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(data);
    }
    Ok(())
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn micros(us: u64) -> String {
    if us == 0 {
        "-".to_string()
    } else if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Starts `switchyard serve` on a free port in a temporary data dir, with `fsync`.
fn start_broker(
    fsync: switchyard_broker::store::FsyncPolicy,
) -> anyhow::Result<(Child, String, std::path::PathBuf)> {
    let exe = std::env::current_exe()?;
    let data = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-pending",
            "67108864",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--fsync")
        .arg(fsync.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting switchyard serve")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .ok_or_else(|| anyhow!("unexpected broker output: {line:?}"))?
        .to_string();
    Ok((child, url, data))
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// The payload: `{"t":<micros>,"p":"xxx…"}` padded to `size` bytes.
fn payload(t: u64, size: usize) -> String {
    payload_with(t, "", size)
}

/// A payload with extra fields after the timestamp (`"k":3,`).
fn payload_with(t: u64, extra: &str, size: usize) -> String {
    let head = format!("{{\"t\":{t},{extra}\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut s = String::with_capacity(size);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// The timestamp of a payload found in `text` after `from`.
fn stamp_after(text: &[u8], from: usize) -> Option<u64> {
    const KEY: &[u8] = b"{\"t\":";
    let at = text[from..].windows(KEY.len()).position(|w| w == KEY)? + from + KEY.len();
    let mut t = 0u64;
    for &b in &text[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        t = t * 10 + u64::from(b - b'0');
    }
    Some(t)
}

/// Reads until the broker's `ok` (skipping other frames); fails on an `error`.
async fn until_ok(ws: &mut Ws, what: &str) -> anyhow::Result<()> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"ev\":\"ok\"") => return Ok(()),
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"ev\":\"error\"") => {
                bail!("{what} failed: {}", t.as_str())
            }
            Some(Ok(_)) => continue,
            _ => bail!("connection closed"),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// What every receiver task shares with the publisher.
struct Progress {
    received: Vec<AtomicU64>,
    stop: AtomicBool,
}

impl Progress {
    fn total(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }

    fn slowest(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

type Receiver = tokio::task::JoinHandle<anyhow::Result<(u64, Histogram<u64>)>>;

/// The publisher's side of a scenario, the same for all: sends a frame from `build`
/// (given the message's timestamp) every time it may for `args.seconds`, either on
/// schedule (`--rate`, stamped with the intended send time) or at most `window`
/// messages ahead of what the receivers have taken (`taken`, in published messages);
/// then lets the receivers drain for up to 2 s, stops them and adds up their counts
/// and latencies. Returns (received, elapsed, latency).
#[allow(clippy::too_many_arguments)]
async fn drive(
    ws: &mut Ws,
    args: &BenchArgs,
    progress: &Progress,
    origin: Instant,
    window: u64,
    taken: impl Fn(&Progress) -> u64,
    mut build: impl FnMut(u64) -> Message,
    receivers: Vec<Receiver>,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < deadline {
        let stamp = match args.rate {
            Some(rate) => {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                due.duration_since(origin).as_micros() as u64
            }
            None => {
                while sent.saturating_sub(taken(progress)) > window && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                origin.elapsed().as_micros() as u64
            }
        };
        ws.send(build(stamp)).await?;
        sent += BATCH as u64;
    }
    let drain_until = Instant::now() + Duration::from_secs(2);
    while taken(progress) < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    progress.stop.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    let mut received = 0;
    for r in receivers {
        let (count, h) = r.await??;
        received += count;
        latency.add(&h).map_err(|e| anyhow!("{e:?}"))?;
    }
    let _ = ws.close(None).await;
    Ok((received, elapsed, latency))
}

async fn pubsub(
    url: &str,
    target: Target,
    subject: &str,
    subs: usize,
    args: &BenchArgs,
) -> anyhow::Result<Outcome> {
    let origin = Instant::now();
    let progress = Arc::new(Progress {
        received: (0..subs).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let mut receivers = Vec::new();
    for i in 0..subs {
        let mut ws = connect(url).await?;
        match target {
            Target::Switchyard => {
                let sub =
                    format!("{{\"op\":\"sub\",\"id\":1,\"topic\":\"{subject}\",\"sid\":\"s\"}}");
                ws.send(Message::text(sub)).await?;
                until_ok(&mut ws, "sub").await?;
            }
            Target::Nats => {
                nats_handshake(&mut ws).await?;
                let sub = format!("SUB {subject} 1\r\nPING\r\n");
                ws.send(Message::binary(sub.into_bytes())).await?;
                nats_wait_pong(&mut ws).await?;
            }
        }
        let progress = progress.clone();
        receivers.push(tokio::spawn(receive(ws, target, i, progress, origin)));
    }
    let mut ws = connect(url).await?;
    if target == Target::Nats {
        nats_handshake(&mut ws).await?;
    }
    let mut frame = String::new();
    let build = |stamp: u64| {
        let data = payload(stamp, args.size);
        frame.clear();
        for i in 0..BATCH {
            match target {
                Target::Switchyard => {
                    if i > 0 {
                        frame.push('\n');
                    }
                    frame.push_str("{\"op\":\"pub\",\"topic\":\"");
                    frame.push_str(subject);
                    frame.push_str("\",\"data\":");
                    frame.push_str(&data);
                    frame.push('}');
                }
                Target::Nats => {
                    frame.push_str(&format!("PUB {subject} {}\r\n", data.len()));
                    frame.push_str(&data);
                    frame.push_str("\r\n");
                }
            }
        }
        match target {
            Target::Switchyard => Message::text(frame.clone()),
            Target::Nats => Message::binary(frame.clone().into_bytes()),
        }
    };
    // Every subscriber gets every message: the slowest says how far behind they are.
    let (received, elapsed, latency) = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW,
        Progress::slowest,
        build,
        receivers,
    )
    .await?;
    Ok(Outcome {
        label: format!("pubsub 1→{subs}"),
        received,
        elapsed,
        latency,
    })
}

/// A receiver's next frame; None once its connection closes, or once it is told to
/// stop and nothing more comes for 200 ms.
async fn next_frame(ws: &mut Ws, progress: &Progress) -> anyhow::Result<Option<Message>> {
    loop {
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) if progress.stop.load(Ordering::Relaxed) => return Ok(None),
            Err(_) => continue,
            Ok(None) => return Ok(None),
            Ok(Some(frame)) => return Ok(Some(frame?)),
        }
    }
}

/// Counts deliveries and records their latency until told to stop.
async fn receive(
    mut ws: Ws,
    target: Target,
    index: usize,
    progress: Arc<Progress>,
    origin: Instant,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut nats = NatsParser::default();
    while let Some(frame) = next_frame(&mut ws, &progress).await? {
        let now = origin.elapsed().as_micros() as u64;
        let mut record = |t: u64| {
            let _ = hist.record(now.saturating_sub(t).max(1));
        };
        match (target, frame) {
            (Target::Switchyard, Message::Text(t)) => {
                let bytes = t.as_bytes();
                let mut at = 0;
                while let Some(t) = stamp_after(bytes, at) {
                    record(t);
                    count += 1;
                    at = match bytes[at..].iter().position(|&b| b == b'\n') {
                        Some(nl) => at + nl + 1,
                        None => bytes.len(),
                    };
                }
            }
            (Target::Nats, Message::Binary(b)) => {
                let (n, pings) = nats.feed(&b, &mut record);
                count += n;
                for _ in 0..pings {
                    ws.send(Message::binary(b"PONG\r\n".to_vec())).await?;
                }
            }
            _ => {}
        }
        progress.received[index].store(count, Ordering::Relaxed);
        if progress.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok((count, hist))
}

async fn queue(
    url: &str,
    queue: &str,
    consumers: usize,
    durable: bool,
    args: &BenchArgs,
) -> anyhow::Result<Outcome> {
    let mut setup = connect(url).await?;
    let declare =
        format!("{{\"op\":\"declare\",\"id\":1,\"queue\":\"{queue}\",\"durable\":{durable}}}");
    setup.send(Message::text(declare)).await?;
    until_ok(&mut setup, "declare").await?;
    let _ = setup.close(None).await;
    let origin = Instant::now();
    let progress = Arc::new(Progress {
        received: (0..consumers).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let mut ws = connect(url).await?;
        let consume = format!(
            "{{\"op\":\"consume\",\"id\":1,\"queue\":\"{queue}\",\"cid\":\"w\",\"prefetch\":512}}"
        );
        ws.send(Message::text(consume)).await?;
        until_ok(&mut ws, "consume").await?;
        tasks.push(tokio::spawn(work(ws, i, progress.clone(), origin)));
    }
    let mut ws = connect(url).await?;
    let build = |stamp: u64| {
        let data = payload(stamp, args.size);
        let frame: Vec<String> = (0..BATCH)
            .map(|_| format!("{{\"op\":\"send\",\"queue\":\"{queue}\",\"data\":{data}}}"))
            .collect();
        Message::text(frame.join("\n"))
    };
    // Each message goes to one consumer: together they say how far behind they are.
    let (received, elapsed, latency) = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW,
        Progress::total,
        build,
        tasks,
    )
    .await?;
    Ok(Outcome {
        label: format!("{}queue 1→{consumers}", if durable { "d" } else { "" }),
        received,
        elapsed,
        latency,
    })
}

/// Publish throughput to `subs` subscriptions on one topic, spread over 10
/// connections. With `filtered`, subscription i has the filter `data.k = i` and the
/// publisher cycles k, so each message is evaluated by every filter and delivered
/// once; without, every message goes to all of them. Reports published msgs/s.
async fn filters(
    url: &str,
    subject: &str,
    subs: usize,
    filtered: bool,
    args: &BenchArgs,
) -> anyhow::Result<Outcome> {
    let origin = Instant::now();
    let conns = subs.clamp(1, 10);
    let progress = Arc::new(Progress {
        received: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let mut receivers = Vec::new();
    for c in 0..conns {
        let mut ws = connect(url).await?;
        let mine: Vec<usize> = (0..subs).filter(|i| i % conns == c).collect();
        let frame: Vec<String> = mine
            .iter()
            .map(|i| {
                let filter = if filtered { format!(",\"filter\":\"data.k = {i}\"") } else { String::new() };
                format!("{{\"op\":\"sub\",\"id\":{i},\"topic\":\"{subject}\",\"sid\":\"s{i}\"{filter}}}")
            })
            .collect();
        ws.send(Message::text(frame.join("\n"))).await?;
        let mut seen = 0;
        while seen < mine.len() + 1 {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                seen += t.as_str().split('\n').count();
            }
        }
        receivers.push(tokio::spawn(receive(
            ws,
            Target::Switchyard,
            c,
            progress.clone(),
            origin,
        )));
    }
    let per_msg = if filtered { 1 } else { subs as u64 };
    let mut ws = connect(url).await?;
    let mut k = 0usize;
    let build = |stamp: u64| {
        let frame: Vec<String> = (0..BATCH)
            .map(|_| {
                k = (k + 1) % subs;
                let data = payload_with(stamp, &format!("\"k\":{k},"), args.size);
                format!("{{\"op\":\"pub\",\"topic\":\"{subject}\",\"data\":{data}}}")
            })
            .collect();
        Message::text(frame.join("\n"))
    };
    let (total, elapsed, latency) = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW / 10,
        |p: &Progress| p.total() / per_msg,
        build,
        receivers,
    )
    .await?;
    Ok(Outcome {
        label: format!(
            "{} {subs} pub",
            if filtered { "filters" } else { "nofilters" }
        ),
        received: total / per_msg,
        elapsed,
        latency,
    })
}

/// Durable sends: `senders` connections, each sending one message at a time and
/// waiting for its `ok` (which a durable queue gives after the fsync). Group commit
/// should make many senders much faster than one.
async fn durable(
    url: &str,
    queue: &str,
    senders: usize,
    args: &BenchArgs,
) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let mut ws = connect(url).await?;
        let _welcome = ws.next().await;
        let queue = queue.to_string();
        let size = args.size;
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut count = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let frame = format!(
                    "{{\"op\":\"send\",\"id\":{count},\"queue\":\"{queue}\",\"data\":{}}}",
                    payload(0, size)
                );
                ws.send(Message::text(frame)).await?;
                until_ok(&mut ws, "send").await?;
                let _ = hist.record(sent.elapsed().as_micros().max(1) as u64);
                count += 1;
            }
            let _ = ws.close(None).await;
            Ok::<_, anyhow::Error>((count, hist))
        }));
    }
    let mut latency = histogram();
    let mut received = 0;
    for t in tasks {
        let (count, h) = t.await??;
        received += count;
        latency.add(&h).map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(Outcome {
        label: format!("durable send ×{senders}"),
        received,
        elapsed: started.elapsed(),
        latency,
    })
}

/// Fills a retained topic with `mib` MiB of 1 KiB messages, then times one
/// subscriber replaying it from the first message. Reports messages/s of the replay
/// (MiB/s is printed on the side).
async fn replay(url: &str, topic: &str, mib: usize) -> anyhow::Result<Outcome> {
    const SIZE: usize = 1024;
    let total = (mib * 1024 * 1024 / SIZE) as u64;
    let mut ws = connect(url).await?;
    let _welcome = ws.next().await;
    let declare = format!("{{\"op\":\"declare\",\"id\":0,\"topic\":\"{topic}\",\"retain\":{{}}}}");
    ws.send(Message::text(declare)).await?;
    until_ok(&mut ws, "declare").await?;
    let data = payload(0, SIZE);
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(BATCH as u64);
        let frame: Vec<String> = (0..n)
            .map(|i| {
                let id = if sent + i + 1 == total {
                    ",\"id\":\"last\"".to_string()
                } else {
                    String::new()
                };
                format!("{{\"op\":\"pub\",\"topic\":\"{topic}\"{id},\"data\":{data}}}")
            })
            .collect();
        ws.send(Message::text(frame.join("\n"))).await?;
        sent += n;
    }
    // The last publish is confirmed once everything before it is on disk.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"last\"") => break,
            Some(Ok(_)) => continue,
            _ => bail!("connection closed while filling the topic"),
        }
    }
    let mut reader = connect(url).await?;
    let _welcome = reader.next().await;
    let started = Instant::now();
    let sub = format!("{{\"op\":\"sub\",\"topic\":\"{topic}\",\"sid\":\"r\",\"from\":\"first\"}}");
    reader.send(Message::text(sub)).await?;
    let mut got = 0u64;
    let mut bytes = 0u64;
    while got < total {
        match tokio::time::timeout(Duration::from_secs(30), reader.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                got += t
                    .as_str()
                    .split('\n')
                    .filter(|l| l.starts_with("{\"ev\":\"msg\""))
                    .count() as u64;
                bytes += t.len() as u64;
            }
            Ok(Some(Ok(_))) => {}
            _ => bail!("replay stopped after {got} of {total} messages"),
        }
    }
    let elapsed = started.elapsed();
    println!(
        "# replayed {mib} MiB ({total} messages of {SIZE} B, {:.0} MiB of frames) in {:.2} s: {:.0} MiB/s of payload",
        bytes as f64 / 1048576.0,
        elapsed.as_secs_f64(),
        mib as f64 / elapsed.as_secs_f64()
    );
    Ok(Outcome {
        label: format!("replay {mib} MiB"),
        received: got,
        elapsed,
        latency: histogram(),
    })
}

/// A consumer: records each job's latency and acks every job of a frame in one frame.
async fn work(
    mut ws: Ws,
    index: usize,
    progress: Arc<Progress>,
    origin: Instant,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut acks = String::new();
    while let Some(frame) = next_frame(&mut ws, &progress).await? {
        let Message::Text(text) = frame else { continue };
        let now = origin.elapsed().as_micros() as u64;
        acks.clear();
        for line in text.as_str().split('\n') {
            let Some(tag_at) = line.find("\"tag\":") else {
                continue;
            };
            let digits: String = line[tag_at + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Some(t) = stamp_after(line.as_bytes(), 0) {
                let _ = hist.record(now.saturating_sub(t).max(1));
            }
            if !acks.is_empty() {
                acks.push('\n');
            }
            acks.push_str("{\"op\":\"ack\",\"tag\":");
            acks.push_str(&digits);
            acks.push('}');
            count += 1;
        }
        if !acks.is_empty() {
            ws.send(Message::text(acks.clone())).await?;
        }
        progress.received[index].store(count, Ordering::Relaxed);
    }
    Ok((count, hist))
}

async fn nats_handshake(ws: &mut Ws) -> anyhow::Result<()> {
    // INFO first; then CONNECT without verbose acks.
    match ws.next().await {
        Some(Ok(Message::Binary(b))) if b.starts_with(b"INFO") => {}
        Some(Ok(Message::Text(t))) if t.as_str().starts_with("INFO") => {}
        other => bail!("expected INFO from nats-server, got {other:?}"),
    }
    let connect = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n";
    ws.send(Message::binary(connect.as_bytes().to_vec()))
        .await?;
    nats_wait_pong(ws).await
}

async fn nats_wait_pong(ws: &mut Ws) -> anyhow::Result<()> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.windows(4).any(|w| w == b"PONG") => return Ok(()),
            Some(Ok(Message::Binary(b))) if b.starts_with(b"-ERR") => {
                bail!("nats-server: {}", String::from_utf8_lossy(&b))
            }
            Some(Ok(_)) => continue,
            other => bail!("expected PONG from nats-server, got {other:?}"),
        }
    }
}

/// A streaming parser of what nats-server sends: `MSG subj sid [reply] len\r\npayload\r\n`,
/// `PING`, `PONG`, `+OK`, `-ERR`, `INFO`; messages may be split across frames.
#[derive(Default)]
struct NatsParser {
    buf: Vec<u8>,
}

impl NatsParser {
    /// Feeds bytes; returns (messages, pings to answer).
    fn feed(&mut self, bytes: &[u8], record: &mut impl FnMut(u64)) -> (u64, u32) {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        let mut msgs = 0;
        let mut pings = 0;
        while let Some(eol) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &self.buf[at..at + eol];
            if line.starts_with(b"MSG ") {
                let len: usize = line
                    .rsplit(|&b| b == b' ')
                    .next()
                    .and_then(|l| std::str::from_utf8(l).ok())
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let start = at + eol + 2;
                if self.buf.len() < start + len + 2 {
                    break;
                }
                if let Some(t) = stamp_after(&self.buf[start..start + len], 0) {
                    record(t);
                }
                msgs += 1;
                at = start + len + 2;
            } else {
                if line == b"PING" {
                    pings += 1;
                }
                at += eol + 2;
            }
        }
        self.buf.drain(..at);
        (msgs, pings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_requested_size_and_their_stamp() {
        let p = payload(123456, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(stamp_after(p.as_bytes(), 0), Some(123456));
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["t"], 123456);
    }

    #[test]
    fn nats_parser_handles_split_messages_and_pings() {
        let mut p = NatsParser::default();
        let mut seen = Vec::new();
        let a = b"MSG a 1 13\r\n{\"t\":42,\"p\":";
        let b = b"}\r\nPING\r\nMSG a 1 reply 7\r\n{\"t\":7}\r\n";
        let (n, pings) = p.feed(a, &mut |t| seen.push(t));
        assert_eq!((n, pings), (0, 0));
        let (n, pings) = p.feed(b, &mut |t| seen.push(t));
        assert_eq!((n, pings), (2, 1));
        assert_eq!(seen, vec![42, 7]);
        assert!(p.buf.is_empty());
    }

    #[test]
    fn scenarios_parse() {
        assert!(matches!(
            parse_scenario("pubsub:10"),
            Ok(Scenario::PubSub(10))
        ));
        assert!(matches!(
            parse_scenario("queue:4"),
            Ok(Scenario::Queue {
                consumers: 4,
                durable: false
            })
        ));
        assert!(matches!(
            parse_scenario("dqueue:1"),
            Ok(Scenario::Queue {
                consumers: 1,
                durable: true
            })
        ));
        assert!(parse_scenario("queue:0").is_err());
        assert!(parse_scenario("fanout").is_err());
        assert_eq!(group(1234567), "1,234,567");
    }
}
