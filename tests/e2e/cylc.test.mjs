// End-to-end test of the page against one real Cylc 8 workflow: a throwaway Cylc
// installation (HOME, global.cylc, ~/cylc-run) plays a small workflow in simulation
// mode, `clonewire-relay --cylc-run` follows it, and the page in headless Chromium
// must show it like any suite: its status, its tasks with their states in the tree
// and the table, the graph's nodes and edges, every copy hash-verified.
//
// Cylc comes from CLONEWIRE_CYLC_VENV, else target/cylc-venv (scripts/test.sh makes
// it with ensure_cylc). Without it this test fails and says so; it never skips.
// E2E_STAGE_WWW=1 serves this checkout's www/ and wasm-client/dist/ with `--www`, as in
// page.test.mjs.
//
//   cargo build -p clonewire-relay && npm run build && npm run test:e2e

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CHROMIUM_PATH, launchChromium } from '../../scripts/lib/browser.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const relayBinary = process.env.CLONEWIRE_RELAY ?? join(root, 'target/debug/clonewire-relay');
const venv = resolve(root, process.env.CLONEWIRE_CYLC_VENV ?? 'target/cylc-venv');
const cylcBinary = join(venv, 'bin/cylc');
const artifacts = join(root, 'tests/artifacts');
/** A scheduler takes a few seconds to start and a cycle to show tasks. */
const TIMEOUT = 30_000;
const WORKFLOW = 'e2e/run1';

const FLOW = `[scheduling]
    cycling mode = integer
    initial cycle point = 1
    runahead limit = P2
    [[graph]]
        P1 = "foo => bar"
[runtime]
    [[root]]
        [[[simulation]]]
            default run length = PT2S
    [[foo]]
    [[bar]]
`;

let scratch; // the throwaway Cylc installation and the browser profile
let relay; // { child, url }
let context;
let page;
let played = false;
const problems = [];

/** Runs `cylc ARGS` in the sandbox; throws with its output if it fails. */
function cylc(...args) {
  return execFileSync(cylcBinary, args, {
    cwd: scratch,
    env: { ...process.env, HOME: join(scratch, 'home'), CYLC_CONF_PATH: join(scratch, 'conf') },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
  });
}

async function waitFor(what, done, limit = TIMEOUT) {
  const end = Date.now() + limit;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts `clonewire-relay --cylc-run DIR` and resolves with its page's URL. */
function startRelay(runDir, extraArgs) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(relayBinary, ['--cylc-run', runDir, '--listen', '127.0.0.1:0', ...extraArgs], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the relay did not say where it listens:\n${output}`)), 15_000);
    const onData = (chunk) => {
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

before(async () => {
  assert.ok(
    existsSync(cylcBinary),
    `cylc-flow is not installed at ${venv}: run scripts/test.sh (its ensure_cylc makes the venv), ` +
      'or set CLONEWIRE_CYLC_VENV to a venv with cylc-flow 8.5.4',
  );
  assert.ok(existsSync(relayBinary), `no relay at ${relayBinary}: cargo build -p clonewire-relay`);
  assert.ok(existsSync(join(root, 'dist/site/index.html')), 'no dist/site/: npm run build');
  assert.ok(existsSync(CHROMIUM_PATH), `no Chromium at ${CHROMIUM_PATH}: apt-get install -y chromium`);
  mkdirSync(artifacts, { recursive: true });
  scratch = mkdtempSync(join(tmpdir(), 'clonewire-e2e-cylc-'));
  const runDir = join(scratch, 'home/cylc-run');
  mkdirSync(join(runDir, WORKFLOW), { recursive: true });
  mkdirSync(join(scratch, 'conf'));
  // Simulated jobs need `cylc` on their PATH, which the throwaway HOME does not give.
  writeFileSync(
    join(scratch, 'conf/global.cylc'),
    `[platforms]\n    [[localhost]]\n        cylc path = ${join(venv, 'bin')}\n`,
  );
  writeFileSync(join(runDir, WORKFLOW, 'flow.cylc'), FLOW);

  relay = await startRelay(runDir, process.env.E2E_STAGE_WWW ? ['--www', stageWww()] : []);
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
  cylc('play', '--mode=simulation', WORKFLOW);
  played = true;
  await waitFor('the contact file', () => existsSync(join(runDir, WORKFLOW, '.service/contact')));

  context = await launchChromium(join(scratch, 'profile'), { viewport: { width: 1280, height: 800 } });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
});

after(async () => {
  await context?.close();
  if (played) {
    try {
      cylc('stop', '--now', '--now', WORKFLOW);
    } catch (error) {
      console.error(`cylc stop failed: ${error.message}`);
    }
  }
  if (relay && relay.child.exitCode === null) {
    const exited = new Promise((r) => relay.child.once('exit', r));
    relay.child.kill('SIGTERM');
    const timer = setTimeout(() => relay.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Waits for `predicate` in the page; on a timeout, says what the page showed. */
async function waitInPage(what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: TIMEOUT });
  } catch (error) {
    const seen = await page
      .evaluate(() => ({
        workflows: [...document.querySelectorAll('#workflow-list [data-workflow]')].map(
          (w) => `${w.dataset.workflow}:${w.querySelector('.wf-state')?.dataset.state}`,
        ),
        tree: [...document.querySelectorAll('.tree-row')].map((r) => r.textContent),
        report: globalThis.clonewire?.client.inspect(),
      }))
      .catch((e) => `(the page could not say: ${e.message})`);
    throw new Error(`timed out waiting for ${what}; the page showed ${JSON.stringify(seen, null, 1)}\nrelay log:\n${relay.output()}`, {
      cause: error,
    });
  }
}

test('the page shows the real workflow live, with its status', async () => {
  await page.goto(relay.url);
  await waitInPage(
    'the workflow, live and running',
    (id) => {
      const item = document.querySelector(`#workflow-list [data-workflow="${id}"]`);
      return (
        item?.querySelector('.wf-state')?.dataset.state === 'live' &&
        [...item.querySelectorAll('.wf-status')].some((s) => s.dataset.status === 'running')
      );
    },
    WORKFLOW,
  );
  assert.equal(await page.locator('#selected-workflow').textContent(), WORKFLOW);
});

test('the tree and the table show its tasks with their states', async () => {
  const states = ['waiting', 'preparing', 'submitted', 'running', 'succeeded', 'failed'];
  await waitInPage(
    'foo and bar in the tree, with states',
    (known) => {
      const rows = [...document.querySelectorAll('.panel[data-view="tree"] .tree-row[data-kind="task"]')];
      const named = (n) => rows.filter((r) => r.querySelector('.tree-name')?.textContent === n);
      return ['foo', 'bar'].every((n) =>
        named(n).some((r) => known.includes(r.querySelector('.tree-status')?.dataset.status)),
      );
    },
    states,
  );
  const cycles = await page.locator('.panel[data-view="tree"] .tree-row[data-kind="cycle"] .tree-name').allTextContents();
  assert.ok(cycles.length >= 1 && cycles.every((c) => /^\d+$/.test(c)), `cycle points head the tree: ${cycles}`);
  await waitInPage('foo and bar in the table, with states', () => {
    const rows = [...document.querySelectorAll('.panel[data-view="table"] .vlist-row:not([hidden])')];
    const names = new Set(rows.map((r) => r.querySelector('.col-name')?.textContent));
    return names.has('foo') && names.has('bar') && rows.every((r) => r.querySelector('.col-state')?.textContent);
  });
  // A simulated job runs: some task shows its latest job.
  await waitInPage('a task with a job in the table', () =>
    [...document.querySelectorAll('.panel[data-view="table"] .vlist-row:not([hidden]) .col-job')].some((c) => c.textContent.trim()),
  );
});

test('the graph draws its tasks and the edges between them', async () => {
  await waitInPage(
    'graph nodes and edges',
    () => document.querySelectorAll('.graph-node').length >= 2 && document.querySelectorAll('.graph-edges path').length >= 1,
  );
});

test('every copy is verified, and a pause shows as paused', async () => {
  await waitInPage(
    'every topic of the workflow verified',
    (id) => {
      const rows = [...document.querySelectorAll('#topics tbody tr')].filter((r) => r.dataset.workflow === id);
      const topics = new Set(rows.map((r) => r.dataset.topic));
      return (
        ['workflow', 'taskProxies', 'familyProxies', 'jobs', 'edges'].every((t) => topics.has(t)) &&
        rows.every((r) => r.dataset.verified === 'true')
      );
    },
    WORKFLOW,
  );
  cylc('pause', WORKFLOW);
  await waitInPage(
    'the paused status',
    (id) =>
      [...document.querySelectorAll(`#workflow-list [data-workflow="${id}"] .wf-status`)].some((s) => s.dataset.status === 'paused'),
    WORKFLOW,
  );
  const report = await page.evaluate(() => globalThis.clonewire.client.inspect());
  assert.ok(report.topics.every((t) => t.verified), JSON.stringify(report.topics));
  assert.equal(report.counters.hashMismatches, 0);
  await page.screenshot({ path: join(artifacts, 'page-cylc.png') });
});

test('no console errors, page errors or failed requests', () => {
  assert.deepEqual(problems, []);
});
