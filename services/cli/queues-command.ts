/** `queues`: GET /queues as tables (a row per priority, a row per worker), or --json as the API answers. */
import { API_OPTIONS, apiClient } from './api-client';
import { parse } from './args';
import type { Io } from './io';
import { json, table } from './output';

export const QUEUES_USAGE = 'queues [--json]';

export async function queuesCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const { values } = parse(args, { ...API_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
  const answer = await apiClient(values, env).queues();
  if (values.json) {
    io.out(json(answer));
    return 0;
  }
  const sections: string[] = [];
  for (const [name, value] of Object.entries(answer)) {
    const rows = rowsOf(value, name);
    if (rows) sections.push(`${name.toUpperCase()}\n${rows.length ? table(rows, columnsOf(rows)) : '(none)\n'}`);
    else sections.push(`${name}: ${value === null ? '-' : typeof value === 'object' ? JSON.stringify(value) : String(value)}\n`);
  }
  io.out(sections.join('\n'));
  return 0;
}

/**
 * A list of records, or records keyed by name (e.g. by priority), as flat rows: nested objects
 * become dotted columns (rates.enqueued). Anything else is shown as a value, not a table.
 */
function rowsOf(value: unknown, name: string): Record<string, unknown>[] | null {
  if (Array.isArray(value)) return value.every(isRecord) ? value.map((r) => flatten(r)) : null;
  if (isRecord(value) && Object.values(value).length > 0 && Object.values(value).every(isRecord)) {
    const key = name.replace(/ies$/, 'y').replace(/s$/, '');
    return Object.entries(value).map(([k, r]) => ({ [key]: k, ...flatten(r as Record<string, unknown>) }));
  }
  return null;
}

function flatten(r: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (isRecord(v)) Object.assign(out, flatten(v, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = Array.isArray(v) ? JSON.stringify(v) : v;
  }
  return out;
}

function columnsOf(rows: Record<string, unknown>[]): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return cols;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
