// N relays behind nginx (Debian's package) proxying websockets: one relay is killed;
// its clients reconnect through nginx, land on another relay and resume there without
// losing or repeating data (every delta chains to the one before and every hash
// checks). Prints what the move cost, in snapshots and deltas. The setup is the one
// docs/deploy.md describes. Skipped (SKIPPED printed) when nginx is not installed.
// Needs `cargo build -p clonewire-relay -p clonewire-tools` and `npm run build`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import WebSocket from 'ws';

import { connect } from 'clonewire';
import { freePort, kill, missingBinaries, startRelay, startSuite, until } from './failover-relays.mjs';

const NGINX = process.env.CLONEWIRE_NGINX ?? ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const skip = missingBinaries() || (NGINX ? false : 'SKIPPED: no nginx: apt-get install nginx (scripts/test.sh does)');
if (skip) console.log(skip);

const RELAYS = 3;
const CLIENTS = 6;
const QUERY = '{ workflows(ids: ["demo"]) { taskProxies { state } workflow } }';
const TOPICS = ['taskProxies', 'workflow'];
const running = [];
const dirs = [];
after(async () => {
  for (const proc of running) await kill(proc);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** nginx's config: round robin over the relays, websockets upgraded, a dead relay skipped. */
function nginxConfig(dir, port, relays) {
  const servers = relays.map((r) => `    server ${r.address} max_fails=1 fail_timeout=10s;`).join('\n');
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream relays {
${servers}
  }
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location /ws {
      proxy_pass http://relays;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
    }
    location / { proxy_pass http://relays; }
  }
}
`;
}

/** Resolves once something accepts connections on `port`. */
async function listening(port) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((r) => {
      const socket = tcpConnect(port, '127.0.0.1', () => {
        socket.destroy();
        r(true);
      });
      socket.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startNginx(relays) {
  const dir = await mkdtemp(join(tmpdir(), 'clonewire-nginx-'));
  dirs.push(dir);
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, port, relays));
  const child = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const proc = { child };
  running.push(proc);
  await listening(port);
  return { url: `ws://127.0.0.1:${port}/ws`, dir };
}

function copies(c) {
  const out = {};
  for (const t of c.inspect().topics) if (t.workflow === 'demo') out[t.topic] = `${t.seq}:${t.hash}`;
  return out;
}

test(`${RELAYS} relays behind nginx: a relay dies, its clients resume on the others`, { skip, timeout: 90000 }, async () => {
  const suite = await startSuite('demo', { tasks: 40, rate: 10 });
  running.push(suite);
  const relays = [];
  for (let i = 1; i <= RELAYS; i++) {
    const relay = await startRelay({ suites: [suite.suite], name: `relay-${i}` });
    running.push(relay);
    relays.push(relay);
  }
  const nginx = await startNginx(relays);
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = await connect(nginx.url, { WebSocket, reconnectBaseMs: 100, reconnectMaxMs: 500 });
    const view = c.view('tasks', QUERY);
    clients.push({ c, view });
  }
  const ready = ({ c, view }) => c.status === 'open' && Object.keys(view.data()?.workflows.demo?.taskProxies ?? {}).length > 0;
  await until(() => clients.every(ready), 20000, 'every client has data through nginx');
  const on = (c) => c.inspect().relay?.split('/')[0];
  const spread = new Map();
  for (const { c } of clients) spread.set(on(c), (spread.get(on(c)) ?? 0) + 1);
  console.log(`clients per relay through nginx: ${JSON.stringify(Object.fromEntries(spread))}`);
  assert.ok(spread.size > 1, 'nginx spreads the clients');

  // The relay of the first client dies; a client of another relay is the reference.
  const victimName = on(clients[0].c);
  const victim = relays[Number(victimName.split('-')[1]) - 1];
  const moving = clients.filter(({ c }) => on(c) === victimName);
  const reference = clients.find(({ c }) => on(c) !== victimName);
  assert.ok(reference, 'a client on another relay');
  await until(() => moving.every(({ c }) => c.inspect().counters.deltas > 0), 15000, 'deltas before the kill');
  const before = moving.map(({ c }) => c.inspect().counters);
  await kill(victim);
  await until(
    () => moving.every(({ c }) => c.status === 'open' && on(c) && on(c) !== victimName),
    20000,
    'the moved clients open at another relay',
  );
  const arrived = moving.map(({ c }) => c.inspect().counters.deltas);
  await until(
    () => moving.every(({ c }, i) => c.inspect().counters.deltas > arrived[i] + 1),
    20000,
    'deltas after the move',
  );
  // Same data as the reference, once both have read the same stream.
  await until(
    () => moving.every(({ c }) => JSON.stringify(copies(c)) === JSON.stringify(copies(reference.c))),
    15000,
    'the moved clients hold what the reference holds',
  );
  let snapshots = 0;
  let deltas = 0;
  moving.forEach(({ c }, i) => {
    const now = c.inspect().counters;
    assert.equal(now.chainBreaks, 0, 'no delta lost or repeated: every one chains to the last');
    assert.equal(now.hashMismatches + now.badMessages, 0, 'every hash checks');
    assert.ok(now.reconnects >= 1);
    snapshots += now.snapshots - before[i].snapshots;
    deltas += now.deltas - before[i].deltas;
  });
  for (const { c } of clients) {
    const now = c.inspect().counters;
    assert.equal(now.chainBreaks + now.hashMismatches + now.badMessages, 0);
  }
  assert.ok(
    snapshots <= moving.length * TOPICS.length,
    `at most one snapshot per topic per moved client (${snapshots})`,
  );
  console.log(
    `killed ${victimName}: ${moving.length} clients moved through nginx to ` +
      `${moving.map(({ c }) => on(c)).join(', ')}; the move cost ${snapshots} snapshots ` +
      `(of ${moving.length * TOPICS.length} topic copies) and ${deltas} deltas since the kill`,
  );
  for (const { c } of clients) c.close();
});

/** A relay's `/healthz` answer. */
async function health(relay) {
  const answer = await fetch(`http://${relay.address}/healthz`);
  return answer.json();
}

test('an edge relay following cores through nginx moves to another core when its core dies', { skip, timeout: 90000 }, async () => {
  const suite = await startSuite('demo', { tasks: 40, rate: 10 });
  running.push(suite);
  const cores = [];
  for (let i = 1; i <= 2; i++) {
    const core = await startRelay({ suites: [suite.suite], name: `core-${i}` });
    running.push(core);
    cores.push(core);
  }
  const nginx = await startNginx(cores);
  const edge = await startRelay({ followRelays: [nginx.url], name: 'edge' });
  running.push(edge);
  const c = await connect(edge.url, { WebSocket, reconnectBaseMs: 100, reconnectMaxMs: 500 });
  const view = c.view('tasks', QUERY);
  const states = [];
  c.on('workflow', (event) => states.push(event.state));
  await until(
    () => Object.keys(view.data()?.workflows.demo?.taskProxies ?? {}).length > 0,
    20000,
    'data at the edge through nginx',
  );
  // The core the edge's link uses is the one with a client.
  let serving;
  const looking = Date.now() + 10000;
  while (serving === undefined) {
    if (Date.now() > looking) throw new Error('no core serves the edge');
    const counts = await Promise.all(cores.map(health));
    const index = counts.findIndex((h) => h.clients > 0);
    if (index >= 0) {
      serving = cores[index];
    } else {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const before = c.inspect().counters;
  await kill(serving);
  const other = cores.find((core) => core !== serving);
  const deadline = Date.now() + 20000;
  while ((await health(other)).clients === 0) {
    if (Date.now() > deadline) throw new Error('the edge never reached the other core');
    await new Promise((r) => setTimeout(r, 100));
  }
  const atOther = c.inspect().counters.deltas;
  await until(() => c.inspect().counters.deltas > atOther + 2, 20000, 'deltas again at the edge');
  const after = c.inspect().counters;
  assert.equal(after.reconnects, before.reconnects, "the edge's client never lost its own connection");
  assert.equal(after.chainBreaks + after.hashMismatches + after.badMessages, 0);
  assert.ok(after.snapshots - before.snapshots <= TOPICS.length);
  console.log(
    `killed the edge's core: the edge resumed at the other core through nginx; its client saw ` +
      `${after.snapshots - before.snapshots} snapshots and ${after.deltas - before.deltas} deltas, ` +
      `states ${[...new Set(states)].join(' → ')}`,
  );
  c.close();
});
