#!/usr/bin/env node
// Builds the npm module `clonewire` (the package in wasm-client/) into wasm-client/dist/:
//   cargo (profile wasm-release) → wasm-bindgen --target web → wasm-opt → front-end.
// For measuring, not shipping: CLONEWIRE_OPT=z|s|2|3 overrides the profile's opt-level
// (and wasm-opt's -O level to match), CLONEWIRE_DIST=DIR writes the module elsewhere, and
// CLONEWIRE_NAMES=1 keeps function names (for profiles and twiggy).
// The wasm-bindgen CLI must be exactly the version of the `wasm-bindgen` crate in
// Cargo.lock; it is installed with cargo when missing. wasm-opt comes from npm's
// `binaryen` package (a devDependency), never from the system.
//
// It then builds dist/site/ (at the repository's root; inside CLONEWIRE_DIST when set),
// what the relay embeds and serves: the page (www/) and the
// module under pkg/ with content-hashed names (the relay marks them immutable), each
// file beside its brotli (.br) and gzip (.gz) forms, so the relay never compresses.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.CLONEWIRE_DIST ? resolve(process.env.CLONEWIRE_DIST) : join(root, 'wasm-client', 'dist');
/** The relay's page (relay/src/http.rs embeds this folder). */
const site = process.env.CLONEWIRE_DIST ? join(dist, 'site') : join(root, 'dist', 'site');
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
rmSync(site, { recursive: true, force: true });
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

/** Brotli at its best quality, for files made once and served many times. */
function brotli(bytes) {
  return brotliCompressSync(bytes, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });
}

/** `name.js` → `name.<hash>.js`: the first 16 hex digits of the content's SHA-256. */
function hashedName(name, bytes) {
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dot = name.lastIndexOf('.');
  return `${name.slice(0, dot)}.${hash}${name.slice(dot)}`;
}

/** Replaces every quoted occurrence of `from` (a module-relative path) with `to`. */
function relink(text, from, to) {
  return text.replaceAll(`'${from}'`, `'${to}'`).replaceAll(`"${from}"`, `"${to}"`);
}

/**
 * dist/site/: the page and pkg/ as the relay serves them (README files stay out). The wasm, its glue and the
 * module's entry get content-hashed names, and whoever imports them is rewritten to
 * match (the page's own files keep their names: index.html and what it loads are
 * revalidated with ETags). Returns the hashed names.
 */
function buildSite() {
  const pkg = join(site, 'pkg');
  mkdirSync(pkg, { recursive: true });
  const wasmBytes = readFileSync(join(dist, 'clonewire_wasm_bg.wasm'));
  const wasmName = hashedName('clonewire_wasm_bg.wasm', wasmBytes);
  const glue = relink(readFileSync(join(dist, 'clonewire_wasm.js'), 'utf8'), 'clonewire_wasm_bg.wasm', wasmName);
  const glueName = hashedName('clonewire_wasm.js', glue);
  let entry = readFileSync(join(dist, 'index.js'), 'utf8');
  for (const [from, to] of [['./clonewire_wasm.js', `./${glueName}`], ['./clonewire_wasm_bg.wasm', `./${wasmName}`]]) {
    if (!entry.includes(`'${from}'`)) throw new Error(`index.js no longer names '${from}': update buildSite()`);
    entry = relink(entry, from, to);
  }
  const entryName = hashedName('index.js', entry);
  writeFileSync(join(pkg, wasmName), wasmBytes);
  writeFileSync(join(pkg, glueName), glue);
  writeFileSync(join(pkg, entryName), entry);
  for (const name of readdirSync(join(root, 'www'), { recursive: true })) {
    const from = join(root, 'www', name);
    if (statSync(from).isDirectory()) {
      mkdirSync(join(site, name), { recursive: true });
    } else if (name.endsWith('.js')) {
      writeFileSync(join(site, name), relink(readFileSync(from, 'utf8'), './pkg/index.js', `./pkg/${entryName}`)
        .replaceAll("'../pkg/index.js'", `'../pkg/${entryName}'`));
    } else if (!name.endsWith('.md')) {
      copyFileSync(from, join(site, name));
    }
  }
  for (const name of readdirSync(site, { recursive: true })) {
    const path = join(site, name);
    if (statSync(path).isDirectory()) continue;
    const bytes = readFileSync(path);
    // A form no smaller than the file itself is left out: the relay sends the file.
    for (const [suffix, packed] of [['.br', brotli(bytes)], ['.gz', gzipSync(bytes, { level: 9 })]]) {
      if (packed.length < bytes.length) writeFileSync(`${path}${suffix}`, packed);
    }
  }
  return { wasm: wasmName, glue: glueName, entry: entryName };
}

const hashed = buildSite();

console.log(`opt-level ${opt}${names ? ', names kept' : ''}:`);
for (const [file, served] of [
  ['clonewire_wasm_bg.wasm', hashed.wasm], ['clonewire_wasm.js', hashed.glue], ['index.js', hashed.entry],
]) {
  const raw = statSync(join(dist, file)).size;
  const gz = statSync(join(site, 'pkg', `${served}.gz`)).size;
  const br = statSync(join(site, 'pkg', `${served}.br`)).size;
  console.log(
    `${file.padEnd(24)} ${String(raw).padStart(8)} B, ${String(gz).padStart(7)} B gzipped, ` +
      `${String(br).padStart(7)} B brotli`,
  );
}
/** What a browser sending `Accept-Encoding: br, gzip` downloads: the smallest form. */
let transfer = 0;
let rawTotal = 0;
for (const name of readdirSync(site, { recursive: true })) {
  const path = join(site, name);
  if (statSync(path).isDirectory() || name.endsWith('.br') || name.endsWith('.gz')) continue;
  const sizes = [path, `${path}.br`, `${path}.gz`].filter((p) => existsSync(p)).map((p) => statSync(p).size);
  rawTotal += sizes[0];
  transfer += Math.min(...sizes);
}
console.log(`the page and its module over the wire (br or gzip, whichever is smaller): ` +
  `${transfer} B of ${rawTotal} B raw (wasm ${statSync(join(site, 'pkg', `${hashed.wasm}.br`)).size} B)`);
