/**
 * The unfinished-task true-up across API replicas: one replica at a time counts (a Redis leader
 * lock), and a count that takes long makes the true-up wait at least five times its duration
 * (docs/tenancy.md), so a big backlog does not have Postgres counting it most of the time. That
 * wait must hold for the replicas together, not only for the one that counted.
 */
import { Client } from 'pg';
import { UnfinishedTrueUp } from '../../services/api/limits/unfinished-true-up';
import { TenantAdmission } from '../../services/core/tenancy/admission';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createStack, silentLog, Stack, waitFor } from '../support/stack';

let stack: Stack;
let blocker: Client;

beforeAll(async () => {
  stack = await createStack();
  blocker = new Client({ connectionString: stack.dbUrl });
  await blocker.connect();
});
afterAll(async () => {
  await blocker.end();
  await stack.close();
});

/** Counts of the true-up waiting behind the blocker's lock on tasks. */
const countsWaiting = async () => (await stack.pool.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%GROUP BY tenant%'")).rowCount!;

/** Runs `pass` with the true-up's count held behind a lock on tasks until the pass has taken `ms`; `meanwhile` runs while it is held. */
async function slowPass<T>(pass: () => Promise<T>, ms: number, meanwhile: () => Promise<void> = async () => undefined): Promise<{ result: T; took: number; endedAt: number }> {
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE');
  const started = Date.now();
  const running = pass();
  await waitFor(async () => (await countsWaiting()) > 0, 10_000, 'the count to wait for the lock');
  await waitFor(async () => Date.now() - started >= ms, 10_000, `the count to have taken ${ms} ms`);
  await meanwhile();
  await blocker.query('COMMIT');
  const result = await running;
  return { result, took: Date.now() - started, endedAt: Date.now() };
}

it('a slow count holds every replica back for its wait, and no replica counts beside a slow count', async () => {
  await setTenant(stack.pool, 'capped', { max_unfinished: 10 });
  const admission = new TenantAdmission(stack.redis, stack.cfg.REDIS_KEY_PREFIX, stack.cfg.REDIS_PARTITIONS);
  // Two API replicas' true-ups (each its own lock owner), every 100 ms (the lock: 300 ms).
  const [a, b] = [0, 1].map(() => new UnfinishedTrueUp({ pool: stack.pool, admission, lock: stack.queue, envCap: 0 }, 100, silentLog));
  // A's count takes 500 ms: A then waits at least 2 s.
  const first = await slowPass(() => a!.runOnce(), 500);
  expect(first.result).toEqual({ tenants: expect.any(Number) });
  // So must B (before: A's lock, taken for three intervals, had lapsed, and B counted at once).
  expect(await b!.runOnce()).toBeNull();
  expect(await a!.runOnce()).toBeNull();

  // A's next pass, once its wait is over, is as slow: while it counts, B must not count beside it
  // (before: the lock, taken for three intervals again, lapsed during the count, and B took it).
  await waitFor(async () => Date.now() >= first.endedAt + first.took * 4, 10_000, "A's wait to end");
  let bAnswered = false;
  let bPass: Promise<unknown> = Promise.resolve();
  const second = await slowPass(() => a!.runOnce(), 500, async () => {
    bPass = b!.runOnce().finally(() => (bAnswered = true));
    // B answers at once (it does not lead), or its own count joins A's behind the lock.
    await waitFor(async () => bAnswered || (await countsWaiting()) > 1, 10_000, 'B to answer or to count');
  });
  expect(second.result).toEqual({ tenants: expect.any(Number) });
  expect(await bPass).toBeNull();
});
