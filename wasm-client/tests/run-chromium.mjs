#!/usr/bin/env node
// Runs the wasm binding tests (tests/browser.rs) in headless Chromium through
// chromedriver; Chromium's arguments come from wasm-client/webdriver.json.
// Needs Debian's `chromium` and `chromium-driver`; never downloads a browser.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const crate = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const chromedriver = process.env.CHROMEDRIVER ?? '/usr/bin/chromedriver';
if (!existsSync(chromedriver)) {
  console.error(`no chromedriver at ${chromedriver}: apt-get install -y chromium chromium-driver`);
  process.exit(1);
}
const result = spawnSync(
  'cargo',
  ['test', '-p', 'clonewire-wasm', '--target', 'wasm32-unknown-unknown', '--test', 'browser'],
  // The runner reads webdriver.json from its working directory.
  { cwd: crate, stdio: 'inherit', env: { ...process.env, CHROMEDRIVER: chromedriver } },
);
process.exit(result.status ?? 1);
