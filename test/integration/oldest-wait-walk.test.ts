/**
 * The oldest waiting task of a tenant's list is found past a long run of tasks put back at its
 * head (a reap of many leases at once): the walk from the head is bounded, and a run of equal ready
 * times at the bound is skipped across rather than taken for the oldest.
 */
import Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { testRedisAddr, uniqueRedisPrefix } from '../support/test-env';

let redis: Redis;
let prefix: string;

beforeAll(() => {
  redis = createRedis({ addr: testRedisAddr(), name: 'oldest-walk-test', offlineQueue: true });
  prefix = uniqueRedisPrefix('oldest');
});
afterAll(async () => {
  const keys = await redis.keys(`{${prefix}}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

const item = (id: string): EnqueueItem => ({ id, tenant: 'acme', type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 });
const readyAt = async (id: string) => Number(await redis.hget(`{${prefix}}:ready_at`, id));
const redisMs = async () => {
  const [sec, usec] = await redis.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
};

const newQueue = () => new RedisQueue(redis, { prefix, strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });

it('counts from the task behind 100 reaped tasks put back at the head, in stats and overview', async () => {
  const q = newQueue();
  const reapedIds = Array.from({ length: 100 }, (_, i) => `r${i}`);
  await q.enqueue([...reapedIds, 'waiting'].map(item));
  const since = await readyAt('waiting');
  while ((await redisMs()) <= since + 50) await new Promise((r) => setTimeout(r, 5));

  let leased = 0;
  while (leased < reapedIds.length) leased += (await q.lease({ max: reapedIds.length - leased, visibilityMs: 1 })).length;
  await new Promise((r) => setTimeout(r, 5));
  const reaped = await q.reap(1000, 60_000);
  expect(reaped.filter((r) => r.destination === 'queued')).toHaveLength(reapedIds.length);
  expect(await redis.lindex(`{${prefix}}:q:default:acme`, -1)).toBe('waiting');

  const back = await readyAt('r0');
  expect(back - since).toBeGreaterThan(50);
  const waited = (back - since) / 1000;
  expect((await q.stats()).oldestWaitingSeconds.default).toBeGreaterThanOrEqual(waited);
  expect((await q.overview('acme')).priorities.default.oldestWaitingSeconds).toBeGreaterThanOrEqual(waited);
});

it('a batch longer than the walk, then tasks queued later: counts from the batch, not from past it', async () => {
  const q = newQueue();
  await q.enqueue(Array.from({ length: 150 }, (_, i) => ({ ...item(`b${i}`), tenant: 'batch' })));
  const since = await readyAt('b0');
  expect(await readyAt('b149')).toBe(since);
  while ((await redisMs()) <= since + 50) await new Promise((r) => setTimeout(r, 5));
  await q.enqueue(['later1', 'later2'].map((id) => ({ ...item(id), tenant: 'batch' })));
  const waited = ((await readyAt('later1')) - since) / 1000;
  expect(waited).toBeGreaterThan(0.05);
  expect((await q.overview('batch')).priorities.default.oldestWaitingSeconds).toBeGreaterThanOrEqual(waited);
});
