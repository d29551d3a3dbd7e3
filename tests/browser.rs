//! The JavaScript client (`clients/js/switchyard.js`) in headless Chromium against
//! the real broker binary: the example page at `GET /`, pub/sub with a packed
//! frame, a filter, consume with ack and nack, request/reply, and a reconnect
//! across a broker restart. The test drives the page over the DevTools protocol
//! (`Runtime.evaluate` of `tests/browser/steps.js`) and compares what each step
//! returns exactly; a raw client acts from outside between steps.
//!
//! Chromium is required, not optional: without it the test fails naming `.ci/run`,
//! which installs Debian's `chromium`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const STEPS: &str = include_str!("browser/steps.js");
/// How long one DevTools answer (a whole step included) may take.
const STEP_WAIT: Duration = Duration::from_secs(30);

/// Where Chromium is: `$SWITCHYARD_CHROMIUM`, else Debian's `/usr/bin/chromium`.
fn chromium_path() -> PathBuf {
    let path = std::env::var_os("SWITCHYARD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} not found: the browser test needs Chromium (Debian's `chromium`; .ci/run installs it with apt-get, or set SWITCHYARD_CHROMIUM)",
        path.display()
    );
    path
}

/// A headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    profile: PathBuf,
    devtools: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: String,
}

impl Browser {
    /// Starts Chromium and opens `url` in a page, once it has loaded.
    async fn open(url: &str) -> Browser {
        let profile = temp_data_dir().with_extension("chromium");
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let endpoint = devtools_endpoint(&profile).await;
        let (devtools, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("connect to chromium's DevTools");
        let mut browser = Browser {
            child,
            profile,
            devtools,
            next_id: 1,
            session: String::new(),
        };
        let target = browser
            .command(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.page("Page.enable", json!({})).await;
        browser.page("Page.navigate", json!({"url": url})).await;
        browser.event("Page.loadEventFired").await;
        browser
    }

    /// Runs `expression` in the page, awaiting it if it is a promise; its value as JSON.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .page(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {}", e["exception"]["description"]);
        }
        r["result"]["value"].clone()
    }

    async fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// Sends one DevTools command and waits for its answer (events meanwhile are dropped).
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            frame["sessionId"] = json!(s);
        }
        self.devtools
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        loop {
            let v = self.next().await;
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    async fn event(&mut self, method: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["method"] == method {
                return v;
            }
        }
    }

    async fn next(&mut self) -> Value {
        let frame = tokio::time::timeout(STEP_WAIT, self.devtools.next())
            .await
            .expect("chromium answers in time")
            .expect("chromium's DevTools socket stays open")
            .expect("a DevTools frame");
        serde_json::from_str(frame.to_text().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser's DevTools WebSocket, from the `DevToolsActivePort` file Chromium
/// writes into its profile (the port on the first line, the path on the second).
async fn devtools_endpoint(profile: &Path) -> String {
    let file = profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + STEP_WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromium wrote no {} in {STEP_WAIT:?}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ws://127.0.0.1:PORT/ws` → `127.0.0.1:PORT`.
fn authority(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches("/ws")
}

/// The page the broker serves at `/`, in a browser, with the test's steps loaded.
async fn broker_page(url: &str) -> Browser {
    let mut browser = Browser::open(&format!("http://{}/", authority(url))).await;
    assert_eq!(browser.eval(STEPS).await, json!("steps ready"));
    browser
}

#[tokio::test]
async fn the_example_page_at_slash_publishes_and_prints_what_it_receives() {
    let dir = temp_data_dir();
    let (mut child, url) = serve_process("127.0.0.1:0", &dir);
    let mut watcher = Raw::connect(&url).await;
    let sub = json!({"op": "sub", "id": 1, "topic": "demo.>", "sid": "w"});
    assert_eq!(watcher.call(sub).await, ok(1, json!({})));

    let mut browser = broker_page(&url).await;
    // The page's form published "hi"; its own subscription printed it.
    assert_eq!(
        browser.eval("steps.examplePage()").await,
        json!("demo.hello #1: \"hi\"\n")
    );
    let msg = watcher.recv_ev("msg").await;
    assert_eq!(
        (&msg["topic"], &msg["seq"], &msg["data"]),
        (&json!("demo.hello"), &json!(1), &json!("hi"))
    );
    // The page's Origin names 127.0.0.1; a socket to the same port as `localhost`
    // is another host, refused at the upgrade.
    let port = authority(&url).rsplit(':').next().unwrap().to_string();
    let other = format!("steps.otherOrigin('ws://localhost:{port}/ws')");
    assert_eq!(browser.eval(&other).await, json!("disconnected"));

    drop(browser);
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_js_client_in_chromium_speaks_the_whole_protocol_and_reconnects() {
    let dir = temp_data_dir();
    let (mut child, url) = serve_process("127.0.0.1:0", &dir);
    let mut browser = broker_page(&url).await;
    let mut outside = Raw::connect(&url).await;

    assert_eq!(
        browser.eval("steps.subscribe()").await,
        json!({"protocol": 1, "states": ["open"]})
    );
    // Five messages in one frame from a publisher reach the subscriber in one
    // frame too (the broker packs what waits); each must still arrive, in order.
    let burst: Vec<String> = (0..5)
        .map(|n| json!({"op": "pub", "topic": "browser.burst", "data": n}).to_string())
        .collect();
    outside.send_text(burst.join("\n")).await;
    assert_eq!(
        browser.eval("steps.burst()").await,
        json!({"got": [[1, 0], [2, 1], [3, 2], [4, 3], [5, 4]], "frames": 1, "messages": 5})
    );

    assert_eq!(
        browser.eval("steps.filtered()").await,
        json!({"got": [["browser.h.two", 2, {"region": "eu"}]], "seqs": [1, 1]})
    );

    assert_eq!(
        browser.eval("steps.queue()").await,
        json!({"jobs": [["once", 1], ["again", 1], ["again", 2]], "msgs": ["1", "2"]})
    );
    let stats = outside.call(json!({"op": "stats", "id": 2})).await;
    let q = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "browser.jobs")
        .unwrap();
    assert_eq!(
        (&q["ready"], &q["unacked"], &q["acked"], &q["redelivered"]),
        (&json!(0), &json!(0), &json!(2), &json!(1))
    );

    assert_eq!(
        browser.eval("steps.expired()").await,
        json!([["hi", "expired"]])
    );

    assert_eq!(
        browser.eval("steps.requests()").await,
        json!({"answer": {"sum": 5}, "nobody": "timeout"})
    );
    // The page answers a request from outside the browser too.
    let asked = json!({"op": "request", "id": 3, "queue": "browser.rpc", "data": {"a": 1, "b": 1}});
    assert_eq!(
        outside.call(asked).await,
        json!({"ev": "reply", "id": 3, "data": {"sum": 2}})
    );

    // The broker restarts on the same port: the client reconnects, subscribes and
    // consumes again, and a publish made while it was down goes out once it is back.
    assert_eq!(browser.eval("steps.beforeRestart()").await, json!(["open"]));
    drop(outside);
    stop(&mut child);
    assert_eq!(
        browser.eval("steps.whileDown()").await,
        json!(["open", "reconnecting"])
    );
    let (mut child, again) = serve_process(authority(&url), &dir);
    assert_eq!(again, url);
    assert_eq!(
        browser.eval("steps.backUp()").await,
        json!({"states": ["open", "reconnecting", "open"], "pending": "ok"})
    );
    let mut outside = Raw::connect(&url).await;
    let back = json!({"op": "pub", "id": 4, "topic": "browser.after", "data": "back"});
    assert_eq!(outside.call(back).await["ev"], "ok");
    let later = json!({"op": "send", "id": 5, "queue": "browser.later", "data": "later"});
    assert_eq!(outside.call(later).await, ok(5, json!({"msg": "1"})));
    assert_eq!(
        browser.eval("steps.afterRestart()").await,
        json!({"after": ["while down", "back"], "later": [["later", 1]]})
    );

    drop(browser);
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
}
