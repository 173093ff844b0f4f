/**
 * The partitioned queue on the test profile's Redis Cluster (3 masters): partitions spread two per
 * master, a lease round reaches every partition with work (a small tenant is not stuck behind
 * another partition's backlog), rings cross from a partition to the control slot's doorbell,
 * leases are ended in the partition their token names, and a mismatched layout is refused.
 */
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import Redis from 'ioredis';
import { splitAddr } from '../../services/core/config/parsers';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { assertLayout, partitionOf } from '../../services/core/queue/partitions';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { clusterClientFixture, testCluster, TEST_PARTITIONS } from '../support/cluster-mode';
import { masterOf, tagOf, whilePaused } from '../support/cluster-stall';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
let queue: PartitionedQueue;
let seq = 0;

const fx = clusterClientFixture('partitioned-queue-test', 'pq');
beforeEach(() => {
  queue = new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'weighted', weights: WEIGHTS, partitions: TEST_PARTITIONS });
});

function item(tenant: string): EnqueueItem {
  return { id: `task-${++seq}`, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 };
}

/** Two tenants whose partitions differ. */
function tenantsInTwoPartitions(): [string, string] {
  const a = 'tenant-a';
  for (let i = 0; ; i++) if (partitionOf(`tenant-b${i}`, TEST_PARTITIONS) !== partitionOf(a, TEST_PARTITIONS)) return [a, `tenant-b${i}`];
}

/** master host:port → keys of this test's namespace it holds. */
async function keysPerMaster(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const addr of testCluster().nodes) {
    const { host, port } = splitAddr(addr);
    const node = new Redis({ host, port, lazyConnect: false, maxRetriesPerRequest: 1 });
    try {
      if (!/role:master/.test(await node.info('replication'))) continue;
      out.set(addr, (await node.keys(`{${fx.prefix}:k*`)).length);
    } finally {
      node.disconnect();
    }
  }
  return out;
}

/** host:port of the master holding partition `p` of `q`. */
const masterOfPartition = (q: PartitionedQueue, p: number) => masterOf(fx.client, tagOf(q.parts[p]!.keys.meta));

test('the partitions sit two per master, and 24 tenants put keys on every master', async () => {
  const perMaster = new Map<string, number>();
  for (const q of queue.parts) {
    const master = await masterOf(fx.client, tagOf(q.keys.meta));
    perMaster.set(master, (perMaster.get(master) ?? 0) + 1);
  }
  expect([...perMaster.values()]).toEqual([2, 2, 2]);

  await queue.enqueue(Array.from({ length: 240 }, (_, i) => item(`tenant-${i % 24}`)));
  const keys = await keysPerMaster();
  expect(keys.size).toBe(3);
  for (const n of keys.values()) expect(n).toBeGreaterThan(5);
  expect((await queue.stats()).ready.default).toBe(240);
});

test('a lease round reaches every partition with work: one task of a small tenant is not stuck behind another partition backlog', async () => {
  const [big, small] = tenantsInTwoPartitions();
  await queue.enqueue(Array.from({ length: 500 }, () => item(big)));
  // The big partition is leased from first, so its `active` count is known and the small one's is not.
  await queue.lease({ max: 10, visibilityMs: 60_000 });
  const smallTask = item(small);
  await queue.enqueue([smallTask]);
  const leases = await queue.lease({ max: 10, visibilityMs: 60_000 });
  expect(leases.map((l) => l.message.id)).toContain(smallTask.id);
  expect(leases).toHaveLength(10);
});

test('a round asks the partitions concurrently and tops up a shortfall from those with work left', async () => {
  const [a, b] = tenantsInTwoPartitions();
  await queue.enqueue([item(a), ...Array.from({ length: 30 }, () => item(b))]);
  const { leases, left } = await queue.leaseBatch({ max: 20, visibilityMs: 60_000 });
  expect(leases).toHaveLength(20);
  expect(leases.filter((l) => l.message.tenant === a)).toHaveLength(1);
  expect(left).toBe(11);
  expect(new Set(leases.map((l) => l.token)).size).toBe(20);
});

test('priorities hold across partitions: a worker leasing one task at a time takes critical work of one partition before (strict) or 8:1 against (weighted) low work of another', async () => {
  const [a, b] = tenantsInTwoPartitions();
  const count = async (q: PartitionedQueue) => {
    await q.enqueue([...Array.from({ length: 100 }, () => ({ ...item(a), priority: 'critical' as const })), ...Array.from({ length: 100 }, () => ({ ...item(b), priority: 'low' as const }))]);
    const got = { critical: 0, low: 0 } as Record<string, number>;
    // The first round knows neither partition's work yet: it may take one of either.
    for (let i = 0; i < 37; i++) for (const l of await q.lease({ max: 1, visibilityMs: 60_000 })) got[l.message.priority]!++;
    return got;
  };
  // One Redis: 36 critical, 0 low (strict); 32, 4 (weighted). Served in turn, both were 18 and 18.
  const strict = await count(new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'strict', weights: WEIGHTS, partitions: TEST_PARTITIONS }));
  expect(strict.low).toBeLessThanOrEqual(1);
  await testCluster().deleteKeys(fx.prefix);
  const weighted = await count(queue);
  expect(weighted.critical).toBeGreaterThanOrEqual(31);
  expect(weighted.low).toBeGreaterThanOrEqual(3);
});

test('a lease round does not wait on a stalled master: the other partitions\' tasks come within leaseWaitMs, and the late answer\'s leases go back', async () => {
  const q = new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'weighted', weights: WEIGHTS, partitions: TEST_PARTITIONS, leaseWaitMs: 300 });
  await q.enqueue(Array.from({ length: 60 }, (_, i) => item(`tenant-${i % 24}`)));
  // The master of partition 0 (and of another) runs no write for 2 s: lease.lua waits there.
  await whilePaused(await masterOfPartition(q, 0), 2000, 'WRITE', async () => {
    const started = Date.now();
    const leases = await q.lease({ max: 12, visibilityMs: 60_000 });
    // Before: the round waited for the paused master (about 2 s).
    expect(Date.now() - started).toBeLessThan(1500);
    expect(leases.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 2200));
    // The late answer's leases were handed back: only the round's own leases are held.
    const stats = await q.stats();
    expect(stats.processing).toBe(leases.length);
    expect(stats.ready.default).toBe(60 - leases.length);
  });
});

test('a reap does not wait on a stalled master: the other partitions\' expired leases come within passWaitMs, and the late answer\'s come with the next reap', async () => {
  const q = new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'weighted', weights: WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  const items = Array.from({ length: 48 }, (_, i) => item(`tenant-${i % 24}`));
  await q.enqueue(items);
  expect(await q.lease({ max: 48, visibilityMs: 50 })).toHaveLength(48);
  await new Promise((r) => setTimeout(r, 100));
  // The master of partition 0 (and of another) runs no write for 2 s: reap.lua waits there.
  await whilePaused(await masterOfPartition(q, 0), 2000, 'WRITE', async () => {
    const started = Date.now();
    const first = await q.reap(1000, 30_000);
    // Before: the pass waited for the paused master (about 2 s).
    expect(Date.now() - started).toBeLessThan(1500);
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(48);
    await new Promise((r) => setTimeout(r, 2200));
    // The paused partitions' scripts ran once the pause ended: their reclaimed leases are handed
    // to the next pass (the reaper records them in Postgres), not lost.
    const second = await q.reap(1000, 30_000);
    expect([...first, ...second].map((r) => r.id).sort()).toEqual(items.map((it) => it.id).sort());
    expect(await q.reap(1000, 30_000)).toEqual([]);
  });
});

test('a sweep and a promote do not wait on a stalled master; what the late answers did comes with the next pass', async () => {
  const q = new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'weighted', weights: WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  const items = Array.from({ length: 24 }, (_, i) => item(`tenant-${i}`));
  await q.enqueue(items);
  // Each task loses its ready-list entry (as after a partial write): known, held nowhere.
  for (const it of items) await fx.client.del(q.partitionFor(it.tenant).keys.tenantQueue('default', it.tenant));
  await whilePaused(await masterOfPartition(q, 0), 2000, 'WRITE', async () => {
    let started = Date.now();
    const first = await q.sweep(1000);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(first.forgotten.length).toBeLessThan(24);
    started = Date.now();
    await q.promoteDue(100);
    expect(Date.now() - started).toBeLessThan(1500);
    await new Promise((r) => setTimeout(r, 2200));
    const second = await q.sweep(1000);
    expect([...first.forgotten, ...second.forgotten].sort()).toEqual(items.map((it) => it.id).sort());
  });
});

test('an enqueue in any partition rings the control slot doorbell: an idle waiter wakes', async () => {
  const bell = queue.doorbell();
  try {
    expect(await bell.wait(50)).toBe(false);
    const woken = bell.wait(5000);
    await new Promise((r) => setTimeout(r, 50));
    await queue.enqueue([item('tenant-x')]);
    expect(await woken).toBe(true);
  } finally {
    bell.close();
  }
});

test('leases end in the partition their token names: finish, extend, release, cancelRequested; a token of another layout is stale', async () => {
  const [a, b] = tenantsInTwoPartitions();
  await queue.enqueue([item(a), item(b), item(a), item(b)]);
  const leases = await queue.lease({ max: 4, visibilityMs: 60_000 });
  expect(leases).toHaveLength(4);
  const held = leases.map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority }));
  expect(await queue.extend(held, 60_000)).toEqual([true, true, true, true]);
  expect(await queue.cancelRequested(held)).toEqual([false, false, false, false]);
  expect(await queue.release([held[0]!])).toEqual([true]);
  const done = await queue.finish(held.slice(1).map((h) => ({ ...h, outcome: 'succeeded' as const, settleAttempts: 0 })));
  expect(done).toEqual(['finished', 'finished', 'finished']);
  expect(await queue.finish([{ ...held[1]!, token: `${held[1]!.token.split('.')[0]}.${TEST_PARTITIONS + 3}:1`, outcome: 'succeeded', settleAttempts: 0 }])).toEqual(['stale']);
  const stats = await queue.stats();
  expect({ ready: stats.ready.default, processing: stats.processing }).toEqual({ ready: 1, processing: 0 });
});

test('cancel, lifting tombstones and requeue find a task by its tenant; overview reads one tenant partition and the live workers', async () => {
  const [a, b] = tenantsInTwoPartitions();
  const ta = item(a);
  const tb = item(b);
  await queue.enqueue([ta, tb]);
  await queue.announceWorker('w1', 60_000, 8);
  expect(await queue.cancel([{ id: ta.id, tenant: a }, { id: tb.id, tenant: b }])).toEqual(['removed', 'removed']);
  // Tombstoned, both stay out of a requeue until a retry lifts their tombstones (each in its partition).
  expect(await queue.requeue([ta, tb])).toEqual([false, false]);
  await queue.liftTombstones([{ id: ta.id, tenant: a }]);
  expect(await queue.requeue([ta, tb])).toEqual([true, false]);
  const view = await queue.overview(a);
  expect(view.priorities.default.ready).toBe(1);
  expect(view.workers).toEqual([{ id: 'w1', slots: 8 }]);
  expect((await queue.overview(b)).priorities.default.ready).toBe(0);
  expect((await queue.stats()).liveWorkers).toBe(1);
});

test('a cancel of a leased task reaches its holder: the message on the control channel, and the tombstone in its partition', async () => {
  const [a, b] = tenantsInTwoPartitions();
  await queue.enqueue([item(a), item(b)]);
  const heard: string[] = [];
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => (subscribed = r));
  const stop = await queue.onCancel((id) => heard.push(id), () => subscribed());
  try {
    // The subscription is made in the background; cancels before it are the heartbeat's to find.
    await ready;
    const leases = await queue.lease({ max: 2, visibilityMs: 60_000 });
    expect(leases).toHaveLength(2);
    const held = leases.map((l) => ({ id: l.message.id, token: l.token }));
    expect(await queue.cancelRequested(held)).toEqual([false, false]);
    expect(await queue.cancel(leases.map((l) => ({ id: l.message.id, tenant: l.message.tenant })))).toEqual(['leased', 'leased']);
    expect(await queue.cancelRequested(held)).toEqual([true, true]);
    for (let i = 0; i < 100 && heard.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(heard.sort()).toEqual(held.map((h) => h.id).sort());
  } finally {
    await stop();
  }
});

test('a process with another partition count is refused: the layout is recorded in the control slot', async () => {
  await assertLayout(fx.client, fx.prefix, TEST_PARTITIONS);
  await assertLayout(fx.client, fx.prefix, TEST_PARTITIONS);
  await expect(assertLayout(fx.client, fx.prefix, 3)).rejects.toThrow(`REDIS_PARTITIONS=3, but the queue in Redis (prefix ${fx.prefix}) is laid out in ${TEST_PARTITIONS} partition(s)`);
  await expect(assertLayout(fx.client, fx.prefix, 1)).rejects.toThrow(/REDIS_PARTITIONS=1/);
});
