/**
 * Redis's eviction policy is checked (redis-eviction.ts): one that may evict queue data is logged
 * at start-up and exported as `redis_eviction_policy_info` for the RedisMayEvictQueueData alert;
 * one that cannot be read is `unknown`, never an error.
 */
import pino from 'pino';
import { Writable } from 'node:stream';
import { createRedis } from '../../services/core/db/redis';
import { evictsQueueData, readEvictionPolicy, warnIfEvicting } from '../../services/core/db/redis-eviction';
import { createRegistry, evictionPolicyGauge } from '../../services/core/observability/metrics';
import { Stack, createStack } from '../support/stack';

let stack: Stack;
let original: string;
beforeAll(async () => {
  stack = await createStack();
  original = await readEvictionPolicy(stack.inspect);
  // The shared test Redis has no maxmemory, so no policy can make it evict anything meanwhile.
  expect(((await stack.inspect.config('GET', 'maxmemory')) as string[])[1]).toBe('0');
});
afterAll(async () => {
  await stack.inspect.config('SET', 'maxmemory-policy', original);
  await stack.close();
});

function capturingLog() {
  const lines: { level: number; msg: string; maxmemoryPolicy?: string }[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  return { log, lines };
}

it('only allkeys-* policies may evict keys without a TTL', () => {
  expect(['allkeys-lru', 'allkeys-lfu', 'allkeys-random'].every(evictsQueueData)).toBe(true);
  expect(['noeviction', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl', 'unknown'].some(evictsQueueData)).toBe(false);
});

it('an allkeys policy is logged as an error and exported; noeviction is silent', async () => {
  const registry = createRegistry('api');
  evictionPolicyGauge(registry, () => readEvictionPolicy(stack.inspect), 0);

  await stack.inspect.config('SET', 'maxmemory-policy', 'allkeys-lru');
  const evicting = capturingLog();
  expect(await warnIfEvicting(stack.inspect, evicting.log)).toBe('allkeys-lru');
  expect(evicting.lines).toEqual([expect.objectContaining({ level: 50, maxmemoryPolicy: 'allkeys-lru', msg: expect.stringContaining('set it to noeviction') })]);
  expect(await registry.metrics()).toContain('redis_eviction_policy_info{policy="allkeys-lru",service="api"} 1');

  await stack.inspect.config('SET', 'maxmemory-policy', 'noeviction');
  const safe = capturingLog();
  expect(await warnIfEvicting(stack.inspect, safe.log)).toBe('noeviction');
  expect(safe.lines).toEqual([]);
  // The old policy's series is gone, not left at 1 beside the new one.
  const text = await registry.metrics();
  expect(text).toContain('redis_eviction_policy_info{policy="noeviction",service="api"} 1');
  expect(text).not.toContain('allkeys-lru');
});

it('a policy that cannot be read is unknown: logged as a hint, not an error', async () => {
  // Nothing listens on port 1; without an offline queue the CONFIG call fails at once.
  const away = createRedis({ addr: '127.0.0.1:1', name: 'test-away', offlineQueue: false });
  away.on('error', () => undefined);
  try {
    const { log, lines } = capturingLog();
    expect(await warnIfEvicting(away, log)).toBe('unknown');
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: expect.stringContaining('could not read Redis maxmemory-policy') })]);
  } finally {
    away.disconnect();
  }
});
