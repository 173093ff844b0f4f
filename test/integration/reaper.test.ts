/**
 * The reaper against real Postgres and Redis, when the reaper itself dies mid-pass: a task out of
 * attempts must not end dead in Redis while Postgres still shows it waiting (nothing would ever
 * run or repair it). And when Redis missed an outcome Postgres committed: the reclaimed lease goes
 * where Postgres says, never back to a ready list for a task that is final or waits for a retry.
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import type { Lease, TaskQueue } from '../../services/core/queue/queue';
import { submitTask } from '../../services/core/tasks/submit';
import { markRunning } from '../../services/core/tasks/attempt-store';
import { cancelTasks } from '../../services/core/operator/cancel-tasks';
import { createWorkflow } from '../../services/core/workflows/workflow-store';
import { Completer, CompletedAttempt } from '../../services/worker/completer';
import { Reaper } from '../../services/worker/reaper';
import { createStack, runsOf, silentLog, Stack, taskStatus } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('a reaper that dies between reclaiming a task out of attempts and recording it leaves it to the next pass', async () => {
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 },
    { type: 'always_fail', priority: 'high', payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  // A worker leased its only attempt and died.
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 1, owner: 'gone' });
  expect(lease!.message.id).toBe(id);
  await sleep(5);
  // A reaper reclaimed it in Redis, then died before anything reached Postgres.
  expect((await stack.queue.reap(100, 50)).map((r) => [r.id, r.destination])).toEqual([[id, 'dead']]);
  expect((await taskStatus(stack.pool, id)).status).toBe('queued');
  expect(await stack.queue.deadLetterIds('high')).toEqual([]);
  // Its hold runs out; another reaper's pass records the lost attempt and buries the task.
  await sleep(60);
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 60_000, silentLog);
  expect(await reaper.runOnce()).toEqual({ reaped: 1, requeued: 0, dead: 1 });
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'dead', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((r) => [r.attempt, r.outcome, r.lease_token])).toEqual([[1, 'expired', lease!.token]]);
  expect(await stack.queue.deadLetterIds('high')).toEqual([id]);
  expect(await stack.inspect.zcard(stack.queue.keys.processing)).toBe(0);
});

it('a workflow step that lost an attempt is held until Postgres has it, then queued again with the attempt counted; a task whose payload says "step" is not held', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const wf = await createWorkflow(deps, 'default', { name: 'w', on_failure: 'cancel_dependents', steps: [{ key: 's', type: 'noop', payload: {}, priority: 'high', max_retries: 2, retry: null, timeout_ms: null, depends_on: [] }] }, null);
  if (wf.kind !== 'created') throw new Error(wf.kind);
  const plain = await submitTask({ ...deps, idempotencyTtlMs: 60_000 }, { type: 'noop', priority: 'high', payload: { note: '"step":"x"' }, maxRetries: 2, tenant: 'default', idempotencyKey: null, canonical: '' });
  if (plain.kind === 'conflict') throw new Error('unexpected conflict');
  const step = wf.steps[0]!.task_id;
  const leases = await stack.queue.lease({ max: 2, visibilityMs: 1, owner: 'gone' });
  expect(leases.map((l) => l.message.id).sort()).toEqual([step, plain.task.id].sort());
  await sleep(5);
  // A reaper reclaims both in Redis and dies: the plain task is queued again at once, the step is
  // held (no worker can take it) until its hold runs out.
  const reaped = await stack.queue.reap(100, 50);
  expect(new Map(reaped.map((r) => [r.id, r.destination]))).toEqual(new Map([[step, 'held'], [plain.task.id, 'queued']]));
  expect((await stack.queue.lease({ max: 2, visibilityMs: 60_000, owner: 'w' })).map((l) => l.message.id)).toEqual([plain.task.id]);
  await sleep(60);
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 60_000, silentLog);
  expect(await reaper.runOnce()).toEqual({ reaped: 1, requeued: 1, dead: 0 });
  expect(await taskStatus(stack.pool, step)).toMatchObject({ status: 'queued', attempts: 1 });
  const [again] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w' });
  expect(again).toMatchObject({ message: { id: step }, attempt: 2 });
});

/** The real queue, except that finish() fails: Redis went away right after Postgres committed the outcomes. */
function finishFails(queue: TaskQueue): TaskQueue {
  return new Proxy(queue, {
    get(target, prop) {
      if (prop === 'finish') return () => Promise.reject(new Error('Redis unreachable'));
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Writes these failures in one completer batch whose Redis update fails. */
async function failWhileRedisAway(failures: { lease: Lease; dead: boolean }[]): Promise<void> {
  const completer = new Completer(
    { pool: stack.pool, queue: finishFails(stack.queue), log: silentLog, metrics: workerMetrics(createRegistry('worker')) },
    { maxBatch: 500, maxConcurrent: 2, overlapAt: 64, minGapMs: 0, eagerAt: 1, flushAt: 1, giveUpAfterMs: 10_000, reclaimAfterMs: 1000 },
  );
  const attempt = ({ lease, dead }: { lease: Lease; dead: boolean }): CompletedAttempt => ({
    id: lease.message.id,
    token: lease.token,
    attempt: lease.attempt,
    workerId: 'gone',
    startedAtMs: Date.now(),
    durationMs: 1,
    error: 'boom',
    dead,
    delayMs: 60_000,
    step: lease.message.stepKey !== undefined,
    priority: lease.message.priority,
    typeLabel: lease.message.type,
  });
  expect(await Promise.all(failures.map((f) => completer.complete(attempt(f))))).toEqual(failures.map(() => 'applied'));
}

const stepSpec = (key: string, maxRetries: number) => ({ key, type: 'noop', payload: {}, priority: 'high' as const, max_retries: maxRetries, retry: null, timeout_ms: null, depends_on: [] });

it('a step its workflow stopped while Redis missed the outcomes is forgotten when its lease is reclaimed, never leased again', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const wf = await createWorkflow(deps, 'default', { name: 'w', on_failure: 'cancel_dependents', steps: [stepSpec('a', 0), stepSpec('b', 2)] }, null);
  if (wf.kind !== 'created') throw new Error(wf.kind);
  const id = (key: string) => wf.steps.find((s) => s.key === key)!.task_id;
  const leases = await stack.queue.lease({ max: 2, visibilityMs: 1, owner: 'gone' });
  const leaseOf = (key: string) => leases.find((l) => l.message.id === id(key))!;
  // In one batch: a fails for good, b with retries left. The workflow's stop cancels b (its lease
  // the completer's own), then Redis hears of neither.
  await failWhileRedisAway([
    { lease: leaseOf('a'), dead: true },
    { lease: leaseOf('b'), dead: false },
  ]);
  expect(await taskStatus(stack.pool, id('a'))).toMatchObject({ status: 'dead', attempts: 1 });
  expect(await taskStatus(stack.pool, id('b'))).toMatchObject({ status: 'cancelled', attempts: 1 });
  await sleep(5);
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 60_000, silentLog, 50);
  expect(await reaper.runOnce()).toEqual({ reaped: 2, requeued: 0, dead: 0 });
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
  // Postgres and Redis agree: a dead-lettered, b forgotten, nothing leased or held.
  expect(await taskStatus(stack.pool, id('a'))).toMatchObject({ status: 'dead', attempts: 1 });
  expect(await taskStatus(stack.pool, id('b'))).toMatchObject({ status: 'cancelled', attempts: 1 });
  expect(await stack.queue.deadLetterIds('high')).toEqual([id('a')]);
  expect(await stack.queue.indexed([id('a'), id('b')].map((i) => ({ id: i, tenant: 'default' })))).toEqual([{ deadLetteredAfter: 1 }, null]);
  expect(await stack.inspect.zcard(stack.keysOf('default').processing)).toBe(0);
  await sleep(60);
  expect(await reaper.runOnce()).toEqual({ reaped: 0, requeued: 0, dead: 0 });
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
});

it('a reclaimed lease of a task Postgres has retrying waits in the retry set until its run_after, step or not', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const wf = await createWorkflow(deps, 'default', { name: 'w', on_failure: 'cancel_dependents', steps: [stepSpec('s', 2)] }, null);
  if (wf.kind !== 'created') throw new Error(wf.kind);
  const plain = await submitTask({ ...deps, idempotencyTtlMs: 60_000 }, { type: 'noop', priority: 'high', payload: {}, maxRetries: 2, tenant: 'default', idempotencyKey: null, canonical: '' });
  if (plain.kind === 'conflict') throw new Error('unexpected conflict');
  const ids = [wf.steps[0]!.task_id, plain.task.id];
  const leases = await stack.queue.lease({ max: 2, visibilityMs: 1, owner: 'gone' });
  expect(leases.map((l) => l.message.id).sort()).toEqual([...ids].sort());
  await failWhileRedisAway(leases.map((lease) => ({ lease, dead: false })));
  await sleep(5);
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 60_000, silentLog, 50);
  expect((await reaper.runOnce()).reaped).toBe(2);
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
  const { rows } = await stack.pool.query<{ id: string; status: string; attempts: number; due: number }>(
    `SELECT id, status::text, attempts, extract(epoch FROM run_after) * 1000 AS due FROM tasks WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  const retries = stack.keysOf('default').retries[1]!;
  for (const r of rows) {
    expect(r).toMatchObject({ status: 'retrying', attempts: 1 });
    expect(Math.abs(Number(await stack.inspect.zscore(retries, r.id)) - Number(r.due))).toBeLessThan(2);
  }
  expect(await stack.queue.stats()).toMatchObject({ ready: { high: 0 }, retrying: { high: 2 }, processing: 0 });
});

it('a task cancelled while it ran, whose worker died and whose tombstone lapsed before its lease ran out, is not queued again (Postgres ends it cancelled) nor counted dead', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const plain = await submitTask({ ...deps, idempotencyTtlMs: 60_000 }, { type: 'noop', priority: 'high', payload: {}, maxRetries: 2, tenant: 'default', idempotencyKey: null, canonical: '' });
  if (plain.kind === 'conflict') throw new Error('unexpected conflict');
  const id = plain.task.id;
  // A worker leases it (with a lease longer than a tombstone lasts: VIS_TIMEOUT_MS above 10 min) and dies.
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 200, owner: 'gone' });
  expect(lease!.message.id).toBe(id);
  expect(await cancelTasks(deps, 'default', [id])).toEqual([{ kind: 'cancelling' }]);
  // The lease runs out more than TOMBSTONE_MS (10 min) after the cancel: its tombstone has lapsed.
  await stack.inspect.zadd(stack.keysOf('default').tombstones, Date.now() - 601_000, id);
  await sleep(250);
  const metrics = workerMetrics(createRegistry('worker'));
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics, typeLabel: (t) => t }, 100, 60_000, silentLog, 50);
  expect(await reaper.runOnce()).toMatchObject({ reaped: 1, dead: 0 });
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'cancelled', attempts: 1 });
  // Postgres has it final: no worker may lease it again, and Redis forgot it.
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([null]);
  const total = async (c: { get(): Promise<{ values: { value: number }[] }> }) => (await c.get()).values.reduce((s, v) => s + v.value, 0);
  expect(await total(metrics.dead)).toBe(0);
  expect(await total(metrics.cancelledRuns)).toBe(1);
});

it('a task cancelled while it ran, whose worker died, ends cancelled and is counted as a cancelled run, not as dead', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const plain = await submitTask({ ...deps, idempotencyTtlMs: 60_000 }, { type: 'noop', priority: 'high', payload: {}, maxRetries: 2, tenant: 'default', idempotencyKey: null, canonical: '' });
  if (plain.kind === 'conflict') throw new Error('unexpected conflict');
  const id = plain.task.id;
  await stack.queue.lease({ max: 1, visibilityMs: 50, owner: 'gone' });
  expect(await cancelTasks(deps, 'default', [id])).toEqual([{ kind: 'cancelling' }]);
  await sleep(100);
  const metrics = workerMetrics(createRegistry('worker'));
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics, typeLabel: (t) => t }, 100, 60_000, silentLog, 50);
  expect(await reaper.runOnce()).toEqual({ reaped: 1, requeued: 0, dead: 0 });
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'cancelled', attempts: 1 });
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([null]);
  expect(await stack.queue.deadLetterIds('high')).toEqual([]);
  const total = async (c: { get(): Promise<{ values: { value: number }[] }> }) => (await c.get()).values.reduce((s, v) => s + v.value, 0);
  expect(await total(metrics.dead)).toBe(0);
  expect(await total(metrics.cancelledRuns)).toBe(1);
});

it('a reclaimed lease of a task no longer in Postgres (deleted by hand, or by retention behind a long lease) is forgotten, not queued to run again', async () => {
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const plain = await submitTask({ ...deps, idempotencyTtlMs: 60_000 }, { type: 'noop', priority: 'high', payload: {}, maxRetries: 2, tenant: 'default', idempotencyKey: null, canonical: '' });
  if (plain.kind === 'conflict') throw new Error('unexpected conflict');
  const id = plain.task.id;
  await stack.queue.lease({ max: 1, visibilityMs: 50, owner: 'gone' });
  await stack.pool.query('DELETE FROM tasks WHERE id = $1', [id]);
  await sleep(100);
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')), typeLabel: (t) => t }, 100, 60_000, silentLog, 50);
  expect(await reaper.runOnce()).toMatchObject({ reaped: 1 });
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60_000, owner: 'w' })).toEqual([]);
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([null]);
  expect(await stack.queue.stats()).toMatchObject({ ready: { high: 0 }, processing: 0 });
});

it('the last attempt of a task cancelled while it ran, reclaimed after its worker died, ends cancelled: not counted dead, not in a dead-letter queue', async () => {
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 },
    { type: 'noop', priority: 'high', payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  const id = res.task.id;
  const [lease] = await stack.queue.lease({ max: 1, visibilityMs: 1, owner: 'gone' });
  await markRunning(stack.pool, [{ id, token: lease!.token, attempt: lease!.attempt }]);
  // An operator cancels it while it runs (202), and its worker dies before it hears.
  expect((await cancelTasks(stack, 'default', [id])).map((o) => o.kind)).toEqual(['cancelling']);
  await sleep(5);
  const registry = createRegistry('worker');
  const reaper = new Reaper({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(registry), typeLabel: (t) => t }, 100, 60_000, silentLog);
  await reaper.runOnce();
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'cancelled' });
  const value = async (name: string) => (await registry.getMetricsAsJSON()).find((m) => m.name === name)!.values.reduce((n, v) => n + v.value, 0);
  // A cancelled run, as when its worker writes it: not a failure.
  expect(await value('tasks_failed_total')).toBe(0);
  expect(await value('tasks_cancelled_running_total')).toBe(1);
  expect(await value('tasks_dead_total')).toBe(0);
  expect(await stack.queue.deadLetterIds('high')).toEqual([]);
  expect((await stack.queue.stats()).dead.high).toBe(0);
  expect(await stack.inspect.zcard(stack.queue.keys.processing)).toBe(0);
});
