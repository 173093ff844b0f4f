/**
 * Workflows against real Postgres and Redis with in-process workers: results flow along a diamond;
 * a wide fan-out/fan-in whose fan-in runs exactly once (also with two workers finishing parents at
 * once); each failure policy; resuming by retrying a dead step; cancelling a workflow; Redis
 * losing its data mid-workflow (the reconciler queues the lost steps again).
 */
import type { TaskContext } from '../../services/worker/handlers';
import type { Worker } from '../../services/worker/worker';
import { cancelTasks } from '../../services/core/operator/cancel-tasks';
import { markRunning, recordOutcomes } from '../../services/core/tasks/attempt-store';
import { retryTasks } from '../../services/core/operator/retry-tasks';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { WorkflowStats } from '../../services/worker/workflow-stats';
import type { StepSpec, WorkflowSpec } from '../../services/core/workflows/workflow';
import { cancelWorkflow, createWorkflow, getWorkflow } from '../../services/core/workflows/workflow-store';
import { stopAfterFailedSteps, stopFailedWorkflows } from '../../services/core/workflows/stop-on-failure';
import { Reaper } from '../../services/worker/reaper';
import { Reconciler } from '../../services/worker/reconciler';
import { clusterMode } from '../support/cluster-mode';
import { createStack, silentLog, Stack, startWorker, waitFor } from '../support/stack';

const TENANT = 'default';
let stack: Stack;
let workers: Worker[] = [];
const runs = new Map<string, number>();
/** The abort signal of each step's latest run: a test waits for the worker to stop a run it cancelled. */
const signals = new Map<string, AbortSignal>();
let hold: Promise<void> = Promise.resolve();

/** Waits until the worker has stopped the running steps `keys` (their cancel reached it). */
const stopped = (...keys: string[]) => waitFor(async () => keys.every((k) => signals.get(k)?.aborted) || null, 10_000, `the worker to stop ${keys.join(', ')}`);

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
  await stack?.close();
  runs.clear();
  signals.clear();
});

async function setUp(overrides: Record<string, string | number> = {}, count = 1): Promise<void> {
  stack = await createStack({ RETRY_SCAN_INTERVAL_MS: 100, POLL_INTERVAL_MS: 50, RETRY_BASE_MS: 10, RETRY_JITTER_MS: 0, ...overrides });
  for (let i = 0; i < count; i++) addWorker();
}

/** Another worker on the stack, with the test handlers. */
function addWorker(): void {
  const { worker } = startWorker(stack, {
    handlers: {
      // Counts runs per step key; waits for `hold` (so a test can line steps up).
      // Fails (and is retried) once `hold` lets it, counted like `count`.
      fail_held: async (ctx: TaskContext) => {
        const key = (ctx.payload as { key: string }).key;
        runs.set(key, (runs.get(key) ?? 0) + 1);
        await hold;
        throw new Error('planned failure');
      },
      count: async (ctx: TaskContext) => {
        const key = (ctx.payload as { key: string }).key;
        runs.set(key, (runs.get(key) ?? 0) + 1);
        signals.set(key, ctx.signal);
        await hold;
        return { key, parents: Object.keys(ctx.parents ?? {}).length };
      },
    },
  });
  workers.push(worker);
}

/** The stack without workers: the test writes the steps' outcomes itself. */
async function setUpWithoutWorkers(overrides: Record<string, string | number> = {}): Promise<void> {
  await setUp(overrides);
  await Promise.all(workers.map((w) => w.stop(0)));
  workers = [];
}

function step(key: string, depends_on: string[] = [], over: Partial<StepSpec> = {}): StepSpec {
  return { key, type: 'count', payload: { key }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null, depends_on, ...over };
}

async function submit(steps: StepSpec[], on_failure: WorkflowSpec['on_failure'] = 'cancel_dependents') {
  const out = await createWorkflow({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, { name: 'test', on_failure, steps }, null);
  if (out.kind !== 'created') throw new Error(out.kind);
  return out;
}

async function finished(id: string) {
  return waitFor(async () => {
    const w = await getWorkflow(stack.pool, TENANT, id);
    return w && w.workflow.status !== 'running' ? w : null;
  }, 20_000, `workflow ${id} to finish`);
}

const byKey = (w: NonNullable<Awaited<ReturnType<typeof getWorkflow>>>) => new Map(w.steps.map((s) => [s.key, s]));

async function resultOf(taskId: string): Promise<unknown> {
  const { rows } = await stack.pool.query<{ result: unknown }>('SELECT result FROM tasks WHERE id = $1', [taskId]);
  return rows[0]!.result;
}

it('a diamond: each step runs once after its dependencies, and echo passes their results along', async () => {
  await setUp();
  const echo = (key: string, deps: string[] = []) => step(key, deps, { type: 'echo', payload: { n: key } });
  const wf = await submit([echo('extract'), echo('left', ['extract']), echo('right', ['extract']), echo('load', ['left', 'right'])]);
  expect(wf.steps.map((s) => s.key)).toEqual(['extract', 'left', 'right', 'load']);
  const w = await finished(wf.workflow.id);
  expect(w.workflow).toMatchObject({ status: 'succeeded', unfinished: 0, failed: 0 });
  const steps = byKey(w);
  expect(steps.get('load')!.depends_on).toEqual(['left', 'right']);
  const extract = { payload: { n: 'extract' }, parents: {} };
  const left = { payload: { n: 'left' }, parents: { extract } };
  const right = { payload: { n: 'right' }, parents: { extract } };
  expect(await resultOf(steps.get('load')!.task_id)).toEqual({ payload: { n: 'load' }, parents: { left, right } });
  // Each started only after its dependencies finished.
  const at = (k: string) => steps.get(k)!;
  expect(at('left').first_started_at!.getTime()).toBeGreaterThanOrEqual(at('extract').finished_at!.getTime());
  expect(at('load').first_started_at!.getTime()).toBeGreaterThanOrEqual(Math.max(at('left').finished_at!.getTime(), at('right').finished_at!.getTime()));
});

it('fan-out 1 -> 300 -> fan-in 1 across two workers: the fan-in runs exactly once, after every parent', async () => {
  await setUp({}, 2);
  const middle = Array.from({ length: 300 }, (_, i) => step(`m${i}`, ['root']));
  const wf = await submit([step('root'), ...middle, step('sink', middle.map((m) => m.key))]);
  const w = await finished(wf.workflow.id);
  expect(w.workflow.status).toBe('succeeded');
  expect(runs.get('sink')).toBe(1);
  expect(runs.size).toBe(302);
  expect([...runs.values()].every((n) => n === 1)).toBe(true);
  const sink = byKey(w).get('sink')!;
  expect(await resultOf(sink.task_id)).toEqual({ key: 'sink', parents: 300 });
  const lastParent = Math.max(...w.steps.filter((s) => s.key.startsWith('m')).map((s) => s.finished_at!.getTime()));
  expect(sink.first_started_at!.getTime()).toBeGreaterThanOrEqual(lastParent);
});

it('parents finishing in concurrent transactions queue their dependent exactly once (the row lock)', async () => {
  await setUpWithoutWorkers();
  const parents = Array.from({ length: 40 }, (_, i) => step(`p${i}`));
  const wf = await submit([...parents, step('join', parents.map((p) => p.key))]);
  // Each parent succeeds in its own transaction, all at once.
  await Promise.all(
    wf.steps.slice(0, 40).map(async (s) => {
      const c = await stack.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(`UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE id = $1`, [s.task_id]);
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    }),
  );
  const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
  expect(w.get('join')).toMatchObject({ status: 'queued', deps_waiting: 0 });
});

it('workers writing parents’ successes in concurrent batches: exactly one batch returns the dependent, carrying every parent’s result', async () => {
  await setUpWithoutWorkers();
  const parents = Array.from({ length: 40 }, (_, i) => step(`p${i}`));
  const wf = await submit([...parents, step('join', parents.map((p) => p.key))]);
  const success = (s: { key: string; task_id: string }) => ({
    id: s.task_id, token: `${s.task_id}:t`, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1,
    error: null, dead: false, delayMs: 0, step: true, result: JSON.stringify({ from: s.key }),
  });
  // Eight batches of five, each one statement, all at once: the last to lock the join releases it,
  // and reads every parent's result after it got the lock (the others committed meanwhile).
  const batches = Array.from({ length: 8 }, (_, b) => wf.steps.slice(b * 5, b * 5 + 5).map(success));
  const writes = await Promise.all(batches.map((batch) => recordOutcomes(stack.pool, batch)));
  const released = writes.flatMap((w) => w.released);
  expect(writes.map((w) => w.applied.size)).toEqual(batches.map((b) => b.length));
  expect(released.map((r) => r.stepKey)).toEqual(['join']);
  expect(JSON.parse(released[0]!.parentsJson!)).toEqual(Object.fromEntries(parents.map((p) => [p.key, { from: p.key }])));
  const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
  expect(w.get('join')).toMatchObject({ status: 'queued', deps_waiting: 0 });
});

it('one batch with a success and a death (cancel_dependents): the success releases its dependent first; the death cancels what still waits', async () => {
  await setUpWithoutWorkers();
  const wf = await submit([step('a'), step('b'), step('c', ['a']), step('d', ['b']), step('e', ['c'])]);
  const id = (key: string) => wf.steps.find((s) => s.key === key)!.task_id;
  const base = { attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, delayMs: 0, step: true };
  const write = await recordOutcomes(stack.pool, [
    { ...base, id: id('a'), token: 'a:t', error: null, dead: false, result: JSON.stringify({ rows: 1 }) },
    { ...base, id: id('b'), token: 'b:t', error: 'boom', dead: true },
  ]);
  expect(write.released.map((r) => [r.stepKey, JSON.parse(r.parentsJson!)])).toEqual([['c', { a: { rows: 1 } }]]);
  const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
  expect([...w].map(([k, s]) => [k, s.status])).toEqual([['a', 'succeeded'], ['b', 'dead'], ['c', 'queued'], ['d', 'cancelled'], ['e', 'cancelled']]);
});

it('a batch with a success and a death, while another failure of the workflow is written: no deadlock (both take the workflow lock first)', async () => {
  await setUpWithoutWorkers();
  const wf = await submit([step('s'), step('f1'), step('f2'), step('c', ['s'])]);
  const id = (key: string) => wf.steps.find((x) => x.key === key)!.task_id;
  const base = { attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, delayMs: 0, step: true, result: null };
  const other = await stack.pool.connect();
  try {
    // Another writer of a failure holds the workflow's lock …
    await other.query('BEGIN');
    await other.query('SELECT workflow_lock($1)', [wf.workflow.id]);
    // … while a worker writes s's success (which releases c) and f1's death in one batch …
    const batch = recordOutcomes(stack.pool, [
      { ...base, id: id('s'), token: `${id('s')}:t`, error: null, dead: false },
      { ...base, id: id('f1'), token: `${id('f1')}:t`, error: 'boom', dead: true },
    ]);
    await waitFor(async () => ((await stack.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rowCount ? true : null), 10_000, 'the batch waiting');
    // … and the other writer's failure cancels what waits: c, unless the batch holds it.
    await other.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [id('f2')]);
    await other.query('COMMIT');
    const write = await batch;
    expect([...write.applied].sort()).toEqual([id('s'), id('f1')].sort());
    expect(write.released).toEqual([]);
  } finally {
    other.release();
  }
  const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
  expect(byKey(w).get('c')).toMatchObject({ status: 'cancelled', cancelled_by: 'f2' });
  expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
});

describe('an operator retrying a dead step while another dependency of its dependent ends', () => {
  // x dies and cancels c (c depends on x and p, on_failure continue); then x is retried while p's
  // outcome is written. The retry makes c wait again, counting the dependencies not succeeded; p's
  // success counts down (its death cancels) only steps it sees waiting. Each must see the other's
  // write, whichever commits first, or c waits forever and the workflow never ends.
  const base = { workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, delayMs: 0, step: true, dead: false, result: null };
  const ok = (id: string, attempt: number) => ({ ...base, id, token: `${id}:${attempt}`, attempt, error: null });
  const dies = (id: string, attempt: number) => ({ ...ok(id, attempt), error: 'boom', dead: true });
  async function xDeadPRunning() {
    await setUpWithoutWorkers();
    const wf = await submit([step('x'), step('p'), step('c', ['x', 'p'])], 'continue');
    const id = (key: string) => wf.steps.find((s) => s.key === key)!.task_id;
    await recordOutcomes(stack.pool, [dies(id('x'), 1)]);
    expect(byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!).get('c')!.status).toBe('cancelled');
    return { wf, id };
  }
  /** After x's retry succeeds: c ran (p succeeded) or stayed cancelled (p died), and the workflow ended. */
  async function expectEnd(wfId: string, id: (key: string) => string, pSucceeded: boolean) {
    const c = byKey((await getWorkflow(stack.pool, TENANT, wfId))!).get('c')!;
    expect(c).toMatchObject(pSucceeded ? { status: 'waiting', deps_waiting: 1 } : { status: 'cancelled', cancelled_by: 'p' });
    const write = await recordOutcomes(stack.pool, [ok(id('x'), 2)]);
    expect(write.released.map((r) => r.stepKey)).toEqual(pSucceeded ? ['c'] : []);
    if (pSucceeded) await recordOutcomes(stack.pool, [ok(id('c'), 1)]);
    const w = await getWorkflow(stack.pool, TENANT, wfId);
    expect(w!.workflow).toMatchObject(pSucceeded ? { status: 'succeeded', unfinished: 0, failed: 0 } : { status: 'failed', unfinished: 0, failed: 2 });
  }

  for (const [what, outcome] of [['succeeds', ok], ['dies', dies]] as const) {
    it(`p ${what}; the retry commits last`, async () => {
      const { wf, id } = await xDeadPRunning();
      const p = await stack.pool.connect();
      try {
        // p's outcome, in a worker's statement whose transaction is held open.
        await p.query('BEGIN');
        const write = await recordOutcomes(p, [outcome(id('p'), 1)]);
        expect(write.released).toEqual([]);
        const retry = retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [id('x')]);
        await new Promise((r) => setTimeout(r, 300));
        await p.query('COMMIT');
        expect(await retry).toEqual([{ kind: 'retried', from: 'dead' }]);
      } finally {
        p.release();
      }
      await expectEnd(wf.workflow.id, id, outcome === ok);
    });

    it(`p ${what}; the retry commits first`, async () => {
      const { wf, id } = await xDeadPRunning();
      const r = await stack.pool.connect();
      try {
        // The retry's statement (as retryTasks makes it), its transaction held open: c waits again in it.
        await r.query('BEGIN');
        await r.query(`UPDATE tasks SET status = 'queued', retry_base = attempts, finished_at = NULL, lease_token = NULL, updated_at = now() WHERE id = $1`, [id('x')]);
        const write = recordOutcomes(stack.pool, [outcome(id('p'), 1)]);
        await new Promise((res) => setTimeout(res, 300));
        await r.query('COMMIT');
        expect((await write).released).toEqual([]);
      } finally {
        r.release();
      }
      await expectEnd(wf.workflow.id, id, outcome === ok);
    });
  }
});

it('an operator retry deadlocked with a worker’s write is run again: both take effect', async () => {
  await setUpWithoutWorkers();
  // x1 and x2 die (c1, c2 cancelled); p is still to succeed, and d waits for it alone.
  const wf = await submit([step('x1'), step('x2'), step('p'), step('c1', ['x1']), step('c2', ['x2', 'p']), step('d', ['p'])], 'continue');
  const id = (key: string) => wf.steps.find((s) => s.key === key)!.task_id;
  const base = { workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, delayMs: 0, step: true, result: null };
  await recordOutcomes(stack.pool, ['x1', 'x2'].map((k) => ({ ...base, id: id(k), token: `${k}:1`, attempt: 1, error: 'boom', dead: true })));
  const blocker = await stack.pool.connect();
  try {
    // The worker's write of p's success holds p and waits for d (held here).
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [id('d')]);
    const write = recordOutcomes(stack.pool, [{ ...base, id: id('p'), token: 'p:1', attempt: 1, error: null, dead: false }]);
    await new Promise((r) => setTimeout(r, 200));
    // The retry: x1's trigger locks the workflow's row, x2's waits for p (to read it for c2).
    const retry = retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [id('x1'), id('x2')]);
    await new Promise((r) => setTimeout(r, 200));
    // The write goes on to the workflow's row: a deadlock. The retry waited first, so Postgres
    // aborts it (deadlock_timeout later), and retryTasks runs it again after the write.
    await blocker.query('COMMIT');
    expect((await write).released.map((r) => r.stepKey)).toEqual(['d']);
    expect(await retry).toEqual([
      { kind: 'retried', from: 'dead' },
      { kind: 'retried', from: 'dead' },
    ]);
  } finally {
    blocker.release();
  }
  const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
  expect([...w].map(([k, s]) => [k, s.status, s.deps_waiting])).toEqual([
    ['x1', 'queued', 0], ['x2', 'queued', 0], ['p', 'succeeded', 0], ['c1', 'waiting', 1], ['c2', 'waiting', 1], ['d', 'queued', 0],
  ]);
});

it('cancel_dependents: a dead step cancels its dependents transitively and every waiting step; the workflow ends failed', async () => {
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  await setUp();
  const wf = await submit([step('a', [], { type: 'always_fail' }), step('b', ['a']), step('c', ['b']), step('x'), step('y', ['x'])]);
  await waitFor(async () => ((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!.steps.find((s) => s.key === 'b')!.status === 'cancelled' ? true : null), 10_000, 'b cancelled');
  release();
  const w = await finished(wf.workflow.id);
  const s = byKey(w);
  expect(w.workflow.status).toBe('failed');
  expect(s.get('a')!.status).toBe('dead');
  expect(s.get('b')).toMatchObject({ status: 'cancelled', cancelled_by: 'a', last_error: 'not run: it depends on step a, which ended dead' });
  expect(s.get('c')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
  // x was running already (held) and finishes; y was waiting and does not start.
  expect(s.get('x')!.status).toBe('succeeded');
  expect(s.get('y')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
  expect(s.get('y')!.last_error).toMatch(/workflow stops/);
  hold = Promise.resolve();
});

it('continue: dependents of a dead step are cancelled, independent branches run on; the workflow ends failed', async () => {
  await setUp();
  const wf = await submit([step('a', [], { type: 'always_fail' }), step('b', ['a']), step('x'), step('y', ['x']), step('z', ['y', 'b'])], 'continue');
  const w = await finished(wf.workflow.id);
  const s = byKey(w);
  expect(w.workflow).toMatchObject({ status: 'failed', failed: 3, unfinished: 0 });
  expect(s.get('b')!.status).toBe('cancelled');
  expect(s.get('z')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
  expect(s.get('x')!.status).toBe('succeeded');
  expect(s.get('y')!.status).toBe('succeeded');
  expect(runs.has('z')).toBe(false);
});

describe('cancel_dependents stops the workflow: steps queued in Redis when a step dies are cancelled, not run', () => {
  const queued = ['q1', 'q2', 'q3', 'q4', 'q5'];
  /** a dies at once while r (held) runs beside it; q1–q5 wait in Redis behind them (one may take a's slot first). */
  async function failWhileRunning(a: Partial<StepSpec>, r: Partial<StepSpec> = {}, settings: Record<string, number> = {}, beforeRelease = async () => {}) {
    let release!: () => void;
    hold = new Promise((r) => (release = r));
    await setUp({ WORKER_POOL: 2, QUEUE_STRATEGY: 'strict', ...settings });
    const wf = await submit([step('a', [], { priority: 'critical', ...a }), step('r', [], { priority: 'critical', ...r }), ...queued.map((k) => step(k)), step('after', ['r'])]);
    await waitFor(async () => {
      const s = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
      return queued.filter((k) => s.get(k)!.status === 'cancelled').length >= 4 ? true : null;
    }, 10_000, 'the queued steps stopped');
    await beforeRelease();
    release();
    const w = await finished(wf.workflow.id);
    hold = Promise.resolve();
    return { wf, w };
  }

  /**
   * Makes every stop fail in Postgres (a trigger refuses the cancel it writes) until removed;
   * `failures` counts the refusals (a sequence: its count survives the rollback).
   */
  async function failStops() {
    await stack.pool.query(`
      CREATE SEQUENCE stop_refusals;
      CREATE FUNCTION refuse_stop() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM nextval('stop_refusals'); RAISE EXCEPTION 'stop refused by the test'; END $$;
      CREATE TRIGGER refuse_stop BEFORE UPDATE ON tasks FOR EACH ROW
        WHEN (NEW.status = 'cancelled' AND NEW.cancelled_by IS NOT NULL AND OLD.status <> 'cancelled') EXECUTE FUNCTION refuse_stop();`);
    return {
      failures: async () => Number((await stack.pool.query<{ n: string }>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM stop_refusals')).rows[0]!.n),
      remove: async () => void (await stack.pool.query('DROP TRIGGER refuse_stop ON tasks')),
    };
  }

  /** Leases the next step and writes its death as its worker would, without the stop that follows; its id. */
  async function leasedAndDead(): Promise<string> {
    const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
    await recordOutcomes(stack.pool, [{ id: lease!.message.id, token: lease!.token, attempt: lease!.attempt, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'boom', dead: true, delayMs: 0, step: true }]);
    return lease!.message.id;
  }

  it('they end cancelled by the dead step without running and leave Redis; the step already running finishes', async () => {
    const { w } = await failWhileRunning({ type: 'always_fail' });
    const s = byKey(w);
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    expect(s.get('a')!.status).toBe('dead');
    expect(s.get('r')!.status).toBe('succeeded');
    expect(s.get('after')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    const stopped = queued.filter((k) => s.get(k)!.status === 'cancelled');
    expect(stopped.length).toBeGreaterThanOrEqual(4);
    for (const k of stopped) {
      expect(s.get(k)).toMatchObject({ cancelled_by: 'a', last_error: 'not run: step a ended dead and the workflow stops (on_failure cancel_dependents)' });
      expect(runs.has(k)).toBe(false);
      expect(await stack.inspect.hexists(stack.keysOf(TENANT).messages, s.get(k)!.task_id)).toBe(0);
    }
    // One that a worker took before the stop ran to its end.
    for (const k of queued.filter((x) => !stopped.includes(x))) expect(s.get(k)!.status).toBe('succeeded');
    expect(w.workflow.failed).toBe(2 + stopped.length);
  });

  it('retrying the dead step resumes it: the stopped steps are queued again and run once', async () => {
    const { wf, w } = await failWhileRunning({ type: 'flaky', payload: { fail_attempts: 1 } });
    expect(w.workflow.status).toBe('failed');
    const out = await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [byKey(w).get('a')!.task_id]);
    expect(out).toEqual([{ kind: 'retried', from: 'dead' }]);
    const again = await finished(wf.workflow.id);
    expect(again.workflow).toMatchObject({ status: 'succeeded', failed: 0, unfinished: 0 });
    for (const k of queued) expect(runs.get(k)).toBe(1);
    expect(runs.get('after')).toBe(1);
  });

  it('a step waiting in Redis for its retry is stopped too: it does not run again', async () => {
    await setUp({ RETRY_BASE_MS: 60_000, RETRY_MAX_MS: 60_000 });
    const wf = await submit([step('b', [], { type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 3 }), step('a', [], { type: 'always_fail' })]);
    // b fails once and waits a minute for its retry; a dies meanwhile, and the workflow ends now.
    const w = await finished(wf.workflow.id);
    const b = byKey(w).get('b')!;
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    expect(b).toMatchObject({ status: 'cancelled', cancelled_by: 'a', attempts: 1 });
    const keys = stack.keysOf(TENANT);
    expect(await stack.inspect.zscore(keys.retries[2]!, b.task_id)).toBeNull();
    expect(await stack.inspect.hexists(keys.messages, b.task_id)).toBe(0);
  });

  it('a step running when the workflow stopped, failing afterwards with retries left, is not run again', async () => {
    // Its retry is due at once, and a slot is free: Redis must not hear of it before the stop.
    const { w } = await failWhileRunning({ type: 'always_fail' }, { type: 'fail_held', max_retries: 3 }, { RETRY_BASE_MS: 0 });
    const s = byKey(w);
    expect(s.get('r')).toMatchObject({ status: 'cancelled', cancelled_by: 'a', attempts: 1 });
    expect(runs.get('r')).toBe(1);
  });

  it('a step failing with retries left whose stop fails is left to the reaper within its interval (not the visibility timeout), which stops it: it does not run again', async () => {
    // The stops fail until one has been refused (the worker's, once r fails); then they work again.
    let refused: Promise<void> = Promise.resolve();
    const { w } = await failWhileRunning({ type: 'always_fail' }, { type: 'fail_held', max_retries: 3 }, { RETRY_BASE_MS: 0, VIS_TIMEOUT_MS: 60_000, REAPER_SCAN_INTERVAL_MS: 100 }, async () => {
      const refusal = await failStops();
      refused = waitFor(async () => ((await refusal.failures()) > 0 ? true : null), 10_000, 'a stop refused').then(refusal.remove);
      refused.catch(() => undefined);
    });
    await refused;
    expect(byKey(w).get('r')).toMatchObject({ status: 'cancelled', cancelled_by: 'a', attempts: 1 });
    expect(runs.get('r')).toBe(1);
  });

  it('a failure whose writer did not stop the workflow (it died first): the workers’ sweep does; under continue it does nothing', async () => {
    await setUpWithoutWorkers({ QUEUE_STRATEGY: 'strict' });
    const deps = { pool: stack.pool, queue: stack.queue };
    const failed = async (steps: StepSpec[], policy: WorkflowSpec['on_failure']) => {
      const wf = await submit(steps, policy);
      expect(await leasedAndDead()).toBe(wf.steps[0]!.task_id);
      return wf;
    };
    const a = step('a', [], { priority: 'critical' });
    const stops = await failed([a, step('q1'), step('q2')], 'cancel_dependents');
    const runsOn = await failed([a, step('q1')], 'continue');
    expect(await stopFailedWorkflows(deps)).toBe(2);
    const s = byKey((await getWorkflow(stack.pool, TENANT, stops.workflow.id))!);
    expect(s.get('q1')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    expect(s.get('q2')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    expect((await getWorkflow(stack.pool, TENANT, stops.workflow.id))!.workflow).toMatchObject({ status: 'failed', unfinished: 0, failed: 3 });
    expect(byKey((await getWorkflow(stack.pool, TENANT, runsOn.workflow.id))!).get('q1')!.status).toBe('queued');
    expect(await stopFailedWorkflows(deps)).toBe(0);
  });

  it('the sweep skips a workflow its user cancelled and a retry resumed (no failure stands), so such workflows do not crowd out one that must stop', async () => {
    await setUpWithoutWorkers({ QUEUE_STRATEGY: 'strict' });
    const deps = { pool: stack.pool, queue: stack.queue };
    // As many resumed workflows as one sweep takes (10 here): b stays cancelled with its workflow
    // (failed 1), and a, retried, failed once and waits for its next attempt.
    const resumed = [];
    for (let i = 0; i < 10; i++) {
      const wf = await submit([step('a', [], { max_retries: 3 }), step('b')]);
      expect(await cancelWorkflow(deps, TENANT, wf.workflow.id)).toMatchObject({ kind: 'cancelled', cancelled: 2 });
      resumed.push(wf);
    }
    const as = resumed.map((wf) => wf.steps[0]!.task_id);
    expect((await retryTasks({ ...deps, log: silentLog }, TENANT, as)).every((o) => o.kind === 'retried')).toBe(true);
    const leases = await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w1' });
    expect(leases.map((l) => l.message.id).sort()).toEqual([...as].sort());
    await recordOutcomes(stack.pool, leases.map((l) => ({ id: l.message.id, token: l.token, attempt: l.attempt, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'once', dead: false, delayMs: 3_600_000, step: true })));
    // Then a workflow whose failure's writer died before its stop.
    const wf = await submit([step('f', [], { priority: 'critical' }), step('q')]);
    expect(await leasedAndDead()).toBe(wf.steps[0]!.task_id);
    expect(await stopFailedWorkflows(deps, 10)).toBe(1);
    expect(byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!).get('q')).toMatchObject({ status: 'cancelled', cancelled_by: 'f' });
    // The resumed ones run on: nothing of theirs was stopped.
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'retrying'`, [as]);
    expect(rows[0]!.n).toBe(10);
  });

  it('a step running when its workflow stopped, whose lease Redis then lost, is not queued again by the reconciler', async () => {
    await setUpWithoutWorkers({ QUEUE_STRATEGY: 'strict' });
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('r', [], { priority: 'critical', max_retries: 3 }), step('a', [], { priority: 'high' }), step('q')]);
    const [r, a] = wf.steps.map((s) => s.task_id);
    // r runs (its start recorded); a dies and the workflow stops: q is cancelled, r runs on.
    const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
    expect(lease!.message.id).toBe(r);
    expect((await markRunning(stack.pool, [{ id: r!, token: lease!.token, attempt: lease!.attempt }])).started.has(r!)).toBe(true);
    expect(await leasedAndDead()).toBe(a);
    expect(await stopAfterFailedSteps(deps, [a!])).toBe(1);
    // Redis loses its data, r's lease with it: the reconciler counts r's attempt as lost.
    await stack.flushRedis();
    const reconciler = new Reconciler({ ...deps, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
    expect(await reconciler.runOnce()).toMatchObject({ leader: true, vanishedLeases: 1 });
    // Its workflow has stopped: r is stopped too, not queued for a worker to start again.
    expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w2' })).toEqual([]);
    const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
    expect(byKey(w).get('r')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0, failed: 3 });
  });

  it('a step whose worker died while its workflow stopped is not queued again by the reaper', async () => {
    await setUpWithoutWorkers({ QUEUE_STRATEGY: 'strict' });
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('a', [], { priority: 'critical', type: 'always_fail' }), step('r', [], { priority: 'critical', max_retries: 3 }), step('q')]);
    const a = await leasedAndDead();
    // r's worker dies: its lease lapses in 100 ms.
    const [r] = await stack.queue.lease({ max: 1, visibilityMs: 100, owner: 'gone' });
    expect([a, r!.message.id]).toEqual([wf.steps[0]!.task_id, wf.steps[1]!.task_id]);
    // The writer's stop: q goes, r (leased) is left to its worker.
    expect(await stopAfterFailedSteps(deps, [a])).toBe(1);
    await new Promise((res) => setTimeout(res, 150));
    // The reaper's first stop fails: r stays held (no worker can take it) until the next pass, one
    // interval (100 ms) later rather than the hold (a minute).
    const reaper = new Reaper({ ...deps, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 100, silentLog, 60_000);
    const refusal = await failStops();
    expect(await reaper.runOnce()).toMatchObject({ reaped: 1, requeued: 0 });
    expect(await refusal.failures()).toBe(1);
    expect(await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
    await refusal.remove();
    await new Promise((res) => setTimeout(res, 150));
    expect(await reaper.runOnce()).toMatchObject({ reaped: 1, requeued: 0 });
    const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    expect(byKey(w).get('r')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    expect(await stack.inspect.hexists(stack.keysOf(TENANT).messages, r!.message.id)).toBe(0);
  });

  it.each([
    ['', false],
    [', its stop failing (the reaper stops it within its interval, not the visibility timeout)', true],
  ])('a step handed back at shutdown after its workflow stopped does not start again%s', async (_, stopFails) => {
    let release!: () => void;
    hold = new Promise((r) => (release = r));
    await setUp({ WORKER_POOL: 2, QUEUE_STRATEGY: 'strict', VIS_TIMEOUT_MS: 60_000, REAPER_SCAN_INTERVAL_MS: 100 });
    const wf = await submit([step('a', [], { priority: 'critical', type: 'always_fail' }), step('r', [], { priority: 'critical', max_retries: 3 })]);
    await waitFor(async () => (byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!).get('a')!.status === 'dead' ? true : null), 10_000, 'a dead');
    // r runs on (a worker holds it), then its worker stops at once and hands it back, while an idle
    // worker waits for work: Redis must not hear of r before the stop.
    const [holder] = workers;
    addWorker();
    const refusal = stopFails ? await failStops() : null;
    await holder!.stop(0);
    workers = workers.filter((x) => x !== holder);
    if (refusal) {
      expect(await refusal.failures()).toBeGreaterThan(0);
      await refusal.remove();
    }
    release();
    hold = Promise.resolve();
    const w = await finished(wf.workflow.id);
    expect(byKey(w).get('r')).toMatchObject({ status: 'cancelled', cancelled_by: 'a' });
    expect(runs.get('r')).toBe(1);
  });

  it('a step an operator retries while the failure stands runs: neither the sweep nor a later stop takes it back', async () => {
    await setUpWithoutWorkers({ QUEUE_STRATEGY: 'strict' });
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('a', [], { priority: 'critical' }), step('q')]);
    const a = await leasedAndDead();
    expect(a).toBe(wf.steps[0]!.task_id);
    expect(await stopAfterFailedSteps(deps, [a])).toBe(1);
    const q = wf.steps[1]!.task_id;
    expect(await retryTasks({ ...deps, log: silentLog }, TENANT, [q])).toEqual([{ kind: 'retried', from: 'cancelled' }]);
    expect(await stopFailedWorkflows(deps)).toBe(0);
    expect(await stopAfterFailedSteps(deps, [a])).toBe(0);
    expect(byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!).get('q')).toMatchObject({ status: 'queued', cancelled_by: null });
    const { worker } = startWorker(stack, { handlers: { count: async () => undefined } });
    workers.push(worker);
    const w = await finished(wf.workflow.id);
    expect(w.workflow).toMatchObject({ status: 'failed', failed: 1 });
    expect(byKey(w).get('q')!.status).toBe('succeeded');
  });

  it('a step released by a success that began after the failure but committed before it is stopped too (commit order, not start times)', async () => {
    await setUpWithoutWorkers();
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('f'), step('p'), step('c', ['p']), step('idle')]);
    const [f, p, c] = wf.steps.map((x) => x.task_id);
    const failing = await stack.pool.connect();
    try {
      // The failure's transaction begins (its finished_at is this moment) …
      await failing.query('BEGIN');
      await failing.query('SELECT now()');
      await new Promise((r) => setTimeout(r, 20));
      // … p's success releases c and commits first …
      await stack.pool.query(`UPDATE tasks SET status = 'succeeded', finished_at = now(), updated_at = now() WHERE id = $1`, [p]);
      expect((await stack.pool.query('SELECT status FROM tasks WHERE id = $1', [c])).rows[0].status).toBe('queued');
      // … then f dies.
      await failing.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [f]);
      await failing.query('COMMIT');
    } finally {
      failing.release();
    }
    // c was queued before the failure committed: the stop takes it (and the idle root).
    expect(await stopAfterFailedSteps(deps, [f!])).toBe(2);
    const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
    expect(byKey(w).get('c')).toMatchObject({ status: 'cancelled', cancelled_by: 'f' });
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    // Nothing left for the sweep.
    expect(await stopFailedWorkflows(deps)).toBe(0);
  });

  it('a step an operator retried before a failure committed is stopped by it, although the failure’s transaction began before the retry', async () => {
    await setUpWithoutWorkers();
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('a'), step('f')]);
    const [a, f] = wf.steps.map((x) => x.task_id);
    // a died earlier (its stop did not matter: f was running then).
    await stack.pool.query(`UPDATE tasks SET status = 'running', updated_at = now() WHERE id = $1`, [f]);
    await stack.pool.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [a]);
    const failing = await stack.pool.connect();
    try {
      // f's failure begins (a worker waiting for the workflow's lock, say) …
      await failing.query('BEGIN');
      await failing.query('SELECT now()');
      await new Promise((r) => setTimeout(r, 20));
      // … an operator's retry of a commits first …
      expect(await retryTasks({ ...deps, log: silentLog }, TENANT, [a!])).toEqual([{ kind: 'retried', from: 'dead' }]);
      // … then f dies: a was queued before this failure, so the workflow's stop takes it.
      await failing.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [f]);
      await failing.query('COMMIT');
    } finally {
      failing.release();
    }
    expect(await stopAfterFailedSteps(deps, [f!])).toBe(1);
    const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
    expect(byKey(w).get('a')).toMatchObject({ status: 'cancelled', cancelled_by: 'f' });
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    // Gone from Redis too (f, set running above behind Redis's back, is still there).
    expect((await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w1' })).map((l) => l.message.id)).not.toContain(a);
  });

  it('a step an operator retried after a failure committed runs, although the retry began before that failure took the workflow’s lock', async () => {
    await setUpWithoutWorkers();
    const deps = { pool: stack.pool, queue: stack.queue };
    const wf = await submit([step('a'), step('f'), step('q')]);
    const [a, f] = wf.steps.map((x) => x.task_id);
    // a died earlier (its writer's stop did not run).
    await stack.pool.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [a]);
    const failing = await stack.pool.connect();
    let retry: Promise<unknown> | undefined;
    try {
      // f's writer holds the workflow's lock (a worker's batch with a failure takes it first) …
      await failing.query('BEGIN');
      await failing.query('SELECT workflow_lock($1)', [wf.workflow.id]);
      // … an operator's retry of a writes a's row and waits for that lock …
      retry = retryTasks({ ...deps, log: silentLog }, TENANT, [a!]);
      await waitFor(async () => {
        const { rows } = await stack.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
        return rows.length > 0 ? true : null;
      }, 5_000, 'the retry waiting for the workflow’s lock');
      // … f dies and commits first; the retry commits after it.
      await failing.query(`UPDATE tasks SET status = 'dead', finished_at = now(), last_error = 'planned', updated_at = now() WHERE id = $1`, [f]);
      await failing.query('COMMIT');
    } finally {
      failing.release();
    }
    expect(await retry).toEqual([{ kind: 'retried', from: 'dead' }]);
    // The retry came after the failure: a runs; the stop takes only q.
    expect(await stopAfterFailedSteps(deps, [f!])).toBe(1);
    const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
    expect(w.get('a')).toMatchObject({ status: 'queued', cancelled_by: null });
    expect(w.get('q')).toMatchObject({ status: 'cancelled', cancelled_by: 'f' });
    expect(await stopFailedWorkflows(deps)).toBe(0);
  });

  it('an operator cancelling a queued step stops the rest at once', async () => {
    await setUpWithoutWorkers();
    const wf = await submit([step('a'), step('b'), step('c', ['a'])]);
    expect(await cancelTasks({ pool: stack.pool, queue: stack.queue }, TENANT, [wf.steps[1]!.task_id])).toEqual([{ kind: 'cancelled' }]);
    const w = (await getWorkflow(stack.pool, TENANT, wf.workflow.id))!;
    expect(w.workflow).toMatchObject({ status: 'failed', unfinished: 0 });
    expect(byKey(w).get('a')).toMatchObject({ status: 'cancelled', cancelled_by: 'b' });
    expect(byKey(w).get('c')).toMatchObject({ status: 'cancelled', cancelled_by: 'b' });
  });
});

it('retrying a dead step resumes the workflow: it runs again, its cancelled dependents wait and then run', async () => {
  await setUp();
  // flaky fails its first attempt (max_retries 0: it dies), and succeeds when retried.
  const wf = await submit([step('a'), step('b', ['a'], { type: 'flaky', payload: { fail_attempts: 1 } }), step('c', ['b']), step('d', ['a'])]);
  let w = await finished(wf.workflow.id);
  expect(w.workflow.status).toBe('failed');
  expect(byKey(w).get('c')!.status).toBe('cancelled');
  const b = byKey(w).get('b')!;
  const out = await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [b.task_id]);
  expect(out).toEqual([{ kind: 'retried', from: 'dead' }]);
  // c is not retryable on its own while b has not succeeded.
  w = await finished(wf.workflow.id);
  const s = byKey(w);
  expect(w.workflow).toMatchObject({ status: 'succeeded', failed: 0 });
  expect(s.get('b')).toMatchObject({ status: 'succeeded', attempts: 2 });
  expect(s.get('c')).toMatchObject({ status: 'succeeded', cancelled_by: null });
  // What had succeeded did not run again.
  expect(runs.get('a')).toBe(1);
  expect(runs.get('d')).toBe(1);
  expect(runs.get('c')).toBe(1);
});

it('a step cancelled because a dependency failed cannot be retried before that dependency', async () => {
  await setUp();
  const wf = await submit([step('a', [], { type: 'always_fail' }), step('b', ['a'])]);
  const w = await finished(wf.workflow.id);
  const out = await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [byKey(w).get('b')!.task_id]);
  expect(out).toEqual([{ kind: 'dependencies_unfinished', workflowId: wf.workflow.id, stepKey: 'b', dependencies: [{ key: 'a', status: 'dead' }] }]);
});

it('cancelling a workflow cancels its waiting steps at once and stops its running one', async () => {
  await setUp();
  const wf = await submit([step('slow', [], { type: 'sleeper', payload: { sleep_ms: 30_000 } }), step('next', ['slow']), step('last', ['next'])]);
  const slow = wf.steps[0]!.task_id;
  await waitFor(async () => ((await stack.pool.query(`SELECT 1 FROM tasks WHERE id = $1 AND status = 'running'`, [slow])).rowCount ? true : null), 10_000, 'slow running');
  const out = await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id);
  expect(out).toMatchObject({ kind: 'cancelled', cancelled: 2, cancelling: 1 });
  const w = await finished(wf.workflow.id);
  expect(w.workflow.status).toBe('cancelled');
  expect(w.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  expect(await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id)).toMatchObject({ kind: 'final' });
  expect(await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, 'other-tenant', wf.workflow.id)).toEqual({ kind: 'missing' });
});

it('cancelling a workflow again while its running step stops changes nothing: it keeps when it was cancelled', async () => {
  await setUpWithoutWorkers();
  const wf = await submit([step('slow'), step('next', ['slow'])]);
  // slow runs (its worker slow to stop: the test holds the lease).
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect((await markRunning(stack.pool, [{ id: lease!.message.id, token: lease!.token, attempt: lease!.attempt }])).started.size).toBe(1);
  const first = await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id);
  expect(first).toMatchObject({ kind: 'cancelled', cancelled: 1, cancelling: 1, workflow: { status: 'running' } });
  await new Promise((r) => setTimeout(r, 20));
  // Sent again (a client that lost the answer, or told to by a 503 part way).
  const again = await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id);
  expect(again).toMatchObject({ kind: 'cancelled', cancelled: 0, cancelling: 0 });
  const at = (o: typeof first) => (o.kind === 'cancelled' ? o.workflow.cancel_requested_at : null);
  expect(at(again)).toEqual(at(first));
  expect(again.kind === 'cancelled' && first.kind === 'cancelled' && again.workflow.updated_at).toEqual(first.kind === 'cancelled' && first.workflow.updated_at);
  await recordOutcomes(stack.pool, [{ id: lease!.message.id, token: lease!.token, attempt: lease!.attempt, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'aborted', dead: false, delayMs: 0, step: true }]);
  expect((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!.workflow).toMatchObject({ status: 'cancelled', cancel_requested_at: at(first) });
});

it('a cancel that finds the workflow running, while its last step succeeds, leaves it succeeded (409, not a cancelled success)', async () => {
  await setUpWithoutWorkers();
  const wf = await submit([step('only')]);
  const holder = await stack.pool.connect();
  try {
    // The cancel reads the workflow running, then waits for the workflow's lock held here.
    await holder.query('BEGIN');
    await holder.query('SELECT workflow_lock($1)', [wf.workflow.id]);
    const cancel = cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id);
    await waitFor(async () => ((await stack.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rowCount ? true : null), 10_000, 'cancel waiting');
    // Meanwhile the last step succeeds (a success takes no workflow lock).
    await stack.pool.query(`UPDATE tasks SET status = 'succeeded', finished_at = now(), updated_at = now() WHERE id = $1`, [wf.steps[0]!.task_id]);
    await holder.query('COMMIT');
    expect(await cancel).toMatchObject({ kind: 'final', workflow: { status: 'succeeded' } });
  } finally {
    holder.release();
  }
  const w = await getWorkflow(stack.pool, TENANT, wf.workflow.id);
  expect(w?.workflow).toMatchObject({ status: 'succeeded', cancel_requested_at: null });
});

it('retrying a step of a workflow its user cancelled resumes what the cancel stopped downstream of it', async () => {
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  await setUp();
  const wf = await submit([step('a'), step('b', ['a']), step('c', ['b'])]);
  const [a, b] = wf.steps.map((s) => s.task_id);
  await waitFor(async () => (runs.get('a') ? true : null), 10_000, 'a running');
  expect(await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id)).toMatchObject({ kind: 'cancelled', cancelled: 2, cancelling: 1 });
  // a is stopped while it runs (released only then: a run let finish first would succeed); b and c never started.
  await stopped('a');
  release();
  let w = await finished(wf.workflow.id);
  hold = Promise.resolve();
  expect(w.workflow.status).toBe('cancelled');
  expect(w.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  // b depends on a, which has not succeeded: a first.
  expect(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [b!])).toMatchObject([{ kind: 'dependencies_unfinished' }]);
  expect(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [a!])).toEqual([{ kind: 'retried', from: 'cancelled' }]);
  w = await finished(wf.workflow.id);
  expect(w.workflow).toMatchObject({ status: 'succeeded', failed: 0 });
  expect(w.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  expect([runs.get('a'), runs.get('b'), runs.get('c')]).toEqual([2, 1, 1]);
});

it('cancel_dependents: retrying one branch of a cancelled workflow resumes what the cancel stopped downstream of it, though other branches stay cancelled', async () => {
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  await setUp({ WORKER_POOL: 2 });
  const wf = await submit([step('a'), step('b'), step('a2', ['a']), step('b2', ['b'])]);
  const [a, b] = wf.steps.map((s) => s.task_id);
  await waitFor(async () => (runs.get('a') && runs.get('b') ? true : null), 10_000, 'a and b running');
  expect(await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, wf.workflow.id)).toMatchObject({ kind: 'cancelled', cancelled: 2, cancelling: 2 });
  await stopped('a', 'b');
  release();
  let w = await finished(wf.workflow.id);
  hold = Promise.resolve();
  expect(w.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
  // The user's cancel is no step's failure: a2 waits again for a, and runs.
  expect(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [a!])).toEqual([{ kind: 'retried', from: 'cancelled' }]);
  w = await finished(wf.workflow.id);
  expect(byKey(w).get('a2')).toMatchObject({ status: 'succeeded', cancelled_by: null });
  expect(byKey(w).get('b2')!.status).toBe('cancelled');
  expect(w.workflow).toMatchObject({ status: 'failed', failed: 2 });
  // Retrying b too resumes the rest: the workflow succeeds.
  expect(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [b!])).toEqual([{ kind: 'retried', from: 'cancelled' }]);
  w = await finished(wf.workflow.id);
  expect(w.workflow).toMatchObject({ status: 'succeeded', failed: 0 });
  expect([runs.get('a'), runs.get('b'), runs.get('a2'), runs.get('b2')]).toEqual([2, 2, 1, 1]);
});

it('Redis losing its data mid-workflow: the reconciler queues the lost steps again and the workflow completes', async () => {
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  await setUp({ RECONCILE_INTERVAL_MS: 200, RECONCILE_GRACE_MS: 500 });
  const middle = Array.from({ length: 50 }, (_, i) => step(`m${i}`, ['root']));
  const wf = await submit([step('root', [], { type: 'noop' }), ...middle, step('sink', middle.map((m) => m.key), { type: 'noop' })]);
  // The fan-out is queued (in Redis) while every handler is held; then Redis forgets everything.
  await waitFor(async () => (runs.size > 0 ? true : null), 10_000, 'a middle step to start');
  await stack.flushRedis();
  release();
  const w = await finished(wf.workflow.id);
  expect(w.workflow.status).toBe('succeeded');
  // The sink ran once; middle steps may have run twice (at least once, as the runs record).
  expect(byKey(w).get('sink')!.status).toBe('succeeded');
  const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE t.workflow_id = $1 AND t.step_key = 'sink'`, [wf.workflow.id]);
  expect(rows[0]!.n).toBe(1);
  for (const [key, n] of runs) {
    const { rows: r } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE t.workflow_id = $1 AND t.step_key = $2`, [wf.workflow.id, key]);
    expect(r[0]!.n).toBeGreaterThanOrEqual(n);
  }
  hold = Promise.resolve();
}, 60_000);

it('an operator cancelling a waiting step cancels what depends on it; the workflow’s end is counted once', async () => {
  await setUpWithoutWorkers();
  const wf = await submit([step('a'), step('b', ['a']), step('c', ['b'])], 'continue');
  const out = await cancelTasks({ pool: stack.pool, queue: stack.queue }, TENANT, [wf.steps[1]!.task_id]);
  expect(out).toEqual([{ kind: 'cancelled' }]);
  const w = byKey((await getWorkflow(stack.pool, TENANT, wf.workflow.id))!);
  expect(w.get('b')!.status).toBe('cancelled');
  expect(w.get('c')).toMatchObject({ status: 'cancelled', cancelled_by: 'b' });
  // a runs on (continue); then the workflow ends failed.
  const { worker, registry } = startWorker(stack, { handlers: { count: async () => undefined } });
  workers.push(worker);
  const done = await finished(wf.workflow.id);
  expect(done.workflow).toMatchObject({ status: 'failed', failed: 2, unfinished: 0 });
  expect(byKey(done).get('a')!.status).toBe('succeeded');
  // The worker's stats and a second counter race for it: counted once between them.
  const reg = createRegistry('worker');
  const other = new WorkflowStats({ pool: stack.pool, metrics: workerMetrics(reg) }, 1000, silentLog);
  const failedCount = async (r: typeof reg) => (await r.getSingleMetric('workflows_finished_total')!.get()).values.find((v) => v.labels.status === 'failed')?.value ?? 0;
  await other.runOnce();
  await waitFor(async () => ((await failedCount(registry)) + (await failedCount(reg)) >= 1 ? true : null), 5000, 'the end counted');
  await worker.stop(0);
  workers = [];
  await other.runOnce();
  expect((await failedCount(registry)) + (await failedCount(reg))).toBe(1);
});

// The 10,000 steps are Postgres's (each workflow has one step in Redis): defined on a single Redis
// only (the cluster suite, which loads this file, has nothing to add to it).
if (!clusterMode()) it('10,000 steps: a failure cascades over all of them and a retry reopens them; a workflow cancel cancels all of them; each counted once', async () => {
  await setUpWithoutWorkers();
  const chain = Array.from({ length: 10_000 }, (_, i) => step(`s${i}`, i > 0 ? [`s${i - 1}`] : []));
  const a = await submit(chain);
  const b = await submit(chain.map((s) => ({ ...s })));
  // The first step of `a` dies: 9,999 steps are cancelled by the cascade, in one transaction.
  await stack.pool.query(`UPDATE tasks SET status = 'dead', finished_at = now() WHERE id = $1`, [a.steps[0]!.task_id]);
  const wa = (await getWorkflow(stack.pool, TENANT, a.workflow.id))!;
  expect(wa.workflow).toMatchObject({ status: 'failed', unfinished: 0, failed: 10_000 });
  expect(wa.steps[9_999]).toMatchObject({ status: 'cancelled', cancelled_by: 's0' });
  // Retrying that step reopens all of them: the chain waits again behind it.
  expect(await retryTasks({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, [a.steps[0]!.task_id])).toEqual([{ kind: 'retried', from: 'dead' }]);
  const again = (await getWorkflow(stack.pool, TENANT, a.workflow.id))!;
  expect(again.workflow).toMatchObject({ status: 'running', unfinished: 10_000, failed: 0 });
  expect(again.steps[9_999]).toMatchObject({ status: 'waiting', deps_waiting: 1, cancelled_by: null });
  // `b` is cancelled whole: its waiting steps at once, its queued first step as a task.
  const out = await cancelWorkflow({ pool: stack.pool, queue: stack.queue }, TENANT, b.workflow.id);
  expect(out).toMatchObject({ kind: 'cancelled', cancelled: 10_000, cancelling: 0 });
  const wb = (await getWorkflow(stack.pool, TENANT, b.workflow.id))!;
  expect(wb.workflow).toMatchObject({ status: 'cancelled', unfinished: 0, failed: 10_000 });
}, 120_000);
