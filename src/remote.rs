//! `switchyard top`: the dashboard for a broker elsewhere, over the wire protocol.
//!
//! [`Remote`] is the second [`Source`]: a thread of its own holds one connection
//! to the broker and keeps it (reconnecting with backoff, never giving up), with a
//! `watch` that sends changes only and in-flight jobs only while a view lists them,
//! a `tail` while the tail is open, and the operator frames for every command. The
//! dashboard's thread only ever locks the latest state or queues a request, so a
//! slow or lost broker never stops the screen.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchyard_broker::{
    BrokerError, Command, CommandOutcome, ErrorCode, Headers, MessageQuery, PeekTarget,
    PeekedMessage, Snapshot, TailMessage,
};
use switchyard_client::{Client, ClientError, ConnectOptions, WatchOptions};
use switchyard_ui::{Link, Reply, Source, Wants};
use tokio::sync::mpsc;

/// How often the broker sends its changes: the dashboard's own tick.
const WATCH_INTERVAL: Duration = switchyard_ui::TICK;

/// Tail messages kept between two polls of the dashboard; the oldest go first.
const TAIL_KEPT: usize = 1000;

/// The first wait before reconnecting, doubled after each failure up to
/// [`RETRY_MAX`]: a restarting broker is back within a second or two, and one that
/// stays down is asked every few seconds, not hammered.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How long one connection attempt may take (the TCP connect, TLS, the upgrade
/// and the `hello`) before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the dashboard asks of the link thread.
enum Request {
    Execute(Command, Reply),
    Tail(Option<(String, MessageQuery)>),
    Want(Wants),
}

/// What the link thread keeps for the dashboard to take.
struct Shared {
    snapshot: Snapshot,
    link: Link,
    tail: VecDeque<TailMessage>,
}

/// A broker reached over the wire, as the dashboard's [`Source`].
pub struct Remote {
    shared: Arc<Mutex<Shared>>,
    requests: mpsc::UnboundedSender<Request>,
    wants: Wants,
    read_only: bool,
}

impl Remote {
    /// Starts the link thread, which connects to `url` (at once, and again
    /// whenever the connection is lost) and keeps the state up to date.
    pub fn start(url: String, options: ConnectOptions, read_only: bool) -> anyhow::Result<Remote> {
        let shared = Arc::new(Mutex::new(Shared {
            snapshot: Snapshot::default(),
            link: Link::Down {
                why: "connecting".into(),
                retry_at: Instant::now(),
            },
            tail: VecDeque::new(),
        }));
        let (requests, queue) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = shared.clone();
        std::thread::Builder::new()
            .name("remote-link".into())
            .spawn(move || runtime.block_on(keep_linked(url, options, state, queue)))
            .context("cannot start the link thread")?;
        Ok(Remote {
            shared,
            requests,
            wants: Wants::default(),
            read_only,
        })
    }

    fn ask(&self, request: Request) {
        // The link thread runs as long as the Remote: a send fails only after it
        // panicked, and then the link shows down.
        let _ = self.requests.send(request);
    }
}

impl Source for Remote {
    fn snapshot(&mut self) -> Snapshot {
        self.shared.lock().snapshot.clone()
    }

    fn execute(&mut self, command: Command, reply: Reply) {
        // Looking is not acting: a read-only console still peeks.
        if self.read_only && command.changes_broker() {
            return reply.send(Err(BrokerError::new(
                ErrorCode::Forbidden,
                "read-only console (--read-only)",
            )));
        }
        self.ask(Request::Execute(command, reply));
    }

    fn open_tail(&mut self, pattern: &str, query: &MessageQuery) -> Result<(), BrokerError> {
        // Refused here as the broker would refuse it, since the answer comes later.
        switchyard_broker::names::check_pattern(pattern)?;
        switchyard_broker::filter::Query::compile(query)?;
        self.shared.lock().tail.clear();
        self.ask(Request::Tail(Some((pattern.to_string(), query.clone()))));
        Ok(())
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        let mut shared = self.shared.lock();
        let n = max.min(shared.tail.len());
        shared.tail.drain(..n).collect()
    }

    fn close_tail(&mut self) {
        self.shared.lock().tail.clear();
        self.ask(Request::Tail(None));
    }

    fn quitting_stops_broker(&self) -> bool {
        false
    }

    fn link(&self) -> Link {
        self.shared.lock().link.clone()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn want(&mut self, wants: &Wants) {
        if *wants != self.wants {
            self.wants = wants.clone();
            self.ask(Request::Want(wants.clone()));
        }
    }
}

/// What the link keeps across connections: what to watch and tail once connected.
#[derive(Default)]
struct Interest {
    wants: Wants,
    tail: Option<(String, MessageQuery)>,
}

/// Connects, serves the dashboard's requests until the connection is lost, and
/// connects again after a backoff, for as long as the dashboard runs (it ends
/// when the [`Remote`] is dropped and its requests channel closes). The backoff
/// starts again only once a connection has served a snapshot: a broker that
/// takes the connection and refuses the watch is retried as slowly as one that
/// is down, and a refused token at the slowest pace, since retrying cannot fix it.
async fn keep_linked(
    url: String,
    options: ConnectOptions,
    shared: Arc<Mutex<Shared>>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut interest = Interest::default();
    let mut wait = RETRY_FIRST;
    loop {
        let lost = match connect(&url, &options).await {
            Ok(client) => {
                let ended = serve(&client, &shared, &mut requests, &mut interest).await;
                client.close().await;
                match ended {
                    Ended::Dropped => return,
                    Ended::Lost(lost) => lost,
                }
            }
            Err(e) => Lost::from(e),
        };
        if lost.was_up {
            wait = RETRY_FIRST;
        }
        if lost.refused {
            wait = RETRY_MAX;
        }
        let retry_at = Instant::now() + wait;
        shared.lock().link = Link::Down {
            why: lost.why,
            retry_at,
        };
        if !wait_down(retry_at, &mut requests, &mut interest).await {
            return;
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Why a connection was lost, and what that says about the next try.
struct Lost {
    why: String,
    /// It had served a snapshot: the broker was there, so try again soon.
    was_up: bool,
    /// The broker refused the token (`unauthorized`) or the watch (`forbidden`).
    refused: bool,
}

impl From<ClientError> for Lost {
    fn from(e: ClientError) -> Lost {
        Lost {
            refused: matches!(e.code(), Some("unauthorized" | "forbidden")),
            why: e.to_string(),
            was_up: false,
        }
    }
}

async fn connect(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect_with(url, options)).await {
        Ok(connected) => connected,
        Err(_) => Err(ClientError::Connect(format!(
            "no answer in {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// How a connection's service ended.
enum Ended {
    /// The dashboard has gone: stop.
    Dropped,
    /// The connection was lost (or the broker refused the watch).
    Lost(Lost),
}

/// Serves one connection: the watch into the shared snapshot, tail messages into
/// the shared tail, requests as frames. Commands run one at a time, in order, on
/// a task of their own, so a publish waiting for an fsync holds neither the watch
/// nor the next request.
async fn serve(
    client: &Client,
    shared: &Arc<Mutex<Shared>>,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    interest: &mut Interest,
) -> Ended {
    let lost = |e: ClientError, was_up| {
        Ended::Lost(Lost {
            was_up,
            ..Lost::from(e)
        })
    };
    let mut watch = match client.watch(&watch_options(&interest.wants)).await {
        Ok(watch) => watch,
        Err(e) => return lost(e, false),
    };
    let mut tail = match &interest.tail {
        Some((pattern, query)) => client.tail_matching(pattern, query).await.ok(),
        None => None,
    };
    let (commands, queue) = mpsc::unbounded_channel();
    let runner = tokio::spawn(run_commands(client.clone(), shared.clone(), queue));
    let mut was_up = false;
    let ended = loop {
        tokio::select! {
            frame = watch.next() => match frame {
                Some(Ok(snapshot)) => {
                    was_up = true;
                    let mut shared = shared.lock();
                    shared.snapshot = snapshot;
                    shared.link = Link::Up;
                }
                Some(Err(e)) => break lost(e, was_up),
                None => break lost(ClientError::Closed(closed_why(client)), was_up),
            },
            Some(message) = next_tail(&mut tail) => {
                let mut shared = shared.lock();
                if shared.tail.len() == TAIL_KEPT {
                    shared.tail.pop_front();
                }
                shared.tail.push_back(message);
            }
            request = requests.recv() => match request {
                None => break Ended::Dropped,
                Some(Request::Execute(command, reply)) => {
                    let _ = commands.send((command, reply));
                }
                Some(Request::Want(wants)) => {
                    watch = match client.watch(&watch_options(&wants)).await {
                        Ok(watch) => watch,
                        Err(e) => break lost(e, was_up),
                    };
                    interest.wants = wants;
                }
                Some(Request::Tail(pattern)) => {
                    tail = None;
                    if let Some((p, query)) = &pattern {
                        tail = client.tail_matching(p, query).await.ok();
                    } else {
                        let _ = client.untail().await;
                    }
                    interest.tail = pattern;
                }
            },
        }
    };
    runner.abort();
    ended
}

/// The next tail message, or never while no tail is open.
async fn next_tail(tail: &mut Option<mpsc::Receiver<TailMessage>>) -> Option<TailMessage> {
    match tail {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Why the client's connection ended, in its words.
fn closed_why(client: &Client) -> String {
    client
        .closed_reason()
        .unwrap_or_else(|| "connection lost".into())
}

/// The watch for what the dashboard shows: changes every tick, in-flight jobs
/// only as many as a view lists.
fn watch_options(wants: &Wants) -> WatchOptions {
    WatchOptions {
        interval_ms: WATCH_INTERVAL.as_millis() as u64,
        changes: true,
        inflight: Some(wants.inflight as u64),
        client: wants.client.clone(),
    }
}

/// While the link is down: commands are answered at once that nothing can be
/// done now, what to watch and tail is kept for the next connection, and at
/// `retry_at` it is time to try again (true) unless the dashboard has gone (false).
async fn wait_down(
    retry_at: Instant,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    interest: &mut Interest,
) -> bool {
    let retry = tokio::time::sleep_until(retry_at.into());
    tokio::pin!(retry);
    loop {
        tokio::select! {
            () = &mut retry => return true,
            request = requests.recv() => match request {
                None => return false,
                Some(Request::Execute(_, reply)) => reply.send(Err(BrokerError::new(
                    ErrorCode::Internal,
                    "not connected to the broker: nothing was done",
                ))),
                Some(Request::Want(wants)) => interest.wants = wants,
                Some(Request::Tail(pattern)) => interest.tail = pattern,
            },
        }
    }
}

/// Runs commands one at a time, in the order given, and answers each.
async fn run_commands(
    client: Client,
    shared: Arc<Mutex<Shared>>,
    mut queue: mpsc::UnboundedReceiver<(Command, Reply)>,
) {
    while let Some((command, reply)) = queue.recv().await {
        reply.send(execute(&client, &shared, command).await);
    }
}

/// One command as its operator frame, and the answer as the command's outcome.
async fn execute(
    client: &Client,
    shared: &Mutex<Shared>,
    command: Command,
) -> Result<CommandOutcome, BrokerError> {
    let frame = match &command {
        Command::Publish {
            topic,
            data,
            headers,
        } => with_headers(json!({"op": "pub", "topic": topic, "data": data}), headers),
        Command::Send {
            queue,
            data,
            headers,
        } => with_headers(
            json!({"op": "send", "queue": queue, "data": data, "confirm": "stored"}),
            headers,
        ),
        Command::Purge { queue } => json!({"op": "purge", "queue": queue}),
        Command::Kick { client, reason } => {
            json!({"op": "kick", "client": client, "reason": reason})
        }
        Command::Requeue { queue, msg } => json!({"op": "requeue", "queue": queue, "msg": msg}),
        Command::Move {
            from,
            to,
            n,
            filter,
            msg,
        } => {
            let mut frame = json!({"op": "move", "from": from, "to": to});
            if let Some(msg) = msg {
                frame["msg"] = json!(msg);
            }
            if let Some(n) = n {
                frame["n"] = json!(n);
            }
            if let Some(filter) = filter {
                frame["filter"] = json!(filter);
            }
            frame
        }
        Command::Drop { queue, msg } => json!({"op": "drop", "queue": queue, "msg": msg}),
        Command::RequeueConsumer { client, cid } => {
            json!({"op": "requeue", "client": client, "cid": cid})
        }
        Command::Peek {
            target,
            n,
            after,
            query,
        } => switchyard_client::peek_frame(target, *n, *after, query),
        Command::Describe { target } => match target {
            PeekTarget::Queue(queue) => json!({"op": "describe", "queue": queue}),
            PeekTarget::Topic(topic) => json!({"op": "describe", "topic": topic}),
        },
    };
    let ok = client.call(frame).await.map_err(broker_error)?;
    let outcome = match command {
        Command::Publish { topic, .. } => CommandOutcome::Published {
            seq: ok["seq"].as_u64().unwrap_or(0),
            // As the embedded console counts them: the topic's subscribers as last seen.
            subscribers: shared
                .lock()
                .snapshot
                .topics
                .iter()
                .find(|t| t.name == topic)
                .map_or(0, |t| t.subscribers),
        },
        Command::Send { .. } => CommandOutcome::Sent {
            msg: ok["msg"].as_str().unwrap_or_default().to_string(),
        },
        Command::Purge { .. } => CommandOutcome::Purged {
            count: ok["purged"].as_u64().unwrap_or(0),
        },
        Command::Kick { .. } => CommandOutcome::Kicked,
        Command::Requeue { .. } => CommandOutcome::Requeued,
        Command::Move { .. } => CommandOutcome::Moved {
            count: ok["moved"].as_u64().unwrap_or(0),
        },
        Command::Drop { .. } => CommandOutcome::Dropped,
        Command::RequeueConsumer { .. } => CommandOutcome::RequeuedAll {
            count: ok["requeued"].as_u64().unwrap_or(0),
        },
        Command::Peek { .. } => CommandOutcome::Peeked {
            messages: serde_json::from_value::<Vec<PeekedMessage>>(ok["messages"].clone())
                .map_err(|e| {
                    BrokerError::new(ErrorCode::Internal, format!("bad peek answer: {e}"))
                })?,
            truncated: ok["truncated"] == json!(true),
            next: ok["next"].as_u64(),
        },
        Command::Describe {
            target: PeekTarget::Queue(_),
        } => CommandOutcome::QueuePage(Box::new(page(&ok["queue"])?)),
        Command::Describe {
            target: PeekTarget::Topic(_),
        } => CommandOutcome::TopicPage(Box::new(page(&ok["topic"])?)),
    };
    Ok(outcome)
}

/// A `describe` answer's page.
fn page<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, BrokerError> {
    T::deserialize(value)
        .map_err(|e| BrokerError::new(ErrorCode::Internal, format!("bad describe answer: {e}")))
}

fn with_headers(mut frame: Value, headers: &Option<Headers>) -> Value {
    if let Some(headers) = headers {
        frame["headers"] = json!(headers);
    }
    frame
}

/// A client error as the broker error the dashboard shows: the broker's own code
/// and words when it answered, else why no answer came.
fn broker_error(e: ClientError) -> BrokerError {
    match e {
        ClientError::Server { code, message } => {
            let code = serde_json::from_value(Value::String(code)).unwrap_or(ErrorCode::Internal);
            BrokerError::new(code, message)
        }
        other => BrokerError::new(ErrorCode::Internal, other.to_string()),
    }
}

/// Runs `switchyard top` until the operator quits.
pub fn run(
    url: &str,
    token: Option<String>,
    ca: Option<&std::path::Path>,
    read_only: bool,
) -> anyhow::Result<()> {
    let mut options = ConnectOptions::new().name("switchyard top");
    if let Some(ca) = ca {
        options = options.ca_file(ca)?;
    }
    if let Some(token) = token {
        options = options.token(token);
    }
    let remote = Remote::start(url.to_string(), options, read_only)?;
    switchyard_ui::run(remote, url).context("dashboard")
}
