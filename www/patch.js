// JSON merge patches (RFC 7386) applied to a view's own copy of its data, so a
// change costs work proportional to the patch rather than a fresh `view.data()`.

/**
 * Applies `patch` to `target` in place and returns it (or the replacement value).
 * Objects merge recursively, null deletes, anything else replaces; emptied objects
 * are pruned, as in the client's store.
 */
export function applyPatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  if (target === null || typeof target !== 'object' || Array.isArray(target)) target = {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete target[key];
    } else if (typeof value === 'object' && !Array.isArray(value)) {
      const merged = applyPatch(target[key], value);
      if (Object.keys(merged).length === 0) delete target[key];
      else target[key] = merged;
    } else {
      target[key] = value;
    }
  }
  return target;
}

/**
 * A view's data, kept up to date from its change callbacks:
 * `data.workflows[workflow][topic]`. `apply` says whether entries of a collection
 * topic came or went (so a graph knows to lay itself out again).
 */
export class ViewData {
  constructor(initial) {
    this.reset(initial);
  }

  /** Replaces everything with `initial` (a `view.data()` result, or nothing). */
  reset(initial) {
    this.workflows = initial?.workflows ?? {};
    this.structureVersion = (this.structureVersion ?? 0) + 1;
  }

  /** Applies a change callback's changes; returns true when entries came or went. */
  apply(changes) {
    let structural = false;
    for (const { workflow, topic, patch } of changes) {
      const topics = (this.workflows[workflow] ??= {});
      const before = topics[topic] ?? {};
      for (const [key, value] of Object.entries(patch ?? {})) {
        if (value === null || !(key in before)) structural = true;
      }
      const after = applyPatch(before, patch);
      if (after && Object.keys(after).length > 0) topics[topic] = after;
      else delete topics[topic];
      if (Object.keys(topics).length === 0) delete this.workflows[workflow];
    }
    if (structural) this.structureVersion += 1;
    return structural;
  }

  /** The value of `topic` in `workflow`, or an empty object. */
  topic(workflow, topic) {
    return this.workflows[workflow]?.[topic] ?? {};
  }
}
