// Table view: one row per task with its latest job; click a column heading to sort
// (again to reverse), type in the filter to narrow. Ties sort by task id, so rows
// keep their places while data changes.

import { el, quote, setAttr, setText } from '../dom.js';
import { statusIcon, setStatusIcon, statusKey, statusRank } from '../status.js';
import { clockTime, JOB_FIELDS, latestJob, submitLabel } from './jobs.js';
import { VirtualList } from './virtual-list.js';

const ROW_HEIGHT = 26;

/** Columns: heading, how to read the cell, how to compare (numbers or text). */
const COLUMNS = [
  { key: 'name', title: 'Task', value: (r) => r.name },
  { key: 'cyclePoint', title: 'Cycle', value: (r) => r.cyclePoint },
  { key: 'state', title: 'State', value: (r) => r.state, sortValue: (r) => statusRank(r.state) },
  { key: 'job', title: 'Job', value: (r) => submitLabel(r.job), sortValue: (r) => r.job?.submitNum ?? 0 },
  { key: 'jobState', title: 'Job state', value: (r) => r.job?.state ?? '' },
  { key: 'platform', title: 'Platform', value: (r) => r.job?.platform ?? '' },
  { key: 'started', title: 'Started', value: (r) => clockTime(r.job?.startedTime), sortValue: (r) => r.job?.startedTime ?? '' },
  { key: 'finished', title: 'Finished', value: (r) => clockTime(r.job?.finishedTime), sortValue: (r) => r.job?.finishedTime ?? '' },
];

export const table = {
  id: 'table',
  title: 'Table',
  describe: 'tasks and their latest jobs',
  query: (workflow) =>
    `subscription { workflows(ids: [${quote(workflow)}]) {
  taskProxies { name cyclePoint state jobs }
  ${JOB_FIELDS}
} }`,
  create: (body) => new TableView(body),
};

class TableView {
  constructor(body) {
    this.sort = { key: 'cyclePoint', descending: false };
    this.filter = '';
    this.filterInput = el('input', 'table-filter');
    Object.assign(this.filterInput, { type: 'search', placeholder: 'Filter tasks…', spellcheck: false });
    this.filterInput.setAttribute('aria-label', 'Filter tasks by name, cycle, state or platform');
    this.count = el('span', 'table-count');
    this.filterInput.addEventListener('input', () => {
      this.filter = this.filterInput.value.trim().toLowerCase();
      this.render(this.model, this.workflow);
    });
    this.head = el('div', 'table-row table-head');
    this.head.setAttribute('role', 'row');
    for (const column of COLUMNS) {
      const button = el('button', 'table-sort', column.title);
      button.type = 'button';
      button.dataset.key = column.key;
      const cell = el('div', `table-cell col-${column.key}`, button);
      cell.setAttribute('role', 'columnheader');
      this.head.append(cell);
    }
    this.head.addEventListener('click', (event) => {
      const key = event.target.closest('button')?.dataset.key;
      if (!key) return;
      this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : false };
      this.render(this.model, this.workflow);
    });
    this.scroller = el('div', 'vlist table-body');
    const grid = el('div', 'table', this.head, this.scroller);
    grid.setAttribute('role', 'table');
    grid.setAttribute('aria-label', 'Tasks');
    body.append(el('div', 'table-tools', this.filterInput, this.count), grid);
    this.list = new VirtualList(this.scroller, {
      rowHeight: ROW_HEIGHT,
      createRow: () => this.#createRow(),
      updateRow: (row, item) => this.#updateRow(row, item),
    });
  }

  #createRow() {
    const row = el('div', 'table-row');
    row.setAttribute('role', 'row');
    row.cells = COLUMNS.map((column) => {
      const cell = el('div', `table-cell col-${column.key}`);
      cell.setAttribute('role', 'cell');
      row.append(cell);
      return cell;
    });
    row.icon = statusIcon('waiting');
    row.statusText = el('span', 'status-label');
    row.cells[2].append(row.icon, row.statusText);
    return row;
  }

  #updateRow(row, item) {
    row.dataset.id = item.id;
    COLUMNS.forEach((column, i) => {
      if (column.key === 'state') {
        setStatusIcon(row.icon, item.state);
        setText(row.statusText, item.state ?? '');
        row.statusText.dataset.status = statusKey(item.state);
      } else {
        setText(row.cells[i], column.value(item));
      }
    });
  }

  render(model, workflow) {
    this.model = model;
    this.workflow = workflow;
    const tasks = model.topic(workflow, 'taskProxies');
    const jobs = model.topic(workflow, 'jobs');
    const all = Object.entries(tasks).map(([id, t]) => ({
      id,
      name: t.name ?? id,
      cyclePoint: t.cyclePoint ?? '',
      state: t.state,
      job: latestJob(t, jobs),
    }));
    const rows = this.filter ? all.filter((r) => matches(r, this.filter)) : all;
    const column = COLUMNS.find((c) => c.key === this.sort.key) ?? COLUMNS[0];
    const read = column.sortValue ?? column.value;
    const sign = this.sort.descending ? -1 : 1;
    rows.sort((a, b) => {
      const x = read(a);
      const y = read(b);
      if (x < y) return -sign;
      if (x > y) return sign;
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    });
    for (const cell of this.head.children) {
      const key = cell.firstChild.dataset.key;
      const sorted = key === this.sort.key;
      setAttr(cell, 'aria-sort', sorted ? (this.sort.descending ? 'descending' : 'ascending') : null);
    }
    setText(this.count, this.filter ? `${rows.length} of ${all.length}` : `${all.length} tasks`);
    this.list.setRows(rows);
    this.list.render();
  }

  destroy() {
    this.list.destroy();
  }
}

function matches(row, filter) {
  const text = `${row.id} ${row.state ?? ''} ${row.job?.platform ?? ''} ${row.job?.state ?? ''}`.toLowerCase();
  return text.includes(filter);
}
