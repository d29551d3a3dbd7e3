//! The log of the real `switchyard serve` as an operator reads it from a file:
//! no colour codes, levels chosen by `RUST_LOG`, a recovery that says what it
//! reopens and how long it took.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{serve_command, start_serve, stop, temp_data_dir, Raw};
use serde_json::json;

/// Starts `serve` on `listen` with its data in `dir/data` and `RUST_LOG` set to
/// `filter` (or unset), its stderr going to `dir/stderr.log` as under a service
/// manager.
fn start_logged(listen: &str, dir: &Path, filter: Option<&str>) -> (std::process::Child, String) {
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = serve_command(listen, &dir.join("data"), &[]);
    cmd.env_remove("RUST_LOG").stderr(Stdio::from(file));
    if let Some(filter) = filter {
        cmd.env("RUST_LOG", filter);
    }
    start_serve(cmd)
}

/// Runs `serve` as [`start_logged`] does and returns what it logged once stopped.
fn log_of_serve(listen: &str, filter: Option<&str>) -> String {
    let dir = temp_data_dir();
    let (mut child, _url) = start_logged(listen, &dir, filter);
    stop(&mut child);
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    log
}

/// Each line's level, target and message: the timestamp cut off.
fn lines_without_time(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    // On every address with auth off, the broker warns at start.
    let log = log_of_serve("0.0.0.0:0", None);
    assert!(!log.contains('\u{1b}'), "{log:?}");
    let lines = lines_without_time(&log);
    assert!(
        lines[0].starts_with(" WARN switchyard::cli::server: listening on 0.0.0.0:0 with auth off"),
        "{lines:?}"
    );
    // `info` when RUST_LOG is unset: the shutdown is told.
    assert_eq!(
        lines[1..],
        [
            " INFO switchyard::cli::server: signal received: shutting down",
            " INFO switchyard_broker::server: shutting down: telling 0 connections",
        ]
    );
}

#[test]
fn rust_log_chooses_the_levels_and_targets() {
    // Errors only: the warning at start is left out.
    assert_eq!(log_of_serve("0.0.0.0:0", Some("error")), "");
    // A directive per target: the broker crate's info, the command line's warnings.
    let log = log_of_serve("0.0.0.0:0", Some("switchyard=warn,switchyard_broker=info"));
    let lines = lines_without_time(&log);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(" WARN switchyard::cli::server: listening on"));
    assert_eq!(
        lines[1],
        " INFO switchyard_broker::server: shutting down: telling 0 connections"
    );
}

#[tokio::test]
async fn a_recovery_says_what_it_reopens_and_sums_it_up() {
    let dir = temp_data_dir();
    let (mut child, url) = start_logged("127.0.0.1:0", &dir, None);
    let mut c = Raw::connect(&url).await;
    for (id, queue) in [(1, "a"), (2, "b")] {
        c.call(json!({"op":"send","id":id,"queue":queue,"data":"x".repeat(1000)}))
            .await;
    }
    c.call(json!({"op":"declare","id":3,"topic":"news","retain":{"max_messages":10}}))
        .await;
    drop(c);
    stop(&mut child);
    let first = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(!first.contains("recover"), "nothing to recover: {first}");

    let (mut child, _url) = start_logged("127.0.0.1:0", &dir, None);
    stop(&mut child);
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    let lines = lines_without_time(&log);
    let data = dir.join("data");
    assert_eq!(
        lines[0],
        format!(
            " INFO switchyard_broker::broker::recovery: recovering 2 queues and 1 topic from {}",
            data.display()
        )
    );
    let summary = lines
        .iter()
        .find(|l| l.contains("recovered 2 queues"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    // Sizes and time vary a little with the log format; the words do not.
    let rest = summary
        .strip_prefix(" INFO switchyard_broker::broker::recovery: recovered 2 queues and 1 topic (")
        .unwrap_or_else(|| panic!("{summary}"));
    let (size, time) = rest
        .split_once(") in ")
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(size.ends_with(" KiB"), "{summary}");
    let number = time
        .strip_suffix(" ms")
        .or_else(|| time.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("{summary}"));
    number.parse::<f64>().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
