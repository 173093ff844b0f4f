/**
 * The public HTTP API, called with the operator's key. The key lives in sessionStorage only: it
 * goes in the Authorization header, never in a URL, and is gone when the tab closes.
 */
const KEY_ITEM = 'task-scheduler.key';
const TENANT_ITEM = 'task-scheduler.tenant';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    /** The fields the problem names (`errors[].field`). */
    readonly fields: string[] = [],
    /** Retry-After, in milliseconds, when the answer carried one. */
    readonly retryAfterMs: number | null = null,
    /** The tenant's burst (RateLimit-Policy `q`), when the answer carried it. */
    readonly burst: number | null = null,
  ) {
    super(detail || title || `HTTP ${status}`);
  }
}

/** The API's root, relative to the page (the API fills in the meta tag from UI_BASE_PATH). */
function apiRoot(): URL {
  const rel = document.querySelector('meta[name="api-base"]')?.getAttribute('content') ?? '../';
  return new URL(rel === '__API_BASE__' ? '../' : rel, document.baseURI);
}

export const session = {
  key: (): string | null => sessionStorage.getItem(KEY_ITEM),
  signIn: (key: string) => sessionStorage.setItem(KEY_ITEM, key),
  signOut: () => {
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(TENANT_ITEM);
  },
  /** An admin key acts on this tenant (?tenant=); empty: the key's own. */
  tenant: (): string => sessionStorage.getItem(TENANT_ITEM) ?? '',
  setTenant: (t: string) => (t ? sessionStorage.setItem(TENANT_ITEM, t) : sessionStorage.removeItem(TENANT_ITEM)),
};

/** Called when the API refuses the key (401): the console signs out. */
let onUnauthorized: () => void = () => undefined;
export function whenUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

export type Query = Record<string, string | number | boolean | undefined | null | string[]>;

export function url(path: string, query: Query = {}): URL {
  const u = new URL(path.replace(/^\//, ''), apiRoot());
  const tenant = session.tenant();
  if (tenant && !path.startsWith('/admin')) u.searchParams.set('tenant', tenant);
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    u.searchParams.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  return u;
}

export async function call<T>(method: string, path: string, opts: { query?: Query; body?: unknown; key?: string } = {}): Promise<{ status: number; body: T }> {
  const key = opts.key ?? session.key();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url(path, opts.query), {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const p = (body ?? {}) as { title?: string; detail?: string; errors?: { field?: string }[] };
    if (res.status === 401 && opts.key === undefined) onUnauthorized();
    const retryAfter = Number(res.headers.get('retry-after'));
    const burst = /;q=(\d+)/.exec(res.headers.get('ratelimit-policy') ?? '');
    const fields = Array.isArray(p.errors) ? p.errors.flatMap((e) => (typeof e?.field === 'string' ? [e.field] : [])) : [];
    throw new ApiError(res.status, p.title ?? res.statusText, p.detail ?? '', fields, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null, burst ? Number(burst[1]) : null);
  }
  return { status: res.status, body: body as T };
}

export const get = async <T>(path: string, query?: Query): Promise<T> => (await call<T>('GET', path, { query })).body;
export const post = async <T>(path: string, body?: unknown): Promise<T> => (await call<T>('POST', path, { body })).body;
