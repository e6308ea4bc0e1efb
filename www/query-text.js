// Formatting of normalized queries for people: the outer levels one field per line,
// the inner selections kept on one line (`taskProxies { name status }`), so a view's
// whole query fits in a few lines.

/** How many brace levels get a line per field. */
const BLOCK_DEPTH = 2;

/** Lays out a one-line GraphQL selection on indented lines (string literals kept whole). */
export function prettyQuery(query) {
  // A field with its arguments (`workflows(ids: ["a b"])`) is one token.
  const tokens = query.match(/[A-Za-z_]\w*\s*\((?:"(?:[^"\\]|\\.)*"|[^)"])*\)|[A-Za-z_]\w*|[{}]/g) ?? [];
  const lines = [];
  let line = '';
  let depth = 0; // braces open
  let inline = 0; // braces open on the current line beyond BLOCK_DEPTH
  const flush = () => {
    if (line.trim()) lines.push('  '.repeat(Math.min(depth, BLOCK_DEPTH)) + line.trim());
    line = '';
  };
  for (const token of tokens) {
    if (token === '{') {
      line += ' {';
      if (depth < BLOCK_DEPTH && inline === 0) {
        flush();
        depth += 1;
        continue;
      }
      depth += 1;
      inline += 1;
    } else if (token === '}') {
      if (inline > 0) {
        inline -= 1;
        depth -= 1;
        line += ' }';
      } else {
        flush();
        depth -= 1;
        line = '}';
        flush();
      }
    } else if (inline > 0) {
      line += ` ${token}`;
    } else {
      flush();
      line = token;
    }
  }
  flush();
  return lines.join('\n');
}

/** How many fields a query names (what a view costs, in one number). */
export function fieldCount(query) {
  const names = query.replace(/"(?:[^"\\]|\\.)*"/g, '').match(/[A-Za-z_]\w*/g) ?? [];
  return names.filter((n) => n !== 'subscription' && n !== 'ids').length;
}
