/**
 * A keyset position in a tenant's tasks, newest first: a row's (created_at, id), created_at kept at
 * Postgres's microsecond precision. GET /tasks's pages and the bulk calls start strictly after one,
 * so a walk that carries on from it never sees a task twice, whatever changed status meanwhile,
 * and tasks added meanwhile (newer than any position) never join it. Callers get it as an opaque
 * token and give it back as it came.
 */
import { parseTime } from './task-fields';

export interface TaskCursor {
  /** created_at as Postgres prints it (microseconds). */
  createdAt: string;
  id: string;
}

/** The cursor as an opaque token (base64url of JSON). */
export function encodeCursor(c: TaskCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The cursor a token holds, or null when it is not one this service made. */
export function decodeCursor(token: string): TaskCursor | null {
  if (token.length > 200 || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') return null;
    if (!CURSOR_TIME.test(v[0]) || !UUID.test(v[1])) return null;
    // A real time Postgres can read back (no 30 February, no year 0): its offset as parseTime takes it.
    if (!parseTime(/[+-]\d{2}$/.test(v[0]) ? `${v[0]}:00` : v[0])) return null;
    return { createdAt: v[0], id: v[1] };
  } catch {
    return null;
  }
}

/** What a 400 says of a token decodeCursor refused. */
export const BAD_CURSOR = 'is not a cursor this service gave (use next_cursor as it came)';
