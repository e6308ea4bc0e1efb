#!/usr/bin/env node
// Joining a large workflow in Chromium, compressed frames versus text: a simulated
// suite (`clonewire-sim --tasks N`), a relay following it, and the page's module loaded
// from the relay; each round connects a fresh client, subscribes to every task's name
// and status, and times until that copy is verified. Bytes are what the websocket
// received. Rounds run on loopback and with Chromium's network emulation (20 Mbit/s,
// 20 ms). Prints figures; never fails on timing.
//
//   cargo build --release -p clonewire-relay -p clonewire-suite && npm run build
//   node wasm-client/benches/join.mjs      (JOIN_TASKS=100000, JOIN_ROUNDS=2,
//                                           JOIN_PROFILE=release|debug)

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium } from '../../scripts/lib/browser.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tasks = Number(process.env.JOIN_TASKS ?? 100_000);
const rounds = Number(process.env.JOIN_ROUNDS ?? 2);
const profile = process.env.JOIN_PROFILE ?? 'release';
const bin = (name) => join(root, 'target', profile, name);
const QUERY = '{ workflows { taskProxies { name status } } }';

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
  sim = await start(bin('clonewire-sim'), [
    '--name', 'big', '--tasks', String(tasks), '--rate', '1',
    '--pub', `tcp://127.0.0.1:${pubPort}`, '--rep', `tcp://127.0.0.1:${repPort}`,
  ], /./);
  relay = await start(bin('clonewire-relay'), [
    '--listen', '127.0.0.1:0', '--suite', `big=tcp://127.0.0.1:${pubPort},tcp://127.0.0.1:${repPort}`,
    '--log', 'warn,clonewire_relay=info',
  ], /listening: the page at (http:\/\/[^\s/]+\/)/);
  const url = relay.match[1];
  browser = await launchChromium(dir);
  const page = browser.pages()[0] ?? (await browser.newPage());
  // Counted per websocket: a closed client's frames still in flight are not this round's.
  let received = { bytes: 0, frames: 0 };
  page.on('websocket', (ws) => {
    const counts = { bytes: 0, frames: 0 };
    received = counts;
    ws.on('framereceived', ({ payload }) => {
      counts.bytes += typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      counts.frames += 1;
    });
  });
  await page.goto(`${url}healthz`);
  /** Connects a fresh client in the page; resolves with ms to a verified copy. */
  const joinOnce = (compression) =>
    page.evaluate(
      async ({ entry, query, compression }) => {
        const { connect } = await import(`/${entry}`);
        const start = performance.now();
        const client = await connect('/ws', { compression });
        let verified = false;
        const view = client.view('join', query, () => {});
        while (!verified) {
          await new Promise((r) => setTimeout(r, 20));
          verified = client.inspect().topics.some((t) => t.topic === 'taskProxies' && t.verified);
          if (performance.now() - start > 300_000) throw new Error('no verified copy in 300 s');
        }
        const took = performance.now() - start;
        const { snapshots, resyncs, hashMismatches } = client.inspect().counters;
        view.close();
        client.close();
        return { took, snapshots, resyncs, hashMismatches };
      },
      { entry, query: QUERY, compression },
    );
  const app = await (await fetch(`${url}app.js`)).text();
  const entry = /'\.\/(pkg\/index\.[0-9a-f]{16}\.js)'/.exec(app)[1];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // The relay follows a topic only while some client wants it: the first join is cold.
  await joinOnce(true);
  console.log(`join of ${tasks} tasks (${profile} build), ${rounds} rounds each:`);
  console.log('link                 frames        bytes received   time to a verified copy ms');
  for (const [link, conditions] of [
    ['loopback', null],
    ['20 Mbit/s, 20 ms', { offline: false, latency: 20, downloadThroughput: 20e6 / 8, uploadThroughput: 20e6 / 8 }],
  ]) {
    await cdp.send('Network.emulateNetworkConditions',
      conditions ?? { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    for (const compression of [false, true]) {
      for (let round = 0; round < rounds; round++) {
        const { took: ms, snapshots, resyncs, hashMismatches } = await joinOnce(compression);
        console.log(
          `${link.padEnd(18)} ${compression ? 'deflate' : 'text   '} ${String(received.frames).padStart(5)} ` +
            `${String(received.bytes).padStart(14)} ${ms.toFixed(0).padStart(12)}   ` +
            `(snapshots ${snapshots}, resyncs ${resyncs}, hash mismatches ${hashMismatches})`,
        );
      }
    }
  }
} finally {
  await browser?.close();
  relay?.child.kill('SIGTERM');
  sim?.child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
