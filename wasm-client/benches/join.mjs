#!/usr/bin/env node
// Joining a large workflow in Chromium, compressed frames versus text: a simulated
// suite (`clonewire-sim --tasks N --still`: its first state, then no events, so every
// join receives the same workflow), a relay following it, and the page's module loaded
// from the relay; each round connects a fresh client, subscribes to every task's name,
// state and cycle point, and times until that copy is verified. Bytes are what the websocket
// received (Chromium's own count, through the DevTools protocol). Rounds run on
// loopback and with Chromium's network emulation (20 Mbit/s each way, 20 ms latency).
// Prints every round and a table of medians; never fails on timing, but fails when a
// copy does not verify, when compressed rounds got no binary frame, or when the
// workflow changed during the run.
//
//   npm run build && cargo build --release -p clonewire-relay -p clonewire-tools
//   node wasm-client/benches/join.mjs      (JOIN_TASKS=100000, JOIN_ROUNDS=3,
//                                           JOIN_PROFILE=release|debug, JOIN_LATENCY_MS=20)

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium } from '../../scripts/lib/browser.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tasks = Number(process.env.JOIN_TASKS ?? 100_000);
const rounds = Number(process.env.JOIN_ROUNDS ?? 3);
const profile = process.env.JOIN_PROFILE ?? 'release';
/** The emulated link's added latency. */
const latency = Number(process.env.JOIN_LATENCY_MS ?? 20);
const bin = (name) => join(root, 'target', profile, name);
// What a tree of the tasks needs (the simulator's task proxies have `state`, as Cylc's do).
const QUERY = '{ workflows { taskProxies { name state cyclePoint } } }';

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolvePort) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Starts `command` and resolves once its output matches `ready` (the match). */
function start(command, args, ready) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), 120_000);
    const read = (chunk) => {
      output += chunk;
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveStart({ child, match });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`${command} exited (${code}):\n${output}`)));
  });
}

const [pubPort, repPort] = [await freePort(), await freePort()];
const dir = mkdtempSync(join(tmpdir(), 'clonewire-join-'));
let sim;
let relay;
let browser;
try {
  // The first state and then no events: every join receives the same workflow.
  sim = await start(bin('clonewire-sim'), [
    '--name', 'big', '--tasks', String(tasks), '--still',
    '--pub', `tcp://127.0.0.1:${pubPort}`, '--rep', `tcp://127.0.0.1:${repPort}`,
  ], /holding still/);
  relay = await start(bin('clonewire-relay'), [
    '--listen', '127.0.0.1:0', '--suite', `big=tcp://127.0.0.1:${pubPort},tcp://127.0.0.1:${repPort}`,
    '--log', 'warn,clonewire_relay=info',
  ], /listening: the page at (http:\/\/[^\s/]+\/)/);
  const url = relay.match[1];
  browser = await launchChromium(dir);
  const page = browser.pages()[0] ?? (await browser.newPage());
  // Counted per websocket: a closed client's frames still in flight are not this round's.
  let received = { bytes: 0, frames: 0, binary: 0, largest: 0 };
  page.on('websocket', (ws) => {
    const counts = { bytes: 0, frames: 0, binary: 0, largest: 0 };
    received = counts;
    ws.on('framereceived', ({ payload }) => {
      const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      counts.bytes += size;
      counts.frames += 1;
      counts.largest = Math.max(counts.largest, size);
      if (typeof payload !== 'string') counts.binary += 1;
    });
  });
  await page.goto(`${url}healthz`);
  /** Connects a fresh client in the page; resolves with ms to a verified copy. */
  const joinOnce = (compression) =>
    page.evaluate(
      async ({ entry, query, compression }) => {
        const { connect } = await import(`/${entry}`);
        const start = performance.now();
        // When the largest frame (the snapshot) arrived, before it is inflated or read.
        let arrived = null;
        let largest = 0;
        class Timed extends WebSocket {
          constructor(...args) {
            super(...args);
            this.addEventListener('message', ({ data }) => {
              const size = typeof data === 'string' ? data.length : data.byteLength ?? data.size;
              if (size > largest) [largest, arrived] = [size, performance.now() - start];
            });
          }
        }
        const client = await connect('/ws', { compression, WebSocket: Timed });
        let took = null;
        // Checked when the view is told of the copy, and now and then besides.
        const check = () => {
          if (took === null && client.inspect().topics.some((t) => t.topic === 'taskProxies' && t.verified)) {
            took = performance.now() - start;
          }
        };
        const view = client.view('join', query, check);
        while (took === null) {
          await new Promise((r) => setTimeout(r, 50));
          check();
          if (performance.now() - start > 300_000) throw new Error('no verified copy in 300 s');
        }
        const { snapshots, resyncs, hashMismatches } = client.inspect().counters;
        view.close();
        client.close();
        return { took, arrived, snapshots, resyncs, hashMismatches };
      },
      { entry, query: QUERY, compression },
    );
  const app = await (await fetch(`${url}app.js`)).text();
  const entry = /'\.\/(pkg\/index\.[0-9a-f]{16}\.js)'/.exec(app)[1];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // The relay follows a topic only while some client wants it: the first join is cold.
  // The simulator's first state is one large delta per cycle, which the relay takes a
  // while to follow at 100K tasks: wait until the copy's seq has held for 5 s.
  const settled = await page.evaluate(
    async ({ entry, query }) => {
      const { connect } = await import(`/${entry}`);
      const client = await connect('/ws');
      const view = client.view('settle', query, () => {});
      const seq = () => client.inspect().topics.find((t) => t.topic === 'taskProxies' && t.verified)?.seq;
      let last;
      let since = performance.now();
      for (const start = performance.now(); performance.now() - start < 300_000; ) {
        await new Promise((r) => setTimeout(r, 250));
        const now = seq();
        if (now !== last) [last, since] = [now, performance.now()];
        else if (now !== undefined && performance.now() - since > 5000) break;
      }
      view.close();
      client.close();
      return last;
    },
    { entry, query: QUERY },
  );
  console.log(`the workflow holds still at taskProxies seq ${settled}`);
  // Let the cold join's frames settle before counting.
  await new Promise((r) => setTimeout(r, 500));
  console.log(`join of ${tasks} tasks (${profile} build), ${rounds} rounds each; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${'link'.padEnd(18)} ${'frames as'.padEnd(7)} frames binary bytes received snapshot in ms  verified ms`);
  const rows = [];
  for (const [link, conditions] of [
    ['loopback', null],
    [`20 Mbit/s, ${latency} ms`, { offline: false, latency, downloadThroughput: 20e6 / 8, uploadThroughput: 20e6 / 8 }],
  ]) {
    await cdp.send('Network.emulateNetworkConditions',
      conditions ?? { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    for (const compression of [false, true]) {
      const times = [];
      const arrivals = [];
      const sizes = [];
      const snapshots = new Set();
      for (let round = 0; round < rounds; round++) {
        const { took: ms, arrived, snapshots: snapshotCount, resyncs, hashMismatches } = await joinOnce(compression);
        // The close's last frames: wait so they count in this round, not the next.
        await new Promise((r) => setTimeout(r, 200));
        const { frames, binary, bytes, largest } = received;
        console.log(
          `${link.padEnd(18)} ${compression ? 'deflate' : 'text   '} ${String(frames).padStart(5)} ${String(binary).padStart(6)} ` +
            `${String(bytes).padStart(14)} ${arrived.toFixed(0).padStart(14)} ${ms.toFixed(0).padStart(12)}   ` +
            `(snapshots ${snapshotCount}, resyncs ${resyncs}, hash mismatches ${hashMismatches})`,
        );
        if (hashMismatches !== 0) throw new Error(`a copy failed its hash check (${hashMismatches})`);
        if (compression !== binary > 0) throw new Error(`${compression ? 'no' : 'unexpected'} binary frames in a ${compression ? 'compressed' : 'text'} join`);
        times.push(ms);
        arrivals.push(arrived);
        sizes.push(bytes);
        snapshots.add(largest);
      }
      rows.push({ link, compression, bytes: median(sizes), snapshots: [...snapshots], arrived: median(arrivals), ms: median(times) });
    }
  }
  // The workflow held still: every join of a kind received the same snapshot (its
  // largest frame) on both links.
  for (const compression of [false, true]) {
    const sizes = new Set(rows.filter((r) => r.compression === compression).flatMap((r) => r.snapshots));
    if (sizes.size !== 1) throw new Error(`the ${compression ? 'deflated' : 'text'} snapshots differ in size: ${[...sizes]}; the workflow changed`);
  }
  // Medians; "snapshot in": from connecting until the snapshot's frame reached the page
  // (before it was inflated or read), "verified": until the copy was checked.
  console.log(`\n| link | frames as | bytes received | snapshot in | verified copy |`);
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const { link, compression, bytes, arrived, ms } of rows) {
    const s = (t) => `${(t / 1000).toFixed(2)} s`;
    console.log(`| ${link} | ${compression ? 'deflate-raw (binary)' : 'text'} | ${bytes.toLocaleString('en-US')} B | ${s(arrived)} | ${s(ms)} |`);
  }
} finally {
  await browser?.close();
  relay?.child.kill('SIGTERM');
  sim?.child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
