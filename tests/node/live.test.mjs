// The built module (wasm-client/dist/, imported by its package name) against the real relay with its simulated suites
// (`clonewire-relay --demo`): what a page sees from a live stream. Needs
// `cargo build -p clonewire-relay` and `npm run build` first; skipped when the relay
// binary is missing (CLONEWIRE_RELAY names another one).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import jsonMergePatch from 'json-merge-patch';
import WebSocket from 'ws';

import { connect } from 'clonewire';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RELAY = process.env.CLONEWIRE_RELAY ?? resolve(root, 'target', 'debug', 'clonewire-relay');
const skip = existsSync(RELAY) ? false : `no relay binary at ${RELAY}: run cargo build -p clonewire-relay`;

/** Resolves when `check()` is true; rejects after `ms` with `what`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts the relay with its demo suites; resolves with the process and its address. */
function startRelay(listen = '127.0.0.1:0') {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(RELAY, ['--demo', '--listen', listen, '--log', 'warn,clonewire_relay=info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the relay did not say where it listens:\n${output}`));
    }, 15000);
    const read = (chunk) => {
      output += chunk;
      const match = output.match(/listening: the page at http:\/\/([^/\s]+)\//);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ child, address: match[1] });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code}):\n${output}`));
    });
  });
}

/** Stops a relay at once (as a crash would) and waits for it to be gone. */
function killRelay(relay) {
  return new Promise((r) => {
    if (relay.child.exitCode !== null || relay.child.signalCode !== null) return r();
    relay.child.once('exit', () => r());
    relay.child.kill('SIGKILL');
  });
}

/** A `ws` WebSocket that remembers every frame the client sends. */
function recordingSocket() {
  const sent = [];
  class Recording extends WebSocket {
    send(data, ...rest) {
      sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  return { Recording, sent };
}

/** The part of `value` that a selection (`true`: all; `*`: any key) selects. */
function select(value, selection) {
  if (selection === true) return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const out = {};
  for (const [key, inner] of Object.entries(value)) {
    const sel = selection[key] ?? selection['*'];
    if (sel === undefined) continue;
    const part = select(inner, sel);
    if (part !== undefined && !(typeof part === 'object' && !Array.isArray(part) && Object.keys(part).length === 0)) {
      out[key] = part;
    }
  }
  return out;
}

/** True when every leaf of `patch` is one that `selection` selects. */
function within(patch, selection) {
  if (selection === true) return true;
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return false;
  return Object.entries(patch).every(([key, inner]) => {
    const sel = selection[key] ?? selection['*'];
    return sel !== undefined && within(inner, sel);
  });
}

// Three views over two demo workflows, and the same selections as plain trees.
const VIEWS = {
  tasks: {
    query: 'subscription { workflows(ids: ["demo"]) { taskProxies { state } } }',
    selection: { demo: { taskProxies: { '*': { state: true } } } },
  },
  names: {
    query: '{ workflows(ids: ["demo"]) { workflow { name status } taskProxies { name } } }',
    selection: { demo: { workflow: { name: true, status: true }, taskProxies: { '*': { name: true } } } },
  },
  nightly: {
    query: '{ workflows(ids: ["nightly"]) { workflow { status } taskProxies { state } } }',
    selection: { nightly: { workflow: { status: true }, taskProxies: { '*': { state: true } } } },
  },
};
// Everything the three select: its data is the client's merged store.
const ALL = '{ workflows(ids: ["demo", "nightly"]) { workflow { name status } taskProxies { name state } } }';

let relay;
before(async () => {
  if (!skip) relay = await startRelay();
});
after(async () => {
  if (relay) await killRelay(relay);
});

const clientOptions = (extra = {}) => ({ WebSocket, reconnectBaseMs: 50, reconnectMaxMs: 400, ...extra });

test('views receive only their own changes and show what their query selects', { skip, timeout: 30000 }, async () => {
  const client = await connect(`ws://${relay.address}/ws`, clientOptions());
  const all = client.view('all', ALL);
  const heard = {};
  const rebuilt = {};
  const views = {};
  for (const [name, { query }] of Object.entries(VIEWS)) {
    heard[name] = [];
    rebuilt[name] = { workflows: {} };
    views[name] = client.view(name, query, (changes, view) => {
      heard[name].push(changes);
      assert.equal(view.name, name);
      for (const { workflow, topic, patch } of changes) {
        const topics = (rebuilt[name].workflows[workflow] ??= {});
        topics[topic] = jsonMergePatch.apply(topics[topic] ?? {}, patch);
        if (Object.keys(topics[topic]).length === 0) delete topics[topic];
      }
    });
  }
  await until(() => client.inspect().counters.deltas >= 40, 20000, '40 deltas from the demo suites');

  // All read at one instant (callbacks cannot run in between).
  const merged = all.data().workflows;
  for (const [name, { selection }] of Object.entries(VIEWS)) {
    const data = views[name].data();
    const expected = { workflows: select(merged, selection) };
    assert.deepEqual(data, expected, `${name}: data() is its query over the merged data`);
    // The callbacks' patches, applied in order, rebuild exactly that data.
    assert.deepEqual(rebuilt[name], expected, `${name}: its callbacks carried every change`);
    assert.ok(heard[name].length > 0, `${name} heard something`);
    for (const changes of heard[name]) {
      assert.ok(changes.length > 0);
      for (const { workflow, topic, patch } of changes) {
        assert.ok(Object.keys(patch).length > 0, 'a callback always carries a change');
        assert.ok(within({ [workflow]: { [topic]: patch } }, selection), `${name} was told about ${JSON.stringify(patch)}`);
      }
    }
  }
  const report = client.inspect();
  assert.equal(report.counters.hashMismatches, 0);
  assert.equal(report.counters.chainBreaks, 0);
  assert.ok(report.topics.every((t) => t.verified), JSON.stringify(report.topics));
  client.close();
});

test('closing a view shrinks the merged query the relay holds', { skip, timeout: 20000 }, async () => {
  const { Recording, sent } = recordingSocket();
  const client = await connect(`ws://${relay.address}/ws`, clientOptions({ WebSocket: Recording }));
  const tasks = client.view('tasks', VIEWS.tasks.query);
  const names = client.view('names', VIEWS.names.query);
  const echoed = () => {
    const { query, subscribed } = client.inspect();
    return subscribed === query;
  };
  await until(echoed, 10000, 'the relay to echo the merged query');
  const grown = client.inspect().query;
  assert.ok(grown.includes('name') && grown.includes('state'), grown);
  // A view already covered by the others sends nothing.
  const before = sent.filter((m) => m.type === 'subscribe').length;
  const covered = client.view('covered', '{ workflows(ids: ["demo"]) { taskProxies { state } } }');
  assert.equal(sent.filter((m) => m.type === 'subscribe').length, before);
  covered.close();

  names.close();
  const shrunk = client.inspect().query;
  assert.notEqual(shrunk, grown);
  assert.ok(!shrunk.includes('name'), shrunk);
  assert.equal(sent.filter((m) => m.type === 'subscribe').at(-1).query, shrunk);
  await until(echoed, 10000, 'the relay to echo the smaller query');
  // The store now holds only what the remaining view selects.
  await until(() => client.inspect().topics.every((t) => t.verified), 10000, 'verified copies');
  const data = tasks.data();
  for (const entry of Object.values(data.workflows.demo?.taskProxies ?? {})) {
    assert.deepEqual(Object.keys(entry), ['state']);
  }
  tasks.close();
  await until(() => client.inspect().subscribed === 'subscription { workflows(ids: []) }', 10000, 'the empty query');
  client.close();
});

test('a client reconnects to a restarted relay by itself, resumes and verifies again', { skip, timeout: 40000 }, async (t) => {
  const { Recording, sent } = recordingSocket();
  const statuses = [];
  const client = await connect(`ws://${relay.address}/ws`, clientOptions({ WebSocket: Recording, onStatus: (e) => statuses.push(e.status) }));
  const view = client.view('tasks', VIEWS.tasks.query);
  await until(() => client.inspect().counters.deltas >= 10, 20000, 'deltas before the restart');
  const before = client.inspect();
  const verified = before.topics.filter((t) => t.verified && t.seq !== null);
  assert.ok(verified.length > 0, JSON.stringify(before.topics));

  const address = relay.address;
  await killRelay(relay);
  await until(() => statuses.includes('reconnecting'), 5000, 'the client to notice');
  relay = await startRelay(address);

  await until(() => client.inspect().counters.reconnects >= 1 && client.status === 'open', 15000, 'a reconnection');
  // The first subscribe on the new connection carries where each verified copy stood.
  const resumed = sent.filter((m) => m.type === 'subscribe').at(-1);
  assert.ok(resumed.resume, JSON.stringify(resumed));
  for (const topic of verified) {
    const point = resumed.resume[topic.workflow]?.[topic.topic];
    assert.ok(point, `resume names ${topic.workflow}/${topic.topic}`);
    assert.equal(typeof point.seq, 'number');
    assert.match(point.hash, /^[0-9a-f]{16}$/);
  }
  await until(() => {
    const report = client.inspect();
    return report.subscribed === report.query && report.counters.deltas >= before.counters.deltas + 10
      && report.topics.every((t) => t.verified);
  }, 20000, 'verified copies and fresh deltas after the restart');
  const now = client.inspect();
  const snapshots = now.counters.snapshots - before.counters.snapshots;
  const deltas = now.counters.deltas - before.counters.deltas;
  t.diagnostic(`after the restart: ${snapshots} snapshots, ${deltas} deltas, ${now.counters.resyncs} resyncs`);
  // The restarted relay runs new demo suites (a new epoch): every copy comes back as
  // a snapshot of the new epoch, then deltas chain to it.
  assert.ok(snapshots >= 1, `snapshots after the restart: ${snapshots}`);
  assert.equal(now.counters.hashMismatches, 0);
  const data = view.data();
  for (const entry of Object.values(data.workflows.demo?.taskProxies ?? {})) {
    assert.deepEqual(Object.keys(entry), ['state']);
  }
  client.close();
});
