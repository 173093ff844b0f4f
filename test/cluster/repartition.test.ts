/**
 * Repartitioning on the test profile's Redis Cluster (3 masters): 1 → 6 → 1, every command within
 * one slot (a cross-slot one would fail here, not on a single Redis).
 */
import Redis, { Cluster } from 'ioredis';
import { createQueue, AnyQueue } from '../../services/core/queue/create-queue';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { repartition } from '../../services/core/queue/repartition';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { TEST_PARTITIONS, testCluster, readyClient } from '../support/cluster-mode';
import { uniqueRedisPrefix } from '../support/test-env';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
let client: Cluster;
const prefix = uniqueRedisPrefix('repartcl');

beforeAll(async () => {
  client = await readyClient('repartition-test');
}, 120_000);
afterAll(async () => {
  await testCluster().deleteKeys(prefix);
  client.disconnect();
});

const queue = (partitions: number): AnyQueue => createQueue(client as unknown as Redis, { prefix, strategy: 'weighted', weights: WEIGHTS, partitions });

async function state(q: AnyQueue) {
  const ready: Record<string, string[]> = {};
  const dead: Record<string, string[]> = {};
  for (const p of PRIORITIES) {
    ready[p] = (await q.readyIds(p)).sort();
    dead[p] = (await q.deadLetterIds(p)).sort();
  }
  const st = await q.stats();
  return { ready, dead, stats: { ready: st.ready, retrying: st.retrying, dead: st.dead, processing: st.processing } };
}

test('1 → 6 → 1 on a cluster keeps every task', async () => {
  const q1 = queue(1);
  const items: EnqueueItem[] = [];
  for (let t = 0; t < 30; t++) for (let i = 0; i < 5; i++) items.push({ id: `c-${t}-${i}`, tenant: `tenant-${t}`, type: 'noop', priority: PRIORITIES[(t + i) % 4]!, payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 });
  await q1.enqueue(items);
  await q1.configureTenants(0, [{ tenant: 'tenant-1', weight: 3, maxRunning: 2 }]);
  const leases = await q1.lease({ max: 20, visibilityMs: 60_000 });
  await q1.finish(leases.map((l, i) => ({ id: l.message.id, token: l.token, priority: l.message.priority, settleAttempts: 1, outcome: i < 10 ? ('retrying' as const) : ('dead' as const), delayMs: 3_600_000 })));
  const before = await state(q1);

  const up = await repartition(client, { prefix, to: TEST_PARTITIONS });
  expect(up).toMatchObject({ from: 1, to: TEST_PARTITIONS, changed: true, tasks: 150, retrying: 10, dead: 10, ready: 130 });
  expect(await client.get(`{${prefix}}:layout`)).toBe(String(TEST_PARTITIONS));
  expect(await client.exists(`{${prefix}}:meta`, `{${prefix}}:msg`, `{${prefix}}:tenants`, `{${prefix}}:tenant:dispatch`)).toBe(0);
  expect(await state(queue(TEST_PARTITIONS))).toEqual(before);

  const down = await repartition(client, { prefix, to: 1 });
  expect(down).toMatchObject({ from: TEST_PARTITIONS, to: 1, tasks: 150 });
  expect(await state(queue(1))).toEqual(before);
  expect(await client.hget(`{${prefix}}:tenant:dispatch`, 'tenant-1')).toBe('3:2');
});
