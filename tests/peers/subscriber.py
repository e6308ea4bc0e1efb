#!/usr/bin/env python3
"""An independent clonewire subscriber (docs/protocol.md, Suite link), for checking a suite.

Joins (subscribe, queue, hello, snapshot, drop stale deltas), applies every delta in
order and checks its hash; on a gap (in deltas or heartbeats), a hash mismatch or a
new epoch it takes a fresh snapshot. Runs for --seconds, prints a JSON summary and
exits 1 on any hash mismatch, or if no delta was verified.

    python3 subscriber.py tcp://127.0.0.1:5560 tcp://127.0.0.1:5561 --seconds 10
"""

import argparse
import json
import sys
import time

import zmq

from clonewire_model import Topic, self_test

REQUEST_TIMEOUT_MS = 3000


class Link:
    def __init__(self, ctx, rep):
        self.ctx, self.rep, self.sock = ctx, rep, None

    def request(self, message):
        """One request with a deadline; a timed-out socket is discarded (Lazy Pirate)."""
        for _ in range(5):
            if self.sock is None:
                self.sock = self.ctx.socket(zmq.REQ)
                self.sock.setsockopt(zmq.LINGER, 0)
                self.sock.connect(self.rep)
            self.sock.send(json.dumps(message).encode())
            if self.sock.poll(REQUEST_TIMEOUT_MS, zmq.POLLIN):
                reply = json.loads(self.sock.recv())
                if reply.get("error") == "busy":
                    time.sleep(reply.get("retry_ms", 200) / 1000.0)
                    continue
                return reply
            self.sock.close()
            self.sock = None
        raise RuntimeError("no answer to %r" % message)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sub")
    parser.add_argument("rep")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    self_test()

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(args.sub)
    link = Link(ctx, args.rep)

    stats = {"deltas": 0, "mismatches": 0, "gaps": 0, "snapshots": 0, "epochs": 0, "heartbeats": 0}
    topics, seqs = {}, {}
    state = {"epoch": None}

    def join():
        hello = link.request({"op": "hello"})
        for field in ("protocol", "name", "epoch", "heartbeat_ms", "schema", "topics"):
            if field not in hello:
                raise RuntimeError("hello lacks %r: %r" % (field, hello))
        assert hello["protocol"] == "clonewire/1", hello
        resnapshot(None)

    def resnapshot(names):
        request = {"op": "snapshot"}
        if names is not None:
            request["topics"] = names
        snap = link.request(request)
        stats["snapshots"] += 1
        if state["epoch"] != snap["epoch"]:
            state["epoch"] = snap["epoch"]
            stats["epochs"] += 1
            topics.clear()
            seqs.clear()
        for name, entry in snap["topics"].items():
            topic = Topic(name, entry["value"])
            if topic.hex() != entry["hash"]:
                stats["mismatches"] += 1
                print("snapshot of %s: hash %s, suite says %s" % (name, topic.hex(), entry["hash"]), file=sys.stderr)
            topics[name], seqs[name] = topic, entry["seq"]

    queued = []
    end = time.monotonic() + args.seconds
    joined = False
    while time.monotonic() < end:
        if not joined:
            join()
            joined = True
        if not sub.poll(100, zmq.POLLIN):
            continue
        frames = sub.recv_multipart()
        queued.append(frames)
        while sub.poll(0, zmq.POLLIN) and len(queued) < 10000:
            queued.append(sub.recv_multipart())
        for frames in queued:
            if len(frames) != 2:
                continue
            name, body = frames[0].decode(), json.loads(frames[1])
            if name == "_bye":
                continue
            if body.get("epoch") != state["epoch"]:
                joined = False  # a new epoch: join again
                break
            if name == "_hb":
                stats["heartbeats"] += 1
                behind = [t for t, s in body.get("seqs", {}).items() if s > seqs.get(t, 0)]
                if behind:
                    stats["gaps"] += 1
                    resnapshot(behind)
                continue
            if name.startswith("_"):
                continue
            have = seqs.get(name, 0)
            if body["seq"] <= have:
                continue
            if body["seq"] > have + 1:
                stats["gaps"] += 1
                resnapshot([name])
                if body["seq"] != seqs.get(name, 0) + 1:
                    continue
            topic = topics.setdefault(name, Topic(name))
            topic.apply(body["patch"])
            seqs[name] = body["seq"]
            if topic.hex() != body["hash"]:
                stats["mismatches"] += 1
                print("%s #%d: hash %s, suite says %s" % (name, body["seq"], topic.hex(), body["hash"]), file=sys.stderr)
                resnapshot([name])
            else:
                stats["deltas"] += 1
        queued = []

    print(json.dumps(stats))
    sys.exit(0 if stats["mismatches"] == 0 and stats["deltas"] > 0 else 1)


if __name__ == "__main__":
    main()
