/**
 * The reaper against real Postgres and Redis, when the reaper itself dies mid-pass: a task out of
 * attempts must not end dead in Redis while Postgres still shows it waiting (nothing would ever
 * run or repair it).
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { submitTask } from '../../services/core/tasks/submit';
import { createWorkflow } from '../../services/core/workflows/workflow-store';
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
