//! The broker's side of the command line: the flags of `serve` and plain
//! `switchyard`, how they meet the config file, and running the broker without
//! the dashboard.

use std::io::{IsTerminal as _, Write as _};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::ArgMatches;
use switchyard_broker::store::FsyncPolicy;
use switchyard_broker::{Config, Server};

/// Flags of a broker process (`switchyard` and `switchyard serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// A TOML config file: every flag here as a key of the same name, plus users,
    /// tokens, Origins and TLS (docs/OPERATIONS.md). A flag given here wins over the
    /// file. Default: the `SWITCHYARD_CONFIG` environment variable, if set.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, as IP:PORT or HOST:PORT (`localhost:7400`); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7400", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Where durable queues and retained topics are stored.
    #[arg(long, default_value = "./switchyard-data")]
    pub data_dir: PathBuf,
    /// Largest frame a client may send: bytes, or with a unit (`64KiB`, `1MiB`).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_payload: usize,
    /// Outbound buffer per connection (bytes, or `8MiB`): half full marks a client
    /// slow, full kicks it.
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub max_pending: usize,
    /// Most bytes all connections' outbound buffers may hold together; past it, the
    /// clients holding the most are kicked (`outbound_budget`). Default: a quarter
    /// of physical memory (1 GiB where /proc/meminfo cannot be read). Bytes, or
    /// with a unit (`2GiB`); at least 1.
    #[arg(long, value_name = "SIZE", value_parser = parse_positive_size)]
    pub max_outbound: Option<u64>,
    /// Most connections served at once; more get HTTP 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// When stored messages reach the disk: `batch` (group commit, default), `always`
    /// or `never` (see docs/OPERATIONS.md for what each guarantees).
    #[arg(long, default_value = "batch")]
    pub fsync: FsyncPolicy,
    /// Longest a publisher is paused, after the frames of one read, for
    /// subscribers past half their outbound buffer that are still reading
    /// (milliseconds, 0 to 1000; 0: never pause).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub max_pause_ms: u64,
    /// Seconds a subscriber past half its outbound buffer may read none of it
    /// before it is kicked (`slow_consumer`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub slow_timeout: u64,
    /// Seconds between the pings the broker sends each client; a client that
    /// answers none of two in a row is closed, so dead peers free their slots.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_interval: u64,
    /// Seconds a frame may take to arrive once its first byte has; a slower
    /// client is closed (1008).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub frame_timeout: u64,
    /// What all connections' read buffers may hold together (unfinished frames
    /// above all), bytes or `256MiB`; a frame that would pass it closes its
    /// connection (1013).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_inbound: usize,
    /// Seconds a new connection has to send its HTTP request (and finish TLS);
    /// slower gets HTTP 408.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub handshake_timeout: u64,
    /// With auth on, seconds a connection may go without a valid token before
    /// it is closed (1008).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub auth_timeout: u64,
    /// Most topics the broker keeps counters for; past it, a pub to a new topic
    /// no subscription matches gets `limit`.
    #[arg(long, default_value_t = switchyard_broker::MAX_TOPICS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_topics: usize,
    /// Connections one IP address may have open at once; 0 for no cap.
    /// Default: a quarter of --max-connections.
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Log files kept open at most (idle ones past it are closed and reopened when
    /// used). Default: half the open-files limit at start.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_open_files: Option<u64>,
    /// Queues and retained topics one user may create and hold at once (a
    /// `[[users]]` entry's `max_streams` overrides it; with auth off, all clients
    /// share one count). 0 for no cap.
    #[arg(long, default_value_t = 1000)]
    pub max_streams_per_user: usize,
    /// HTTP API requests (`/v1/...`) answered at once, apart from
    /// --max-connections' WebSockets; more get HTTP 503.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_http_requests: usize,
    /// Queues and topics together that keep 15 minutes of per-second history
    /// (for `describe` and the console's pages); 0 for none.
    #[arg(long, default_value_t = switchyard_broker::history::DEFAULT_MAX_HISTORY)]
    pub max_history: usize,
    /// Serve topics through a NATS cluster, with other Switchyard nodes: its
    /// servers' URLs, comma-separated (`nats://h1:4222,nats://h2:4222`). See
    /// docs/OPERATIONS.md, "Running a cluster".
    #[arg(long, value_name = "URL[,URL...]", value_parser = parse_nats)]
    pub nats: Option<String>,
    /// A NATS credentials file (JWT and nkey seed) for --nats.
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// This node's name in the cluster (--nats): 1 to 64 of A-Z a-z 0-9 _ - :.
    /// Default: the host name and the process id (`web1-4711`).
    #[arg(long, value_name = "NAME", value_parser = parse_node)]
    pub node: Option<String>,
}

/// Checks `--nats`'s list, kept as typed (read again by [`cluster`]).
fn parse_nats(text: &str) -> Result<String, String> {
    switchyard_broker::cluster::parse_urls(text).map(|_| text.to_string())
}

fn parse_node(text: &str) -> Result<String, String> {
    switchyard_broker::cluster::check_node(text).map(|()| text.to_string())
}

/// The flags `serve` runs with: each one typed after `serve`, else typed before
/// it (`switchyard --listen X serve`, as before the flags moved to `serve`), else
/// its default.
pub fn merged(
    root: &BrokerArgs,
    root_m: &ArgMatches,
    serve: &BrokerArgs,
    serve_m: &ArgMatches,
) -> BrokerArgs {
    let mut args = serve.clone();
    let from_root = |id: &str| typed(root_m, id) && !typed(serve_m, id);
    macro_rules! take {
        ($($field:ident),*) => {
            $(if from_root(stringify!($field)) { args.$field = root.$field.clone(); })*
        };
    }
    take!(
        config,
        listen,
        data_dir,
        max_payload,
        max_pending,
        max_outbound,
        max_connections,
        fsync,
        ping_interval,
        max_pause_ms,
        slow_timeout,
        frame_timeout,
        max_inbound,
        handshake_timeout,
        auth_timeout,
        max_topics,
        max_connections_per_ip,
        max_open_files,
        max_streams_per_user,
        max_http_requests,
        max_history,
        nats,
        nats_creds,
        node
    );
    args
}

/// The broker flags typed before a client subcommand (`switchyard --fsync always
/// pub ...`), which that subcommand would otherwise silently ignore.
pub fn typed_on_root(root_m: &ArgMatches) -> Vec<String> {
    use clap::Args as _;
    BrokerArgs::augment_args(clap::Command::new("switchyard"))
        .get_arguments()
        .filter(|a| typed(root_m, a.get_id().as_str()))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// `--listen`: an IP and port, or a host name and port (`localhost:7400`), which
/// is resolved once, preferring IPv4: `localhost` is what people type, and most
/// resolvers list `::1` first while clients dial `127.0.0.1`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let resolved: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("`{text}` is not HOST:PORT ({e})"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// A size flag: a number of bytes, or a number and a binary unit, `KiB`, `MiB` or
/// `GiB` (case aside, a space between allowed): `1048576`, `1MiB`, `512 kib`.
/// `MB` and the like are refused rather than guessed, since they may mean 10⁶ or
/// 2²⁰.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let bytes = size_in_bytes(text)?;
    usize::try_from(bytes).map_err(|_| format!("`{text}` is more than this machine can address"))
}

/// [`parse_size`] for a size that must be at least one byte.
pub fn parse_positive_size(text: &str) -> Result<u64, String> {
    match size_in_bytes(text)? {
        0 => Err(format!("`{text}`: must be at least 1 byte")),
        n => Ok(n),
    }
}

fn size_in_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 1048576, 64KiB or 1MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        "k" | "kb" | "m" | "mb" | "g" | "gb" => {
            return Err(format!(
                "`{text}`: write KiB, MiB or GiB (powers of 1024), or a number of bytes"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
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
        max_pause: Duration::from_millis(args.max_pause_ms),
        slow_timeout: Duration::from_secs(args.slow_timeout),
        frame_timeout: Duration::from_secs(args.frame_timeout),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        auth_timeout: Duration::from_secs(args.auth_timeout),
        max_topics: args.max_topics,
        max_inbound: args.max_inbound,
        max_connections_per_ip: args.max_connections_per_ip,
        max_open_files: args.max_open_files.map(|n| n as usize),
        max_streams_per_user: args.max_streams_per_user,
        max_http_requests: args.max_http_requests,
        max_history: args.max_history,
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
        config.cluster = cluster(
            flag_urls(args.nats.as_deref())?,
            args.nats_creds.clone(),
            args.node.clone(),
        )?;
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
    if let Some(v) = file.max_pause_ms.filter(|_| unless_flag("max_pause_ms")) {
        config.max_pause = Duration::from_millis(v);
    }
    if let Some(v) = file.slow_timeout.filter(|_| unless_flag("slow_timeout")) {
        config.slow_timeout = Duration::from_secs(v);
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
    if let Some(v) = file
        .max_http_requests
        .filter(|_| unless_flag("max_http_requests"))
    {
        config.max_http_requests = v;
    }
    if let Some(v) = file.max_history.filter(|_| unless_flag("max_history")) {
        config.max_history = v;
    }
    config.security = file.security;
    config.webhooks = file.webhooks;
    let nats = file
        .nats
        .filter(|_| unless_flag("nats"))
        .or(flag_urls(args.nats.as_deref())?);
    let creds = file
        .nats_creds
        .filter(|_| unless_flag("nats_creds"))
        .or(args.nats_creds.clone());
    let node = file
        .node
        .filter(|_| unless_flag("node"))
        .or(args.node.clone());
    config.cluster = cluster(nats, creds, node)?;
    Ok(config)
}

/// `--nats`'s URLs, if it was given.
fn flag_urls(text: Option<&str>) -> anyhow::Result<Option<Vec<String>>> {
    text.map(|t| switchyard_broker::cluster::parse_urls(t).map_err(anyhow::Error::msg))
        .transpose()
}

/// The cluster settings, when `nats` is given; `nats_creds` and `node` mean
/// nothing without it, so either alone is an error rather than ignored.
fn cluster(
    nats: Option<Vec<String>>,
    creds: Option<PathBuf>,
    node: Option<String>,
) -> anyhow::Result<Option<switchyard_broker::cluster::ClusterConfig>> {
    let Some(urls) = nats else {
        if creds.is_some() || node.is_some() {
            anyhow::bail!("--nats-creds and --node need --nats (the NATS servers to join)");
        }
        return Ok(None);
    };
    Ok(Some(switchyard_broker::cluster::ClusterConfig {
        urls,
        creds,
        node: node.unwrap_or_else(switchyard_broker::cluster::default_node),
    }))
}

/// Whether the flag `id` was typed on the command line (before or after the
/// subcommand), as opposed to taking its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    typed(matches, id) || matches.subcommand().is_some_and(|(_, sub)| typed(sub, id))
}

/// Whether `id` was typed in `matches` itself (not a subcommand's).
fn typed(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// Runs the broker without the dashboard until a signal; prints its URL first.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour codes only for a person's terminal: in a file, journald or a
        // container's log they are noise around every level and target.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    warn_if_open(&config);
    // Caught before the address is told, so whoever was told can stop it.
    let signals = signals();
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
        signals.recv().await;
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
    signals().recv().await
}

/// SIGINT, SIGTERM and SIGHUP, caught from the moment this returns (tokio
/// installs a handler only when asked): a service manager's SIGTERM that comes
/// right after the "listening" line then stops the broker gracefully instead of
/// killing it.
pub fn signals() -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    Signals(
        [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .map(|kind| signal(kind).ok()),
    )
}

/// The signals [`signals`] catches.
pub struct Signals([Option<tokio::signal::unix::Signal>; 3]);

impl Signals {
    /// Waits for the first of them (for Ctrl-C alone if they could not be caught).
    pub async fn recv(self) {
        let [Some(mut int), Some(mut term), Some(mut hup)] = self.0 else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_a_binary_unit() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("512 kib"), Ok(512 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(
            parse_size("1MB"),
            Err("`1MB`: write KiB, MiB or GiB (powers of 1024), or a number of bytes".into())
        );
        assert_eq!(
            parse_size("1TiB"),
            Err("unknown unit `tib` in `1TiB` (KiB, MiB or GiB)".into())
        );
        assert_eq!(
            parse_size("1.5MiB"),
            Err("`1.5MiB` is not a size such as 1048576, 64KiB or 1MiB".into())
        );
        assert_eq!(
            parse_size("MiB"),
            Err("`MiB` is not a size such as 1048576, 64KiB or 1MiB".into())
        );
        assert_eq!(
            size_in_bytes("99999999999999GiB"),
            Err("`99999999999999GiB` is too large".into())
        );
        assert_eq!(parse_positive_size("1KiB"), Ok(1024));
        assert_eq!(
            parse_positive_size("0MiB"),
            Err("`0MiB`: must be at least 1 byte".into())
        );
    }
}
