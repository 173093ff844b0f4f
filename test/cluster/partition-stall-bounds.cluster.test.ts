/**
 * One master of the test profile's Redis Cluster stalled (CLIENT PAUSE): what waited on it without
 * bound now fails within its bound, and what it did not do is repaired once the master answers.
 * Before, GET /queues and POST /tasks/batch of a tenant it serves, the completer pushing released
 * workflow steps, tenant sync and the reaper's settle step waited as long as the master did.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import type { Pool } from 'pg';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { submitTasks } from '../../services/core/tasks/submit';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { Completer } from '../../services/worker/completer';
import { Reaper } from '../../services/worker/reaper';
import { Reconciler } from '../../services/worker/reconciler';
import { TenantSync } from '../../services/worker/tenant-sync';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { silentLog, Stack, startApi, waitFor } from '../support/stack';
import { pauseMaster, stalledTenantsFixture, within } from '../support/cluster-stall';

let stack: Stack;
let queue: PartitionedQueue;
/** A master not serving the control slot, its tenant, and a tenant of another master. */
let stalledMaster: string;
let stalled: string;
let healthy: string;

const world = stalledTenantsFixture({}, (made) => new PartitionedQueue(made.redis, { prefix: made.cfg.REDIS_KEY_PREFIX, strategy: 'weighted', weights: made.cfg.QUEUE_WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 }));
beforeAll(() => void ({ stack, queue, stalledMaster, stalled, healthy } = world));

const metrics = () => workerMetrics(createRegistry('worker'));
const indexed = async (id: string, tenant: string) => (await queue.indexed([{ id, tenant }]))[0] != null;

it('GET /queues of a tenant on the stalled master answers 503 with Retry-After; another tenant\'s answers 200', async () => {
  const { url, server } = await startApi(stack, queue);
  const get = (tenant: string) => within(fetch(`${url}/queues`, { headers: { tenant } }));
  const unpause = await pauseMaster(stalledMaster);
  try {
    const [mine, other] = await Promise.all([get(stalled), get(healthy)]);
    expect(mine).not.toBe('no answer');
    expect((mine as Response).status).toBe(503);
    expect(Number((mine as Response).headers.get('retry-after'))).toBeGreaterThan(0);
    expect((other as Response).status).toBe(200);
  } finally {
    await unpause();
    await server.stop();
  }
}, 30_000);

it('POST /tasks, /tasks/batch and /workflows of a tenant on the stalled master answer once Postgres has the tasks, another tenant\'s too; Redis gets them once the master answers', async () => {
  const { url, server } = await startApi(stack, queue);
  const post = (path: string, tenant: string, body: unknown) =>
    within(fetch(`${url}${path}`, { method: 'POST', headers: { tenant, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> })));
  const unpause = await pauseMaster(stalledMaster);
  let id: string;
  try {
    const [batch, mine, other, workflow] = await Promise.all([
      post('/tasks/batch', stalled, { tasks: [{ type: 'noop' }] }),
      post('/tasks', stalled, { type: 'noop' }),
      post('/tasks', healthy, { type: 'noop' }),
      post('/workflows', stalled, { name: 'stall', tasks: [{ key: 'a', type: 'noop' }] }),
    ]);
    expect([batch, mine, other, workflow]).not.toContain('no answer');
    expect((workflow as { status: number }).status).toBe(201);
    expect((mine as { status: number }).status).toBe(201);
    expect((other as { status: number }).status).toBe(201);
    const { status, body } = batch as { status: number; body: Record<string, any> };
    expect(status).toBe(200);
    id = body.results[0].task.id;
    expect((await stack.pool.query('SELECT status FROM tasks WHERE id = $1', [id])).rows[0].status).toBe('queued');
  } finally {
    await unpause();
    await server.stop();
  }
  await waitFor(() => indexed(id, stalled), 10_000, 'the batch task to reach Redis');
}, 30_000);

it('the completer does not wait on a stalled master to push released workflow steps; they reach Redis once it answers', async () => {
  const { url, server } = await startApi(stack, queue);
  const made = await fetch(`${url}/workflows`, {
    method: 'POST',
    headers: { tenant: stalled, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'stall', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a'] }] }),
  });
  await server.stop();
  expect(made.status).toBe(201);
  const workflowId = ((await made.json()) as { workflow: { id: string } }).workflow.id;
  const steps = (await stack.pool.query<{ id: string; step_key: string }>('SELECT id, step_key FROM tasks WHERE workflow_id = $1', [workflowId])).rows;
  const a = steps.find((s) => s.step_key === 'a')!.id;
  const b = steps.find((s) => s.step_key === 'b')!.id;
  const lease = await waitFor(async () => (await queue.lease({ max: 10, visibilityMs: 60_000 })).find((l) => l.message.id === a), 10_000, 'step a leased');
  const completer = new Completer(
    { pool: stack.pool, queue, log: silentLog, metrics: metrics() },
    { maxBatch: 500, maxConcurrent: 2, overlapAt: 64, minGapMs: 0, eagerAt: 1, flushAt: 1, giveUpAfterMs: 10_000, reclaimAfterMs: 1000 },
  );
  const unpause = await pauseMaster(stalledMaster);
  try {
    const done = completer.complete({ id: a, token: lease.token, attempt: lease.attempt, workerId: 'w', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0, priority: 'default', typeLabel: 'noop', step: true });
    expect(await within(done)).toBe('applied');
  } finally {
    await unpause();
  }
  expect((await stack.pool.query('SELECT status FROM tasks WHERE id = $1', [b])).rows[0].status).toBe('queued');
  // The push landed late or not at all: either way the reconciler's pass leaves b in Redis.
  await new Reconciler({ pool: stack.pool, queue, metrics: metrics() }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog).runOnce();
  await waitFor(() => indexed(b, stalled), 10_000, 'step b to reach Redis');
}, 30_000);

it('a tenant sync pass fails within its bound while a master is stalled; the next pass sends the settings', async () => {
  await setTenant(stack.pool, stalled, { weight: 7 });
  const sync = new TenantSync({ pool: stack.pool, queue }, 0, 1000, silentLog, 500);
  const unpause = await pauseMaster(stalledMaster);
  try {
    const err = await within(sync.runOnce().then(() => 'answered', (e: unknown) => e));
    expect(err).toBeInstanceOf(Error);
    expect(String(err)).toMatch(/tenant settings: no answer within 500 ms/);
  } finally {
    await unpause();
  }
  expect((await sync.runOnce()).sent).toBeGreaterThanOrEqual(2);
}, 30_000);

it('a reaper pass does not wait on a stalled master to settle a lease; the settle lands once it answers', async () => {
  const [stored] = await submitTasks({ pool: stack.pool, queue, log: silentLog, idempotencyTtlMs: 60_000 }, [{ tenant: stalled, type: 'noop', priority: 'default', payload: {}, maxRetries: 3, idempotencyKey: null, canonical: '' }]);
  const id = stored!.task.id;
  await waitFor(async () => (await queue.lease({ max: 10, visibilityMs: 200 })).some((l) => l.message.id === id), 10_000, 'the task leased');
  // Postgres ended it meanwhile: the expired lease is one the reaper settles with what Postgres says.
  await stack.pool.query("UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE id = $1", [id]);
  await new Promise((r) => setTimeout(r, 300));
  let unpause: (() => Promise<void>) | null = null;
  // The master stalls between the reap and the settle (when the reaper reads Postgres's states).
  const pool = new Proxy(stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? async (config: unknown, values?: unknown) => {
            const text = typeof config === 'string' ? config : (config as { text: string }).text;
            if (!unpause && text.includes('run_after_ms')) unpause = await pauseMaster(stalledMaster);
            return target.query(config as never, values as never);
          }
        : Reflect.get(target, prop, receiver),
  }) as Pool;
  const reaper = new Reaper({ pool, queue, metrics: metrics(), typeLabel: () => 'noop' }, 100, 1000, silentLog, 30_000);
  try {
    const err = await within(reaper.runOnce().then(() => 'answered', (e: unknown) => e));
    expect(unpause).not.toBeNull();
    expect(String(err)).toMatch(/did not answer a settle call/);
  } finally {
    await (unpause as (() => Promise<void>) | null)?.();
  }
  await waitFor(async () => !(await indexed(id, stalled)), 10_000, 'Redis to forget the task Postgres ended');
}, 30_000);
