//! Routing a connection's requests: each parsed op goes to the broker call that does
//! it, and its answer (`ok`, an error, or nothing until later) back to the client.

use std::sync::Arc;
use std::time::Duration;

use super::access::Gate;
use super::watching::{self, Stream};
use crate::broker::{Broker, Peer, Publisher, ToDispatch};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::{
    event, parse_frames, parse_request, ClientFrame, Confirm, FrameError, Headers, Request,
    RequestId,
};
use crate::queue::{Outgoing, Settle, Waiter};
use crate::session::Session;
use crate::store::Ticket;
use crate::topic::Done;

/// What a connection keeps from one frame to the next.
#[derive(Default)]
pub(super) struct ConnState {
    /// The open `watch` and `tail`, if any: each ends when replaced or dropped.
    watch: Option<Stream>,
    tail: Option<Stream>,
    publisher: Publisher,
    /// Queues this frame's sends and acks touched, to dispatch once.
    to_dispatch: ToDispatch,
    /// Who the connection is and what it may do.
    pub(super) gate: Gate,
    /// The message the last `send` put in its queue: what an HTTP API request,
    /// a connection of one frame, names when its confirm does not come in time.
    pub(super) last_sent: Option<Arc<str>>,
}

pub(super) fn handle_text(broker: &Broker, peer: &Arc<Peer>, text: &str, conn: &mut ConnState) {
    // Parsed first, then run back to back: a frame of acks or sends then takes its
    // queue's lock in a tight run, instead of between parses, where a connection on
    // the other core keeps catching it held (a queue ran at 360k msgs/s handled
    // line by line, 470k this way). And consecutive pubs to one topic are seen
    // together, to be published with one lock and one push per subscriber.
    // A frame of one line (what most clients send) is parsed and run as it is,
    // with no list of its requests.
    if memchr::memchr(b'\n', text.as_bytes()).is_none() {
        if let Ok(request) = parse_request(text) {
            run_requests(broker, peer, conn, std::iter::once(Ok(request)));
            return;
        }
    }
    let mut requests = Vec::new();
    parse_frames(text, |parsed| requests.push(parsed));
    run_requests(broker, peer, conn, requests.into_iter());
}

/// Runs a frame's requests in order (see [`handle_text`]), then ends the frame.
fn run_requests<'a>(
    broker: &Broker,
    peer: &Arc<Peer>,
    conn: &mut ConnState,
    requests: impl Iterator<Item = Result<Request<'a>, FrameError>>,
) {
    let session = &peer.session;
    crate::outbound::holding_wakes(|| {
        let mut requests = requests.peekable();
        while let Some(parsed) = requests.next() {
            // Closing (too many bad tokens): what follows is not run.
            if conn.gate.closing().is_some() {
                break;
            }
            match parsed {
                // Pubs without an id (nothing to confirm) to one topic, one after
                // another: published as one run.
                Ok(Request {
                    id: None,
                    frame:
                        ClientFrame::Pub {
                            topic,
                            data,
                            headers,
                        },
                }) => {
                    // The frame's next pubs to the same topic, if any (a list
                    // only then: one pub allocates none).
                    let mut more = Vec::new();
                    while let Some(Ok(Request {
                        id: None,
                        frame: ClientFrame::Pub { topic: next, .. },
                    })) = requests.peek()
                    {
                        if *next != topic {
                            break;
                        }
                        if let Some(Ok(Request {
                            frame: ClientFrame::Pub { data, headers, .. },
                            ..
                        })) = requests.next()
                        {
                            more.push((data, headers));
                        }
                    }
                    if let Err(e) = conn.gate.check_publish(broker, peer, &topic) {
                        (0..=more.len()).for_each(|_| session.send_error(None, &e));
                        continue;
                    }
                    let failed = |e| session.send_error(None, &e);
                    let first = (data.as_ref(), headers.as_ref());
                    if more.is_empty() {
                        broker.publish_many(&mut conn.publisher, &topic, &[first], failed);
                    } else {
                        let msgs: Vec<(&str, Option<&Headers>)> = std::iter::once(first)
                            .chain(more.iter().map(|(d, h)| (d.as_ref(), h.as_ref())))
                            .collect();
                        broker.publish_many(&mut conn.publisher, &topic, &msgs, failed);
                    }
                }
                Ok(request) => {
                    if let Err(e) = conn.gate.check(broker, peer, &request.frame) {
                        session.send_error(request.id.as_ref(), &e);
                        continue;
                    }
                    let queue_work = matches!(
                        request.frame,
                        ClientFrame::Send { .. }
                            | ClientFrame::Ack { .. }
                            | ClientFrame::Nack { .. }
                            | ClientFrame::Reply { .. }
                    );
                    // Anything else sees the queues as if each send and ack had
                    // been dispatched at once.
                    if !queue_work && !conn.to_dispatch.is_empty() {
                        broker.dispatch(&mut conn.to_dispatch);
                    }
                    handle_request(broker, peer, request, conn)
                }
                Err(e) => session.send_error(e.id.as_ref(), &e.error),
            }
        }
        broker.dispatch(&mut conn.to_dispatch);
    });
    broker.end_frame(&mut conn.publisher, Some(session));
}

/// Answers a request: `ok` (with fields) if it had an id, an error either way.
fn answer(
    session: &Session,
    id: Option<&RequestId>,
    result: Result<Vec<(&str, String)>, BrokerError>,
) {
    match (result, id) {
        (Ok(fields), Some(id)) => {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            session.send_text(event::ok(id, &fields));
        }
        (Ok(_), None) => {}
        (Err(e), id) => session.send_error(id, &e),
    }
}

fn handle_request(broker: &Broker, peer: &Arc<Peer>, request: Request<'_>, conn: &mut ConnState) {
    let session = &peer.session;
    let Request { id, frame } = request;
    let id = id.as_ref();
    let none = || Ok(Vec::new());
    let result: Result<Vec<(&str, String)>, BrokerError> = match frame {
        ClientFrame::Hello { name, token } => {
            if let Some(name) = name {
                let name: String = name.chars().take(128).collect();
                // Stored cleaned: the snapshot, the dashboard and the log show one name.
                let name = crate::activity::clean(&name).into_owned();
                *session.hello_name.lock() = Some(name);
            }
            let user = match token {
                Some(token) => conn.gate.present(broker, peer, &token),
                None => conn.gate.user(),
            };
            user.map(|user| {
                let user = user.map_or_else(|| "null".to_string(), |u| json_string(&u));
                vec![("user", user)]
            })
        }
        ClientFrame::Ping => {
            session.send_text(event::pong(id));
            return;
        }
        ClientFrame::Pub {
            topic,
            data,
            headers,
        } => {
            // Answered when delivered (a retained topic: once on disk).
            let done = id.map(|id| -> Done {
                let (session, id) = (session.clone(), id.clone());
                Box::new(move |r: Result<u64, BrokerError>| {
                    answer(
                        &session,
                        Some(&id),
                        r.map(|seq| vec![("seq", seq.to_string())]),
                    )
                })
            });
            match broker.publish(&mut conn.publisher, &topic, &data, headers.as_ref(), done) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::Sub {
            topic,
            sid,
            filter,
            from,
        } => {
            let subscribed = conn
                .gate
                .subscribe(broker, peer, &topic)
                .and_then(|hidden| {
                    broker.subscribe(peer, sid, topic, filter, from, hidden, || {
                        answer(session, id, none())
                    })
                });
            match subscribed {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::Unsub { sid } => broker.unsubscribe(peer, &sid).and_then(|_| none()),
        ClientFrame::DeclareTopic { topic, retain } => broker
            .declare_topic(&topic, retain.as_ref(), Some(conn.gate.creator()))
            .and_then(|_| none()),
        ClientFrame::Seal { topic } => {
            let (s, rid) = (session.clone(), id.cloned());
            let done: Done = Box::new(move |r: Result<u64, BrokerError>| {
                answer(&s, rid.as_ref(), r.map(|_| Vec::new()))
            });
            match broker.seal(&topic, done) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::DeleteTopic { topic } => broker
            .delete_topic(&topic, &peer.describe())
            .and_then(|_| none()),
        ClientFrame::DeclareQueue { queue, options } => {
            let creator = Some(conn.gate.creator());
            broker
                .declare_queue(&queue, &options, creator)
                .and_then(|_| none())
        }
        ClientFrame::DeleteQueue { queue } => broker
            .delete_queue(&queue, &peer.describe())
            .and_then(|_| none()),
        ClientFrame::Send {
            queue,
            data,
            headers,
            ttl_ms,
            confirm,
        } if broker.clustered() => {
            // Into JetStream: `ok` once the stream stored it (or, with
            // `confirm: "done"`, once a consumer on any node acked it).
            let waiter = match (confirm, id) {
                (Confirm::Done, Some(id)) => Some(Waiter::new(session, id.clone(), false)),
                _ => None,
            };
            let message = Outgoing {
                ttl_ms,
                waiter: waiter.clone(),
                ..Outgoing::new(data, headers)
            };
            let (s, rid) = (session.clone(), id.cloned());
            let done = move |r: Result<Arc<str>, BrokerError>| match (r, waiter) {
                (Ok(_), Some(_)) => {}
                (Ok(msg), None) => answer(&s, rid.as_ref(), Ok(vec![("msg", json_string(&msg))])),
                (Err(e), Some(w)) => w.fail(&e),
                (Err(e), None) => answer(&s, rid.as_ref(), Err(e)),
            };
            let creator = Some(conn.gate.creator());
            match broker.send_remote(Some(session), creator, &queue, message, done) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::Send {
            queue,
            data,
            headers,
            ttl_ms,
            confirm,
        } => match (confirm, id) {
            (Confirm::Done, Some(id)) => {
                let message = Outgoing {
                    ttl_ms,
                    waiter: Some(Waiter::new(session, id.clone(), false)),
                    ..Outgoing::new(data, headers)
                };
                match broker.send_later(
                    Some(session),
                    Some(conn.gate.creator()),
                    &queue,
                    message,
                    |_, _| {},
                    &mut conn.to_dispatch,
                ) {
                    Ok(msg) => {
                        conn.last_sent = Some(msg);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            _ => {
                let stored = |msg: &str, ticket: Option<Ticket>| {
                    let fields = vec![("msg", json_string(msg))];
                    match ticket {
                        None => answer(session, id, Ok(fields)),
                        // A durable queue: confirm once the message is on disk.
                        // Answered where the ticket resolves (the log's fsync
                        // thread, a batch's confirms in a row with writer wake-ups
                        // held): no task spawned and woken per send.
                        Some(ticket) if id.is_some() => {
                            let (session, id) = (session.clone(), id.cloned());
                            ticket.then(move |result| {
                                let result = result.map(|()| fields).map_err(BrokerError::from);
                                answer(&session, id.as_ref(), result);
                            });
                        }
                        Some(_) => {}
                    }
                };
                let to_dispatch = &mut conn.to_dispatch;
                let message = Outgoing {
                    ttl_ms,
                    ..Outgoing::new(data, headers)
                };
                match broker.send_later(
                    Some(session),
                    Some(conn.gate.creator()),
                    &queue,
                    message,
                    stored,
                    to_dispatch,
                ) {
                    Ok(msg) => {
                        conn.last_sent = Some(msg);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
        },
        ClientFrame::Consume {
            queue,
            cid,
            prefetch,
        } => {
            let creator = conn.gate.creator();
            match broker.consume(peer, creator, &queue, &cid, prefetch, || {
                answer(session, id, none())
            }) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        ClientFrame::Webhook { queue, spec } => broker
            .start_webhook(&queue, &spec, conn.gate.creator(), &peer.describe())
            .map(|client| vec![("client", json_string(&client))]),
        ClientFrame::Cancel { cid } => broker.cancel(peer, &cid).and_then(|_| none()),
        ClientFrame::Ack { tag } => {
            return settle(broker, peer, id, tag, Settle::Ack, &mut conn.to_dispatch)
        }
        ClientFrame::Nack { tag, requeue } => {
            let how = Settle::Nack { requeue };
            return settle(broker, peer, id, tag, how, &mut conn.to_dispatch);
        }
        ClientFrame::Reply { tag, data } => {
            let how = Settle::Reply(data);
            return settle(broker, peer, id, tag, how, &mut conn.to_dispatch);
        }
        ClientFrame::Request {
            queue,
            data,
            headers,
            timeout_ms,
        } => match id {
            Some(rid) => {
                let timeout = Duration::from_millis(timeout_ms);
                let creator = conn.gate.creator();
                match broker.request(
                    session,
                    creator,
                    &queue,
                    data,
                    headers,
                    rid.clone(),
                    timeout,
                ) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            None => Err(BrokerError::new(
                ErrorCode::BadFrame,
                "`request` needs an `id` to route the reply to",
            )),
        },
        ClientFrame::Stats => {
            session.send_text(event::stats(id, &broker.bounded_snapshot()));
            return;
        }
        ClientFrame::Watch(options) => {
            // The old one stops first: two never interleave their frames.
            conn.watch = None;
            conn.watch = Some(watching::watch(
                broker,
                session.clone(),
                id.cloned(),
                options,
            ));
            return;
        }
        ClientFrame::Unwatch => {
            conn.watch = None;
            none()
        }
        ClientFrame::Tail { pattern, query } => {
            match broker.tail(&pattern, &query, watching::TAIL_CAPACITY) {
                Ok(tail) => {
                    // The old tail stops, then the `ok`, then the new tail's first
                    // message: a reader tells the two tails apart by the `ok`.
                    conn.tail = None;
                    answer(session, id, none());
                    conn.tail = Some(watching::tail(broker, session.clone(), tail));
                    return;
                }
                // A bad pattern leaves the open tail as it was.
                Err(e) => Err(e),
            }
        }
        ClientFrame::Untail => {
            conn.tail = None;
            none()
        }
        ClientFrame::Command(command) => {
            // About another node's client (`c42@web2`): that node answers, and
            // this connection goes on meanwhile.
            if let Some(routed) = broker.routed(&command, &peer.describe()) {
                let (session, id) = (session.clone(), id.cloned());
                broker.runtime().spawn(async move {
                    let result = routed.await.map(|outcome| event::outcome_fields(&outcome));
                    answer(&session, id.as_ref(), result);
                });
                return;
            }
            broker
                .execute(command, &peer.describe())
                .map(|outcome| event::outcome_fields(&outcome))
        }
    };
    answer(session, id, result);
}

/// Settles a job, answering before the room it frees is filled (for a durable
/// queue, once the settlement is on disk).
fn settle(
    broker: &Broker,
    peer: &Arc<Peer>,
    id: Option<&RequestId>,
    tag: u64,
    how: Settle,
    to_dispatch: &mut ToDispatch,
) {
    let settled = |durable: Option<Ticket>| match (durable, id) {
        // A durable queue: `ok` once the ack is on disk, so an acked job never
        // comes back after a crash. It rides the group commit: no fsync of its own.
        (Some(ticket), Some(id)) => {
            let (session, id, b) = (peer.session.clone(), id.clone(), broker.clone());
            broker.runtime().spawn(async move {
                let result = ticket.await.map(|()| Vec::new());
                answer(&session, Some(&id), result.map_err(|e| b.settle_error(e)));
            });
        }
        (_, id) => answer(&peer.session, id, Ok(Vec::new())),
    };
    if let Err(e) = broker.settle(peer, tag, how, settled, to_dispatch) {
        answer(&peer.session, id, Err(e));
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::protocol::push_json_str(&mut out, s);
    out
}
