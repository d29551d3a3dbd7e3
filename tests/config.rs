//! The real `switchyard` binary and its settings: the config file (each key, the
//! command line winning, errors that name the line and key, `SWITCHYARD_CONFIG`),
//! `switchyard token`, the one-broker-per-data-directory lock, and the warning
//! for a broker open to the network with auth off.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;

mod common;

use common::{Raw, BIN, WAIT};

/// A fresh directory for one test's config file and data.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A digest that is valid and matches no real token.
const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A `switchyard serve` that printed its URL; killed when dropped.
struct Served {
    child: Child,
    url: String,
    stderr: std::process::ChildStderr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Kills the broker and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        let _ = self.stderr.read_to_string(&mut err);
        err
    }
}

/// Starts `switchyard serve ARGS` with extra environment; `Err` holds its stderr
/// when it exits without printing a URL, with its exit status.
fn serve(
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<Served, (std::process::ExitStatus, String)> {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHYARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start switchyard serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    match line.trim().strip_prefix("switchyard listening on ") {
        Some(url) => Ok(Served {
            url: url.to_string(),
            child,
            stderr,
        }),
        None => {
            let status = child.wait().unwrap();
            let mut err = String::new();
            stderr.read_to_string(&mut err).unwrap();
            Err((status, err))
        }
    }
}

/// Whether `url` is the broker's URL on `ip`, on whatever port the kernel gave
/// (tests listen on port 0 of distinct loopback addresses: a port picked ahead
/// could be taken by the time the broker binds it).
fn on_ip(url: &str, ip: &str) -> bool {
    url.strip_prefix(&format!("ws://{ip}:"))
        .and_then(|rest| rest.strip_suffix("/ws"))
        .is_some_and(|port| port.parse::<u16>().is_ok_and(|p| p != 0))
}

/// Runs `switchyard serve --config FILE` expecting it to refuse; returns stderr.
fn refused(config: &Path) -> String {
    let (status, err) = serve(&["--config", config.to_str().unwrap()], &[])
        .err()
        .expect("the broker should refuse this config");
    assert!(!status.success());
    err
}

#[tokio::test]
async fn size_flags_take_bytes_or_a_binary_unit() {
    let data = temp_dir("size-flags");
    let served = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--max-payload",
            "2KiB",
            "--max-inbound",
            "3MiB",
        ],
        &[],
    )
    .unwrap();
    let mut c = Raw::connect(&served.url).await;
    let stats = c.call(json!({"op":"stats","id":1})).await;
    assert_eq!(stats["server"]["max_inbound"], 3 * 1024 * 1024, "{stats}");
    // 2 KiB: a frame of 3,000 bytes closes the connection with 1009.
    c.send(json!({"op":"pub","topic":"t","data":"x".repeat(3000)}))
        .await;
    assert_eq!(c.recv_close().await, Some(1009));
    drop(served);
    let (status, err) = serve(&["--max-pending", "8MB"], &[]).err().unwrap();
    assert!(!status.success());
    assert!(
        err.contains("invalid value '8MB' for '--max-pending <SIZE>': `8MB`: write KiB, MiB or GiB (powers of 1024), or a number of bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn a_config_file_sets_each_serve_key() {
    let dir = temp_dir("each-key");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.2:0\"\ndata_dir = \"data\"\nmax_payload = 20000\n\
         max_pending = 4096\nmax_connections = 2\nfsync = \"always\"\n\
         max_connections_per_ip = 0\nframe_timeout = 1\nmax_inbound = 1000000\n",
    )
    .unwrap();
    let served = serve(&["--config", config.to_str().unwrap()], &[]).unwrap();
    // listen
    assert!(on_ip(&served.url, "127.0.0.2"), "{}", served.url);
    // data_dir: relative to the config file
    assert!(dir.join("data").join("queues").is_dir());
    // max_connections = 2: a third is turned away.
    let mut sub = Raw::connect(&served.url).await;
    let mut publisher = Raw::connect(&served.url).await;
    assert!(tokio_tungstenite::connect_async(&served.url).await.is_err());
    // max_pending = 4096: a 10 kB delivery cannot fit the subscriber's outbound
    // buffer, so it is kicked as a slow consumer.
    let sub_ok = sub
        .call(json!({"op":"sub","topic":"t","sid":"s","id":1}))
        .await;
    assert_eq!(sub_ok["ev"], "ok", "{sub_ok}");
    let medium = "x".repeat(10_000);
    let published = publisher
        .call(json!({"op":"pub","topic":"t","data": medium, "id": 2}))
        .await;
    assert_eq!(published["ev"], "ok", "{published}");
    let kicked = sub.try_recv(WAIT).await;
    assert!(
        kicked.is_none()
            || kicked
                .as_ref()
                .is_some_and(|f| f["reason"] == "slow_consumer"),
        "{kicked:?}"
    );
    // max_payload = 20000: a 30 kB frame closes the connection with 1009.
    let big = "x".repeat(30_000);
    publisher
        .send(json!({"op":"pub","topic":"t","data": big}))
        .await;
    assert_eq!(publisher.recv_close().await, Some(1009));
    // max_connections_per_ip = 0: both connections above came from one address,
    // which the default (a quarter of 2, so 1) would have refused.
    // max_inbound: reported as set.
    drop((sub, publisher));
    let mut probe = loop {
        // Until the broker has seen both go (max_connections = 2).
        match tokio_tungstenite::connect_async(&served.url).await {
            Ok(_) => break Raw::connect(&served.url).await,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let stats = probe.call(json!({"op":"stats","id":3})).await;
    assert_eq!(stats["server"]["max_inbound"], 1_000_000, "{stats}");
    // frame_timeout = 1: a frame begun and never finished closes with 1008.
    let tcp = probe.tcp();
    tokio::io::AsyncWriteExt::write_all(tcp, &[0x81, 0x80 | 100, 1, 2, 3, 4, b'{'])
        .await
        .unwrap();
    assert_eq!(probe.recv_close().await, Some(1008));
    drop(served);

    // fsync: its value is read and checked.
    std::fs::write(&config, "fsync = \"sometimes\"\n").unwrap();
    let err = refused(&config);
    assert!(err.contains("line 1, key `fsync`"), "{err}");
}

/// The timeouts and `max_topics` are keys too (and flags: the flag beats the key).
#[tokio::test]
async fn timeouts_and_the_topic_cap_are_keys() {
    let dir = temp_dir("timeouts");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\nhandshake_timeout = 1\n\
             auth_timeout = 1\nmax_topics = 5\n\
             [[users]]\nname = \"u\"\ntoken_sha256 = \"{DIGEST}\"\nadmin = true\n"
        ),
    )
    .unwrap();
    let served = serve(
        &["--config", config.to_str().unwrap(), "--max-topics", "2"],
        &[],
    )
    .unwrap();
    let addr = served
        .url
        .strip_prefix("ws://")
        .and_then(|a| a.strip_suffix("/ws"))
        .unwrap()
        .to_string();
    // handshake_timeout = 1: a silent connection gets 408 after a second, not ten.
    let started = std::time::Instant::now();
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let mut answer = String::new();
    silent.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // auth_timeout = 1: no token, closed with 1008 after a second.
    let mut anonymous = Raw::connect(&served.url).await;
    let started = std::time::Instant::now();
    assert_eq!(anonymous.recv_close().await, Some(1008));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    drop(served);

    // --max-topics 2 over the file's 5: two topics subscribed to fill it, and a
    // third is refused.
    std::fs::write(
        &config,
        "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\nmax_topics = 5\n",
    )
    .unwrap();
    let served = serve(
        &["--config", config.to_str().unwrap(), "--max-topics", "2"],
        &[],
    )
    .unwrap();
    let mut c = Raw::connect(&served.url).await;
    for (id, topic) in [(1, "a"), (2, "b")] {
        let ok = c
            .call(json!({"op":"sub","id":id,"topic":topic,"sid":topic}))
            .await;
        assert_eq!(ok["ev"], "ok", "{ok}");
    }
    let third = c
        .call(json!({"op":"pub","id":3,"topic":"c","data":1}))
        .await;
    assert_eq!(third["ev"], "error", "{third}");
    assert_eq!(third["code"], "limit", "{third}");
    drop(served);

    for (key, value, why) in [
        (
            "handshake_timeout",
            "0",
            "`handshake_timeout` must be from 1 to 600 seconds",
        ),
        (
            "auth_timeout",
            "601",
            "`auth_timeout` must be from 1 to 600 seconds",
        ),
        ("max_topics", "0", "`max_topics` must be at least 1"),
    ] {
        std::fs::write(&config, format!("{key} = {value}\n")).unwrap();
        let err = refused(&config);
        assert!(err.contains(why), "{key}: {err}");
    }
}

#[test]
fn a_flag_beats_the_file() {
    let dir = temp_dir("flag-wins");
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, "listen = \"127.0.0.4:0\"\ndata_dir = \"data\"\n").unwrap();
    let flag_listen = "127.0.0.3:0".to_string();
    let flag_data = dir.join("flag-data");
    let served = serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &flag_listen,
            "--data-dir",
            flag_data.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(on_ip(&served.url, "127.0.0.3"), "{}", served.url);
    assert!(flag_data.join("queues").is_dir());
    assert!(!dir.join("data").exists());
    drop(served);

    // A flag before the subcommand counts as given too.
    let out = Command::new(BIN)
        .args(["--listen", &flag_listen, "serve", "--config"])
        .arg(&config)
        .args(["--max-payload", "not-a-number"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn an_unknown_key_fails_naming_it_and_its_line() {
    let dir = temp_dir("unknown-key");
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmax_payloads = 10\n").unwrap();
    let err = refused(&config);
    assert!(err.contains(config.to_str().unwrap()), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("max_payloads"), "{err}");

    // Inside a user too.
    std::fs::write(
        &config,
        format!("[[users]]\nname = \"a\"\ntoken_sha256 = \"{DIGEST}\"\npublsh = [\"x\"]\n"),
    )
    .unwrap();
    let err = refused(&config);
    assert!(err.contains("line 4") && err.contains("publsh"), "{err}");
}

#[test]
fn a_bad_token_digest_or_pattern_fails_naming_the_user() {
    let dir = temp_dir("bad-user");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        "[[users]]\nname = \"ok-user\"\ntoken_sha256 = \"9f86d08\"\n",
    )
    .unwrap();
    let err = refused(&config);
    assert!(err.contains("user `ok-user`"), "{err}");
    assert!(err.contains("line 3, key `token_sha256`"), "{err}");

    std::fs::write(
        &config,
        format!(
            "[[users]]\nname = \"orders\"\ntoken_sha256 = \"{DIGEST}\"\n\
             subscribe = [\"orders.>\", \"orders.>.eu\"]\n"
        ),
    )
    .unwrap();
    let err = refused(&config);
    assert!(err.contains("user `orders`, subscribe"), "{err}");
    assert!(
        err.contains("orders.>.eu") && err.contains("line 4"),
        "{err}"
    );
}

#[test]
fn switchyard_config_names_the_file_when_no_flag_does() {
    let dir = temp_dir("env");
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, "listen = \"127.0.0.5:0\"\ndata_dir = \"data\"\n").unwrap();
    let served = serve(&[], &[("SWITCHYARD_CONFIG", &config)]).unwrap();
    assert!(on_ip(&served.url, "127.0.0.5"), "{}", served.url);
    drop(served);

    // And a broken one is reported, not ignored.
    std::fs::write(&config, "listen = 7400\n").unwrap();
    let (status, err) = serve(&[], &[("SWITCHYARD_CONFIG", &config)]).err().unwrap();
    assert!(!status.success());
    assert!(err.contains("line 1, key `listen`"), "{err}");
}

#[test]
fn a_client_subcommand_ignores_the_config_file() {
    let dir = temp_dir("client-ignores");
    let config = dir.join("broken.toml");
    std::fs::write(&config, "nonsense = true\n").unwrap();
    let out = Command::new(BIN)
        .args(["pub", "t", "1", "--url", "ws://127.0.0.1:1/ws"])
        .env("SWITCHYARD_CONFIG", &config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("nonsense"), "{err}");
}

#[tokio::test]
async fn a_second_broker_on_the_same_data_dir_is_refused_and_the_first_loses_nothing() {
    let dir = temp_dir("lock");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let first = serve(&["--listen", "127.0.0.1:0", "--data-dir", data_arg], &[]).unwrap();
    let pid = first.child.id();

    let (status, err) = serve(&["--listen", "127.0.0.1:0", "--data-dir", data_arg], &[])
        .err()
        .expect("the second broker must not start");
    assert!(!status.success());
    assert!(err.contains(data_arg), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    // It left the lock file as it was: still naming the first.
    let holder = std::fs::read_to_string(data.join("switchyard.lock")).unwrap();
    assert_eq!(holder.trim(), pid.to_string());
    // Plain `switchyard` (broker and dashboard) is turned away the same way,
    // before it writes its log file into the directory.
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir", data_arg])
        .env_remove("SWITCHYARD_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(!data.join("switchyard.log").exists(), "it wrote a log file");

    // The first keeps serving, and what it confirmed survives its death.
    let mut c = Raw::connect(&first.url).await;
    let sent = c
        .call(json!({"op":"send","queue":"jobs","data":{"n":1},"id":1}))
        .await;
    assert_eq!(sent["ev"], "ok", "{sent}");
    drop(c);
    let _ = first.stop();

    let again = serve(&["--listen", "127.0.0.1:0", "--data-dir", data_arg], &[]).unwrap();
    let mut c = Raw::connect(&again.url).await;
    let ok = c
        .call(json!({"op":"consume","queue":"jobs","cid":"w","id":2}))
        .await;
    assert_eq!(ok["ev"], "ok", "{ok}");
    let job = c.recv_ev("job").await;
    assert_eq!(job["data"], json!({"n":1}));
    assert_eq!(job["msg"], sent["msg"]);
}

/// Runs `switchyard token ARGS`: (the token, the `token_sha256` value, all stdout, stderr).
fn token(args: &[&str]) -> (String, String, String, String) {
    let out = Command::new(BIN).arg("token").args(args).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().next().unwrap().to_string();
    let digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token_sha256 = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no token_sha256 line in {stdout}"))
        .to_string();
    (
        token,
        digest,
        stdout,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn switchyard_token_prints_a_fresh_token_and_its_digest_for_the_config() {
    use sha2::{Digest, Sha256};
    let (first, digest, stdout, stderr) = token(&["--name", "orders-service"]);
    assert!(first.len() >= 32, "at least 128 bits in hex: {first}");
    assert_eq!(digest, hex::encode(Sha256::digest(first.as_bytes())));
    assert!(stderr.contains("shown once"), "{stderr}");
    let (second, second_digest, _, _) = token(&[]);
    assert_ne!(first, second);
    assert_ne!(digest, second_digest);

    // The printed entry is a config file the broker accepts as it is.
    let dir = temp_dir("token");
    let config = dir.join("switchyard.toml");
    let entry = &stdout[stdout.find("[[users]]").unwrap()..];
    assert!(entry.contains("name = \"orders-service\""), "{entry}");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{entry}"),
    )
    .unwrap();
    serve(&["--config", config.to_str().unwrap()], &[]).unwrap();
}

#[test]
fn a_broker_beyond_loopback_with_auth_off_warns_at_start() {
    let dir = temp_dir("warn");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let open = serve(&["--listen", "0.0.0.0:0", "--data-dir", data_arg], &[]).unwrap();
    let err = open.stop();
    assert!(err.contains("auth off"), "{err}");

    let local = serve(&["--listen", "127.0.0.1:0", "--data-dir", data_arg], &[]).unwrap();
    let err = local.stop();
    assert!(!err.contains("auth off"), "{err}");

    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:0\"\ndata_dir = \"data\"\n\
             [[users]]\nname = \"a\"\ntoken_sha256 = \"{DIGEST}\"\n"
        ),
    )
    .unwrap();
    let secured = serve(&["--config", config.to_str().unwrap()], &[]).unwrap();
    let err = secured.stop();
    assert!(!err.contains("auth off"), "{err}");
}
