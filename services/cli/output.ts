/** Human output of the CLI: aligned columns; --json prints the same records as JSON instead. */

/**
 * Characters a terminal acts on rather than shows (C0 and C1 controls, DEL, bidi overrides, line
 * separators). Text a task brought (a handler's error, a key's description) may hold them: drawn
 * raw, it could move the cursor, retitle the window, rewrite a line or reorder what is shown.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with every unsafe character shown as \uXXXX; `keepLines` leaves line breaks and tabs (a field's value, not a cell). */
export function printable(text: string, keepLines = false): string {
  return text.replace(UNSAFE, (c) => (keepLines && (c === '\n' || c === '\t') ? c : escaped(c)));
}

export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => printable(v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : Array.isArray(v) ? v.join(',') : String(v));
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

/** `name  value` lines, names aligned (the fields of one task, schedule or workflow). */
export function fields(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v === null || v === undefined ? '-' : printable(String(v), true)}`).join('\n');
}

/** Those JSON.stringify leaves raw (it escapes C0 controls only); they occur only inside strings. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** As \u escapes the JSON means the same, and a terminal shows it as it is. */
export function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2).replace(UNSAFE_IN_JSON, escaped)}\n`;
}
