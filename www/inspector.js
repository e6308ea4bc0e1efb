// The inspector: what the page subscribes to and how each copy is doing. Each open
// view's own query, the merged query the client sent (and whether the relay has
// confirmed it), and per (workflow, topic) the seq, projection hash, verification,
// message and byte rates, and latency from the suite's publish time.

import { el, setAttr, setText } from './dom.js';
import { schedule } from './frame.js';
import { fieldCount, prettyQuery } from './query-text.js';

const REFRESH_MS = 500;
/** The hash of an empty copy. */
const EMPTY_HASH = '0000000000000000';

export class Inspector {
  /**
   * @param {HTMLElement} body where to draw
   * @param {import('./pkg/index.js').Client} client
   * @param {import('./wire-meter.js').WireMeter} meter
   */
  constructor(body, client, meter, onReport = () => {}) {
    this.client = client;
    this.onReport = onReport;
    this.meter = meter;
    this.views = el('div', 'inspector-views');
    this.merged = el('pre', 'query merged-query');
    this.merged.id = 'merged-query';
    this.mergedInfo = el('span', 'merged-info');
    this.confirmed = el('span', 'badge');
    this.topicRows = new Map();
    this.topicBody = el('tbody');
    this.counters = el('dl', 'counters');
    const topicTable = el('table', 'topics');
    topicTable.id = 'topics';
    const head = el('tr');
    for (const [title, hint] of [
      ['workflow', ''],
      ['topic', ''],
      ['seq', 'the suite seq this copy stands at'],
      ['hash', 'projection hash of this copy'],
      ['ok', 'hash verified after every message'],
      ['msg/s', 'messages per second, last 5 s'],
      ['B/s', 'bytes per second over the wire (deflated frames at their compressed size), last 5 s'],
      ['latency', 'median time from the suite publishing to a view being told, last 5 s'],
    ]) {
      const th = el('th', '', title);
      if (hint) th.title = hint;
      head.append(th);
    }
    topicTable.append(el('thead', '', head), this.topicBody);
    // Copies first: they are short and carry the proof (every hash verified).
    body.append(
      el('section', 'inspector-section inspector-copies', el('h3', '', 'Copies (workflow, topic)'), el('div', 'topics-wrap', topicTable)),
      el('section', 'inspector-section inspector-merged',
        el('h3', '', 'Merged query ', this.mergedInfo, this.confirmed),
        this.merged),
      el('section', 'inspector-section inspector-views', el('h3', '', 'Each view’s query'), this.views),
      el('section', 'inspector-section inspector-counters', el('h3', '', 'Counters'), this.counters),
    );
    this.paint = () => this.#paint();
    this.timer = setInterval(() => schedule(this.paint), REFRESH_MS);
    schedule(this.paint);
  }

  /** Redraw in the next frame (e.g. a view opened or closed). */
  refresh() {
    schedule(this.paint);
  }

  #paint() {
    const report = this.client.inspect();
    this.onReport(report);

    const viewsKey = JSON.stringify(report.views);
    if (viewsKey !== this.viewsKey) {
      this.viewsKey = viewsKey;
      this.views.replaceChildren(
        ...report.views.map((v) => {
          const item = el('div', 'inspector-view',
            el('div', 'inspector-view-name', v.name, el('span', 'muted', ` · ${fieldCount(v.query)} fields`)),
            el('pre', 'query', prettyQuery(v.query)));
          item.dataset.view = v.name;
          return item;
        }),
      );
    }
    const fields = fieldCount(report.query);
    setText(this.merged, prettyQuery(report.query));
    setAttr(this.merged, 'data-fields', fields);
    setAttr(this.merged, 'data-query', report.query);
    setText(this.mergedInfo, `${fields} fields · ${report.query.length} chars`);
    const confirmed = report.subscribed === report.query;
    setText(this.confirmed, confirmed ? 'confirmed by the relay' : 'waiting for the relay');
    setAttr(this.confirmed, 'data-ok', String(confirmed));

    const seen = new Set();
    // A copy the merged query no longer selects is emptied by the relay (hash 0) but
    // still listed by the client; it holds nothing, so it is left out here.
    for (const t of report.topics.filter((c) => c.hash !== EMPTY_HASH)) {
      const key = `${t.workflow}\n${t.topic}`;
      seen.add(key);
      let row = this.topicRows.get(key);
      if (!row) {
        row = el('tr');
        row.cells_ = Array.from({ length: 8 }, () => el('td'));
        row.append(...row.cells_);
        row.dataset.workflow = t.workflow;
        row.dataset.topic = t.topic;
        this.topicRows.set(key, row);
      }
      const rates = this.meter.rates(t.workflow, t.topic);
      const c = row.cells_;
      setText(c[0], t.workflow);
      setText(c[1], t.topic);
      setText(c[2], t.seq ?? '–');
      if (c[3].title !== t.hash) {
        // Two halves, so a narrow inspector can show the first and elide the rest.
        c[3].replaceChildren(el('span', '', t.hash.slice(0, 8)), el('span', 'hash-rest', t.hash.slice(8)));
        c[3].title = t.hash;
        c[3].className = 'hash';
      }
      setText(c[4], t.verified ? '✓' : '✗');
      c[4].className = t.verified ? 'verified' : 'unverified';
      c[4].title = t.verified ? 'verified' : 'not verified: waiting for a fresh snapshot';
      setAttr(row, 'data-verified', String(t.verified));
      setText(c[5], rates.messagesPerSecond.toFixed(1));
      setText(c[6], formatBytes(rates.bytesPerSecond));
      const totals = this.meter.totals(t.workflow, t.topic);
      setAttr(c[6], 'data-deflated', totals.deflated);
      setAttr(
        c[6],
        'title',
        `since the page opened: ${totals.messages} messages, ${formatBytes(totals.bytes)} over the wire` +
          (totals.deflated ? ` (${totals.deflated} deflated: ${formatBytes(totals.deflatedBytes)})` : ''),
      );
      setText(c[7], rates.latencyMs === null ? '–' : `${rates.latencyMs.toFixed(0)} ms`);
    }
    for (const [key, row] of this.topicRows) {
      if (!seen.has(key)) {
        row.remove();
        this.topicRows.delete(key);
      }
    }
    // Sorted by workflow then topic, so rows keep their places.
    const ordered = [...this.topicRows.keys()].sort().map((k) => this.topicRows.get(k));
    if (ordered.some((row, i) => this.topicBody.children[i] !== row)) this.topicBody.replaceChildren(...ordered);

    const n = report.counters;
    const items = [
      ['messages', n.messages],
      ['received', formatBytes(n.bytes)],
      ['snapshots', n.snapshots],
      ['deltas', n.deltas],
      ['subscribes', n.subscribes],
      ['resyncs', n.resyncs],
      ['hash mismatches', n.hashMismatches],
      ['chain breaks', n.chainBreaks],
      ['reconnects', n.reconnects],
    ];
    if (this.counters.children.length !== items.length) {
      this.counters.replaceChildren(...items.map(([k]) => el('div', '', el('dt', '', k), el('dd'))));
    }
    items.forEach(([, v], i) => setText(this.counters.children[i].lastChild, String(v)));
  }

  destroy() {
    clearInterval(this.timer);
  }
}

function formatBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}
