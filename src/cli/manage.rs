//! The verbs that manage what the broker holds, and look at it: `declare`,
//! `purge`, `peek`, `delete`, `kick`, `stats`; and `token`, which needs no broker.

use serde_json::{json, Map, Value};
use switchyard_client::export::peeked_line;
use switchyard_client::{MessageQuery, PeekTarget};

use super::connect::ConnArgs;

/// `switchyard declare`.
#[derive(clap::Args, Debug)]
pub struct DeclareArgs {
    /// The queue to create or update; with `--retain`, the topic to make retained.
    pub name: String,
    /// Make NAME a retained topic: stored on disk and replayable (`sub --from`), within the limits below.
    #[arg(long)]
    pub retain: bool,
    /// Retained topic: keep at most this many messages.
    #[arg(long, requires = "retain")]
    pub max_messages: Option<u64>,
    /// Retained topic: keep at most this many bytes.
    #[arg(long, requires = "retain")]
    pub max_bytes: Option<u64>,
    /// Retained topic: drop messages older than this many seconds.
    #[arg(long, requires = "retain")]
    pub max_age_s: Option<u64>,
    /// Queue: keep it in memory only (lost on restart; default: durable, on disk).
    #[arg(long, conflicts_with = "retain")]
    pub memory: bool,
    /// Queue: most ready messages; a send past it is refused `limit`.
    #[arg(long, conflicts_with = "retain")]
    pub max_len: Option<u64>,
    /// Queue: milliseconds a job may stay unacked before it is delivered again.
    #[arg(long, conflicts_with = "retain")]
    pub ack_timeout_ms: Option<u64>,
    /// Queue: deliveries of a message before it is dead-lettered or dropped.
    #[arg(long, conflicts_with = "retain")]
    pub max_attempts: Option<u32>,
    /// Queue: where a message goes after its last attempt (or a nack without requeue).
    #[arg(long, value_name = "QUEUE", conflicts_with = "retain")]
    pub dead_letter: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The option fields of a `declare` frame: those given, and no others, since a
/// `declare` of an existing queue changes only the options it names.
fn declare_options(args: &DeclareArgs) -> Value {
    let mut fields = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            fields.insert(key.to_string(), v);
        }
    };
    if args.retain {
        put("max_messages", args.max_messages.map(Value::from));
        put("max_bytes", args.max_bytes.map(Value::from));
        put("max_age_s", args.max_age_s.map(Value::from));
    } else {
        put("durable", args.memory.then_some(Value::Bool(false)));
        put("max_len", args.max_len.map(Value::from));
        put("ack_timeout_ms", args.ack_timeout_ms.map(Value::from));
        put("max_attempts", args.max_attempts.map(Value::from));
        put("dead_letter", args.dead_letter.clone().map(Value::from));
    }
    Value::Object(fields)
}

/// Declares a queue, or with `--retain` a retained topic.
pub async fn declare(args: DeclareArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let options = declare_options(&args);
    if args.retain {
        client.declare_topic(&args.name, options.clone()).await?;
        say!("{}", json!({"topic": args.name, "retain": options}));
    } else {
        client.declare_queue(&args.name, options.clone()).await?;
        say!("{}", json!({"queue": args.name, "options": options}));
    }
    client.close().await;
    Ok(())
}

/// `switchyard purge`.
#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    /// The queue whose ready messages to remove (jobs in flight stay).
    pub queue: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Purges a queue, printing how many messages went.
pub async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let purged = client.purge(&args.queue).await?;
    say!("{}", json!({"queue": args.queue, "purged": purged}));
    client.close().await;
    Ok(())
}

/// `switchyard move`.
#[derive(clap::Args, Debug)]
pub struct MoveArgs {
    /// The queue the messages leave (a dead-letter queue, say).
    pub from: String,
    /// The queue they join.
    pub to: String,
    /// Move at most this many, oldest first (default: all).
    #[arg(long)]
    pub count: Option<u64>,
    /// Only messages this query matches, as `sub --filter` (`x-dead-letter-reason = 'max_attempts'`).
    #[arg(long, value_name = "QUERY")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Moves ready messages between queues, printing how many went.
pub async fn move_messages(args: MoveArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let mut frame = json!({"op": "move", "from": args.from, "to": args.to});
    if let Some(n) = args.count {
        frame["n"] = json!(n);
    }
    if let Some(filter) = &args.filter {
        frame["filter"] = json!(filter);
    }
    let ok = client.call(frame).await?;
    say!(
        "{}",
        json!({"from": args.from, "to": args.to, "moved": ok["moved"]})
    );
    client.close().await;
    Ok(())
}

/// `switchyard requeue`.
#[derive(clap::Args, Debug)]
pub struct RequeueArgs {
    /// The queue of the in-flight job.
    #[arg(required_unless_present = "client", requires = "msg")]
    pub queue: Option<String>,
    /// The job's message id (`msg`).
    pub msg: Option<String>,
    /// Instead: every job this client's consumer holds (with --cid).
    #[arg(long, requires = "cid", conflicts_with_all = ["queue", "msg"])]
    pub client: Option<String>,
    /// With --client: the consumer's cid.
    #[arg(long, requires = "client")]
    pub cid: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Puts in-flight jobs back in their queue now: one by its id, or a consumer's.
pub async fn requeue(args: RequeueArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let frame = match (&args.client, &args.cid, &args.queue, &args.msg) {
        (Some(c), Some(cid), _, _) => json!({"op": "requeue", "client": c, "cid": cid}),
        (_, _, Some(q), Some(m)) => json!({"op": "requeue", "queue": q, "msg": m}),
        _ => anyhow::bail!("give QUEUE MSG, or --client and --cid"),
    };
    let mut ok = client.call(frame.clone()).await?;
    if let Some(map) = ok.as_object_mut() {
        map.remove("ev");
        map.remove("id");
    }
    let mut printed = frame;
    if let Some(map) = printed.as_object_mut() {
        map.remove("op");
        map.insert(
            "requeued".into(),
            ok.get("requeued").cloned().unwrap_or(json!(1)),
        );
    }
    say!("{printed}");
    client.close().await;
    Ok(())
}

/// `switchyard drop`.
#[derive(clap::Args, Debug)]
pub struct DropArgs {
    /// The queue that holds the message.
    pub queue: String,
    /// The message's id (`msg`, as `peek` shows it); it must be ready, not in flight.
    pub msg: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Drops one ready message by its id.
pub async fn drop_message(args: DropArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    client
        .call(json!({"op": "drop", "queue": args.queue, "msg": args.msg}))
        .await?;
    say!("{}", json!({"queue": args.queue, "dropped": args.msg}));
    client.close().await;
    Ok(())
}

/// `switchyard peek`.
#[derive(clap::Args, Debug)]
pub struct PeekArgs {
    /// The queue to look into (with `--topic`, a retained topic).
    pub name: String,
    /// NAME is a retained topic: its last messages (from its first with
    /// `--filter`, `--search` or `--all`).
    #[arg(long)]
    pub topic: bool,
    /// How many messages to show; the broker is asked page by page, 1,000 at a time.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub count: usize,
    /// Every message (that matches), however many.
    #[arg(long, conflicts_with = "count")]
    pub all: bool,
    /// Only messages this query matches (the `sub` filter language, e.g.
    /// "data.total > 100", "trace = 'abc'"), evaluated by the broker.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only messages whose data or headers, as compact JSON, hold this text.
    #[arg(long)]
    pub search: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The most messages one `peek` answers (docs/PROTOCOL.md).
const PEEK_PAGE: usize = 1000;

/// Prints, one JSON line each (the console's export format), the ready
/// messages of a queue (not consumed) or the messages of a retained topic,
/// paging through with the broker's cursor until `--count` or the end.
pub async fn peek(args: PeekArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let target = if args.topic {
        PeekTarget::Topic(args.name.clone())
    } else {
        PeekTarget::Queue(args.name.clone())
    };
    let query = MessageQuery {
        filter: args.filter,
        search: args.search,
    };
    let mut left = if args.all { usize::MAX } else { args.count };
    // A topic shows its last messages unless asked to page from its first.
    let mut after = (args.topic && args.all && query.is_empty()).then_some(0);
    while left > 0 {
        let page = client
            .peek_page(&target, left.min(PEEK_PAGE), after, &query)
            .await?;
        for m in &page.messages {
            say!("{}", peeked_line(m));
        }
        left = left.saturating_sub(page.messages.len());
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    client.close().await;
    Ok(())
}

/// `switchyard delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// The queue to delete, with what it holds (with `--topic`, a topic).
    pub name: String,
    /// NAME is a topic: delete it and its stored messages; its subscriptions end.
    #[arg(long)]
    pub topic: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Deletes a queue or a topic.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    if args.topic {
        client.delete_topic(&args.name).await?;
        say!("{}", json!({"deleted": {"topic": args.name}}));
    } else {
        client.delete_queue(&args.name).await?;
        say!("{}", json!({"deleted": {"queue": args.name}}));
    }
    client.close().await;
    Ok(())
}

/// `switchyard kick`.
#[derive(clap::Args, Debug)]
pub struct KickArgs {
    /// The client's id, as `stats` and the dashboard show it (`c42`).
    pub client: String,
    /// The reason the client is told.
    #[arg(long, default_value = "kicked by an operator")]
    pub reason: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Disconnects a client.
pub async fn kick(args: KickArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    client.kick(&args.client, &args.reason).await?;
    say!("{}", json!({"kicked": args.client}));
    client.close().await;
    Ok(())
}

/// `switchyard stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Prints the broker's snapshot as JSON.
pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let snapshot = client.stats().await?;
    say!("{}", serde_json::to_string_pretty(&snapshot)?);
    client.close().await;
    Ok(())
}

/// `switchyard token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The user's name in the printed entry.
    #[arg(long, default_value = "my-service")]
    pub name: String,
}

/// Prints a fresh token, then the `[[users]]` entry holding its digest.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let token = crate::token::Token::generate()
        .map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))?;
    eprintln!(
        "The first line is the token, shown once: give it to the client now. \
         Below it, the entry for the config file: the broker keeps only the SHA-256."
    );
    say!("{}", token.secret());
    say!("");
    say!("[[users]]");
    say!("name = {}", toml_string(&args.name));
    say!("token_sha256 = \"{}\"", token.sha256_hex());
    Ok(())
}

/// `text` as a TOML basic string (quoted, escaped), so any name prints a valid entry.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
