// Measures what arrives on the websocket, per (workflow, topic): messages and bytes
// per second over a sliding window (bytes as they came over the wire: a deflated
// frame counts its compressed size), totals since the page opened, and latency from
// the suite's publish `time` to the moment a view is told. The client is given a
// WebSocket subclass (its documented `WebSocket` option) that listens alongside it;
// the client's own handler is untouched. Frames are read with the module's own
// decoder (`frameTopic`), which builds nothing but the two names; a binary frame
// (docs/protocol.md, "Compressed frames": raw DEFLATE of the same JSON) is inflated
// here too to learn its topic, which costs only for the large frames the relay
// deflates.

import { frameTopic } from './pkg/index.js';

const WINDOW_MS = 5000;
/** What binary frames hold: the compression the module asks for in `subscribe`. */
const COMPRESSION = 'deflate-raw';

export class WireMeter {
  constructor() {
    /**
     * `${workflow}\n${topic}` → { arrivals: [time, bytes][] (by time), latencies:
     * [time, ms][], lastTime, totals: { messages, bytes, deflated, deflatedBytes } }
     */
    this.topics = new Map();
    /** Binary frames that did not inflate (the client counts them as bad messages). */
    this.unreadable = 0;
  }

  #entry(workflow, topic) {
    const key = `${workflow}\n${topic}`;
    let entry = this.topics.get(key);
    if (!entry) {
      entry = { arrivals: [], latencies: [], lastTime: undefined, totals: { messages: 0, bytes: 0, deflated: 0, deflatedBytes: 0 } };
      this.topics.set(key, entry);
    }
    return entry;
  }

  /** A WebSocket class that reports every incoming frame, text or binary, to this meter. */
  socketClass(Base = globalThis.WebSocket) {
    const meter = this;
    return class MeteredWebSocket extends Base {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => meter.#arrived(event.data));
      }
    };
  }

  #arrived(data) {
    const time = performance.now();
    if (typeof data === 'string') {
      // String length: the JSON is ASCII apart from any non-ASCII names, so this is
      // the byte count to within a few bytes.
      this.#count(frameTopic(data), time, data.length, false);
      return;
    }
    // The client sets `binaryType` to 'arraybuffer'; a Blob is measured all the same.
    const size = data.byteLength ?? data.size;
    inflate(data).then((text) => {
      if (text === null) this.unreadable += 1;
      else this.#count(frameTopic(text), time, size, true);
    });
  }

  #count(about, time, bytes, deflated) {
    // Frames other than deltas and snapshots have no topic (the client counts bad ones).
    if (about === null) return;
    const entry = this.#entry(about.workflow, about.topic);
    // Inflating takes a while: a deflated frame goes in at the time it arrived.
    let at = entry.arrivals.length;
    while (at > 0 && entry.arrivals[at - 1][0] > time) at--;
    entry.arrivals.splice(at, 0, [time, bytes]);
    const totals = entry.totals;
    totals.messages += 1;
    totals.bytes += bytes;
    if (deflated) {
      totals.deflated += 1;
      totals.deflatedBytes += bytes;
    }
  }

  /**
   * Since the page opened: { messages, bytes, deflated, deflatedBytes } for a topic
   * (`deflated`: how many of its frames came compressed, and their wire bytes).
   */
  totals(workflow, topic) {
    const entry = this.topics.get(`${workflow}\n${topic}`);
    return { ...(entry?.totals ?? { messages: 0, bytes: 0, deflated: 0, deflatedBytes: 0 }) };
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

/** The text of a deflated frame, or null when it does not inflate. */
async function inflate(data) {
  try {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream(COMPRESSION));
    return await new Response(stream).text();
  } catch {
    return null;
  }
}
