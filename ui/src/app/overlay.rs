//! What can be open over a view: help, a confirm dialog, the publish form, a
//! peek at a queue, a live tail of a topic, or one client's details; the
//! question before quitting stops the broker, over all of them; and the state
//! each of them keeps.

use std::collections::VecDeque;

use switchyard_broker::stats::ClientStats;
use switchyard_broker::{MessageQuery, PeekedMessage, Snapshot, TailMessage};

use super::commands::PEEK_COUNT;
use crate::delivery::{Delivery, Subscribers};
use crate::format;
use crate::publish::PublishForm;
use crate::reply::CommandId;

/// How many tail messages the tail popup keeps; older ones scroll away.
pub const TAIL_KEEP: usize = 1_000;

/// A destructive action waiting for a yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Purge a queue's ready messages; `count` is what the latest snapshot shows.
    Purge {
        /// The queue.
        queue: String,
        /// Ready messages in the latest snapshot: the question is about what `y`
        /// would remove now, not what was there when it was asked.
        count: u64,
    },
    /// Kick one client.
    Kick {
        /// Client id.
        client: String,
        /// Its name, if it gave one, for the question.
        name: Option<String>,
        /// Its address, for the question.
        addr: String,
    },
    /// Kick every client that was marked slow when asked.
    KickSlow {
        /// Their ids.
        clients: Vec<String>,
        /// Each as the question names it: `c3 (worker-2)`.
        shown: Vec<String>,
    },
    /// Requeue every job one consumer holds.
    RequeueConsumer {
        /// Its client id.
        client: String,
        /// Its cid.
        cid: String,
        /// The client's name from `hello`, if it gave one, for the question.
        name: Option<String>,
        /// Its jobs in the latest in-flight list.
        count: u64,
    },
    /// Drop one ready message of a queue, by id.
    Drop {
        /// The queue.
        queue: String,
        /// The message id.
        msg: String,
    },
    /// Move one dead letter back to the queue it died in.
    MoveOne {
        /// The dead-letter queue.
        from: String,
        /// The queue it died in.
        to: String,
        /// The message id.
        msg: String,
    },
    /// Move every ready message of one queue to another (`:move`).
    Move {
        /// Where they are.
        from: String,
        /// Where they go.
        to: String,
        /// Ready messages of `from` in the latest snapshot.
        count: u64,
    },
    /// Purge every queue a filter lists.
    PurgeListed {
        /// The queues, as listed.
        queues: Vec<String>,
        /// Their ready messages in the latest snapshot.
        ready: u64,
    },
    /// Requeue every job a filter lists.
    RequeueListed {
        /// Each job's queue and message id.
        jobs: Vec<(String, String)>,
        /// The clients holding them, named as `c3 (worker-2)`, each once.
        holders: Vec<String>,
    },
    /// Kick every client a filter lists.
    KickListed {
        /// Their ids.
        clients: Vec<String>,
        /// Each as the question names it: `c3 (worker-2)`.
        shown: Vec<String>,
    },
    /// Move a dead-letter queue's messages that died in `to` back there.
    MoveBack {
        /// The dead-letter queue.
        from: String,
        /// The queue they died in (their `x-dead-letter-queue`).
        to: String,
        /// Ready messages of `from` in the latest snapshot.
        count: u64,
    },
}

impl Confirmation {
    /// Follow the latest snapshot while the question is open. A queue missing
    /// from it (lists may be cut to fit the frame) keeps its last count.
    pub(super) fn update(&mut self, snapshot: &Snapshot) {
        match self {
            Confirmation::Purge { queue, count }
            | Confirmation::Move {
                from: queue, count, ..
            }
            | Confirmation::MoveBack {
                from: queue, count, ..
            } => {
                if let Some(q) = snapshot.queues.iter().find(|q| q.name == *queue) {
                    *count = q.ready;
                }
            }
            Confirmation::PurgeListed { queues, ready } => {
                // A name set, not a scan per queue: a filter may list 10,000.
                let listed: std::collections::HashSet<&str> =
                    queues.iter().map(String::as_str).collect();
                *ready = (snapshot.queues.iter())
                    .filter(|q| listed.contains(q.name.as_str()))
                    .map(|q| q.ready)
                    .fold(0, u64::saturating_add);
            }
            _ => {}
        }
    }

    /// The question the confirm dialog asks.
    pub fn question(&self) -> String {
        match self {
            // Emptied while the question was open: say so rather than ask to purge 0.
            Confirmation::Purge { queue, count: 0 } => {
                format!("{queue} has no ready messages now; purge anyway? y/n")
            }
            Confirmation::Purge { queue, count } => {
                let s = if *count == 1 { "" } else { "s" };
                format!("Purge {count} ready message{s} from {queue}? y/n")
            }
            Confirmation::Kick { client, name, addr } => match name {
                Some(name) => format!("Kick client {client} ({name}, {addr})? y/n"),
                None => format!("Kick client {client} ({addr})? y/n"),
            },
            Confirmation::KickSlow { clients, shown } => {
                let s = if clients.len() == 1 { "" } else { "s" };
                format!(
                    "Kick {} slow client{s} ({})? y/n",
                    clients.len(),
                    list(shown, 6)
                )
            }
            Confirmation::RequeueConsumer {
                client,
                cid,
                name,
                count,
            } => {
                let s = if *count == 1 { "" } else { "s" };
                match name {
                    Some(name) => {
                        format!("Requeue the {count} job{s} {client}/{cid} ({name}) holds? y/n")
                    }
                    None => format!("Requeue the {count} job{s} {client}/{cid} holds? y/n"),
                }
            }
            Confirmation::Move { from, to, count } => {
                let s = if *count == 1 { "" } else { "s" };
                format!(
                    "Move {} ready message{s} from {from} to {to}? y/n",
                    format::grouped(*count)
                )
            }
            Confirmation::PurgeListed { queues, ready } => {
                let n = queues.len();
                let (qs, ms) = (plural(n as u64, "queue"), plural(*ready, "ready message"));
                format!(
                    "Purge the {} listed {qs} ({} {ms})? y/n",
                    format::grouped(n as u64),
                    format::grouped(*ready)
                )
            }
            Confirmation::RequeueListed { jobs, holders } => {
                let n = jobs.len() as u64;
                format!(
                    "Requeue the {} listed {} now (held by {})? y/n",
                    format::grouped(n),
                    plural(n, "job"),
                    list(holders, 4)
                )
            }
            Confirmation::KickListed { clients, shown } => {
                let n = clients.len() as u64;
                format!(
                    "Kick the {} listed {} ({})? y/n",
                    format::grouped(n),
                    plural(n, "client"),
                    list(shown, 6)
                )
            }
            Confirmation::Drop { queue, msg } => {
                format!("Drop 1 message (message {msg}) from {queue}? y/n")
            }
            Confirmation::MoveOne { from, to, msg } => {
                format!("Move 1 message (message {msg}) from {from} back to {to}? y/n")
            }
            Confirmation::MoveBack { from, to, count } => {
                let s = if *count == 1 { "" } else { "s" };
                format!("Move the ready messages of {from} that died in {to} back to {to} ({count} ready message{s} in {from})? y/n")
            }
        }
    }

    /// The confirm dialog's title.
    pub fn title(&self) -> &'static str {
        match self {
            Confirmation::Purge { .. } => "Purge queue",
            Confirmation::Kick { .. } => "Kick client",
            Confirmation::KickSlow { .. } => "Kick slow clients",
            Confirmation::MoveBack { .. } => "Move dead letters back",
            Confirmation::MoveOne { .. } => "Move a dead letter back",
            Confirmation::Drop { .. } => "Drop a message",
            Confirmation::Move { .. } => "Move messages",
            Confirmation::PurgeListed { .. } => "Purge listed queues",
            Confirmation::RequeueListed { .. } => "Requeue listed jobs",
            Confirmation::KickListed { .. } => "Kick listed clients",
            Confirmation::RequeueConsumer { .. } => "Requeue a consumer's jobs",
        }
    }
}

/// What stopping the broker now would drop, asked about before `q` or Ctrl-C
/// stops it. It sits over whatever is open (a half-typed publish form, a
/// tail), so `n` goes back to exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBroker {
    /// Connections open: each is cut off.
    pub clients: u64,
    /// Ready and unacked messages of queues that are not durable: only memory
    /// holds them. Durable queues and retained topics come back from disk.
    pub messages: u64,
}

impl StopBroker {
    /// What stopping the broker of `snapshot` would drop.
    pub fn of(snapshot: &Snapshot) -> Self {
        StopBroker {
            // The server figure, not the list's length: lists may be cut to fit
            // the frame, `server` never is.
            clients: snapshot.server.connections,
            messages: snapshot
                .queues
                .iter()
                .filter(|q| !q.durable)
                .map(|q| q.ready.saturating_add(q.unacked))
                .fold(0, u64::saturating_add),
        }
    }

    /// Whether stopping drops nothing, so there is nothing to ask.
    pub fn loses_nothing(&self) -> bool {
        self.clients == 0 && self.messages == 0
    }

    /// The question: only what is there to lose is named.
    pub fn question(&self) -> String {
        let plural = |n: u64, one: &str, many: &str| {
            let word = if n == 1 { one } else { many };
            format!("{} {word}", format::grouped(n))
        };
        let mut lost = Vec::new();
        if self.clients > 0 {
            lost.push(plural(
                self.clients,
                "client connected",
                "clients connected",
            ));
        }
        if self.messages > 0 {
            lost.push(plural(
                self.messages,
                "message in memory queues",
                "messages in memory queues",
            ));
        }
        format!("Stop the broker? {} will be lost. y/n", lost.join(", "))
    }

    /// The dialog's title.
    pub fn title(&self) -> &'static str {
        "Stop the broker"
    }
}

/// `job` or `jobs`, as `n` asks.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// A client as questions name it: `c3 (worker-2)`, with the name it gave in
/// `hello`, or `c3` alone.
pub(crate) fn named(client: &ClientStats) -> String {
    match &client.name {
        Some(name) => format!("{} ({name})", client.id),
        None => client.id.clone(),
    }
}

/// `a, b, c and 4 more`.
fn list(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// One page of a queue's ready messages, as peeked: the broker pages through
/// the whole queue with its cursor (`after`/`next`), and selects with the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Peek {
    /// The queue.
    pub queue: String,
    /// Which page of at most [`PEEK_COUNT`] messages this is, the first being 0.
    pub page: usize,
    /// The cursor this page starts after (`None`: the queue's head).
    pub after: Option<u64>,
    /// The cursors the pages before this one started after, to go back.
    pub back: Vec<Option<u64>>,
    /// Where the next page starts, when more may follow.
    pub next: Option<u64>,
    /// What the page shows: a filter or a text search, or everything.
    pub query: MessageQuery,
    /// The page's messages, next to be delivered first.
    pub messages: Vec<PeekedMessage>,
    /// The message selected (↑↓), by its place on the page.
    pub selected: Option<usize>,
    /// Ready messages in the queue when the page came back, if the snapshot
    /// lists it (lists may be cut to fit the frame).
    pub ready: Option<u64>,
    /// The broker cut its answer to fit its outbound buffer: the page may end early.
    pub truncated: bool,
    /// First line shown.
    pub scroll: usize,
}

impl Peek {
    /// The position in the queue of the page's first message, counting from 1
    /// (in what the query selects).
    pub fn first(&self) -> usize {
        self.page * PEEK_COUNT + 1
    }

    /// The selected message, if any.
    pub fn selection(&self) -> Option<&PeekedMessage> {
        self.messages.get(self.selected?)
    }
}

/// What text typed after `/` in a peek or a tail asks the broker for: a
/// filter if it parses as one (`data.total > 100`, `trace = 'abc'`), else a
/// substring of the messages' JSON.
pub fn query_of(text: &str) -> MessageQuery {
    let text = text.trim();
    if text.is_empty() {
        MessageQuery::default()
    } else if switchyard_broker::filter::Filter::parse(text).is_ok() {
        MessageQuery {
            filter: Some(text.to_string()),
            search: None,
        }
    } else {
        MessageQuery {
            filter: None,
            search: Some(text.to_string()),
        }
    }
}

/// How a query reads in a title or a prompt: `filter data.n > 1`, `search "abc"`.
pub fn describe_query(query: &MessageQuery) -> Option<String> {
    match (&query.filter, &query.search) {
        (Some(f), _) => Some(format!("filter {f}")),
        (None, Some(s)) => Some(format!("search \"{s}\"")),
        (None, None) => None,
    }
}

/// A live tail of a topic, with who each message reached.
#[derive(Debug, Clone)]
pub struct LiveTail {
    /// The topic tailed (the Topics view tails one topic by name).
    pub pattern: String,
    /// What the broker passes to the tail: a filter or a text search, or everything.
    pub query: MessageQuery,
    /// The newest [`TAIL_KEEP`] messages, oldest first.
    pub messages: VecDeque<TailEntry>,
    /// Messages received since the tail opened, dropped ones included.
    pub received: u64,
    /// How many messages back from the newest the view is scrolled; 0 follows.
    pub back: usize,
    /// The topic's subscriptions in the latest snapshot, filters compiled.
    pub subscribers: Subscribers,
}

/// A tailed message and what was worked out about it once, when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEntry {
    /// The message.
    pub message: TailMessage,
    /// Its `data` as JSON text: what the filters read and the popup shows.
    pub data_json: String,
    /// Which subscriptions' filters passed it.
    pub delivery: Delivery,
}

impl LiveTail {
    pub(super) fn new(topic: String, snapshot: &Snapshot) -> Self {
        LiveTail {
            subscribers: Subscribers::new(&topic, snapshot),
            pattern: topic,
            query: MessageQuery::default(),
            messages: VecDeque::new(),
            received: 0,
            back: 0,
        }
    }

    /// Take in new messages, judging each against the subscribers' filters now,
    /// so drawing only reads the result.
    pub(super) fn push(&mut self, messages: Vec<TailMessage>) {
        let n = messages.len();
        self.received += n as u64;
        for message in messages {
            let data_json = serde_json::to_string(&message.data).unwrap_or_else(|e| e.to_string());
            let delivery = self.subscribers.deliver(&message, &data_json);
            self.messages.push_back(TailEntry {
                message,
                data_json,
                delivery,
            });
        }
        while self.messages.len() > TAIL_KEEP {
            self.messages.pop_front();
        }
        // Scrolled back, the view stays on what it showed instead of following.
        if self.back > 0 {
            self.back = (self.back + n).min(self.messages.len().saturating_sub(1));
        }
    }
}

/// The tail an overlay holds, if any: the tail popup's, or the one a publish form
/// opened from it keeps running underneath.
pub(super) fn tail_of(overlay: &mut Option<Overlay>) -> Option<&mut LiveTail> {
    match overlay {
        Some(Overlay::Tail(tail)) => Some(tail),
        Some(Overlay::Publish {
            tail: Some(tail), ..
        }) => Some(tail),
        _ => None,
    }
}

/// A popup or dialog over the current view.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// The key table.
    Help {
        /// First line shown: at 80x24 the keys take more lines than fit.
        scroll: usize,
    },
    /// A question before a destructive action.
    Confirm(Confirmation),
    /// The publish form.
    Publish {
        /// The form.
        form: PublishForm,
        /// The tail it was opened from: it keeps taking messages underneath, and
        /// comes back when the form closes, to show who the test message reached.
        tail: Option<Box<LiveTail>>,
        /// The command it sent and waits for, if one is on its way: it closes on
        /// success, shows the error on failure, and sends nothing more meanwhile.
        sending: Option<CommandId>,
    },
    /// Peeked queue messages.
    Peek(Peek),
    /// A live topic tail.
    Tail(LiveTail),
    /// One client's details and subscriptions.
    Client {
        /// Client id.
        client: String,
        /// First subscription row shown.
        scroll: usize,
    },
}
