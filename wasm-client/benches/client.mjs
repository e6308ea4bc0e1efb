#!/usr/bin/env node
// Benchmarks of the npm module (run `npm run build` first; `npm run bench`):
// 1. the gzipped size of what ships (goal: the .wasm at most 100 KB gzipped);
// 2. in headless Chromium, the wasm client applying, verifying and notifying three
//    views for a recorded stream of deltas, against a plain JS store doing the same
//    work without verification (JSON.parse, json-merge-patch, and each view told with
//    its own patch when the message touched its fields), and the floor of the JS-side
//    boundary work any text-in, JSON-text-out wasm client pays. Prints figures; never
//    fails on timing.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { launchChromium, serveFiles } from '../../scripts/lib/browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const tasks = Number(process.env.BENCH_TASKS ?? 500);
const steps = Number(process.env.BENCH_STEPS ?? 5000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
// BENCH_DIST serves another build (e.g. one that keeps function names), and
// BENCH_CPUPROFILE=file.cpuprofile records Chromium's CPU profile of the timed rounds.
const distDir = resolve(process.env.BENCH_DIST ?? join(root, 'wasm-client', 'dist'));
const cpuProfile = process.env.BENCH_CPUPROFILE;

console.log('size of the shipped module (wasm-client/dist/):');
for (const file of ['clonewire_wasm_bg.wasm', 'clonewire_wasm.js', 'index.js']) {
  const bytes = readFileSync(join(distDir, file));
  const gz = gzipSync(bytes, { level: 9 }).length;
  const note = file.endsWith('.wasm') ? `  (goal <= 102400: ${gz <= 102400 ? 'met' : 'NOT met'})` : '';
  console.log(`  ${file.padEnd(24)} ${String(bytes.length).padStart(8)} B raw ${String(gz).padStart(8)} B gzip${note}`);
}

console.log(`\nrecording a stream: ${tasks} tasks, ${steps} deltas (record example)`);
const stream = execFileSync(
  'cargo',
  ['run', '-q', '-p', 'clonewire-wasm', '--example', 'record', '--', String(tasks), String(steps), 'no'],
  { cwd: root, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] },
);

const files = {
  '/': join(here, 'page.html'),
  '/page.js': join(here, 'page.js'),
};
const server = await serveFiles((path) => {
  if (files[path]) return files[path];
  if (path.startsWith('/dist/')) return join(distDir, path.slice('/dist/'.length));
  if (path.startsWith('/json-merge-patch/lib/')) return join(root, 'node_modules', path);
  return undefined;
});

const profile = mkdtempSync(join(tmpdir(), 'clonewire-bench-'));
const browser = await launchChromium(profile);
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error('page error:', error.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => typeof window.bench === 'function');
  let cdp;
  if (cpuProfile) {
    cdp = await browser.newCDPSession(page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
    await cdp.send('Profiler.start');
  }
  const result = await page.evaluate(
    ([text, n]) => window.bench(JSON.parse(text), n),
    [stream, rounds],
  );
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    writeFileSync(cpuProfile, JSON.stringify(profile));
    console.log(`CPU profile written to ${cpuProfile}`);
  }
  const per = (ms) => ((ms * 1000) / result.deltas).toFixed(2);
  console.log(`\nChromium, median of ${rounds} rounds, ${result.deltas} deltas:`);
  console.log(`  wasm client (apply + verify hash and prev + notify 3 views): ${result.wasm.toFixed(1)} ms (${per(result.wasm)} us/delta)`);
  console.log(`  plain JS store (parse + merge-patch + notify 3 views, no checks): ${result.plain.toFixed(1)} ms (${per(result.plain)} us/delta)`);
  console.log(`  view changes told: wasm ${result.told.wasm}, plain JS ${result.told.plain}`);
  console.log(
    `  floor of text in / JSON text out, no Rust at all (encode frame, decode + JSON.parse reply): ` +
      `${result.floor.toFixed(1)} ms (${per(result.floor)} us/delta; best ratio any such client could reach: ` +
      `${(result.plain / result.floor).toFixed(2)})`,
  );
  const ratio = result.plain / result.wasm;
  console.log(`  ratio plain/wasm: ${ratio.toFixed(2)} (goal >= 1.0: ${ratio >= 1 ? 'met' : 'NOT met'})`);
  // The best round is the least disturbed by other work on the machine.
  console.log(
    `  best rounds: wasm ${per(result.bestWasm)} us/delta, plain JS ${per(result.bestPlain)} us/delta, ` +
      `ratio ${(result.bestPlain / result.bestWasm).toFixed(2)}`,
  );
} finally {
  await browser.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
