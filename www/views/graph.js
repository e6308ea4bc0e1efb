// Graph view: tasks as nodes, `edges` as arrows, in an SVG that pans (drag) and
// zooms (wheel, or the buttons). Edges join task proxies (`source`, `target`; ids.js).
// The layout is redone only when tasks or edges come or go; a state change just
// restyles one node. Far out, labels are hidden so the
// shape of the graph stays readable.

import { el, quote, setAttr } from '../dom.js';
import { relativeId } from '../ids.js';
import { setStatusIcon, statusKey } from '../status.js';
import { layout, NODE_H, NODE_W } from './graph-layout.js';

const SVG = 'http://www.w3.org/2000/svg';
const MIN_SCALE = 0.05;
const MAX_SCALE = 3;
/** Below this scale, names are too small to read and are hidden. */
const LABEL_SCALE = 0.45;

export const graph = {
  id: 'graph',
  title: 'Graph',
  describe: 'dependencies · wheel to zoom, drag to pan',
  query: (workflow) =>
    `subscription { workflows(ids: [${quote(workflow)}]) {
  taskProxies { name cyclePoint state }
  edges { source target }
} }`,
  create: (body) => new GraphView(body),
};

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

class GraphView {
  constructor(body) {
    this.root = svg('svg', { class: 'graph-svg', role: 'img', 'aria-label': 'Task dependency graph' });
    const defs = svg('defs');
    const marker = svg('marker', {
      id: 'graph-arrow', viewBox: '0 0 8 8', refX: '8', refY: '4',
      markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse',
    });
    marker.append(svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'graph-arrowhead' }));
    defs.append(marker);
    this.viewport = svg('g', { class: 'graph-viewport' });
    this.groupLayer = svg('g', { class: 'graph-groups' });
    this.edgeLayer = svg('g', { class: 'graph-edges' });
    this.nodeLayer = svg('g', { class: 'graph-nodes' });
    this.viewport.append(this.groupLayer, this.edgeLayer, this.nodeLayer);
    this.root.append(defs, this.viewport);

    const fit = el('button', 'tool', 'Fit');
    const zoomIn = el('button', 'tool', '+');
    const zoomOut = el('button', 'tool', '−');
    for (const [b, label] of [[fit, 'Fit the graph to the panel'], [zoomIn, 'Zoom in'], [zoomOut, 'Zoom out']]) {
      b.type = 'button';
      b.title = label;
      b.setAttribute('aria-label', label);
    }
    this.count = el('span', 'graph-count');
    fit.addEventListener('click', () => this.#fit());
    zoomIn.addEventListener('click', () => this.#zoomBy(1.4));
    zoomOut.addEventListener('click', () => this.#zoomBy(1 / 1.4));
    this.frame = el('div', 'graph', this.root);
    body.append(el('div', 'graph-tools', this.count, el('span', 'graph-buttons', zoomOut, zoomIn, fit)), this.frame);

    this.nodes = new Map(); // id → { g, icon }
    this.edges = new Map(); // id → path
    this.view = { k: 1, x: 0, y: 0 };
    this.moved = false; // once the user pans or zooms, updates stop re-fitting
    this.layoutVersion = -1;
    this.#interact();
    this.resize = new ResizeObserver(() => {
      if (!this.moved && this.laid) this.#fit(false);
    });
    this.resize.observe(this.frame);
  }

  render(model, workflow) {
    const tasks = model.topic(workflow, 'taskProxies');
    const edges = model.topic(workflow, 'edges');
    const version = `${workflow}:${model.structureVersion}`;
    if (version !== this.layoutVersion) {
      this.layoutVersion = version;
      this.#layout(tasks, edges);
    }
    for (const [id, node] of this.nodes) {
      const status = tasks[id]?.state;
      setAttr(node.g, 'data-status', statusKey(status));
      setStatusIcon(node.icon, status);
    }
    this.count.textContent = `${this.nodes.size} tasks · ${this.edges.size} edges`;
  }

  #layout(tasks, edges) {
    const nodeList = Object.entries(tasks).map(([id, t]) => ({ id, group: t.cyclePoint ?? '', name: t.name ?? id }));
    const edgeList = Object.entries(edges)
      .map(([id, e]) => ({ id, source: relativeId(e.source), target: relativeId(e.target) }))
      .filter((e) => e.source in tasks && e.target in tasks);
    const rect = this.frame.getBoundingClientRect();
    const placed = layout(nodeList, edgeList, rect.width > 0 && rect.height > 0 ? rect.width / rect.height : 1.5);
    this.laid = placed;

    this.groupLayer.replaceChildren(
      ...placed.groups.map((g) => {
        const group = svg('g', { class: 'graph-group', transform: `translate(${g.x - 12},${g.y - 4})` });
        group.append(svg('rect', { width: g.w + 24, height: g.h + 16, rx: 8 }));
        const label = svg('text', { x: 12, y: 18, class: 'graph-group-label' });
        label.textContent = g.name;
        group.append(label);
        return group;
      }),
    );

    const seen = new Set();
    for (const { id, name } of nodeList) {
      seen.add(id);
      let node = this.nodes.get(id);
      if (!node) {
        const g = svg('g', { class: 'graph-node' });
        const title = svg('title');
        title.textContent = id;
        const icon = svg('svg', { class: 'status-icon', x: 5, y: (NODE_H - 14) / 2, width: 14, height: 14, viewBox: '0 0 16 16' });
        icon.append(svg('use'));
        const text = svg('text', { x: 24, y: NODE_H / 2 + 4 });
        text.textContent = name;
        g.append(title, svg('rect', { width: NODE_W, height: NODE_H, rx: 5 }), icon, text);
        node = { g, icon };
        this.nodes.set(id, node);
        this.nodeLayer.append(g);
      }
      const p = placed.nodes.get(id);
      setAttr(node.g, 'transform', `translate(${p.x},${p.y})`);
    }
    for (const [id, node] of this.nodes) {
      if (!seen.has(id)) {
        node.g.remove();
        this.nodes.delete(id);
      }
    }

    const live = new Set();
    for (const e of edgeList) {
      live.add(e.id);
      let path = this.edges.get(e.id);
      if (!path) {
        path = svg('path', { 'marker-end': 'url(#graph-arrow)' });
        this.edges.set(e.id, path);
        this.edgeLayer.append(path);
      }
      const a = placed.nodes.get(e.source);
      const b = placed.nodes.get(e.target);
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + NODE_H / 2;
      const bend = Math.max(24, Math.abs(x2 - x1) / 2);
      setAttr(path, 'd', `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
    }
    for (const [id, path] of this.edges) {
      if (!live.has(id)) {
        path.remove();
        this.edges.delete(id);
      }
    }
    if (!this.moved) this.#fit(false);
  }

  #apply() {
    const { k, x, y } = this.view;
    this.viewport.setAttribute('transform', `translate(${x},${y}) scale(${k})`);
    this.root.classList.toggle('far', k < LABEL_SCALE);
    this.root.style.setProperty('--zoom', String(k));
  }

  #fit(byUser = true) {
    if (byUser) this.moved = false;
    const rect = this.frame.getBoundingClientRect();
    const placed = this.laid;
    if (!placed || rect.width === 0 || rect.height === 0) return;
    const pad = 24;
    const w = placed.width + 24;
    const h = placed.height + 16;
    const k = clamp(Math.min((rect.width - pad * 2) / w, (rect.height - pad * 2) / h), MIN_SCALE, 1);
    this.view = { k, x: (rect.width - w * k) / 2 + 12 * k, y: (rect.height - h * k) / 2 + 4 * k };
    this.#apply();
  }

  #zoomBy(factor, cx, cy) {
    const rect = this.frame.getBoundingClientRect();
    const px = cx ?? rect.width / 2;
    const py = cy ?? rect.height / 2;
    const { k, x, y } = this.view;
    const nk = clamp(k * factor, MIN_SCALE, MAX_SCALE);
    this.view = { k: nk, x: px - ((px - x) * nk) / k, y: py - ((py - y) * nk) / k };
    this.moved = true;
    this.#apply();
  }

  #interact() {
    this.root.addEventListener(
      'wheel',
      (event) => {
        event.preventDefault();
        const rect = this.frame.getBoundingClientRect();
        this.#zoomBy(Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
      },
      { passive: false },
    );
    let drag = null;
    this.root.addEventListener('pointerdown', (event) => {
      drag = { x: event.clientX, y: event.clientY, vx: this.view.x, vy: this.view.y };
      this.root.setPointerCapture(event.pointerId);
      this.root.classList.add('dragging');
    });
    this.root.addEventListener('pointermove', (event) => {
      if (!drag) return;
      this.view = { ...this.view, x: drag.vx + event.clientX - drag.x, y: drag.vy + event.clientY - drag.y };
      this.moved = true;
      this.#apply();
    });
    const end = () => {
      drag = null;
      this.root.classList.remove('dragging');
    };
    this.root.addEventListener('pointerup', end);
    this.root.addEventListener('pointercancel', end);
  }

  destroy() {
    this.resize.disconnect();
  }
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}
