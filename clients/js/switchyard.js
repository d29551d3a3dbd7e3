// switchyard.js: a dependency-free client for the Switchyard broker (docs/PROTOCOL.md),
// as one ES module for browsers (and Node with a global WebSocket).
//
//   import { connect } from "./switchyard.js";
//   const sy = await connect({ url: "ws://127.0.0.1:7400/ws", name: "page" });
//   await sy.sub("orders.>", (m) => console.log(m.topic, m.data));
//   await sy.pub("orders.eu", { total: 5 });
//
// It reconnects with backoff and then subscribes and consumes again as before;
// every frame the broker sends is split on "\n", since one frame may pack several.

/** An `error` frame from the broker (`code` is one of PROTOCOL.md's error codes),
 * or `disconnected` / `timeout` / `closed` from this client. */
export class SwitchyardError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "SwitchyardError";
    this.code = code;
  }
}

const DEFAULT_TIMEOUT_MS = 10000;
// A request's answer may take as long as its timeout_ms; the broker then answers
// `timeout` itself, so the local timer waits a little longer than that.
const REQUEST_GRACE_MS = 2000;

/** Opens a client; resolves once the broker welcomed it and accepted its `hello`.
 *
 * Options: `url` (ws:// or wss://, default: /ws of the page's own host), `token`,
 * `name`, `reconnect` (default true), `minDelay`/`maxDelay` (backoff, ms),
 * `timeout` (ms a call waits for its answer, default 10000), `onstate(state)`
 * ("open", "reconnecting", "closed"), `onerror(err)` (errors no call waits for). */
export async function connect(options = {}) {
  const client = new Client(options);
  await client._open();
  return client;
}

class Client {
  constructor(o) {
    this.url = o.url ?? defaultUrl();
    this.token = o.token;
    this.name = o.name;
    this.reconnect = o.reconnect ?? true;
    this.minDelay = o.minDelay ?? 250;
    this.maxDelay = o.maxDelay ?? 10000;
    this.timeout = o.timeout ?? DEFAULT_TIMEOUT_MS;
    this.onstate = o.onstate ?? (() => {});
    this.onerror = o.onerror ?? ((e) => console.warn("switchyard:", e.message));
    /** What the broker said in its last `welcome` (`client`, `server`, `max_payload`). */
    this.welcome = null;
    /** Counters: frames and messages received, and frames that held several. */
    this.received = { frames: 0, messages: 0, packed: 0 };
    this._ws = null;
    this._generation = 0; // one per connection, so a job knows if its socket is gone
    this._nextId = 1;
    this._nextName = 1;
    this._calls = new Map(); // id -> {resolve, reject, timer}
    this._subs = new Map(); // sid -> {pattern, callback, opts, lastSeq}
    this._consumers = new Map(); // cid -> {queue, handler, opts}
    this._closed = false;
    this._open_ = false; // connected and hello'd
    this._waiters = new Set(); // calls waiting for the connection to come back
    this._attempt = 0;
  }

  /** Publishes `data` to `topic`; resolves with `{seq}`. */
  pub(topic, data, { headers } = {}) {
    return this._call({ op: "pub", topic, data, headers }).then((ok) => ({ seq: ok.seq }));
  }

  /** Subscribes `callback(msg)` to `pattern` (`*` one token, final `>` the rest).
   * `msg` is `{topic, seq, time, data, headers, sid}`. Options: `filter`, `from`
   * (retained topics: "first", {seq}, {time}), `onend()` (sealed or deleted).
   * Resolves with `{sid, unsub()}`. After a reconnect a subscription with `from`
   * resumes after the last seq it got, so it misses and repeats nothing. */
  async sub(pattern, callback, { filter, from, onend } = {}) {
    const sid = `s${this._nextName++}`;
    // Registered before its `ok`: deliveries may follow it in the same frame.
    // `active` once the broker has it, so a reconnect meanwhile does not send it twice.
    const sub = { pattern, callback, filter, from, onend, lastSeq: null, active: false };
    this._subs.set(sid, sub);
    try {
      await this._call(subFrame(sid, sub));
      sub.active = true;
    } catch (e) {
      this._subs.delete(sid);
      throw e;
    }
    return {
      sid,
      unsub: () => {
        this._subs.delete(sid);
        return this._call({ op: "unsub", sid });
      },
    };
  }

  /** Consumes `queue`: `handler(job)` for each job, where `job` has `data`,
   * `headers`, `msg`, `attempt`, `tag`, and `ack()`, `nack({requeue})`,
   * `reply(data)` (each a promise of the broker's `ok`). Options: `prefetch`
   * (default 1), `oncancel()` (the queue was deleted). Resolves with
   * `{cid, cancel()}`. */
  async consume(queue, handler, { prefetch, oncancel } = {}) {
    const cid = `w${this._nextName++}`;
    const consumer = { queue, handler, prefetch, oncancel, active: false };
    this._consumers.set(cid, consumer);
    try {
      await this._call({ op: "consume", queue, cid, prefetch });
      consumer.active = true;
    } catch (e) {
      this._consumers.delete(cid);
      throw e;
    }
    return {
      cid,
      cancel: () => {
        this._consumers.delete(cid);
        return this._call({ op: "cancel", cid });
      },
    };
  }

  /** Creates `queue` or updates its options (`durable`, `max_len`,
   * `ack_timeout_ms`, `max_attempts`, `dead_letter`). */
  declare(queue, options = {}) {
    return this._call({ ...options, op: "declare", queue }).then(() => undefined);
  }

  /** Sends `data` to `queue`. `confirm`: "stored" (default: resolves when it is in
   * the queue, on disk if durable) or "done" (when a consumer acked it; `data`
   * holds a `reply`'s answer). `ttlMs`: how long it may wait for a consumer.
   * Resolves with `{msg, data}`. */
  send(queue, data, { confirm, headers, ttlMs } = {}) {
    const wait = confirm === "done" ? null : undefined;
    const frame = { op: "send", queue, data, headers, confirm, ttl_ms: ttlMs };
    return this._call(frame, wait).then((ok) => ({
      msg: ok.msg,
      data: ok.data,
    }));
  }

  /** Sends `data` to `queue` as a request; resolves with the `reply`'s data
   * (`null` if the job was acked without one). `timeout` in ms, default 30000. */
  request(queue, data, { timeout = 30000, headers } = {}) {
    return this._call(
      { op: "request", queue, data, headers, timeout_ms: timeout },
      timeout + REQUEST_GRACE_MS,
    ).then((r) => r.data);
  }

  /** Answers requests on `queue` with `await fn(data, job)`. A throw rejects the
   * job (`nack` without requeue: the requester gets `dead`, not a retry loop). */
  reply(queue, fn, { prefetch } = {}) {
    return this.consume(
      queue,
      async (job) => {
        let answer;
        try {
          answer = await fn(job.data, job);
        } catch (e) {
          this.onerror(e);
          return job.nack({ requeue: false }).catch(() => {});
        }
        return job.reply(answer).catch((e) => this.onerror(e));
      },
      { prefetch },
    );
  }

  /** Closes the connection for good: no reconnect; calls waiting get `closed`. */
  close() {
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._failCalls("closed", "the client was closed");
    for (const wake of this._waiters) wake();
    this._waiters.clear();
    if (this._ws) this._ws.close(1000);
    this.onstate("closed");
  }

  // --- the connection ---

  /** Opens one socket and says hello; rejects if either fails. */
  _open() {
    const generation = ++this._generation;
    const url = this.url;
    let opened;
    const ready = new Promise((resolve, reject) => (opened = { resolve, reject }));
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      return Promise.reject(new SwitchyardError("disconnected", `cannot open ${url}: ${e.message}`));
    }
    this._ws = ws;
    let welcomed = false;
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      this._frame(event.data, generation, () => {
        if (welcomed) return;
        welcomed = true;
        this._hello().then(
          () => {
            this._attempt = 0;
            this._open_ = true;
            this._everOpened = true;
            opened.resolve();
            for (const wake of this._waiters) wake();
            this._waiters.clear();
            this.onstate("open");
          },
          (e) => {
            opened.reject(e);
            ws.close(1000);
          },
        );
      });
    };
    ws.onclose = () => {
      if (generation !== this._generation) return;
      this._open_ = false;
      opened.reject(new SwitchyardError("disconnected", `connection to ${url} closed`));
      this._failCalls("disconnected", "the connection closed before the answer came");
      if (!this._closed && this.reconnect && this._everOpened) this._scheduleReconnect();
    };
    return ready;
  }

  /** hello, then every subscription and consumer this client holds. */
  async _hello() {
    const hello = await this._send({ op: "hello", name: this.name, token: this.token });
    this.user = hello.user ?? null;
    const again = [];
    for (const [sid, sub] of this._subs) {
      if (!sub.active) continue;
      const from = sub.from !== undefined && sub.lastSeq !== null ? { seq: sub.lastSeq + 1 } : sub.from;
      again.push(this._send(subFrame(sid, { ...sub, from })));
    }
    for (const [cid, c] of this._consumers) {
      if (!c.active) continue;
      again.push(this._send({ op: "consume", queue: c.queue, cid, prefetch: c.prefetch }));
    }
    // One refused (a permission taken away meanwhile) is reported; the rest stand.
    for (const r of await Promise.allSettled(again)) {
      if (r.status === "rejected") this.onerror(r.reason);
    }
  }

  _scheduleReconnect() {
    this.onstate("reconnecting");
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** this._attempt);
    this._attempt++;
    // Jitter, so clients that lost the same broker do not come back in step.
    const delay = base / 2 + (Math.random() * base) / 2;
    this._retryTimer = setTimeout(() => {
      if (this._closed) return;
      this._open().catch((e) => {
        // An `unauthorized` hello will not get better by trying again.
        if (e.code === "unauthorized" || e.code === "forbidden") {
          this.onerror(e);
          this.close();
        }
        // Otherwise the socket's close schedules the next attempt.
      });
    }, delay);
  }

  /** One incoming text frame: one JSON object per line. */
  _frame(text, generation, onWelcome) {
    const lines = text.split("\n");
    this.received.frames++;
    if (lines.length > 1) this.received.packed++;
    for (const line of lines) {
      if (line === "") continue;
      let ev;
      try {
        ev = JSON.parse(line);
      } catch (e) {
        this.onerror(new SwitchyardError("bad_frame", `cannot parse a broker line: ${e.message}`));
        continue;
      }
      this.received.messages++;
      this._event(ev, generation, onWelcome);
    }
  }

  _event(ev, generation, onWelcome) {
    switch (ev.ev) {
      case "welcome":
        this.welcome = ev;
        return onWelcome();
      case "msg": {
        const sub = this._subs.get(ev.sid);
        if (!sub) return;
        sub.lastSeq = ev.seq;
        return guard(this, () => sub.callback(ev));
      }
      case "job": {
        const consumer = this._consumers.get(ev.cid);
        if (!consumer) return;
        return guard(this, () => consumer.handler(this._job(ev, generation)));
      }
      case "end": {
        const sub = this._subs.get(ev.sid);
        this._subs.delete(ev.sid);
        if (sub?.onend) guard(this, () => sub.onend(ev));
        return;
      }
      case "cancelled": {
        const consumer = this._consumers.get(ev.cid);
        this._consumers.delete(ev.cid);
        if (consumer?.oncancel) guard(this, () => consumer.oncancel(ev));
        return;
      }
      case "ok":
      case "reply":
      case "pong":
      case "error": {
        const call = ev.id == null ? undefined : this._calls.get(ev.id);
        if (!call) {
          if (ev.ev === "error") this.onerror(new SwitchyardError(ev.code, ev.message));
          return;
        }
        this._calls.delete(ev.id);
        clearTimeout(call.timer);
        if (ev.ev === "error") call.reject(new SwitchyardError(ev.code, ev.message));
        else call.resolve(ev);
        return;
      }
      case "kicked":
        this.onerror(new SwitchyardError("kicked", ev.reason ?? ""));
        return;
      default:
        return; // events this client does not know (forward compatibility)
    }
  }

  _job(ev, generation) {
    const settle = (frame) => {
      if (generation !== this._generation) {
        // Its connection is gone: the broker has put the job back already.
        return Promise.reject(
          new SwitchyardError("disconnected", "this job's connection closed; it is redelivered"),
        );
      }
      return this._send({ ...frame, tag: ev.tag });
    };
    return {
      queue: ev.queue,
      tag: ev.tag,
      msg: ev.msg,
      attempt: ev.attempt,
      data: ev.data,
      headers: ev.headers,
      isRequest: ev.reply === true,
      ack: () => settle({ op: "ack" }),
      nack: ({ requeue } = {}) => settle({ op: "nack", requeue }),
      reply: (data) => settle({ op: "reply", data }),
    };
  }

  /** A call once connected: while reconnecting it waits, up to the client's
   * `timeout`, for the connection to come back. */
  async _call(frame, timeout) {
    if (this._closed) throw new SwitchyardError("closed", "the client was closed");
    if (!this._open_) {
      let wake;
      const back = new Promise((resolve) => (wake = resolve));
      this._waiters.add(wake);
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => {
          this._waiters.delete(wake);
          reject(new SwitchyardError("disconnected", `not connected within ${this.timeout} ms`));
        }, this.timeout);
      });
      try {
        await Promise.race([back, late]);
      } finally {
        clearTimeout(timer);
      }
      if (this._closed) throw new SwitchyardError("closed", "the client was closed");
    }
    return this._send(frame, timeout);
  }

  /** Sends `frame` with a fresh id now; resolves with its answer. `timeout`:
   * ms, `null` for none, `undefined` for the client's default. */
  _send(frame, timeout) {
    const id = this._nextId++;
    const wire = { ...frame, id };
    for (const k of Object.keys(wire)) if (wire[k] === undefined) delete wire[k];
    return new Promise((resolve, reject) => {
      const ws = this._ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new SwitchyardError("disconnected", "not connected"));
        return;
      }
      const ms = timeout === undefined ? this.timeout : timeout;
      const timer =
        ms === null
          ? undefined
          : setTimeout(() => {
              this._calls.delete(id);
              reject(new SwitchyardError("timeout", `no answer to ${frame.op} in ${ms} ms`));
            }, ms);
      this._calls.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify(wire));
    });
  }

  _failCalls(code, message) {
    for (const [, call] of this._calls) {
      clearTimeout(call.timer);
      call.reject(new SwitchyardError(code, message));
    }
    this._calls.clear();
  }
}

function subFrame(sid, { pattern, filter, from }) {
  return { op: "sub", topic: pattern, sid, filter, from };
}

/** A callback's throw (or rejected promise) is reported, never lost in the reader. */
function guard(client, fn) {
  try {
    const r = fn();
    if (r && typeof r.catch === "function") r.catch((e) => client.onerror(e));
  } catch (e) {
    client.onerror(e);
  }
}

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error("connect: give `url` (there is no page location to start from)");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}
