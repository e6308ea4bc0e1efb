// A layered layout for workflow graphs, written for this page (no library): tasks
// are grouped by cycle point; inside a group, columns are longest-path layers (left
// to right) and each column is ordered by the barycentre of its neighbours, which
// keeps parallel chains (model_i → post_i) on straight lines. Groups are tiled to
// suit the panel's shape. Cost: O((nodes + edges) · sweeps) per layout, and only
// when nodes or edges come or go, never on a status change.

export const NODE_W = 132;
export const NODE_H = 20;
const GAP_X = 44;
const GAP_Y = 6;
const GROUP_GAP = 56;
const GROUP_LABEL = 26;
const SWEEPS = 4;

/**
 * @param {{id: string, group: string, name: string}[]} nodes
 * @param {{source: string, target: string}[]} edges
 * @param {number} aspect the panel's width / height, to tile groups
 * @returns {{nodes: Map<string, {x, y}>, groups: {name, x, y, w, h}[], width, height}}
 */
export function layout(nodes, edges, aspect = 1.5) {
  const byGroup = new Map();
  for (const node of nodes) {
    if (!byGroup.has(node.group)) byGroup.set(node.group, []);
    byGroup.get(node.group).push(node);
  }
  const groupOf = new Map(nodes.map((n) => [n.id, n.group]));
  const parents = new Map();
  const children = new Map();
  for (const { source, target } of edges) {
    // Edges between groups (e.g. prep[-PT6H] => prep) are drawn but do not shape a group.
    if (!groupOf.has(source) || groupOf.get(source) !== groupOf.get(target)) continue;
    push(parents, target, source);
    push(children, source, target);
  }

  const boxes = [...byGroup.keys()].sort().map((name) => {
    const placed = layoutGroup(byGroup.get(name), parents, children);
    return { name, ...placed };
  });
  const tiles = tile(boxes, aspect);
  const positions = new Map();
  for (const box of boxes) {
    for (const [id, p] of box.positions) positions.set(id, { x: box.x + p.x, y: box.y + GROUP_LABEL + p.y });
  }
  return {
    nodes: positions,
    groups: boxes.map(({ name, x, y, w, h }) => ({ name, x, y, w, h: h + GROUP_LABEL })),
    width: tiles.width,
    height: tiles.height,
  };
}

function push(map, key, value) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function layoutGroup(members, parents, children) {
  // Longest-path layers, in topological order (Kahn); nodes in a cycle get layer 0.
  const ids = new Set(members.map((n) => n.id));
  const indegree = new Map(members.map((n) => [n.id, 0]));
  for (const n of members) {
    for (const p of parents.get(n.id) ?? []) if (ids.has(p)) indegree.set(n.id, indegree.get(n.id) + 1);
  }
  const layer = new Map(members.map((n) => [n.id, 0]));
  const queue = members.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const c of children.get(id) ?? []) {
      if (!ids.has(c)) continue;
      layer.set(c, Math.max(layer.get(c), layer.get(id) + 1));
      indegree.set(c, indegree.get(c) - 1);
      if (indegree.get(c) === 0) queue.push(c);
    }
  }
  const columns = [];
  for (const n of [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    (columns[layer.get(n.id)] ??= []).push(n.id);
  }
  for (let i = 0; i < columns.length; i++) columns[i] ??= [];

  // Barycentre sweeps: left to right by parents, then right to left by children.
  const order = new Map();
  const index = () => columns.forEach((col) => col.forEach((id, i) => order.set(id, i)));
  index();
  const reorder = (col, neighbours) => {
    const weight = new Map();
    for (const id of col) {
      const ns = (neighbours.get(id) ?? []).filter((n) => ids.has(n));
      weight.set(id, ns.length ? ns.reduce((s, n) => s + order.get(n), 0) / ns.length : order.get(id));
    }
    col.sort((a, b) => weight.get(a) - weight.get(b) || order.get(a) - order.get(b));
    col.forEach((id, i) => order.set(id, i));
  };
  for (let s = 0; s < SWEEPS; s++) {
    for (let c = 1; c < columns.length; c++) reorder(columns[c], parents);
    for (let c = columns.length - 2; c >= 0; c--) reorder(columns[c], children);
  }

  // Columns are centred on the tallest one.
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const h = tallest * (NODE_H + GAP_Y) - GAP_Y;
  const positions = new Map();
  columns.forEach((col, c) => {
    const offset = (h - (col.length * (NODE_H + GAP_Y) - GAP_Y)) / 2;
    col.forEach((id, i) => positions.set(id, { x: c * (NODE_W + GAP_X), y: offset + i * (NODE_H + GAP_Y) }));
  });
  const w = Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X;
  return { positions, w, h };
}

/** Places group boxes in rows, choosing the row length whose overall shape best fits `aspect`. */
function tile(boxes, aspect) {
  let best = null;
  for (let perRow = 1; perRow <= Math.max(1, boxes.length); perRow++) {
    let x = 0;
    let y = 0;
    let rowH = 0;
    let width = 0;
    const places = [];
    boxes.forEach((box, i) => {
      if (i > 0 && i % perRow === 0) {
        y += rowH + GROUP_LABEL + GROUP_GAP;
        x = 0;
        rowH = 0;
      }
      places.push({ x, y });
      x += box.w + GROUP_GAP;
      width = Math.max(width, x - GROUP_GAP);
      rowH = Math.max(rowH, box.h);
    });
    const height = y + rowH + GROUP_LABEL;
    // Prefer the tiling that would be drawn largest when fitted into the panel.
    const scale = Math.min(aspect / Math.max(width, 1), 1 / Math.max(height, 1));
    if (!best || scale > best.scale) best = { scale, places, width, height };
  }
  boxes.forEach((box, i) => Object.assign(box, best?.places[i] ?? { x: 0, y: 0 }));
  return { width: best?.width ?? 0, height: best?.height ?? 0 };
}
