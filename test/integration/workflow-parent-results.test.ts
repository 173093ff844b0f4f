/**
 * What carrying a fan-in's parent results costs is bounded by the settings, not by what the parents
 * returned: inline with the step's message up to INLINE_PARENTS_BYTES (decided by
 * workflow_released_parents, migration 0021), read when it is leased up to
 * WORKFLOW_PARENT_RESULTS_MAX_BYTES (services/worker/parent-results.ts), past which the attempt
 * fails with ParentResultsTooLarge. Real Postgres and Redis, in-process workers.
 */
import { type TaskContext, withDefaults } from '../../services/worker/handlers';
import type { Worker } from '../../services/worker/worker';
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import type { StepSpec } from '../../services/core/workflows/workflow';
import { INLINE_PARENTS_BYTES } from '../../services/core/workflows/queued-here';
import { createWorkflow, getWorkflow } from '../../services/core/workflows/workflow-store';
import { ParentResults, ParentResultsTooLarge } from '../../services/worker/parent-results';
import { createStack, silentLog, Stack, startWorker, waitFor } from '../support/stack';

const TENANT = 'default';
/** About 4 KiB of JSON per parent: 300 of them are far past the inline limit. */
const PAD = 'x'.repeat(4000);
let stack: Stack;
let worker: Worker | undefined;

afterEach(async () => {
  await worker?.stop(0);
  worker = undefined;
  await stack?.close();
});

function step(key: string, depends_on: string[] = [], type = 'padded'): StepSpec {
  return { key, type, payload: { key }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null, depends_on };
}

async function submit(steps: StepSpec[]) {
  const out = await createWorkflow({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, { name: 'fan-in', on_failure: 'continue', steps }, null);
  if (out.kind !== 'created') throw new Error(out.kind);
  return out;
}

/**
 * Runs 300 parents returning ~4 KiB each and their fan-in; returns the parents the fan-in's handler
 * got (if it ran). `parentless`: the fan-in's handler says it never reads them (`parents: false`).
 */
async function fanIn300(maxBytes: number, parentless = false) {
  stack = await createStack({ POLL_INTERVAL_MS: 50, WORKFLOW_PARENT_RESULTS_MAX_BYTES: maxBytes });
  let got: Record<string, unknown> | undefined;
  let ran = false;
  const gather = async (ctx: TaskContext) => {
    ran = true;
    got = ctx.parents;
    return { parents: Object.keys(ctx.parents ?? {}).length };
  };
  ({ worker } = startWorker(stack, {
    handlers: {
      padded: async (ctx: TaskContext) => ({ key: (ctx.payload as { key: string }).key, pad: PAD }),
      gather: parentless ? withDefaults(gather, { parents: false }) : gather,
    },
  }));
  const parents = Array.from({ length: 300 }, (_, i) => step(`p${i}`));
  const wf = await submit([...parents, step('sink', parents.map((p) => p.key), 'gather')]);
  const w = await waitFor(async () => {
    const w = await getWorkflow(stack.pool, TENANT, wf.workflow.id);
    return w && w.workflow.status !== 'running' ? w : null;
  }, 30_000, 'the workflow to finish');
  const { rows: runs } = await stack.pool.query<{ step_key: string; outcome: string; error: string | null; error_type: string | null }>(
    `SELECT t.step_key, r.outcome, r.error, r.error_type FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE t.workflow_id = $1`,
    [wf.workflow.id],
  );
  return { w, got, ran, parents, runs };
}

it('a fan-in of 300 parents of ~4 KiB each, within WORKFLOW_PARENT_RESULTS_MAX_BYTES: its handler gets every parent’s result', async () => {
  const { w, got, parents, runs } = await fanIn300(2 * 1048576);
  expect(w.workflow).toMatchObject({ status: 'succeeded', failed: 0 });
  expect(got).toEqual(Object.fromEntries(parents.map((p) => [p.key, { key: p.key, pad: PAD }])));
  expect(runs.filter((r) => r.outcome !== 'succeeded')).toEqual([]);
  expect(runs).toHaveLength(301);
});

it('a fan-in of 300 parents of ~4 KiB each, past WORKFLOW_PARENT_RESULTS_MAX_BYTES: the attempt fails with ParentResultsTooLarge, measured only up to the bound', async () => {
  const max = 65536;
  const { w, got, runs } = await fanIn300(max);
  expect(got && Object.keys(got)).toBeUndefined();
  // Every parent's success was stored (none refused as UnstorableOutcome); the fan-in's attempt failed.
  expect(runs.filter((r) => r.step_key !== 'sink').every((r) => r.outcome === 'succeeded')).toBe(true);
  const sink = runs.filter((r) => r.step_key === 'sink');
  expect(sink).toEqual([expect.objectContaining({ outcome: 'failed', error_type: 'ParentResultsTooLarge' })]);
  // The reading stopped at the first parent past the bound: the total it reports is within one result of it.
  const counted = Number(/(\d+) bytes/.exec(sink[0]!.error!)![1]);
  expect(counted).toBeGreaterThan(max);
  expect(counted).toBeLessThanOrEqual(max + PAD.length + 100);
  expect(w.workflow).toMatchObject({ status: 'failed', failed: 1 });
});

it('a fan-in whose handler never reads its parents (`parents: false`) runs without them, however far past WORKFLOW_PARENT_RESULTS_MAX_BYTES they are', async () => {
  const { w, got, ran, runs } = await fanIn300(65536, true);
  expect(ran).toBe(true);
  expect(got).toBeUndefined();
  expect(runs.filter((r) => r.outcome !== 'succeeded')).toEqual([]);
  expect(runs).toHaveLength(301);
  expect(w.workflow).toMatchObject({ status: 'succeeded', failed: 0 });
});

it('a fan-in whose parents’ results add up past the jsonb maximum: its last parent’s success is recorded, and reading them stops at the bound', async () => {
  // 4,100 parents of 64 KiB: 262 MB of results (compressible, so quick to write). Building the
  // object of all of them in the outcome statement failed (54000) on every try.
  stack = await createStack();
  const n = 4100;
  const parents = Array.from({ length: n }, (_, i) => step(`p${i}`));
  const wf = await submit([...parents, step('sink', parents.map((p) => p.key))]);
  const ids = wf.steps.slice(0, n).map((s) => s.task_id);
  const ok = (id: string, result: string | null = null) => ({
    id, token: `${id}:t`, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0, step: true, result,
  });
  for (let i = 0; i < n - 1; i += 500) await recordOutcomes(stack.pool, ids.slice(i, Math.min(i + 500, n - 1)).map((id) => ok(id)));
  await stack.pool.query(`UPDATE tasks SET result = jsonb_build_object('s', repeat('x', 65500)) WHERE id = ANY($1::uuid[])`, [ids.slice(0, n - 1)]);

  const last = await recordOutcomes(stack.pool, [ok(ids[n - 1]!, JSON.stringify({ s: 'x'.repeat(65500) }))]);
  expect(last.applied).toEqual(new Set([ids[n - 1]]));
  // Released, without its parents inline: its worker reads them.
  expect(last.released.map((r) => [r.stepKey, r.parentsJson])).toEqual([['sink', undefined]]);

  const max = 1048576;
  const err = await new ParentResults(stack.pool, max).load(wf.steps[n]!.task_id).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ParentResultsTooLarge);
  const counted = Number(/(\d+) bytes/.exec((err as Error).message)![1]);
  expect(counted).toBeGreaterThan(max);
  expect(counted).toBeLessThanOrEqual(max + 65536);
});

it('inline parents: exactly up to the limit, counted as the object’s JSON text; past it, none', async () => {
  stack = await createStack();
  const wf = await submit([step('left'), step('right'), step('load', ['left', 'right'])]);
  const [left, , load] = wf.steps.map((s) => s.task_id);
  const parents = { left: { s: 'é'.repeat(10), n: [1, 2.5] }, right: null };
  await stack.pool.query(`UPDATE tasks SET result = $2::jsonb WHERE id = $1`, [left, JSON.stringify(parents.left)]);
  // The size of the text Postgres prints for the object (keys in any order: the same size).
  const { rows } = await stack.pool.query<{ text: string }>(`SELECT $1::jsonb::text AS text`, [JSON.stringify(parents)]);
  const bytes = Buffer.byteLength(rows[0]!.text);
  const inline = async (max: number) => {
    const { rows } = await stack.pool.query<{ parents_json: string | null }>(`SELECT parents_json FROM workflow_released_parents(ARRAY[$1::uuid], $2)`, [load, max]);
    return rows.map((r) => (r.parents_json === null ? null : { bytes: Buffer.byteLength(r.parents_json), parents: JSON.parse(r.parents_json) as unknown }));
  };
  expect(await inline(bytes)).toEqual([{ bytes, parents }]);
  expect(await inline(bytes - 1)).toEqual([null]);
  expect(await inline(INLINE_PARENTS_BYTES)).toEqual([{ bytes, parents }]);
});

it('WORKFLOW_PARENT_RESULTS_MAX_BYTES below the inline limit holds for steps released with their parents inline too', async () => {
  // Two parents of ~1.5 KiB: 3 KiB in all, within INLINE_PARENTS_BYTES but past a bound of 2 KiB.
  stack = await createStack({ POLL_INTERVAL_MS: 50, WORKFLOW_PARENT_RESULTS_MAX_BYTES: 2048 });
  let got: Record<string, unknown> | undefined;
  ({ worker } = startWorker(stack, {
    handlers: {
      padded: async (ctx: TaskContext) => ({ key: (ctx.payload as { key: string }).key, pad: 'y'.repeat(1500) }),
      gather: async (ctx: TaskContext) => {
        got = ctx.parents;
        return null;
      },
    },
  }));
  const wf = await submit([step('a'), step('b'), step('sink', ['a', 'b'], 'gather')]);
  const w = await waitFor(async () => {
    const w = await getWorkflow(stack.pool, TENANT, wf.workflow.id);
    return w && w.workflow.status !== 'running' ? w : null;
  }, 30_000, 'the workflow to finish');
  // As when the step is read from Postgres (a reconciler's push carries no parents): too large.
  expect(got && Object.keys(got)).toBeUndefined();
  const sink = w.steps.find((s) => s.key === 'sink')!;
  expect(sink.status).toBe('dead');
  expect(sink.last_error).toMatch(/WORKFLOW_PARENT_RESULTS_MAX_BYTES \(2048\)/);
});

it('a read of the parents that fails (its connection lost) is tried again, not charged to the step as a failed attempt', async () => {
  // A bound below the inline limit: the step's parents are read from Postgres when it starts.
  stack = await createStack({ POLL_INTERVAL_MS: 50, WORKFLOW_PARENT_RESULTS_MAX_BYTES: 2048 });
  const wf = await submit([step('a'), step('sink', ['a'], 'gather')]);
  // a succeeds (written as its worker would), which queues sink.
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w0' });
  expect(lease!.message.stepKey).toBe('a');
  const written = await recordOutcomes(stack.pool, [{ id: lease!.message.id, token: lease!.token, attempt: lease!.attempt, workerId: 'w0', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0, result: '{"a":1}', step: true }]);
  await stack.queue.finish([{ id: lease!.message.id, token: lease!.token, priority: 'default', outcome: 'succeeded', settleAttempts: 1 }]);
  await stack.queue.enqueue(written.released);
  // The read of sink's parents waits behind a lock, and its connection is then lost.
  const blocker = await stack.pool.connect();
  let got: Record<string, unknown> | undefined;
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE workflow_edges IN ACCESS EXCLUSIVE MODE');
    ({ worker } = startWorker(stack, {
      handlers: {
        gather: async (ctx: TaskContext) => {
          got = ctx.parents;
          return null;
        },
      },
    }));
    const pid = await waitFor(async () => {
      const { rows } = await stack.pool.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%unnest($1::uuid[]) c(child)%'`);
      return rows[0]?.pid ?? null;
    }, 10_000, 'the parents’ read waiting');
    await stack.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    await blocker.query('ROLLBACK');
    blocker.release();
  }
  const w = await waitFor(async () => {
    const w = await getWorkflow(stack.pool, TENANT, wf.workflow.id);
    return w && w.workflow.status !== 'running' ? w : null;
  }, 30_000, 'the workflow to finish');
  expect(w.steps.find((s) => s.key === 'sink')).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect(got).toEqual({ a: { a: 1 } });
});
