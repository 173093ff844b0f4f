/**
 * The delayed loader on the test profile's Redis Cluster with one master stalled (CLIENT PAUSE ALL):
 * its mark read, pushes and mark writes wait for each partition at most passWaitMs, so the other
 * partitions' tasks are loaded and their marks move while the stalled ones keep theirs, and load
 * from there once they answer. Before, the mark read (and the push, and the mark write) waited on
 * every partition: a stalled master stopped delayed loading in every partition.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import Redis from 'ioredis';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { partitionOf } from '../../services/core/queue/partitions';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { DelayedLoader } from '../../services/worker/delayed-loader';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { partitionMasters, passWaitQueue } from '../support/cluster-stall';
import { silentLog, stackFixture } from '../support/stack';

const fx = stackFixture({}, { each: true, timeoutMs: 120_000 });
afterEach(() => jest.restoreAllMocks());

it('a stalled master holds up neither the other partitions\' delayed loading nor the pass; its own partitions load from their unmoved marks once it answers', async () => {
  const { stack } = fx;
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = passWaitQueue(stack);
  // A master that does not serve the control slot (the loader's lock): the partitions it serves stall.
  const { masters, other: stalled } = await partitionMasters(stack.redis, prefix);
  const isStalled = (p: number) => masters[p] === stalled;
  // One tenant per partition, and two scheduled tasks of each, due within the loader's half horizon.
  const tenants: string[] = [];
  for (let i = 0; tenants.length < TEST_PARTITIONS; i++) if (partitionOf(`t${i}`, TEST_PARTITIONS) === tenants.length) tenants.push(`t${i}`);
  await stack.pool.query('INSERT INTO tenants (name) SELECT unnest($1::text[])', [tenants]);
  const { rows } = await stack.pool.query<{ id: string; tenant: string }>(
    `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, run_at)
     SELECT gen_random_uuid(), t, 'noop', 'default', '{}', 'scheduled', 0, now() + interval '20 seconds' FROM unnest($1::text[]) t, generate_series(1, 2)
     RETURNING id, tenant`,
    [tenants],
  );
  const loader = new DelayedLoader(
    { pool: stack.pool, queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 1000, horizonMs: 60_000, batch: 100, maxPages: 5, countEveryMs: 60_000 },
    silentLog,
  );
  const sent: string[] = [];
  const push = queue.pushAnswering.bind(queue);
  jest.spyOn(queue, 'pushAnswering').mockImplementation((items: EnqueueItem[], replace: boolean) => {
    sent.push(...items.map((it) => it.id));
    return push(items, replace);
  });
  const indexed = async () => (await queue.indexed(rows.map((r) => ({ id: r.id, tenant: r.tenant })))).map((e, i) => (e ? rows[i]!.id : null)).filter((id): id is string => id !== null);

  const at = { host: stalled.split(':')[0], port: Number(stalled.split(':')[1]) };
  const pauser = new Redis({ ...at, lazyConnect: false, maxRetriesPerRequest: 1 });
  const probe = new Redis({ ...at, lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    await probe.ping();
    // Nothing the master serves answers for 8 s (reads too): this pass's first call there waits.
    await pauser.client('PAUSE', 8000, 'ALL');
    let pauseOver = false;
    const probed = probe.ping().then(() => (pauseOver = true));
    const first = await loader.runOnce();
    // The pass ended while the master still answered nothing (before: it ended only after the pause).
    expect(pauseOver).toBe(false);
    const others = rows.filter((r) => !isStalled(partitionOf(r.tenant, TEST_PARTITIONS)));
    expect(first.loaded).toBe(others.length);
    expect(await indexed()).toEqual(expect.arrayContaining(others.map((r) => r.id)));
    await probed;
    // The stalled partitions' marks were not moved (their push may have run late: not known); the others' were.
    const marks = await Promise.all(queue.parts.map((q) => q.delayedMark()));
    marks.forEach((m, p) => expect(m.at === null).toBe(isStalled(p)));
    // Answering again, they are loaded from their marks; the others' tasks are found indexed.
    await loader.runOnce();
    expect((await indexed()).sort()).toEqual(rows.map((r) => r.id).sort());
    for (const q of queue.parts) expect((await q.delayedMark()).at).not.toBeNull();
    expect((await loader.runOnce()).loaded).toBe(0);
    // Each task is held once.
    expect((await queue.stats()).retrying.default).toBe(rows.length);
    expect(new Set(sent)).toEqual(new Set(rows.map((r) => r.id)));
  } finally {
    pauser.disconnect();
    probe.disconnect();
  }
}, 60_000);
