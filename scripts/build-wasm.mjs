#!/usr/bin/env node
// Builds the npm module `clonewire` into dist/:
//   cargo (profile wasm-release) → wasm-bindgen --target web → wasm-opt → front-end.
// For measuring, not shipping: CLONEWIRE_OPT=z|s|2|3 overrides the profile's opt-level
// (and wasm-opt's -O level to match), CLONEWIRE_DIST=DIR writes elsewhere, and
// CLONEWIRE_NAMES=1 keeps function names (for profiles and twiggy).
// The wasm-bindgen CLI must be exactly the version of the `wasm-bindgen` crate in
// Cargo.lock; it is installed with cargo when missing. wasm-opt comes from npm's
// `binaryen` package (a devDependency), never from the system.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.CLONEWIRE_DIST ? resolve(process.env.CLONEWIRE_DIST) : join(root, 'dist');
/** The shipped build is small over fast: see `[profile.wasm-release]` in Cargo.toml. */
const opt = process.env.CLONEWIRE_OPT ?? profileOptLevel();
const names = process.env.CLONEWIRE_NAMES === '1';
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(root, 'target');

function run(command, args, options = {}) {
  console.log(`$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.status !== 0) {
    throw new Error(`${command} failed (${result.error?.message ?? `exit ${result.status}`})`);
  }
}

/** The version of the wasm-bindgen crate the build links, from Cargo.lock. */
function wasmBindgenVersion() {
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
  const match = lock.match(/\[\[package\]\]\nname = "wasm-bindgen"\nversion = "([^"]+)"/);
  if (!match) throw new Error('wasm-bindgen is not in Cargo.lock');
  return match[1];
}

function installedCliVersion() {
  try {
    return execFileSync('wasm-bindgen', ['--version'], { encoding: 'utf8' }).trim().split(' ')[1];
  } catch {
    return undefined;
  }
}

/** The opt-level of `[profile.wasm-release]` in Cargo.toml. */
function profileOptLevel() {
  const manifest = readFileSync(join(root, 'Cargo.toml'), 'utf8');
  const section = manifest.split('[profile.wasm-release]')[1] ?? '';
  const match = section.split('\n[')[0].match(/^opt-level\s*=\s*"?([0-9sz])"?/m);
  return match ? match[1] : 'z';
}

const version = wasmBindgenVersion();
if (installedCliVersion() !== version) {
  run('cargo', ['install', 'wasm-bindgen-cli', '--version', version, '--locked']);
}

const cargoEnv = { ...process.env, CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL: opt };
if (names) cargoEnv.CARGO_PROFILE_WASM_RELEASE_STRIP = 'false';
run('cargo', [
  'build', '-p', 'clonewire-wasm', '--target', 'wasm32-unknown-unknown', '--profile', 'wasm-release',
], { env: cargoEnv });
const built = join(targetDir, 'wasm32-unknown-unknown', 'wasm-release', 'clonewire_wasm.wasm');

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
run('wasm-bindgen', [
  '--target', 'web', '--no-typescript', ...(names ? ['--keep-debug'] : []),
  '--out-dir', dist, '--out-name', 'clonewire_wasm', built,
]);

const wasmOpt = join(root, 'node_modules', '.bin', 'wasm-opt');
if (!existsSync(wasmOpt)) {
  throw new Error('wasm-opt is missing: run `npm ci` first (it comes from the binaryen package)');
}
const wasm = join(dist, 'clonewire_wasm_bg.wasm');
// The features rustc enables by default for wasm32-unknown-unknown; nothing newer.
run(wasmOpt, [
  `-O${opt}`, ...(names ? ['-g'] : []), '--enable-bulk-memory', '--enable-mutable-globals', '--enable-sign-ext',
  '--enable-nontrapping-float-to-int', '--enable-reference-types', '--enable-multivalue',
  wasm, '-o', wasm,
]);

for (const file of ['index.js', 'index.d.ts']) {
  copyFileSync(join(root, 'wasm-client', 'js', file), join(dist, file));
}

console.log(`opt-level ${opt}${names ? ', names kept' : ''}:`);
for (const file of ['clonewire_wasm_bg.wasm', 'clonewire_wasm.js', 'index.js']) {
  const bytes = readFileSync(join(dist, file));
  const brotli = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  console.log(
    `${file.padEnd(24)} ${String(statSync(join(dist, file)).size).padStart(8)} B, ` +
      `${String(gzipSync(bytes, { level: 9 }).length).padStart(7)} B gzipped, ` +
      `${String(brotli).padStart(7)} B brotli`,
  );
}
