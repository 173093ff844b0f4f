/**
 * The heartbeat on the test profile's Redis Cluster with one master stalled (CLIENT PAUSE WRITE):
 * the leases of the partitions other masters serve keep being extended, and only the stalled
 * partitions' attempts are aborted when their leases may have run out. Before, each pass waited
 * for the stalled master (its extend, or the announcement in the control slot), no pass followed,
 * and every running attempt of every tenant was aborted at its lease's end.
 */
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import Redis from 'ioredis';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf } from '../../services/core/queue/partitions';
import type { Lease } from '../../services/core/queue/queue';
import { Heartbeater } from '../../services/worker/heartbeater';
import { Running } from '../../services/worker/processor';
import { clusterClientFixture, TEST_PARTITIONS } from '../support/cluster-mode';
import { masterOf, tagOf, whilePaused } from '../support/cluster-stall';
import { silentLog } from '../support/stack';

const WEIGHTS = { critical: 8, high: 4, default: 2, low: 1 };
const VIS_MS = 1500;
let seq = 0;

const fx = clusterClientFixture('heartbeat-stall-test', 'hb');

/** A tenant whose partition is served by a master `wanted` accepts. */
async function tenantOn(q: PartitionedQueue, wanted: (master: string) => boolean): Promise<string> {
  for (let i = 0; ; i++) {
    const t = `tenant-${i}`;
    if (wanted(await masterOf(fx.client, tagOf(q.parts[partitionOf(t, TEST_PARTITIONS)]!.keys.meta)))) return t;
  }
}

async function leaseOne(q: PartitionedQueue, tenant: string): Promise<Lease> {
  await q.enqueue([{ id: `task-${++seq}`, tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 }]);
  for (let i = 0; i < 20; i++) {
    const got = (await q.lease({ max: 1, visibilityMs: VIS_MS })).filter((l) => l.message.tenant === tenant);
    if (got.length > 0) return got[0]!;
  }
  throw new Error(`no lease for ${tenant}`);
}

/** Runs a heartbeat over a lease of a healthy and of a stalled master while that master is paused. */
async function heartbeatThroughStall(stallControl: boolean): Promise<{ healthy: Running; stalled: Running }> {
  const q = new PartitionedQueue(fx.client as unknown as Redis, { prefix: fx.prefix, strategy: 'weighted', weights: WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  const control = await masterOf(fx.client, `{${fx.prefix}}`);
  const masters = [...new Set(await Promise.all(q.parts.map((p) => masterOf(fx.client, tagOf(p.keys.meta)))))];
  const stalledMaster = stallControl ? control : masters.find((m) => m !== control)!;
  const healthyTenant = await tenantOn(q, (m) => m !== stalledMaster);
  const stalledTenant = await tenantOn(q, (m) => m === stalledMaster);
  const now = performance.now();
  const healthy = new Running(await leaseOne(q, healthyTenant), Date.now(), now + VIS_MS);
  const stalled = new Running(await leaseOne(q, stalledTenant), Date.now(), now + VIS_MS);
  const running = new Map([
    ['a', healthy],
    ['b', stalled],
  ]);
  const hb = new Heartbeater('worker-hb', running, q, VIS_MS, 300, silentLog);
  try {
    hb.start();
    await new Promise((r) => setTimeout(r, 300));
    // Twice the lease: a lease not extended meanwhile has surely run out.
    await whilePaused(stalledMaster, 4000, 'WRITE', () => new Promise((r) => setTimeout(r, 2 * VIS_MS)));
    return { healthy, stalled };
  } finally {
    await hb.stop();
  }
}

test('a stalled master that does not serve the control slot: the other partitions\' leases are still extended', async () => {
  const { healthy, stalled } = await heartbeatThroughStall(false);
  expect(stalled.aborted).toBe(true);
  expect(healthy.aborted).toBe(false);
}, 30_000);

test('a stalled master serving the control slot (the announcement): the other partitions\' leases are still extended', async () => {
  const { healthy, stalled } = await heartbeatThroughStall(true);
  expect(stalled.aborted).toBe(true);
  expect(healthy.aborted).toBe(false);
}, 30_000);
