"""An example worker: answers requests on `jobs.add` with the sum of `a` and `b`,
and prints (then acks) every job sent to `jobs.log`. Runs until interrupted,
reconnecting if the broker goes away.

    python3 example_worker.py [ws://127.0.0.1:7400/ws]
    switchyard request jobs.add '{"a":2,"b":3}'
"""

import asyncio
import sys

import switchyard


async def main(url):
    client = await switchyard.connect(url, name="example worker",
                                      on_state=lambda s: print(f"[{s}]", file=sys.stderr))
    await client.reply("jobs.add", lambda data, job: {"sum": data["a"] + data["b"]})

    async def log(job):
        print(f"job {job.msg} (attempt {job.attempt}): {job.data}")
        await job.ack()

    await client.consume("jobs.log", log, prefetch=10)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:7400/ws"))
    except KeyboardInterrupt:
        pass
