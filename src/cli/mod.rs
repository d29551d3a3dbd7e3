//! Command-line arguments and what each subcommand does.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Subcommand, ValueEnum};
use serde_json::{json, Value};

/// `println!` that ends the command quietly on a closed pipe ([`say_line`]).
macro_rules! say {
    ($($arg:tt)*) => {
        say_line(format_args!($($arg)*))
    };
}
use switchyard_broker::store::FsyncPolicy;
use switchyard_broker::{Config, Server};
use switchyard_broker::{HeaderValue, Headers};
use switchyard_client::{Client, ConnectOptions, Undecoded};

const DEFAULT_URL: &str = "ws://127.0.0.1:7400/ws";

#[derive(clap::Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker with its operator's console built in",
    long_about = "A message broker with its operator's console built in.\n\nWith no subcommand, runs the broker and its dashboard in this terminal."
)]
pub struct Args {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// Flags of a broker process (`switchyard` and `switchyard serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// A TOML config file: every flag here as a key of the same name, plus users,
    /// tokens, Origins and TLS (docs/OPERATIONS.md). A flag given here wins over the
    /// file. Default: the `SWITCHYARD_CONFIG` environment variable, if set.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7400", global = true)]
    pub listen: SocketAddr,
    /// Where durable queues and retained topics are stored.
    #[arg(long, default_value = "./switchyard-data", global = true)]
    pub data_dir: PathBuf,
    /// Largest frame a client may send, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, global = true)]
    pub max_payload: usize,
    /// Outbound buffer per connection, in bytes: half full marks a client slow, full kicks it.
    #[arg(long, default_value_t = 8 * 1024 * 1024, global = true)]
    pub max_pending: usize,
    /// Most bytes all connections' outbound buffers may hold together; past it, the
    /// clients holding the most are kicked (`outbound_budget`). Default: a quarter
    /// of physical memory (1 GiB where /proc/meminfo cannot be read).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_outbound: Option<u64>,
    /// Most connections served at once; more get HTTP 503.
    #[arg(long, default_value_t = 10_000, global = true)]
    pub max_connections: usize,
    /// When stored messages reach the disk: `batch` (group commit, default), `always`
    /// or `never` (see docs/OPERATIONS.md for what each guarantees).
    #[arg(long, default_value = "batch", global = true)]
    pub fsync: FsyncPolicy,
    /// Seconds between the pings the broker sends each client; a client that
    /// answers none of two in a row is closed, so dead peers free their slots.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ping_interval: u64,
    /// Seconds a frame may take to arrive once its first byte has; a slower
    /// client is closed (1008).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub frame_timeout: u64,
    /// Bytes all connections' read buffers may hold together (unfinished frames
    /// above all); a frame that would pass it closes its connection (1013).
    #[arg(long, default_value_t = 256 * 1024 * 1024, global = true)]
    pub max_inbound: usize,
    /// Seconds a new connection has to send its HTTP request (and finish TLS);
    /// slower gets HTTP 408.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub handshake_timeout: u64,
    /// With auth on, seconds a connection may go without a valid token before
    /// it is closed (1008).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub auth_timeout: u64,
    /// Most topics the broker keeps counters for; past it, a pub to a new topic
    /// no subscription matches gets `limit`.
    #[arg(long, default_value_t = switchyard_broker::MAX_TOPICS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), global = true)]
    pub max_topics: usize,
    /// Connections one IP address may have open at once; 0 for no cap.
    /// Default: a quarter of --max-connections.
    #[arg(long, global = true)]
    pub max_connections_per_ip: Option<usize>,
    /// Log files kept open at most (idle ones past it are closed and reopened when
    /// used). Default: half the open-files limit at start.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_open_files: Option<u64>,
    /// Queues and retained topics one user may create and hold at once (a
    /// `[[users]]` entry's `max_streams` overrides it; with auth off, all clients
    /// share one count). 0 for no cap.
    #[arg(long, default_value_t = 1000, global = true)]
    pub max_streams_per_user: usize,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the broker without the dashboard; prints the URL it listens on.
    Serve,
    /// Publish a message to a topic.
    Pub {
        topic: String,
        /// JSON data (text that is not JSON is sent as a JSON string).
        data: String,
        /// A header as NAME=VALUE; repeat for more (a repeated name is multi-valued).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Subscribe to a topic pattern; prints one JSON line per message.
    Sub {
        pattern: String,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// A filter query (`data.amount > 5 AND region = 'eu'`).
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Send a message to a queue.
    Send {
        queue: String,
        /// JSON data (text that is not JSON is sent as a JSON string).
        data: String,
        /// `stored`: return once queued; `done`: wait until a consumer acked it.
        #[arg(long, value_enum, default_value_t = ConfirmArg::Stored)]
        confirm: ConfirmArg,
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Consume a queue: prints one JSON line per job, then acks it.
    Consume {
        queue: String,
        /// Stop after this many jobs.
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value_t = 1)]
        prefetch: u32,
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Send a request to a queue and print the reply.
    Request {
        queue: String,
        data: String,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// The dashboard for a running broker, over the wire: every view and action of
    /// the embedded console (docs/CONSOLE.md). Needs an admin token with auth on.
    Top {
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// An admin's token (default: the SWITCHYARD_TOKEN environment variable,
        /// which keeps it out of the process list).
        #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Only look: publish, purge, kick and requeue are hidden and refused.
        #[arg(long)]
        read_only: bool,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Print the broker's snapshot as JSON.
    Stats {
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// PEM file of the CA that signed a `wss://` broker's certificate (default: the system's roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Measure throughput and latency (see docs/BENCHMARKS.md).
    Bench(switchyard_bench::BenchArgs),
    /// Make a fresh random token and print it with the `[[users]]` entry (its
    /// SHA-256) for the config file. The broker keeps only the digest.
    Token {
        /// The user's name in the printed entry.
        #[arg(long, default_value = "my-service")]
        name: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmArg {
    Stored,
    Done,
}

/// The broker's settings: the config file (`--config`, else `SWITCHYARD_CONFIG`)
/// under the flags, a flag given on the command line winning over the file's key
/// and the file's key over the flag's default.
pub fn broker_config(args: &BrokerArgs, matches: &ArgMatches) -> anyhow::Result<Config> {
    let mut config = Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        max_payload: args.max_payload,
        max_pending: args.max_pending,
        max_connections: args.max_connections,
        fsync: args.fsync,
        ping_interval: Duration::from_secs(args.ping_interval),
        frame_timeout: Duration::from_secs(args.frame_timeout),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        auth_timeout: Duration::from_secs(args.auth_timeout),
        max_topics: args.max_topics,
        max_inbound: args.max_inbound,
        max_connections_per_ip: args.max_connections_per_ip,
        max_open_files: args.max_open_files.map(|n| n as usize),
        max_streams_per_user: args.max_streams_per_user,
        ..Config::default()
    };
    if let Some(v) = args.max_outbound {
        config.max_outbound = usize::try_from(v).unwrap_or(usize::MAX);
    }
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os(crate::config::ENV).map(PathBuf::from));
    let Some(path) = path else {
        return Ok(config);
    };
    let file = crate::config::load(&path)?;
    let unless_flag = |id: &str| !given(matches, id);
    if let Some(v) = file.listen.filter(|_| unless_flag("listen")) {
        config.listen = v;
    }
    if let Some(v) = file.data_dir.filter(|_| unless_flag("data_dir")) {
        config.data_dir = v;
    }
    if let Some(v) = file.max_payload.filter(|_| unless_flag("max_payload")) {
        config.max_payload = v;
    }
    if let Some(v) = file.max_pending.filter(|_| unless_flag("max_pending")) {
        config.max_pending = v;
    }
    if let Some(v) = file.max_outbound.filter(|_| unless_flag("max_outbound")) {
        config.max_outbound = v;
    }
    if let Some(v) = file
        .max_connections
        .filter(|_| unless_flag("max_connections"))
    {
        config.max_connections = v;
    }
    if let Some(v) = file.fsync.filter(|_| unless_flag("fsync")) {
        config.fsync = v;
    }
    if let Some(v) = file.ping_interval.filter(|_| unless_flag("ping_interval")) {
        config.ping_interval = Duration::from_secs(v);
    }
    if let Some(v) = file.frame_timeout.filter(|_| unless_flag("frame_timeout")) {
        config.frame_timeout = Duration::from_secs(v);
    }
    if let Some(v) = file
        .handshake_timeout
        .filter(|_| unless_flag("handshake_timeout"))
    {
        config.handshake_timeout = Duration::from_secs(v);
    }
    if let Some(v) = file.auth_timeout.filter(|_| unless_flag("auth_timeout")) {
        config.auth_timeout = Duration::from_secs(v);
    }
    if let Some(v) = file.max_topics.filter(|_| unless_flag("max_topics")) {
        config.max_topics = v;
    }
    if let Some(v) = file.max_inbound.filter(|_| unless_flag("max_inbound")) {
        config.max_inbound = v;
    }
    if let Some(v) = file
        .max_connections_per_ip
        .filter(|_| unless_flag("max_connections_per_ip"))
    {
        config.max_connections_per_ip = Some(v);
    }
    if let Some(v) = file
        .max_open_files
        .filter(|_| unless_flag("max_open_files"))
    {
        config.max_open_files = Some(v);
    }
    if let Some(v) = file
        .max_streams_per_user
        .filter(|_| unless_flag("max_streams_per_user"))
    {
        config.max_streams_per_user = v;
    }
    config.security = file.security;
    Ok(config)
}

/// Whether the flag `id` was typed on the command line (before or after the
/// subcommand), as opposed to taking its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    let typed = |m: &ArgMatches| m.value_source(id) == Some(ValueSource::CommandLine);
    typed(matches) || matches.subcommand().is_some_and(|(_, sub)| typed(sub))
}

/// `text` as a TOML basic string (quoted, escaped), so any name prints a valid entry.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// JSON if it parses, else the text as a JSON string.
pub fn parse_data(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Option<Headers>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut headers = Headers::new();
    for h in raw {
        let Some((name, value)) = h.split_once('=') else {
            bail!("header `{h}` is not NAME=VALUE");
        };
        let value = value.to_string();
        match headers.remove(name) {
            None => headers.insert(name.to_string(), HeaderValue::One(value)),
            Some(HeaderValue::One(first)) => {
                headers.insert(name.to_string(), HeaderValue::Many(vec![first, value]))
            }
            Some(HeaderValue::Many(mut all)) => {
                all.push(value);
                headers.insert(name.to_string(), HeaderValue::Many(all))
            }
        };
    }
    Ok(Some(headers))
}

/// One output line of `sub` or `consume`: `fields` (an object) with the
/// delivery's `data` and `headers`, each as the broker sent it when this client
/// could not decode it. The line is then exactly as valid JSON as what the broker
/// accepted, and the message is shown rather than dropped or shown as `null`.
fn delivery_line(
    mut fields: Value,
    data: Value,
    headers: Option<Headers>,
    undecoded: Option<&Undecoded>,
) -> String {
    let raw_data = undecoded.and_then(|u| u.data.as_deref());
    let raw_headers = undecoded.and_then(|u| u.headers.as_deref());
    if raw_data.is_none() {
        fields["data"] = data;
    }
    if let (None, Some(h)) = (raw_headers, headers) {
        fields["headers"] = json!(h);
    }
    let mut line = fields.to_string();
    for (name, raw) in [("data", raw_data), ("headers", raw_headers)] {
        if let Some(raw) = raw {
            // `fields` is a non-empty object: its closing brace is the last byte.
            line.pop();
            line.push_str(&format!(",\"{name}\":{raw}}}"));
        }
    }
    line
}

/// Says on stderr that `what` is shown as received, because this client could not
/// decode part of it.
fn warn_undecoded(what: &str, undecoded: &Undecoded) {
    eprintln!(
        "switchyard: {what} is shown as the broker sent it; this client cannot decode it: {}",
        undecoded.problems.join("; ")
    );
}

/// Shows the client library's warnings on stderr (frames it could not deliver,
/// errors no call waits for): a client subcommand must never drop one silently.
fn log_client_warnings() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

async fn connect(url: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new();
    if let Some(ca) = ca {
        options = options.ca_file(ca)?;
    }
    Client::connect_with(url, &options)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Runs a subcommand; `config` is the broker's settings, for `serve`.
pub async fn run(args: Args, config: Config) -> anyhow::Result<()> {
    if !matches!(args.command, None | Some(Cmd::Serve)) {
        log_client_warnings();
    }
    match args.command {
        // Plain `switchyard` and `top` (the dashboard) are run by main, outside the runtime.
        None | Some(Cmd::Serve) => serve(config).await,
        Some(Cmd::Top { .. }) => Ok(()),
        Some(Cmd::Pub {
            topic,
            data,
            headers,
            url,
            ca,
        }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let seq = client
                .publish_with_headers(&topic, parse_data(&data), parse_headers(&headers)?)
                .await?;
            say!("{}", json!({"topic": topic, "seq": seq}));
            client.close().await;
            Ok(())
        }
        Some(Cmd::Sub {
            pattern,
            count,
            filter,
            url,
            ca,
        }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let extra = match filter {
                Some(f) => json!({"filter": f}),
                None => json!({}),
            };
            let mut sub = client.subscribe_with(&pattern, extra).await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(m) = sub.next().await else {
                    bail!(
                        "subscription ended: {}",
                        client.closed_reason().unwrap_or_default()
                    );
                };
                let fields = json!({"topic": m.topic, "seq": m.seq, "time": m.time});
                if let Some(undecoded) = &m.undecoded {
                    warn_undecoded(&format!("message {} on {}", m.seq, m.topic), undecoded);
                }
                say!(
                    "{}",
                    delivery_line(fields, m.data, m.headers, m.undecoded.as_ref())
                );
                seen += 1;
            }
            client.close().await;
            Ok(())
        }
        Some(Cmd::Send {
            queue,
            data,
            confirm,
            headers,
            url,
            ca,
        }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let mut frame = json!({"op": "send", "queue": queue, "data": parse_data(&data),
                                   "confirm": if confirm == ConfirmArg::Done { "done" } else { "stored" }});
            if let Some(h) = parse_headers(&headers)? {
                frame["headers"] = json!(h);
            }
            let mut ok = client.call(frame).await?;
            if let Some(map) = ok.as_object_mut() {
                map.remove("ev");
                map.remove("id");
            }
            say!("{ok}");
            client.close().await;
            Ok(())
        }
        Some(Cmd::Consume {
            queue,
            count,
            prefetch,
            url,
            ca,
        }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let mut consumer = client.consume(&queue, prefetch).await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(job) = consumer.next().await else {
                    bail!(
                        "consumer ended: {}",
                        client.closed_reason().unwrap_or_default()
                    );
                };
                let fields = json!({"queue": job.queue, "msg": job.msg, "attempt": job.attempt});
                // Shown as received, it is handled like any job: acked once printed.
                if let Some(undecoded) = &job.undecoded {
                    warn_undecoded(&format!("job {} of {}", job.msg, job.queue), undecoded);
                }
                say!(
                    "{}",
                    delivery_line(fields, job.data, job.headers, job.undecoded.as_ref())
                );
                client.ack(job.tag).await?;
                seen += 1;
            }
            client.close().await;
            Ok(())
        }
        Some(Cmd::Request {
            queue,
            data,
            timeout_ms,
            url,
            ca,
        }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let reply = client
                .request(&queue, parse_data(&data), Duration::from_millis(timeout_ms))
                .await?;
            say!("{reply}");
            client.close().await;
            Ok(())
        }
        Some(Cmd::Stats { url, ca }) => {
            let client = connect(&url, ca.as_deref()).await?;
            let snapshot = client.stats().await?;
            say!("{}", serde_json::to_string_pretty(&snapshot)?);
            client.close().await;
            Ok(())
        }
        Some(Cmd::Token { name }) => {
            let token = crate::token::Token::generate()
                .map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))?;
            eprintln!(
                "The first line is the token, shown once: give it to the client now. \
                 Below it, the entry for the config file: the broker keeps only the SHA-256."
            );
            say!("{}", token.secret());
            say!("");
            say!("[[users]]");
            say!("name = {}", toml_string(&name));
            say!("token_sha256 = \"{}\"", token.sha256_hex());
            Ok(())
        }
        Some(Cmd::Bench(bench)) => {
            Ok(switchyard_bench::run(bench, &args.broker.fsync.to_string()).await?)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    warn_if_open(&config);
    let server = Server::bind(config)
        .await
        .context("cannot start the broker")?;
    // The broker goes on if nobody reads its stdout any more.
    let _ = writeln!(
        std::io::stdout(),
        "switchyard listening on {}",
        server.url()
    );
    let broker = server.broker();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        broker.shutdown();
    });
    server.run().await;
    Ok(())
}

/// Warns (in the log: stderr for `serve`) when the broker listens beyond this
/// machine with auth off: anyone who reaches the port may then do everything.
pub fn warn_if_open(config: &Config) {
    if !config.listen.ip().is_loopback() && !config.security.auth_on() {
        tracing::warn!(
            "listening on {} with auth off: anyone who can reach this port may publish, \
             read every topic and queue, purge and kick; name users in a config file \
             (docs/OPERATIONS.md, \"Securing Switchyard\")",
            config.listen
        );
    }
}

/// Waits for Ctrl-C (SIGINT), SIGTERM or SIGHUP: each stops the broker
/// gracefully. SIGHUP is a closed terminal or a dropped SSH session, which must
/// not kill a broker without telling its clients.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

/// Writes one line to stdout. A closed pipe (`switchyard stats | head`) ends the
/// command quietly, as it does a Unix tool, instead of a panic.
pub fn say_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("switchyard: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
