// Tree view: cycle points → families → tasks, with state, progress and the latest
// job. Built from the proxies' `firstParent` (a family proxy, see ids.js): a cycle
// point's top row is its `root` family proxy; families and tasks hang under their
// parent, and tasks whose family is not (yet) known under their cycle point. Cycle
// points start open and families closed, so the first look is an overview; click a
// row's arrow (or press Enter/Space on it) to open or close it.

import { el, quote, setAttr, setText } from '../dom.js';
import { relativeId } from '../ids.js';
import { statusIcon, setStatusIcon, statusKey } from '../status.js';
import { JOB_FIELDS, latestJob, submitLabel } from './jobs.js';
import { VirtualList } from './virtual-list.js';

const ROW_HEIGHT = 26;

export const tree = {
  id: 'tree',
  title: 'Tree',
  describe: 'families → tasks',
  query: (workflow) =>
    `subscription { workflows(ids: [${quote(workflow)}]) {
  familyProxies { name cyclePoint state stateTotals firstParent }
  taskProxies { name cyclePoint state firstParent jobs }
  ${JOB_FIELDS}
} }`,
  create: (body) => new TreeView(body),
};

class TreeView {
  constructor(body) {
    this.scroller = el('div', 'vlist tree');
    this.scroller.setAttribute('role', 'tree');
    this.scroller.setAttribute('aria-label', 'Families and tasks');
    body.append(this.scroller);
    /** Rows the user opened or closed, by id: true = open. */
    this.open = new Map();
    this.list = new VirtualList(this.scroller, {
      rowHeight: ROW_HEIGHT,
      createRow: () => this.#createRow(),
      updateRow: (row, item) => this.#updateRow(row, item),
    });
    this.scroller.addEventListener('click', (event) => {
      const row = event.target.closest('.vlist-row');
      if (row?.dataset.expandable === 'true') this.#toggle(row.dataset.id);
    });
    this.scroller.addEventListener('keydown', (event) => {
      const row = event.target.closest('.vlist-row');
      if (row && (event.key === 'Enter' || event.key === ' ') && row.dataset.expandable === 'true') {
        event.preventDefault();
        this.#toggle(row.dataset.id);
      }
    });
  }

  #toggle(id) {
    const item = this.rows?.find((r) => r.id === id);
    if (!item) return;
    this.open.set(id, !item.open);
    this.render(this.model, this.workflow);
  }

  #createRow() {
    const row = el('div', 'tree-row');
    row.setAttribute('role', 'treeitem');
    row.tabIndex = -1;
    const twisty = el('span', 'twisty');
    const icon = statusIcon('waiting');
    const name = el('span', 'tree-name');
    const label = el('span', 'tree-status status-label');
    const detail = el('span', 'tree-detail');
    row.append(el('span', 'tree-main', twisty, icon, name), label, detail);
    row.parts = { twisty, icon, name, label, detail };
    return row;
  }

  #updateRow(row, item) {
    const { twisty, icon, name, label, detail } = row.parts;
    row.dataset.id = item.id;
    row.dataset.kind = item.kind;
    row.dataset.expandable = String(item.expandable);
    row.tabIndex = item.expandable ? 0 : -1;
    setAttr(row, 'aria-level', item.depth + 1);
    setAttr(row, 'aria-expanded', item.expandable ? String(item.open) : null);
    row.style.setProperty('--depth', item.depth);
    setText(twisty, item.expandable ? (item.open ? '▾' : '▸') : '');
    setStatusIcon(icon, item.status);
    setText(name, item.name);
    setText(label, item.status ?? '');
    label.dataset.status = statusKey(item.status);
    setText(detail, item.detail);
    setAttr(detail, 'title', item.detailTitle ?? null);
  }

  /** Rebuilds the visible rows from the view's data (once per frame at most). */
  render(model, workflow) {
    this.model = model;
    this.workflow = workflow;
    const families = model.topic(workflow, 'familyProxies');
    const tasks = model.topic(workflow, 'taskProxies');
    const jobs = model.topic(workflow, 'jobs');
    this.rows = flatten(families, tasks, jobs, this.open);
    this.list.setRows(this.rows);
    this.list.render();
  }

  destroy() {
    this.list.destroy();
  }
}

/** Orders families first, then tasks, each by name: stable whatever arrives when. */
function byName(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1;
}

function flatten(families, tasks, jobs, open) {
  const children = new Map(); // parent id → { families: [], tasks: [] }
  const slot = (id) => {
    let s = children.get(id);
    if (!s) children.set(id, (s = { families: [], tasks: [] }));
    return s;
  };
  const tops = [];
  for (const [id, family] of Object.entries(families)) {
    const parent = relativeId(family.firstParent);
    const item = { id, name: family.name ?? id, family };
    if (parent && parent in families) slot(parent).families.push(item);
    else tops.push(item);
  }
  // Tasks whose family is not (yet) known hang under their cycle point's top row.
  const orphans = new Map();
  for (const [id, task] of Object.entries(tasks)) {
    const parent = relativeId(task.firstParent);
    const item = { id, name: task.name ?? id, task };
    if (parent && parent in families) slot(parent).tasks.push(item);
    else {
      const point = task.cyclePoint ?? '';
      if (!orphans.has(point)) orphans.set(point, []);
      orphans.get(point).push(item);
    }
  }
  for (const [point, items] of orphans) {
    if (!tops.some((t) => (t.family.cyclePoint ?? '') === point)) {
      tops.push({ id: `${point}/`, name: point, family: { cyclePoint: point } });
    }
  }
  // Numeric order, so integer cycle points go 1, 2, 10 (date-times sort the same).
  tops.sort((a, b) => (a.family.cyclePoint ?? '').localeCompare(b.family.cyclePoint ?? '', 'en', { numeric: true }));

  const rows = [];
  const visit = (item, depth) => {
    const isTop = depth === 0;
    const kids = children.get(item.id) ?? { families: [], tasks: [] };
    const stray = isTop ? orphans.get(item.family.cyclePoint ?? '') ?? [] : [];
    const count = kids.families.length + kids.tasks.length + stray.length;
    const isOpen = open.get(item.id) ?? isTop;
    rows.push({
      id: item.id,
      kind: isTop ? 'cycle' : 'family',
      depth,
      // A cycle point's top family is `root`: the point names it better.
      name: isTop ? item.family.cyclePoint ?? item.name : item.name,
      status: item.family.state,
      expandable: count > 0,
      open: isOpen,
      detail: progress(item.family.stateTotals),
    });
    if (!isOpen) return;
    kids.families.sort(byName).forEach((f) => visit(f, depth + 1));
    for (const t of [...kids.tasks, ...stray].sort(byName)) {
      const job = latestJob(t.task, jobs);
      rows.push({
        id: t.id,
        kind: 'task',
        depth: depth + 1,
        name: t.name,
        status: t.task.state,
        expandable: false,
        open: false,
        detail: job ? `${submitLabel(job)} ${job.state ?? ''} ${job.platform ?? ''}`.trim() : '',
        detailTitle: job ? 'latest job: submit number, state, platform' : null,
      });
    }
  };
  tops.forEach((t) => visit(t, 0));
  return rows;
}

/** "12/48 done" from a family's per-state counts. */
function progress(totals) {
  if (!totals) return '';
  let all = 0;
  for (const n of Object.values(totals)) all += n;
  return all ? `${totals.succeeded ?? 0}/${all} done` : '';
}
