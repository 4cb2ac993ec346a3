/** Wording of config problems: zod issues and yaml parser errors → messages a user can act on. */
import type { z } from 'zod';

/** A short description of a YAML value for messages ("string \"abc\"", "a list", "nothing"). */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (v === undefined) return 'nothing';
  return `${typeof v} ${String(v)}`;
}

/** The user-facing message for one zod issue. */
export function issueMessage(iss: z.core.$ZodIssue): string {
  switch (iss.code) {
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return iss.message.startsWith('Invalid input') ? `expected ${iss.expected}, got ${describeValue(iss.input)}` : iss.message;
    case 'too_small':
      if (iss.origin === 'array') return `needs at least ${String(iss.minimum)} item(s)`;
      if (iss.origin === 'string') return 'must not be empty';
      return iss.message;
    default:
      return iss.message;
  }
}

/** yaml's messages end with " at line L, column C" in some versions; the position is printed separately. */
export function yamlMessage(msg: string): string {
  return msg.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}
