//! Topic and queue names, subscription patterns, and the subject trie that finds the
//! subscriptions matching a topic without scanning every subscription.

use std::collections::HashMap;

use crate::error::BrokerError;
use crate::error::ErrorCode;

const MAX_NAME: usize = 255;

fn name_error(what: &str, name: &str, why: &str) -> BrokerError {
    let shown: String = name.chars().take(64).collect();
    BrokerError::new(ErrorCode::BadName, format!("{what} `{shown}`: {why}"))
}

/// Whether a name is non-empty tokens of `A-Z a-z 0-9 _ - :` joined by dots: one
/// pass over the bytes, for the common case; anything else gets the full check.
fn plain_tokens(name: &[u8]) -> bool {
    let mut token_start = true;
    for &b in name {
        if b == b'.' {
            if token_start {
                return false;
            }
            token_start = true;
        } else if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':') {
            token_start = false;
        } else {
            return false;
        }
    }
    !token_start
}

fn check_tokens(what: &str, name: &str, wildcards: bool) -> Result<(), BrokerError> {
    if name.len() <= MAX_NAME && plain_tokens(name.as_bytes()) {
        return Ok(());
    }
    check_tokens_fully(what, name, wildcards)
}

/// The full check, which names what is wrong.
fn check_tokens_fully(what: &str, name: &str, wildcards: bool) -> Result<(), BrokerError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(name_error(what, name, "must be 1 to 255 bytes"));
    }
    let count = name.split('.').count();
    for (i, token) in name.split('.').enumerate() {
        if token.is_empty() {
            return Err(name_error(what, name, "has an empty token"));
        }
        if wildcards && token == "*" {
            continue;
        }
        if wildcards && token == ">" {
            if i + 1 != count {
                return Err(name_error(what, name, "`>` must be the last token"));
            }
            continue;
        }
        if let Some(c) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':')))
        {
            return Err(name_error(
                what,
                name,
                &format!("character {c:?} is not allowed (A-Z a-z 0-9 _ - : .)"),
            ));
        }
    }
    Ok(())
}

/// Checks an exact topic name (no wildcards).
pub fn check_topic(name: &str) -> Result<(), BrokerError> {
    check_tokens("topic", name, false)
}

/// Checks a subscription pattern: tokens, `*` for one token, a final `>` for the rest.
pub fn check_pattern(pattern: &str) -> Result<(), BrokerError> {
    check_tokens("pattern", pattern, true)
}

/// Checks a queue name (exact names only).
pub fn check_queue(name: &str) -> Result<(), BrokerError> {
    check_tokens("queue", name, false)
}

/// Whether a pattern has wildcards (and so names no single topic).
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|t| t == "*" || t == ">")
}

/// Whether `topic` matches `pattern`, token by token.
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    let mut topic_tokens = topic.split('.');
    for p in pattern.split('.') {
        match p {
            ">" => return topic_tokens.next().is_some(),
            "*" => {
                if topic_tokens.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_tokens.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_tokens.next().is_none()
}

/// Patterns mapped to values, matched against topics in time proportional to the
/// topic's length and the number of wildcard branches, not to the number of patterns.
#[derive(Debug)]
pub struct SubjectTrie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    star: Option<Box<Node<T>>>,
    /// Values whose pattern ends at this node.
    here: Vec<T>,
    /// Values whose pattern ends with `>` after this node.
    rest: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            star: None,
            here: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

impl<T> Default for SubjectTrie<T> {
    fn default() -> Self {
        SubjectTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Clone> SubjectTrie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a value under a (checked) pattern.
    pub fn insert(&mut self, pattern: &str, value: T) {
        let mut node = &mut self.root;
        for token in pattern.split('.') {
            match token {
                ">" => {
                    node.rest.push(value);
                    self.len += 1;
                    return;
                }
                "*" => node = node.star.get_or_insert_with(Default::default),
                exact => node = node.children.entry(exact.into()).or_default(),
            }
        }
        node.here.push(value);
        self.len += 1;
    }

    /// Removes the first value under `pattern` for which `is_it` holds.
    pub fn remove(&mut self, pattern: &str, is_it: impl Fn(&T) -> bool) -> Option<T> {
        let tokens: Vec<&str> = pattern.split('.').collect();
        let removed = Self::remove_in(&mut self.root, &tokens, &is_it);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<T>, tokens: &[&str], is_it: &impl Fn(&T) -> bool) -> Option<T> {
        let Some((first, rest)) = tokens.split_first() else {
            let at = node.here.iter().position(is_it)?;
            return Some(node.here.swap_remove(at));
        };
        match *first {
            ">" => {
                let at = node.rest.iter().position(is_it)?;
                Some(node.rest.swap_remove(at))
            }
            "*" => {
                let child = node.star.as_mut()?;
                let removed = Self::remove_in(child, rest, is_it);
                if child.is_empty() {
                    node.star = None;
                }
                removed
            }
            exact => {
                let child = node.children.get_mut(exact)?;
                let removed = Self::remove_in(child, rest, is_it);
                if child.is_empty() {
                    node.children.remove(exact);
                }
                removed
            }
        }
    }

    /// Appends every value whose pattern matches `topic` to `out`.
    pub fn matches_into(&self, topic: &str, out: &mut Vec<T>) {
        let tokens: Vec<&str> = topic.split('.').collect();
        Self::match_in(&self.root, &tokens, out);
    }

    fn match_in(node: &Node<T>, tokens: &[&str], out: &mut Vec<T>) {
        let Some((first, rest)) = tokens.split_first() else {
            out.extend(node.here.iter().cloned());
            return;
        };
        out.extend(node.rest.iter().cloned());
        if let Some(child) = node.children.get(*first) {
            Self::match_in(child, rest, out);
        }
        if let Some(star) = &node.star {
            Self::match_in(star, rest, out);
        }
    }

    /// How many values match `topic`.
    pub fn count_matches(&self, topic: &str) -> usize {
        let mut out = Vec::new();
        self.matches_into(topic, &mut out);
        out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert!(check_topic("orders.eu").is_ok());
        assert!(check_topic("a-b_c:d.9").is_ok());
        assert!(check_topic("orders.*").is_err());
        assert!(check_topic("").is_err());
        assert!(check_topic("a..b").is_err());
        assert!(check_topic(".a").is_err());
        assert!(check_topic("a.").is_err());
        assert!(check_topic(".").is_err());
        assert!(check_topic("a b").is_err());
        assert!(check_topic(&"a".repeat(256)).is_err());
        assert!(check_topic(&"a".repeat(255)).is_ok());
        assert!(check_pattern("orders.*.eu").is_ok());
        assert!(check_pattern("orders.>").is_ok());
        assert!(check_pattern(">").is_ok());
        assert!(check_pattern("orders.>.eu").is_err());
        assert!(check_pattern("orders.a*").is_err());
        assert_eq!(check_queue("q 1").unwrap_err().code, ErrorCode::BadName);
    }

    #[test]
    fn pattern_matching() {
        assert!(pattern_matches("a.*.c", "a.b.c"));
        assert!(!pattern_matches("a.*.c", "a.b.d"));
        assert!(!pattern_matches("a.*", "a"));
        assert!(pattern_matches("a.>", "a.b.c"));
        assert!(!pattern_matches("a.>", "a"));
        assert!(pattern_matches(">", "x"));
        assert!(pattern_matches("a.b", "a.b"));
        assert!(!pattern_matches("a.b", "a.b.c"));
    }

    #[test]
    fn trie_agrees_with_pattern_matching() {
        let patterns = [
            "a.b.c", "a.*.c", "a.>", ">", "*.b.*", "a.b", "*", "b.>", "a.*.>",
        ];
        let topics = [
            "a.b.c", "a.b", "a", "b.b.b", "a.x.c", "a.b.c.d", "b", "c.b.c",
        ];
        let mut trie = SubjectTrie::new();
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(p, i);
        }
        assert_eq!(trie.len(), patterns.len());
        for t in topics {
            let mut got = Vec::new();
            trie.matches_into(t, &mut got);
            got.sort();
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&i| pattern_matches(patterns[i], t))
                .collect();
            assert_eq!(got, want, "topic {t}");
        }
        for (i, p) in patterns.iter().enumerate() {
            assert_eq!(trie.remove(p, |v| *v == i), Some(i));
        }
        assert!(trie.is_empty());
        assert!(trie.root.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn the_fast_check_agrees_with_the_full_one(name in "[a-c.*>_:é -]{0,12}") {
            for wildcards in [false, true] {
                proptest::prop_assert_eq!(
                    check_tokens("topic", &name, wildcards).is_ok(),
                    check_tokens_fully("topic", &name, wildcards).is_ok()
                );
            }
        }
    }
}
