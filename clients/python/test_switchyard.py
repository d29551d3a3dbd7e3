"""Tests of the Python client against the real broker binary: pub/sub with a packed
frame, a filter, consume with ack and nack, request/reply, and a reconnect across a
broker restart. The binary is $SWITCHYARD_BIN (default: ../../target/debug/switchyard);
`cargo test --test python_client` runs these with the binary it built.

    python3 -m unittest -v test_switchyard
"""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from websockets.asyncio.client import connect as ws_connect

import switchyard

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("SWITCHYARD_BIN",
                     os.path.join(HERE, "..", "..", "target", "debug", "switchyard"))
WAIT = 8.0


class Broker:
    """`switchyard serve` on a free loopback port (or a given one), in a temp dir."""

    def __init__(self, data_dir, listen="127.0.0.1:0"):
        self.process = subprocess.Popen(
            [BIN, "serve", "--listen", listen, "--data-dir", data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        line = self.process.stdout.readline().strip()
        prefix = "switchyard listening on "
        if not line.startswith(prefix):
            self.process.kill()
            raise RuntimeError(f"unexpected first line from {BIN}: {line!r}")
        self.url = line[len(prefix):]
        self.listen = self.url.removeprefix("ws://").removesuffix("/ws")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


async def until(what, cond):
    deadline = asyncio.get_running_loop().time() + WAIT
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class ClientTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        if not os.path.exists(BIN):
            self.fail(f"no broker binary at {BIN}: run `cargo build` or set SWITCHYARD_BIN")
        self.dir = tempfile.mkdtemp(prefix="switchyard-py-")
        self.broker = Broker(self.dir)

    def tearDown(self):
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def test_a_burst_packed_into_one_frame_arrives_whole_and_in_order(self):
        client = await switchyard.connect(self.broker.url, name="py test")
        got = []
        await client.sub("py.burst", lambda m: got.append((m["seq"], m["data"])))
        before = dict(client.received)
        # A raw publisher packs five pubs into one frame; the broker packs the five
        # deliveries into one frame too.
        async with ws_connect(self.broker.url) as raw:
            await raw.recv()  # welcome
            await raw.send("\n".join(json.dumps({"op": "pub", "topic": "py.burst", "data": n})
                                     for n in range(5)))
            await until("five messages", lambda: len(got) >= 5)
        self.assertEqual(got, [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)])
        self.assertEqual(client.received["frames"] - before["frames"], 1)
        self.assertEqual(client.received["messages"] - before["messages"], 5)
        await client.close()

    async def test_a_filter_on_a_header_lets_only_matching_messages_through(self):
        client = await switchyard.connect(self.broker.url)
        got = []
        await client.sub("py.h.*", lambda m: got.append((m["topic"], m["data"], m["headers"])),
                         filter="region = 'eu'")
        seqs = [await client.pub("py.h.one", 1, headers={"region": "uk"}),
                await client.pub("py.h.two", 2, headers={"region": "eu"})]
        await until("the eu message", lambda: got)
        self.assertEqual(got, [("py.h.two", 2, {"region": "eu"})])
        self.assertEqual(seqs, [1, 1])
        await client.close()

    async def test_a_nacked_job_comes_back_with_its_attempt_counted(self):
        client = await switchyard.connect(self.broker.url)
        jobs = []

        async def handle(job):
            jobs.append((job.data, job.attempt))
            if job.data == "again" and job.attempt == 1:
                await job.nack()
            else:
                await job.ack()

        await client.consume("py.jobs", handle)
        once = await client.send("py.jobs", "once", confirm="done")
        again = await client.send("py.jobs", "again", confirm="done")
        self.assertEqual(jobs, [("once", 1), ("again", 1), ("again", 2)])
        self.assertEqual((once["msg"], again["msg"]), ("1", "2"))
        await client.close()

    async def test_a_job_nobody_takes_in_its_ttl_is_dead_lettered_as_expired(self):
        client = await switchyard.connect(self.broker.url)
        await client.declare("py.mail", dead_letter="py.mail.dead")
        await client.send("py.mail", "hi", ttl=0.2)
        dead = []

        async def handle(job):
            dead.append((job.data, job.headers.get("x-dead-letter-reason")))
            await job.ack()

        await client.consume("py.mail.dead", handle)
        await until("the expired job", lambda: dead)
        self.assertEqual(dead, [("hi", "expired")])
        await client.close()

    async def test_request_reply_and_a_request_nobody_answers(self):
        client = await switchyard.connect(self.broker.url)
        await client.reply("py.rpc", lambda d, job: {"sum": d["a"] + d["b"]})
        self.assertEqual(await client.request("py.rpc", {"a": 2, "b": 3}, timeout=5), {"sum": 5})
        with self.assertRaises(switchyard.SwitchyardError) as caught:
            await client.request("py.nobody", 1, timeout=0.3)
        self.assertEqual(caught.exception.code, "timeout")
        # A reply function that raises: the requester is told `dead`, not left waiting.
        await client.reply("py.broken", lambda d, job: 1 / 0)
        with self.assertRaises(switchyard.SwitchyardError) as caught:
            await client.request("py.broken", 1, timeout=5)
        self.assertEqual(caught.exception.code, "dead")
        await client.close()

    async def test_the_client_reconnects_and_subscribes_and_consumes_again(self):
        states = []
        client = await switchyard.connect(
            self.broker.url, max_delay=0.5,
            on_state=lambda s: states[-1:] != [s] and states.append(s),
            on_error=lambda e: None)
        after, later = [], []
        await client.sub("py.after", lambda m: after.append(m["data"]))

        async def handle(job):
            later.append((job.data, job.attempt))
            await job.ack()

        await client.consume("py.later", handle)
        url = self.broker.url
        self.broker.stop()
        await until("the client to notice", lambda: states[-1] == "reconnecting")
        # Made while the broker is down: it goes out once the client is back.
        pending = asyncio.create_task(client.pub("py.after", "while down"))
        self.broker = Broker(self.dir, listen=self.broker.listen)
        self.assertEqual(self.broker.url, url)
        await until("the client to reconnect", lambda: states[-1] == "open")
        self.assertEqual(states, ["open", "reconnecting", "open"])
        await pending
        async with ws_connect(url) as raw:
            await raw.recv()  # welcome
            await raw.send(json.dumps({"op": "pub", "topic": "py.after", "data": "back"}))
            await raw.send(json.dumps({"op": "send", "id": 1, "queue": "py.later", "data": "later"}))
            self.assertEqual(json.loads(await raw.recv()), {"ev": "ok", "id": 1, "msg": "1"})
        await until("the message and the job", lambda: len(after) >= 2 and later)
        self.assertEqual(after, ["while down", "back"])
        self.assertEqual(later, [("later", 1)])
        await client.close()


if __name__ == "__main__":
    unittest.main()
