#!/usr/bin/env node
// Packaging test: `npm pack` the module (wasm-client/), check the tarball holds exactly
// the module, its guide and its licenses, install it into a fresh Vite app,
// build it, serve it and open it in headless Chromium (Debian's, via playwright-core;
// no browser is ever downloaded). The page connects to the scripted relay of the node
// tests and must show live data. Run `npm run build` first.

import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium, serveFiles } from '../../scripts/lib/browser.mjs';
import { greet, startRelay, stream } from '../node/fake-relay.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const work = join(here, '.work');
const app = join(work, 'app');

function npm(args, cwd) {
  console.log(`$ npm ${args.join(' ')}`);
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

rmSync(work, { recursive: true, force: true });
cpSync(join(here, 'app'), app, { recursive: true });
const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], join(root, 'wasm-client')));
const tarball = join(work, packed[0].filename);
const shipped = packed[0].files.map((f) => f.path).sort();
console.log(`packed ${packed[0].filename}: ${shipped.join(', ')}`);
const expected = [
  'LICENSE-APACHE', 'LICENSE-MIT', 'README.md', 'dist/clonewire_wasm.js', 'dist/clonewire_wasm_bg.wasm',
  'dist/index.d.ts', 'dist/index.js', 'package.json',
];
if (JSON.stringify(shipped) !== JSON.stringify(expected)) {
  throw new Error(`the tarball holds ${shipped.join(', ')}; expected exactly ${expected.join(', ')}`);
}
const manifest = JSON.parse(readFileSync(join(root, 'wasm-client', 'package.json'), 'utf8'));
for (const field of ['license', 'repository', 'engines', 'keywords', 'types']) {
  if (!manifest[field]) throw new Error(`package.json lacks ${field}`);
}
// The module's own guide, not the repository's README.
const readme = readFileSync(join(root, 'wasm-client', 'README.md'), 'utf8');
if (!readme.includes('connect(')) throw new Error('wasm-client/README.md is not the client guide');
npm(['install', '--no-audit', '--no-fund'], app);
npm(['install', '--no-audit', '--no-fund', tarball], app);
npm(['run', 'build'], app);

const server = await serveFiles((path) => join(app, 'dist', path === '/' ? 'index.html' : path));
const relay = await startRelay();
relay.onMessage = (message) => {
  if (message.type === 'subscribe') {
    greet(relay, message.query);
    for (const step of stream.steps) relay.send(step.delta);
  }
};

const profile = mkdtempSync(join(tmpdir(), 'clonewire-chromium-'));
const browser = await launchChromium(profile);
let failed = false;
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error('page error:', error.message));
  const url = `http://127.0.0.1:${server.address().port}/?relay=${encodeURIComponent(relay.url)}`;
  await page.goto(url);
  await page.waitForFunction(() => document.title.startsWith('changes:'), null, { timeout: 15000 });
  const last = stream.steps.filter((s) => s.delta.topic === 'taskProxies').at(-1).snapshot.value;
  const want = Object.fromEntries(Object.entries(last).map(([id, e]) => [id, { status: e.status }]));
  await page.waitForFunction(
    (expected) => document.getElementById('out').textContent === expected,
    JSON.stringify({ workflows: { demo: { taskProxies: want } } }),
    { timeout: 15000 },
  );
  const report = await page.evaluate(() => window.clonewire.inspect());
  if (report.counters.hashMismatches !== 0 || report.status !== 'open') {
    throw new Error(`unexpected report: ${JSON.stringify(report.counters)}`);
  }
  console.log(`ok: the packed module loads in a Vite build in Chromium and shows live data ` +
    `(${report.counters.deltas} deltas verified)`);
} catch (error) {
  failed = true;
  console.error(`not ok: ${error.message}`);
} finally {
  await browser.close();
  await relay.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
