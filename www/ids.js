// Cylc ids. Topics are keyed by the part of an element's id after `//` (its relative
// id: `1/foo`, `1/foo/01`); a reference to another element (`firstParent`, an edge's
// `source`) may be that key or the full id (`~me/flow//1/foo`). `relativeId` turns
// either into the key.

/** The key a reference names: the part after `//`, or the whole reference. */
export function relativeId(ref) {
  if (typeof ref !== 'string') return undefined;
  const at = ref.indexOf('//');
  return at < 0 ? ref : ref.slice(at + 2);
}
