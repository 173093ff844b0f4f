/**
 * What every answer must look like, and the ledger of what the API said it created, checked
 * against Postgres at the end: every task row was answered 201 exactly once.
 */
import type { Pool } from 'pg';
import { describeSpec, ExpectedTask, routeOf, Spec } from './model';
import { Answer, headerValue } from './send';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** Bodies at least this large may see their connection closed while still being written (413/503 answered early). */
export const EARLY_ANSWER_BYTES = 64 * 1024;

export interface Violation {
  reason: string;
  kind: string;
  route: string;
  status: string;
  detail: string;
  /** The request, printable (method, path, headers, the first 300 bytes of body). */
  request: string;
}

interface Group {
  first: Violation;
  count: number;
}

/** Everything learnt while fuzzing, and every violation, grouped by what went wrong where. */
export class Ledger {
  /** Task id → how many 201s named it. */
  readonly created = new Map<string, number>();
  readonly replays = new Set<string>();
  /** Idempotency key → the task every 2xx with that key named. */
  readonly keyTask = new Map<string, string>();
  /** Ids to ask GET /tasks/:id for (a bounded sample). */
  readonly seen: string[] = [];
  readonly statuses = new Map<string, number>();
  /** Generator kind → status → count: what each kind of request actually met. */
  readonly byKind = new Map<string, Map<string, number>>();
  /** 503 answers with Retry-After (load shedding), by detail. */
  readonly shed = new Map<string, number>();
  readonly groups = new Map<string, Group>();
  requests = 0;
  unsendable = 0;

  count(status: string, kind: string): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    let k = this.byKind.get(kind);
    if (!k) this.byKind.set(kind, (k = new Map()));
    k.set(status, (k.get(status) ?? 0) + 1);
  }

  violate(v: Violation): void {
    const sig = `${v.reason} | ${v.kind} | ${v.route} | ${v.status}`;
    const g = this.groups.get(sig);
    if (g) g.count++;
    else this.groups.set(sig, { first: v, count: 1 });
  }

  get violationCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.count;
    return n;
  }

  pickSeen(n: number): string | undefined {
    return this.seen.length ? this.seen[n % this.seen.length] : undefined;
  }

  private noteCreated(id: string): void {
    this.created.set(id, (this.created.get(id) ?? 0) + 1);
    if (this.seen.length < 5000) this.seen.push(id);
    else this.seen[this.created.size % 5000] = id;
  }

  /** A task in a 201/200 answer (of POST /tasks or a batch item). */
  noteTask(status: number, task: Record<string, unknown>, v: (reason: string, detail: string) => void): void {
    const id = task.id;
    if (typeof id !== 'string' || !UUID.test(id)) {
      v('a task answer without a UUID id', JSON.stringify(task).slice(0, 300));
      return;
    }
    if (status === 201) this.noteCreated(id);
    else this.replays.add(id);
    const key = task.idempotency_key;
    if (typeof key === 'string') {
      const before = this.keyTask.get(key);
      if (before === undefined) this.keyTask.set(key, id);
      else if (before !== id) v('one idempotency key answered with two tasks', `key ${JSON.stringify(key)}: ${before} and now ${id} (${status})`);
    }
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Why `p` is not a problem body for `status`, or null. */
function problemFault(p: unknown, status: number): string | null {
  if (!isObject(p)) return 'the body is not a JSON object';
  if (p.status !== status) return `its status is ${JSON.stringify(p.status)}, not ${status}`;
  if (typeof p.title !== 'string' || !p.title) return 'it has no title';
  if (typeof p.detail !== 'string' || !p.detail) return 'it has no detail';
  return null;
}

/** Deep equality of JSON values (0 and -0 are one number, key order does not matter). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameJson(a[k], b[k]));
  }
  return false;
}

function taskMismatch(got: Record<string, unknown>, want: ExpectedTask): string | null {
  for (const f of ['type', 'priority', 'max_retries', 'idempotency_key'] as const) {
    if (got[f] !== want[f]) return `${f} is ${JSON.stringify(got[f])}, sent ${JSON.stringify(want[f])}`;
  }
  if (!sameJson(got.payload, want.payload)) return `payload is ${JSON.stringify(got.payload).slice(0, 200)}, sent ${JSON.stringify(want.payload).slice(0, 200)}`;
  return null;
}

function snippet(a: Answer): string {
  const text = a.body.toString('utf8');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Checks one answer to `s` (sent as `path`, its placeholders filled in) and counts its status. */
export function checkAnswer(ledger: Ledger, s: Spec, path: string, a: Answer, requestText: () => string): void {
  const route = routeOf(path);
  const v = (reason: string, detail: string) => ledger.violate({ reason, kind: s.kind, route, status: String(a.status), detail, request: requestText() });
  const type = headerValue(a.headers, 'content-type') ?? '';
  const head = s.method === 'HEAD';
  const json = head ? undefined : parseJson(a.body);
  ledger.count(String(a.status), s.kind);

  if (a.status >= 500) {
    const retryAfter = headerValue(a.headers, 'retry-after');
    const detail = isObject(json) && typeof json.detail === 'string' ? json.detail : '(HEAD)';
    // Load shedding is documented; an "outage" while Postgres and Redis are up is not.
    if (a.status === 503 && retryAfter !== undefined && type.startsWith('application/problem+json') && (head || problemFault(json, 503) === null) && !/postgres|redis|dependenc/i.test(detail)) {
      ledger.shed.set(detail, (ledger.shed.get(detail) ?? 0) + 1);
      return;
    }
    v(a.status === 503 ? '503 without Retry-After or a problem body' : `${a.status} answer`, snippet(a));
    return;
  }

  if (s.expect && !s.expect.includes(a.status)) v(`expected ${s.expect.join(' or ')}`, snippet(a));

  if (a.status >= 400) {
    if (!type.startsWith('application/problem+json')) {
      v('error answer is not application/problem+json', `Content-Type ${JSON.stringify(type)}, body ${JSON.stringify(snippet(a))}`);
      return;
    }
    if (!head) {
      const fault = problemFault(json, a.status);
      if (fault) v('malformed problem body', `${fault}: ${snippet(a)}`);
    }
    if (a.status === 405) {
      const allow = headerValue(a.headers, 'allow');
      const norm = (x: string | undefined) => (x ?? '').split(',').map((m) => m.trim()).filter(Boolean).sort().join(', ');
      if (!allow || (s.allow && norm(allow) !== norm(s.allow))) v('405 without the right Allow', `Allow ${JSON.stringify(allow)}, expected ${JSON.stringify(s.allow)}`);
    }
  }

  // Every answer from the application names a sane request id, the caller's when that was sane.
  if (type) {
    const id = headerValue(a.headers, 'x-request-id');
    const sent = s.headers.filter(([k]) => k.toLowerCase() === 'x-request-id').map(([, x]) => x);
    if (!id || !SANE_REQUEST_ID.test(id)) v('bad X-Request-Id in the answer', JSON.stringify(id));
    else if (sent.length === 1 && SANE_REQUEST_ID.test(sent[0]!) && id !== sent[0]) v('X-Request-Id not echoed', `sent ${sent[0]}, got ${id}`);
  }

  if (a.status < 200 || a.status >= 300 || head) return;
  if (!type.startsWith('application/json')) {
    v('2xx answer is not application/json', `Content-Type ${JSON.stringify(type)}`);
    return;
  }
  if (json === undefined) {
    v('2xx answer is not JSON', snippet(a));
    return;
  }
  if (s.method === 'POST') {
    if (isObject(json) && Array.isArray(json.results)) checkBatch(ledger, s, json.results, v);
    else if (isObject(json) && 'id' in json && 'type' in json) {
      if (a.status !== 201 && a.status !== 200) v('a task answered with neither 201 nor 200', snippet(a));
      ledger.noteTask(a.status, json, v);
      if (a.status === 201 && headerValue(a.headers, 'location') !== `/tasks/${String(json.id)}`) v('201 without Location of the task', `Location ${JSON.stringify(headerValue(a.headers, 'location'))}`);
      const mismatch = s.task ? taskMismatch(json, s.task) : null;
      if (mismatch) v('task answered is not the task sent', mismatch);
    } else v('2xx to a POST without a task or results', snippet(a));
    return;
  }
  if (route === '/tasks/:id' && s.method === 'GET') {
    let want = path.split('?')[0]!.replace(/\/+$/, '').split('/').pop() ?? '';
    try {
      want = decodeURIComponent(want).toLowerCase();
    } catch {
      // Not an id at all; the comparison below fails and says so.
    }
    if (!isObject(json) || json.id !== want || !Array.isArray(json.runs)) v('GET /tasks/:id answered another task', `asked ${want}: ${snippet(a)}`);
  }
  if (route === '/healthz' && s.method === 'GET' && !(isObject(json) && json.status === 'ok')) v('healthz body', snippet(a));
}

function checkBatch(ledger: Ledger, s: Spec, results: unknown[], v: (reason: string, detail: string) => void): void {
  if (s.batch && results.length !== s.batch.length) {
    v('batch results do not match its tasks', `${s.batch.length} tasks sent, ${results.length} results`);
    return;
  }
  results.forEach((r, i) => {
    const at = `tasks[${i}]`;
    if (!isObject(r) || typeof r.status !== 'number') {
      v('batch result without a status', `${at}: ${JSON.stringify(r).slice(0, 200)}`);
      return;
    }
    const want = s.batch?.[i];
    if (![200, 201, 400, 409].includes(r.status)) v(`batch item answered ${r.status}`, `${at}: ${JSON.stringify(r).slice(0, 300)}`);
    else if (want && !want.statuses.includes(r.status)) v(`batch item expected ${want.statuses.join(' or ')}`, `${at} got ${r.status}: ${JSON.stringify(r).slice(0, 300)}`);
    if (r.status === 201 || r.status === 200) {
      if (!isObject(r.task)) {
        v('batch item 2xx without a task', `${at}: ${JSON.stringify(r).slice(0, 200)}`);
        return;
      }
      ledger.noteTask(r.status, r.task, v);
      const mismatch = want?.task ? taskMismatch(r.task, want.task) : null;
      if (mismatch) v('batch item answered is not the task sent', `${at}: ${mismatch}`);
    } else {
      const fault = problemFault(r.error, r.status);
      if (fault) v('batch item error is not a problem', `${at}: ${fault}: ${JSON.stringify(r).slice(0, 200)}`);
    }
  });
}

/** A spec as printed in a violation: the request as sent (placeholders filled in). */
export function specText(s: Spec, path: string, index: number, copies = 1): string {
  return `[${s.kind} #${index}${copies > 1 ? ` ×${copies} at once` : ''}] ${describeSpec({ ...s, path })}`;
}

/** After the traffic: every task row was answered 201 exactly once, and every 201 and 200 names a row. */
export async function checkDatabase(pool: Pool, ledger: Ledger): Promise<void> {
  const { rows } = await pool.query<{ id: string; status: string; type: string; idempotency_key: string | null; payload: string; created_at: string }>(
    'SELECT id::text, status::text, type, idempotency_key, left(payload::text, 200) AS payload, created_at::text FROM tasks',
  );
  const v = (reason: string, detail: string) => ledger.violate({ reason, kind: '(database)', route: '(database)', status: '-', detail, request: '(see detail)' });
  const ids = new Set(rows.map((r) => r.id));
  for (const r of rows) {
    if (!ledger.created.has(r.id)) v('a task no answer created (never answered 201)', `${r.id} ${r.type} ${r.status} key=${JSON.stringify(r.idempotency_key)} payload=${r.payload} created_at=${r.created_at}`);
  }
  for (const [id, n] of ledger.created) {
    if (n > 1) v('one task answered 201 more than once', `${id} answered 201 ${n} times`);
    if (!ids.has(id)) v('a 201 for a task that is not in Postgres', id);
  }
  for (const id of ledger.replays) if (!ids.has(id)) v('a 200 replay of a task that is not in Postgres', id);
}

/** Waits until no task is queued, running or retrying; returns the unfinished count at the end. */
export async function waitForFinal(pool: Pool, timeoutMs: number): Promise<{ unfinished: number; byStatus: Record<string, number>; examples: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ status: string; n: number }>("SELECT status::text, count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead') GROUP BY status");
    const unfinished = rows.reduce((s, r) => s + r.n, 0);
    if (unfinished === 0 || Date.now() > deadline) {
      const ex = unfinished
        ? (await pool.query<{ t: string }>("SELECT id || ' ' || type || ' ' || status || ' attempts=' || attempts || ' max_retries=' || max_retries AS t FROM tasks WHERE status NOT IN ('succeeded', 'dead') LIMIT 5")).rows.map((r) => r.t)
        : [];
      return { unfinished, byStatus: Object.fromEntries(rows.map((r) => [r.status, r.n])), examples: ex };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
