//! `GET /metrics` of a real broker over real sockets: the process's own figures,
//! the build, bytes in and out, what queues and retained topics store, and a
//! client's series named by its `hello` name across reconnects.

mod common;

use common::{http_get_with, TestBroker};
use serde_json::json;

/// The value of the sample `series` (name and labels, exactly) in `metrics`.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {metrics}"))
        .parse()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn metrics_carry_the_process_figures_and_the_build() {
    let b = TestBroker::start().await;
    let m = http_get_with(b.addr, "/metrics", &[]).await;
    assert!(sample(&m, "process_resident_memory_bytes") > 1e6, "{m}");
    // This test's own process: its sockets and files, the broker's listener among them.
    assert!(sample(&m, "process_open_fds") >= 4.0, "{m}");
    assert!(sample(&m, "process_max_fds") >= sample(&m, "process_open_fds"));
    // A fresh process may not have run one clock tick yet: present is enough.
    assert!(sample(&m, "process_cpu_seconds_total") >= 0.0, "{m}");
    assert!(sample(&m, "process_start_time_seconds") > 1.7e9, "{m}");
    let build = format!(
        "switchyard_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&m, &build), 1.0);
    b.stop().await;
}

#[tokio::test]
async fn metrics_count_bytes_both_ways_and_what_is_stored() {
    let b = TestBroker::start().await;
    let before = http_get_with(b.addr, "/metrics", &[]).await;
    assert_eq!(sample(&before, "switchyard_bytes_received_total"), 0.0);
    assert_eq!(sample(&before, "switchyard_bytes_sent_total"), 0.0);
    let mut c = b.raw().await;
    let big = "x".repeat(5000);
    c.call(json!({"op":"send","id":1,"queue":"jobs","data":big}))
        .await;
    c.call(json!({"op":"declare","id":2,"topic":"news","retain":{"max_messages":10}}))
        .await;
    c.call(json!({"op":"pub","id":3,"topic":"news","data":big}))
        .await;
    let m = http_get_with(b.addr, "/metrics", &[]).await;
    // Two frames of 5,000 bytes and more came in; a welcome and three answers went out.
    assert!(
        sample(&m, "switchyard_bytes_received_total") > 10_000.0,
        "{m}"
    );
    assert!(sample(&m, "switchyard_bytes_sent_total") > 100.0, "{m}");
    assert!(
        sample(&m, "switchyard_queue_stored_bytes{queue=\"jobs\"}") > 5000.0,
        "{m}"
    );
    assert!(
        sample(&m, "switchyard_topic_stored_bytes{topic=\"news\"}") > 5000.0,
        "{m}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_named_client_keeps_its_series_across_a_reconnect() {
    let b = TestBroker::start().await;
    let series = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with("switchyard_client_pending_bytes{"))
            .map(str::to_string)
            .collect()
    };
    for _ in 0..2 {
        let mut c = b.raw().await;
        c.call(json!({"op":"hello","id":1,"name":"billing"})).await;
        let m = http_get_with(b.addr, "/metrics", &[]).await;
        assert_eq!(
            series(&m),
            ["switchyard_client_pending_bytes{client=\"billing\"} 0"]
        );
        drop(c);
        common::eventually(&b.broker, "the client gone", |s| s.clients.is_empty()).await;
    }
    // Without a name, its id.
    let c = b.raw().await;
    let m = http_get_with(b.addr, "/metrics", &[]).await;
    assert_eq!(
        series(&m),
        [format!(
            "switchyard_client_pending_bytes{{client=\"{}\"}} 0",
            c.id()
        )]
    );
    b.stop().await;
}
