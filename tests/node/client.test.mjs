// The built module (wasm-client/dist/, imported by its package name) against a scripted relay: what a page using it would see.
// Run `npm run build` first.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import jsonMergePatch from 'json-merge-patch';
import { deflateRawSync } from 'node:zlib';
import WebSocket from 'ws';

import { connect, frameTopic, QueryError, workflowStates } from 'clonewire';
import { STATE_HINTS } from '../../www/workflows.js';
import { greet, startRelay, stream, until } from './fake-relay.mjs';

const options = { WebSocket, reconnectBaseMs: 20, reconnectMaxMs: 200 };
const { tasks: TASKS, names: NAMES } = stream.views;

let relay;
before(async () => {
  relay = await startRelay();
});
after(async () => {
  await relay.close();
});

/** A fresh relay script per test: answer subscribe with the initial frames. */
function answerSubscribes() {
  relay.received.length = 0;
  relay.onMessage = (message) => {
    if (message.type === 'subscribe') greet(relay, message.query);
  };
}

/** The last value the relay sent for a topic, after the first `n` steps. */
function relayValue(topic, n = stream.steps.length) {
  const steps = stream.steps.slice(0, n).filter((s) => s.snapshot.topic === topic);
  const last = steps.at(-1)?.snapshot ?? stream.initial.find((f) => f.topic === topic);
  return last.value;
}

function pick(object, fields) {
  return Object.fromEntries(
    Object.entries(object).map(([id, entry]) => [
      id,
      Object.fromEntries(fields.filter((f) => f in entry).map((f) => [f, entry[f]])),
    ]),
  );
}

test('each view receives only its own changes, and its data matches the relay', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const heard = { tasks: [], names: [] };
  const tasks = client.view('tasks', TASKS, (changes) => heard.tasks.push(changes));
  const names = client.view('names', NAMES, (changes) => heard.names.push(changes));
  await relay.next((m) => m.type === 'subscribe' && m.query.includes('status') && m.query.includes('name'));
  await until(() => heard.tasks.length > 0 && heard.names.length > 0, 3000, 'snapshots');
  for (const step of stream.steps) relay.send(step.delta);
  await until(() => client.inspect().counters.deltas === stream.steps.length, 3000, 'all deltas');

  // One callback per message per view, and only with that view's fields.
  for (const changes of heard.tasks) {
    assert.equal(changes.length, 1);
    assert.equal(changes[0].topic, 'taskProxies');
    for (const entry of Object.values(changes[0].patch)) {
      if (entry !== null) assert.deepEqual(Object.keys(entry), ['status']);
    }
  }
  for (const changes of heard.names) {
    for (const entry of Object.values(changes[0].patch)) {
      if (entry !== null && changes[0].topic === 'taskProxies') {
        assert.deepEqual(Object.keys(entry), ['name']);
      }
    }
  }
  // A status-only change never reached the names view.
  const statusOnly = stream.steps.filter(
    (s) => s.delta.topic === 'taskProxies' && Object.values(s.delta.patch).every((e) => e && !('name' in e)),
  ).length;
  assert.ok(statusOnly > 0);
  assert.equal(heard.tasks.length + heard.names.length < 2 * (stream.steps.length + 2), true);

  const expectedTasks = pick(relayValue('taskProxies'), ['status']);
  assert.deepEqual(tasks.data(), { workflows: { demo: { taskProxies: expectedTasks } } });
  assert.deepEqual(names.data(), {
    workflows: {
      demo: { workflow: relayValue('workflow'), taskProxies: pick(relayValue('taskProxies'), ['name']) },
    },
  });

  // Applying the patches a view was given rebuilds its data (RFC 7386 leaves emptied
  // objects behind; the view's data, like the protocol's documents, has none).
  const prune = (value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v);
      if (!(p && typeof p === 'object' && !Array.isArray(p) && Object.keys(p).length === 0)) out[k] = p;
    }
    return out;
  };
  const rebuilt = {};
  for (const changes of heard.tasks) {
    for (const c of changes) {
      rebuilt[c.workflow] ??= {};
      rebuilt[c.workflow][c.topic] = jsonMergePatch.apply(rebuilt[c.workflow][c.topic] ?? {}, c.patch);
    }
  }
  assert.deepEqual(prune({ workflows: rebuilt }), tasks.data());

  const report = client.inspect();
  assert.deepEqual(
    report.views.map((v) => v.name),
    ['tasks', 'names'],
  );
  assert.ok(report.topics.every((t) => t.verified && t.epoch === 'e1'));
  assert.equal(report.counters.hashMismatches, 0);
  assert.equal(client.workflows().demo.state, 'live');
  assert.deepEqual(client.workflows().demo.schema.collections, [['taskProxies'], ['jobs']]);
  client.close();
});

test('views are merged into one subscription that shrinks when a view closes', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const tasks = client.view('tasks', TASKS);
  const first = await relay.next((m) => m.type === 'subscribe');
  assert.ok(first.query.includes('status') && !first.query.includes('name'));
  const names = client.view('names', NAMES);
  const merged = await relay.next((m) => m.type === 'subscribe');
  assert.ok(merged.query.includes('status') && merged.query.includes('name'));
  assert.equal(client.inspect().query, merged.query);

  const again = client.view('again', TASKS);
  again.close();
  names.close();
  const shrunk = await relay.next((m) => m.type === 'subscribe');
  assert.equal(shrunk.query, first.query);
  // Opening and closing a view the merge already covers sent nothing.
  assert.equal(relay.received.filter((m) => m.type === 'subscribe').length, 3);
  assert.equal(names.data(), null);
  assert.ok(tasks.data().workflows);
  client.close();
});

test('a corrupted delta is resynced and views never see unverified data', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const heard = [];
  const tasks = client.view('tasks', TASKS, (changes) => heard.push(changes));
  await relay.next((m) => m.type === 'subscribe');
  await until(() => heard.length === 1, 3000, 'the snapshot');
  const steps = stream.steps.filter((s) => s.delta.topic === 'taskProxies');
  relay.send(steps[0].delta);
  await until(() => heard.length === 2, 3000, 'the first delta');
  const shown = tasks.data();

  // Step 2 arrives with a hash that does not check.
  relay.send({ ...steps[1].delta, hash: '00000000deadbeef' });
  const resync = await relay.next((m) => m.type === 'resync');
  assert.deepEqual(
    { workflow: resync.workflow, topic: resync.topic },
    { workflow: 'demo', topic: 'taskProxies' },
  );
  relay.send(steps[2].delta); // dropped: the copy awaits its snapshot
  await until(() => client.inspect().counters.ignored === 1, 3000, 'the dropped delta');
  assert.equal(heard.length, 2);
  assert.deepEqual(tasks.data(), shown, 'the last verified data stays visible');
  const copy = client.inspect().topics.find((t) => t.topic === 'taskProxies');
  assert.equal(copy.verified, false);

  relay.send(steps[2].snapshot);
  await until(() => heard.length === 3, 3000, 'the snapshot after resync');
  assert.deepEqual(tasks.data().workflows.demo.taskProxies, pick(steps[2].snapshot.value, ['status']));
  assert.equal(client.inspect().topics.find((t) => t.topic === 'taskProxies').verified, true);

  // A delta whose prev skips a message is caught too.
  relay.send({ ...steps[3].delta, prev: steps[3].delta.prev - 1 });
  await relay.next((m) => m.type === 'resync');
  const { counters } = client.inspect();
  assert.equal(counters.hashMismatches, 1);
  assert.equal(counters.chainBreaks, 1);
  assert.equal(counters.resyncs, 2);

  // Garbage is counted, never fatal.
  relay.send('{not json');
  relay.send(JSON.stringify({ type: 'mystery' }));
  await until(() => client.inspect().counters.badMessages === 2, 3000, 'bad messages counted');
  assert.equal(client.status, 'open');
  client.close();
});

test('a lost connection reconnects and resumes where the client stood', async () => {
  answerSubscribes();
  const statuses = [];
  const client = await connect(relay.url, { ...options, onStatus: (e) => statuses.push(e.status) });
  const heard = [];
  const tasks = client.view('tasks', TASKS, (changes) => heard.push(changes));
  await relay.next((m) => m.type === 'subscribe');
  const steps = stream.steps.filter((s) => s.delta.topic === 'taskProxies');
  for (const step of steps.slice(0, 5)) relay.send(step.delta);
  await until(() => client.inspect().counters.deltas === 5, 3000, 'five deltas');
  const before = client.inspect().topics.find((t) => t.topic === 'taskProxies');

  relay.onMessage = undefined; // the new connection is answered by hand
  const connections = relay.connections;
  relay.drop();
  const again = await relay.next((m) => m.type === 'subscribe', 5000);
  assert.equal(relay.connections, connections + 1);
  assert.deepEqual(again.resume.demo.taskProxies, {
    epoch: 'e1',
    seq: steps[4].delta.seq,
    hash: steps[4].snapshot.hash,
  });
  assert.equal(before.hash, steps[4].snapshot.hash);
  assert.deepEqual(statuses.slice(0, 2), ['connecting', 'open']);
  assert.ok(statuses.includes('reconnecting'));
  assert.equal(statuses.at(-1), 'open');

  // The relay resumes with the next delta, chained to the client's seq.
  relay.send({ type: 'subscribed', query: again.query });
  const count = heard.length;
  relay.send(steps[5].delta);
  await until(() => heard.length === count + 1, 3000, 'the resumed delta');
  assert.deepEqual(tasks.data().workflows.demo.taskProxies, pick(steps[5].snapshot.value, ['status']));
  assert.equal(client.inspect().counters.reconnects, 1);
  client.close();
  assert.equal(client.status, 'closed');
});

test('a bad query is an error for that view, not for the client', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const good = client.view('tasks', TASKS);
  assert.throws(
    () => client.view('bad', 'subscription {\n  workflows { taskProxies {\n}'),
    (error) => error instanceof QueryError && error.line !== null && error.column !== null,
  );
  assert.throws(() => client.view('bad', '{ jobs }'), /workflows/);
  assert.throws(() => good.setQuery('query { x }'), QueryError);
  assert.equal(good.query, client.inspect().query);
  assert.deepEqual(
    client.inspect().views.map((v) => v.name),
    ['tasks'],
  );
  const subscribes = () => relay.received.filter((m) => m.type === 'subscribe');
  await until(() => subscribes().length === 1, 3000, 'the subscribe');
  good.setQuery(NAMES);
  await until(() => subscribes().length === 2, 3000, 'the new subscribe');
  assert.ok(subscribes()[1].query.includes('workflow {') && !subscribes()[0].query.includes('workflow {'));
  client.close();
});

test('closing and disposing release views and the connection', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const heard = [];
  const view = client.view('tasks', TASKS, (c) => heard.push(c));
  await relay.next((m) => m.type === 'subscribe');
  await until(() => heard.length === 1, 3000, 'the snapshot');
  assert.ok(view.data());
  // What `using view = ...` does at the end of its block (Node 20 lacks the syntax).
  view[Symbol.dispose]();
  assert.equal(view.data(), null);
  assert.equal(client.inspect().views.length, 0);
  client.close();
  client.close();
  assert.throws(() => client.view('late', TASKS), /closed/);
  await assert.rejects(connect('not a url', options));
});

test('an unreachable relay is retried with backoff, without throwing', async () => {
  const statuses = [];
  const client = await connect('ws://127.0.0.1:9/ws', {
    ...options,
    onStatus: (e) => statuses.push(e),
  });
  await until(() => statuses.filter((e) => e.status === 'reconnecting').length >= 2, 5000, 'retries');
  const delays = statuses.filter((e) => e.status === 'reconnecting').map((e) => e.delayMs);
  assert.ok(delays.every((d) => d >= 10 && d <= 200), JSON.stringify(delays));
  client.close();
  assert.equal(statuses.at(-1).status, 'closed');
});

test('the module names the workflow states and what a frame is about', async () => {
  answerSubscribes();
  const client = await connect(relay.url, options);
  const states = workflowStates();
  assert.deepEqual(states, ['syncing', 'live', 'stale', 'busy', 'stopped', 'removed']);
  // The page describes every state it can show.
  assert.deepEqual(Object.keys(STATE_HINTS), states.filter((s) => s !== 'removed'));

  const [delta] = stream.steps.map((s) => s.delta);
  assert.deepEqual(frameTopic(JSON.stringify(delta)), { type: 'delta', workflow: delta.workflow, topic: delta.topic });
  const escaped = { ...stream.initial[0], workflow: 'a "quoted" é' };
  assert.deepEqual(frameTopic(JSON.stringify(escaped)), { type: 'snapshot', workflow: 'a "quoted" é', topic: escaped.topic });
  for (const other of [JSON.stringify(stream.workflow), '{"type":"hello"}', 'not json', '']) {
    assert.equal(frameTopic(other), null, other);
  }
  assert.equal(frameTopic(new ArrayBuffer(4)), null);
  client.close();
});

test('deflated frames are inflated and applied in the order they came', async () => {
  relay.received.length = 0;
  const packed = (frame) => deflateRawSync(JSON.stringify(frame));
  relay.onMessage = (message) => {
    if (message.type !== 'subscribe') return;
    relay.send({ type: 'subscribed', query: message.query });
    relay.send(stream.workflow);
    // Snapshots deflated, deltas alternating: a text frame behind a binary one must
    // wait for it to inflate, or its `prev` would not follow.
    for (const frame of stream.initial) relay.socket.send(packed(frame));
    stream.steps.forEach((step, i) => (i % 2 ? relay.send(step.delta) : relay.socket.send(packed(step.delta))));
  };
  const client = await connect(relay.url, options);
  try {
    const tasks = client.view('tasks', TASKS, () => {});
    const subscribe = await relay.next((m) => m.type === 'subscribe');
    assert.equal(subscribe.compression, 'deflate-raw');
    await until(() => client.inspect().counters.deltas === stream.steps.length, 3000, 'all deltas');
    const report = client.inspect();
    assert.equal(report.counters.chainBreaks, 0);
    assert.equal(report.counters.hashMismatches, 0);
    assert.equal(report.counters.resyncs, 0);
    assert.deepEqual(tasks.data().workflows.demo.taskProxies, pick(relayValue('taskProxies'), ['status']));
  } finally {
    client.close();
  }
});

test('compression: false asks for text frames only', async () => {
  answerSubscribes();
  const client = await connect(relay.url, { ...options, compression: false });
  client.view('tasks', TASKS, () => {});
  const subscribe = await relay.next((m) => m.type === 'subscribe');
  assert.equal(subscribe.compression, undefined);
  client.close();
});
