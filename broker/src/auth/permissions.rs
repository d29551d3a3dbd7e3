//! A user's [`Grants`] compiled once into matchers, so that checking an op costs a
//! hash lookup (exact names) or a walk of the few wildcard patterns, never a parse.
//!
//! Rules, as PROTOCOL.md's Security section says: what no allow list allows is
//! refused, deny wins over allow. A `sub` pattern is allowed when one allow entry
//! covers every topic it can match; it is refused when a deny entry covers it, and
//! accepted with the deny entries it overlaps kept as a [`Patterns`] of topics its
//! deliveries skip.

use std::collections::HashSet;
use std::sync::Arc;

use super::Grants;
use crate::error::BrokerError;
use crate::names;

/// The five verbs a user's lists are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `pub` to a topic.
    Publish,
    /// `sub` to a pattern.
    Subscribe,
    /// `send` or `request` to a queue.
    Send,
    /// `consume` a queue.
    Consume,
    /// `declare`, `purge`, `seal`, `delete` a name.
    Manage,
}

/// A set of names and patterns (`*`, `>`), matched against names.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    exact: HashSet<Box<str>>,
    wild: Vec<Vec<Box<str>>>,
}

impl Patterns {
    /// Compiles entries, each checked as a pattern.
    pub fn compile(entries: &[String]) -> Result<Patterns, BrokerError> {
        let mut out = Patterns::default();
        for entry in entries {
            names::check_pattern(entry)?;
            if names::is_wildcard(entry) {
                out.wild.push(entry.split('.').map(Box::from).collect());
            } else {
                out.exact.insert(entry.as_str().into());
            }
        }
        Ok(out)
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wild.is_empty()
    }

    /// Whether some entry matches the (exact) name.
    pub fn matches(&self, name: &str) -> bool {
        self.exact.contains(name)
            || self
                .wild
                .iter()
                .any(|p| tokens_match(p, &mut name.split('.')))
    }

    /// Whether every name `pattern` matches is matched by some entry (not
    /// necessarily the same one).
    fn covers(&self, pattern: &str) -> bool {
        let sub: Vec<&str> = pattern.split('.').collect();
        let exact: Vec<Vec<&str>> = self.exact.iter().map(|e| e.split('.').collect()).collect();
        let rules: Vec<&[&str]> = exact.iter().map(Vec::as_slice).collect();
        let wild: Vec<Vec<&str>> = self
            .wild
            .iter()
            .map(|p| p.iter().map(|t| &**t).collect())
            .collect();
        let rules: Vec<&[&str]> = rules
            .into_iter()
            .chain(wild.iter().map(Vec::as_slice))
            .collect();
        covered(&rules, &sub)
    }

    /// The entries that match some name `pattern` matches.
    fn overlapping(&self, pattern: &str) -> Patterns {
        let tokens: Vec<&str> = pattern.split('.').collect();
        let mut out = Patterns::default();
        for e in &self.exact {
            if names::pattern_matches(pattern, e) {
                out.exact.insert(e.clone());
            }
        }
        for p in &self.wild {
            if overlaps(p, &tokens) {
                out.wild.push(p.clone());
            }
        }
        out
    }
}

fn tokens_match<'a>(pattern: &[Box<str>], name: &mut impl Iterator<Item = &'a str>) -> bool {
    for p in pattern {
        match &**p {
            ">" => return name.next().is_some(),
            "*" => {
                if name.next().is_none() {
                    return false;
                }
            }
            exact => {
                if name.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    name.next().is_none()
}

/// Whether every name matching `sub` matches one of `rules`. A `*` in `sub` is
/// covered when it is for a token no rule names (only the rules' `*` apply to
/// it, and any literal token has those and more); a `>` is a `*` followed by
/// nothing or by another `>`, and each step strips a token off every rule, so
/// it ends.
fn covered(rules: &[&[&str]], sub: &[&str]) -> bool {
    let Some((&s, rest)) = sub.split_first() else {
        return rules.iter().any(|r| r.is_empty());
    };
    if rules.iter().any(|r| r.first() == Some(&">")) {
        return true;
    }
    let strip = |keep: &dyn Fn(&str) -> bool| -> Vec<&[&str]> {
        rules
            .iter()
            .filter_map(|r| r.split_first())
            .filter(|(head, _)| keep(head))
            .map(|(_, tail)| tail)
            .collect()
    };
    match s {
        ">" => {
            let stars = strip(&|h| h == "*");
            !stars.is_empty() && covered(&stars, &[]) && covered(&stars, &[">"])
        }
        "*" => covered(&strip(&|h| h == "*"), rest),
        literal => covered(&strip(&|h| h == "*" || h == literal), rest),
    }
}

/// Whether some name matches both `rule` and `sub`.
fn overlaps(rule: &[Box<str>], sub: &[&str]) -> bool {
    match (rule.split_first(), sub.split_first()) {
        (Some((r, _)), Some(_)) if &**r == ">" => true,
        (Some(_), Some((s, _))) if *s == ">" => true,
        (Some((r, rest)), Some((s, srest))) => {
            (&**r == "*" || *s == "*" || &**r == *s) && overlaps(rest, srest)
        }
        (None, None) => true,
        _ => false,
    }
}

/// One verb's allow and deny lists.
#[derive(Debug, Clone, Default)]
struct Rule {
    allow: Patterns,
    deny: Patterns,
}

impl Rule {
    fn compile(allow: &[String], deny: &[String]) -> Result<Rule, BrokerError> {
        Ok(Rule {
            allow: Patterns::compile(allow)?,
            deny: Patterns::compile(deny)?,
        })
    }

    fn allows(&self, name: &str) -> bool {
        self.allow.matches(name) && !self.deny.matches(name)
    }
}

/// What a `sub` pattern may do.
#[derive(Debug, Clone)]
pub enum SubscribeRule {
    /// Refused: no allow entry covers it, or a deny entry does.
    Forbidden,
    /// Allowed, every topic it matches.
    Allowed,
    /// Allowed, but messages on topics these patterns match are not delivered.
    Except(Arc<Patterns>),
}

/// A user's compiled rules: who it is and what it may do.
#[derive(Debug, Clone)]
pub struct Permissions {
    user: Arc<str>,
    admin: bool,
    max_streams: Option<usize>,
    publish: Rule,
    subscribe: Rule,
    send: Rule,
    consume: Rule,
    manage: Rule,
}

impl Permissions {
    /// Compiles a user's lists (each entry checked as a pattern).
    pub fn compile(user: &str, grants: &Grants) -> Result<Permissions, BrokerError> {
        Ok(Permissions {
            user: Arc::from(user),
            admin: grants.admin,
            max_streams: grants.max_streams,
            publish: Rule::compile(&grants.publish, &grants.deny_publish)?,
            subscribe: Rule::compile(&grants.subscribe, &grants.deny_subscribe)?,
            send: Rule::compile(&grants.send, &grants.deny_send)?,
            consume: Rule::compile(&grants.consume, &grants.deny_consume)?,
            manage: Rule::compile(&grants.manage, &grants.deny_manage)?,
        })
    }

    /// The user's name.
    pub fn user(&self) -> &Arc<str> {
        &self.user
    }

    /// The queues and retained topics it may hold, if its entry sets a number
    /// (else the broker's `max_streams_per_user` applies; 0: no cap).
    pub fn max_streams(&self) -> Option<usize> {
        self.max_streams
    }

    /// Whether it may use operator frames.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether it may do `verb` on the exact name `name`. `admin` may manage every
    /// name; a `sub` pattern is checked with [`Permissions::subscribe`] instead.
    pub fn allows(&self, verb: Verb, name: &str) -> bool {
        match verb {
            Verb::Publish => self.publish.allows(name),
            Verb::Subscribe => self.subscribe.allows(name),
            Verb::Send => self.send.allows(name),
            Verb::Consume => self.consume.allows(name),
            Verb::Manage => self.admin || self.manage.allows(name),
        }
    }

    /// What a `sub` to `pattern` (checked) may do.
    pub fn subscribe(&self, pattern: &str) -> SubscribeRule {
        let rule = &self.subscribe;
        if !rule.allow.covers(pattern) || rule.deny.covers(pattern) {
            return SubscribeRule::Forbidden;
        }
        let hidden = rule.deny.overlapping(pattern);
        if hidden.is_empty() {
            SubscribeRule::Allowed
        } else {
            SubscribeRule::Except(Arc::new(hidden))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grants(allow: &[&str], deny: &[&str]) -> Grants {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Grants {
            publish: v(allow),
            deny_publish: v(deny),
            subscribe: v(allow),
            deny_subscribe: v(deny),
            ..Grants::default()
        }
    }

    #[test]
    fn subscriptions_are_covered_refused_or_narrowed() {
        let p = Permissions::compile("u", &grants(&["orders.eu.>", "audit.*"], &[])).unwrap();
        assert!(matches!(p.subscribe("orders.>"), SubscribeRule::Forbidden));
        assert!(matches!(p.subscribe("orders.eu.x"), SubscribeRule::Allowed));
        assert!(matches!(
            p.subscribe("orders.eu.*.b"),
            SubscribeRule::Allowed
        ));
        assert!(matches!(p.subscribe("audit.*"), SubscribeRule::Allowed));
        assert!(matches!(p.subscribe("audit.>"), SubscribeRule::Forbidden));
        assert!(matches!(p.subscribe("audit.x.y"), SubscribeRule::Forbidden));
        let p = Permissions::compile("u", &grants(&["orders.>"], &["orders.internal.>"])).unwrap();
        assert!(matches!(
            p.subscribe("orders.internal.*"),
            SubscribeRule::Forbidden
        ));
        match p.subscribe("orders.*.x") {
            SubscribeRule::Except(hidden) => {
                assert!(hidden.matches("orders.internal.x"));
                assert!(!hidden.matches("orders.eu.x"));
            }
            other => panic!("expected a narrowed subscription, got {other:?}"),
        }
        assert!(matches!(p.subscribe("orders.eu.>"), SubscribeRule::Allowed));
    }

    #[test]
    fn admin_manages_every_name_and_nothing_else() {
        let p = Permissions::compile(
            "root",
            &Grants {
                admin: true,
                ..Grants::default()
            },
        )
        .unwrap();
        assert!(p.allows(Verb::Manage, "any.thing"));
        assert!(!p.allows(Verb::Publish, "any.thing"));
        assert!(p.is_admin());
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_string)
    }

    fn pattern() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(prop_oneof![token(), Just("*".to_string())], 1..4),
            any::<bool>(),
        )
            .prop_map(|(mut tokens, rest)| {
                if rest {
                    tokens.push(">".into());
                }
                tokens.join(".")
            })
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
    }

    /// Every topic of up to `len` tokens over the test alphabet and `d`, a token
    /// no pattern names (a `*` matches tokens no rule lists).
    fn universe(len: usize) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut last = vec![String::new()];
        for _ in 0..len {
            let mut next = Vec::new();
            for prefix in &last {
                for t in ["a", "b", "c", "d"] {
                    next.push(if prefix.is_empty() {
                        t.to_string()
                    } else {
                        format!("{prefix}.{t}")
                    });
                }
            }
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    proptest! {
        #[test]
        fn compiled_rules_decide_as_a_naive_scan(
            allow in proptest::collection::vec(pattern(), 0..4),
            deny in proptest::collection::vec(pattern(), 0..3),
            topics in proptest::collection::vec(topic(), 1..8),
        ) {
            let g = grants(
                &allow.iter().map(String::as_str).collect::<Vec<_>>(),
                &deny.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let p = Permissions::compile("u", &g).unwrap();
            for t in &topics {
                let naive = allow.iter().any(|a| names::pattern_matches(a, t))
                    && !deny.iter().any(|d| names::pattern_matches(d, t));
                prop_assert_eq!(p.allows(Verb::Publish, t), naive, "topic {}", t);
            }
        }

        /// A sub, then its deliveries, against the naive rule over every topic of
        /// up to six tokens (patterns here have at most four, and `>` matches one
        /// or more): a message reaches it exactly when the naive check allows it.
        #[test]
        fn subscriptions_deliver_as_a_naive_scan(
            allow in proptest::collection::vec(pattern(), 0..3),
            deny in proptest::collection::vec(pattern(), 0..3),
            sub in pattern(),
        ) {
            let g = grants(
                &allow.iter().map(String::as_str).collect::<Vec<_>>(),
                &deny.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let p = Permissions::compile("u", &g).unwrap();
            let matched: Vec<String> = universe(6)
                .into_iter()
                .filter(|t| names::pattern_matches(&sub, t))
                .collect();
            let allowed = |t: &str| allow.iter().any(|a| names::pattern_matches(a, t));
            let denied = |t: &str| deny.iter().any(|d| names::pattern_matches(d, t));
            let refuse = matched.iter().any(|t| !allowed(t)) || matched.iter().all(|t| denied(t));
            match p.subscribe(&sub) {
                SubscribeRule::Forbidden => prop_assert!(
                    refuse,
                    "{} refused though every topic it matches is allowed", sub
                ),
                _ if refuse => prop_assert!(false, "{} accepted", sub),
                SubscribeRule::Allowed => {
                    for t in &matched {
                        prop_assert!(allowed(t) && !denied(t), "{} leaks {}", sub, t);
                    }
                }
                SubscribeRule::Except(hidden) => {
                    for t in &matched {
                        prop_assert!(allowed(t), "{} reaches {} outside its allow list", sub, t);
                        prop_assert_eq!(hidden.matches(t), denied(t), "topic {}", t);
                    }
                }
            }
        }
    }
}
