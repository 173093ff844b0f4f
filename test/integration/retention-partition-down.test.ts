/**
 * Retention over a partitioned queue (REDIS_PARTITIONS > 1) with one partition unreachable: an ACL
 * user refused its keys, as a master failing over refuses its slots (as in partition-down.test.ts).
 * Deleting a dead or cancelled task, or a failed workflow, forgets its dead-letter entries in its
 * tenant's partition first. The other partitions' tenants do not wait for the one down: their due
 * tasks and workflows go; the down partition's stay, whole, in Postgres and in Redis, and go at a
 * later pass once it answers.
 */
import { createHash, randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, partitionTags } from '../../services/core/queue/partitions';
import type { TaskRef } from '../../services/core/queue/queue';
import { submitTasks } from '../../services/core/tasks/submit';
import { createWorkflow } from '../../services/core/workflows/workflow-store';
import { RetentionSweeper } from '../../services/worker/retention';
import { createStack, silentLog, Stack } from '../support/stack';
import { testRedisAddr } from '../support/test-env';

const N = 3;
const DOWN = 1;
const DAY = 86_400_000;
/** One tenant per partition: tenants[p] lives in partition p. */
const tenants: string[] = [];
for (let i = 0; tenants.filter(Boolean).length < N; i++) tenants[partitionOf(`r${i}`, N)] ??= `r${i}`;

let stack: Stack;
let limited: Redis | undefined;
const user = `rdown-${randomBytes(4).toString('hex')}`;

afterEach(async () => {
  limited?.disconnect();
  await stack.redis.call('ACL', 'DELUSER', user);
  await stack.close();
});

const queueOn = (redis: Redis) => new PartitionedQueue(redis, { prefix: stack.cfg.REDIS_KEY_PREFIX, strategy: 'weighted', weights: stack.cfg.QUEUE_WEIGHTS, partitions: N, passWaitMs: 500 });

/**
 * Per tenant: two dead tasks and a cancelled one, each dead-lettered in Redis (a cancelled one can
 * be: dead-lettered before its cancel was written), and a failed workflow whose dead step is too;
 * all finished 40 days ago. The tasks' and steps' refs by tenant.
 */
async function deadLettered(queue: PartitionedQueue): Promise<Map<string, TaskRef[]>> {
  await stack.pool.query('INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING', [tenants]);
  const deps = { pool: stack.pool, queue, log: silentLog, idempotencyTtlMs: 60_000 };
  const reqs = tenants.flatMap((tenant) => [0, 1, 2].map((i) => ({ tenant, type: 'noop', priority: 'default' as const, payload: { i }, maxRetries: 0, idempotencyKey: null, canonical: '' })));
  const tasks = (await submitTasks(deps, reqs)).map((r) => r.task);
  const steps = [];
  for (const tenant of tenants) {
    const step = (key: string, depends_on: string[]) => ({ key, type: 'noop', payload: {}, priority: 'default' as const, max_retries: 0, retry: null, timeout_ms: null, depends_on });
    const wf = await createWorkflow(deps, tenant, { name: 'old', on_failure: 'continue', steps: [step('a', []), step('b', ['a'])] }, null);
    if (wf.kind !== 'created') throw new Error(wf.kind);
    steps.push({ id: wf.steps[0]!.task_id, tenant });
  }
  const leases = await queue.lease({ max: 100, visibilityMs: 60_000, owner: 'w1' });
  expect(leases).toHaveLength(tasks.length + steps.length);
  await queue.finish(leases.map((l) => ({ id: l.message.id, token: l.token, priority: 'default', outcome: 'dead', settleAttempts: 1 })));
  // Each tenant's third task ended cancelled; the rest, and each workflow's first step, dead (its dependent cancelled with it).
  const cancelled = tasks.filter((t) => (t.payload as { i: number }).i === 2).map((t) => t.id);
  await stack.pool.query(`UPDATE tasks SET status = CASE WHEN id = ANY($2::uuid[]) THEN 'cancelled' ELSE 'dead' END::task_status, attempts = 1, finished_at = now() WHERE id = ANY($1::uuid[])`, [
    [...tasks.map((t) => t.id), ...steps.map((s) => s.id)],
    cancelled,
  ]);
  await stack.pool.query(`UPDATE tasks SET finished_at = now() - interval '40 days' WHERE tenant = ANY($1::text[])`, [tenants]);
  await stack.pool.query(`UPDATE workflows SET finished_at = now() - interval '40 days' WHERE tenant = ANY($1::text[])`, [tenants]);
  const refs = new Map<string, TaskRef[]>(tenants.map((t) => [t, []]));
  for (const t of [...tasks, ...steps]) refs.get(t.tenant)!.push({ id: t.id, tenant: t.tenant });
  return refs;
}

it('one partition down: the other partitions’ dead and cancelled tasks and failed workflows are deleted with their dead-letter entries; the down one’s stay whole, and go at a later pass', async () => {
  stack = await createStack();
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const admin = queueOn(stack.redis);
  const refs = await deadLettered(admin);
  // Every key of the namespace but partition DOWN's.
  const tags = partitionTags(prefix, N);
  const password = randomBytes(12).toString('hex');
  const allowed = [`~{${prefix}}:*`, ...tags.filter((_, p) => p !== DOWN).map((t) => `~${t}:*`)];
  await stack.redis.call('ACL', 'SETUSER', user, 'reset', 'on', `#${createHash('sha256').update(password).digest('hex')}`, ...allowed, '&*', '+@all');
  limited = createRedis({ addr: testRedisAddr(), username: user, password, name: 'retention-partition-down', offlineQueue: true });
  const sweeper = new RetentionSweeper(
    { pool: stack.pool, queue: queueOn(limited), metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 60_000, policy: { succeeded: 7 * DAY, dead: 30 * DAY, cancelled: 30 * DAY }, batch: 1000, pauseMs: 0 },
    silentLog,
  );
  try {
    const stored = async () => {
      const { rows } = await stack.pool.query<{ tenant: string; n: number }>(`SELECT tenant, count(*)::int AS n FROM tasks GROUP BY tenant ORDER BY tenant`);
      const wfs = await stack.pool.query<{ tenant: string }>(`SELECT tenant FROM workflows ORDER BY tenant`);
      return { tasks: Object.fromEntries(rows.map((r) => [r.tenant, r.n])), workflows: wfs.rows.map((r) => r.tenant) };
    };
    const deadLetters = async (tenant: string) => (await admin.indexed(refs.get(tenant)!)).filter((e) => e != null).length;
    const down = tenants[DOWN]!;
    const up = tenants.filter((t) => t !== down);

    const first = await sweeper.runOnce();
    // The others' tasks (two dead, one cancelled, each) and workflows (a dead step and the one it cancelled) went.
    expect(first).toMatchObject({ deleted: { dead: 2 * 2 + 2, cancelled: 2 * 1 + 2 }, workflows: 2, unanswered: 5 });
    expect(await stored()).toEqual({ tasks: { [down]: 5 }, workflows: [down] });
    for (const t of up) expect(await deadLetters(t)).toBe(0);
    // The down partition's: in Postgres and dead-lettered still, as before the pass.
    expect(await deadLetters(down)).toBe(4);

    // The partition answers again: the next pass goes back for what it passed over.
    await stack.redis.call('ACL', 'SETUSER', user, `~${tags[DOWN]}:*`);
    const second = await sweeper.runOnce();
    expect(second).toMatchObject({ deleted: { dead: 3, cancelled: 2 }, workflows: 1, unanswered: 0 });
    expect(await stored()).toEqual({ tasks: {}, workflows: [] });
    expect(await deadLetters(down)).toBe(0);
  } finally {
    await sweeper.stop();
  }
});
