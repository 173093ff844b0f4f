/**
 * A reap answered late (a stalled master) keeps its results in the reaping worker's memory until
 * its next pass. Should that worker die first, nothing is lost: reap.lua put the leases with
 * attempts left back on their lists (they run again, and the newer attempt's write records the
 * lost one in Postgres), and held those out of attempts under their tokens for holdMs, after
 * which any worker's reaper takes them again.
 */
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import Redis from 'ioredis';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf } from '../../services/core/queue/partitions';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { clusterClientFixture, TEST_PARTITIONS } from '../support/cluster-mode';
import { masterOf, tagOf, whilePaused } from '../support/cluster-stall';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };

const fx = clusterClientFixture('late-reap-test', 'lr');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the late answer of a worker that died is not lost: queued ones are on their lists, dead ones come to another worker\'s reap after holdMs', async () => {
  const opts = { prefix: fx.prefix, strategy: 'weighted' as const, weights: WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 };
  const dying = new PartitionedQueue(fx.client as unknown as Redis, opts);
  let tenant = '';
  for (let i = 0; !tenant; i++) if (partitionOf(`t${i}`, TEST_PARTITIONS) === 0) tenant = `t${i}`;
  const item = (id: string, maxAttempts: number): EnqueueItem => ({ id, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts, createdAtMs: Date.now(), attempts: 0 });
  const lastTry = Array.from({ length: 4 }, (_, i) => item(`dead-${i}`, 1));
  const again = Array.from({ length: 4 }, (_, i) => item(`again-${i}`, 3));
  await dying.enqueue([...lastTry, ...again]);
  expect(await dying.lease({ max: 8, visibilityMs: 50 })).toHaveLength(8);
  await sleep(100);

  await whilePaused(await masterOf(fx.client, tagOf(dying.parts[0]!.keys.meta)), 1000, 'WRITE', async () => {
    // The pass stops waiting for partition 0; its script runs once the pause ends.
    expect(await dying.reap(1000, 1500)).toEqual([]);
    await sleep(1200);
  });
  // The reaping worker dies with the late answer unhandled; another worker goes on.
  const other = new PartitionedQueue(fx.client as unknown as Redis, opts);
  expect((await other.readyIds('default')).sort()).toEqual(again.map((t) => t.id).sort());
  const leased = await other.lease({ max: 8, visibilityMs: 60_000 });
  expect(leased.map((l) => [l.message.id, l.attempt]).sort()).toEqual(again.map((t) => [t.id, 2]).sort());
  await sleep(1600);
  const reaped = await other.reap(1000, 30_000);
  expect(reaped.map((r) => [r.id, r.destination]).sort()).toEqual(lastTry.map((t) => [t.id, 'dead']).sort());
}, 30_000);
