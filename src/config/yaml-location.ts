/** An issue's key path → its printed form and the YAML node (offset) it came from. */
import { isAlias, isMap, isScalar, isSeq, type Document, type Node } from 'yaml';

/** `listeners.rtmp.port`, `auth.users[0].pass`, `paths["live/cam1"].source`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(String(seg))}]`;
  }
  return s;
}

/** Finds the YAML node for `path` (or the deepest existing ancestor) and returns its start offset. */
export function offsetOf(doc: Document, path: readonly PropertyKey[], atKey: boolean): number | undefined {
  let node: Node | null = doc.contents as Node | null;
  let offset = node?.range?.[0];
  for (let i = 0; i < path.length && node !== null; i++) {
    if (isAlias(node)) node = (node.resolve(doc) as Node | undefined) ?? null;
    const seg = path[i];
    let next: Node | null = null;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (pair === undefined) break;
      const keyNode = isScalar(pair.key) ? pair.key : null;
      const last = i === path.length - 1;
      const valueNode = pair.value as Node | null;
      // `key:` with nothing after it: the empty value has no useful position, the key does
      const emptyValue = isScalar(valueNode) && valueNode.value === null && valueNode.range?.[0] === valueNode.range?.[1];
      if ((last && atKey) || valueNode === null || valueNode.range == null || emptyValue) {
        offset = keyNode?.range?.[0] ?? offset;
        if (last && atKey) return offset;
        next = valueNode;
      } else next = valueNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = (node.items[seg] as Node | undefined) ?? null;
    } else break;
    if (next === null || (isScalar(next) && next.value === null && next.range?.[0] === next.range?.[1])) break;
    node = next;
    offset = node.range?.[0] ?? offset;
  }
  return offset;
}
