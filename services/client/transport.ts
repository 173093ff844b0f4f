/**
 * One HTTP call with the client's retries: JSON in, JSON out, problem+json turned into ApiError.
 * Node's global fetch (undici) keeps connections alive between calls.
 */
import { ApiError, ConnectionError, ResponseError } from './errors';
import { MAX_TIMER_MS, Repeatability, retryDelay, retryOptions, RetryOptions } from './retry-policy';
import type { Problem } from './types';

export interface TransportOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** An API key (sent as `Authorization: Bearer …`). */
  apiKey?: string;
  /** With an admin key: act as this tenant (the `Tenant` header). */
  tenant?: string;
  retry?: RetryOptions;
  /** Per send, not per call with its retries. Default 30 s. */
  timeoutMs?: number;
  /** Told before each wait for a retry (e.g. to log it). */
  onRetry?: (info: RetryInfo) => void;
  /** A fetch to use instead of the global one (e.g. with a custom undici dispatcher). */
  fetch?: typeof fetch;
}

export interface RetryInfo {
  request: string;
  retry: number;
  delayMs: number;
  status: number | null;
  reason: string;
}

export interface CallOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  repeat: Repeatability;
  /** Statuses that are answers, not errors (default: any 2xx). */
  ok?: (status: number) => boolean;
  signal?: AbortSignal;
}

export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class Transport {
  private readonly base: URL;
  private readonly retry: Required<RetryOptions>;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: TransportOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
    } catch {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(opts.baseUrl)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(opts.baseUrl)}`);
    // fetch refuses every request to such a URL, and its error would repeat the password.
    if (base.username || base.password) throw new TypeError(`baseUrl must not carry a user or password (${base.origin}); the API key goes in apiKey`);
    this.base = base;
    this.retry = retryOptions(opts.retry);
    // NaN, 0 or past a timer's range would time out every send at once (such a timer fires at once).
    if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0 && opts.timeoutMs <= MAX_TIMER_MS)) throw new TypeError(`timeoutMs must be a number of milliseconds from 1 to ${MAX_TIMER_MS}, got ${String(opts.timeoutMs)}`);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, call: CallOptions): Promise<Answer<T>> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const request = `${method} /${path.replace(/^\//, '')}`;
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...call.headers };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    if (this.opts.tenant) headers.tenant = this.opts.tenant;
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers['content-type'] = 'application/json';
    }
    const ok = call.ok ?? ((s: number) => s >= 200 && s < 300);
    // A value no header may carry (a line break in a key or a tenant) is the caller's mistake: fetch
    // would refuse it on every send, and the call be retried and thrown as a lost connection.
    // fetch's own error quotes the value, and the value may be the API key: name the header only.
    for (const [name, value] of Object.entries(headers)) {
      try {
        new Headers([[name, value]]);
      } catch {
        throw new TypeError(`${request}: the ${name} header cannot carry its value (a line break, a NUL or a character beyond Latin-1)`);
      }
    }

    for (let attempt = 1; ; attempt++) {
      let res: Response;
      let text: string;
      // A plain timer, cleared once the body is read: AbortSignal.timeout costs far more per call.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new DOMException(`no answer within ${this.timeoutMs} ms`, 'TimeoutError')), this.timeoutMs);
      const onCallerAbort = () => abort.abort(call.signal!.reason);
      call.signal?.addEventListener('abort', onCallerAbort, { once: true });
      try {
        if (call.signal?.aborted) throw call.signal.reason;
        res = await this.fetch(url, { method, headers, body, signal: abort.signal });
        text = await res.text();
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason;
        const failure = abort.signal.aborted ? abort.signal.reason : err;
        const reason = describeFailure(failure, this.timeoutMs);
        const delay = retryDelay({ status: null, retryAfter: null }, attempt - 1, call.repeat, this.retry);
        if (delay === null) throw new ConnectionError(`${request} to ${this.base.origin}: ${reason}`, request, attempt, { cause: socketError(failure) });
        this.opts.onRetry?.({ request, retry: attempt, delayMs: delay, status: null, reason });
        await sleep(delay, call.signal);
        continue;
      } finally {
        clearTimeout(timer);
        call.signal?.removeEventListener('abort', onCallerAbort);
      }
      if (ok(res.status)) return { status: res.status, body: parseJson<T>(text, res.status, request), headers: res.headers };
      const problem = parseProblem(text, res);
      const delay = retryDelay({ status: res.status, retryAfter: res.headers.get('retry-after') }, attempt - 1, call.repeat, this.retry);
      if (delay === null) throw new ApiError(res.status, problem, request, attempt, res.headers);
      this.opts.onRetry?.({ request, retry: attempt, delayMs: delay, status: res.status, reason: problem.detail ?? `HTTP ${res.status}` });
      await sleep(delay, call.signal);
    }
  }
}

function parseJson<T>(text: string, status: number, request: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ResponseError(`${request} answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`, status, request);
  }
}

/** The problem body, or one made up from the status when the answer carries none (e.g. a proxy's page). */
function parseProblem(text: string, res: Response): Problem {
  try {
    const p = JSON.parse(text) as Problem;
    if (p && typeof p === 'object' && !Array.isArray(p)) return p;
  } catch {
    // not JSON: fall through
  }
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return { type: 'about:blank', title: res.statusText || `HTTP ${res.status}`, status: res.status, detail: `HTTP ${res.status}${snippet ? `: ${snippet}` : ''}` };
}

/** The socket's error (its `code`, e.g. ECONNREFUSED) out of undici's TypeError("fetch failed"); a timeout as it is. */
function socketError(failure: unknown): unknown {
  const cause = (failure as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause === 'object' && cause !== null && typeof cause.code === 'string' ? cause : failure;
}

/** undici wraps the socket's error in a TypeError("fetch failed"); the cause says what happened. */
function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause;
  if (cause?.code) return `${cause.code}${cause.message && !cause.message.includes(cause.code) ? ` (${cause.message})` : ''}`;
  return cause?.message ?? e?.message ?? String(err);
}
