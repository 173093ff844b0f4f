/**
 * Random (unknown) API keys against the authenticator: they must neither push valid keys out of
 * its cache nor stand in the way of their lookups. Lookups are observed in the store's queries.
 */
import type { Pool } from 'pg';
import { Authenticator, KeyLookup } from '../../services/api/auth/authenticator';
import { generateKey } from '../../services/core/tenancy/api-key';
import { createKey, markKeysUsed } from '../../services/core/tenancy/key-store';
import { gatedPool } from '../support/gated-pool';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

const bearer = (k: string) => `Bearer ${k}`;
const idsOf = (values: unknown[]) => values[0] as string[];

/** The pool, recording the ids each key lookup asked for, in order. */
function recording(pool: Pool): { pool: Pool; asked: string[][] } {
  const asked: string[][] = [];
  const query = (config: { name?: string; values?: unknown[] }, ...rest: unknown[]) => {
    if (typeof config === 'object' && config.name === 'find-key-credentials') asked.push([...idsOf(config.values!)]);
    return (pool.query as (...a: unknown[]) => unknown)(config, ...rest);
  };
  return { pool: new Proxy(pool, { get: (t, prop, r) => (prop === 'query' ? query : Reflect.get(t, prop, r)) }), asked };
}

function counter(): { count: Record<string, number>; onLookup: (r: KeyLookup) => void } {
  const count: Record<string, number> = {};
  return { count, onLookup: (r) => void (count[r] = (count[r] ?? 0) + 1) };
}

it('random keys do not push a valid key out of the cache', async () => {
  const k = (await createKey(stack.pool, { tenant: 'acme', scopes: ['tasks:write'], expiresInMs: null })).key;
  const id = k.slice(4, 20);
  const rec = recording(stack.pool);
  const a = new Authenticator(rec.pool, { mode: 'keys', cacheMs: 30_000, log: silentLog, maxEntries: 100 });
  try {
    expect((await a.authenticate(bearer(k))).tenant).toBe('acme');
    const flood = await Promise.allSettled(Array.from({ length: 300 }, () => Promise.resolve().then(() => a.authenticate(bearer(generateKey().key)))));
    expect(flood.every((r) => r.status === 'rejected' && (r.reason as { status: number }).status === 401)).toBe(true);
    // Still trusted from the cache: answered at once, without another lookup of its id.
    const again = a.authenticate(bearer(k));
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as { tenant: string }).tenant).toBe('acme');
    expect(rec.asked.filter((ids) => ids.includes(id))).toHaveLength(1);
  } finally {
    await a.close();
  }
});

it("a valid key's lookup neither waits behind random keys' lookups nor is refused when their queue is full", async () => {
  const k = (await createKey(stack.pool, { tenant: 'acme', scopes: ['tasks:write'], expiresInMs: null })).key;
  const id = k.slice(4, 20);
  // Lookups of other ids are held until the end: Postgres slowed down by the flood.
  const gated = gatedPool(stack.pool, 'find-key-credentials', (values) => !idsOf(values).includes(id));
  const rec = recording(gated.pool);
  const { count, onLookup } = counter();
  // cacheMs 0: every request of the valid key needs a lookup of its own.
  const a = new Authenticator(rec.pool, { mode: 'keys', cacheMs: 0, log: silentLog, onLookup });
  try {
    expect((await a.authenticate(bearer(k))).tenant).toBe('acme');
    const flood = Array.from({ length: 5100 }, () => Promise.resolve(a.authenticate(bearer(generateKey().key))));
    const refusedFlood = Promise.allSettled(flood);
    const valid = Promise.resolve().then(() => a.authenticate(bearer(k)));
    await expect(valid).resolves.toMatchObject({ tenant: 'acme' });
    expect(gated.stats.running).toBe(1);
    expect(rec.asked.filter((ids) => ids.includes(id))).toHaveLength(2);
    gated.release();
    const results = await refusedFlood;
    const statuses = results.map((r) => (r.status === 'rejected' ? (r.reason as { status: number }).status : 200));
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 401 || s === 503)).toBe(true);
    // Every lookup is counted by its result: the refused ones are the flood's 503s.
    expect(count.refused).toBe(statuses.filter((s) => s === 503).length);
    expect(count.not_found).toBe(statuses.filter((s) => s === 401).length);
    expect(count.verified).toBe(1);
    expect(count.found).toBe(1);
  } finally {
    gated.release();
    await a.close();
  }
});

it('after a restart, the first lookups of keys in use are not held up or refused by random keys', async () => {
  const k = (await createKey(stack.pool, { tenant: 'acme', scopes: ['tasks:write'], expiresInMs: null })).key;
  const id = k.slice(4, 20);
  await markKeysUsed(stack.pool, [id]);
  const gated = gatedPool(stack.pool, 'find-key-credentials', (values) => !idsOf(values).includes(id));
  // A replica that has never seen the key presented: it knows only that it was in use.
  const a = new Authenticator(gated.pool, { mode: 'keys', cacheMs: 500, log: silentLog, maxEntries: 100 });
  try {
    expect(await a.preload()).toBeGreaterThanOrEqual(1);
    const flood = Promise.allSettled(Array.from({ length: 5100 }, () => Promise.resolve(a.authenticate(bearer(generateKey().key)))));
    await expect(Promise.resolve().then(() => a.authenticate(bearer(k)))).resolves.toMatchObject({ tenant: 'acme' });
    expect(gated.stats.running).toBe(1);
    gated.release();
    await flood;
  } finally {
    gated.release();
    await a.close();
  }
});

it('a key created after the replica started is looked up in the known lane once the ids in use are read again', async () => {
  let id = '';
  // Lookups of other ids are held until the end: Postgres slowed down by the flood.
  const gated = gatedPool(stack.pool, 'find-key-credentials', (values) => !idsOf(values).includes(id));
  // When each read of the ids in use was sent, recorded once its answer is back (and so applied
  // by the microtasks that follow, before any timer): a read only sent proves nothing yet.
  const reads: number[] = [];
  const rec = new Proxy(gated.pool, {
    get: (t, prop, r) =>
      prop === 'query'
        ? (config: unknown, ...rest: unknown[]) => {
            const answer = (t.query as (...a: unknown[]) => Promise<unknown>)(config, ...rest);
            if (typeof config !== 'string' || !config.includes('ORDER BY last_used_at')) return answer;
            const sent = Date.now();
            // Answered 50 ms late, as by a loaded Postgres.
            return answer.then((res) => new Promise((done) => setTimeout(() => done(res), 50))).then((res) => {
              reads.push(sent);
              return res;
            });
          }
        : Reflect.get(t, prop, r),
  });
  const a = new Authenticator(rec, { mode: 'keys', cacheMs: 500, log: silentLog, maxEntries: 100, preloadEveryMs: 100 });
  try {
    await a.preload();
    // Created (on another replica, say) after this one read the keys in use, and never used yet.
    const k = (await createKey(stack.pool, { tenant: 'acme', scopes: ['tasks:write'], expiresInMs: null })).key;
    id = k.slice(4, 20);
    const createdAt = Date.now();
    await waitFor(async () => reads.some((t) => t > createdAt) || null, 5000, 'the ids in use to be read again');
    const flood = Promise.allSettled(Array.from({ length: 5100 }, () => Promise.resolve(a.authenticate(bearer(generateKey().key)))));
    await expect(Promise.resolve().then(() => a.authenticate(bearer(k)))).resolves.toMatchObject({ tenant: 'acme' });
    expect(gated.stats.running).toBe(1);
    gated.release();
    await flood;
  } finally {
    gated.release();
    await a.close();
  }
});
