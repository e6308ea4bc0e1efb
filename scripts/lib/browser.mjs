// Headless Chromium and a static file server for the browser tests and benchmarks.
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by playwright-core;
// no browser is ever downloaded. The flags keep it off a closed network.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname } from 'node:path';
import { chromium } from 'playwright-core';

/** Where Chromium is. */
export const CHROMIUM_PATH = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Flags for Chromium on this kind of machine (headless, root, no network). */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Launches Chromium with a fresh profile in `profileDir`; `options` go to playwright. */
export function launchChromium(profileDir, options = {}) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    ...options,
  });
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

/**
 * Serves files on 127.0.0.1 (a free port): `fileFor(path)` maps a URL path to a file,
 * or returns undefined for a 404. Resolves to the listening server.
 */
export async function serveFiles(fileFor) {
  const server = createServer((request, response) => {
    const file = fileFor(new URL(request.url, 'http://x').pathname);
    try {
      const body = readFileSync(file);
      response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
