// Measures what arrives on the websocket, per (workflow, topic): messages and bytes
// per second over a sliding window, and latency from the suite's publish `time` to
// the moment a view is told. The client is given a WebSocket subclass (its
// documented `WebSocket` option) that listens alongside it; the client's own
// handler is untouched. Frames are read with the module's own decoder (`frameTopic`),
// which builds nothing but the two names.

import { frameTopic } from './pkg/index.js';

const WINDOW_MS = 5000;

export class WireMeter {
  constructor() {
    /** `${workflow}\n${topic}` → { arrivals: [time, bytes][], latencies: [time, ms][], lastTime } */
    this.topics = new Map();
  }

  #entry(workflow, topic) {
    const key = `${workflow}\n${topic}`;
    let entry = this.topics.get(key);
    if (!entry) this.topics.set(key, (entry = { arrivals: [], latencies: [], lastTime: undefined }));
    return entry;
  }

  /** A WebSocket class that reports every incoming text frame to this meter. */
  socketClass(Base = globalThis.WebSocket) {
    const meter = this;
    return class MeteredWebSocket extends Base {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => meter.#arrived(event.data));
      }
    };
  }

  #arrived(text) {
    // Binary frames are not the protocol's, and the client counts undecodable ones.
    const about = frameTopic(text);
    if (about === null) return;
    // String length: the JSON is ASCII apart from any non-ASCII names, so this is
    // the byte count to within a few bytes.
    this.#entry(about.workflow, about.topic).arrivals.push([performance.now(), text.length]);
  }

  /** Records latency from the change callbacks; each (workflow, topic, time) once. */
  noteChanges(changes) {
    const now = Date.now();
    for (const { workflow, topic, time } of changes) {
      if (typeof time !== 'number') continue;
      const entry = this.#entry(workflow, topic);
      if (entry.lastTime === time) continue; // the same message, told to another view
      entry.lastTime = time;
      entry.latencies.push([performance.now(), Math.max(0, now - time)]);
    }
  }

  /** Over the last few seconds: { messagesPerSecond, bytesPerSecond, latencyMs (median) }. */
  rates(workflow, topic) {
    const entry = this.topics.get(`${workflow}\n${topic}`);
    if (!entry) return { messagesPerSecond: 0, bytesPerSecond: 0, latencyMs: null };
    const since = performance.now() - WINDOW_MS;
    trim(entry.arrivals, since);
    trim(entry.latencies, since);
    let bytes = 0;
    for (const [, n] of entry.arrivals) bytes += n;
    // The median: one slow frame (a page load, a big snapshot) should not hide what
    // a typical update costs.
    let latency = null;
    if (entry.latencies.length) {
      const sorted = entry.latencies.map(([, ms]) => ms).sort((a, b) => a - b);
      latency = sorted[sorted.length >> 1];
    }
    return {
      messagesPerSecond: entry.arrivals.length / (WINDOW_MS / 1000),
      bytesPerSecond: bytes / (WINDOW_MS / 1000),
      latencyMs: latency,
    };
  }
}

function trim(list, since) {
  let drop = 0;
  while (drop < list.length && list[drop][0] < since) drop++;
  if (drop) list.splice(0, drop);
}
