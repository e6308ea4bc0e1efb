// The relay's workflows: each with the relay's state for it (syncing, live, stale,
// busy, stopped), the workflow's own status (running, paused, stopping; stopped once
// the relay says so), its oldest active cycle point and a bar of its tasks by state
// (`stateTotals`), from the always-open "workflows" view. Click one to show it in the
// views.

import { el, setAttr, setText } from './dom.js';
import { STATUSES } from './status.js';

/** Relay states, with a word for people ('removed' is never shown; the module's
 * `workflowStates()` lists them all, and tests/node checks each has a hint). */
export const STATE_HINTS = {
  syncing: 'joining the suite',
  live: 'in sync, hash-verified',
  stale: 'heartbeats missed',
  busy: 'the suite is busy; data may lag',
  stopped: 'the suite has stopped',
};

export const WORKFLOWS_QUERY =
  'subscription { workflows { workflow { name status statusMsg oldestActiveCyclePoint stateTotals } } }';

/**
 * The workflow's status as people should read it: Cylc's own (running, paused,
 * stopping), or `stopped` when the relay says the scheduler has gone.
 */
export function workflowStatus(workflow, relayState) {
  if (relayState === 'stopped') return 'stopped';
  return workflow?.status ?? '';
}

export class WorkflowList {
  /**
   * @param {HTMLElement} list the <ul>
   * @param {(id: string) => void} onSelect
   */
  constructor(list, onSelect) {
    this.list = list;
    this.items = new Map();
    this.states = new Map();
    this.selected = null;
    list.addEventListener('click', (event) => {
      const item = event.target.closest('[data-workflow]');
      if (item) onSelect(item.dataset.workflow);
    });
  }

  /** The relay said a workflow changed state ('removed' drops it). */
  setState(workflow, state) {
    if (state === 'removed') this.states.delete(workflow);
    else this.states.set(workflow, state);
  }

  /** Ids in display order. */
  ids() {
    return [...this.states.keys()].sort();
  }

  render(model, selected) {
    this.selected = selected;
    const ids = this.ids();
    for (const id of ids) {
      let item = this.items.get(id);
      if (!item) item = this.#create(id);
      const state = this.states.get(id);
      const wf = model.topic(id, 'workflow');
      const p = item.parts;
      setAttr(item, 'aria-current', id === selected ? 'true' : null);
      setText(p.name, wf.name ?? id);
      setText(p.state, state);
      p.state.dataset.state = state;
      p.state.title = STATE_HINTS[state] ?? '';
      setText(p.point, wf.oldestActiveCyclePoint ?? 'no data yet');
      const status = workflowStatus(wf, state);
      setText(p.status, status);
      setAttr(p.status, 'data-status', status || null);
      setAttr(p.status, 'title', wf.statusMsg && wf.statusMsg !== status ? wf.statusMsg : null);
      const totals = wf.stateTotals ?? {};
      let all = 0;
      for (const s of STATUSES) all += totals[s] ?? 0;
      STATUSES.forEach((s, i) => {
        p.bar.children[i].style.flexGrow = String(totals[s] ?? 0);
      });
      p.bar.title = STATUSES.map((s) => `${s} ${totals[s] ?? 0}`).join(', ');
      setText(p.counts, all ? `${totals.running ?? 0} running · ${totals.succeeded ?? 0}/${all} done` + (totals.failed ? ` · ${totals.failed} failed` : '') : '');
    }
    for (const [id, item] of this.items) {
      if (!this.states.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
    const ordered = ids.map((id) => this.items.get(id));
    if (ordered.some((item, i) => this.list.children[i] !== item)) this.list.replaceChildren(...ordered);
  }

  #create(id) {
    const name = el('span', 'wf-name');
    const state = el('span', 'wf-state');
    const point = el('span', 'wf-point');
    point.title = 'oldest active cycle point';
    const status = el('span', 'wf-status');
    const bar = el('span', 'wf-bar', ...STATUSES.map((s) => {
      const part = el('span', `wf-bar-part`);
      part.dataset.status = s;
      return part;
    }));
    const counts = el('span', 'wf-counts');
    const button = el('button', 'wf-button',
      el('span', 'wf-line', name, state),
      el('span', 'wf-line muted', point, status),
      bar,
      counts);
    button.type = 'button';
    const item = el('li', 'wf', button);
    item.dataset.workflow = id;
    item.parts = { name, state, point, status, bar, counts };
    this.items.set(id, item);
    return item;
  }
}
