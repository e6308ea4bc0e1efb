// The page and the module as the relay serves them over HTTP: precompressed forms by
// Accept-Encoding, ETags and 304s, immutable content-hashed names, and the size a
// browser downloads for the wasm. Needs `npm run build` (dist/site/) and
// `cargo build -p clonewire-relay` (the relay binary).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RELAY = process.env.CLONEWIRE_RELAY ?? resolve(root, 'target', 'debug', 'clonewire-relay');
const site = join(root, 'dist', 'site');
const skip = existsSync(RELAY) ? false : `no relay binary at ${RELAY}: run cargo build -p clonewire-relay`;
/** The budget for what a browser downloads for the wasm. */
const WASM_BUDGET = 160 * 1000;

let relay; // { child, address }

function startRelay() {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(RELAY, ['--demo', '--listen', '127.0.0.1:0', '--log', 'warn,clonewire_relay=info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the relay did not say where it listens:\n${output}`));
    }, 15000);
    const read = (chunk) => {
      output += chunk;
      const match = output.match(/listening: the page at http:\/\/([^/\s]+)\//);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ child, address: match[1] });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code}):\n${output}`));
    });
  });
}

/** GET `path` with `headers`; resolves with status, headers and the body's bytes as sent. */
function get(path, headers = {}) {
  const [host, port] = relay.address.split(':');
  return new Promise((resolvePromise, reject) => {
    const req = request({ host, port: Number(port), path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The hashed wasm's name, from the built site. */
function hashedWasm() {
  const name = readdirSync(join(site, 'pkg')).find((n) => /^clonewire_wasm_bg\.[0-9a-f]{16}\.wasm$/.test(n));
  assert.ok(name, 'dist/site/pkg/ has no hashed wasm: run npm run build');
  return name;
}

before(async () => {
  if (skip) return;
  assert.ok(existsSync(site), 'dist/site/ is missing: run npm run build');
  relay = await startRelay();
});

after(() => {
  if (relay && relay.child.exitCode === null) relay.child.kill('SIGKILL');
});

test('the wasm comes as brotli, gzip or itself as asked, and brotli is within budget', { skip }, async () => {
  const path = `/pkg/${hashedWasm()}`;
  const original = readFileSync(join(site, 'pkg', hashedWasm()));
  const br = await get(path, { 'accept-encoding': 'gzip, deflate, br, zstd' });
  assert.equal(br.status, 200);
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.headers['content-type'], 'application/wasm');
  assert.equal(br.headers.vary, 'accept-encoding');
  assert.deepEqual(brotliDecompressSync(br.body), original);
  assert.ok(br.body.length <= WASM_BUDGET, `the wasm over the wire is ${br.body.length} B, over ${WASM_BUDGET} B`);
  console.log(`wasm: ${original.length} B raw, ${br.body.length} B as sent with brotli`);

  const gz = await get(path, { 'accept-encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(gz.body), original);
  assert.ok(gz.body.length > br.body.length, 'brotli is the smaller form');

  const plain = await get(path);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.deepEqual(plain.body, original);
  const refused = await get(path, { 'accept-encoding': 'br;q=0, gzip;q=0' });
  assert.equal(refused.headers['content-encoding'], undefined);
});

test('hashed module files are immutable; the page revalidates', { skip }, async () => {
  const wasm = await get(`/pkg/${hashedWasm()}`, { 'accept-encoding': 'br' });
  assert.equal(wasm.headers['cache-control'], 'public, max-age=31536000, immutable');
  const page = await get('/', { 'accept-encoding': 'br' });
  assert.equal(page.status, 200);
  assert.equal(page.headers['cache-control'], 'no-cache');
  assert.equal(page.headers['content-encoding'], 'br');
  assert.equal(page.headers.vary, 'accept-encoding', 'caches keep one form per Accept-Encoding');
  assert.match(page.headers['content-type'], /^text\/html/);
  const html = brotliDecompressSync(page.body).toString();
  assert.match(html, /<script type="module" src="app.js">/);
  // The page's module imports the hashed entry, which imports the hashed glue and wasm.
  const app = (await get('/app.js')).body.toString();
  const entry = /'\.\/pkg\/(index\.[0-9a-f]{16}\.js)'/.exec(app)?.[1];
  assert.ok(entry, 'app.js imports a hashed ./pkg/index.<hash>.js');
  const entryResponse = await get(`/pkg/${entry}`);
  assert.equal(entryResponse.status, 200);
  assert.equal(entryResponse.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(entryResponse.body.toString(), new RegExp(`'\\./${hashedWasm().replaceAll('.', '\\.')}'`));
});

test('an ETag per form, and If-None-Match gets a 304 without a body', { skip }, async () => {
  for (const [path, encoding] of [['/', 'br'], ['/', 'gzip'], ['/', ''], [`/pkg/${hashedWasm()}`, 'br']]) {
    const first = await get(path, { 'accept-encoding': encoding });
    const etag = first.headers.etag;
    assert.match(etag, /^"[0-9a-f]{24}(-br|-gzip)?"$/);
    const again = await get(path, { 'accept-encoding': encoding, 'if-none-match': etag });
    assert.equal(again.status, 304, `${path} (${encoding || 'identity'})`);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, etag);
    const weak = await get(path, { 'accept-encoding': encoding, 'if-none-match': `"other", W/${etag}` });
    assert.equal(weak.status, 304);
    const stale = await get(path, { 'accept-encoding': encoding, 'if-none-match': '"0000"' });
    assert.equal(stale.status, 200);
  }
  const br = (await get('/', { 'accept-encoding': 'br' })).headers.etag;
  const gz = (await get('/', { 'accept-encoding': 'gzip' })).headers.etag;
  assert.notEqual(br, gz, 'each form has its own strong ETag');
});

test('the compressed forms are not addressable themselves', { skip }, async () => {
  const response = await get(`/pkg/${hashedWasm()}.br`);
  assert.equal(response.status, 404);
});
