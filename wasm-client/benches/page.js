// The benchmark page: the wasm client (apply + verify + notify three views) against a
// plain JS store doing the same useful work without verification: JSON.parse, apply
// the patch with json-merge-patch, and tell each of the same three views, with its own
// patch, when the message touched its fields.
import { connect } from '/dist/index.js';

async function loadMergePatch() {
  // json-merge-patch is CommonJS: load its two files with a tiny require.
  const sources = {};
  for (const name of ['apply', 'utils']) {
    sources[`./${name}`] = await (await fetch(`/json-merge-patch/lib/${name}.js`)).text();
  }
  const cache = {};
  const require = (name) => {
    if (!cache[name]) {
      const module = { exports: {} };
      cache[name] = module;
      new Function('module', 'exports', 'require', sources[name])(module, module.exports, require);
    }
    return cache[name].exports;
  };
  return require('./apply');
}

class FakeSocket {
  constructor() {
    FakeSocket.last = this;
  }
  send() {}
  close() {}
}

const VIEWS = {
  tasks: 'subscription { workflows(ids: ["demo"]) { taskProxies { status } } }',
  names: '{ workflows { workflow { name status } taskProxies { name } } }',
  both: '{ workflows { taskProxies { name status } } }',
};

async function runWasm(setup, deltas) {
  const client = await connect('ws://bench.invalid/ws', { WebSocket: FakeSocket });
  let changes = 0;
  for (const [name, query] of Object.entries(VIEWS)) {
    client.view(name, query, (batch) => {
      changes += batch.length;
    });
  }
  const socket = FakeSocket.last;
  socket.onopen({ target: socket });
  for (const data of setup) socket.onmessage({ target: socket, data });
  const start = performance.now();
  for (const data of deltas) socket.onmessage({ target: socket, data });
  const ms = performance.now() - start;
  const { counters } = client.inspect();
  client.close();
  if (counters.hashMismatches || counters.chainBreaks || counters.deltas !== deltas.length) {
    throw new Error(`the stream did not verify: ${JSON.stringify(counters)}`);
  }
  return { ms, changes };
}

// The VIEWS' selections as a plain JS store would hold them: per workflow (`*`: any),
// per topic, a tree of selected fields (`true`: the whole subtree; `*`: every entry of
// a collection).
const SELECTIONS = {
  tasks: { demo: { taskProxies: { '*': { status: true } } } },
  names: { '*': { workflow: { name: true, status: true }, taskProxies: { '*': { name: true } } } },
  both: { '*': { taskProxies: { '*': { name: true, status: true } } } },
};

/** The part of `patch` that `selection` selects, or undefined when none. */
function project(patch, selection) {
  if (selection === true) return patch;
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return undefined;
  let out;
  for (const key in patch) {
    const inner = selection[key] ?? selection['*'];
    if (inner === undefined) continue;
    const part = project(patch[key], inner);
    if (part !== undefined) (out ??= {})[key] = part;
  }
  return out;
}

function runPlain(apply, setup, deltas) {
  const store = {};
  const views = Object.entries(SELECTIONS).map(([name, selection]) => ({ name, selection }));
  let changes = 0;
  const onChange = (batch) => {
    changes += batch.length;
  };
  const put = (text) => {
    const m = JSON.parse(text);
    if (m.type !== 'snapshot' && m.type !== 'delta') return;
    const workflow = (store[m.workflow] ??= {});
    const patch = m.type === 'snapshot' ? m.value : m.patch;
    workflow[m.topic] = m.type === 'snapshot' ? m.value : apply(workflow[m.topic] ?? {}, patch);
    for (const view of views) {
      const topics = view.selection[m.workflow] ?? view.selection['*'];
      const selection = topics?.[m.topic];
      if (selection === undefined) continue;
      const own = project(patch, selection);
      if (own !== undefined) onChange([{ workflow: m.workflow, topic: m.topic, patch: own, time: m.time }]);
    }
  };
  for (const text of setup) put(text);
  const start = performance.now();
  for (const text of deltas) put(text);
  return { ms: performance.now() - start, changes };
}

/**
 * What any wasm client that takes each frame as text and hands back one JSON text
 * pays in JS before doing any work: encoding the frame into wasm memory, decoding
 * the text it returns, and `JSON.parse` of it (texts in the client's format, built
 * from the plain store's per-view patches). No Rust runs here: it is the floor.
 */
function outputTexts(apply, setup, deltas) {
  const texts = [];
  const store = {};
  for (const text of [...setup, ...deltas]) {
    const m = JSON.parse(text);
    if (m.type !== 'snapshot' && m.type !== 'delta') continue;
    const workflow = (store[m.workflow] ??= {});
    const patch = m.type === 'snapshot' ? m.value : m.patch;
    workflow[m.topic] = m.type === 'snapshot' ? m.value : apply(workflow[m.topic] ?? {}, patch);
    if (m.type !== 'delta') continue;
    const patches = [];
    const n = [];
    Object.values(SELECTIONS).forEach((selection, view) => {
      const topics = selection[m.workflow] ?? selection['*'];
      const own = topics?.[m.topic] === undefined ? undefined : project(patch, topics[m.topic]);
      if (own === undefined) return;
      const json = JSON.stringify(own);
      let p = patches.indexOf(json);
      if (p < 0) p = patches.push(json) - 1;
      n.push(`[${view},0,${p}]`);
    });
    const t = `[${JSON.stringify(m.workflow)},${JSON.stringify(m.topic)},${m.time ?? null},[${patches.join(',')}]]`;
    texts.push(`{"t":[${n.length ? t : ''}],"n":[${n.join(',')}],"e":[]}`);
  }
  return texts;
}

function runFloor(deltas, outputs) {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const memory = new Uint8Array(1 << 16);
  const bytes = outputs.map((text) => encoder.encode(text));
  let parsed = 0;
  const start = performance.now();
  for (let i = 0; i < deltas.length; i++) {
    encoder.encodeInto(deltas[i], memory);
    parsed += JSON.parse(decoder.decode(bytes[i])).n.length;
  }
  return { ms: performance.now() - start, parsed };
}

window.bench = async (stream, rounds) => {
  const apply = await loadMergePatch();
  const setup = [stream.workflow, ...stream.initial].map((f) => JSON.stringify(f));
  const deltas = stream.steps.map((s) => JSON.stringify(s.delta));
  const outputs = outputTexts(apply, setup, deltas);
  const wasm = [];
  const plain = [];
  const floor = [];
  await runWasm(setup, deltas); // warm-up
  runPlain(apply, setup, deltas);
  runFloor(deltas, outputs);
  for (let i = 0; i < rounds; i++) {
    wasm.push((await runWasm(setup, deltas)).ms);
    plain.push(runPlain(apply, setup, deltas).ms);
    floor.push(runFloor(deltas, outputs).ms);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // Both sides must have told the views the same number of changes.
  const told = { wasm: (await runWasm(setup, deltas)).changes, plain: runPlain(apply, setup, deltas).changes };
  return {
    wasm: median(wasm),
    plain: median(plain),
    floor: median(floor),
    bestWasm: Math.min(...wasm),
    bestPlain: Math.min(...plain),
    deltas: deltas.length,
    told,
  };
};
