/**
 * What the API fuzzer sends and what it expects back. A request is plain data, generated from a
 * seed (generate.ts), so any failure can be printed and sent again. Requests name API keys by
 * placeholders (`{{key:alpha-rw}}`, see KEYS), filled in with the keys of the run when sent, so a
 * printed request never holds a secret.
 */
import querystring from 'node:querystring';
import { ScheduleGetQuerySchema, ScheduleListQuerySchema } from '../../services/api/schemas/schedules';
import { ListQuerySchema } from '../../services/api/schemas/task-list';
import { WorkflowListQuerySchema } from '../../services/api/schemas/workflows';

/** The task the API must answer with (201 or 200) for a valid body, as the client meant it. */
export interface ExpectedTask {
  type: string;
  priority: string;
  payload: unknown;
  max_retries: number;
  idempotency_key: string | null;
}

/** What one item of a well-formed batch must get. */
export interface ItemExpect {
  statuses: number[];
  task?: ExpectedTask;
}

/** One HTTP request as the server should read it. */
export interface Spec {
  /** Generator category, e.g. `hostile.surrogate`; violations are grouped by it. */
  kind: string;
  method: string;
  /**
   * May hold `{seen}` / `{SEEN}`: an id answered 201 earlier (lower / upper case), or `{wf}`: a
   * workflow's id answered 201 earlier, filled in when sent.
   */
  path: string;
  /** Which of the ids answered so far fills `{seen}` (taken modulo their number). */
  seen?: number;
  /** In order; a name may repeat (sent as separate lines). Values may hold latin1 bytes. */
  headers: [string, string][];
  body: Buffer;
  /** `length`: Content-Length of the body; `chunked`: no length, written in `chunks` pieces; `none`: no body. */
  framing: 'length' | 'chunked' | 'none';
  chunks?: number;
  /** Statuses the answer may have (a 503 with Retry-After is always tolerated); undefined: any below 500. */
  expect?: number[];
  /** The Allow header a 405 must carry. */
  allow?: string;
  /** For POST /tasks: the task a 201/200 must describe. */
  task?: ExpectedTask;
  /** For POST /tasks/batch with a well-formed wrapper: what each result must be. */
  batch?: ItemExpect[];
  /**
   * The credential in `headers` (Authorization, Tenant, ?tenant=), as the API must read it. The
   * statuses above are the answer once the request is allowed; authVerdict combines the two.
   */
  auth?: AuthUse;
  /** `{seen}`: an id of the acting tenant (default; 200), or of another tenant (404, as if unknown). */
  seenFrom?: 'own' | 'other';
  /** Key-shaped secrets sent that belong to no key: no answer may repeat them either. */
  secrets?: string[];
}

export type FuzzRequest =
  | {
      transport: 'http';
      spec: Spec;
      /** The same request sent this many times at once (idempotency races). */
      copies: number;
      /** A connection of its own instead of the keep-alive pool. */
      fresh: boolean;
      /** Other requests sent at the same moment (the same body as other tenants, say). */
      together?: Spec[];
    }
  | {
      transport: 'raw';
      kind: string;
      /** Exactly the bytes written to the socket. */
      bytes: Buffer;
      /** Shut down our side after writing (the server then sees EOF, maybe mid-body). */
      halfClose: boolean;
      /** How long to wait for the server to answer and close before giving up. */
      waitMs: number;
      /**
       * For well-framed requests (HTTP/1.0, pipelining): the requests in order; each answer is checked
       * as strictly as one sent through node:http. null: broken framing, where any answer below 500
       * or a closed connection is fine.
       */
      parts: Spec[] | null;
      /** With broken framing: the tenant of the key in the bytes (a task the server reports is its). */
      tenant?: string;
    };

export type HttpRequest = Extract<FuzzRequest, { transport: 'http' }>;

export const SEEN = '{seen}';
export const SEEN_UPPER = '{SEEN}';
export const WF_SEEN = '{wf}';

/** Which route of the API a path names (for grouping violations), as the router would see it. */
export function routeOf(path: string): string {
  const p = path.split('?')[0]!.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').toLowerCase().replace(/\/+$/, '') || '/';
  if (p === '/tasks') return '/tasks';
  if (p === '/tasks/batch') return '/tasks/batch';
  if (p === '/tasks/cancel' || p === '/tasks/retry') return p;
  const action = /^\/tasks\/[^/]+\/(cancel|retry)$/.exec(p);
  if (action) return `/tasks/:id/${action[1]}`;
  if (/^\/tasks\/[^/]+$/.test(p)) return '/tasks/:id';
  if (p === '/healthz' || p === '/readyz' || p === '/queues' || p === '/openapi.json') return p;
  if (p === '/schedules') return '/schedules';
  if (/^\/schedules\/[^/]+\/trigger$/.test(p)) return '/schedules/:name/trigger';
  if (/^\/schedules\/[^/]+$/.test(p)) return '/schedules/:name';
  if (p === '/workflows') return '/workflows';
  if (/^\/workflows\/[^/]+\/cancel$/.test(p)) return '/workflows/:id/cancel';
  if (/^\/workflows\/[^/]+$/.test(p)) return '/workflows/:id';
  if (p === '/admin/tenants' || p === '/admin/keys') return p;
  if (/^\/admin\/keys\/[^/]+\/revoke$/.test(p)) return '/admin/keys/:id/revoke';
  return '(other)';
}

/** Bytes as readable text: UTF-8 when they are, else latin1 with \xNN for every byte above 0x7e. */
export function showBytes(buf: Buffer, max = 300): string {
  const cut = buf.subarray(0, max);
  const more = buf.length > max ? `… (${buf.length} bytes)` : '';
  const text = isUtf8(cut) ? cut.toString('utf8') : [...cut].map((b) => (b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
  return JSON.stringify(text) + more;
}

function isUtf8(buf: Buffer): boolean {
  // stream: a cut that splits the last character still reads as text.
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf, { stream: true });
    return true;
  } catch {
    return false;
  }
}

function showHeader(value: string): string {
  const v = value.length > 80 ? `${value.slice(0, 80)}… (${value.length} chars)` : value;
  return JSON.stringify(v);
}

/** The request as a reader needs it: method, path, headers, the first 300 bytes of body. */
export function describeRequest(req: FuzzRequest, index?: number): string {
  const at = index === undefined ? '' : ` #${index}`;
  if (req.transport === 'raw') {
    return `[raw${at} ${req.kind}${req.halfClose ? ', half-closed' : ''}] bytes: ${showBytes(req.bytes)}`;
  }
  return `[${req.spec.kind}${at}${req.copies > 1 ? ` ×${req.copies} at once` : ''}] ${describeSpec(req.spec)}`;
}

export function describeSpec(s: Spec): string {
  const path = s.path.length > 200 ? `${s.path.slice(0, 200)}… (${s.path.length} chars)` : s.path;
  const shown = s.headers.slice(0, 6).map(([k, v]) => `${k}: ${showHeader(v)}`);
  if (s.headers.length > 6) shown.push(`… ${s.headers.length - 6} more headers (${s.headers.slice(6).reduce((n, [k, v]) => n + k.length + v.length + 4, 0)} bytes)`);
  const headers = shown.join(', ');
  const framing = s.framing === 'chunked' ? ' (chunked)' : '';
  const credential = s.auth ? ` [credential: ${s.auth.label}]` : '';
  return `${s.method} ${path} {${headers}} body${framing}: ${showBytes(s.body)}${credential}`;
}

// ---------------------------------------------------------------------------------------------
// Keys and tenants
// ---------------------------------------------------------------------------------------------

export type Scope = 'tasks:write' | 'tasks:read' | 'admin';

/** A key the runner creates (through the CLI) before the traffic; requests name it, never its text. */
export interface KeyDef {
  name: string;
  tenant: string;
  scopes: Scope[];
  /** revoked: revoked once created; expired: created to expire before the traffic starts. */
  state: 'active' | 'revoked' | 'expired';
}

export const KEYS: readonly KeyDef[] = [
  { name: 'alpha-rw', tenant: 'alpha', scopes: ['tasks:write', 'tasks:read'], state: 'active' },
  { name: 'alpha-w', tenant: 'alpha', scopes: ['tasks:write'], state: 'active' },
  { name: 'alpha-r', tenant: 'alpha', scopes: ['tasks:read'], state: 'active' },
  { name: 'beta-rw', tenant: 'beta', scopes: ['tasks:write', 'tasks:read'], state: 'active' },
  { name: 'beta-w', tenant: 'beta', scopes: ['tasks:write'], state: 'active' },
  { name: 'admin', tenant: 'ops', scopes: ['admin'], state: 'active' },
  { name: 'revoked', tenant: 'alpha', scopes: ['tasks:write', 'tasks:read'], state: 'revoked' },
  { name: 'expired', tenant: 'beta', scopes: ['tasks:write', 'tasks:read'], state: 'expired' },
];

/** Tenants requests act on: those of the keys, and one only an admin key names (no key: made by `tenants set`). */
export const TENANTS = ['alpha', 'beta', 'ops', 'gamma'] as const;
/** The tenants that exist (`default` from the first migration): an admin naming another gets a 400. */
const EXISTING_TENANTS = new Set<string>([...TENANTS, 'default']);

export function keyDef(name: string): KeyDef {
  const k = KEYS.find((x) => x.name === name);
  if (!k) throw new Error(`no fuzz key ${name}`);
  return k;
}

/** README: 1-63 characters of a-z 0-9 _ . -, starting with a letter or digit. */
export function isTenantName(s: string): boolean {
  return /^[a-z0-9][a-z0-9_.-]{0,62}$/.test(s);
}

/** How a request authenticates, as the API must read its Authorization lines. */
export interface AuthUse {
  /** The kind of credential (the report counts answers by it). */
  label: string;
  /** The active key the API must act as; null: the credential must be refused (401). */
  key: string | null;
  /** The credential may be read either way (a lower-case scheme, extra spaces): the key's answer or 401. */
  lenient?: boolean;
  /** Several Authorization lines: the first decides (node keeps only it), or the API refuses (400/401). */
  duplicated?: boolean;
}

/** What the API must make of a request's credential on a route that takes one. */
export interface Verdict {
  /** The tenant the request acts on; null: it must be refused with one of `refusals`. */
  tenant: string | null;
  /** With a tenant: refusals the API may give instead (an ambiguous credential). */
  refusals: number[];
}

/** The scope a route needs, or null for routes without a key (health, unknown paths, 405s). */
export function scopeOf(method: string, path: string): Scope | null {
  // Routing ignores the query, the case, one trailing slash, and an absolute-form origin.
  let p = path.split('?')[0]!.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').toLowerCase();
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  if (method === 'POST' && (p === '/tasks' || p === '/tasks/batch')) return 'tasks:write';
  if ((method === 'GET' || method === 'HEAD') && (p === '/tasks' || p === '/queues')) return 'tasks:read';
  // Operators' actions: cancel and retry, one task or in bulk.
  if (method === 'POST' && (p === '/tasks/cancel' || p === '/tasks/retry' || /^\/tasks\/[^/]+\/(cancel|retry)$/.test(p))) return 'tasks:write';
  // Schedules: reads need tasks:read, changes tasks:write.
  if ((method === 'GET' || method === 'HEAD') && (p === '/schedules' || /^\/schedules\/[^/]+$/.test(p))) return 'tasks:read';
  if (method === 'POST' && (p === '/schedules' || /^\/schedules\/[^/]+\/trigger$/.test(p))) return 'tasks:write';
  if ((method === 'PATCH' || method === 'DELETE') && /^\/schedules\/[^/]+$/.test(p)) return 'tasks:write';
  // Workflows: reads need tasks:read, submitting and cancelling tasks:write.
  if ((method === 'GET' || method === 'HEAD') && (p === '/workflows' || /^\/workflows\/[^/]+$/.test(p))) return 'tasks:read';
  if (method === 'POST' && (p === '/workflows' || /^\/workflows\/[^/]+\/cancel$/.test(p))) return 'tasks:write';
  // Tenants and keys: admin keys only.
  if ((method === 'GET' || method === 'HEAD') && (p === '/admin/tenants' || p === '/admin/keys')) return 'admin';
  if (method === 'POST' && (p === '/admin/keys' || /^\/admin\/keys\/[^/]+\/revoke$/.test(p))) return 'admin';
  const m = /^\/tasks\/([^/]+)$/.exec(p);
  if ((method === 'GET' || method === 'HEAD') && m && !['batch', 'cancel', 'retry'].includes(m[1]!)) return 'tasks:read';
  return null;
}

const LIST_PARAMS = new Set(Object.keys(ListQuerySchema.properties));
const SCHEDULE_LIST_PARAMS = new Set([...Object.keys(ScheduleListQuerySchema.properties), 'tenant']);
const SCHEDULE_GET_PARAMS = new Set([...Object.keys(ScheduleGetQuerySchema.properties), 'tenant']);
const WORKFLOW_LIST_PARAMS = new Set([...Object.keys(WorkflowListQuerySchema.properties), 'tenant']);

/** The parameters a GET route validates whole (any other is a 400 there), or null for routes that ignore what they do not know. */
/** The query parameters a route with a scope knows: its own list's, else only `tenant`. */
function validatedParams(s: Spec): Set<string> {
  if (s.method !== 'GET' && s.method !== 'HEAD') return TENANT_ONLY;
  const p = s.path.split('?')[0]!.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').toLowerCase().replace(/(.)\/$/, '$1');
  if (p === '/tasks') return LIST_PARAMS;
  if (p === '/schedules') return SCHEDULE_LIST_PARAMS;
  if (/^\/schedules\/[^/]+$/.test(p)) return SCHEDULE_GET_PARAMS;
  if (p === '/workflows') return WORKFLOW_LIST_PARAMS;
  return TENANT_ONLY;
}
const TENANT_ONLY = new Set(['tenant']);

function unknownParams(s: Spec, known: Set<string>): boolean {
  const q = s.path.indexOf('?');
  if (q < 0) return false;
  return Object.keys(querystring.parse(s.path.slice(q + 1).split('#')[0]!)).some((k) => !known.has(k));
}

interface Named {
  value: string;
  valid: boolean;
}

/** The tenant a request names: `?tenant=` (the query's), else the Tenant header; repeated is never valid. */
function namedTenants(s: Spec): { query?: Named; header?: Named } {
  const out: { query?: Named; header?: Named } = {};
  const q = s.path.indexOf('?');
  if (q >= 0) {
    const t = querystring.parse(s.path.slice(q + 1).split('#')[0]!).tenant;
    if (t !== undefined) out.query = Array.isArray(t) ? { value: t.join(', '), valid: false } : { value: t, valid: isTenantName(t) };
  }
  // A header value is read without its surrounding whitespace (HTTP's OWS).
  const lines = s.headers.filter(([k]) => k.toLowerCase() === 'tenant').map(([, v]) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (lines.length === 1) out.header = { value: lines[0]!, valid: isTenantName(lines[0]!) };
  else if (lines.length > 1) out.header = { value: lines.join(', '), valid: false };
  return out;
}

const uniq = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);

/**
 * The README's rules: no valid key → 401; a key naming another tenant → 403 unless it is an admin
 * key (which acts on that tenant, or gets 400 for a name that is not a tenant name); a key without
 * the route's scope → 403. null for routes that take no key.
 */
export function authVerdict(s: Spec): Verdict | null {
  const scope = scopeOf(s.method, s.path);
  if (scope === null) return null;
  const a = s.auth;
  const extra = [...(a?.lenient ? [401] : []), ...(a?.duplicated ? [400, 401] : [])];
  const refuse = (statuses: number[]): Verdict => ({ tenant: null, refusals: uniq([...statuses, ...extra]) });
  if (!a || a.key === null) return refuse([401]);
  const k = keyDef(a.key);
  if (k.state !== 'active') return refuse([401]);
  const admin = k.scopes.includes('admin');
  const { query, header } = namedTenants(s);
  const named = query ?? header;
  let tenant = k.tenant;
  if (named !== undefined && named.value !== k.tenant) {
    // Which of the two refusals a bad name from a key that may not name tenants anyway gets is open.
    if (!named.valid) return refuse(admin ? [400] : [400, 403]);
    if (!admin) return refuse([403]);
    if (!EXISTING_TENANTS.has(named.value)) return refuse([400]);
    tenant = named.value;
  }
  if (!admin && !k.scopes.includes(scope)) return refuse([403]);
  // Named both ways, differently: the query decides, or the API refuses the ambiguity.
  if (query && header && query.value !== header.value) extra.push(400, 403);
  // Every route with a scope validates its whole query: a parameter it does not know (`tenant[]`,
  // which the simple query parser keeps as its own key) is a 400.
  if (unknownParams(s, validatedParams(s))) extra.push(400);
  return { tenant, refusals: uniq(extra) };
}

/** Statuses the server may give before it looks at a credential (too large, too slow, an unknown Expect). */
export const PRE_AUTH = [408, 413, 414, 417, 431];

/** The statuses `s` may get: its own once allowed, combined with what its credential gets. undefined: any below 500. */
export function expectedStatuses(s: Spec, v: Verdict | null): number[] | undefined {
  if (v === null) return s.expect;
  if (v.tenant === null) {
    // A path that does not decode (`/tasks/%zz`) may be refused as malformed before anything else.
    const early = undecodable(s.path) ? [...PRE_AUTH, 400] : PRE_AUTH;
    return uniq([...v.refusals, ...(s.expect ?? early).filter((x) => early.includes(x))]);
  }
  return s.expect && uniq([...s.expect, ...v.refusals]);
}

function undecodable(path: string): boolean {
  try {
    decodeURIComponent(path.split('?')[0]!);
    return false;
  } catch {
    return true;
  }
}

/** node's default --max-http-header-size: a longer head is refused (431) without being read. */
export const HEAD_LIMIT_BYTES = 16 * 1024;

/** Bytes of the request line and headers, roughly (placeholders are shorter than keys). */
export function headBytes(s: Spec): number {
  return s.path.length + s.headers.reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
}
