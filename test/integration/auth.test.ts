/**
 * API keys and tenant isolation against real Postgres and Redis: 401/403/404, scopes, admin acting
 * for another tenant, idempotency keys per tenant, revocation and expiry within AUTH_CACHE_MS, and
 * keys never echoed in answers.
 */
import { Pool } from 'pg';
import { Authenticator } from '../../services/api/auth/authenticator';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import type { Scope } from '../../services/core/tenancy/api-key';
import { generateKey, hashKey, keyId } from '../../services/core/tenancy/api-key';
import { createKey, ensureKey, listKeys, revokeKey } from '../../services/core/tenancy/key-store';
import { silentLog, stackWithApi } from '../support/stack';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const CACHE_MS = 300;
let auth: Authenticator;
const failures = apiMetrics(createRegistry('api')).authFailures;
const fx = stackWithApi({}, { auth: (stack) => (auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: CACHE_MS, log: silentLog, onFailure: (reason) => failures.inc({ reason }) })) });

const key = async (tenant: string, scopes: Scope[], expiresInMs: number | null = null) => (await createKey(fx.stack.pool, { tenant, scopes, expiresInMs })).key;
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function post(path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(`${fx.api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}
const get = (path: string, headers: Record<string, string>) => fetch(`${fx.api.url}${path}`, { headers });

async function expectUnauthorized(res: Response, secret?: string): Promise<void> {
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="task-scheduler"/);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const text = await res.text();
  if (secret) expect(text).not.toContain(secret.slice(4));
}

describe('authentication', () => {
  it('refuses a request without a key, with a malformed key, an unknown key or a wrong secret (401, key never echoed)', async () => {
    const good = await key('acme', ['tasks:write', 'tasks:read']);
    const wrongSecret = `${good.slice(0, 21)}${'A'.repeat(43)}`;
    const unknown = `tsk_0123456789abcdef_${'B'.repeat(43)}`;
    const variants: Record<string, string>[] = [{}, { authorization: 'Basic dXNlcjpwYXNz' }, bearer('not-a-key'), bearer(unknown), bearer(wrongSecret), { authorization: `Bearer ${good}x` }];
    for (const headers of variants) {
      const secret = headers.authorization?.split(' ')[1];
      await expectUnauthorized(await post('/tasks', { type: 'noop' }, headers), secret);
      await expectUnauthorized(await post('/tasks/batch', { tasks: [{ type: 'noop' }] }, headers), secret);
      await expectUnauthorized(await get('/tasks/00000000-0000-7000-8000-000000000000', headers), secret);
    }
    const missing = await post('/tasks', { type: 'noop' }, {});
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="task-scheduler"');
    expect((await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n).toBe(0);
  });

  it('accepts a valid key, on the fast path and through express (gzip, batch), and records its last use', async () => {
    const k = await key('acme', ['tasks:write', 'tasks:read']);
    const res = await post('/tasks', { type: 'noop' }, bearer(k));
    expect(res.status).toBe(201);
    const task = (await res.json()) as { id: string; tenant: string };
    expect(task.tenant).toBe('acme');
    const batch = await post('/tasks/batch', { tasks: [{ type: 'noop' }, { type: 'noop' }] }, bearer(k));
    expect(batch.status).toBe(200);
    const read = await get(`/tasks/${task.id}`, bearer(k));
    expect(read.status).toBe(200);
    await auth.flushUsed();
    const [row] = (await listKeys(fx.stack.pool, 'acme')).filter((r) => k.includes(r.id));
    expect(row!.last_used_at).not.toBeNull();
  });

  it('a key without the scope gets 403; admin holds every scope', async () => {
    const readOnly = await key('acme', ['tasks:read']);
    const writeOnly = await key('acme', ['tasks:write']);
    const p1 = await post('/tasks', { type: 'noop' }, bearer(readOnly));
    expect(p1.status).toBe(403);
    expect(((await p1.json()) as { detail: string }).detail).toMatch(/tasks:write/);
    expect((await post('/tasks/batch', { tasks: [{ type: 'noop' }] }, bearer(readOnly))).status).toBe(403);
    const created = (await (await post('/tasks', { type: 'noop' }, bearer(writeOnly))).json()) as { id: string };
    expect((await get(`/tasks/${created.id}`, bearer(writeOnly))).status).toBe(403);
    expect((await get(`/tasks/${created.id}`, bearer(readOnly))).status).toBe(200);
    const admin = await key('acme', ['admin']);
    expect((await post('/tasks', { type: 'noop' }, bearer(admin))).status).toBe(201);
  });

  it('a revoked key stops working within AUTH_CACHE_MS, an expired one once it expires', async () => {
    const k = await key('acme', ['tasks:write', 'tasks:read']);
    const id = k.slice(4, 20);
    expect((await post('/tasks', { type: 'noop' }, bearer(k))).status).toBe(201);
    await revokeKey(fx.stack.pool, id);
    await sleep(CACHE_MS + 50);
    for (let i = 0; i < 5; i++) await expectUnauthorized(await post('/tasks', { type: 'noop' }, bearer(k)), k);
    const shortLived = await key('acme', ['tasks:write'], 200);
    expect((await post('/tasks', { type: 'noop' }, bearer(shortLived))).status).toBe(201);
    await sleep(Math.max(200, CACHE_MS) + 50);
    await expectUnauthorized(await post('/tasks', { type: 'noop' }, bearer(shortLived)), shortLived);
  });

  it('counts refusals by reason', async () => {
    const before = (await failures.get()).values.find((v) => v.labels.reason === 'missing')?.value ?? 0;
    await post('/tasks', { type: 'noop' }, {});
    const after = (await failures.get()).values.find((v) => v.labels.reason === 'missing')?.value ?? 0;
    expect(after).toBe(before + 1);
  });
});

describe('the bootstrap admin key', () => {
  const ensure = (pool: Pool, k: string) => ensureKey(pool, keyId(k)!, hashKey(k), 'default', ['admin']);

  it('API replicas starting together with the same key all start; a different secret under that id is refused', async () => {
    // One pool per replica, so the inserts really race on separate connections.
    const replicas = Array.from({ length: 4 }, () => new Pool({ connectionString: fx.stack.dbUrl, max: 1 }));
    try {
      for (let round = 0; round < 25; round++) {
        const k = generateKey().key;
        const results = await Promise.all(replicas.map((p) => ensure(p, k)));
        expect(results.filter((r) => r === 'created')).toHaveLength(1);
        expect(results.filter((r) => r === 'exists')).toHaveLength(replicas.length - 1);
        const forged = `${k.slice(0, 21)}${'Z'.repeat(43)}`;
        await expect(ensure(replicas[0]!, forged)).rejects.toThrow(/exists with another secret/);
      }
    } finally {
      await Promise.all(replicas.map((p) => p.end()));
    }
  });
});

it('a key revoked while its lookup was slow is trusted no longer than AUTH_CACHE_MS from when the lookup began', async () => {
  const k = await key('acme', ['tasks:write']);
  let slow = true;
  // The first lookup's answer takes 600 ms to come back (a busy Postgres or network).
  const delayed = new Proxy(fx.stack.pool, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const out = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (slow) await sleep(600);
        return out;
      };
    },
  });
  const a = new Authenticator(delayed, { mode: 'keys', cacheMs: 400, log: silentLog });
  try {
    expect((await a.authenticate(`Bearer ${k}`)).tenant).toBe('acme');
    slow = false;
    await revokeKey(fx.stack.pool, k.slice(4, 20));
    // The answer is already older than AUTH_CACHE_MS: looked up again, and refused.
    await expect(Promise.resolve().then(() => a.authenticate(`Bearer ${k}`))).rejects.toMatchObject({ status: 401 });
  } finally {
    await a.close();
  }
});

it('a request arriving after a key was revoked does not wait on a lookup begun more than AUTH_CACHE_MS before it', async () => {
  const k = await key('acme', ['tasks:write']);
  let slow = true;
  // The first lookup reads the key (still valid), then its answer takes 900 ms to come back.
  const delayed = new Proxy(fx.stack.pool, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const wasSlow = slow;
        const out = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (wasSlow) await sleep(900);
        return out;
      };
    },
  });
  const a = new Authenticator(delayed, { mode: 'keys', cacheMs: 300, log: silentLog });
  try {
    const first = Promise.resolve().then(() => a.authenticate(`Bearer ${k}`));
    await sleep(100);
    slow = false;
    await revokeKey(fx.stack.pool, k.slice(4, 20));
    // Revoked more than AUTH_CACHE_MS ago, while the first lookup (begun before) is still out.
    await sleep(400);
    const later = Promise.resolve().then(() => a.authenticate(`Bearer ${k}`));
    // The first request came before the revocation: its lookup's answer stands for it.
    expect((await first).tenant).toBe('acme');
    await expect(later).rejects.toMatchObject({ status: 401 });
  } finally {
    await a.close();
  }
});

it('a flood of random keys costs Postgres a query per batch, not per request', async () => {
  let queries = 0;
  const counting = new Proxy(fx.stack.pool, {
    get(target, prop, receiver) {
      if (prop === 'query') return (...args: unknown[]) => (queries++, (target.query as (...a: unknown[]) => unknown).apply(target, args));
      return Reflect.get(target, prop, receiver);
    },
  });
  const flooded = new Authenticator(counting, { mode: 'keys', cacheMs: 500, log: silentLog });
  const random = () => `tsk_${Math.random().toString(16).slice(2, 10).padEnd(8, '0')}${Math.random().toString(16).slice(2, 10).padEnd(8, '0')}_${'C'.repeat(43)}`;
  const results = await Promise.allSettled(Array.from({ length: 2000 }, () => Promise.resolve().then(() => flooded.authenticate(`Bearer ${random()}`))));
  expect(results.every((r) => r.status === 'rejected' && [401, 503].includes((r.reason as { status: number }).status))).toBe(true);
  expect(results.filter((r) => r.status === 'rejected' && (r.reason as { status: number }).status === 401).length).toBeGreaterThan(0);
  expect(queries).toBeLessThanOrEqual(5);
  await flooded.close();
});

describe('tenant isolation', () => {
  let a: string;
  let b: string;
  let admin: string;
  beforeAll(async () => {
    a = await key('team-a', ['tasks:write', 'tasks:read']);
    b = await key('team-b', ['tasks:write', 'tasks:read']);
    admin = await key('ops', ['admin']);
  });

  it("another tenant's task is not found (404, as if it did not exist)", async () => {
    const task = (await (await post('/tasks', { type: 'noop', payload: { secret: 1 } }, bearer(a))).json()) as { id: string };
    const other = await get(`/tasks/${task.id}`, bearer(b));
    const none = await get('/tasks/00000000-0000-7000-8000-000000000000', bearer(b));
    expect(other.status).toBe(404);
    expect(none.status).toBe(404);
    expect(((await other.json()) as { detail: string }).detail).toBe(((await none.json()) as { detail: string }).detail.replace('00000000-0000-7000-8000-000000000000', task.id));
    expect((await get(`/tasks/${task.id}`, bearer(a))).status).toBe(200);
  });

  it('idempotency keys are per tenant', async () => {
    const h = { 'idempotency-key': 'order-42' };
    const ra = await post('/tasks', { type: 'noop', payload: { n: 1 } }, { ...bearer(a), ...h });
    const rb = await post('/tasks', { type: 'noop', payload: { n: 2 } }, { ...bearer(b), ...h });
    expect([ra.status, rb.status]).toEqual([201, 201]);
    const [ta, tb] = (await Promise.all([ra.json(), rb.json()])) as { id: string }[];
    expect(ta!.id).not.toBe(tb!.id);
    const replay = await post('/tasks', { type: 'noop', payload: { n: 1 } }, { ...bearer(a), ...h });
    expect(replay.status).toBe(200);
    expect(((await replay.json()) as { id: string }).id).toBe(ta!.id);
    // In one batch, the same key of two tenants: through the coalescer, concurrently.
    const [c1, c2] = await Promise.all([
      post('/tasks', { type: 'noop' }, { ...bearer(a), 'idempotency-key': 'same-moment' }),
      post('/tasks', { type: 'noop' }, { ...bearer(b), 'idempotency-key': 'same-moment' }),
    ]);
    expect([c1.status, c2.status]).toEqual([201, 201]);
  });

  it('only an admin key may act on another tenant (query parameter or header)', async () => {
    const task = (await (await post('/tasks', { type: 'noop' }, bearer(a))).json()) as { id: string };
    expect((await get(`/tasks/${task.id}?tenant=team-a`, bearer(b))).status).toBe(403);
    expect((await get(`/tasks/${task.id}`, { ...bearer(b), tenant: 'team-a' })).status).toBe(403);
    expect((await post('/tasks', { type: 'noop' }, { ...bearer(b), tenant: 'team-a' })).status).toBe(403);
    expect((await get(`/tasks/${task.id}?tenant=team-b`, bearer(b))).status).toBe(404);
    expect((await get(`/tasks/${task.id}`, bearer(admin))).status).toBe(404);
    expect((await get(`/tasks/${task.id}?tenant=team-a`, bearer(admin))).status).toBe(200);
    expect((await get(`/tasks/${task.id}`, { ...bearer(admin), tenant: 'team-a' })).status).toBe(200);
    const made = await post('/tasks', { type: 'noop' }, { ...bearer(admin), tenant: 'team-b' });
    expect(made.status).toBe(201);
    expect(((await made.json()) as { tenant: string }).tenant).toBe('team-b');
    const bad = await get(`/tasks/${task.id}?tenant=Not%20A%20Tenant`, bearer(admin));
    expect(bad.status).toBe(400);
    // Named twice, a tenant is refused like a repeated header, not ignored (the admin acted on its own tenant).
    expect((await post('/tasks?tenant=team-b&tenant=team-b', { type: 'noop' }, bearer(admin))).status).toBe(400);
    expect((await get(`/tasks/${task.id}?tenant=team-a&tenant=team-a`, bearer(a))).status).toBe(400);
  });

  it('an admin key naming a tenant that does not exist gets a 400 naming tenant, and makes nothing; once the tenant has a key, it may act on it', async () => {
    const count = async () => (await fx.stack.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE tenant = 'team-typo'`)).rows[0].n as number;
    const refusals = [
      await post('/tasks', { type: 'noop' }, { ...bearer(admin), tenant: 'team-typo' }),
      await post('/tasks?tenant=team-typo', { type: 'noop' }, bearer(admin)),
      await post('/tasks/batch?tenant=team-typo', { tasks: [{ type: 'noop' }] }, bearer(admin)),
      await post('/schedules?tenant=team-typo', { name: 'n', cron: '@yearly', task: { type: 'noop' } }, bearer(admin)),
      await post('/workflows?tenant=team-typo', { name: 'w', tasks: [{ key: 'a', type: 'noop' }] }, bearer(admin)),
      await get('/tasks?tenant=team-typo', bearer(admin)),
    ];
    for (const r of refusals) {
      expect(r.status).toBe(400);
      expect(((await r.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(['tenant']);
    }
    expect(await count()).toBe(0);
    expect((await fx.stack.pool.query(`SELECT count(*)::int AS n FROM schedules WHERE tenant = 'team-typo'`)).rows[0].n).toBe(0);
    await key('team-typo', ['tasks:read']);
    expect((await post('/tasks', { type: 'noop' }, { ...bearer(admin), tenant: 'team-typo' })).status).toBe(201);
    expect(await count()).toBe(1);
  });
});
