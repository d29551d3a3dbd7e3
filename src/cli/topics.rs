//! The topic verbs: `pub` (once, or `--count` times with `{{Count}}`), `sub`
//! (live, or replayed `--from` a retained topic's past) and `seal`.

use std::time::Duration;

use anyhow::bail;
use serde_json::json;

use super::connect::ConnArgs;
use super::output::{delivery_line, warn_undecoded};
use super::values::{fill_template, parse_data, parse_duration, parse_from, parse_headers};

/// `switchyard pub`.
#[derive(clap::Args, Debug)]
pub struct PubArgs {
    /// The topic to publish to (`orders.eu`).
    pub topic: String,
    /// JSON data; text that is not JSON is sent as a JSON string. `{{Count}}` becomes the message's number.
    pub data: String,
    /// A header as NAME:VALUE (or NAME=VALUE); repeat for more, a repeated name is multi-valued.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Publish this many messages, numbered from 1 in `{{Count}}`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Wait this long between two messages (`500ms`, `1s`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub sleep: Option<Duration>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Publishes, printing `{"topic","seq"}` for each message.
pub async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let headers = parse_headers(&args.headers).map_err(anyhow::Error::msg)?;
    let client = args.conn.connect().await?;
    for n in 1..=args.count {
        if n > 1 {
            if let Some(pause) = args.sleep {
                tokio::time::sleep(pause).await;
            }
        }
        let data = parse_data(&fill_template(&args.data, n));
        let seq = client
            .publish_with_headers(&args.topic, data, headers.clone())
            .await?;
        say!("{}", json!({"topic": args.topic, "seq": seq}));
    }
    client.close().await;
    Ok(())
}

/// `switchyard sub`.
#[derive(clap::Args, Debug)]
pub struct SubArgs {
    /// The topic pattern: `*` matches one token, a final `>` one or more (`orders.>`).
    pub pattern: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// A filter query (`data.amount > 5 AND region = 'eu'`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Replay a retained topic from `first`, a seq (`42`), an RFC 3339 time or a duration back (`10m`), then go on live.
    #[arg(long, value_name = "WHERE", value_parser = parse_from)]
    pub from: Option<serde_json::Value>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Prints one JSON line per message until `--count`, or until the topic ends
/// (sealed or deleted: a normal end, exit 0).
pub async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let mut extra = json!({});
    if let Some(f) = &args.filter {
        extra["filter"] = json!(f);
    }
    if let Some(from) = &args.from {
        extra["from"] = from.clone();
    }
    let mut sub = client.subscribe_with(&args.pattern, extra).await?;
    let mut seen = 0;
    while args.count.is_none_or(|c| seen < c) {
        let Some(m) = sub.next().await else {
            if let Some(why) = client.closed_reason() {
                bail!("subscription ended: {why}");
            }
            // The broker ended it (`end`): the topic was sealed or deleted.
            eprintln!("switchyard: {} ended (sealed or deleted)", args.pattern);
            break;
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

/// `switchyard seal`.
#[derive(clap::Args, Debug)]
pub struct SealArgs {
    /// The topic to close: its subscribers get what came before, then the end; later publishes are refused.
    pub topic: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Seals a topic.
pub async fn seal(args: SealArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    client.seal(&args.topic).await?;
    say!("{}", json!({"sealed": args.topic}));
    client.close().await;
    Ok(())
}
