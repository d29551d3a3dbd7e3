//! `GET /metrics`: the snapshot in Prometheus text format, named after nats-server's
//! and RabbitMQ's metrics where they have one.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::stats::Snapshot;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family of one value per row: name, type, help, and the value.
type Field<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Writes each family of `fields` with one sample per row, labelled `key="name"`.
fn labeled<T>(out: &mut String, key: &str, rows: &[T], name: fn(&T) -> &str, fields: &[Field<T>]) {
    // Escaped once per row, not once per sample.
    let labels: Vec<String> = rows.iter().map(|r| label(name(r))).collect();
    for (metric, kind, help, get) in fields {
        family(out, metric, kind, help);
        for (row, l) in rows.iter().zip(&labels) {
            let _ = writeln!(out, "{metric}{{{key}=\"{l}\"}} {}", get(row));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders a snapshot as Prometheus text exposition (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "switchyard_build_info",
        "gauge",
        "Always 1; its label says which version of Switchyard runs.",
    );
    let _ = writeln!(
        out,
        "switchyard_build_info{{version=\"{}\"}} 1",
        label(&s.server.version)
    );
    let server: [(&str, &str, &str, u64); 14] = [
        (
            "switchyard_connections",
            "gauge",
            "Open WebSocket connections.",
            s.server.connections,
        ),
        (
            "switchyard_in_msgs_total",
            "counter",
            "Messages accepted (pub, send, request).",
            s.server.msgs_in,
        ),
        (
            "switchyard_out_msgs_total",
            "counter",
            "Deliveries to clients (msg and job events).",
            s.server.msgs_out,
        ),
        (
            "switchyard_slow_consumers_total",
            "counter",
            "Clients kicked as slow consumers: their outbound buffer filled, or they read none of it for slow_timeout.",
            s.server.slow_consumers,
        ),
        (
            "switchyard_stuck_consumers_total",
            "counter",
            "Of those, clients kicked for reading none of their buffer, past the slow mark, for slow_timeout.",
            s.server.stuck_consumers,
        ),
        (
            "switchyard_publisher_pauses_total",
            "counter",
            "Times a publisher waited for a slow (reading) subscriber's buffer, at most max_pause each.",
            s.server.pauses,
        ),
        (
            "switchyard_dead_msgs_total",
            "counter",
            "Queue messages dead-lettered or dropped after max_attempts or a nack.",
            s.server.dead,
        ),
        (
            "switchyard_inbound_bytes",
            "gauge",
            "Bytes held in connections' read buffers (unfinished frames above all).",
            s.server.inbound_bytes,
        ),
        (
            "switchyard_inbound_budget_bytes",
            "gauge",
            "What connections' read buffers may hold together (max_inbound).",
            s.server.max_inbound,
        ),
        (
            "switchyard_outbound_bytes",
            "gauge",
            "Bytes waiting in all outbound buffers together (pushed, not yet written).",
            s.server.outbound_bytes,
        ),
        (
            "switchyard_outbound_budget_bytes",
            "gauge",
            "Most bytes all outbound buffers may hold together (max_outbound); past it the clients holding the most are kicked.",
            s.server.outbound_budget,
        ),
        (
            "switchyard_bytes_received_total",
            "counter",
            "Bytes of WebSocket frames read from clients' sockets, headers included.",
            s.server.bytes_received,
        ),
        (
            "switchyard_bytes_sent_total",
            "counter",
            "Bytes of WebSocket text frames written to clients' sockets, headers included.",
            s.server.bytes_sent,
        ),
        (
            "switchyard_uptime_seconds",
            "gauge",
            "Seconds since the broker started.",
            s.server.uptime_s,
        ),
    ];
    for (name, kind, help, value) in server {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    // Refusals at the door, by reason: a family of its own so that later reasons
    // (auth, limits) become labels rather than new names.
    family(
        &mut out,
        "switchyard_refused_upgrades_total",
        "counter",
        "WebSocket upgrades refused, by reason (origin: a browser page from an Origin not let in).",
    );
    let _ = writeln!(
        out,
        "switchyard_refused_upgrades_total{{reason=\"origin\"}} {}",
        s.server.refused_origin
    );
    family(
        &mut out,
        "switchyard_refusals_total",
        "counter",
        "Connections, requests and frames refused because a limit was reached or a rule broken, by reason (docs/OPERATIONS.md lists each).",
    );
    for (reason, n) in &s.server.refusals {
        let _ = writeln!(
            out,
            "switchyard_refusals_total{{reason=\"{}\"}} {n}",
            label(reason)
        );
    }
    family(
        &mut out,
        "switchyard_error_frames_total",
        "counter",
        "Error events sent to clients (a refused frame, a request that timed out or went dead), by code.",
    );
    for (code, n) in &s.server.errors {
        let _ = writeln!(
            out,
            "switchyard_error_frames_total{{code=\"{}\"}} {n}",
            label(code)
        );
    }
    family(
        &mut out,
        "switchyard_tls_handshake_failures_total",
        "counter",
        "Connections to the TLS port whose handshake failed or timed out (plain HTTP among them).",
    );
    let _ = writeln!(
        out,
        "switchyard_tls_handshake_failures_total {}",
        s.server.tls_failures
    );
    let queue_fields: [Field<crate::stats::QueueStats>; 12] = [
        (
            "switchyard_queue_messages_ready",
            "gauge",
            "Messages waiting for a consumer.",
            |q| q.ready,
        ),
        (
            "switchyard_queue_messages_unacknowledged",
            "gauge",
            "Messages delivered and not yet acked.",
            |q| q.unacked,
        ),
        (
            "switchyard_queue_consumers",
            "gauge",
            "Consumers of the queue.",
            |q| q.consumers,
        ),
        (
            "switchyard_queue_in_msgs_total",
            "counter",
            "Messages sent to the queue.",
            |q| q.msgs_in,
        ),
        (
            "switchyard_queue_acked_total",
            "counter",
            "Messages acked.",
            |q| q.acked,
        ),
        (
            "switchyard_queue_redelivered_total",
            "counter",
            "Deliveries after the first.",
            |q| q.redelivered,
        ),
        (
            "switchyard_queue_dead_total",
            "counter",
            "Messages dead-lettered or dropped.",
            |q| q.dead,
        ),
        (
            "switchyard_queue_expired_total",
            "counter",
            "Messages dead-lettered or dropped because their time to live ran out.",
            |q| q.expired,
        ),
        (
            "switchyard_queue_stored_bytes",
            "gauge",
            "Bytes the queue's log files hold on disk (0 for a queue in memory).",
            |q| q.stored_bytes,
        ),
        (
            "switchyard_queue_stuck",
            "gauge",
            "1 while the queue's depth grew over the last 30 s with no job acked.",
            |q| u64::from(q.stuck),
        ),
        (
            "switchyard_queue_requests_total",
            "counter",
            "Requests sent to the queue.",
            |q| q.requests,
        ),
        (
            "switchyard_queue_request_timeouts_total",
            "counter",
            "Requests to the queue whose requester had no reply in time.",
            |q| q.request_timeouts,
        ),
    ];
    labeled(&mut out, "queue", &s.queues, |q| &q.name, &queue_fields);
    let topic_fields: [Field<crate::stats::TopicStats>; 3] = [
        (
            "switchyard_topic_subscribers",
            "gauge",
            "Subscriptions matching the topic.",
            |t| t.subscribers,
        ),
        (
            "switchyard_topic_in_msgs_total",
            "counter",
            "Messages published to the topic.",
            |t| t.msgs_in,
        ),
        (
            "switchyard_topic_out_msgs_total",
            "counter",
            "Deliveries of the topic's messages.",
            |t| t.msgs_out,
        ),
    ];
    labeled(&mut out, "topic", &s.topics, |t| &t.name, &topic_fields);
    // Only retained topics store anything: a row per topic in memory would be a
    // series of zeros for every name ever published to.
    let retained: Vec<&crate::stats::TopicStats> = s.topics.iter().filter(|t| t.retained).collect();
    let stored_fields: [Field<&crate::stats::TopicStats>; 1] = [(
        "switchyard_topic_stored_bytes",
        "gauge",
        "Bytes a retained topic's log files hold on disk.",
        |t| t.stored_bytes,
    )];
    labeled(&mut out, "topic", &retained, |t| &t.name, &stored_fields);
    family(
        &mut out,
        "switchyard_client_pending_bytes",
        "gauge",
        "Bytes waiting in a client's outbound buffer, by its hello name (summed over clients sharing it), else its id.",
    );
    for (client, bytes) in pending_by_client(&s.clients) {
        let _ = writeln!(
            out,
            "switchyard_client_pending_bytes{{client=\"{}\"}} {bytes}",
            label(client)
        );
    }
    out
}

/// The reply-time histogram of each queue that has had a reply, by name.
pub(crate) type ReplyHistograms = Vec<(String, crate::queue::latency::Histogram)>;

/// Writes `switchyard_request_duration_seconds`, from `request` to `reply`.
pub(crate) fn render_reply_times(out: &mut String, histograms: &ReplyHistograms, untracked: u64) {
    family(
        out,
        "switchyard_request_duration_seconds",
        "histogram",
        "Time from a request to its reply, by queue.",
    );
    for (queue, h) in histograms {
        let (buckets, sum, count) = (&h.buckets, h.sum, h.count);
        let q = label(queue);
        for (le, n) in buckets {
            let _ = writeln!(
                out,
                "switchyard_request_duration_seconds_bucket{{queue=\"{q}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "switchyard_request_duration_seconds_bucket{{queue=\"{q}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "switchyard_request_duration_seconds_sum{{queue=\"{q}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "switchyard_request_duration_seconds_count{{queue=\"{q}\"}} {count}"
        );
    }
    family(
        out,
        "switchyard_history_untracked",
        "gauge",
        "Queues and topics with no history for want of room (max_history).",
    );
    let _ = writeln!(out, "switchyard_history_untracked {untracked}");
}

/// `text` (an exposition) with `node="<node>"` first on every sample's labels,
/// so that the series of several nodes scraped into one Prometheus stay apart
/// (`serve --nats`; a node name needs no escaping: `A-Z a-z 0-9 _ - :`).
pub fn with_node_label(text: &str, node: &str) -> String {
    let node = label(node);
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else {
            // The metric's name ends at its labels' `{` or at the space before
            // its value; a label value's `{` comes after either.
            match line.find(['{', ' ']) {
                Some(at) if line.as_bytes()[at] == b'{' => {
                    let rest = &line[at + 1..];
                    let sep = if rest.starts_with('}') { "" } else { "," };
                    let _ = write!(out, "{}{{node=\"{node}\"{sep}{rest}", &line[..at]);
                }
                Some(at) => {
                    let _ = write!(out, "{}{{node=\"{node}\"}}{}", &line[..at], &line[at..]);
                }
                None => out.push_str(line),
            }
        }
        out.push('\n');
    }
    out
}

/// Each client's pending bytes under the label its series keeps across reconnects:
/// its `hello` name when it gave one (a new connection gets a new id, `c43`, but
/// says the same name), else its id. Clients sharing a name share a series, their
/// bytes summed: Prometheus takes one sample per label set.
fn pending_by_client(clients: &[crate::stats::ClientStats]) -> BTreeMap<&str, u64> {
    let mut by = BTreeMap::new();
    for c in clients {
        let key = c.name.as_deref().unwrap_or(&c.id);
        *by.entry(key).or_insert(0) += c.pending_bytes;
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ClientStats, QueueStats, ServerStats, TopicStats};

    #[test]
    fn a_node_label_goes_on_every_sample() {
        let text =
            "# HELP a_total x\n# TYPE a_total counter\na_total 3\nb{queue=\"q{1}\"} 4\nc{} 5\n";
        assert_eq!(
            with_node_label(text, "web1"),
            "# HELP a_total x\n# TYPE a_total counter\na_total{node=\"web1\"} 3\n\
             b{node=\"web1\",queue=\"q{1}\"} 4\nc{node=\"web1\"} 5\n"
        );
    }

    #[test]
    fn renders_families_and_escapes_labels() {
        let snap = Snapshot {
            server: ServerStats {
                connections: 2,
                msgs_in: 5,
                outbound_bytes: 300,
                outbound_budget: 1000,
                ..Default::default()
            },
            queues: vec![QueueStats {
                name: "jobs".into(),
                ready: 3,
                ..Default::default()
            }],
            topics: vec![TopicStats {
                name: "a\"b".into(),
                msgs_out: 9,
                ..Default::default()
            }],
            clients: vec![ClientStats {
                id: "c7".into(),
                pending_bytes: 12,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&snap);
        assert!(text.contains(
            "# TYPE switchyard_topic_out_msgs_total counter\nswitchyard_topic_out_msgs_total{topic=\"a\\\"b\"} 9\n"
        ));
        assert!(text.contains("switchyard_client_pending_bytes{client=\"c7\"} 12\n"));
        assert!(text.contains("# TYPE switchyard_connections gauge\nswitchyard_connections 2\n"));
        assert!(text.contains("switchyard_in_msgs_total 5\n"));
        assert!(text
            .contains("# TYPE switchyard_outbound_bytes gauge\nswitchyard_outbound_bytes 300\n"));
        assert!(text.contains("switchyard_outbound_budget_bytes 1000\n"));
        assert!(text.contains("switchyard_queue_messages_ready{queue=\"jobs\"} 3\n"));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn renders_build_info_traffic_and_stored_bytes() {
        let snap = Snapshot {
            server: ServerStats {
                version: "1.2.3".into(),
                bytes_received: 1000,
                bytes_sent: 2000,
                ..Default::default()
            },
            queues: vec![QueueStats {
                name: "jobs".into(),
                durable: true,
                stored_bytes: 4096,
                ..Default::default()
            }],
            topics: vec![
                TopicStats {
                    name: "news".into(),
                    retained: true,
                    stored_bytes: 512,
                    ..Default::default()
                },
                TopicStats {
                    name: "live".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let text = render(&snap);
        assert!(text.starts_with(
            "# HELP switchyard_build_info Always 1; its label says which version of Switchyard runs.\n\
             # TYPE switchyard_build_info gauge\n\
             switchyard_build_info{version=\"1.2.3\"} 1\n"
        ));
        assert!(text.contains(
            "# TYPE switchyard_bytes_received_total counter\nswitchyard_bytes_received_total 1000\n"
        ));
        assert!(text.contains(
            "# TYPE switchyard_bytes_sent_total counter\nswitchyard_bytes_sent_total 2000\n"
        ));
        assert!(text.contains(
            "# TYPE switchyard_queue_stored_bytes gauge\nswitchyard_queue_stored_bytes{queue=\"jobs\"} 4096\n"
        ));
        // The topic in memory stores nothing and gets no row.
        assert!(text.contains(
            "# TYPE switchyard_topic_stored_bytes gauge\nswitchyard_topic_stored_bytes{topic=\"news\"} 512\n#"
        ));
    }

    #[test]
    fn a_client_is_labelled_by_its_hello_name_so_its_series_outlives_a_reconnect() {
        let client = |id: &str, name: Option<&str>, pending_bytes| ClientStats {
            id: id.into(),
            name: name.map(Into::into),
            pending_bytes,
            ..Default::default()
        };
        let snap = Snapshot {
            clients: vec![
                client("c3", None, 5),
                client("c9", Some("billing"), 7),
                client("c12", Some("billing"), 11),
                client("c14", Some("mailer"), 0),
            ],
            ..Default::default()
        };
        let text = render(&snap);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("switchyard_client_pending_bytes"))
            .collect();
        assert_eq!(
            rows,
            [
                "switchyard_client_pending_bytes{client=\"billing\"} 18",
                "switchyard_client_pending_bytes{client=\"c3\"} 5",
                "switchyard_client_pending_bytes{client=\"mailer\"} 0",
            ]
        );
    }
}
