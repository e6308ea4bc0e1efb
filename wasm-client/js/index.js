// clonewire: live, hash-verified views of workflows from a clonewire relay.
//
// This is the module's front-end: it loads the wasm once, takes the one JSON text
// the wasm side hands over per call (every view's changes and every event of one
// incoming frame), parses it once and calls the views' callbacks and the listeners.
// The protocol logic is all in the wasm.

import init, { WasmClient, frameTopic as wasmFrameTopic, workflowStates as wasmWorkflowStates } from './clonewire_wasm.js';

let ready;
/** True once the wasm is instantiated (the first `connect()` has resolved). */
let loaded = false;

/** Loads and instantiates the wasm once; `wasm` overrides where it comes from. */
function initialise(wasm) {
  if (!ready) {
    ready = (async () => {
      let source = wasm;
      if (source === undefined) {
        const url = new URL('./clonewire_wasm_bg.wasm', import.meta.url);
        if (url.protocol === 'file:') {
          // Node: fetch() cannot read files. The specifier is a variable so that
          // bundlers leave this branch alone.
          const fs = 'node:fs/promises';
          const { readFile } = await import(/* @vite-ignore */ fs);
          source = await readFile(url);
        } else {
          source = url;
        }
      }
      await init({ module_or_path: source });
      loaded = true;
    })();
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

const dispose = Symbol.dispose ?? Symbol.for('Symbol.dispose');

/** A query the client cannot use; `line` and `column` are 1-based, or null. */
export class QueryError extends Error {
  constructor(message, line = null, column = null, detail = message) {
    super(message);
    this.name = 'QueryError';
    this.line = line;
    this.column = column;
    this.detail = detail;
  }
}

function rethrow(error) {
  if (error && error.name === 'QueryError') {
    throw new QueryError(error.message, error.line ?? null, error.column ?? null, error.detail ?? error.message);
  }
  throw error;
}

/** One view: a query over the client's store, told only about its own changes. */
export class View {
  #inner;
  #client;
  #forget;

  /** @internal */
  constructor(inner, client, name, forget) {
    this.#inner = inner;
    this.#client = client; // a view keeps its client alive
    this.#forget = forget;
    this.name = name;
  }

  /** The view's current data: `{workflows: {id: {topic: value}}}`; null once closed. */
  data() {
    if (!this.#inner) return null;
    return JSON.parse(this.#inner.data());
  }

  /** The view's normalized query ('' once closed). */
  get query() {
    return this.#inner ? this.#inner.query() : '';
  }

  /** Replaces the query; throws a QueryError and keeps the old one when it is bad. */
  setQuery(query) {
    if (!this.#inner) throw new Error('the view is closed');
    try {
      this.#inner.setQuery(String(query));
    } catch (error) {
      rethrow(error);
    }
  }

  /** Stops the view's callbacks; the client's merged query shrinks. */
  close() {
    if (!this.#inner) return;
    this.#forget();
    this.#inner.close();
    this.#inner.free();
    this.#inner = undefined;
  }

  /** Same as close(): frees the view's wasm memory. */
  free() {
    this.close();
  }

  [dispose]() {
    this.close();
  }
}

/** A connection to a relay and the one store behind all of its views. */
export class Client {
  #inner;
  /** View id → { onChange, view }. */
  #views = new Map();
  /** Event kind → listeners. */
  #listeners = { status: new Set(), workflow: new Set(), error: new Set() };

  /** Where the client connects: `{url, urls, moves}`. */
  #endpoint;

  /** @internal */
  constructor(makeInner, endpoint) {
    this.#inner = makeInner((text) => this.#dispatch(text));
    this.#endpoint = endpoint;
  }

  /**
   * Everything one wasm call produced, `{t, n, e}`: `t` lists each (workflow, topic)
   * touched as `[workflow, topic, time, patches]`, `n` lists per view
   * `[viewId, t, p, t, p, ...]` (indices into `t` and its patches), `e` the events.
   * Views that select the same leaves share one patch object.
   * An exception in the page's code is the page's: the client carries on, as a
   * WebSocket ignores an exception thrown by its own listener.
   */
  #dispatch(text) {
    const batch = JSON.parse(text);
    const touched = batch.t;
    const notifications = batch.n;
    for (let i = 0; i < notifications.length; i++) {
      const pairs = notifications[i];
      const entry = this.#views.get(pairs[0]);
      if (entry === undefined || entry.onChange === undefined) continue;
      const changes = [];
      for (let k = 1; k < pairs.length; k += 2) {
        const [workflow, topic, time, patches] = touched[pairs[k]];
        const change = { workflow, topic, patch: patches[pairs[k + 1]] };
        if (time !== null) change.time = time;
        changes.push(change);
      }
      try {
        entry.onChange(changes, entry.view);
      } catch {
        // ignored: see above
      }
    }
    const events = batch.e;
    for (let i = 0; i < events.length; i++) {
      const listeners = this.#listeners[events[i].type];
      if (listeners === undefined) continue;
      for (const listener of listeners) {
        try {
          listener(events[i]);
        } catch {
          // ignored: see above
        }
      }
    }
  }

  #live() {
    if (!this.#inner) throw new Error('the client is closed');
    return this.#inner;
  }

  /**
   * Opens a view. `onChange(changes, view)` is called once per relay message that
   * changes the view's data, with `[{workflow, topic, patch, time?}]`: `patch` is a
   * JSON merge patch for `view.data().workflows[workflow][topic]`.
   */
  view(name, query, onChange) {
    const inner = this.#live();
    let wasmView;
    try {
      wasmView = inner.view(String(name), String(query));
    } catch (error) {
      rethrow(error);
    }
    const id = wasmView.id();
    const view = new View(wasmView, this, String(name), () => this.#views.delete(id));
    this.#views.set(id, { onChange: typeof onChange === 'function' ? onChange : undefined, view });
    return view;
  }

  /** Listens to 'status', 'workflow' or 'error' events; returns an unsubscribe function. */
  on(kind, listener) {
    this.#live();
    const listeners = this.#listeners[String(kind)];
    if (!listeners || typeof listener !== 'function') return () => {};
    // Each call listens once more, as before: wrap so the same function may be added twice.
    const entry = (event) => listener(event);
    listeners.add(entry);
    return () => {
      listeners.delete(entry);
    };
  }

  /** The connection's state: 'connecting', 'open', 'reconnecting' or 'closed'. */
  get status() {
    return this.#inner ? this.#inner.status() : 'closed';
  }

  /** Every workflow heard of: `{id: {state, schema}}`. */
  workflows() {
    const out = {};
    for (const w of JSON.parse(this.#live().workflows())) {
      out[w.workflow] = { state: w.state, schema: w.schema };
    }
    return out;
  }

  /**
   * Views and queries, the merged query, every (workflow, topic) copy, counters; and
   * the relay in use: `url` (the one connected or being tried), `urls` (every one
   * given), `moves` (how many times the client went on to the next URL).
   */
  inspect() {
    const report = JSON.parse(this.#live().inspect());
    if (this.#endpoint) {
      report.url = this.#endpoint.url;
      report.urls = [...this.#endpoint.urls];
      report.moves = this.#endpoint.moves;
    }
    return report;
  }

  /** Closes the connection for good and frees the client's wasm memory. */
  close() {
    if (!this.#inner) return;
    this.#inner.close();
    this.#inner.free();
    this.#inner = undefined;
  }

  /** Same as close(). */
  free() {
    this.close();
  }

  [dispose]() {
    this.close();
  }
}

function requireLoaded(name) {
  if (!loaded) throw new Error(`${name}() needs the module loaded: call it once connect() has resolved`);
}

/**
 * Every workflow state the relay may report ('syncing', 'live', ...), in the order the
 * protocol lists them; the names come from the Rust side, where they are defined once.
 * Call it once `connect()` has resolved.
 */
export function workflowStates() {
  requireLoaded('workflowStates');
  return wasmWorkflowStates();
}

/**
 * Which (workflow, topic) a relay frame's text is about: `{type, workflow, topic}` for
 * a `delta` or `snapshot` frame, null for anything else. Reads the frame with the same
 * decoder as the client, for meters that watch the socket alongside it. Call it once
 * `connect()` has resolved.
 */
export function frameTopic(text) {
  if (typeof text !== 'string') return null;
  requireLoaded('frameTopic');
  const found = wasmFrameTopic(text);
  return found === undefined ? null : { type: found[0], workflow: found[1], topic: found[2] };
}

/** The compression asked for in `subscribe` (docs/protocol.md) when frames can be inflated here. */
const COMPRESSION = 'deflate-raw';

/** True when this runtime can inflate `deflate-raw` (browsers, Node 21.2+ / 20.x recent). */
function canInflate() {
  try {
    new DecompressionStream(COMPRESSION);
    return typeof Blob === 'function' && typeof Response === 'function';
  } catch {
    return false;
  }
}

/** One binary frame's text; '' when it does not inflate (the client counts it as bad). */
async function inflate(data) {
  try {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream(COMPRESSION));
    return await new Response(stream).text();
  } catch {
    return '';
  }
}

/**
 * `Base` (a WebSocket class) whose binary frames reach its `onmessage` handler as
 * the text they inflate to. Inflating is asynchronous, so every message and close event
 * behind a binary frame waits for it: the handler sees frames in the order they came,
 * and text frames go straight through when nothing is waiting.
 */
function inflating(Base) {
  return class InflatingWebSocket extends Base {
    #handlers = { message: null, close: null };
    /** Events queued behind an inflation, and the end of that queue. */
    #waiting = 0;
    #queue = Promise.resolve();

    constructor(...args) {
      super(...args);
      this.binaryType = 'arraybuffer';
      this.addEventListener('message', (event) => {
        if (typeof event.data === 'string') {
          this.#then(() => this.#fire('message', event));
        } else {
          const text = inflate(event.data);
          this.#then(async () => this.#fire('message', { target: this, data: await text }), true);
        }
      });
      this.addEventListener('close', (event) => this.#then(() => this.#fire('close', event)));
    }

    get onmessage() {
      return this.#handlers.message;
    }

    set onmessage(handler) {
      this.#handlers.message = handler;
    }

    get onclose() {
      return this.#handlers.close;
    }

    set onclose(handler) {
      this.#handlers.close = handler;
    }

    /** Runs `step` now when nothing waits and it is synchronous, else after the queue. */
    #then(step, later = false) {
      if (this.#waiting === 0 && !later) {
        step();
        return;
      }
      this.#waiting += 1;
      this.#queue = this.#queue
        .then(step)
        .catch(() => {}) // as a WebSocket ignores its handler's exceptions
        .finally(() => {
          this.#waiting -= 1;
        });
    }

    #fire(type, event) {
      this.#handlers[type]?.call(this, event);
    }
  };
}

/**
 * `Base` (a WebSocket class) that connects to `endpoint.urls[endpoint.index]`,
 * whatever URL it is given, and moves on to the next URL (round robin) whenever a
 * connection closes, whether it was lost or never opened (refused). A client thus stays
 * with a relay while it serves and fails over to the next when it stops; the session
 * resumes there from what it holds, as after any reconnect.
 */
function failover(Base, endpoint) {
  return class FailoverWebSocket extends Base {
    constructor(_url, ...rest) {
      const url = endpoint.urls[endpoint.index];
      super(url, ...rest);
      endpoint.url = url;
      this.addEventListener('close', () => {
        if (endpoint.urls.length > 1) {
          endpoint.index = (endpoint.index + 1) % endpoint.urls.length;
          endpoint.moves += 1;
        }
      });
    }
  };
}

function resolveUrl(url) {
  const text = String(url);
  if (/^wss?:/i.test(text) || typeof globalThis.location === 'undefined') return text;
  const resolved = new URL(text, globalThis.location.href);
  resolved.protocol = resolved.protocol === 'https:' ? 'wss:' : 'ws:';
  return resolved.href;
}

/**
 * Connects to a relay's WebSocket (e.g. 'ws://host:port/ws', or '/ws' on a page the
 * relay serves), or to the first of a list of relays that follow the same suites:
 * when a connection is lost or refused, the next URL is tried (after the reconnect
 * delay), and the client resumes there from what it holds. Resolves once the wasm is
 * loaded and the first attempt has started; the client reconnects and resumes by
 * itself until `close()`.
 */
export async function connect(url, options = {}) {
  const list = Array.isArray(url) ? url : [url];
  if (list.length === 0) throw new TypeError('connect() needs a URL');
  const endpoint = { urls: list.map(resolveUrl), index: 0, url: '', moves: 0 };
  endpoint.url = endpoint.urls[0];
  await initialise(options.wasm);
  let WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
  if (typeof WebSocketClass !== 'function') {
    throw new TypeError('no WebSocket here: pass options.WebSocket (in Node, the `ws` package)');
  }
  if (endpoint.urls.length > 1) WebSocketClass = failover(WebSocketClass, endpoint);
  // Large frames come deflated when the client can inflate them (and the page allows).
  const compression = options.compression !== false && canInflate() ? COMPRESSION : undefined;
  if (compression) WebSocketClass = inflating(WebSocketClass);
  const settings = {
    reconnectBaseMs: options.reconnectBaseMs,
    reconnectMaxMs: options.reconnectMaxMs,
    compression,
  };
  let inner;
  const client = new Client((dispatcher) => {
    inner = new WasmClient(endpoint.urls[0], WebSocketClass, settings, dispatcher);
    return inner;
  }, endpoint);
  if (options.onStatus) client.on('status', options.onStatus);
  if (options.onWorkflow) client.on('workflow', options.onWorkflow);
  if (options.onError) client.on('error', options.onError);
  try {
    inner.start();
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}
