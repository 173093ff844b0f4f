/**
 * What every answer must look like, and the ledger of what the API said it created, checked
 * against Postgres at the end: every task row was answered 201 exactly once, to its own tenant, and
 * no tenant's answer (created, replayed, read or conflicting) ever named another tenant's task.
 */
import type { Pool } from 'pg';
import { authVerdict, describeSpec, ExpectedTask, expectedStatuses, HEAD_LIMIT_BYTES, headBytes, routeOf, Spec } from './model';
import { Answer, headerValue } from './send';
import { expectContract } from '../support/contract';

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

/** Claims of requests that named no tenant the model knows (a task where none should be). */
export const NO_TENANT = '(no tenant)';
const SEEN_PER_TENANT = 2000;

/** Everything learnt while fuzzing, and every violation, grouped by what went wrong where. */
export class Ledger {
  /** Task id → how many 201s named it. */
  readonly created = new Map<string, number>();
  readonly replays = new Set<string>();
  /** Tenant and idempotency key → the task every 2xx with that key named. */
  readonly keyTask = new Map<string, string>();
  /** Task id → the tenant of the first answer that named it; every other answer must name it for the same. */
  readonly tenantOf = new Map<string, string>();
  /** Ids to ask GET /tasks/:id for, per tenant (a bounded sample). */
  readonly seen = new Map<string, string[]>();
  /** Workflow id → how many 201s named it; ids to ask GET /workflows/:id for, per tenant; tenant and key → the workflow its answers named. */
  readonly workflowsCreated = new Map<string, number>();
  readonly seenWorkflows = new Map<string, string[]>();
  readonly workflowKeys = new Map<string, string>();
  readonly statuses = new Map<string, number>();
  /** Generator kind → status → count: what each kind of request actually met. */
  readonly byKind = new Map<string, Map<string, number>>();
  /** Credential kind → status → count. */
  readonly byAuth = new Map<string, Map<string, number>>();
  /** 503 answers with Retry-After (load shedding), by detail. */
  readonly shed = new Map<string, number>();
  /** 429 answers of tenant limits, by title. */
  readonly limitedAnswers = new Map<string, number>();
  readonly groups = new Map<string, Group>();
  /** Every key's name and secret (set by the runner): no answer may contain a secret. */
  secrets: [string, string][] = [];
  /** The API runs with tenant limits (TENANT_RATE_LIMIT, TENANT_MAX_UNFINISHED): a POST may get 429. */
  limited = false;
  /** The slowest requests: ms, kind #index (a few, slowest first). */
  readonly slowest: [number, string][] = [];
  requests = 0;
  unsendable = 0;

  timed(ms: number, kind: string, index: number): void {
    if (this.slowest.length === 5 && ms <= this.slowest[4]![0]) return;
    this.slowest.push([ms, `${kind} #${index}`]);
    this.slowest.sort((a, b) => b[0] - a[0]);
    this.slowest.length = Math.min(5, this.slowest.length);
  }

  count(status: string, kind: string, auth?: string): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    tally(this.byKind, kind, status);
    if (auth !== undefined) tally(this.byAuth, auth, status);
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

  /**
   * An id answered 201 earlier: of `tenant` (`own`), of another tenant (not `own`), or of any
   * tenant (`tenant` null); undefined when there is none.
   */
  pickSeen(n: number, tenant: string | null, own: boolean, from: Map<string, string[]> = this.seen): string | undefined {
    const lists = tenant === null ? [...from.values()] : own ? [from.get(tenant) ?? []] : [...from].filter(([t]) => t !== tenant).map(([, l]) => l);
    const ids = lists.filter((l) => l.length > 0);
    if (ids.length === 0) return undefined;
    const l = ids[n % ids.length]!;
    return l[Math.floor(n / ids.length) % l.length];
  }

  private noteCreated(id: string, tenant: string, created = this.created, seen = this.seen): void {
    created.set(id, (created.get(id) ?? 0) + 1);
    // A task created where the model says nothing may be is reported, not asked for again.
    if (tenant === NO_TENANT) return;
    let l = seen.get(tenant);
    if (!l) seen.set(tenant, (l = []));
    if (l.length < SEEN_PER_TENANT) l.push(id);
    else l[created.size % SEEN_PER_TENANT] = id;
  }

  /**
   * A POST /workflows answer (201 or 200) to a request acting on `tenant`: the workflow is the
   * tenant's, and so is each step's task, which a 201 creates (and a 200 replays).
   */
  noteWorkflow(status: number, json: Record<string, unknown>, tenant: string | null, v: (reason: string, detail: string) => void): void {
    const w = json.workflow as Record<string, unknown> | undefined;
    const steps = json.steps;
    if (!w || typeof w.id !== 'string' || !UUID.test(w.id) || !Array.isArray(steps)) {
      v('a workflow answer without a workflow id and its steps', JSON.stringify(json).slice(0, 300));
      return;
    }
    const t = tenant ?? NO_TENANT;
    if (tenant !== null && w.tenant !== tenant) v("a workflow answered with another tenant's name", `acting on ${tenant}, the workflow says ${JSON.stringify(w.tenant)}`);
    if (steps.length !== w.steps_total) v('a workflow answered with another number of steps than it has', `steps_total ${JSON.stringify(w.steps_total)}, ${steps.length} steps listed`);
    if (status === 201) this.noteCreated(w.id, t, this.workflowsCreated, this.seenWorkflows);
    this.claim(`workflow ${w.id}`, t, status === 201 ? 'created' : 'replayed', v);
    for (const s of steps as Record<string, unknown>[]) {
      if (typeof s?.task_id !== 'string' || !UUID.test(s.task_id)) {
        v('a workflow step without a task id', JSON.stringify(s).slice(0, 200));
        continue;
      }
      if (status === 201) this.noteCreated(s.task_id, t);
      else this.replays.add(s.task_id);
      this.claim(s.task_id, t, status === 201 ? 'created in a workflow' : 'replayed in a workflow', v);
    }
    if (typeof w.idempotency_key === 'string') {
      const k = `${t}\n${w.idempotency_key}`;
      const before = this.workflowKeys.get(k);
      if (before === undefined) this.workflowKeys.set(k, w.id);
      else if (before !== w.id) v('one idempotency key answered with two workflows in one tenant', `tenant ${t}, key ${JSON.stringify(w.idempotency_key)}: ${before} and now ${w.id} (${status})`);
    }
  }

  /** An answer to `tenant` named task `id` (`how`: created, replayed, read, conflicted with). */
  claim(id: string, tenant: string, how: string, v: (reason: string, detail: string) => void): void {
    const first = this.tenantOf.get(id);
    if (first === undefined) this.tenantOf.set(id, tenant);
    else if (first !== tenant) v('one task named in answers to two tenants', `${id} ${how} for ${tenant}, named for ${first} before`);
  }

  /** A task in a 201/200 answer (of POST /tasks or a batch item) to a request acting on `tenant`. */
  noteTask(status: number, task: Record<string, unknown>, tenant: string | null, v: (reason: string, detail: string) => void): void {
    const id = task.id;
    if (typeof id !== 'string' || !UUID.test(id)) {
      v('a task answer without a UUID id', JSON.stringify(task).slice(0, 300));
      return;
    }
    const t = tenant ?? NO_TENANT;
    if (tenant !== null && task.tenant !== tenant) v("a task answered with another tenant's name", `acting on ${tenant}, the task says ${JSON.stringify(task.tenant)}`);
    if (status === 201) this.noteCreated(id, t);
    else this.replays.add(id);
    this.claim(id, t, status === 201 ? 'created' : 'replayed', v);
    const key = task.idempotency_key;
    if (typeof key === 'string') {
      const k = `${t}\n${key}`;
      const before = this.keyTask.get(k);
      if (before === undefined) this.keyTask.set(k, id);
      else if (before !== id) v('one idempotency key answered with two tasks in one tenant', `tenant ${t}, key ${JSON.stringify(key)}: ${before} and now ${id} (${status})`);
    }
  }

  /** A 409 names the task that holds the key: it must be the same tenant's. */
  noteConflict(detail: unknown, tenant: string | null, v: (reason: string, detail: string) => void): void {
    const id = typeof detail === 'string' ? /\btask ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/i.exec(detail)?.[1] : undefined;
    if (id) this.claim(id.toLowerCase(), tenant ?? NO_TENANT, 'conflicted with', v);
  }
}

function tally(m: Map<string, Map<string, number>>, key: string, status: string): void {
  let k = m.get(key);
  if (!k) m.set(key, (k = new Map()));
  k.set(status, (k.get(status) ?? 0) + 1);
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

/** What of a secret the answer repeats, and where (never the secret itself: reports are logged). */
function leakedSecret(ledger: Ledger, s: Spec, a: Answer): string | undefined {
  const heads = Object.values(a.headers).flat().join('\n');
  const where = (x: string) => (a.body.includes(x) ? 'the body' : heads.includes(x) ? 'a header' : undefined);
  for (const [name, secret] of ledger.secrets) {
    const at = where(secret);
    if (at) return `the secret of key ${name} in ${at}`;
  }
  for (const secret of s.secrets ?? []) {
    const at = where(secret);
    if (at) return `the secret of the unknown key sent in ${at}`;
  }
  if (a.status < 400) return undefined;
  // Long tokens of a refused credential as sent (placeholders aside) must not come back either.
  const sent = s.headers.filter(([k]) => k.toLowerCase() === 'authorization').flatMap(([, x]) => x.split(/[\s,]+/));
  for (const t of sent) {
    const at = t.length >= 16 && !t.includes('{{') ? where(t) : undefined;
    if (at) return `${t.length} characters of the Authorization sent in ${at}`;
  }
  return undefined;
}

/** Checks one answer to `s` (sent as `path`, its placeholders filled in) and counts its status. */
export function checkAnswer(ledger: Ledger, s: Spec, path: string, a: Answer, requestText: () => string): void {
  const route = routeOf(path);
  const kind = s.auth && s.auth.label !== 'good' ? `${s.kind} [${s.auth.label}]` : s.kind;
  const v = (reason: string, detail: string) => ledger.violate({ reason, kind, route, status: String(a.status), detail, request: requestText() });
  const type = headerValue(a.headers, 'content-type') ?? '';
  const head = s.method === 'HEAD';
  const json = head ? undefined : parseJson(a.body);
  const verdict = authVerdict({ ...s, path });
  ledger.count(String(a.status), s.kind, s.auth?.label);

  // Every answer, error or not, is one the OpenAPI document describes for its route (the contract
  // test's rules): its status, media type, headers and body.
  try {
    expectContract(s.method, path, { status: a.status, headers: a.headers, body: a.body.toString('utf8') });
  } catch (err) {
    v('answer not as the OpenAPI document says', (err as Error).message.slice(0, 500));
  }

  const leaked = leakedSecret(ledger, s, a);
  if (leaked !== undefined) v('an answer repeats a key or credential', leaked);
  if (a.status === 401 && !/^bearer\b/i.test(headerValue(a.headers, 'www-authenticate') ?? '')) v('401 without WWW-Authenticate: Bearer', `WWW-Authenticate ${JSON.stringify(headerValue(a.headers, 'www-authenticate'))}`);

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

  // Tenant limits, when the API has them: a POST the credential allows may be refused for now.
  if (a.status === 429 && ledger.limited && s.method === 'POST' && verdict?.tenant) {
    const retry = headerValue(a.headers, 'retry-after') ?? headerValue(a.headers, 'ratelimit-policy');
    if (retry === undefined) v('429 without Retry-After or RateLimit-Policy', snippet(a));
    else if (!type.startsWith('application/problem+json') || problemFault(json, 429)) v('429 without a problem body', snippet(a));
    const title = isObject(json) && typeof json.title === 'string' ? json.title : '(no title)';
    ledger.limitedAnswers.set(title, (ledger.limitedAnswers.get(title) ?? 0) + 1);
    return;
  }

  // 408 is the server's header/request timeout. On a machine stalled past HTTP_HEADERS_TIMEOUT_MS
  // (seen: 18 s with other test suites running) it may answer any request, and that is allowed.
  // What must hold is that nothing was created behind it, and that is checked at the end with every
  // other task (tasks answered 201 against rows in Postgres).
  if (a.status === 408 && type.startsWith('application/problem+json') && !(expectedStatuses(s, verdict) ?? [408]).includes(408)) {
    ledger.shed.set('408: the API did not read the request in time', (ledger.shed.get('408: the API did not read the request in time') ?? 0) + 1);
    return;
  }

  let expect = expectedStatuses(s, verdict);
  // Near node's header limit (keys are longer than their placeholders) the head may be refused.
  if (expect && headBytes({ ...s, path }) > HEAD_LIMIT_BYTES - 2048 && !expect.includes(431)) expect = [...expect, 431];
  if (expect && !expect.includes(a.status)) v(`expected ${expect.join(' or ')}`, snippet(a));

  if (a.status >= 400) {
    if (!type.startsWith('application/problem+json')) {
      v('error answer is not application/problem+json', `Content-Type ${JSON.stringify(type)}, body ${JSON.stringify(snippet(a))}`);
      return;
    }
    if (!head) {
      const fault = problemFault(json, a.status);
      if (fault) v('malformed problem body', `${fault}: ${snippet(a)}`);
    }
    if (a.status === 409 && isObject(json) && verdict) ledger.noteConflict(json.detail, verdict.tenant, v);
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
  if (s.method === 'POST' && (route === '/tasks/:id/cancel' || route === '/tasks/:id/retry')) {
    // The task acted on, as it is afterwards: the one asked for, of the tenant acting.
    const want = path.split('?')[0]!.replace(/\/+$/, '').split('/').slice(-2)[0]!.toLowerCase();
    if (!isObject(json) || json.id !== want) v(`${route} answered another task`, `asked ${want}: ${snippet(a)}`);
    else if (verdict?.tenant) {
      if (json.tenant !== verdict.tenant) v(`${route} answered another tenant's task`, `acting on ${verdict.tenant}, the task says ${JSON.stringify(json.tenant)}`);
      ledger.claim(want, verdict.tenant, 'acted on', v);
    }
    // (Its status is not checked: a concurrent retry or cancel of the same task may follow at once.)
    return;
  }
  if (route === '/schedules' || route === '/schedules/:name') {
    checkSchedules(s, path, route, json, verdict?.tenant ?? null, v);
    return;
  }
  if (route === '/workflows' || route === '/workflows/:id' || route === '/workflows/:id/cancel') {
    checkWorkflows(ledger, s, path, route, a.status, json, verdict?.tenant ?? null, v);
    return;
  }
  if (route.startsWith('/admin/')) {
    checkAdmin(s, route, a.status, json, v);
    return;
  }
  if (s.method === 'POST' && (route === '/tasks/cancel' || route === '/tasks/retry')) {
    const n = (k: string) => (isObject(json) && Number.isInteger(json[k]) && (json[k] as number) >= 0 ? (json[k] as number) : -1);
    if (n('matched') < 0 || n('changed') < 0 || n('changed') > n('matched') || !isObject(json) || typeof json.has_more !== 'boolean') v(`${route} answer is not {matched, changed, has_more}`, snippet(a));
    // A cursor exactly when there may be more: a caller loops on has_more and sends next_cursor.
    else if (!(typeof json.next_cursor === 'string' || json.next_cursor === null) || json.has_more !== (json.next_cursor !== null)) v(`${route} answer's next_cursor does not go with has_more`, snippet(a));
    return;
  }
  if (s.method === 'POST') {
    const tenant = verdict?.tenant ?? null;
    if (isObject(json) && Array.isArray(json.results)) checkBatch(ledger, s, json.results, tenant, v);
    else if (isObject(json) && 'id' in json && 'type' in json) {
      if (a.status !== 201 && a.status !== 200) v('a task answered with neither 201 nor 200', snippet(a));
      ledger.noteTask(a.status, json, tenant, v);
      if (a.status === 201 && headerValue(a.headers, 'location') !== `/tasks/${String(json.id)}`) v('201 without Location of the task', `Location ${JSON.stringify(headerValue(a.headers, 'location'))}`);
      const mismatch = s.task ? taskMismatch(json, s.task) : null;
      if (mismatch) v('task answered is not the task sent', mismatch);
    } else v('2xx to a POST without a task or results', snippet(a));
    return;
  }
  if (route === '/queues' && s.method === 'GET' && verdict?.tenant && (!isObject(json) || json.tenant !== verdict.tenant || !isObject(json.priorities))) {
    v('GET /queues answered for another tenant or without priorities', snippet(a));
  }
  if (route === '/tasks' && s.method === 'GET') {
    if (!isObject(json) || !Array.isArray(json.tasks) || !('next_cursor' in json)) v('GET /tasks answer is not {tasks, next_cursor}', snippet(a));
    else if (verdict?.tenant) {
      for (const t of json.tasks as Record<string, unknown>[]) {
        if (t.tenant !== verdict.tenant) v("GET /tasks listed another tenant's task", `acting on ${verdict.tenant}, a task says ${JSON.stringify(t.tenant)}`);
        else if (typeof t.id === 'string') ledger.claim(t.id, verdict.tenant, 'listed', v);
      }
    }
  }
  if (route === '/tasks/:id' && s.method === 'GET') {
    let want = path.split('?')[0]!.replace(/\/+$/, '').split('/').pop() ?? '';
    try {
      want = decodeURIComponent(want).toLowerCase();
    } catch {
      // Not an id at all; the comparison below fails and says so.
    }
    if (!isObject(json) || json.id !== want || !Array.isArray(json.runs)) v('GET /tasks/:id answered another task', `asked ${want}: ${snippet(a)}`);
    else if (verdict?.tenant) {
      // Answered to this tenant, so it must be this tenant's task.
      if (json.tenant !== verdict.tenant) v("GET /tasks/:id answered another tenant's task", `acting on ${verdict.tenant}, the task says ${JSON.stringify(json.tenant)}`);
      ledger.claim(want, verdict.tenant, 'read', v);
    }
  }
  if (route === '/healthz' && s.method === 'GET' && !(isObject(json) && json.status === 'ok')) v('healthz body', snippet(a));
  if (route === '/openapi.json' && s.method === 'GET' && !(isObject(json) && json.openapi === '3.1.0' && isObject(json.paths) && isObject(json.paths['/tasks']))) v('openapi.json is not the OpenAPI document', snippet(a));
}

/** A schedule answer names the tenant acting and the schedule asked for; a page lists only the tenant's. */
function checkSchedules(s: Spec, path: string, route: string, json: unknown, tenant: string | null, v: (reason: string, detail: string) => void): void {
  const isSchedule = (x: unknown): x is Record<string, unknown> => isObject(x) && typeof x.name === 'string' && typeof x.cron === 'string' && typeof x.tenant === 'string' && isObject(x.task);
  const text = JSON.stringify(json).slice(0, 300);
  if (route === '/schedules' && s.method === 'GET') {
    if (!isObject(json) || !Array.isArray(json.schedules) || !('next_cursor' in json)) return v('GET /schedules answer is not {schedules, next_cursor}', text);
    for (const x of json.schedules as unknown[]) {
      if (!isSchedule(x)) v('GET /schedules listed something that is not a schedule', JSON.stringify(x).slice(0, 300));
      else if (tenant && x.tenant !== tenant) v("GET /schedules listed another tenant's schedule", `acting on ${tenant}, a schedule says ${JSON.stringify(x.tenant)}`);
    }
    return;
  }
  if (!isSchedule(json)) return v(`${s.method} ${route} answered without a schedule`, text);
  if (tenant && json.tenant !== tenant) v(`${s.method} ${route} answered another tenant's schedule`, `acting on ${tenant}, the schedule says ${JSON.stringify(json.tenant)}`);
  if (route === '/schedules/:name') {
    let want = path.split('?')[0]!.replace(/\/+$/, '').split('/').pop() ?? '';
    try {
      want = decodeURIComponent(want);
    } catch {
      // Not a name; the comparison below says so.
    }
    if (json.name !== want) v(`${s.method} ${route} answered another schedule`, `asked ${want}: ${text}`);
    if (s.method === 'GET' && !(Array.isArray(json.next_ticks) && Array.isArray(json.last_runs))) v('GET /schedules/:name without next_ticks and last_runs', text);
  }
}

/**
 * A workflow answer names the tenant acting and the workflow asked for; a page lists only the
 * tenant's; a detail's steps are the tenant's tasks.
 */
function checkWorkflows(ledger: Ledger, s: Spec, path: string, route: string, status: number, json: unknown, tenant: string | null, v: (reason: string, detail: string) => void): void {
  const text = JSON.stringify(json).slice(0, 300);
  const isWorkflow = (x: unknown): x is Record<string, unknown> => isObject(x) && typeof x.id === 'string' && typeof x.tenant === 'string' && typeof x.status === 'string';
  const own = (w: Record<string, unknown>, what: string) => {
    if (tenant && w.tenant !== tenant) v(`${what} answered another tenant's workflow`, `acting on ${tenant}, the workflow says ${JSON.stringify(w.tenant)}`);
    if (tenant) ledger.claim(`workflow ${String(w.id)}`, tenant, 'read', v);
  };
  if (route === '/workflows' && s.method === 'POST') {
    if (!isObject(json)) return v('POST /workflows answered without a workflow', text);
    ledger.noteWorkflow(status, json, tenant, v);
    return;
  }
  if (route === '/workflows') {
    if (!isObject(json) || !Array.isArray(json.workflows) || !('next_cursor' in json)) return v('GET /workflows answer is not {workflows, next_cursor}', text);
    for (const w of json.workflows as unknown[]) {
      if (!isWorkflow(w)) v('GET /workflows listed something that is not a workflow', JSON.stringify(w).slice(0, 300));
      else own(w, 'GET /workflows');
    }
    return;
  }
  const segments = path.split('?')[0]!.replace(/\/+$/, '').split('/');
  const want = (route === '/workflows/:id/cancel' ? segments.at(-2) : segments.at(-1))!.toLowerCase();
  const w = isObject(json) ? json.workflow : undefined;
  if (!isWorkflow(w) || w.id !== want) return v(`${s.method} ${route} answered another workflow`, `asked ${want}: ${text}`);
  own(w, `${s.method} ${route}`);
  if (route === '/workflows/:id' && isObject(json)) {
    if (!Array.isArray(json.steps) || json.steps.length !== w.steps_total) return v('GET /workflows/:id without its steps', text);
    for (const step of json.steps as Record<string, unknown>[]) if (tenant && typeof step.task_id === 'string') ledger.claim(step.task_id, tenant, 'read in a workflow', v);
  }
}

function checkBatch(ledger: Ledger, s: Spec, results: unknown[], tenant: string | null, v: (reason: string, detail: string) => void): void {
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
      ledger.noteTask(r.status, r.task, tenant, v);
      const mismatch = want?.task ? taskMismatch(r.task, want.task) : null;
      if (mismatch) v('batch item answered is not the task sent', `${at}: ${mismatch}`);
    } else {
      const fault = problemFault(r.error, r.status);
      if (fault) v('batch item error is not a problem', `${at}: ${fault}: ${JSON.stringify(r).slice(0, 200)}`);
      else if (r.status === 409) ledger.noteConflict((r.error as Record<string, unknown>).detail, tenant, v);
    }
  });
}

/** A spec as printed in a violation: the request as sent (placeholders filled in). */
export function specText(s: Spec, path: string, index: number, copies = 1): string {
  return `[${s.kind} #${index}${copies > 1 ? ` ×${copies} at once` : ''}] ${describeSpec({ ...s, path })}`;
}

/**
 * After the traffic: every task row was answered 201 exactly once, every 201 and 200 names a row,
 * every row belongs to the tenant its answers were given to, and every idempotency key of a tenant
 * names that tenant's task, the one its answers named.
 */
export async function checkDatabase(pool: Pool, ledger: Ledger): Promise<void> {
  const { rows } = await pool.query<{ id: string; tenant: string; status: string; type: string; idempotency_key: string | null; payload: string; created_at: string }>(
    'SELECT id::text, tenant, status::text, type, idempotency_key, left(payload::text, 200) AS payload, created_at::text FROM tasks',
  );
  const v = (reason: string, detail: string) => ledger.violate({ reason, kind: '(database)', route: '(database)', status: '-', detail, request: '(see detail)' });
  const ids = new Set(rows.map((r) => r.id));
  for (const r of rows) {
    if (!ledger.created.has(r.id)) v('a task no answer created (never answered 201)', `${r.id} ${r.type} ${r.status} key=${JSON.stringify(r.idempotency_key)} payload=${r.payload} created_at=${r.created_at}`);
    const answered = ledger.tenantOf.get(r.id);
    if (answered !== undefined && answered !== r.tenant) v("a task answered to one tenant is another tenant's", `${r.id} answered to ${answered}, owned by ${r.tenant} in Postgres`);
  }
  const keys = await pool.query<{ tenant: string; key: string; task_id: string; owner: string | null }>(
    'SELECT k.tenant, k.key, k.task_id::text, t.tenant AS owner FROM idempotency_keys k LEFT JOIN tasks t ON t.id = k.task_id',
  );
  for (const k of keys.rows) {
    if (k.owner !== k.tenant) v("an idempotency key of one tenant names another tenant's task", `tenant ${k.tenant}, key ${JSON.stringify(k.key)}: task ${k.task_id} of ${k.owner ?? '(no task)'}`);
    const answered = ledger.keyTask.get(`${k.tenant}\n${k.key}`);
    if (answered !== undefined && answered !== k.task_id) v('an idempotency key names another task than its answers did', `tenant ${k.tenant}, key ${JSON.stringify(k.key)}: ${k.task_id} in Postgres, ${answered} answered`);
  }
  for (const [id, n] of ledger.created) {
    if (n > 1) v('one task answered 201 more than once', `${id} answered 201 ${n} times`);
    if (!ids.has(id)) v('a 201 for a task that is not in Postgres', id);
  }
  for (const id of ledger.replays) if (!ids.has(id)) v('a 200 replay of a task that is not in Postgres', id);
  const workflows = await pool.query<{ id: string; tenant: string; name: string }>('SELECT id::text, tenant, name FROM workflows');
  for (const w of workflows.rows) {
    if (!ledger.workflowsCreated.has(w.id)) v('a workflow no answer created (never answered 201)', `${w.id} ${w.tenant} ${w.name}`);
    const answered = ledger.tenantOf.get(`workflow ${w.id}`);
    if (answered !== undefined && answered !== w.tenant) v("a workflow answered to one tenant is another tenant's", `${w.id} answered to ${answered}, owned by ${w.tenant} in Postgres`);
  }
  for (const [id, n] of ledger.workflowsCreated) if (n > 1) v('one workflow answered 201 more than once', `${id} answered 201 ${n} times`);
}

/** Waits until no task is queued, running or retrying; returns the unfinished count at the end. */
export async function waitForFinal(pool: Pool, timeoutMs: number): Promise<{ unfinished: number; byStatus: Record<string, number>; examples: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ status: string; n: number }>("SELECT status::text, count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled') GROUP BY status");
    const unfinished = rows.reduce((s, r) => s + r.n, 0);
    if (unfinished === 0 || Date.now() > deadline) {
      const ex = unfinished
        ? (await pool.query<{ t: string }>("SELECT id || ' ' || type || ' ' || status || ' attempts=' || attempts || ' max_retries=' || max_retries AS t FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'cancelled') LIMIT 5")).rows.map((r) => r.t)
        : [];
      return { unfinished, byStatus: Object.fromEntries(rows.map((r) => [r.status, r.n])), examples: ex };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The admin routes' answers: lists without any key's text; a created key with its text, for the tenant asked. */
function checkAdmin(s: Spec, route: string, status: number, json: unknown, v: (reason: string, detail: string) => void): void {
  const text = JSON.stringify(json).slice(0, 300);
  if (route === '/admin/tenants') {
    if (!isObject(json) || !Array.isArray(json.tenants) || !json.tenants.every((t) => isObject(t) && typeof t.name === 'string' && Number.isInteger(t.unfinished))) v('GET /admin/tenants answer is not {tenants: [{name, unfinished, …}]}', text);
  } else if (route === '/admin/keys' && s.method !== 'POST') {
    if (!isObject(json) || !Array.isArray(json.keys)) v('GET /admin/keys answer is not {keys}', text);
    else if (json.keys.some((k) => !isObject(k) || 'key' in k)) v("GET /admin/keys shows a key's text", text);
  } else if (route === '/admin/keys') {
    const asked = JSON.parse(s.body.toString('utf8')) as { tenant: string; scopes: string[] };
    if (status !== 201 || !isObject(json) || typeof json.key !== 'string' || !json.key.startsWith('tsk_')) v('POST /admin/keys answered without the new key', text);
    else if (json.tenant !== asked.tenant || JSON.stringify(json.scopes) !== JSON.stringify(asked.scopes)) v('POST /admin/keys made a key other than the one asked for', text);
  }
}
