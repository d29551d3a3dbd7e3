//! The queue verbs: `send`, `consume` (ack after printing, never, or after a
//! command succeeds), `request`, and `reply`, which answers requests with a
//! fixed text, their own data, or what a command prints.

use std::time::Duration;

use anyhow::bail;
use clap::ValueEnum;
use serde_json::{json, Value};
use switchyard_client::{Client, ClientError, Job};

use super::connect::ConnArgs;
use super::output::{delivery_line, warn_undecoded};
use super::shell::{reply_data, JobCommand};
use super::values::{parse_data, parse_duration, parse_headers};

/// When `send` returns.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmArg {
    /// Once the message is in the queue (on disk, for a durable queue).
    Stored,
    /// Once a consumer acked it.
    Done,
}

/// `switchyard send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The queue to send to (created if new).
    pub queue: String,
    /// JSON data; text that is not JSON is sent as a JSON string.
    pub data: String,
    /// `stored`: return once queued; `done`: wait until a consumer acked it.
    #[arg(long, value_enum, default_value_t = ConfirmArg::Stored)]
    pub confirm: ConfirmArg,
    /// A header as NAME:VALUE (or NAME=VALUE); repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// How long it may wait for a consumer (`30s`, `500ms`); then it is dead-lettered or dropped.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Sends one message and prints the broker's answer (`{"msg":"1"}`).
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let headers = parse_headers(&args.headers).map_err(anyhow::Error::msg)?;
    let client = args.conn.connect().await?;
    let confirm = match args.confirm {
        ConfirmArg::Done => "done",
        ConfirmArg::Stored => "stored",
    };
    let mut frame = json!({"op": "send", "queue": args.queue, "data": parse_data(&args.data),
                           "confirm": confirm});
    if let Some(h) = headers {
        frame["headers"] = json!(h);
    }
    if let Some(ttl) = args.ttl {
        frame["ttl_ms"] = json!(ttl.as_millis());
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

/// `switchyard consume`.
#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The queue to take jobs from.
    pub queue: String,
    /// Stop after this many jobs.
    #[arg(long)]
    pub count: Option<u64>,
    /// Most jobs held unacked at once.
    #[arg(long, default_value_t = 1)]
    pub prefetch: u32,
    /// Print jobs but never ack them: when this consumer goes, they are delivered again (attempt + 1).
    #[arg(long, conflicts_with = "ack_after")]
    pub no_ack: bool,
    /// Run this shell line per job, its data on stdin: exit 0 acks the job, anything else nacks it back to the queue.
    #[arg(long, value_name = "COMMAND")]
    pub ack_after: Option<String>,
    /// Instead of printing jobs, have the broker POST each to this http:// URL until the webhook's client is kicked (needs an admin token with auth on); prints its client id.
    #[arg(long, value_name = "URL", conflicts_with_all = ["count", "no_ack", "ack_after"])]
    pub webhook: Option<String>,
    /// With --webhook: jobs posted and not yet answered, at most (default 16).
    #[arg(long, requires = "webhook")]
    pub max_in_flight: Option<u64>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Prints one JSON line per job and settles it as the flags say.
pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let command = args.ack_after.map(|line| JobCommand::new(vec![line]));
    let client = args.conn.connect().await?;
    if let Some(url) = args.webhook {
        let mut webhook = json!({"url": url});
        if let Some(n) = args.max_in_flight {
            webhook["max_in_flight"] = json!(n);
        }
        let ok = client
            .call(json!({"op": "consume", "queue": args.queue, "webhook": webhook}))
            .await?;
        say!("{}", json!({"client": ok["client"], "queue": args.queue}));
        client.close().await;
        return Ok(());
    }
    let mut consumer = client.consume(&args.queue, args.prefetch).await?;
    let mut seen = 0;
    while args.count.is_none_or(|c| seen < c) {
        let Some(job) = consumer.next().await else {
            bail!(
                "consumer ended: {}",
                client.closed_reason().unwrap_or_default()
            );
        };
        // A job shown as received (undecodable in part) is settled like any other,
        // so it never holds the queue.
        print_job(&job);
        match &command {
            _ if args.no_ack => {}
            Some(Some(command)) => {
                let outcome = command.run(&job.data, false).await?;
                if outcome.status.success() {
                    client.ack(job.tag).await?;
                } else {
                    eprintln!(
                        "switchyard: job {} of {}: the command {}; nacked, back to the queue",
                        job.msg, job.queue, outcome.status
                    );
                    client.nack(job.tag, true).await?;
                }
            }
            _ => client.ack(job.tag).await?,
        }
        seen += 1;
    }
    client.close().await;
    Ok(())
}

fn print_job(job: &Job) {
    let fields = json!({"queue": job.queue, "msg": job.msg, "attempt": job.attempt});
    if let Some(undecoded) = &job.undecoded {
        warn_undecoded(&format!("job {} of {}", job.msg, job.queue), undecoded);
    }
    say!(
        "{}",
        delivery_line(
            fields,
            job.data.clone(),
            job.headers.clone(),
            job.undecoded.as_ref()
        )
    );
}

/// `switchyard request`.
#[derive(clap::Args, Debug)]
pub struct RequestArgs {
    /// The queue whose consumer answers (`switchyard reply QUEUE ...` is one).
    pub queue: String,
    /// JSON data; text that is not JSON is sent as a JSON string.
    pub data: String,
    /// How long to wait for the reply (`500ms`, `2s`; at most 10m).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// The same in milliseconds (the flag's old spelling).
    #[arg(long, hide = true, conflicts_with = "timeout")]
    pub timeout_ms: Option<u64>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Prints the reply's data, or says plainly that nobody answered.
pub async fn request(args: RequestArgs) -> anyhow::Result<()> {
    let timeout = args
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(args.timeout);
    let client = args.conn.connect().await?;
    let reply = client
        .request(&args.queue, parse_data(&args.data), timeout)
        .await
        .map_err(|e| request_failed(&args.queue, timeout, e))?;
    say!("{reply}");
    client.close().await;
    Ok(())
}

/// A request's failure in the words of its queue. The broker's `timeout`
/// names its internal message id (`no reply to 1 in time`), which means nothing
/// to whoever typed the command; what helps is the queue, the wait, and what
/// answers requests.
fn request_failed(queue: &str, timeout: Duration, e: ClientError) -> anyhow::Error {
    match e.code() {
        Some("timeout") => anyhow::anyhow!(
            "no reply from queue `{queue}` within {timeout:?}: nothing answered it \
             (`switchyard reply {queue} --echo` answers requests)"
        ),
        Some("dead") => anyhow::anyhow!(
            "the request to queue `{queue}` was dropped unanswered ({e}): its consumer \
             refused it, or it was purged or deleted"
        ),
        _ => anyhow::Error::new(e).context(format!("request to queue `{queue}`")),
    }
}

/// `switchyard reply`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("answer").required(true).args(["command", "echo", "data"]))]
pub struct ReplyArgs {
    /// The queue whose requests to answer.
    pub queue: String,
    /// Answer with what this prints, the request's data on stdin (one word: a shell line; more: a program and its arguments).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
    /// Answer each request with its own data.
    #[arg(long)]
    pub echo: bool,
    /// Answer each request with this JSON (text that is not JSON as a string).
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Stop after answering this many requests.
    #[arg(long)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// How `reply` answers.
enum Answer {
    Echo,
    Fixed(Value),
    Run(JobCommand),
}

/// Answers each request on the queue, printing one JSON line per request.
/// A command that fails gets its request nacked without requeue: the requester
/// hears `dead` now rather than a timeout, and the job does not come back to
/// fail again.
pub async fn reply(args: ReplyArgs) -> anyhow::Result<()> {
    let answer = match (JobCommand::new(args.command), args.data, args.echo) {
        (Some(command), _, _) => Answer::Run(command),
        (None, Some(data), _) => Answer::Fixed(parse_data(&data)),
        (None, None, _) => Answer::Echo,
    };
    let client = args.conn.connect().await?;
    let mut consumer = client.consume(&args.queue, 1).await?;
    let mut seen = 0;
    while args.count.is_none_or(|c| seen < c) {
        let Some(job) = consumer.next().await else {
            bail!(
                "consumer ended: {}",
                client.closed_reason().unwrap_or_default()
            );
        };
        print_job(&job);
        answer_one(&client, &answer, job).await?;
        seen += 1;
    }
    client.close().await;
    Ok(())
}

async fn answer_one(client: &Client, answer: &Answer, job: Job) -> anyhow::Result<()> {
    let data = match answer {
        Answer::Echo => job.data,
        Answer::Fixed(data) => data.clone(),
        Answer::Run(command) => {
            let outcome = command.run(&job.data, true).await?;
            if !outcome.status.success() {
                eprintln!(
                    "switchyard: request {} of {}: the command {}; refused (nack)",
                    job.msg, job.queue, outcome.status
                );
                client.nack(job.tag, false).await?;
                return Ok(());
            }
            reply_data(&outcome.stdout)
        }
    };
    client.reply(job.tag, data).await?;
    Ok(())
}
