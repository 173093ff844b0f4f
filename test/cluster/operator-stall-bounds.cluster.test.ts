/**
 * One master of the test profile's Redis Cluster stalled (CLIENT PAUSE) under an operator's cancel
 * or retry, which call Redis while their Postgres transaction holds the tasks' rows (and a
 * workflow's lock): the call answers 503 with Retry-After within its bound, rolled back and its
 * locks let go, so workers' outcome writes do not wait on the master; another tenant's call answers.
 * A workflow's stop after a failed step (the same kind of call, under the workflow's lock) too.
 * Before, the call (and the locks) waited as long as the master did.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import type { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { DependencyTimeoutError } from '../../services/core/process/with-timeout';
import { stopFailedWorkflows } from '../../services/core/workflows/stop-on-failure';
import { Reconciler } from '../../services/worker/reconciler';
import { silentLog, Stack, startApi, waitFor } from '../support/stack';
import { pauseMaster, stalledTenantsFixture, whilePaused, within } from '../support/cluster-stall';

let stack: Stack;
let queue: PartitionedQueue;
let stalledMaster: string;
let stalled: string;
let healthy: string;

// One task per bulk batch: a bulk call commits a batch before the one that meets the stall.
const world = stalledTenantsFixture({ BULK_BATCH: 1 });
beforeAll(() => void ({ stack, queue, stalledMaster, stalled, healthy } = world));

/** Runs `use` against an API on `q`, stopped after it. */
async function withApi(q: PartitionedQueue, use: (url: string) => Promise<void>): Promise<void> {
  const { url, server } = await startApi(stack, q);
  try {
    await use(url);
  } finally {
    await server.stop();
  }
}

type Answer = { status: number; retryAfter: string | null; body: Record<string, any> };
const call = (url: string, path: string, tenant: string, body: unknown = {}) =>
  within(
    fetch(`${url}${path}`, { method: 'POST', headers: { tenant, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
      async (r): Promise<Answer> => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as Record<string, any> }),
    ),
  );
function expect503(a: Answer | 'no answer'): Answer {
  expect(a).not.toBe('no answer');
  const answer = a as Answer;
  expect(answer.status).toBe(503);
  expect(Number(answer.retryAfter)).toBeGreaterThan(0);
  return answer;
}
const submit = async (url: string, tenant: string) => ((await call(url, '/tasks', tenant, { type: 'noop' })) as Answer).body.id as string;
const statusOf = async (id: string) => (await stack.pool.query<{ status: string }>('SELECT status::text AS status FROM tasks WHERE id = $1', [id])).rows[0]!.status;
const indexed = async (id: string, tenant: string) => (await queue.indexed([{ id, tenant }]))[0] != null;

/** A pass of the file's one reconciler (one owner of its lock across the tests). */
let reconciler: Reconciler | undefined;
const reconcile = () => (reconciler ??= new Reconciler({ pool: stack.pool, queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog)).runOnce();

/** Whether a writer gets the tasks' rows (and the workflow's lock) now, as a worker's outcome write would. */
async function locksFree(ids: string[], workflowId?: string): Promise<boolean> {
  const client = await stack.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SET LOCAL lock_timeout = '500ms'");
    await client.query('SELECT id FROM tasks WHERE id = ANY($1::uuid[]) FOR UPDATE', [ids]);
    if (workflowId) await client.query('SELECT workflow_lock($1)', [workflowId]);
    return true;
  } catch {
    return false;
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

it('POST /tasks/{id}/cancel of a tenant on the stalled master answers 503 with Retry-After, changes nothing and holds no lock; another tenant\'s answers', async () => {
  await withApi(queue, async (url) => {
    const [mine, other] = [await submit(url, stalled), await submit(url, healthy)];
    await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
      const [a, b] = await Promise.all([call(url, `/tasks/${mine}/cancel`, stalled), call(url, `/tasks/${other}/cancel`, healthy)]);
      expect503(a);
      expect((b as Answer).status).toBe(200);
      expect(await locksFree([mine])).toBe(true);
      expect(await statusOf(mine)).toBe('queued');
    });
    // The cancel landed late (Redis forgot and tombstoned the task) or not at all: sent again, as the
    // 503 asks, it ends the task cancelled, and Redis holds it nowhere (it cannot run).
    expect(((await call(url, `/tasks/${mine}/cancel`, stalled)) as Answer).status).toBe(200);
    expect(await statusOf(mine)).toBe('cancelled');
    expect(await indexed(mine, stalled)).toBe(false);
  });
}, 30_000);

it('a cancel that answered 503 and landed in Redis late loses no task: the reconciler queues it again once its tombstone lapses', async () => {
  await withApi(queue, async (url) => {
    const id = await submit(url, stalled);
    await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
      expect503(await call(url, `/tasks/${id}/cancel`, stalled));
    });
    // The master ran the cancel it held: Redis forgot the task Postgres still has queued.
    await waitFor(async () => !(await indexed(id, stalled)), 5000, 'the late cancel to land');
    await reconcile();
    expect(await indexed(id, stalled)).toBe(false);
    // Its tombstone lapsed (TOMBSTONE_MS, ten minutes): the next pass queues it, once.
    await stack.redis.zadd(stack.keysOf(stalled).tombstones, 'XX', Date.now() - 700_000, id);
    await reconcile();
    expect(await statusOf(id)).toBe('queued');
    expect(await indexed(id, stalled)).toBe(true);
  });
}, 30_000);

it('POST /tasks/{id}/retry of a tenant on the stalled master answers 503 with Retry-After and leaves the task as it was; sent again once the master answers, it queues it once', async () => {
  await withApi(queue, async (url) => {
    const id = await submit(url, stalled);
    expect(((await call(url, `/tasks/${id}/cancel`, stalled)) as Answer).status).toBe(200);
    await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
      expect503(await call(url, `/tasks/${id}/retry`, stalled));
      expect(await locksFree([id])).toBe(true);
      expect(await statusOf(id)).toBe('cancelled');
    });
    // The lift of its tombstone landed late: the task is still cancelled and out of Redis, and
    // the reconciler leaves it so.
    await reconcile();
    expect(await indexed(id, stalled)).toBe(false);
    expect(((await call(url, `/tasks/${id}/retry`, stalled)) as Answer).status).toBe(200);
    expect(await statusOf(id)).toBe('queued');
    expect(await indexed(id, stalled)).toBe(true);
  });
}, 30_000);

it('a bulk cancel that meets the stall after a batch committed answers 503 saying what it changed; that batch stays done, the rest untouched', async () => {
  let unpause: (() => Promise<void>) | null = null;
  let calls = 0;
  // The master stalls as the second batch tells Redis.
  const stalling: PartitionedQueue = Object.create(queue);
  stalling.cancel = async (tasks, opts) => {
    if (++calls === 2) unpause = await pauseMaster(stalledMaster);
    return queue.cancel(tasks, opts);
  };
  const { url, server } = await startApi(stack, stalling);
  try {
    const ids = [await submit(url, stalled), await submit(url, stalled)];
    const answer = expect503(await call(url, '/tasks/cancel', stalled, { filter: { status: 'queued' } }));
    expect(answer.body.changed).toBe(1);
    expect(typeof answer.body.next_cursor).toBe('string');
    expect(await locksFree(ids)).toBe(true);
    expect((await Promise.all(ids.map(statusOf))).sort()).toEqual(['cancelled', 'queued']);
  } finally {
    await (unpause as (() => Promise<void>) | null)?.();
    await server.stop();
  }
}, 30_000);

it('POST /tasks/retry (bulk) of a tenant on the stalled master answers 503 with Retry-After and retries nothing', async () => {
  await withApi(queue, async (url) => {
    const id = await submit(url, stalled);
    expect(((await call(url, `/tasks/${id}/cancel`, stalled)) as Answer).status).toBe(200);
    await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
      const answer = expect503(await call(url, '/tasks/retry', stalled, { filter: { status: 'cancelled' } }));
      expect(answer.body.changed).toBe(0);
      expect(await locksFree([id])).toBe(true);
      expect(await statusOf(id)).toBe('cancelled');
    });
  });
}, 30_000);

it('POST /workflows/{id}/cancel of a tenant on the stalled master answers 503 with Retry-After and lets go of the workflow\'s lock and its steps\' rows', async () => {
  await withApi(queue, async (url) => {
    const made = (await call(url, '/workflows', stalled, { name: 'stall', tasks: [{ key: 'a', type: 'noop' }] })) as Answer;
    expect(made.status).toBe(201);
    const workflowId = made.body.workflow.id as string;
    const steps = (await stack.pool.query<{ id: string }>('SELECT id FROM tasks WHERE workflow_id = $1', [workflowId])).rows.map((r) => r.id);
    await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
      expect503(await call(url, `/workflows/${workflowId}/cancel`, stalled));
      expect(await locksFree(steps, workflowId)).toBe(true);
      expect(await statusOf(steps[0]!)).toBe('queued');
    });
    // Sent again once the master answers, the cancel finishes what the first began.
    expect(((await call(url, `/workflows/${workflowId}/cancel`, stalled)) as Answer).status).toBe(200);
    expect(await statusOf(steps[0]!)).toBe('cancelled');
  });
}, 30_000);

it("a workflow's stop after a failed step, its steps on the stalled master, fails within its bound and lets go of its locks; the next sweep stops them", async () => {
  const { url, server } = await startApi(stack, queue);
  let workflowId: string;
  try {
    const made = (await call(url, '/workflows', stalled, { name: 'stop', on_failure: 'cancel_dependents', tasks: [{ key: 'a', type: 'noop' }, { key: 'q', type: 'noop' }] })) as Answer;
    expect(made.status).toBe(201);
    workflowId = made.body.workflow.id as string;
  } finally {
    await server.stop();
  }
  const steps = new Map((await stack.pool.query<{ id: string; step_key: string }>('SELECT id, step_key FROM tasks WHERE workflow_id = $1', [workflowId])).rows.map((r) => [r.step_key, r.id]));
  const q = steps.get('q')!;
  // Step a failed for good, and its writer died before it stopped the workflow: the sweep's to do.
  await stack.pool.query("UPDATE tasks SET status = 'dead', finished_at = now() WHERE id = $1", [steps.get('a')]);
  await whilePaused(stalledMaster, 60_000, 'WRITE', async () => {
    expect(await within(stopFailedWorkflows({ pool: stack.pool, queue }).then(() => 'answered', (e: unknown) => e))).toBeInstanceOf(DependencyTimeoutError);
    expect(await locksFree([q], workflowId)).toBe(true);
    expect(await statusOf(q)).toBe('queued');
  });
  expect(await stopFailedWorkflows({ pool: stack.pool, queue })).toBe(1);
  expect(await statusOf(q)).toBe('cancelled');
  expect(await indexed(q, stalled)).toBe(false);
}, 30_000);
