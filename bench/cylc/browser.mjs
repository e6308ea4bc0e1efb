#!/usr/bin/env node
// The browser part of `clonewire-bench-cylc --browser`: headless Chromium loads the
// page's module from a clonewire-relay that follows a real Cylc workflow, connects one
// wasm client and opens the page's tree, table and graph views on that workflow (three
// different field selections, the page's own queries). For every frame the websocket
// receives it times, inside the page, from the `message` event to the last view
// callback that frame caused. Prints one JSON line; never fails on timing.
//
//   node bench/cylc/browser.mjs --url http://127.0.0.1:PORT/ --workflow NAME --secs 90
//
// The page's socket is a WebSocket subclass that takes each frame first: it inflates
// deflated frames as the client does (DecompressionStream 'deflate-raw'), in arrival
// order, and hands the text to the client, whose handling (verify, apply, tell the
// views) is then synchronous; so the end of each frame's handling is observable.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CHROMIUM_PATH, launchChromium } from '../../scripts/lib/browser.mjs';

/** `--name value` pairs of the command line. */
function options(argv) {
  const out = {};
  for (let i = 0; i < argv.length - 1; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

const args = options(process.argv.slice(2));
const secs = Math.min(Math.max(Number(args.secs ?? 60), 1), 3600);
const print = (report) => console.log(JSON.stringify(report));

if (!/^http:\/\/127\.[0-9.]+:[0-9]+\/$/.test(args.url ?? '') || !args.workflow) {
  console.error('usage: browser.mjs --url http://127.0.0.1:PORT/ --workflow NAME [--secs S]');
  process.exit(2);
}
if (!existsSync(CHROMIUM_PATH)) {
  print({ skipped: `no Chromium at ${CHROMIUM_PATH}` });
  process.exit(0);
}

/** Runs in the page: connects, opens the three views, and times every frame. */
async function follow({ workflow }) {
  const app = await (await fetch('/app.js')).text();
  const entry = /'\.\/(pkg\/index\.[0-9a-f]{16}\.js)'/.exec(app)?.[1];
  if (!entry) throw new Error('the page names no module');
  const { connect } = await import(`/${entry}`);
  const kinds = await Promise.all(['tree', 'table', 'graph'].map(async (n) => (await import(`/views/${n}.js`))[n]));

  const frames = [];
  /** Frames whose handling threw, and the first such error. */
  const failed = { n: 0, first: null };
  /** The frame being handed to the client, while it is. */
  let current = null;

  async function inflate(data) {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
    return new Response(stream).text();
  }

  class TimedSocket extends WebSocket {
    #listeners = [];
    #handler = null;
    #queue = Promise.resolve();

    constructor(...rest) {
      super(...rest);
      super.addEventListener('message', (event) => this.#arrive(event));
    }

    addEventListener(type, listener, opts) {
      if (type === 'message') this.#listeners.push(listener);
      else super.addEventListener(type, listener, opts);
    }

    get onmessage() {
      return this.#handler;
    }

    set onmessage(handler) {
      this.#handler = handler;
    }

    #arrive(event) {
      const t0 = performance.now();
      const binary = typeof event.data !== 'string';
      const frame = { t0, bytes: binary ? event.data.byteLength : event.data.length, binary };
      const text = binary ? inflate(event.data) : event.data;
      this.#queue = this.#queue
        .then(async () => {
          const data = await text;
          frame.inflated = performance.now() - t0;
          frame.textBytes = data.length;
          frame.told = 0;
          frame.entries = 0;
          frame.views = new Set();
          current = frame;
          const message = { type: 'message', target: this, data };
          for (const listener of this.#listeners) listener.call(this, message);
          this.#handler?.call(this, message);
          current = null;
          frame.done = performance.now() - t0;
          frame.views = frame.views.size;
          frames.push(frame);
        })
        .catch((error) => {
          current = null;
          failed.n += 1;
          failed.first ??= String(error?.message ?? error);
        });
    }
  }

  const client = await connect('/ws', { WebSocket: TimedSocket });
  // The relay lists its workflows to a client that subscribes: the page's list of
  // workflows, opened only to learn the id, then closed.
  const { WORKFLOWS_QUERY } = await import('/workflows.js');
  const list = client.view('workflows', WORKFLOWS_QUERY, () => {});
  let id;
  for (let waited = 0; !id; waited += 100) {
    id = Object.keys(client.workflows()).find((w) => w === workflow || w.endsWith(`/${workflow}`));
    if (waited > 60_000) throw new Error(`the relay did not list ${workflow} in 60 s`);
    if (!id) await new Promise((r) => setTimeout(r, 100));
  }
  list.close();
  for (const kind of kinds) {
    client.view(kind.id, kind.query(id), (changes) => {
      if (current === null) return;
      // A view that is told looks at what changed, as the page's views do.
      for (const change of changes) current.entries = Math.max(current.entries, Object.keys(change.patch ?? {}).length);
      current.views.add(kind.id);
      current.told = performance.now() - current.t0;
    });
  }
  window.benchResult = () => {
    const { counters } = client.inspect();
    return { frames: frames.filter((f) => f.views > 0), received: frames.length, failed, counters };
  };
  return id;
}

/** p50, p99 and max of `xs` (ms), or null when empty. */
function summary(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] };
}

const dir = mkdtempSync(join(tmpdir(), 'clonewire-bench-cylc-browser-'));
let browser;
const started = Date.now();
try {
  browser = await launchChromium(dir);
  const page = browser.pages()[0] ?? (await browser.newPage());
  await page.goto(`${args.url}healthz`);
  const id = await page.evaluate(follow, { workflow: args.workflow });
  const left = secs * 1000 - (Date.now() - started);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  const { frames, received, failed, counters } = await page.evaluate(() => window.benchResult());
  // A burst frame tells a view about at least this many task proxies or jobs
  // (the bench's burst is a batch of at least 200 changes).
  const bursts = frames.filter((f) => f.entries >= 200);
  const all = frames.map((f) => f.told);
  print({
    workflow: id,
    frames: frames.length,
    told: summary(all),
    burst: summary(bursts.map((f) => f.told)),
    burstInflate: summary(bursts.filter((f) => f.binary).map((f) => f.inflated)),
    biggest: frames.reduce((m, f) => Math.max(m, f.textBytes), 0),
    biggestEntries: frames.reduce((m, f) => Math.max(m, f.entries), 0),
    views: 3,
    received,
    failed,
    counters: {
      deltas: counters.deltas,
      snapshots: counters.snapshots,
      resyncs: counters.resyncs,
      hashMismatches: counters.hashMismatches,
    },
  });
} catch (error) {
  print({ error: String(error?.message ?? error).split('\n')[0] });
} finally {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
}
