/**
 * A tenant that leaves its ring (its list emptied) and joins again: it gets back the pass it left
 * with, so emptying its list gains it nothing, while a tenant idle for long joins at the front.
 */
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import type { EnqueueItem, Lease } from '../../services/core/queue/queue';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let redis: Redis;
let q: RedisQueue;
let prefix: string;

function item(id: string, tenant: string): EnqueueItem {
  return { id, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 };
}
function items(tenant: string, count: number, from = 0): EnqueueItem[] {
  return Array.from({ length: count }, (_, i) => item(`${tenant}-${from + i}`, tenant));
}
const tenantsOf = (leases: Lease[]) => leases.map((l) => l.message.tenant);
const leftKey = () => q.keys.leftPasses[2]!;

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'queue-tenants-rejoin-test', offlineQueue: true });
});
beforeEach(() => {
  prefix = uniqueRedisPrefix('rejoin');
  q = new RedisQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
});
afterEach(async () => {
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
});
afterAll(async () => {
  await redis.quit();
});

/**
 * The reviewer's scenario: `a` has a 2,000-task backlog; before each lease `b` refills its list
 * with one turn of tasks when it is empty (`always`: whether or not it is), so it leaves its ring
 * after each of its turns. Returns b's share of the leases.
 */
async function shareOfRefiller(leaseSize: number, weightA: number, weightB: number, calls: number, always = false): Promise<number> {
  await q.configureTenants(0, [
    { tenant: 'a', weight: weightA, maxRunning: null },
    { tenant: 'b', weight: weightB, maxRunning: null },
  ]);
  for (let i = 0; i < 2000; i += 500) await q.enqueue(items('a', 500, i));
  const turn = Math.ceil(leaseSize / 16);
  let pushed = 0;
  const got: string[] = [];
  for (let c = 0; c < calls; c++) {
    if (always || (await redis.llen(q.keys.tenantQueue('default', 'b'))) === 0) {
      await q.enqueue(items('b', turn, pushed));
      pushed += turn;
    }
    got.push(...tenantsOf(await q.lease({ max: leaseSize, visibilityMs: 60_000 })));
  }
  expect(got).toHaveLength(calls * leaseSize);
  return got.filter((t) => t === 'b').length / got.length;
}

describe('a tenant that keeps emptying its list', () => {
  // Shares are exact up to one turn at either end of the run: 3 percentage points is several turns.
  const TOLERANCE = 0.03;
  // b has work at every lease but brings at most one turn per call: its share is its weight's, or
  // all it brings when that is less.
  const expected = (size: number, wa: number, wb: number) => Math.min(wb / (wa + wb), Math.ceil(size / 16) / size);
  it.each([
    [1, 1, 1],
    [1, 10, 1],
    [4, 1, 1],
    [4, 10, 1],
    [32, 10, 1],
  ])('lease size %i, weights %i:%i: the refilling tenant gets its weighted share, no more', async (size, wa, wb) => {
    const share = await shareOfRefiller(size, wa, wb, Math.round(400 / size));
    expect(Math.abs(share - expected(size, wa, wb))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('pushing before every lease whether its list is empty or not gains nothing either', async () => {
    const share = await shareOfRefiller(4, 10, 1, 100, true);
    expect(Math.abs(share - 1 / 11)).toBeLessThanOrEqual(TOLERANCE);
    const even = await shareOfRefiller(1, 1, 1, 200, true);
    expect(Math.abs(even - 1 / 2)).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('a tenant idle for long', () => {
  it('joins at the front once the others have caught up with the pass it left with', async () => {
    await q.enqueue(items('a', 200));
    await q.enqueue(items('b', 3));
    // b is served its three tasks (they alternate with a's) and leaves with its pass remembered.
    expect(tenantsOf(await q.lease({ max: 5, visibilityMs: 60_000 }))).toEqual(['b', 'a', 'b', 'a', 'b']);
    expect(await redis.zscore(leftKey(), 'b')).not.toBeNull();
    // Back at once: it waits for a's turn, as if it had stayed.
    await q.enqueue(items('b', 1, 3));
    expect(tenantsOf(await q.lease({ max: 2, visibilityMs: 60_000 }))).toEqual(['a', 'b']);
    // Idle while a, alone now, is served well past it: its remembered pass is forgotten…
    for (let i = 0; i < 5; i++) await q.lease({ max: 4, visibilityMs: 60_000 });
    expect(await redis.zscore(leftKey(), 'b')).toBeNull();
    // …and it joins at the front: the next pick is it.
    await q.enqueue(items('b', 1, 4));
    expect(tenantsOf(await q.lease({ max: 1, visibilityMs: 60_000 }))).toEqual(['b']);
  });

  it('a ring that empties forgets every pass: a new round starts level', async () => {
    await q.enqueue([...items('a', 2), ...items('b', 4)]);
    await q.lease({ max: 6, visibilityMs: 60_000 });
    expect(await redis.exists(leftKey())).toBe(0);
    await q.enqueue([...items('b', 1, 4), ...items('c', 1)]);
    await q.enqueue(items('a', 1, 2));
    // Level: everyone joins just below the lowest pass, in the order they came.
    expect(tenantsOf(await q.lease({ max: 3, visibilityMs: 60_000 })).sort()).toEqual(['a', 'b', 'c']);
  });
});
