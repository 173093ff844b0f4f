/**
 * Cancel and retry of single tasks against real Postgres, Redis, an API and a worker: each state a
 * task can be cancelled in, a cancel racing the task's own success, a cancelled lease whose worker
 * died, the reconciler kept from reviving a cancelled task, and retries with a fresh budget.
 */
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { submitTask } from '../../services/core/tasks/submit';
import { Reconciler } from '../../services/worker/reconciler';
import type { Worker } from '../../services/worker/worker';
import type { Handler } from '../../services/worker/handlers';
import { runsOf, silentLog, taskStatus, waitFor } from '../support/stack';
import { resettableStackWithApi } from '../support/stack-reset';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const fx = resettableStackWithApi({ RETRY_BASE_MS: 10, RETRY_MAX_MS: 20, RETRY_JITTER_MS: 5, RETRY_SCAN_INTERVAL_MS: 20, REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
let worker: Worker | null = null;

async function submit(type: string, payload: unknown = {}, maxRetries = 3, tenant = 'default'): Promise<string> {
  const res = await submitTask(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type, priority: 'default', payload, maxRetries, tenant, idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  return res.task.id;
}

async function post(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${fx.api.url}${path}`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const statusIs = (id: string, ...want: string[]) => async () => {
  const t = await taskStatus(fx.stack.pool, id);
  return want.includes(t.status) ? t : null;
};

/** Whether Redis holds anything of the task besides its tombstone. */
async function redisHolds(id: string): Promise<boolean> {
  const k = fx.stack.keysOf('default');
  const [msg, meta, leased, retry] = await Promise.all([fx.stack.inspect.hexists(k.messages, id), fx.stack.inspect.hexists(k.meta, id), fx.stack.inspect.zscore(k.processing, id), fx.stack.inspect.zscore(k.retries[2]!, id)]);
  const listed = (await fx.stack.inspect.lrange(k.tenantQueue('default', 'default'), 0, -1)).includes(id);
  return msg === 1 || meta === 1 || leased !== null || retry !== null || listed;
}

it('a queued task is cancelled at once (200), never runs, and cancelling twice is harmless', async () => {
  const ran: string[] = [];
  const id = await submit('capture');
  const first = await post(`/tasks/${id}/cancel`);
  expect(first.status).toBe(200);
  expect(first.body).toMatchObject({ id, status: 'cancelled', last_error: 'cancelled by an operator' });
  expect(first.body.cancel_requested_at).toEqual(expect.any(String));
  expect(await redisHolds(id)).toBe(false);
  ({ worker } = fx.startWorker({ handlers: { capture: async (ctx) => void ran.push(ctx.id) } }));
  // Another task runs, so the worker is live; the cancelled one never does.
  const other = await submit('capture');
  await waitFor(statusIs(other, 'succeeded'));
  expect(ran).toEqual([other]);
  const again = await post(`/tasks/${id}/cancel`);
  expect(again.status).toBe(200);
  expect(again.body.status).toBe('cancelled');
  expect(await runsOf(fx.stack.pool, id)).toEqual([]);
});

it('a task waiting for its retry is cancelled at once and leaves the retry set', async () => {
  // Retries of 30 s: the task waits in its retry set when it is cancelled.
  ({ worker } = fx.startWorker({ cfg: { RETRY_BASE_MS: 30_000, RETRY_MAX_MS: 30_000 } }));
  const id = await submit('always_fail', {}, 3);
  await waitFor(statusIs(id, 'retrying'));
  await waitFor(async () => (await fx.stack.inspect.zscore(fx.stack.queue.keys.retries[2]!, id)) !== null, 5000, 'the retry set');
  const res = await post(`/tasks/${id}/cancel`);
  expect(res.status).toBe(200);
  expect(res.body.status).toBe('cancelled');
  expect(await redisHolds(id)).toBe(false);
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['failed']);
});

it('a running sleeper is asked to stop (202), its signal fires within a second, and it ends cancelled', async () => {
  let started = 0;
  let abortedAfterMs = -1;
  let cancelledAt = 0;
  const sleeper: Handler = (ctx) =>
    new Promise<void>((_resolve, reject) => {
      started++;
      ctx.signal.addEventListener('abort', () => {
        abortedAfterMs = Date.now() - cancelledAt;
        reject(ctx.signal.reason);
      });
    });
  ({ worker } = fx.startWorker({ handlers: { hang: sleeper } }));
  const id = await submit('hang', {}, 3);
  await waitFor(async () => started === 1, 5000, 'the attempt to start');
  cancelledAt = Date.now();
  const res = await post(`/tasks/${id}/cancel`);
  expect(res.status).toBe(202);
  expect(res.body.cancel_requested_at).toEqual(expect.any(String));
  const t = await waitFor(statusIs(id, 'cancelled'), 5000, 'the cancelled status');
  expect(abortedAfterMs).toBeGreaterThanOrEqual(0);
  expect(abortedAfterMs).toBeLessThan(1000);
  expect(t.attempts).toBe(1);
  const runs = await runsOf(fx.stack.pool, id);
  expect(runs.map((r) => r.outcome)).toEqual(['cancelled']);
  await waitFor(async () => !(await redisHolds(id)), 5000, 'Redis to forget it');
  // Nothing runs it again.
  await new Promise((r) => setTimeout(r, 300));
  expect(started).toBe(1);
});

it('a cancel Postgres never recorded (its Redis call landed after the transaction rolled back) hands the attempt back uncounted: a last attempt does not end dead', async () => {
  let started = 0;
  const hang: Handler = (ctx) =>
    new Promise<void>((_resolve, reject) => {
      started++;
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
    });
  ({ worker } = fx.startWorker({ handlers: { hang } }));
  // One attempt only: charged as a failure, it would end dead.
  const id = await submit('hang', {}, 0);
  await waitFor(async () => started === 1, 5000, 'the attempt to start');
  // What the cancel's Redis call does when it lands after its Postgres transaction rolled back.
  expect(await fx.stack.queue.cancel([{ id, tenant: 'default' }])).toEqual(['leased']);
  const runs = await waitFor(async () => {
    const r = await runsOf(fx.stack.pool, id);
    return r.length > 0 ? r : null;
  }, 5000, 'the attempt to be recorded');
  expect(runs.map((r) => [r.outcome, r.error])).toEqual([['released', expect.stringContaining('a cancel Postgres does not have')]]);
  expect(await taskStatus(fx.stack.pool, id)).toMatchObject({ status: 'queued', attempts: 0 });
  // The operator's cancel, asked again, ends it; it never ran again.
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(200);
  expect(await taskStatus(fx.stack.pool, id)).toMatchObject({ status: 'cancelled' });
  expect(started).toBe(1);
});

it('a cancel racing the task’s own success: exactly one wins, and status and runs agree', async () => {
  const results: string[] = [];
  ({ worker } = fx.startWorker({ handlers: { quick: async () => new Promise<void>((r) => setTimeout(r, Math.random() * 6)) }, cfg: { START_RECORD_DELAY_MS: 1 } }));
  // Five races at a time, each on its own task: a race is between one cancel and one task's run.
  await Promise.all(
    Array.from({ length: 5 }, async () => {
      for (let i = 0; i < 6; i++) {
        const id = await submit('quick', {}, 0);
        await new Promise((r) => setTimeout(r, Math.random() * 8));
        const res = await post(`/tasks/${id}/cancel`);
        const t = await waitFor(statusIs(id, 'succeeded', 'cancelled'), 5000, 'a final status');
        const runs = (await runsOf(fx.stack.pool, id)).map((r) => r.outcome);
        if (t.status === 'succeeded') {
          expect(runs).toEqual(['succeeded']);
          // Answered 409 (it had finished) or 202 (it was running and then succeeded).
          expect([202, 409]).toContain(res.status);
        } else {
          expect(runs.filter((o) => o !== 'cancelled')).toEqual([]);
          expect(runs.length).toBeLessThanOrEqual(1);
          expect([200, 202]).toContain(res.status);
        }
        results.push(`${res.status}:${t.status}`);
      }
    }),
  );
  // Both sides of the race were seen at least once would be luck; each answer agreed with the end state.
  expect(results).toHaveLength(30);
});

it('a finished task cannot be cancelled (409); another tenant’s task and an unknown id are not found; a bad id is 400', async () => {
  ({ worker } = fx.startWorker());
  const done = await submit('noop');
  await waitFor(statusIs(done, 'succeeded'));
  const res = await post(`/tasks/${done}/cancel`);
  expect(res.status).toBe(409);
  expect(res.body.detail).toMatch(/succeeded/);
  const theirs = await submit('noop', {}, 3, 'other-team');
  expect((await post(`/tasks/${theirs}/cancel`)).status).toBe(404);
  expect((await post(`/tasks/${theirs}/retry`)).status).toBe(404);
  expect((await post('/tasks/0195a9b4-1111-7000-8000-000000000000/cancel')).status).toBe(404);
  const bad = await post('/tasks/not-a-uuid/cancel');
  expect(bad.status).toBe(400);
  expect(bad.body.errors).toEqual([{ field: 'id', message: 'must be a UUID' }]);
  const wrongMethod = await fetch(`${fx.api.url}/tasks/${done}/cancel`);
  expect(wrongMethod.status).toBe(405);
  expect(wrongMethod.headers.get('allow')).toBe('POST');
});

it('a dead task retried gets a fresh budget of max_retries + 1 attempts, its history kept', async () => {
  ({ worker } = fx.startWorker());
  const id = await submit('always_fail', {}, 1);
  await waitFor(statusIs(id, 'dead'));
  expect(await fx.stack.inspect.lrange(fx.stack.queue.keys.deadLetters[2]!, 0, -1)).toContain(id);
  expect((await post(`/tasks/${id}/retry`)).status).toBe(200);
  const t = await waitFor(statusIs(id, 'dead'), 10000, 'dead again');
  expect(t.attempts).toBe(4);
  expect((await runsOf(fx.stack.pool, id)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'failed'], [2, 'failed'], [3, 'failed'], [4, 'failed']]);
  // One entry in the dead-letter list, not two.
  expect((await fx.stack.inspect.lrange(fx.stack.queue.keys.deadLetters[2]!, 0, -1)).filter((x) => x === id)).toHaveLength(1);
  // Any other status: 409 (a queued task: no worker runs now).
  await worker!.stop(0);
  worker = null;
  const queued = await submit('noop');
  const res = await post(`/tasks/${queued}/retry`);
  expect(res.status).toBe(409);
  expect(res.body.detail).toMatch(/is queued; only a dead or cancelled task can be retried/);
});

it('after an operator retry, backoff counts the fresh budget’s attempts from 1 again', async () => {
  ({ worker } = fx.startWorker());
  const body = { type: 'always_fail', max_retries: 1, retry: { backoff: 'linear', base_ms: 100, jitter: 'none' } };
  const created = await fetch(`${fx.api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const id = ((await created.json()) as { id: string }).id;
  await waitFor(statusIs(id, 'dead'));
  await worker!.stop(0);
  ({ worker } = fx.startWorker());
  expect((await post(`/tasks/${id}/retry`)).status).toBe(200);
  // Attempt 3 is the first of the new budget: its retry waits base_ms × 1, not × 3.
  const delay = await waitFor(async () => {
    const { rows } = await fx.stack.pool.query<{ status: string; attempts: number; ms: number }>(
      `SELECT status::text AS status, attempts, extract(epoch FROM run_after - updated_at) * 1000 AS ms FROM tasks WHERE id = $1`,
      [id],
    );
    const r = rows[0]!;
    return r.attempts >= 3 && (r.status === 'retrying' || r.status === 'dead') ? r : null;
  });
  expect(delay).toMatchObject({ status: 'retrying', attempts: 3 });
  expect(Math.round(Number(delay.ms))).toBe(100);
});

it('a cancelled task retried runs and succeeds', async () => {
  const id = await submit('noop');
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(200);
  const retried = await post(`/tasks/${id}/retry`);
  expect(retried.status).toBe(200);
  expect(retried.body).toMatchObject({ status: 'queued', cancel_requested_at: null, finished_at: null });
  ({ worker } = fx.startWorker());
  await waitFor(statusIs(id, 'succeeded'));
});

it('a cancelled lease whose worker died is reaped as cancelled, never queued again', async () => {
  const id = await submit('noop');
  const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 200, owner: 'gone' });
  expect(lease?.message.id).toBe(id);
  const res = await post(`/tasks/${id}/cancel`);
  expect(res.status).toBe(202);
  // A worker whose reaper finds the expired lease; its handlers would run the task if it came back.
  const ran: string[] = [];
  ({ worker } = fx.startWorker({ handlers: { noop: async (ctx) => void ran.push(ctx.id) } }));
  await waitFor(statusIs(id, 'cancelled'), 10000, 'the reaped task to end cancelled');
  await waitFor(async () => !(await redisHolds(id)), 5000, 'Redis to forget it');
  await new Promise((r) => setTimeout(r, 300));
  expect(ran).toEqual([]);
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['expired']);
});

it('a tombstone keeps a reconciler that read the task as waiting from queueing it again', async () => {
  const id = await submit('noop');
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(200);
  // What a reconciler pass would push had it read the task just before the cancel committed.
  const pushed = await fx.stack.queue.enqueue([{ id, tenant: 'default', type: 'noop', priority: 'default', payload: {}, maxAttempts: 4, createdAtMs: Date.now(), attempts: 0 }]);
  expect(pushed).toEqual([false]);
  expect(await redisHolds(id)).toBe(false);
});

it('a cancelled task retried while its last attempt’s end is still being written runs again (the reconciler queues it)', async () => {
  const id = await submit('noop');
  const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(202);
  // The worker aborted the attempt; Postgres has its end (cancelled), Redis not yet.
  const written = await recordOutcomes(fx.stack.pool, [{ id, token: lease!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now() - 5, durationMs: 5, error: 'cancelled', dead: false, delayMs: 10 }]);
  expect([...written.cancelled]).toEqual([id]);
  // The operator retries it in that moment: Postgres queues it; Redis still has the lease.
  expect((await post(`/tasks/${id}/retry`)).status).toBe(200);
  // The lease ends as the completer ends a cancelled attempt's: the task is forgotten.
  await fx.stack.queue.finish([{ id, token: lease!.token, priority: 'default', outcome: 'succeeded', settleAttempts: 1 }]);
  expect(await redisHolds(id)).toBe(false);
  // A reconciler pass finds it waiting in Postgres and unknown to Redis, and queues it (no tombstone stops it).
  const reconciler = new Reconciler({ pool: fx.stack.pool, queue: fx.stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
  expect((await reconciler.runOnce()).requeued).toBe(1);
  ({ worker } = fx.startWorker());
  await waitFor(statusIs(id, 'succeeded'));
  expect((await runsOf(fx.stack.pool, id)).map((r) => r.outcome)).toEqual(['cancelled', 'succeeded']);
});

it('a cancel meeting a retry Postgres wrote but Redis had not applied (202) ends cancelled: the reconciler finishes it, never runs it again', async () => {
  const id = await submit('noop');
  const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  // The attempt failed and its retry is in Postgres; the completer has not ended the lease in Redis yet.
  const written = await recordOutcomes(fx.stack.pool, [{ id, token: lease!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now() - 5, durationMs: 5, error: 'boom', dead: false, delayMs: 10 }]);
  expect([...written.applied]).toEqual([id]);
  expect(await taskStatus(fx.stack.pool, id)).toMatchObject({ status: 'retrying' });
  // Redis still holds the lease: the cancel answers 202 and leaves the task to the attempt's end.
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(202);
  // The lease ends as a retry; the tombstone makes Redis forget the task instead.
  await fx.stack.queue.finish([{ id, token: lease!.token, priority: 'default', outcome: 'retrying', delayMs: 10, settleAttempts: 1 }]);
  expect(await redisHolds(id)).toBe(false);
  const reconciler = new Reconciler({ pool: fx.stack.pool, queue: fx.stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
  expect(await reconciler.runOnce()).toMatchObject({ cancelled: 1, requeued: 0 });
  expect(await taskStatus(fx.stack.pool, id)).toMatchObject({ status: 'cancelled', attempts: 1 });
  const ran: string[] = [];
  ({ worker } = fx.startWorker({ handlers: { noop: async (ctx) => void ran.push(ctx.id) } }));
  await new Promise((r) => setTimeout(r, 300));
  expect(ran).toEqual([]);
  expect(await reconciler.runOnce()).toMatchObject({ cancelled: 0, requeued: 0 });
});

it('a cancel landing between a retry’s commit and its push: the task stays cancelled and never runs', async () => {
  const id = await submit('noop');
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(200);
  // The retry's transaction as retryTasks makes it: the task queued, its tombstone lifted while
  // the row is held; committed. Its push to Redis has not happened yet.
  const c = await fx.stack.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`UPDATE tasks SET status = 'queued', retry_base = attempts, cancel_requested_at = NULL, finished_at = NULL, updated_at = now() WHERE id = $1`, [id]);
    await fx.stack.queue.liftTombstones([{ id, tenant: 'default' }]);
    await c.query('COMMIT');
  } finally {
    c.release();
  }
  // Another operator cancels it now: Redis does not hold it yet, so it is cancelled at once (200).
  expect((await post(`/tasks/${id}/cancel`)).status).toBe(200);
  // The retry's push arrives late: the task is tombstoned again, so it is left out.
  const item = { id, tenant: 'default', type: 'noop', priority: 'default' as const, payload: {}, maxAttempts: 4, createdAtMs: Date.now(), attempts: 0 };
  expect(await fx.stack.queue.requeue([item])).toEqual([false]);
  expect(await redisHolds(id)).toBe(false);
  const ran: string[] = [];
  ({ worker } = fx.startWorker({ handlers: { noop: async (ctx) => void ran.push(ctx.id) } }));
  await new Promise((r) => setTimeout(r, 300));
  expect(ran).toEqual([]);
  expect(await taskStatus(fx.stack.pool, id)).toMatchObject({ status: 'cancelled' });
  // A retry after that works as always: it lifts the new tombstone, and the task runs.
  expect((await post(`/tasks/${id}/retry`)).status).toBe(200);
  await waitFor(statusIs(id, 'succeeded'));
  expect(ran).toEqual([id]);
});

it('a tombstone lapses: a cancel whose transaction failed does not keep the reconciler away for good', async () => {
  const id = await submit('noop');
  // What cancel.lua leaves when its Postgres transaction then fails: the task removed, tombstoned
  // eleven minutes ago, while Postgres still shows it queued.
  expect(await fx.stack.queue.cancel([{ id, tenant: 'default' }])).toEqual(['removed']);
  await fx.stack.inspect.zadd(fx.stack.queue.keys.tombstones, Date.now() - 11 * 60_000, id);
  const pushed = await fx.stack.queue.enqueue([{ id, tenant: 'default', type: 'noop', priority: 'default', payload: {}, maxAttempts: 4, createdAtMs: Date.now(), attempts: 0 }]);
  expect(pushed).toEqual([true]);
});

it('a cancel that leaves leased tasks alone (a workflow stopping): the waiting task is removed and tombstoned, the leased one keeps its lease untold', async () => {
  const first = await submit('noop');
  const second = await submit('noop');
  const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect(lease!.message.id).toBe(first);
  const told: string[] = [];
  const unsubscribe = await fx.stack.queue.onCancel((id) => told.push(id));
  try {
    expect(await fx.stack.queue.cancel([{ id: first, tenant: 'default' }, { id: second, tenant: 'default' }], { abortLeased: false })).toEqual(['leased', 'removed']);
    // Not tombstoned (the heartbeat would abort it) and still leased: its outcome ends it as usual.
    expect(await fx.stack.queue.cancelRequested([{ id: first, token: lease!.token }])).toEqual([false]);
    expect(await fx.stack.queue.finish([{ id: first, token: lease!.token, priority: 'default', outcome: 'succeeded', settleAttempts: 1 }])).toEqual(['finished']);
    // The waiting one is gone, and a late push of it is refused.
    expect(await redisHolds(second)).toBe(false);
    expect(await fx.stack.queue.enqueue([{ id: second, tenant: 'default', type: 'noop', priority: 'default', payload: {}, maxAttempts: 4, createdAtMs: Date.now(), attempts: 0 }])).toEqual([false]);
    await new Promise((r) => setTimeout(r, 100));
    expect(told).toEqual([]);
  } finally {
    await unsubscribe();
  }
});
