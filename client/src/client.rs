//! The [`Client`] handle: connecting, the call that every verb is built on, raw
//! frames, and closing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::connection::{drive, Connection, Routes, OUTBOUND_FRAMES};
use crate::error::ClientError;
use crate::options::ConnectOptions;

/// A connection to a broker. Clones share the connection.
#[derive(Clone)]
pub struct Client {
    pub(crate) conn: Arc<Connection>,
}

impl Client {
    /// Connects to `ws://HOST:PORT/ws` (or `wss://`, trusting the system's roots)
    /// and waits for the broker's `welcome`.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ConnectOptions::default()).await
    }

    /// Connects as [`Client::connect`] does, with `options` (a private CA for
    /// `wss://`, say).
    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let connector = options.connector()?;
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
                .await
                .map_err(|e| ClientError::Connect(e.to_string()))?;
        let welcome = loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) => break t.to_string(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Connect(e.to_string())),
                None => return Err(ClientError::Connect("closed before welcome".into())),
            }
        };
        let welcome: Value = serde_json::from_str(welcome.lines().next().unwrap_or(""))
            .map_err(|e| ClientError::Protocol(format!("bad welcome: {e}")))?;
        if welcome["ev"] != "welcome" {
            return Err(ClientError::Protocol(format!(
                "expected welcome, got {welcome}"
            )));
        }
        let client_id = welcome["client"].as_str().unwrap_or_default().to_string();
        let (out, out_rx) = mpsc::channel(OUTBOUND_FRAMES);
        let conn = Arc::new(Connection {
            out,
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU64::new(1),
            client_id,
            driver: Mutex::new(None),
        });
        let driver = tokio::spawn(drive(ws, out_rx, conn.clone()));
        *conn.driver.lock() = Some(driver);
        let client = Client { conn };
        if options.token.is_some() || options.name.is_some() {
            let mut hello = json!({"op": "hello"});
            if let Some(token) = &options.token {
                hello["token"] = json!(token);
            }
            if let Some(name) = &options.name {
                hello["name"] = json!(name);
            }
            if let Err(e) = client.call(hello).await {
                client.close().await;
                return Err(e);
            }
        }
        Ok(client)
    }

    /// Connects and introduces itself with a name shown in the dashboard.
    pub async fn connect_named(url: &str, name: &str) -> Result<Client, ClientError> {
        let client = Client::connect(url).await?;
        client.call(json!({"op": "hello", "name": name})).await?;
        Ok(client)
    }

    /// The id the broker gave this connection (`c42`).
    pub fn id(&self) -> &str {
        &self.conn.client_id
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.conn.routes.lock().closed.clone()
    }

    /// A fresh number for a call id, a sid or a cid.
    pub(crate) fn next_id(&self) -> u64 {
        self.conn.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a frame with a fresh id and waits for the frame that answers it
    /// (`ok`, `pong`, `stats`, `reply`), or its error.
    ///
    /// If 1024 frames already wait for the socket, it first waits for room, so a
    /// caller faster than the socket is held to its pace instead of growing memory.
    pub async fn call(&self, frame: Value) -> Result<Value, ClientError> {
        self.call_as(self.next_id(), frame).await
    }

    /// [`Client::call`] with an id already taken from [`Client::next_id`], for a
    /// caller that routes by it first.
    pub(crate) async fn call_as(&self, id: u64, mut frame: Value) -> Result<Value, ClientError> {
        frame["id"] = json!(id);
        // Room first, then the route: a call dropped while it waits for room leaves
        // no answer registered for a frame that was never sent.
        let room = self.room().await?;
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.conn.routes.lock();
            if let Some(why) = &routes.closed {
                return Err(ClientError::Closed(why.clone()));
            }
            routes.pending.insert(id, tx);
        }
        room.send(frame.to_string());
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Closed("connection task ended".into())))
    }

    /// Sends raw text as one frame (for tests of what the broker does with odd input),
    /// waiting for room as [`Client::call`] does.
    pub async fn send_frame(&self, text: String) -> Result<(), ClientError> {
        self.room().await?.send(text);
        Ok(())
    }

    /// A place in the outbound queue, waited for while it is full.
    async fn room(&self) -> Result<mpsc::Permit<'_, String>, ClientError> {
        self.conn
            .out
            .reserve()
            .await
            .map_err(|_| ClientError::Closed("connection task ended".into()))
    }

    /// Asks the broker for a `pong`: the connection is alive and served.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(json!({"op": "ping"})).await.map(|_| ())
    }

    /// Closes the connection with a closing handshake, after every frame sent so far.
    /// Waits at most 2 s for it; the connection still closes once those frames are
    /// written.
    pub async fn close(&self) {
        // The empty frame asks the connection task to close, behind every frame queued
        // before it. With the queue full it waits for room in a task of its own: the
        // close must still happen after this call has given up waiting.
        if let Err(mpsc::error::TrySendError::Full(ask)) = self.conn.out.try_send(String::new()) {
            let out = self.conn.out.clone();
            tokio::spawn(async move {
                let _ = out.send(ask).await;
            });
        }
        let driver = self.conn.driver.lock().take();
        if let Some(driver) = driver {
            let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
        }
    }
}

/// Adds `extra`'s fields (an object; anything else adds nothing) to `frame`.
pub(crate) fn merge(frame: &mut Value, extra: Value) {
    if let (Some(f), Value::Object(extra)) = (frame.as_object_mut(), extra) {
        f.extend(extra);
    }
}
