// Task and family states (Cylc 8's, the `state` of task and family proxies and jobs):
// their order through a task's life, a label, and an icon (a circle that fills as the
// task progresses; a diamond for the failures; a struck-through circle for expired),
// so a state reads by shape and text as well as by hue.

/** States in lifecycle order (also the table's sort order). */
export const STATUSES = [
  'waiting', 'preparing', 'submitted', 'running', 'succeeded', 'failed', 'submit-failed', 'expired',
];

const RANK = new Map(STATUSES.map((s, i) => [s, i]));

/** Lifecycle rank of a status; unknown ones sort last. */
export function statusRank(status) {
  return RANK.get(status) ?? STATUSES.length;
}

/** A known status, or 'unknown' (so CSS and icons always have a match). */
export function statusKey(status) {
  return RANK.has(status) ? status : 'unknown';
}

const SVG = 'http://www.w3.org/2000/svg';

/** An inline SVG icon for `status`; update it with `setStatusIcon`. */
export function statusIcon(status) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'status-icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('viewBox', '0 0 16 16');
  const use = document.createElementNS(SVG, 'use');
  svg.append(use);
  setStatusIcon(svg, status);
  return svg;
}

/** Points an icon from `statusIcon` at another status (no-op when unchanged). */
export function setStatusIcon(svg, status) {
  const key = statusKey(status);
  if (svg.dataset.status === key) return;
  svg.dataset.status = key;
  svg.firstChild.setAttribute('href', `#st-${key}`);
}
