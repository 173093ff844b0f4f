/**
 * Retention of workflows against real Postgres and Redis: a finished workflow goes whole (its row,
 * every step, their runs and edges) once it is due, or not at all; never while it runs, or while a
 * retry is reopening it. The races with a retry are forced with locks held in another connection.
 */
import { Client, Pool } from 'pg';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import type { RetentionPolicy } from '../../services/core/retention/retention-store';
import type { StepSpec } from '../../services/core/workflows/workflow';
import { cancelWorkflow, createWorkflow } from '../../services/core/workflows/workflow-store';
import { RetentionOptions, RetentionSweeper } from '../../services/worker/retention';
import { silentLog, Stack, startApi, taskStatus, waitFor } from '../support/stack';
import { resettableStack } from '../support/stack-reset';

const DAY = 86_400_000;
const DEFAULTS: RetentionPolicy = { succeeded: 7 * DAY, dead: 30 * DAY, cancelled: 30 * DAY };

let stack: Stack;
const sweepers: RetentionSweeper[] = [];
const clients: Client[] = [];

const shared = resettableStack();
beforeEach(() => {
  stack = shared.current();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end()));
  await Promise.all(sweepers.splice(0).map((s) => s.stop()));
});

function sweeper(opts: Partial<RetentionOptions> = {}, pool: Pool = stack.pool): RetentionSweeper {
  const metrics = workerMetrics(createRegistry('worker'));
  const s = new RetentionSweeper({ pool, queue: stack.queue, metrics }, { intervalMs: 60_000, policy: DEFAULTS, batch: 1000, pauseMs: 0, ...opts }, silentLog);
  sweepers.push(s);
  return s;
}

/** One pass of a sweeper of its own, which then gives the lock back (one sweep at a time). */
async function pass(opts: Partial<RetentionOptions> = {}) {
  const s = sweeper(opts);
  try {
    return await s.runOnce();
  } finally {
    await s.stop();
  }
}

async function connect(): Promise<Client> {
  const c = new Client({ connectionString: stack.dbUrl });
  await c.connect();
  clients.push(c);
  return c;
}

const deps = () => ({ pool: stack.pool, queue: stack.queue, log: silentLog });
const retry = (id: string) => retryTasks(deps(), 'default', [id]).then(([o]) => o!);
const step = (key: string, depends_on: string[] = []): StepSpec => ({ key, type: 'noop', payload: {}, priority: 'default', max_retries: 0, retry: null, timeout_ms: null, depends_on });

interface Wf {
  id: string;
  steps: Record<string, string>;
}

/**
 * A chain a → b → c (on_failure continue). `a` succeeds with a result; then b dies (c is cancelled
 * by the cascade: the workflow failed), or b and c succeed, or nothing more (it runs). Each step
 * that ends gets a run. Finished steps and the workflow are then dated `agoMs` back, `a` a day more.
 */
async function workflow(end: 'failed' | 'succeeded' | 'running', agoMs: number): Promise<Wf> {
  const out = await createWorkflow(deps(), 'default', { name: 'r', on_failure: 'continue', steps: [step('a'), step('b', ['a']), step('c', ['b'])] }, null);
  if (out.kind !== 'created') throw new Error(out.kind);
  const ids = Object.fromEntries(out.steps.map((x) => [x.key, x.task_id]));
  const set = async (key: string, status: string) => {
    await stack.pool.query(`UPDATE tasks SET status = $2::task_status, finished_at = now(), attempts = 1, result = $3::jsonb WHERE id = $1`, [ids[key], status, status === 'succeeded' ? JSON.stringify({ from: key }) : null]);
    await stack.pool.query(`INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome) VALUES ($1::uuid, 1, 'w', $1::uuid::text, now(), now(), $2)`, [ids[key], status === 'succeeded' ? 'succeeded' : 'failed']);
  };
  await set('a', 'succeeded');
  if (end === 'failed') await set('b', 'dead');
  if (end === 'succeeded') (await set('b', 'succeeded'), await set('c', 'succeeded'));
  await stack.pool.query(`UPDATE tasks SET finished_at = now() - $2 * interval '1 millisecond' WHERE workflow_id = $1 AND finished_at IS NOT NULL`, [out.workflow.id, agoMs]);
  await stack.pool.query(`UPDATE tasks SET finished_at = finished_at - interval '1 day' WHERE id = $1`, [ids.a]);
  await stack.pool.query(`UPDATE workflows SET finished_at = now() - $2 * interval '1 millisecond' WHERE id = $1 AND finished_at IS NOT NULL`, [out.workflow.id, agoMs]);
  return { id: out.workflow.id, steps: ids };
}

/** What is stored of `wf`: its row's status, its steps, their runs and edges. */
async function stored(wf: Wf) {
  const ids = Object.values(wf.steps);
  const { rows } = await stack.pool.query(
    `SELECT (SELECT status FROM workflows WHERE id = $1) AS workflow,
            (SELECT count(*)::int FROM tasks WHERE id = ANY($2::uuid[])) AS steps,
            (SELECT count(*)::int FROM task_runs WHERE task_id = ANY($2::uuid[])) AS runs,
            (SELECT count(*)::int FROM workflow_edges WHERE child = ANY($2::uuid[]) OR parent = ANY($2::uuid[])) AS edges`,
    [wf.id, ids],
  );
  return rows[0] as { workflow: string | null; steps: number; runs: number; edges: number };
}

const GONE = { workflow: null, steps: 0, runs: 0, edges: 0 };
const wholeOrGone = (s: Awaited<ReturnType<typeof stored>>) => expect([GONE, { workflow: 'failed', steps: 3, runs: 2, edges: 2 }]).toContainEqual(s);

/** Lock waits in this test's database: how many sessions wait for a lock now. */
async function lockWaiters(): Promise<number> {
  const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`);
  return rows[0].n;
}

it('a failed workflow past its retention goes whole in one batch, never step by step: a retry after any batch finds all of it or none (404)', async () => {
  const wf = await workflow('failed', 31 * DAY);
  expect(await stored(wf)).toEqual({ workflow: 'failed', steps: 3, runs: 2, edges: 2 });
  const api = await startApi(stack);
  try {
    // One statement a pass, one task a statement: before the fix, the first took the succeeded
    // step a alone, and the retry below then resumed b without it (its edges were gone too).
    const s = sweeper({ batch: 1, maxBatches: 1 });
    for (let pass = 0; pass < 8 && (await stored(wf)).steps > 0; pass++) {
      await s.runOnce();
      wholeOrGone(await stored(wf));
    }
    expect(await stored(wf)).toEqual(GONE);
    const res = await fetch(`${api.url}/tasks/${wf.steps.b}/retry`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(await retry(wf.steps.b!)).toEqual({ kind: 'missing' });
    expect(await stored(wf)).toEqual(GONE);
  } finally {
    await api.server.stop();
  }
});

it('a retry under way (its step held, the workflow not reopened yet) keeps the workflow whole; it then resumes with every step', async () => {
  const wf = await workflow('failed', 31 * DAY);
  // The retry stops at the workflow's advisory lock, which its trigger takes after it locked and
  // queued b and before it reopens c and the workflow's row.
  const holder = await connect();
  await holder.query('BEGIN');
  await holder.query('SELECT workflow_lock($1)', [wf.id]);
  const retried = retry(wf.steps.b!);
  await waitFor(async () => (await lockWaiters()) >= 1, 10_000, 'the retry waiting for the workflow lock');

  // The sweep neither waits for the retry nor deletes any of the workflow under it.
  const s = sweeper();
  const res = await Promise.race([s.runOnce(), new Promise<'waited'>((r) => setTimeout(() => r('waited'), 5000).unref())]);
  expect(await stored(wf)).toEqual({ workflow: 'failed', steps: 3, runs: 2, edges: 2 });
  expect(res).toMatchObject({ workflows: 0, deleted: { succeeded: 0, dead: 0, cancelled: 0 } });

  await holder.query('COMMIT');
  expect(await retried).toEqual({ kind: 'retried', from: 'dead' });
  expect(await stored(wf)).toEqual({ workflow: 'running', steps: 3, runs: 2, edges: 2 });
  expect((await taskStatus(stack.pool, wf.steps.b!)).status).toBe('queued');
  expect((await taskStatus(stack.pool, wf.steps.c!)).status).toBe('waiting');
  // Running again: later passes leave it alone, however old its steps.
  expect(await s.runOnce()).toMatchObject({ workflows: 0, deleted: { succeeded: 0, dead: 0, cancelled: 0 } });
  expect((await stored(wf)).steps).toBe(3);
});

it('a retry that comes while the sweep holds the workflow waits for it and finds the step gone (404), not half a workflow', async () => {
  const wf = await workflow('failed', 31 * DAY);
  // The sweep's statement, having locked the workflow, waits at the end for a run of a it deletes.
  const holder = await connect();
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM task_runs WHERE task_id = $1 FOR UPDATE', [wf.steps.a]);
  const swept = sweeper().runOnce();
  await waitFor(async () => (await lockWaiters()) >= 1, 10_000, 'the sweep waiting for the run');

  let settled = false;
  const retried = retry(wf.steps.b!).finally(() => (settled = true));
  // The retry waits for b's row, which the sweep holds (before the fix it did not wait, and
  // resumed the workflow while a was being deleted).
  await waitFor(async () => settled || (await lockWaiters()) >= 2, 10_000, 'the retry waiting, or done');
  await holder.query('COMMIT');
  const [outcome, res] = await Promise.all([retried, swept]);
  expect(outcome).toEqual({ kind: 'missing' });
  expect(res).toMatchObject({ workflows: 1, deleted: { succeeded: 1, dead: 1, cancelled: 1 } });
  expect(await stored(wf)).toEqual(GONE);
});

it('a sweep whose snapshot predates a retry’s commit deletes none of the workflow the retry reopened', async () => {
  const wf = await workflow('failed', 31 * DAY);
  // Each statement of the pass runs in a transaction whose snapshot was taken before the retry
  // committed (REPEATABLE READ), and commits: the race of a statement that started just before.
  const old = await Promise.all(Array.from({ length: 6 }, async () => {
    const c = await connect();
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await c.query('SELECT 1');
    return c;
  }));
  expect(await retry(wf.steps.b!)).toEqual({ kind: 'retried', from: 'dead' });
  const stale = {
    async query(...args: Parameters<Client['query']>) {
      const c = old.shift()!;
      try {
        const r = await (c.query as (...a: unknown[]) => Promise<unknown>)(...args);
        await c.query('COMMIT');
        return r;
      } catch (err) {
        await c.query('ROLLBACK');
        throw err;
      }
    },
    // A batch that may purge Redis runs in a transaction: one of those begun before the retry.
    async connect() {
      const c = old.shift()!;
      const query = (...a: unknown[]) => (a[0] === 'BEGIN' ? Promise.resolve() : (c.query as (...b: unknown[]) => Promise<unknown>)(...a));
      return { query, release: () => undefined };
    },
  } as unknown as Pool;
  // Locking the reopened workflow's row fails in that snapshot (could not serialize); under READ
  // COMMITTED Postgres reads the row's newest version instead, and finds it running.
  const ran = await sweeper({}, stale).runOnce().then(() => 'ran', (err: { code?: string }) => err.code);
  expect(await stored(wf)).toEqual({ workflow: 'running', steps: 3, runs: 2, edges: 2 });
  expect(ran).toBe('40001');
});

it('an unfinished workflow keeps every step, however old and whatever the settings; a finished one goes at its due time', async () => {
  const running = await workflow('running', 365 * DAY);
  const failedRecently = await workflow('failed', 8 * DAY);
  const succeededLongAgo = await workflow('succeeded', 8 * DAY);
  const failedLongAgo = await workflow('failed', 31 * DAY);
  const res = await pass();
  // Running: a, which succeeded a year ago, stays; so does the failed workflow's a, past its own 7 days.
  expect(await stored(running)).toMatchObject({ workflow: 'running', steps: 3, edges: 2 });
  expect(await stored(failedRecently)).toEqual({ workflow: 'failed', steps: 3, runs: 2, edges: 2 });
  expect(await stored(succeededLongAgo)).toEqual(GONE);
  expect(await stored(failedLongAgo)).toEqual(GONE);
  expect(res).toMatchObject({ workflows: 2, deleted: { succeeded: 4, dead: 1, cancelled: 1 } });
  // The failed workflow kept resumes whole: its dead step retried, c waits for it with a's result at hand.
  expect(await retry(failedRecently.steps.b!)).toEqual({ kind: 'retried', from: 'dead' });
  expect((await taskStatus(stack.pool, failedRecently.steps.c!)).status).toBe('waiting');
  // Even with every retention at a minute, neither running workflow loses anything.
  expect(await pass({ policy: { succeeded: 60_000, dead: 60_000, cancelled: 60_000 } })).toMatchObject({ workflows: 0 });
  expect(await stored(running)).toMatchObject({ workflow: 'running', steps: 3, edges: 2 });
  expect(await stored(failedRecently)).toEqual({ workflow: 'running', steps: 3, runs: 2, edges: 2 });
});

it('a workflow left without some steps (by the retention before migration 0022, or by hand) cannot be resumed (409); retention then deletes the rest whole', async () => {
  const wf = await workflow('failed', 31 * DAY);
  await stack.pool.query('DELETE FROM tasks WHERE id = $1', [wf.steps.a]);
  expect(await stored(wf)).toEqual({ workflow: 'failed', steps: 2, runs: 1, edges: 1 });
  const api = await startApi(stack);
  try {
    const res = await fetch(`${api.url}/tasks/${wf.steps.b}/retry`, { method: 'POST' });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { detail: string }).detail).toBe(`task ${wf.steps.b} is a step of workflow ${wf.id}, of which only 2 of 3 steps are stored (the others were deleted); it cannot be resumed`);
  } finally {
    await api.server.stop();
  }
  expect(await retry(wf.steps.b!)).toEqual({ kind: 'incomplete_workflow', workflowId: wf.id, stored: 2, steps: 3 });
  expect((await taskStatus(stack.pool, wf.steps.b!)).status).toBe('dead');
  expect(await pass()).toMatchObject({ workflows: 1, deleted: { succeeded: 0, dead: 1, cancelled: 1 } });
  expect(await stored(wf)).toEqual(GONE);
});

describe('when a finished workflow is due', () => {
  it('succeeded: after the succeeded setting; failed or cancelled: after the longest setting, so none of its steps goes before its own', async () => {
    const policy = { succeeded: 40 * DAY, dead: 10 * DAY, cancelled: 20 * DAY };
    const succeeded = [await workflow('succeeded', 39 * DAY), await workflow('succeeded', 41 * DAY)];
    const failed = [await workflow('failed', 39 * DAY), await workflow('failed', 41 * DAY)];
    // Cancelled by an operator after a succeeded: b and c are cancelled.
    const cancelled = await workflow('running', 0);
    await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, 'default', cancelled.id);
    await stack.pool.query(`UPDATE tasks SET finished_at = now() - interval '41 days' WHERE workflow_id = $1`, [cancelled.id]);
    await stack.pool.query(`UPDATE workflows SET finished_at = now() - interval '41 days' WHERE id = $1`, [cancelled.id]);
    expect((await stored(cancelled)).workflow).toBe('cancelled');

    expect(await pass({ policy })).toMatchObject({ workflows: 3 });
    expect((await stored(succeeded[0]!)).steps).toBe(3);
    expect(await stored(succeeded[1]!)).toEqual(GONE);
    expect((await stored(failed[0]!)).steps).toBe(3);
    expect(await stored(failed[1]!)).toEqual(GONE);
    expect(await stored(cancelled)).toEqual(GONE);
  });

  it('0 in any setting keeps failed and cancelled workflows forever; succeeded ones still go', async () => {
    const failed = await workflow('failed', 400 * DAY);
    const succeeded = await workflow('succeeded', 400 * DAY);
    await pass({ policy: { succeeded: 7 * DAY, dead: 30 * DAY, cancelled: 0 } });
    expect((await stored(failed)).steps).toBe(3);
    expect(await stored(succeeded)).toEqual(GONE);
    // Succeeded kept forever: so is every workflow, and the workflows' batch is not even run.
    const res = await pass({ policy: { succeeded: 0, dead: 30 * DAY, cancelled: 30 * DAY } });
    expect(res).toMatchObject({ workflows: 0, batches: 2 });
    expect((await stored(failed)).steps).toBe(3);
  });

  it('batches are bounded by steps, whole workflows only: the oldest goes even when bigger than a batch', async () => {
    const wfs = [await workflow('succeeded', 12 * DAY), await workflow('succeeded', 11 * DAY), await workflow('succeeded', 10 * DAY)];
    // 3 steps each, 4 a batch: one workflow a batch, oldest first.
    const first = await pass({ batch: 4, maxBatches: 1 });
    expect(first).toMatchObject({ workflows: 1, deleted: { succeeded: 3 }, cut: true });
    expect(await stored(wfs[0]!)).toEqual(GONE);
    expect((await stored(wfs[1]!)).steps).toBe(3);
    // 2 a batch: each 3-step workflow still goes whole, one a batch.
    const rest = await pass({ batch: 2 });
    expect(rest).toMatchObject({ workflows: 2, deleted: { succeeded: 6 }, cut: false });
    expect(await stored(wfs[1]!)).toEqual(GONE);
    expect(await stored(wfs[2]!)).toEqual(GONE);
  });
});

it('a finished workflow submitted with an Idempotency-Key stays while the key is live: a replay answers with it instead of running it again', async () => {
  // Retention shorter than the key's life (IDEMPOTENCY_TTL_MS is 24 h by default, up to 31 days).
  const policy: RetentionPolicy = { succeeded: 60_000, dead: 60_000, cancelled: 60_000 };
  const idem = { key: 'etl-2026-12-07', hash: 'h1' };
  const spec = { name: 'r', on_failure: 'continue' as const, steps: [step('a')] };
  const out = await createWorkflow({ ...deps(), idempotencyTtlMs: DAY }, 'default', spec, idem);
  if (out.kind !== 'created') throw new Error(out.kind);
  await stack.pool.query(`UPDATE tasks SET status = 'succeeded', finished_at = now() - interval '2 hours' WHERE workflow_id = $1`, [out.workflow.id]);
  await stack.pool.query(`UPDATE workflows SET finished_at = now() - interval '2 hours' WHERE id = $1`, [out.workflow.id]);
  await pass({ policy });
  const again = await createWorkflow({ ...deps(), idempotencyTtlMs: DAY }, 'default', spec, idem);
  expect(again).toMatchObject({ kind: 'replayed', workflow: { id: out.workflow.id, status: 'succeeded' } });
  // Once the key has expired, the workflow goes like any other.
  await stack.pool.query(`UPDATE workflows SET idempotency_expires_at = now() - interval '1 second' WHERE id = $1`, [out.workflow.id]);
  await pass({ policy });
  expect((await stack.pool.query('SELECT 1 FROM workflows WHERE id = $1', [out.workflow.id])).rowCount).toBe(0);
});

it('a keyed workflow without a key expiry (written before migration 0025, or by the previous release during the upgrade) stays while its key may be live: for the longest key life, 31 days', async () => {
  const policy: RetentionPolicy = { succeeded: 60_000, dead: 60_000, cancelled: 60_000 };
  const idem = { key: 'etl-2026-12-06', hash: 'h1' };
  const spec = { name: 'r', on_failure: 'continue' as const, steps: [step('a')] };
  const out = await createWorkflow({ ...deps(), idempotencyTtlMs: DAY }, 'default', spec, idem);
  if (out.kind !== 'created') throw new Error(out.kind);
  // As that release wrote it: no idempotency_expires_at, its key's life (IDEMPOTENCY_TTL_MS, 24 h
  // by default, up to 31 days) known only to the api that took it.
  await stack.pool.query(`UPDATE tasks SET status = 'succeeded', finished_at = now() - interval '2 hours' WHERE workflow_id = $1`, [out.workflow.id]);
  await stack.pool.query(`UPDATE workflows SET finished_at = now() - interval '2 hours', created_at = now() - interval '3 hours', idempotency_expires_at = NULL WHERE id = $1`, [out.workflow.id]);
  await pass({ policy });
  // Deleted by its status's age alone, a repeat within the key's life ran the workflow again.
  const again = await createWorkflow({ ...deps(), idempotencyTtlMs: DAY }, 'default', spec, idem);
  expect(again).toMatchObject({ kind: 'replayed', workflow: { id: out.workflow.id } });
  // Past the longest key life it goes like any other.
  await stack.pool.query(`UPDATE workflows SET created_at = now() - interval '32 days' WHERE id = $1`, [out.workflow.id]);
  await pass({ policy });
  expect((await stack.pool.query('SELECT 1 FROM workflows WHERE id = $1', [out.workflow.id])).rowCount).toBe(0);
});
