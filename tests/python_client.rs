//! Runs the Python client's own tests (`clients/python/test_switchyard.py`, plain
//! unittest) against the binary this build made, so `cargo test` covers that
//! client too. python3 and `websockets` are required, not optional: without them
//! the test fails naming `.ci/run`, which installs `clients/python/requirements.txt`.

mod common;

use std::process::Command;

#[test]
fn the_python_client_passes_its_tests_against_the_real_broker() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python");
    let has_websockets = Command::new("python3")
        .args(["-c", "import websockets.asyncio.client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_websockets,
        "python3 with `websockets` (asyncio API) is needed: .ci/run installs it (python3 -m pip install -r clients/python/requirements.txt)"
    );
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_switchyard"])
        .current_dir(dir)
        .env("SWITCHYARD_BIN", common::BIN)
        .output()
        .expect("run python3");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client's tests failed:\n{report}"
    );
    // Exactly the five tests ran, so a test file that loaded nothing does not pass.
    assert!(
        report.contains("Ran 6 tests"),
        "unexpected report:\n{report}"
    );
}
