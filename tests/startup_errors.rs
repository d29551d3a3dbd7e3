//! A broker that cannot start says why: the error names its real cause and the
//! path or address it concerns, never the listen address for a storage problem.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `switchyard serve` on `data_dir` with `flags`, expecting it to fail at
/// start; returns its stderr.
fn failed_start(data_dir: &std::path::Path, flags: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the broker started on {}", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_data_dir_that_cannot_be_created_is_named_with_its_cause() {
    let base = temp_data_dir();
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let dir = file.join("data");
    let err = failed_start(&dir, &["--listen", "127.0.0.1:0"]);
    assert_eq!(
        err.trim(),
        format!(
            "Error: cannot start the broker\n\nCaused by:\n    data directory {}: cannot create it: Not a directory (os error 20)",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn a_corrupt_catalog_is_named_and_not_blamed_on_the_port() {
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("switchyard.json"), b"{garbage").unwrap();
    let err = failed_start(&dir, &["--listen", "127.0.0.1:0"]);
    let catalog = dir.join("switchyard.json");
    assert!(
        err.contains(&format!("{} is not valid", catalog.display())),
        "{err}"
    );
    assert!(!err.contains("127.0.0.1"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreadable_data_dir_is_named_with_permission_denied() {
    if rustix::process::getuid().is_root() {
        eprintln!("skipped: root reads any directory");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = failed_start(&dir, &["--listen", "127.0.0.1:0"]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(err.contains("ermission denied"), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(!err.contains("127.0.0.1"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_port_in_use_is_named_as_the_address_that_cannot_be_listened_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_data_dir();
    let err = failed_start(&dir, &["--listen", &addr]);
    assert_eq!(
        err.trim(),
        format!(
            "Error: cannot start the broker\n\nCaused by:\n    cannot listen on {addr}: Address already in use (os error 98)"
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}
