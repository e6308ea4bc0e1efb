// Small DOM helpers that skip writes when nothing changed, so repainting a row
// whose data is the same costs no layout or style work.

/** Creates an element with a class and optional children. */
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** Sets text content only when it differs. */
export function setText(node, text) {
  const value = text ?? '';
  if (node.textContent !== value) node.textContent = value;
}

/** Sets an attribute only when it differs (null removes it). */
export function setAttr(node, name, value) {
  if (value === null || value === undefined) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, value);
  }
}

/** A JSON string literal for a GraphQL query (ids are strings). */
export function quote(text) {
  return JSON.stringify(String(text));
}
