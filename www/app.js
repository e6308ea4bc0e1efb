// The page: connects to the relay that serves it, lists its workflows and opens the
// views. Every view is its own subscription over the client's one store
// (`client.view`); opening one asks only for its fields, closing one shrinks the
// merged query (see the inspector). Change callbacks only update each view's copy
// and mark it dirty; drawing happens once per animation frame.

import { connect } from './pkg/index.js';
import { el } from './dom.js';
import { cancel, schedule } from './frame.js';
import { Inspector } from './inspector.js';
import { ViewData } from './patch.js';
import { WireMeter } from './wire-meter.js';
import { WorkflowList, WORKFLOWS_QUERY, workflowStatus } from './workflows.js';
import { graph } from './views/graph.js';
import { table } from './views/table.js';
import { tree } from './views/tree.js';

const KINDS = [tree, table, graph];
const DEFAULT_VIEWS = ['tree', 'table', 'graph'];

const $ = (id) => document.getElementById(id);

/** Page state that survives a reload: `#workflow=demo&views=tree,table`. */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const views = params.get('views');
  return {
    workflow: params.get('workflow'),
    views: views === null ? DEFAULT_VIEWS : views.split(',').filter((v) => KINDS.some((k) => k.id === v)),
  };
}

function writeHash() {
  const params = new URLSearchParams();
  if (selected) params.set('workflow', selected);
  params.set('views', KINDS.filter((k) => open.has(k.id)).map((k) => k.id).join(','));
  history.replaceState(null, '', `#${params}`);
}

const meter = new WireMeter();
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
// A relay that requires tokens takes one as `/ws?token=`; a page opened with
// `?token=...` passes it on (browsers cannot set headers on a websocket).
const token = new URLSearchParams(location.search).get('token');
const socketUrl = `${scheme}://${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;
const client = await connect(socketUrl, { WebSocket: meter.socketClass() });

const wanted = readHash();
let selected = null;
/** The first selection opens the views the URL (or the default) asks for. */
let started = false;
/** Whether the user has picked a workflow (then the URL's choice no longer applies). */
let picked = false;
/** Open views by kind id: { kind, view, model, renderer, panel, draw }. */
const open = new Map();

// Connection indicator.
const connection = $('connection');
function showStatus({ status, delayMs }) {
  connection.dataset.status = status;
  // The page dims what it shows while it cannot hear from the relay.
  document.body.dataset.connection = status;
  const text = {
    connecting: 'connecting…',
    open: 'connected',
    reconnecting: `reconnecting${delayMs ? ` in ${(delayMs / 1000).toFixed(1)} s` : '…'}`,
    closed: 'disconnected',
  }[status] ?? status;
  connection.querySelector('.connection-text').textContent = text;
}
client.on('status', showStatus);
showStatus({ status: client.status });

client.on('error', ({ code, message }) => {
  // Shown, not thrown: the client carries on (e.g. a resync that keeps failing).
  const notice = $('notice');
  notice.textContent = `${code}: ${message}`;
  notice.hidden = false;
});

const inspector = new Inspector($('inspector-body'), client, meter, (report) => {
  const relay = report.relay ? `relay ${report.relay}` : '';
  if ($('relay-name').textContent !== relay) $('relay-name').textContent = relay;
});

$('inspector').querySelector('.panel-head').append(maximizeButton());

// View toggles.
const toggles = $('view-toggles');
for (const kind of KINDS) {
  const button = el('button', 'toggle', kind.title);
  button.type = 'button';
  button.dataset.view = kind.id;
  button.title = `${kind.title}: ${kind.describe}`;
  button.setAttribute('aria-pressed', 'false');
  button.addEventListener('click', () => (open.has(kind.id) ? closeView(kind.id) : openView(kind)));
  toggles.append(button);
}

// The workflow list, fed by the relay's workflow messages and a summary view.
const workflows = new WorkflowList($('workflow-list'), (id) => {
  picked = true;
  select(id);
});
const summary = new ViewData();
const drawWorkflows = () => {
  workflows.render(summary, selected);
  // The selected workflow's status (running, paused, stopping, stopped) by its name.
  const status = selected ? workflowStatus(summary.topic(selected, 'workflow'), workflows.states.get(selected)) : '';
  const shown = $('selected-status');
  if (shown.textContent !== status) shown.textContent = status;
  if (status) shown.dataset.status = status;
  else delete shown.dataset.status;
  $('workflow-empty').hidden = workflows.ids().length > 0;
};
const summaryView = client.view('workflows', WORKFLOWS_QUERY, (changes) => {
  summary.apply(changes);
  meter.noteChanges(changes);
  schedule(drawWorkflows);
});
summary.reset(summaryView.data());

function select(workflow) {
  if (workflow === selected) return;
  selected = workflow;
  $('selected-workflow').textContent = workflow ?? '';
  schedule(drawWorkflows);
  writeHash();
  if (!selected) return;
  if (selected && !started) {
    started = true;
    for (const kind of KINDS) if (wanted.views.includes(kind.id)) openView(kind);
  }
  for (const entry of open.values()) {
    // Same view, new query: the client sends only the difference.
    entry.view.setQuery(entry.kind.query(selected));
    schedule(entry.draw);
  }
  inspector.refresh();
}

function openView(kind) {
  if (open.has(kind.id) || !selected) return;
  const close = el('button', 'panel-close', '×');
  close.type = 'button';
  close.title = `Close the ${kind.title.toLowerCase()} view`;
  close.setAttribute('aria-label', close.title);
  close.addEventListener('click', () => closeView(kind.id));
  const body = el('div', 'panel-body');
  const panel = el('section', 'panel',
    el('header', 'panel-head', el('h2', '', kind.title), el('span', 'panel-hint', kind.describe), maximizeButton(), close),
    body);
  panel.dataset.view = kind.id;
  panel.style.order = String(KINDS.indexOf(kind));
  $('views').append(panel);

  const renderer = kind.create(body);
  const empty = el('div', 'panel-empty');
  body.append(empty);
  const model = new ViewData();
  const entry = { kind, model, renderer, panel };
  entry.draw = () => {
    renderer.render(model, selected);
    // Say why a view is empty rather than show a blank panel.
    const waiting = !model.workflows[selected];
    empty.hidden = !waiting;
    if (waiting) empty.textContent = emptyText(selected, workflows.states.get(selected));
  };
  entry.view = client.view(kind.id, kind.query(selected), (changes) => {
    model.apply(changes);
    meter.noteChanges(changes);
    schedule(entry.draw);
  });
  // Data other views already hold is there at once; the rest arrives as changes.
  model.reset(entry.view.data());
  open.set(kind.id, entry);
  schedule(entry.draw);
  afterViewsChanged();
}

/** Why a view of `workflow` has nothing to show yet, from the relay's state for it. */
function emptyText(workflow, state) {
  switch (state) {
    case 'syncing':
      return `Joining ${workflow}…`;
    case 'busy':
      return `${workflow} is busy: the suite cannot answer yet. Its data follows as soon as it can.`;
    case 'stale':
      return `${workflow} has gone quiet (heartbeats missed); waiting for it.`;
    case 'stopped':
      return `${workflow} has stopped.`;
    default:
      return `Waiting for ${workflow}'s data…`;
  }
}

/** A button that lets its panel fill the views area (and back). */
function maximizeButton() {
  const button = el('button', 'panel-max', '⤢');
  button.type = 'button';
  button.title = 'Fill the window with this panel (again to restore)';
  button.setAttribute('aria-label', 'Maximize');
  button.setAttribute('aria-pressed', 'false');
  button.addEventListener('click', () => {
    const panel = button.closest('.panel');
    const views = $('views');
    const on = !panel.classList.contains('maximized');
    for (const p of views.querySelectorAll('.panel.maximized')) {
      p.classList.remove('maximized');
      p.querySelector('.panel-max').setAttribute('aria-pressed', 'false');
    }
    panel.classList.toggle('maximized', on);
    button.setAttribute('aria-pressed', String(on));
    views.classList.toggle('has-maximized', on);
  });
  return button;
}

function closeView(id) {
  const entry = open.get(id);
  if (!entry) return;
  open.delete(id);
  entry.view.close();
  cancel(entry.draw);
  entry.renderer.destroy();
  if (entry.panel.classList.contains('maximized')) $('views').classList.remove('has-maximized');
  entry.panel.remove();
  afterViewsChanged();
}

function afterViewsChanged() {
  for (const button of toggles.children) {
    button.setAttribute('aria-pressed', String(open.has(button.dataset.view)));
  }
  $('views').dataset.count = String(open.size);
  $('views-empty').hidden = open.size > 0;
  inspector.refresh();
  writeHash();
}

// Workflows the client already knows, then every change.
function onWorkflow({ workflow, state }) {
  workflows.setState(workflow, state);
  if (state === 'removed' && workflow === selected) select(null);
  // The relay lists its workflows in a burst of messages: choose in the next frame,
  // once they are all in, so the default is the first by name, not the first to arrive.
  if (!selected || performance.now() < settleUntil) schedule(pickDefault);
  // The workflow the URL names wins until the user picks one, even if it came late.
  else if (workflow === wanted.workflow && !picked && state !== 'removed') select(workflow);
  schedule(drawWorkflows);
  if (workflow === selected) for (const entry of open.values()) schedule(entry.draw);
}

/** Until then, a workflow that sorts first may still take over the default choice. */
let settleUntil = Infinity;

function pickDefault() {
  if (picked) return;
  const ids = workflows.ids();
  const first = ids.includes(wanted.workflow) ? wanted.workflow : ids[0];
  if (settleUntil === Infinity) settleUntil = performance.now() + 1000;
  // The relay's first burst of workflow messages can span frames: let the choice
  // settle on the first by name, but never move the user's view after that.
  if (first && (!selected || performance.now() < settleUntil)) select(first);
}
client.on('workflow', onWorkflow);
for (const [workflow, { state }] of Object.entries(client.workflows())) onWorkflow({ workflow, state });

// For tests and the curious: the live client and the wire meter, from the devtools console.
globalThis.clonewire = { client, open, meter };
