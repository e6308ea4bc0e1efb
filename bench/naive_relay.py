#!/usr/bin/env python3
"""The naive relay, the benchmark's baseline: what a first prototype does.

Subscribes to every topic of every suite (pyzmq SUB with an empty filter) and
forwards every delta, unfiltered, to every websocket client (`websockets`). A client
that joins (sends its first message) gets a full snapshot of every suite, asked of
the suite itself. No store, no projection, no hashes checked.

    python3 bench/naive_relay.py --listen 127.0.0.1:PORT --suite NAME=PUB,REP ... --max-secs N
"""

import argparse
import asyncio
import json

import websockets
import zmq
import zmq.asyncio


class Suite:
    def __init__(self, ctx, name, pub, rep):
        self.name = name
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(pub)
        self.req = ctx.socket(zmq.REQ)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.connect(rep)
        self.lock = asyncio.Lock()

    async def snapshot(self):
        async with self.lock:
            await self.req.send(b'{"op":"snapshot"}')
            return json.loads(await self.req.recv())


async def forward(suite, clients):
    prefix = '{"type":"delta","workflow":%s,"topic":' % json.dumps(suite.name)
    while True:
        topic, body = await suite.sub.recv_multipart()
        if topic.startswith(b"_"):
            continue
        # '{"epoch":...}' becomes '{"type":"delta","workflow":..,"topic":..,"epoch":...}'.
        text = prefix + json.dumps(topic.decode()) + "," + body.decode()[1:]
        websockets.broadcast(clients, text)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:8090")
    parser.add_argument("--suite", action="append", default=[])
    parser.add_argument("--max-secs", type=float, default=120.0)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ctx = zmq.asyncio.Context()
    suites = []
    for flag in args.suite:
        name, endpoints = flag.split("=", 1)
        pub, rep = endpoints.split(",")[:2]
        suites.append(Suite(ctx, name, pub, rep))
    clients = set()

    async def handler(ws):
        try:
            await ws.recv()  # the subscribe message; its query is ignored
            for suite in suites:
                snap = await suite.snapshot()
                for topic, t in snap.get("topics", {}).items():
                    await ws.send(json.dumps({
                        "type": "snapshot", "workflow": suite.name, "topic": topic,
                        "epoch": snap.get("epoch"), "seq": t.get("seq"),
                        "hash": t.get("hash"), "value": t.get("value"),
                    }, separators=(",", ":")))
            clients.add(ws)
            await ws.wait_closed()
        except websockets.ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    forwarders = [asyncio.create_task(forward(s, clients)) for s in suites]
    async with websockets.serve(handler, host, int(port), max_size=None, compression=None):
        await asyncio.sleep(args.max_secs)
    for f in forwarders:
        f.cancel()
    ctx.destroy(linger=0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
