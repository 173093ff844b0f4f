/** The reconciler rebuilds Redis from Postgres: lost pushes, flushed data, vanished leases. */
import { markRunning, recordOutcomes } from '../../services/core/tasks/attempt-store';
import { createTask } from '../../services/core/tasks/task-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { Reconciler } from '../../services/worker/reconciler';
import { Stack, createStack, runsOf, silentLog, taskStatus } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

function reconciler(batchSize = 100): Reconciler {
  return new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize }, silentLog);
}

/** A task committed in Postgres whose push to Redis never happened. */
async function storedOnly(maxRetries = 3): Promise<string> {
  const id = uuidv7();
  await createTask(stack.pool, { id, type: 'noop', priority: 'high', payload: { k: id }, maxRetries, idempotencyKey: null }, null, 1000);
  return id;
}

async function flushNamespace(): Promise<void> {
  const keys = await stack.inspect.keys(`{${stack.cfg.REDIS_KEY_PREFIX}}:*`);
  if (keys.length) await stack.inspect.del(...keys);
}

it('pushes tasks that were committed but never queued, once, with their payload', async () => {
  const ids = [await storedOnly(), await storedOnly()];
  const r = reconciler();
  expect(await r.runOnce()).toMatchObject({ leader: true, requeued: 2, vanishedLeases: 0 });
  expect(await r.runOnce()).toMatchObject({ requeued: 0 });
  const leases = await stack.queue.lease({ max: 10, visibilityMs: 10000 });
  expect(leases.map((l) => l.message.id).sort()).toEqual([...ids].sort());
  expect(leases[0]!.message.payload).toEqual({ k: leases[0]!.message.id });
});

it('pages through a backlog larger than one page in a single pass', async () => {
  for (let i = 0; i < 25; i++) await storedOnly();
  const res = await reconciler(10).runOnce();
  expect(res).toMatchObject({ checked: 25, requeued: 25 });
  expect((await stack.queue.stats()).ready.high).toBe(25);
});

it('after Redis lost everything: waiting tasks are re-queued, vanished leases count as attempts', async () => {
  const r = reconciler();
  const lastChance = await storedOnly(0);
  const leased = await storedOnly(5);
  await r.runOnce();
  // FIFO within `high`: these two are leased, in this order.
  const leases = await stack.queue.lease({ max: 2, visibilityMs: 60000 });
  expect(leases.map((l) => l.message.id)).toEqual([lastChance, leased]);
  await markRunning(stack.pool, leases.map((l) => ({ id: l.message.id, token: l.token, attempt: l.attempt })));
  const retrying = await storedOnly();
  await r.runOnce();
  const [rl] = await stack.queue.lease({ max: 1, visibilityMs: 60000 });
  expect(rl!.message.id).toBe(retrying);
  await markRunning(stack.pool, [{ id: retrying, token: rl!.token, attempt: 1 }]);
  await recordOutcomes(stack.pool, [{ id: retrying, token: rl!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'x', dead: false, delayMs: 60_000 }]);
  const waiting = await storedOnly();

  await flushNamespace();
  expect(await r.runOnce()).toMatchObject({ vanishedLeases: 2, requeued: 3 });
  // max_retries 0: the vanished attempt was its only one.
  expect(await taskStatus(stack.pool, lastChance)).toMatchObject({ status: 'dead', attempts: 1 });
  expect((await runsOf(stack.pool, lastChance)).map((r) => r.outcome)).toEqual(['expired']);
  expect(await taskStatus(stack.pool, leased)).toMatchObject({ status: 'queued', attempts: 1 });
  // The retrying task waits in its retry set until its backoff ends.
  expect((await stack.queue.stats()).retrying.high).toBe(1);
  const requeued = await stack.queue.lease({ max: 10, visibilityMs: 60000 });
  expect(requeued.map((l) => [l.message.id, l.attempt])).toEqual([
    [leased, 2],
    [waiting, 1],
  ]);
});

it('leaves a running task alone when its outcome was written meanwhile', async () => {
  const r = reconciler();
  const id = await storedOnly();
  await r.runOnce();
  const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60000 });
  await markRunning(stack.pool, [{ id, token: l!.token, attempt: 1 }]);
  await stack.queue.ack([{ id, token: l!.token }]);
  // Postgres still says running (the worker is about to write), Redis forgot it.
  await recordOutcomes(stack.pool, [{ id, token: l!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0 }]);
  expect(await r.runOnce()).toMatchObject({ requeued: 0, vanishedLeases: 0 });
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'succeeded' });
});

it('a task Redis dead-lettered out of attempts while Postgres still shows it waiting ends dead, its lost attempt recorded', async () => {
  const r = reconciler();
  // Waiting in Postgres (its start never recorded) and running (its start recorded).
  const waiting = await storedOnly(0);
  const running = await storedOnly(0);
  await r.runOnce();
  const leases = await stack.queue.lease({ max: 2, visibilityMs: 60000 });
  const tokenOf = (id: string) => leases.find((l) => l.message.id === id)!.token;
  await markRunning(stack.pool, [{ id: running, token: tokenOf(running), attempt: 1 }]);
  // Redis buries both (their only attempt is used up), but their expiry never reaches Postgres.
  for (const id of [waiting, running]) expect(await stack.queue.bury([{ id, token: tokenOf(id), priority: 'high' }])).toEqual([true]);
  expect(await r.runOnce()).toMatchObject({ requeued: 0, vanishedLeases: 2 });
  for (const id of [waiting, running]) expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'dead', attempts: 1 });
  expect((await runsOf(stack.pool, waiting)).map((x) => [x.attempt, x.outcome, x.lease_token.startsWith('reconciler~')])).toEqual([[1, 'expired', true]]);
  expect((await runsOf(stack.pool, running)).map((x) => [x.attempt, x.outcome, x.lease_token])).toEqual([[1, 'expired', tokenOf(running)]]);
  // Redis already had them where Postgres now agrees; the next pass finds nothing to do.
  expect(await stack.queue.deadLetterIds('high')).toEqual([waiting, running]);
  expect(await r.runOnce()).toMatchObject({ requeued: 0, vanishedLeases: 0 });
});

it('leaves alone a task out of attempts that a lease still holds (the reaper is recording it)', async () => {
  const r = reconciler();
  const id = await storedOnly(0);
  await r.runOnce();
  await stack.queue.lease({ max: 1, visibilityMs: 60000 });
  expect(await stack.queue.indexed([id])).toEqual([{ deadLetteredAfter: null }]);
  expect(await r.runOnce()).toMatchObject({ requeued: 0, vanishedLeases: 0 });
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'queued', attempts: 0 });
});

it('runs as one copy at a time', async () => {
  await storedOnly();
  const a = reconciler();
  const b = reconciler();
  expect((await a.runOnce()).leader).toBe(true);
  expect((await b.runOnce()).leader).toBe(false);
  await a.stop();
  expect((await b.runOnce()).leader).toBe(true);
});
