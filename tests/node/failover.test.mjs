// Client failover: `connect` with a list of relays that follow the same suite. When
// the relay in use goes, the client goes on to the next and resumes there: no snapshot
// when that relay has the history of the client's topics, one per topic when not.
// Needs `cargo build -p clonewire-relay -p clonewire-tools` and `npm run build`.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';

import { connect } from 'clonewire';
import { freePort, kill, missingBinaries, startRelay, startSuite, until } from './failover-relays.mjs';

const skip = missingBinaries();
if (skip) console.log(skip);
const QUERY = '{ workflows(ids: ["demo"]) { taskProxies { state } } }';
const running = [];
after(async () => {
  for (const proc of running) await kill(proc);
});

/** A client of `urls` with one view on QUERY. */
async function client(urls) {
  const c = await connect(urls, { WebSocket, reconnectBaseMs: 50, reconnectMaxMs: 200 });
  const view = c.view('tasks', QUERY);
  const tasks = () => Object.keys(view.data()?.workflows.demo?.taskProxies ?? {}).length;
  return { c, view, tasks };
}

/** The client's verified copy of demo/taskProxies: its seq and hash. */
function copy(c) {
  return c.inspect().topics.find((t) => t.workflow === 'demo' && t.topic === 'taskProxies');
}

test('a client moves to the next relay when its relay is lost or refuses, and resumes there', { skip, timeout: 60000 }, async () => {
  const suite = await startSuite('demo');
  running.push(suite);
  const [a, b, c] = [
    await startRelay({ suites: [suite.suite], name: 'relay-a' }),
    await startRelay({ suites: [suite.suite], name: 'relay-b' }),
    await startRelay({ suites: [suite.suite], name: 'relay-c' }),
  ];
  running.push(a, b, c);
  // A client of B alone keeps B following the topic, so B has its history.
  const keeper = await client([b.url]);
  await until(() => keeper.tasks() > 0, 20000, 'the keeper at relay B');

  const { c: moving, tasks } = await client([a.url, b.url, c.url]);
  await until(() => tasks() > 0 && moving.status === 'open', 20000, 'data from relay A');
  let report = moving.inspect();
  assert.equal(report.url, a.url);
  assert.match(report.relay, /^relay-a\//);
  assert.deepEqual(report.urls, [a.url, b.url, c.url]);
  await until(() => moving.inspect().counters.deltas > 0, 15000, 'deltas from A');
  const before = moving.inspect().counters;

  // A goes: the client moves to B, which has the history: not one snapshot.
  await kill(a);
  await until(() => moving.inspect().relay?.startsWith('relay-b/') && moving.status === 'open', 10000, 'the move to B');
  const atB = moving.inspect().counters.deltas;
  await until(() => moving.inspect().counters.deltas > atB + 2, 10000, 'deltas from B');
  const moved = moving.inspect().counters;
  report = moving.inspect();
  assert.equal(report.url, b.url);
  assert.equal(report.moves, 1);
  assert.equal(moved.snapshots - before.snapshots, 0, 'resumed at B without a snapshot');
  assert.equal(moved.hashMismatches + moved.chainBreaks + moved.badMessages, 0);
  // The same data as B's own client, once both have read the same stream.
  await until(() => copy(moving)?.hash === copy(keeper.c)?.hash, 10000, 'the same copy as B serves');
  console.log(
    `A → B (B has the history): ${moved.snapshots - before.snapshots} snapshots, ` +
      `${moved.deltas - before.deltas} deltas, ${moved.reconnects - before.reconnects} reconnects`,
  );

  // B goes too (its keeper with it): C follows the suite but no client asked it for
  // this topic, so it has no history: one snapshot for the one topic, at most.
  keeper.c.close();
  await kill(b);
  await until(() => moving.inspect().relay?.startsWith('relay-c/') && moving.status === 'open', 10000, 'the move to C');
  const atC = moving.inspect().counters.deltas;
  await until(() => moving.inspect().counters.deltas > atC + 2, 15000, 'deltas from C');
  const last = moving.inspect().counters;
  assert.ok(last.snapshots - moved.snapshots <= 1, `at most one snapshot per topic (${last.snapshots - moved.snapshots})`);
  assert.equal(last.hashMismatches + last.chainBreaks + last.badMessages, 0);
  assert.equal(moving.inspect().url, c.url);
  assert.ok(tasks() > 0);
  console.log(
    `B → C (C has no history): ${last.snapshots - moved.snapshots} snapshots, ${last.deltas - moved.deltas} deltas`,
  );
  moving.close();
});

test('a refused URL is skipped: the client starts with the next one', { skip, timeout: 30000 }, async () => {
  const suite = await startSuite('demo');
  running.push(suite);
  const up = await startRelay({ suites: [suite.suite], name: 'relay-up' });
  running.push(up);
  const refused = `ws://127.0.0.1:${await freePort()}/ws`;
  const { c, tasks } = await client([refused, up.url]);
  await until(() => tasks() > 0, 20000, 'data from the second URL');
  const report = c.inspect();
  assert.equal(report.url, up.url);
  assert.ok(report.moves >= 1);
  assert.match(report.relay, /^relay-up\//);
  c.close();
});
