// Helpers for the failover tests: a simulated suite (`clonewire-sim`) and relays that
// follow it (`clonewire-relay --suite`), as child processes on free loopback ports.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RELAY = process.env.CLONEWIRE_RELAY ?? resolve(root, 'target', 'debug', 'clonewire-relay');
export const SIM = process.env.CLONEWIRE_SIM ?? resolve(root, 'target', 'debug', 'clonewire-sim');

/** Why these tests cannot run here, or false. */
export function missingBinaries() {
  for (const [binary, crate] of [
    [RELAY, 'clonewire-relay'],
    [SIM, 'clonewire-tools'],
  ]) {
    if (!existsSync(binary)) return `SKIPPED: no ${binary}: run cargo build -p ${crate}`;
  }
  return false;
}

/** A free loopback TCP port (free when asked; taken right after by the caller). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Resolves when `check()` is true; rejects after `ms` with `what`. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `program args`; resolves once its output matches `ready` (with the match). */
function start(program, args, ready, what) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start:\n${output}`));
    }, 15000);
    const read = (chunk) => {
      output += chunk;
      const match = output.match(ready);
      if (match) {
        clearTimeout(timer);
        resolveStart({ child, match });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}):\n${output}`));
    });
  });
}

/** A simulated suite `name` on free ports, publishing `rate` deltas a second. */
export async function startSuite(name, { tasks = 40, rate = 5 } = {}) {
  const [pub, rep] = [await freePort(), await freePort()];
  const endpoints = `tcp://127.0.0.1:${pub},tcp://127.0.0.1:${rep}`;
  const args = ['--name', name, '--pub', `tcp://127.0.0.1:${pub}`, '--rep', `tcp://127.0.0.1:${rep}`];
  args.push('--tasks', String(tasks), '--rate', String(rate), '--heartbeat-ms', '200');
  const spawned = spawn(SIM, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  // The suite binds at once; a relay that comes first joins as soon as it answers.
  return { child: spawned, suite: `${name}=${endpoints}` };
}

/** A relay following `suites` (NAME=PUB,REP) and/or upper relays, on `listen`. */
export async function startRelay({ suites = [], followRelays = [], listen = '127.0.0.1:0', name } = {}) {
  const args = ['--listen', listen, '--log', 'warn,clonewire_relay=info'];
  for (const suite of suites) args.push('--suite', suite);
  for (const url of followRelays) args.push('--follow-relay', url);
  if (name) args.push('--config', await nameFile(name));
  const { child, match } = await start(RELAY, args, /listening: the page at http:\/\/([^/\s]+)\//, 'the relay');
  return { child, address: match[1], url: `ws://${match[1]}/ws` };
}

/** A config file that only names the relay (its `hello` then says which one it is). */
async function nameFile(name) {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(resolve(tmpdir(), 'clonewire-relay-'));
  const file = resolve(dir, 'relay.toml');
  await writeFile(file, `name = ${JSON.stringify(name)}\n`);
  return file;
}

/** Stops a process at once (as a crash would) and waits for it to be gone. */
export function kill(proc) {
  return new Promise((r) => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return r();
    proc.child.once('exit', () => r());
    proc.child.kill('SIGKILL');
  });
}
