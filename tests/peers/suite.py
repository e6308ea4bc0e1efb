#!/usr/bin/env python3
"""An independent clonewire suite (docs/protocol.md, Suite link), for checking subscribers.

Binds a PUB and a REP socket, prints {"pub": ..., "rep": ...} on one line, then
publishes a small changing workflow: per-topic deltas with epoch, seq, hash and time,
heartbeats every --heartbeat-ms, and _bye at the end. Answers hello, snapshot and
verify; replay, hashes and get are `unsupported`. --drop-every K applies every Kth
delta without sending it, so subscribers must repair.

    python3 suite.py --seconds 10 --rate 100 --drop-every 20
"""

import argparse
import json
import random
import sys
import time

import zmq

from clonewire_model import Topic, self_test

STATUSES = ["waiting", "preparing", "submitted", "running", "succeeded", "failed"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pub", default="tcp://127.0.0.1:*")
    parser.add_argument("--rep", default="tcp://127.0.0.1:*")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--heartbeat-ms", type=int, default=200)
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    self_test()
    rng = random.Random(args.seed)

    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(args.pub)
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(args.rep)
    print(json.dumps({
        "pub": pub.getsockopt(zmq.LAST_ENDPOINT).decode(),
        "rep": rep.getsockopt(zmq.LAST_ENDPOINT).decode(),
    }), flush=True)

    epoch = "py-%d" % int(time.time() * 1000)
    topics, seqs = {}, {}
    published = [0]

    def publish(name, patch):
        topic = topics.setdefault(name, Topic(name))
        before = topic.hash
        topic.apply(patch)
        if topic.hash == before and seqs.get(name):
            return  # nothing changed (good enough for this workload)
        seqs[name] = seqs.get(name, 0) + 1
        published[0] += 1
        if args.drop_every and published[0] % args.drop_every == 0:
            return
        body = {"epoch": epoch, "seq": seqs[name], "hash": topic.hex(), "time": time.time() * 1000.0,
                "patch": patch}
        pub.send_multipart([name.encode(), json.dumps(body).encode()])

    def answer(raw):
        try:
            request = json.loads(raw)
        except ValueError as e:
            return {"error": "bad_request", "message": "not JSON: %s" % e}
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"error": "bad_request", "message": "a request is an object with an op"}
        op = request["op"]
        wanted = request.get("topics") or sorted(seqs)
        if op == "hello":
            return {"protocol": "clonewire/1", "name": "python-suite", "epoch": epoch,
                    "heartbeat_ms": args.heartbeat_ms, "schema": {"collections": [["taskProxies"]]},
                    "topics": {t: {"seq": seqs[t], "hash": topics[t].hex()} for t in seqs}}
        if op in ("snapshot", "verify"):
            out = {}
            for t in wanted:
                topic = topics.get(t, Topic(t))
                out[t] = {"seq": seqs.get(t, 0), "hash": topic.hex()}
                if op == "snapshot":
                    out[t]["value"] = topic.root
            return {"epoch": epoch, "topics": out}
        return {"error": "unsupported", "message": "this suite answers hello, snapshot and verify"}

    tasks = ["1/t%02d" % i for i in range(20)]
    publish("workflow", {"name": "python-suite", "status": "running"})
    publish("taskProxies", {t: {"name": t[2:], "status": "waiting", "flowNums": [1]} for t in tasks})

    end = time.monotonic() + args.seconds
    next_delta = next_hb = time.monotonic()
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    while time.monotonic() < end:
        now = time.monotonic()
        wait = max(0.0, min(next_delta, next_hb, end) - now)
        if dict(poller.poll(wait * 1000)).get(rep):
            rep.send(json.dumps(answer(rep.recv())).encode())
            continue
        now = time.monotonic()
        if now >= next_hb:
            next_hb = now + args.heartbeat_ms / 1000.0
            pub.send_multipart([b"_hb", json.dumps({"epoch": epoch, "time": time.time() * 1000.0,
                                                     "seqs": seqs}).encode()])
        if now >= next_delta:
            next_delta += 1.0 / args.rate
            task = rng.choice(tasks)
            if rng.random() < 0.05:
                publish("taskProxies", {task: None})
                publish("taskProxies", {task: {"name": task[2:], "status": "waiting", "flowNums": [1]}})
            else:
                publish("taskProxies", {task: {"status": rng.choice(STATUSES), "progress": rng.random()}})
            counts = {}
            for value in topics["taskProxies"].root.values():
                counts[value["status"]] = counts.get(value["status"], 0) + 1
            publish("workflow", {"stateTotals": {s: counts.get(s) for s in STATUSES}})
    pub.send_multipart([b"_bye", json.dumps({"epoch": epoch}).encode()])
    time.sleep(0.1)
    sys.exit(0)


if __name__ == "__main__":
    main()
