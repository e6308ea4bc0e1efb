// End-to-end test of the page the relay serves, in a real browser: starts
// `clonewire-relay --demo` on a free port, opens the page in Debian's Chromium
// (driven by playwright-core; never a downloaded browser) and checks what a person
// would: live workflows, tree and table updating, every copy hash-verified in the
// inspector, the merged query shrinking when a view closes, no console errors.
// Screenshots go to tests/artifacts/.
//
//   cargo build -p clonewire-relay && npm run build && npm run test:e2e
//
// Environment: CLONEWIRE_RELAY (the relay binary), CHROMIUM (the browser),
// E2E_STAGE_WWW=1 to serve this checkout's www/ and wasm-client/dist/ with `--www` instead of
// the copy the binary holds.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

import { CHROMIUM_PATH, launchChromium } from '../../scripts/lib/browser.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const relayBinary = process.env.CLONEWIRE_RELAY ?? join(root, 'target/debug/clonewire-relay');
const artifacts = join(root, 'tests/artifacts');
/** Long enough for a slow, busy machine; the demo changes several times a second. */
const LIVE_TIMEOUT = 20_000;

let relay; // { child, url, output }
let context; // the browser
let page;
let scratch; // temporary folders, removed at the end
const problems = []; // console errors, page errors, failed requests
/** Frames the page's websocket received: { text, binary } counts. */
const frames = { text: 0, binary: 0 };
/** Deflated deltas and snapshots the page received, by `${workflow}\n${topic}`: { frames, bytes }. */
const deflated = new Map();
/**
 * Frames of at least this many bytes go out deflated: low enough that the demo's
 * snapshots do (the page inflates them before its checks) and its deltas mostly not.
 */
const COMPRESS_MIN_BYTES = 2048;

/** Starts the relay and resolves with its page's URL, read from its log. */
function startRelay(extraArgs) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(relayBinary, ['--demo', '--listen', '127.0.0.1:0', ...extraArgs], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the relay did not say where it listens:\n${output}`)), 15_000);
    const onData = (chunk) => {
      // Strip colour codes in case the logger adds them anyway.
      output += chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      const match = /listening: the page at (http:\/\/[^\s/]+\/)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ child, url: match[1], output: () => output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code}) before listening:\n${output}`));
    });
  });
}

/** A folder with www/'s files and wasm-client/dist/ as pkg/, for `--www`. */
function stageWww() {
  const dir = join(scratch, 'www');
  mkdirSync(dir);
  for (const name of readdirSync(join(root, 'www'))) symlinkSync(join(root, 'www', name), join(dir, name));
  symlinkSync(join(root, 'wasm-client', 'dist'), join(dir, 'pkg'));
  return dir;
}

async function stopRelay() {
  if (!relay || relay.child.exitCode !== null) return;
  const exited = new Promise((r) => relay.child.once('exit', r));
  relay.child.kill('SIGTERM');
  const timer = setTimeout(() => relay.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

before(async () => {
  assert.ok(existsSync(relayBinary), `no relay at ${relayBinary}: cargo build -p clonewire-relay`);
  assert.ok(existsSync(join(root, 'dist/site/index.html')), 'no dist/site/: npm run build');
  assert.ok(existsSync(CHROMIUM_PATH), `no Chromium at ${CHROMIUM_PATH}: apt-get install -y chromium`);
  mkdirSync(artifacts, { recursive: true });
  scratch = mkdtempSync(join(tmpdir(), 'clonewire-e2e-'));
  const config = join(scratch, 'relay.toml');
  writeFileSync(config, `[limits]\ncompress_min_bytes = ${COMPRESS_MIN_BYTES}\n`);
  relay = await startRelay(['--config', config, ...(process.env.E2E_STAGE_WWW ? ['--www', stageWww()] : [])]);
  // Without the page nothing below can pass: say why at once instead of timing out.
  // The built page imports the module under a content-hashed name (`--www` serves
  // the plain one): follow app.js to the module, and the module to its wasm.
  const app = await fetch(new URL('app.js', relay.url));
  assert.equal(app.status, 200, 'GET /app.js: the relay must serve the page (npm run build)');
  const entry = /from '\.\/(pkg\/index(?:\.[0-9a-f]{16})?\.js)'/.exec(await app.text())?.[1];
  assert.ok(entry, 'app.js imports the module from ./pkg/');
  const module = await fetch(new URL(entry, relay.url));
  assert.equal(module.status, 200, `GET /${entry}: the relay must serve the module under /pkg/`);
  const wasm = /'\.\/(clonewire_wasm_bg(?:\.[0-9a-f]{16})?\.wasm)'/.exec(await module.text())?.[1];
  assert.ok(wasm, `${entry} names its wasm`);
  for (const path of ['', `pkg/${wasm}`]) {
    const response = await fetch(new URL(path, relay.url));
    assert.equal(response.status, 200, `GET /${path}: the relay must serve the page and the module (as /pkg/)`);
  }

  context = await launchChromium(join(scratch, 'profile'), { viewport: { width: 1280, height: 800 } });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('websocket', (ws) =>
    ws.on('framereceived', ({ payload }) => {
      frames[typeof payload === 'string' ? 'text' : 'binary'] += 1;
      if (typeof payload === 'string') return;
      const frame = JSON.parse(inflateRawSync(payload).toString());
      if (frame.type !== 'delta' && frame.type !== 'snapshot') return;
      const key = `${frame.workflow}\n${frame.topic}`;
      const seen = deflated.get(key) ?? { frames: 0, bytes: 0 };
      deflated.set(key, { frames: seen.frames + 1, bytes: seen.bytes + payload.length });
    }),
  );
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
});

after(async () => {
  await context?.close();
  await stopRelay();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('the page connects and lists the demo workflows, live', async () => {
  await page.goto(relay.url);
  await page.locator('#connection[data-status="open"]').waitFor({ timeout: LIVE_TIMEOUT });
  await waitInPage('three live workflows', () => {
    const states = [...document.querySelectorAll('#workflow-list .wf-state')].map((s) => s.dataset.state);
    return states.length >= 3 && states.every((s) => s === 'live' || s === 'busy');
  });
  const names = await page.locator('#workflow-list .wf-name').allTextContents();
  assert.deepEqual(names, ['demo', 'ensemble', 'nightly']);
  assert.equal(await page.locator('#selected-workflow').textContent(), 'demo');
  // Each workflow's own status, as Cylc says it.
  await waitInPage('workflow statuses', () =>
    [...document.querySelectorAll('#workflow-list .wf-status')].every((s) => ['running', 'paused'].includes(s.dataset.status)));
});

/**
 * Waits for `predicate` in the page; on a timeout, fails with what the page showed
 * (the workflows' states and the client's report), so a failure explains itself.
 */
async function waitInPage(what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: LIVE_TIMEOUT });
  } catch (error) {
    const seen = await page
      .evaluate(() => ({
        connection: document.querySelector('#connection')?.dataset.status,
        workflows: [...document.querySelectorAll('#workflow-list [data-workflow]')].map(
          (w) => `${w.dataset.workflow}:${w.querySelector('.wf-state')?.dataset.state}`,
        ),
        report: globalThis.clonewire?.client.inspect(),
      }))
      .catch((e) => `(the page could not say: ${e.message})`);
    throw new Error(`timed out waiting for ${what}; the page showed ${JSON.stringify(seen, null, 1)}`, { cause: error });
  }
}

/** The text of every row of a view, to see it change. */
const rowsText = (view) =>
  page.evaluate(
    (v) => [...document.querySelectorAll(`.panel[data-view="${v}"] .vlist-row:not([hidden])`)].map((r) => r.textContent).join('\n'),
    view,
  );

async function waitForChange(view) {
  await page.waitForFunction(
    (v) => document.querySelectorAll(`.panel[data-view="${v}"] .vlist-row:not([hidden])`).length > 3,
    view,
    { timeout: LIVE_TIMEOUT },
  );
  const first = await rowsText(view);
  await page.waitForFunction(
    ([v, before]) =>
      [...document.querySelectorAll(`.panel[data-view="${v}"] .vlist-row:not([hidden])`)].map((r) => r.textContent).join('\n') !== before,
    [view, first],
    { timeout: LIVE_TIMEOUT },
  );
}

test('the tree and the table show tasks and update live', async () => {
  await waitForChange('tree');
  await waitForChange('table');
  const cycle = page.locator('.panel[data-view="tree"] .tree-row[data-kind="cycle"]').first();
  assert.match(await cycle.textContent(), /\d{8}T\d{2}/, 'cycle points head the tree');
  // Sorting and filtering the table.
  await page.locator('.panel[data-view="table"] .table-sort[data-key="state"]').click();
  assert.equal(await page.locator('.panel[data-view="table"] [aria-sort]').getAttribute('aria-sort'), 'ascending');
  await page.locator('.panel[data-view="table"] .table-filter').fill('archive');
  await page.waitForFunction(() => /of/.test(document.querySelector('.table-count').textContent));
  const names = await page.locator('.panel[data-view="table"] .vlist-row:not([hidden]) .col-name').allTextContents();
  assert.ok(names.length >= 1 && names.every((n) => n === 'archive'), `filtered: ${names}`);
  await page.locator('.panel[data-view="table"] .table-filter').fill('');
});

test('the graph draws tasks and edges', async () => {
  await page.waitForFunction(
    () => document.querySelectorAll('.graph-node').length >= 50 && document.querySelectorAll('.graph-edges path').length >= 50,
    null,
    { timeout: LIVE_TIMEOUT },
  );
});

test('the inspector shows every copy verified and the merged query confirmed', async () => {
  await waitInPage('every copy verified and the query confirmed', () => {
    const rows = [...document.querySelectorAll('#topics tbody tr')];
    const topics = new Set(rows.filter((r) => r.dataset.workflow === 'demo').map((r) => r.dataset.topic));
    return (
      ['workflow', 'taskProxies', 'familyProxies', 'jobs', 'edges'].every((t) => topics.has(t)) &&
      rows.every((r) => r.dataset.verified === 'true') &&
      document.querySelector('.badge[data-ok="true"]') !== null
    );
  });
  const report = await page.evaluate(() => globalThis.clonewire.client.inspect());
  assert.ok(report.topics.every((t) => t.verified), JSON.stringify(report.topics));
  assert.equal(report.counters.hashMismatches, 0);
  // Large frames came deflated (binary) and small ones as text, and all of it checked.
  assert.ok(frames.binary > 0 && frames.text > 0, `frames received: ${JSON.stringify(frames)}`);
  assert.equal(report.counters.badMessages, 0, JSON.stringify(report.counters));
  assert.deepEqual(report.views.map((v) => v.name).sort(), ['graph', 'table', 'tree', 'workflows']);
  // The wire meter reads every frame with the module's frameTopic(): live topics show a rate.
  await waitInPage('a message rate for some live topic', () =>
    [...document.querySelectorAll('#topics tbody tr td:nth-child(6)')].some((c) => Number.parseFloat(c.textContent) > 0),
  );
  // ... deflated frames too, under their topics and at their compressed size.
  const sent = Object.fromEntries(deflated);
  assert.ok(Object.keys(sent).length > 0, 'some deltas or snapshots came deflated');
  await waitInPage(
    'the wire meter to count every deflated frame under its topic',
    (expected) =>
      Object.entries(expected).every(([key, { frames, bytes }]) => {
        const [workflow, topic] = key.split('\n');
        const counted = globalThis.clonewire.meter.totals(workflow, topic);
        return counted.deflated >= frames && counted.deflatedBytes >= bytes;
      }),
    sent,
  );
  assert.equal(await page.evaluate(() => globalThis.clonewire.meter.unreadable), 0);
  await waitInPage('the inspector to show a topic that came deflated', () =>
    [...document.querySelectorAll('#topics tbody tr td:nth-child(7)')].some(
      (c) => Number(c.dataset.deflated) > 0 && / deflated: /.test(c.title),
    ),
  );
  await page.screenshot({ path: join(artifacts, 'page-1280x800.png') });
});

test('closing a view shrinks the merged query; opening it again grows it', async () => {
  const merged = page.locator('#merged-query');
  const before = Number(await merged.getAttribute('data-fields'));
  assert.match(await merged.getAttribute('data-query'), /edges/);
  await page.locator('.panel[data-view="graph"] .panel-close').click();
  await page.waitForFunction(
    (n) => {
      const q = document.querySelector('#merged-query');
      return Number(q.dataset.fields) < n && !/edges/.test(q.dataset.query) && document.querySelector('.badge[data-ok="true"]');
    },
    before,
    { timeout: LIVE_TIMEOUT },
  );
  assert.equal(await page.locator('.panel[data-view="graph"]').count(), 0);
  // The relay drops the copy the page no longer asks for.
  await page.waitForFunction(() => !document.querySelector('#topics tr[data-topic="edges"]'), null, { timeout: LIVE_TIMEOUT });
  await page.screenshot({ path: join(artifacts, 'page-graph-closed.png') });

  await page.locator('#view-toggles [data-view="graph"]').click();
  await page.waitForFunction((n) => Number(document.querySelector('#merged-query').dataset.fields) === n, before, {
    timeout: LIVE_TIMEOUT,
  });
});

test('the page stays smooth at the demo rate', async (t) => {
  // Frames and long tasks over three seconds of live updates. Printed for people;
  // the assertion is loose so a busy machine does not fail it.
  const stats = await page.evaluate(
    () =>
      new Promise((done) => {
        const long = [];
        const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => long.push(e.duration)));
        observer.observe({ type: 'longtask' });
        const gaps = [];
        let last = performance.now();
        const start = last;
        const tick = (now) => {
          gaps.push(now - last);
          last = now;
          if (now - start < 3000) requestAnimationFrame(tick);
          else {
            observer.disconnect();
            gaps.sort((a, b) => a - b);
            done({ frames: gaps.length, medianMs: gaps[gaps.length >> 1], worstMs: gaps.at(-1), longTasks: long.length, longestTaskMs: Math.max(0, ...long) });
          }
        };
        requestAnimationFrame(tick);
      }),
  );
  t.diagnostic(`frames ${stats.frames}, median ${stats.medianMs.toFixed(1)} ms, worst ${stats.worstMs.toFixed(1)} ms; long tasks ${stats.longTasks} (longest ${stats.longestTaskMs.toFixed(0)} ms)`);
  assert.ok(stats.worstMs < 1000, `a frame took ${stats.worstMs} ms`);
});

test('the page fits a narrow window', async () => {
  await page.setViewportSize({ width: 420, height: 900 });
  await page.waitForTimeout(500);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
  await page.screenshot({ path: join(artifacts, 'page-420x900.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
});

/** What a browser downloads for the page and its module on a first visit (the wasm ≤ 160 KB of it). */
const FIRST_LOAD_BYTES = 250_000;

/** Loads `url` in the page and resolves with what each HTTP request cost: { url, status, cached, encoding, bytes }. */
async function loadCounted(cdp, go) {
  const requests = new Map();
  const sent = ({ requestId, request }) => requests.set(requestId, { url: request.url, bytes: 0, cached: false });
  const received = ({ requestId, response }) => {
    const r = requests.get(requestId);
    if (!r) return;
    r.status = response.status;
    r.cached ||= Boolean(response.fromDiskCache || response.fromPrefetchCache);
    r.encoding = response.headers['content-encoding'] ?? response.headers['Content-Encoding'];
  };
  const fromCache = ({ requestId }) => {
    const r = requests.get(requestId);
    if (r) r.cached = true;
  };
  const finished = ({ requestId, encodedDataLength }) => {
    const r = requests.get(requestId);
    if (r) r.bytes = encodedDataLength;
  };
  cdp.on('Network.requestWillBeSent', sent);
  cdp.on('Network.responseReceived', received);
  cdp.on('Network.requestServedFromCache', fromCache);
  cdp.on('Network.loadingFinished', finished);
  try {
    await go();
    await page.locator('#connection[data-status="open"]').waitFor({ timeout: LIVE_TIMEOUT });
    await waitInPage('the page to show its tasks', () => document.querySelectorAll('.vlist-row:not([hidden])').length > 3);
  } finally {
    cdp.off('Network.requestWillBeSent', sent);
    cdp.off('Network.responseReceived', received);
    cdp.off('Network.requestServedFromCache', fromCache);
    cdp.off('Network.loadingFinished', finished);
  }
  return [...requests.values()].filter((r) => r.url.startsWith('http'));
}

/** `--www` serves files as they are: no compressed forms, no hashed names. */
const built = process.env.E2E_STAGE_WWW ? 'SKIPPED: E2E_STAGE_WWW serves www/ as it is, not the built page' : false;

test('a first visit downloads the page compressed; a reload downloads no module file again', { skip: built }, async (t) => {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.clearBrowserCache');
  await page.goto('about:blank');
  const first = await loadCounted(cdp, () => page.goto(relay.url));
  const sum = (list) => list.reduce((n, r) => n + r.bytes, 0);
  const wasm = first.find((r) => /\/pkg\/clonewire_wasm_bg\.[0-9a-f]{16}\.wasm$/.test(r.url));
  assert.ok(wasm, `the page loaded its wasm: ${first.map((r) => r.url).join(', ')}`);
  assert.equal(wasm.encoding, 'br', 'Chromium asks for brotli and gets it');
  assert.ok(wasm.bytes <= 160_000, `the wasm cost ${wasm.bytes} B`);
  assert.ok(sum(first) <= FIRST_LOAD_BYTES, `a first visit cost ${sum(first)} B: ${JSON.stringify(first)}`);

  const again = await loadCounted(cdp, () => page.reload());
  const module = again.filter((r) => /\/pkg\//.test(r.url));
  // Immutable, content-hashed: served from the cache without asking the relay.
  assert.ok(module.every((r) => r.cached || r.status === undefined), `module files on reload: ${JSON.stringify(module)}`);
  // The page's own files revalidate (304s): a few hundred bytes each.
  assert.ok(again.filter((r) => r.status === 304).length >= 5, JSON.stringify(again));
  assert.ok(again.every((r) => r.bytes < 2_000), JSON.stringify(again));
  assert.ok(sum(again) < 25_000, `a reload cost ${sum(again)} B: ${JSON.stringify(again)}`);
  t.diagnostic(`first visit ${sum(first)} B over ${first.length} requests (wasm ${wasm.bytes} B); reload ${sum(again)} B`);
  await cdp.detach();
});

test('no console errors, page errors or failed requests', () => {
  assert.deepEqual(problems, []);
});
