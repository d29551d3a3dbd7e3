//! The log of the real `switchyard serve` as an operator reads it from a file:
//! no colour codes, levels chosen by `RUST_LOG`.

mod common;

use std::process::Stdio;

use common::{serve_command, start_serve, stop, temp_data_dir};

/// Runs `serve` on `listen` with `RUST_LOG` set to `filter` (or unset), its stderr
/// going to a file as under a service manager; returns what it logged once stopped.
fn log_of_serve(listen: &str, filter: Option<&str>) -> String {
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let mut cmd = serve_command(listen, &dir.join("data"), &[]);
    cmd.env_remove("RUST_LOG").stderr(Stdio::from(file));
    if let Some(filter) = filter {
        cmd.env("RUST_LOG", filter);
    }
    let (mut child, _url) = start_serve(cmd);
    stop(&mut child);
    let log = std::fs::read_to_string(&path).unwrap();
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
