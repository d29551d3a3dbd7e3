//! What a connection may do: open (auth off), waiting for a token, or a user's
//! compiled rules; the check every op passes before it runs, and when a
//! connection that never presents a good token is closed.
//!
//! With auth off the check is one branch. A run of pubs to the topic a
//! connection last published to is checked once, as the publish path caches
//! that topic: a publisher that keeps to one topic pays one string compare.

use std::sync::Arc;

use tokio::time::Instant;

use crate::auth::{Patterns, Permissions, SubscribeRule, Verb};
use crate::broker::{Broker, Creator, Peer, RefusalLog};
use crate::command::{Command, PeekTarget};
use crate::error::{BrokerError, ErrorCode};
use crate::protocol::ClientFrame;

/// Bad tokens after which a connection is closed.
const MAX_BAD_TOKENS: u8 = 3;

#[derive(Default)]
enum Access {
    /// Auth is off: everything is allowed.
    #[default]
    Open,
    /// Auth is on and no token was accepted yet.
    Waiting,
    /// A user's token was accepted.
    User(Arc<Permissions>),
}

/// One connection's standing.
#[derive(Default)]
pub(super) struct Gate {
    access: Access,
    /// While waiting for a token: when the connection is closed without one.
    deadline: Option<Instant>,
    bad_tokens: u8,
    /// Set when the connection must be closed with 1008, and why.
    closing: Option<String>,
    /// The topic last allowed to `pub`, so a run to one topic is checked once.
    last_publish: Option<Box<str>>,
    log: RefusalLog,
    /// Whom the queues and retained topics it creates count against: its user
    /// once a token is accepted; with auth off, the clients' shared count.
    creator: Creator,
}

impl Gate {
    pub(super) fn new(broker: &Broker) -> Gate {
        if !broker.auth_on() {
            return Gate::default();
        }
        Gate {
            access: Access::Waiting,
            deadline: Some(Instant::now() + broker.config().auth_timeout),
            ..Gate::default()
        }
    }

    /// When a connection still without a token is to be closed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline passed with no valid token.
    pub(super) fn expire(&mut self) {
        self.deadline = None;
        self.closing = Some("no valid token in time".into());
    }

    /// Why the connection must now be closed (1008), if it must.
    pub(super) fn closing(&self) -> Option<&str> {
        self.closing.as_deref()
    }

    /// Takes a token the client presented: the user's name if accepted (`None`
    /// with auth off, where every token is ignored).
    pub(super) fn present(
        &mut self,
        broker: &Broker,
        peer: &Peer,
        token: &str,
    ) -> Result<Option<Arc<str>>, BrokerError> {
        if matches!(self.access, Access::Open) {
            return Ok(None);
        }
        match broker.authenticate(peer, token, &mut self.log) {
            Ok(permissions) => {
                let user = permissions.user().clone();
                self.creator = Creator::user(user.clone(), permissions.max_streams());
                self.access = Access::User(permissions);
                self.deadline = None;
                self.last_publish = None;
                Ok(Some(user))
            }
            Err(e) => {
                self.bad_tokens = self.bad_tokens.saturating_add(1);
                if self.bad_tokens >= MAX_BAD_TOKENS {
                    self.closing = Some(format!("{MAX_BAD_TOKENS} bad tokens"));
                }
                Err(e)
            }
        }
    }

    /// Whom the queues and retained topics this connection creates count against.
    pub(super) fn creator(&self) -> &Creator {
        &self.creator
    }

    /// A `hello` without a token: fine once a user's token was accepted.
    pub(super) fn user(&self) -> Result<Option<Arc<str>>, BrokerError> {
        match &self.access {
            Access::Open => Ok(None),
            Access::Waiting => Err(unauthorized()),
            Access::User(p) => Ok(Some(p.user().clone())),
        }
    }

    /// May this connection `pub` to `topic`?
    #[inline]
    pub(super) fn check_publish(
        &mut self,
        broker: &Broker,
        peer: &Peer,
        topic: &str,
    ) -> Result<(), BrokerError> {
        if let Access::Open = self.access {
            return Ok(());
        }
        if self.last_publish.as_deref() == Some(topic) {
            return Ok(());
        }
        let allowed = self.allows(Verb::Publish, topic, "pub to");
        match allowed {
            Ok(()) => self.last_publish = Some(topic.into()),
            Err(ref e) => broker.record_refusal(peer, &mut self.log, &e.to_string()),
        }
        allowed
    }

    /// May this connection run `frame`? (`hello` always may; a `pub` is checked
    /// by [`Gate::check_publish`], a `sub` pattern by [`Gate::subscribe`].)
    pub(super) fn check(
        &mut self,
        broker: &Broker,
        peer: &Peer,
        frame: &ClientFrame<'_>,
    ) -> Result<(), BrokerError> {
        let checked = match (&self.access, frame) {
            (Access::Open, _) | (_, ClientFrame::Hello { .. }) => return Ok(()),
            (_, ClientFrame::Pub { topic, .. }) => return self.check_publish(broker, peer, topic),
            (Access::Waiting, _) => Err(unauthorized()),
            (Access::User(_), frame) => self.allows_frame(frame),
        };
        if let Err(e) = &checked {
            broker.record_refusal(peer, &mut self.log, &e.to_string());
        }
        checked
    }

    fn allows_frame(&self, frame: &ClientFrame<'_>) -> Result<(), BrokerError> {
        use ClientFrame as F;
        match frame {
            // Only this connection's own subscriptions, consumers and jobs.
            F::Hello { .. }
            | F::Ping
            | F::Pub { .. }
            | F::Sub { .. }
            | F::Unsub { .. }
            | F::Cancel { .. }
            | F::Ack { .. }
            | F::Nack { .. }
            | F::Reply { .. } => Ok(()),
            F::DeclareTopic { topic, .. } => self.allows(Verb::Manage, topic, "declare"),
            F::DeclareQueue { queue, .. } => self.allows(Verb::Manage, queue, "declare"),
            F::Seal { topic } => self.allows(Verb::Manage, topic, "seal"),
            F::DeleteTopic { topic } => self.allows(Verb::Manage, topic, "delete"),
            F::DeleteQueue { queue } => self.allows(Verb::Manage, queue, "delete"),
            F::Send { queue, .. } => self.allows(Verb::Send, queue, "send to"),
            F::Request { queue, .. } => self.allows(Verb::Send, queue, "request to"),
            F::Consume { queue, .. } => self.allows(Verb::Consume, queue, "consume from"),
            // The broker itself posts to the URL given: only operators may point
            // it somewhere (else any consumer could make it call internal hosts).
            F::Webhook { .. } => self.admin("consume with a webhook"),
            F::Stats => self.admin("stats"),
            F::Watch { .. } => self.admin("watch"),
            F::Unwatch => self.admin("unwatch"),
            F::Tail { .. } => self.admin("tail"),
            F::Untail => self.admin("untail"),
            F::Command(Command::Purge { queue }) => self.allows(Verb::Manage, queue, "purge"),
            F::Command(Command::Publish { topic, .. }) => {
                self.allows(Verb::Publish, topic, "pub to")
            }
            F::Command(Command::Send { queue, .. }) => self.allows(Verb::Send, queue, "send to"),
            F::Command(Command::Peek {
                target: PeekTarget::Queue(_) | PeekTarget::Topic(_),
                ..
            }) => self.admin("peek"),
            F::Command(Command::Describe { .. }) => self.admin("describe"),
            F::Command(Command::Kick { .. }) => self.admin("kick"),
            F::Command(Command::Requeue { .. }) => self.admin("requeue"),
            F::Command(Command::Move { .. }) => self.admin("move"),
            F::Command(Command::RequeueConsumer { .. }) => self.admin("requeue"),
            F::Command(Command::Drop { .. }) => self.admin("drop"),
        }
    }

    /// Whether a `sub` to `pattern` may go ahead, and the topics its deliveries
    /// must skip.
    pub(super) fn subscribe(
        &mut self,
        broker: &Broker,
        peer: &Peer,
        pattern: &str,
    ) -> Result<Option<Arc<Patterns>>, BrokerError> {
        let Access::User(p) = &self.access else {
            return Ok(None);
        };
        // A pattern that is no pattern gets `bad_name` from the subscribe itself.
        if crate::names::check_pattern(pattern).is_err() {
            return Ok(None);
        }
        match p.subscribe(pattern) {
            SubscribeRule::Allowed => Ok(None),
            SubscribeRule::Except(hidden) => Ok(Some(hidden)),
            SubscribeRule::Forbidden => {
                let e = forbidden("sub to", pattern);
                broker.record_refusal(peer, &mut self.log, &e.to_string());
                Err(e)
            }
        }
    }

    fn allows(&self, verb: Verb, name: &str, op: &str) -> Result<(), BrokerError> {
        match &self.access {
            Access::Open => Ok(()),
            Access::Waiting => Err(unauthorized()),
            Access::User(p) if p.allows(verb, name) => Ok(()),
            Access::User(_) => Err(forbidden(op, name)),
        }
    }

    fn admin(&self, op: &str) -> Result<(), BrokerError> {
        match &self.access {
            Access::Open => Ok(()),
            Access::Waiting => Err(unauthorized()),
            Access::User(p) if p.is_admin() => Ok(()),
            Access::User(_) => Err(BrokerError::new(
                ErrorCode::Forbidden,
                format!("{op}: an operator frame"),
            )),
        }
    }
}

fn unauthorized() -> BrokerError {
    BrokerError::new(
        ErrorCode::Unauthorized,
        "present a token first (hello, Authorization: Bearer, or ?token=)",
    )
}

/// `forbidden: pub to orders.internal.x`: the op and the name, never the rules.
fn forbidden(op: &str, name: &str) -> BrokerError {
    let shown: String = name.chars().take(255).collect();
    BrokerError::new(ErrorCode::Forbidden, format!("{op} {shown}"))
}
