/**
 * The API's cache of tenant rows (services/core/tenancy/tenant-cache.ts) against a real Postgres: a
 * changed limit applies within the cache's time, counted from when the read that saw the old row
 * began, also when that read was slow.
 */
import { Pool } from 'pg';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createTestDatabase, TestDatabase } from '../support/test-env';

let db: TestDatabase;
let pool: Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 4 });
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pool, with the answers of queries sent while `slow` is set held back `ms`. */
function delayed(ms: number): { pool: Pool; slow: boolean } {
  const ctl = { pool: undefined as unknown as Pool, slow: true };
  ctl.pool = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const wasSlow = ctl.slow;
        const out = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (wasSlow) await sleep(ms);
        return out;
      };
    },
  });
  return ctl;
}

it('a row read by a slow query is trusted for ttlMs from when the query began', async () => {
  await setTenant(pool, 'slow-read', { rate_limit: 5 });
  const ctl = delayed(600);
  const cache = new TenantCache(ctl.pool, 400);
  const first = Promise.resolve(cache.get('slow-read'));
  await sleep(100);
  await setTenant(pool, 'slow-read', { rate_limit: 7 });
  expect((await first)?.rate_limit).toBe(5);
  ctl.slow = false;
  // The change is 500 ms old, more than ttlMs: the next request reads it.
  expect((await cache.get('slow-read'))?.rate_limit).toBe(7);
});

it('a caller coming more than ttlMs after a slow query began does not share its answer', async () => {
  await setTenant(pool, 'slow-join', { rate_limit: 5 });
  const ctl = delayed(900);
  const cache = new TenantCache(ctl.pool, 300);
  const first = Promise.resolve(cache.get('slow-join'));
  await sleep(50);
  ctl.slow = false;
  await setTenant(pool, 'slow-join', { rate_limit: 7 });
  await sleep(400);
  const later = Promise.resolve(cache.get('slow-join'));
  expect((await first)?.rate_limit).toBe(5);
  expect((await later)?.rate_limit).toBe(7);
});
