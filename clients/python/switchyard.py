"""switchyard: a small asyncio client for the Switchyard broker (docs/PROTOCOL.md).

    client = await switchyard.connect("ws://127.0.0.1:7400/ws", name="worker")
    await client.sub("orders.>", lambda m: print(m["topic"], m["data"]))
    await client.pub("orders.eu", {"total": 5})

It reconnects with backoff and then subscribes and consumes again as before; every
frame the broker sends is split on newlines, since one frame may pack several.
Callbacks and handlers may be plain functions or coroutines; each subscription and
each consumer runs its own in order, in a task of its own, so a handler may await
calls on the same client.
"""

import asyncio
import itertools
import json
import random

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

__all__ = ["connect", "Client", "Job", "SwitchyardError"]

DEFAULT_TIMEOUT = 10.0
# A request's answer may take its whole timeout_ms; the broker then answers
# `timeout` itself, so the local timer waits a little longer.
REQUEST_GRACE = 2.0


class SwitchyardError(Exception):
    """An `error` frame from the broker (`code` is one of PROTOCOL.md's codes), or
    `disconnected` / `timeout` / `closed` from this client."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


async def connect(url, token=None, name=None, reconnect=True, timeout=DEFAULT_TIMEOUT,
                  min_delay=0.25, max_delay=10.0, on_state=None, on_error=None):
    """Opens a client; returns once the broker welcomed it and accepted its `hello`.

    `on_state(state)` is told "open", "reconnecting" and "closed"; `on_error(err)`
    gets errors no call waits for (default: printed)."""
    client = Client(url, token, name, reconnect, timeout, min_delay, max_delay,
                    on_state, on_error)
    await client._open()
    client._runner = asyncio.create_task(client._run())
    return client


def _compact(value):
    # Compact JSON never holds a raw newline, so frames can be packed safely.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class Job:
    """A job from a queue: `data`, `headers`, `msg`, `attempt`, `tag`, `queue`,
    `is_request`, and `ack()`, `nack(requeue=True)`, `reply(data)`."""

    def __init__(self, client, frame, generation):
        self._client = client
        self._generation = generation
        self.queue = frame.get("queue")
        self.tag = frame.get("tag")
        self.msg = frame.get("msg")
        self.attempt = frame.get("attempt")
        self.data = frame.get("data")
        self.headers = frame.get("headers")
        self.is_request = frame.get("reply") is True

    async def ack(self):
        await self._settle({"op": "ack"})

    async def nack(self, requeue=True):
        await self._settle({"op": "nack", "requeue": requeue})

    async def reply(self, data):
        await self._settle({"op": "reply", "data": data})

    async def _settle(self, frame):
        if self._generation != self._client._generation:
            # Its connection is gone: the broker has put the job back already.
            raise SwitchyardError("disconnected", "this job's connection closed; it is redelivered")
        frame["tag"] = self.tag
        await self._client._send(frame)


class _Worker:
    """Runs one subscription's or consumer's callback on each delivery, in order."""

    def __init__(self, client, fn):
        self.fn = fn
        self.inbox = asyncio.Queue()
        self.task = asyncio.create_task(self._run(client))

    async def _run(self, client):
        while True:
            item = await self.inbox.get()
            try:
                result = self.fn(item)
                if asyncio.iscoroutine(result):
                    await result
            except Exception as e:  # a callback's failure must not stop the others
                client._report(e)


class Client:
    """A connection to the broker that comes back after it is lost; see `connect`."""

    def __init__(self, url, token, name, reconnect, timeout, min_delay, max_delay,
                 on_state, on_error):
        self.url = url
        self.token = token
        self.name = name
        self.reconnect = reconnect
        self.timeout = timeout
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.on_state = on_state or (lambda state: None)
        self.on_error = on_error or (lambda e: print(f"switchyard: {e}"))
        self.welcome = None
        self.user = None
        #: Frames and messages received, and frames that held several.
        self.received = {"frames": 0, "messages": 0, "packed": 0}
        self._ws = None
        self._generation = 0
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._calls = {}  # id -> future
        self._subs = {}  # sid -> dict(pattern, filter, from, last_seq, active, worker)
        self._consumers = {}  # cid -> dict(queue, prefetch, active, worker)
        self._connected = asyncio.Event()
        self._closed = False
        self._runner = None

    # --- verbs ---

    async def pub(self, topic, data, headers=None):
        """Publishes `data` to `topic`; returns its `seq`."""
        ok = await self._call({"op": "pub", "topic": topic, "data": data, "headers": headers})
        return ok.get("seq")

    async def sub(self, pattern, callback, filter=None, from_=None):
        """Subscribes `callback(msg)` (msg: the `msg` frame as a dict) to `pattern`;
        returns the sid. `from_` (retained topics: "first", {"seq": n}, {"time": t})
        resumes after the last seq received when the client reconnects."""
        sid = f"s{next(self._names)}"
        # Registered before its `ok`: deliveries may follow it in the same frame.
        self._subs[sid] = {"pattern": pattern, "filter": filter, "from": from_,
                           "last_seq": None, "active": False,
                           "worker": _Worker(self, callback)}
        try:
            await self._call(self._sub_frame(sid))
        except BaseException:
            self._drop_sub(sid)
            raise
        self._subs[sid]["active"] = True
        return sid

    async def unsub(self, sid):
        self._drop_sub(sid)
        await self._call({"op": "unsub", "sid": sid})

    async def declare(self, queue, **options):
        """Creates `queue` or updates its options (`durable`, `max_len`,
        `ack_timeout_ms`, `max_attempts`, `dead_letter`)."""
        await self._call({"op": "declare", "queue": queue, **options})

    async def consume(self, queue, handler, prefetch=None):
        """Consumes `queue`: `handler(job)` for each `Job`, which it must ack or
        nack. Jobs are handled one after another; returns the cid."""
        cid = f"w{next(self._names)}"
        self._consumers[cid] = {"queue": queue, "prefetch": prefetch, "active": False,
                                "worker": _Worker(self, handler)}
        try:
            await self._call({"op": "consume", "queue": queue, "cid": cid, "prefetch": prefetch})
        except BaseException:
            self._drop_consumer(cid)
            raise
        self._consumers[cid]["active"] = True
        return cid

    async def cancel(self, cid):
        self._drop_consumer(cid)
        await self._call({"op": "cancel", "cid": cid})

    async def send(self, queue, data, confirm=None, headers=None, ttl=None):
        """Sends `data` to `queue`; returns the `ok` frame (`msg`, and `data` when
        `confirm="done"` and the job was answered with `reply`). `ttl`: seconds it
        may wait for a consumer before it is dead-lettered or dropped."""
        wait = None if confirm == "done" else self.timeout
        ttl_ms = None if ttl is None else max(1, int(ttl * 1000))
        return await self._call({"op": "send", "queue": queue, "data": data,
                                 "headers": headers, "confirm": confirm,
                                 "ttl_ms": ttl_ms}, wait)

    async def request(self, queue, data, timeout=30.0, headers=None):
        """Sends a request; returns the `reply`'s data (None if acked without one)."""
        answer = await self._call({"op": "request", "queue": queue, "data": data,
                                   "headers": headers, "timeout_ms": int(timeout * 1000)},
                                  timeout + REQUEST_GRACE)
        return answer.get("data")

    async def reply(self, queue, fn, prefetch=None):
        """Answers requests on `queue` with `fn(data, job)` (plain or coroutine). A
        raise rejects the job without requeue: the requester gets `dead`, not a
        retry loop."""

        async def handle(job):
            try:
                answer = fn(job.data, job)
                if asyncio.iscoroutine(answer):
                    answer = await answer
            except Exception as e:
                self._report(e)
                await job.nack(requeue=False)
                return
            await job.reply(answer)

        return await self.consume(queue, handle, prefetch)

    async def close(self):
        """Closes for good: no reconnect; calls waiting get `closed`."""
        self._closed = True
        self._fail_calls("closed", "the client was closed")
        self._connected.set()  # wakes calls waiting for a reconnect, to fail them
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
        for entry in list(self._subs.values()) + list(self._consumers.values()):
            entry["worker"].task.cancel()
        self.on_state("closed")

    # --- the connection ---

    async def _open(self):
        """One socket, its `welcome`, the `hello`, then what this client holds."""
        ws = await ws_connect(self.url, max_size=None, compression=None)
        self._generation += 1
        self._ws = ws
        self._welcome_seen = asyncio.Event()
        self._reader = asyncio.create_task(self._read(ws, self._generation))
        try:
            await asyncio.wait_for(self._welcome_seen.wait(), self.timeout)
            hello = await self._send({"op": "hello", "name": self.name, "token": self.token})
            self.user = hello.get("user")
            again = [self._send(self._sub_frame(sid, resume=True))
                     for sid, s in self._subs.items() if s["active"]]
            again += [self._send({"op": "consume", "queue": c["queue"], "cid": cid,
                                  "prefetch": c["prefetch"]})
                      for cid, c in self._consumers.items() if c["active"]]
            # One refused (a permission taken away meanwhile) is reported; the rest stand.
            for r in await asyncio.gather(*again, return_exceptions=True):
                if isinstance(r, Exception):
                    self._report(r)
        except BaseException:
            await ws.close()
            raise
        self._connected.set()
        self.on_state("open")

    async def _run(self):
        """Waits for the connection to drop, then opens it again with backoff."""
        attempt = 0
        while not self._closed:
            await self._reader
            self._connected.clear()
            self._fail_calls("disconnected", "the connection closed before the answer came")
            if self._closed or not self.reconnect:
                break
            self.on_state("reconnecting")
            while not self._closed:
                base = min(self.max_delay, self.min_delay * 2 ** attempt)
                attempt += 1
                # Jitter, so clients that lost the same broker do not come back in step.
                await asyncio.sleep(base / 2 + random.random() * base / 2)
                try:
                    await self._open()
                    attempt = 0
                    break
                except SwitchyardError as e:
                    if e.code in ("unauthorized", "forbidden"):
                        # A refused token will not get better by trying again.
                        self._report(e)
                        await self.close()
                        return
                except (OSError, ConnectionClosed, asyncio.TimeoutError):
                    pass

    async def _read(self, ws, generation):
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    self._frame(frame, generation)
        except ConnectionClosed:
            pass

    def _frame(self, text, generation):
        lines = text.split("\n")
        self.received["frames"] += 1
        if len(lines) > 1:
            self.received["packed"] += 1
        for line in lines:
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError as e:
                self._report(SwitchyardError("bad_frame", f"cannot parse a broker line: {e}"))
                continue
            self.received["messages"] += 1
            self._event(event, generation)

    def _event(self, e, generation):
        ev = e.get("ev")
        if ev == "welcome":
            self.welcome = e
            if generation == self._generation:
                self._welcome_seen.set()
        elif ev == "msg":
            sub = self._subs.get(e.get("sid"))
            if sub is not None:
                sub["last_seq"] = e.get("seq")
                sub["worker"].inbox.put_nowait(e)
        elif ev == "job":
            consumer = self._consumers.get(e.get("cid"))
            if consumer is not None:
                consumer["worker"].inbox.put_nowait(Job(self, e, generation))
        elif ev == "end":
            self._drop_sub(e.get("sid"))
        elif ev == "cancelled":
            self._drop_consumer(e.get("cid"))
        elif ev in ("ok", "reply", "pong", "error"):
            call = self._calls.pop(e.get("id"), None) if e.get("id") is not None else None
            if call is None or call.done():
                if ev == "error":
                    self._report(SwitchyardError(e.get("code"), e.get("message")))
            elif ev == "error":
                call.set_exception(SwitchyardError(e.get("code"), e.get("message")))
            else:
                call.set_result(e)
        elif ev == "kicked":
            self._report(SwitchyardError("kicked", e.get("reason", "")))
        # Events this client does not know are ignored (forward compatibility).

    async def _call(self, frame, timeout=DEFAULT_TIMEOUT):
        """A call once connected: while reconnecting it waits, up to the client's
        timeout, for the connection to come back."""
        if self._closed:
            raise SwitchyardError("closed", "the client was closed")
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), self.timeout)
            except asyncio.TimeoutError:
                raise SwitchyardError("disconnected", f"not connected within {self.timeout} s") from None
            if self._closed:
                raise SwitchyardError("closed", "the client was closed")
        return await self._send(frame, timeout)

    async def _send(self, frame, timeout=DEFAULT_TIMEOUT):
        """Sends `frame` with a fresh id now; returns its answer (`timeout` in
        seconds, None for none)."""
        id_ = next(self._ids)
        wire = {k: v for k, v in frame.items() if v is not None}
        wire["id"] = id_
        if "data" in frame:
            wire["data"] = frame["data"]  # `null` data is data
        future = asyncio.get_running_loop().create_future()
        self._calls[id_] = future
        try:
            await self._ws.send(_compact(wire))
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise SwitchyardError("timeout", f"no answer to {frame['op']} in {timeout} s") from None
        except ConnectionClosed:
            raise SwitchyardError("disconnected", "not connected") from None
        finally:
            self._calls.pop(id_, None)

    def _sub_frame(self, sid, resume=False):
        s = self._subs[sid]
        start = s["from"]
        if resume and start is not None and s["last_seq"] is not None:
            start = {"seq": s["last_seq"] + 1}
        return {"op": "sub", "topic": s["pattern"], "sid": sid, "filter": s["filter"], "from": start}

    def _drop_sub(self, sid):
        sub = self._subs.pop(sid, None)
        if sub is not None:
            sub["worker"].task.cancel()

    def _drop_consumer(self, cid):
        consumer = self._consumers.pop(cid, None)
        if consumer is not None:
            consumer["worker"].task.cancel()

    def _fail_calls(self, code, message):
        for future in self._calls.values():
            if not future.done():
                future.set_exception(SwitchyardError(code, message))
        self._calls.clear()

    def _report(self, e):
        try:
            self.on_error(e)
        except Exception:
            pass
