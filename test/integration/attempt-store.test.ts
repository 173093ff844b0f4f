/** Fenced Postgres writes: a stale lease token changes nothing in the task. */
import { markRunning, recordExpired, recordOutcomes, recordReleased } from '../../services/core/tasks/attempt-store';
import { createTask } from '../../services/core/tasks/task-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { Stack, createStack, runsOf } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

async function newTask(): Promise<string> {
  const id = uuidv7();
  await createTask(stack.pool, { id, type: 'noop', priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null }, null, 1000);
  return id;
}

async function row(id: string): Promise<Record<string, unknown>> {
  const { rows } = await stack.pool.query('SELECT * FROM tasks WHERE id = $1', [id]);
  return rows[0];
}

const outcome = (id: string, token: string, error: string | null = null, dead = false) => ({ id, token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error, dead, delayMs: 100 });

it('an outcome with a stale token changes nothing in the task and is recorded as discarded', async () => {
  const id = await newTask();
  await markRunning(stack.pool, [{ id, token: `${id}:old`, attempt: 1 }]);
  // The lease was lost and the task leased again under a new token.
  await markRunning(stack.pool, [{ id, token: `${id}:new`, attempt: 2 }]);
  const before = await row(id);
  for (const write of [
    async () => (await recordOutcomes(stack.pool, [outcome(id, `${id}:old`)])).applied,
    async () => (await recordOutcomes(stack.pool, [outcome(id, `${id}:old`, 'boom', true)])).applied,
    async () => (await recordOutcomes(stack.pool, [outcome(id, `${id}:old`, 'boom', false)])).applied,
    () => recordExpired(stack.pool, [{ id, token: `${id}:old`, attempt: 1, dead: true }]),
    () => recordReleased(stack.pool, [{ id, token: `${id}:old`, attempt: 1, startedAtMs: Date.now() }]),
  ]) {
    expect((await write()).size).toBe(0);
    expect(await row(id)).toEqual(before);
  }
  const runs = await runsOf(stack.pool, id);
  // The superseded attempt was recorded as expired when the task was leased again; its late outcome
  // turned that into `discarded`. The running attempt gets its row when its outcome is known.
  expect(runs.map((r) => [r.lease_token, r.outcome])).toEqual([[`${id}:old`, 'discarded']]);
  expect((await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:new`), attempt: 2 }])).applied.has(id)).toBe(true);
  expect(await row(id)).toMatchObject({ status: 'succeeded', attempts: 2, lease_token: null });
});

it('an attempt whose start was never recorded writes start and outcome together', async () => {
  const id = await newTask();
  const startedAtMs = Date.now() - 50;
  const written = await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:t1`), startedAtMs }]);
  expect(written.applied.has(id)).toBe(true);
  const r = await row(id);
  expect(r).toMatchObject({ status: 'succeeded', attempts: 1, lease_token: null });
  expect((r.first_started_at as Date).getTime()).toBe(startedAtMs);
  expect((await runsOf(stack.pool, id)).map((x) => [x.attempt, x.outcome])).toEqual([[1, 'succeeded']]);
});

it('an unrecorded attempt the reaper already counted as lost is discarded, and the next one applies', async () => {
  const id = await newTask();
  // The worker ran attempt 1 without recording its start; its lease expired and was reaped.
  expect((await recordExpired(stack.pool, [{ id, token: `${id}:t1`, attempt: 1, dead: false }])).has(id)).toBe(true);
  expect(await row(id)).toMatchObject({ status: 'queued', attempts: 1 });
  const before = await row(id);
  const late = await recordOutcomes(stack.pool, [outcome(id, `${id}:t1`)]);
  expect(late.applied.size + late.final.size).toBe(0);
  expect(await row(id)).toEqual(before);
  expect((await markRunning(stack.pool, [{ id, token: `${id}:t1`, attempt: 1 }])).started.size).toBe(0);
  expect((await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:t2`), attempt: 2 }])).applied.has(id)).toBe(true);
  expect((await runsOf(stack.pool, id)).map((x) => [x.lease_token, x.outcome])).toEqual([
    [`${id}:t1`, 'discarded'],
    [`${id}:t2`, 'succeeded'],
  ]);
});

it('an outcome racing the reaper for the same attempt ends as one discarded run, whichever commits first', async () => {
  const id = await newTask();
  await markRunning(stack.pool, [{ id, token: `${id}:t1`, attempt: 1 }]);
  // The reaper's write is in flight (its transaction has inserted the expired run, not committed)
  // when the outcome arrives: the outcome's insert waits on the run's unique key.
  const reaper = await stack.pool.connect();
  try {
    await reaper.query('BEGIN');
    await recordExpired(reaper as never, [{ id, token: `${id}:t1`, attempt: 1, dead: false }]);
    const late = recordOutcomes(stack.pool, [outcome(id, `${id}:t1`)]);
    await new Promise((r) => setTimeout(r, 200));
    await reaper.query('COMMIT');
    const written = await late;
    expect(written.applied.size + written.final.size).toBe(0);
  } finally {
    reaper.release();
  }
  expect(await row(id)).toMatchObject({ status: 'queued', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((x) => [x.lease_token, x.outcome, x.error])).toEqual([
    [`${id}:t1`, 'discarded', 'lease lost before the outcome (success) was recorded'],
  ]);
});

it('an outcome for a task already final is reported as final, with its status, so Redis can end the lease the same way', async () => {
  const id = await newTask();
  await recordOutcomes(stack.pool, [outcome(id, `${id}:t1`)]);
  const again = await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:t2`), attempt: 2 }]);
  expect([...again.applied, ...again.final.keys()]).toEqual([id]);
  expect(again.final.get(id)).toBe('succeeded');
  expect(await row(id)).toMatchObject({ status: 'succeeded', attempts: 1 });
});

it('a newer unrecorded attempt takes over from a recorded one whose loss was never written', async () => {
  const id = await newTask();
  await markRunning(stack.pool, [{ id, token: `${id}:t1`, attempt: 1 }]);
  expect((await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:t2`), attempt: 2 }])).applied.has(id)).toBe(true);
  expect(await row(id)).toMatchObject({ status: 'succeeded', attempts: 2 });
  expect((await runsOf(stack.pool, id)).map((x) => [x.lease_token, x.outcome])).toEqual([
    [`${id}:t1`, 'expired'],
    [`${id}:t2`, 'succeeded'],
  ]);
});

it('a task already final is not started again', async () => {
  const id = await newTask();
  await markRunning(stack.pool, [{ id, token: `${id}:t1`, attempt: 1 }]);
  await recordOutcomes(stack.pool, [outcome(id, `${id}:t1`)]);
  const { started } = await markRunning(stack.pool, [{ id, token: `${id}:t2`, attempt: 2 }]);
  expect(started.has(id)).toBe(false);
  expect(await row(id)).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(stack.pool, id)).length).toBe(1);
});

it('a failure schedules a retry or ends dead, keeping the error', async () => {
  const id = await newTask();
  await markRunning(stack.pool, [{ id, token: `${id}:t1`, attempt: 1 }]);
  await recordOutcomes(stack.pool, [outcome(id, `${id}:t1`, 'first failure', false)]);
  const retrying = await row(id);
  expect(retrying).toMatchObject({ status: 'retrying', last_error: 'first failure', lease_token: null });
  expect(retrying.run_after).toBeInstanceOf(Date);
  await markRunning(stack.pool, [{ id, token: `${id}:t2`, attempt: 2 }]);
  await recordOutcomes(stack.pool, [{ ...outcome(id, `${id}:t2`, 'final failure', true), attempt: 2 }]);
  expect(await row(id)).toMatchObject({ status: 'dead', last_error: 'final failure', attempts: 2, run_after: null });
  expect((await runsOf(stack.pool, id)).map((r) => [r.outcome, r.error])).toEqual([
    ['failed', 'first failure'],
    ['failed', 'final failure'],
  ]);
});

it('batches mix applied and stale writes correctly', async () => {
  const a = await newTask();
  const b = await newTask();
  await markRunning(stack.pool, [
    { id: a, token: `${a}:ta`, attempt: 1 },
    { id: b, token: `${b}:tb`, attempt: 1 },
  ]);
  const { applied } = await recordOutcomes(stack.pool, [outcome(a, `${a}:ta`), outcome(b, `${b}:wrong`)]);
  expect([...applied]).toEqual([a]);
  expect((await row(b)).status).toBe('running');
});

it('an outcome for a task deleted meanwhile does not keep the others in its batch from being written', async () => {
  const [kept, gone] = [await newTask(), await newTask()];
  await stack.pool.query('DELETE FROM tasks WHERE id = $1', [gone]);
  const written = await recordOutcomes(stack.pool, [outcome(kept, `${kept}:t1`), outcome(gone, `${gone}:t1`)]);
  expect([...written.applied]).toEqual([kept]);
  expect(await row(kept)).toMatchObject({ status: 'succeeded' });
});

it('deleting tasks deletes their runs (and only theirs)', async () => {
  const [a, b] = [await newTask(), await newTask()];
  await recordOutcomes(stack.pool, [outcome(a, `${a}:t1`), outcome(b, `${b}:t1`)]);
  await stack.pool.query('DELETE FROM tasks WHERE id = $1', [a]);
  expect(await runsOf(stack.pool, a)).toEqual([]);
  expect((await runsOf(stack.pool, b)).map((r) => r.outcome)).toEqual(['succeeded']);
});
