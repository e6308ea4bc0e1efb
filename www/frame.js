// Rendering in animation-frame batches: callbacks only mark what is dirty, and each
// dirty renderer draws at most once per frame however many messages arrived.

const dirty = new Set();
let scheduled = false;

function flush() {
  scheduled = false;
  const now = [...dirty];
  dirty.clear();
  for (const render of now) {
    try {
      render();
    } catch (error) {
      // One broken renderer must not stop the others; report it and carry on.
      reportError(error);
    }
  }
}

/** Asks for `render` to run in the next animation frame (once, however often asked). */
export function schedule(render) {
  dirty.add(render);
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(flush);
  }
}

/** Forgets a pending `render` (e.g. of a view being closed). */
export function cancel(render) {
  dirty.delete(render);
}
