/**
 * What the API fuzzer sends and what it expects back. A request is plain data, generated from a
 * seed (generate.ts), so any failure can be printed and sent again.
 */

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
  /** May hold `{seen}` / `{SEEN}`: an id answered 201 earlier (lower / upper case), filled in when sent. */
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
}

export type FuzzRequest =
  | {
      transport: 'http';
      spec: Spec;
      /** The same request sent this many times at once (idempotency races). */
      copies: number;
      /** A connection of its own instead of the keep-alive pool. */
      fresh: boolean;
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
    };

export type HttpRequest = Extract<FuzzRequest, { transport: 'http' }>;

export const SEEN = '{seen}';
export const SEEN_UPPER = '{SEEN}';

/** Which route of the API a path names (for grouping violations), as the router would see it. */
export function routeOf(path: string): string {
  const p = path.split('?')[0]!.toLowerCase().replace(/\/+$/, '') || '/';
  if (p === '/tasks') return '/tasks';
  if (p === '/tasks/batch') return '/tasks/batch';
  if (/^\/tasks\/[^/]+$/.test(p)) return '/tasks/:id';
  if (p === '/healthz' || p === '/readyz') return p;
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
  return `${s.method} ${path} {${headers}} body${framing}: ${showBytes(s.body)}`;
}
