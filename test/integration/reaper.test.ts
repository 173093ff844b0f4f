/**
 * The reaper against real Postgres and Redis, when the reaper itself dies mid-pass: a task out of
 * attempts must not end dead in Redis while Postgres still shows it waiting (nothing would ever
 * run or repair it).
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { submitTask } from '../../services/core/tasks/submit';
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
