/**
 * The API's bounds in time when its host's wall clock is set back (an NTP step, a VM resumed from a
 * snapshot): a revoked key is refused within AUTH_CACHE_MS, a changed limit applies within the
 * tenant cache's time, and a true-up's wait after a slow count ends when it should. Each is measured
 * on a clock that does not step (the wall clock is stepped here by replacing Date.now).
 */
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { Authenticator } from '../../services/api/auth/authenticator';
import { UnfinishedTrueUp } from '../../services/api/limits/unfinished-true-up';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { createKey, revokeKey } from '../../services/core/tenancy/key-store';
import { TenantCache } from '../../services/core/tenancy/tenant-cache';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

let stack: Stack;
const wallNow = Date.now.bind(Date);

beforeAll(async () => {
  stack = await createStack();
});
afterEach(() => {
  jest.restoreAllMocks();
});
afterAll(async () => {
  await stack.close();
});

/** Sets the wall clock back by an hour from now on. */
const stepBack = () => jest.spyOn(Date, 'now').mockImplementation(() => wallNow() - 3_600_000);
/** Resolves once `ms` have passed on the monotonic clock. */
const elapsed = (ms: number) => {
  const t0 = performance.now();
  return waitFor(async () => performance.now() - t0 >= ms, 10_000, `${ms} ms to pass`);
};

it('a key revoked before the wall clock was set back is refused within AUTH_CACHE_MS', async () => {
  const auth = new Authenticator(stack.pool, { mode: 'keys', cacheMs: 300, log: silentLog });
  try {
    const { key, id } = await createKey(stack.pool, { tenant: 'acme', scopes: ['tasks:read'], expiresInMs: null });
    expect((await auth.authenticate(`Bearer ${key}`)).tenant).toBe('acme');
    await revokeKey(stack.pool, id);
    stepBack();
    await elapsed(350);
    // Before: the key's check, dated an hour "ahead" of the stepped clock, was trusted for that hour.
    await expect(Promise.resolve().then(() => auth.authenticate(`Bearer ${key}`))).rejects.toMatchObject({ status: 401 });
  } finally {
    await auth.close();
  }
});

it('a limit changed before the wall clock was set back applies within the tenant cache time', async () => {
  await setTenant(stack.pool, 'limited', { rate_limit: 5 });
  const cache = new TenantCache(stack.pool, 300);
  expect((await cache.get('limited'))?.rate_limit).toBe(5);
  await setTenant(stack.pool, 'limited', { rate_limit: 7 });
  stepBack();
  await elapsed(350);
  // Before: the old row was kept for the hour of the step.
  expect((await cache.get('limited'))?.rate_limit).toBe(7);
});

it("a true-up's wait after a slow count ends after four times the count, though the wall clock was set back", async () => {
  await setTenant(stack.pool, 'capped', { max_unfinished: 10 });
  const admission = new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX, stack.cfg.REDIS_PARTITIONS);
  const trueUp = new UnfinishedTrueUp({ pool: stack.pool, admission, lock: stack.queue, envCap: 0 }, 100, silentLog);
  // A count held 300 ms behind a lock on tasks: the true-up then waits 1.2 s.
  const blocker = new Client({ connectionString: stack.dbUrl });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE');
    const t0 = performance.now();
    const pass = trueUp.runOnce();
    await waitFor(async () => (await stack.pool.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%GROUP BY tenant%'")).rowCount! > 0, 10_000, 'the count to wait');
    await waitFor(async () => performance.now() - t0 >= 300, 10_000, '300 ms');
    await blocker.query('COMMIT');
    expect(await pass).not.toBeNull();
    const took = performance.now() - t0;
    stepBack();
    expect(await trueUp.runOnce()).toBeNull();
    await elapsed(took * 4 + 50);
    // Before: the wait, kept as a wall-clock time, lasted the hour of the step too.
    expect(await trueUp.runOnce()).not.toBeNull();
  } finally {
    await blocker.end();
  }
});
