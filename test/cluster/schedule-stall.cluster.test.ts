/**
 * Schedules firing on the test profile's Redis Cluster with one master stalled (CLIENT PAUSE
 * WRITE): a pass that fired schedules of tenants in several partitions indexes the answering
 * partitions' tasks and ends within passWaitMs; the stalled partition's tasks stay queued in
 * Postgres for the reconciler. Before, the pass waited for the stalled master, and no schedule of
 * any tenant fired meanwhile.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import { fireDueSchedules } from '../../services/core/schedules/fire-due';
import { partitionMasters, passWaitQueue, tenantWhere, whilePaused } from '../support/cluster-stall';
import { silentLog, stackFixture } from '../support/stack';

const fx = stackFixture({}, { each: true, timeoutMs: 120_000 });

it('a stalled master holds up neither the pass nor the other partitions\' scheduled tasks', async () => {
  const { stack } = fx;
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = passWaitQueue(stack);
  const { masters, other: stalled } = await partitionMasters(stack.redis, prefix);
  const healthy = tenantWhere(masters, (m) => m !== stalled, 's');
  const other = tenantWhere(masters, (m) => m === stalled, 's');
  await stack.pool.query('INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [[healthy, other]]);
  const task = { type: 'noop', payload: {}, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  for (const t of [healthy, other]) {
    await stack.pool.query(
      `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, overlap, paused, next_tick)
       VALUES ($1, 'tick', '0 0 1 1 *', $2, 'run_once', 1, 'allow', false, now() - interval '1 second')`,
      [t, JSON.stringify(task)],
    );
  }
  await whilePaused(stalled, 4000, 'WRITE', async () => {
    const started = Date.now();
    const res = await fireDueSchedules({ pool: stack.pool, queue, log: silentLog }, { batch: 10, graceMs: 60_000 });
    // Before: the pass waited for the pause to end (about 4 s).
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.fired).toBe(2);
    const { rows } = await stack.pool.query<{ id: string; tenant: string }>('SELECT id, tenant FROM tasks WHERE schedule = $1', ['tick']);
    const mine = rows.find((r) => r.tenant === healthy)!;
    expect(await queue.indexed([mine])).toEqual([{ deadLetteredAfter: null }]);
  });
}, 60_000);
