// A scripted stand-in for the relay: a WebSocket server on 127.0.0.1 that records what
// the client sends and plays frames from a recorded stream (tests/node/fixtures,
// made by `cargo run -p clonewire-wasm --example record -- 12 40`).

import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';

/** The recorded stream: frames with correct prev chains and projection hashes. */
export const stream = JSON.parse(
  readFileSync(new URL('./fixtures/stream.json', import.meta.url), 'utf8'),
);

/** Waits until `check()` is truthy (polling), or fails after `ms`. */
export async function until(check, ms = 3000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function startRelay() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20 });
  await once(server, 'listening');
  const relay = {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    /** Every message the client sent, on any connection, in order. */
    received: [],
    connections: 0,
    socket: undefined,
    /** Called with each message from the client (and the socket it came on). */
    onMessage: undefined,

    send(frame) {
      this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },

    /** The next message from the client matching `test` not yet taken by `next`. */
    async next(test = () => true, ms = 3000) {
      const found = await until(
        () => this.received.find((m) => !m.taken && test(m)),
        ms,
        'a message from the client',
      );
      found.taken = true;
      return found;
    },

    /** Drops the connection without a close handshake, as a crashed relay would. */
    drop() {
      this.socket.terminate();
    },

    async close() {
      for (const client of server.clients) client.terminate();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('connection', (socket) => {
    relay.connections += 1;
    relay.socket = socket;
    socket.on('message', (data) => {
      let message;
      try {
        message = JSON.parse(data.toString());
      } catch {
        message = { type: 'unparsable', text: data.toString() };
      }
      relay.received.push(message);
      relay.onMessage?.(message, socket);
    });
    socket.send(JSON.stringify({ type: 'hello', protocol: 'clonewire/1', relay: 'fake/0' }));
  });
  return relay;
}

/** Answers a subscribe as the relay does: subscribed, the workflow, then snapshots. */
export function greet(relay, query) {
  relay.send({ type: 'subscribed', query });
  relay.send(stream.workflow);
  for (const frame of stream.initial) relay.send(frame);
}
