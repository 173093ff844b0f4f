/** The reconciler rebuilds Redis from Postgres: lost pushes, flushed data, vanished leases. */
import { markRunning, recordOutcomes } from '../../services/core/tasks/attempt-store';
import { createTask } from '../../services/core/tasks/task-store';
import { submitTask } from '../../services/core/tasks/submit';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { chunksWithin, Reconciler } from '../../services/worker/reconciler';
import type { Pool } from 'pg';
import { Stack, runsOf, silentLog, taskStatus, waitFor } from '../support/stack';
import { resettableStack } from '../support/stack-reset';

let stack: Stack;
const shared = resettableStack();
beforeEach(() => {
  stack = shared.current();
});

function reconciler(batchSize = 100): Reconciler {
  return new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize }, silentLog);
}

/** A task committed in Postgres whose push to Redis never happened. */
async function storedOnly(maxRetries = 3): Promise<string> {
  const id = uuidv7();
  await createTask(stack.pool, { id, type: 'noop', priority: 'high', payload: { k: id }, maxRetries, tenant: 'default', idempotencyKey: null }, null, 1000);
  return id;
}

const flushNamespace = () => stack.flushRedis();

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
  await Promise.all(Array.from({ length: 25 }, () => storedOnly()));
  const res = await reconciler(10).runOnce();
  expect(res).toMatchObject({ checked: 25, requeued: 25 });
  expect((await stack.queue.stats()).ready.high).toBe(25);
});

it('a fresh backlog is walked a few pages a pass, not read whole every interval; tasks behind it are reached on later passes', async () => {
  // Tenant `a`: 150 tasks just submitted (inside the grace period). Tenant `b`: one lost a minute ago.
  await stack.pool.query(`
    INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries)
    SELECT gen_random_uuid(), 'a', 'noop', 'high', '{}', 'queued', 0 FROM generate_series(1, 150)`);
  const lost = uuidv7();
  await createTask(stack.pool, { id: lost, type: 'noop', priority: 'high', payload: {}, maxRetries: 0, tenant: 'b', idempotencyKey: null }, null, 1000);
  await stack.pool.query(`UPDATE tasks SET created_at = now(), updated_at = now() - interval '1 minute' WHERE id = $1`, [lost]);
  const r = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 30_000, batchSize: 10 }, silentLog);
  // Eleven pages of busy tasks end the first pass (110 of 150 read); the second reaches `b`.
  expect(await r.runOnce()).toMatchObject({ checked: 0, requeued: 0 });
  expect(await r.runOnce()).toMatchObject({ checked: 1, requeued: 1 });
  expect((await stack.queue.lease({ max: 10, visibilityMs: 1000 })).map((l) => l.message.id)).toEqual([lost]);
});

it('a page whose repair failed (Redis away for a moment) is walked again by the next pass, not left for the walk to come round', async () => {
  await Promise.all(Array.from({ length: 150 }, () => storedOnly()));
  const r = reconciler(100);
  // The push the reconciler makes (a partitioned queue: pushAnswering, which throws when no partition answered).
  const q = stack.queue as { enqueue: (...a: unknown[]) => Promise<unknown>; pushAnswering?: (...a: unknown[]) => Promise<unknown> };
  const spy = (q.pushAnswering ? jest.spyOn(q as Required<typeof q>, 'pushAnswering') : jest.spyOn(q, 'enqueue')).mockImplementationOnce(async () => {
    throw new Error('Connection is closed.');
  });
  await expect(r.runOnce()).rejects.toThrow('Connection is closed.');
  expect(await r.runOnce()).toMatchObject({ requeued: 150 });
  expect((await stack.queue.stats()).ready.high).toBe(150);
  spy.mockRestore();
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
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([{ deadLetteredAfter: null }]);
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

it.each([
  ['still leads', false],
  ['has stopped and given the lock back', true],
])('a pass that outlives its lock stops before pushing what it read (the worker that took over %s): a task that ran and ended meanwhile is not queued again', async (_, otherStops) => {
  const id = await storedOnly();
  // This worker's payload read answers only when the test lets it, after the lock's TTL (3
  // intervals + 1 s) has passed and another worker took over.
  let stall = true;
  let stalled = false;
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  // (The payloads are read on a connection of the push's own, in its transaction.)
  const stalling = <T extends object>(on: T): T =>
    new Proxy(on, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? async (...args: unknown[]) => {
              const res = await ((target as { query: (...a: unknown[]) => Promise<unknown> }).query.bind(target))(...args);
              if (stall && typeof args[0] === 'string' && args[0].includes('payload::text AS payload')) {
                stall = false;
                stalled = true;
                await gate;
              }
              return res;
            }
          : prop === 'connect'
            ? async () => stalling(await stack.pool.connect())
            : Reflect.get(target, prop, receiver),
    });
  const slow = stalling(stack.pool);
  const metrics = () => workerMetrics(createRegistry('worker'));
  const a = new Reconciler({ pool: slow, queue: stack.queue, metrics: metrics() }, { intervalMs: 100, graceMs: 0, batchSize: 100 }, silentLog);
  const b = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: metrics() }, { intervalMs: 100, graceMs: 0, batchSize: 100 }, silentLog);
  const passA = a.runOnce();
  await waitFor(async () => stalled, 10_000, 'the first pass to read the payloads');
  // Once the lock lapses, another worker's reconciler leads and pushes the task; a worker runs it.
  let passB: { leader: boolean; requeued: number } = { leader: false, requeued: 0 };
  await waitFor(async () => (passB = await b.runOnce()).leader, 10_000, 'the lock to lapse');
  expect(passB).toMatchObject({ leader: true, requeued: 1 });
  const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60000, owner: 'w1' });
  expect(l!.message.id).toBe(id);
  // Its outcome is written all the way (Redis forgets it), or until the write waits for the share
  // lock the first pass's push holds.
  const ran = (async () => {
    await recordOutcomes(stack.pool, [{ id, token: l!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0 }]);
    await stack.queue.finish([{ id, token: l!.token, priority: 'high', outcome: 'succeeded', settleAttempts: 1 }]);
  })();
  await waitFor(
    async () =>
      ((await taskStatus(stack.pool, id)).status === 'succeeded' && (await stack.queue.indexed([{ id, tenant: 'default' }]))[0] === null) ||
      (await stack.pool.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rowCount! > 0,
    10_000,
    'the task to be run and forgotten, or its outcome write to wait',
  );
  if (otherStops) await b.stop();
  // The first pass goes on with what it read before: it must not push the finished task again.
  resume();
  await passA;
  await ran;
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'succeeded' });
  expect(await stack.queue.lease({ max: 10, visibilityMs: 60000, owner: 'w2' })).toEqual([]);
  expect(await stack.queue.indexed([{ id, tenant: 'default' }])).toEqual([null]);
  await b.stop();
});

describe('tasks Redis knows but holds nowhere', () => {
  // One reconciler per test: a second would not be the leader.
  let r: Reconciler;
  beforeEach(() => {
    r = reconciler();
  });

  /** Queued tasks, indexed in Redis (by the reconciler, as a lost push would be). */
  async function indexed(n: number, maxRetries = 3): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await storedOnly(maxRetries));
    await r.runOnce();
    return ids;
  }

  it('a consistent Redis costs a count: nothing is forgotten or requeued', async () => {
    const [ready, leased, retrying, dead] = await indexed(4);
    const leases = await stack.queue.lease({ max: 4, visibilityMs: 60000 });
    expect(leases.map((l) => l.message.id)).toEqual([ready, leased, retrying, dead]);
    const [l1, , l3, l4] = leases;
    // One waits again, one stays leased, one waits for a retry, one is dead-lettered.
    await stack.queue.release([{ id: ready!, token: l1!.token, priority: 'high' }]);
    await stack.queue.retry([{ id: retrying!, token: l3!.token, priority: 'high', delayMs: 60_000 }]);
    await stack.queue.bury([{ id: dead!, token: l4!.token, priority: 'high' }]);
    expect(await stack.queue.sweep(100)).toEqual({ known: 4, held: 4, orphans: 0, heldTwice: 0, tenantRepairs: 0, forgotten: [] });
    expect(await r.runOnce()).toMatchObject({ unheld: 0, requeued: 0, vanishedLeases: 0 });
  });

  it('a task dropped from its ready list is queued again from Postgres, with its payload, and runs once', async () => {
    const [a, b, c] = await indexed(3);
    // A ready-list entry lost while the task's message stays (a bug, or an operator's LREM): the
    // check that only asks whether Redis knows the task passes, and nothing would ever lease it.
    expect(await stack.inspect.lrem(stack.queue.keys.tenantQueue('high', 'default'), 0, b!)).toBe(1);
    const res = await r.runOnce();
    expect(res).toMatchObject({ unheld: 1, requeued: 1, vanishedLeases: 0 });
    expect(await stack.queue.sweep(100)).toMatchObject({ known: 3, held: 3, forgotten: [] });
    const leases = await stack.queue.lease({ max: 10, visibilityMs: 60000 });
    expect(leases.map((l) => [l.message.id, l.attempt])).toEqual([
      [a, 1],
      [c, 1],
      [b, 1],
    ]);
    expect(leases[2]!.message.payload).toEqual({ k: b });
  });

  it('a task waiting for a retry that lost its retry entry goes back to its retry set, due when Postgres says', async () => {
    const [id] = await indexed(1);
    const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60000 });
    await recordOutcomes(stack.pool, [{ id: id!, token: l!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: 'x', dead: false, delayMs: 60_000 }]);
    await stack.queue.retry([{ id: id!, token: l!.token, priority: 'high', delayMs: 60_000 }]);
    await stack.inspect.zrem(stack.queue.keys.retries[1]!, id!);
    expect(await r.runOnce()).toMatchObject({ unheld: 1, requeued: 1 });
    const due = Number(await stack.inspect.zscore(stack.queue.keys.retries[1]!, id!));
    const { run_after } = (await stack.pool.query('SELECT run_after FROM tasks WHERE id = $1', [id])).rows[0];
    expect(due).toBe(run_after.getTime());
    // Its attempt stays counted: the next lease is attempt 2.
    await stack.inspect.zadd(stack.queue.keys.retries[1]!, 0, id!);
    await stack.queue.promoteDue(10);
    expect((await stack.queue.lease({ max: 1, visibilityMs: 60000 })).map((x) => x.attempt)).toEqual([2]);
  });

  it('a delayed task that lost its due-time entry goes back to it in the same pass, due at its run_at', async () => {
    const runAt = new Date(Date.now() + 60_000);
    const res = await submitTask(
      { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60_000 },
      { type: 'noop', priority: 'high', payload: { k: 'later' }, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '', runAt },
    );
    if (res.kind === 'conflict') throw new Error('unexpected conflict');
    const id = res.task.id;
    const due = stack.queue.keys.retries[1]!;
    expect(Number(await stack.inspect.zscore(due, id))).toBe(runAt.getTime());
    // Within the horizon the API indexed it by due time; the loader's mark is past it, so only the
    // sweep can see that entry go.
    expect(await stack.inspect.zrem(due, id)).toBe(1);
    expect(await r.runOnce()).toMatchObject({ unheld: 1, requeued: 1 });
    expect(Number(await stack.inspect.zscore(due, id))).toBe(runAt.getTime());
    expect(await stack.queue.sweep(100)).toMatchObject({ known: 1, held: 1, forgotten: [] });
    // Due, it runs with its payload, as a delayed task (its lateness measured from run_at).
    await stack.inspect.zadd(due, 0, id);
    await stack.queue.promoteDue(10);
    const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60000 });
    expect([l!.message.id, l!.attempt, l!.message.payload, l!.message.runAtMs]).toEqual([id, 1, { k: 'later' }, runAt.getTime()]);
  });

  it('removes held entries of tasks Redis does not know, and counts ids held twice without touching them', async () => {
    const [id] = await indexed(1);
    const k = stack.queue.keys;
    await stack.inspect.rpush(k.tenantQueue('default', 'default'), 'ghost');
    await stack.inspect.zadd(k.retries[0]!, 1, 'ghost-retry');
    // (The ghost's list at `default` was named by no ring: put back, then emptied of the ghost.)
    expect(await stack.queue.sweep(100)).toEqual({ known: 1, held: 3, orphans: 2, heldTwice: 0, tenantRepairs: 1, forgotten: [] });
    expect(await stack.inspect.lrange(k.tenantQueue('default', 'default'), 0, -1)).toEqual([]);
    expect(await stack.inspect.zcard(k.retries[0]!)).toBe(0);
    await stack.inspect.rpush(k.tenantQueue('high', 'default'), id!);
    expect(await stack.queue.sweep(100)).toMatchObject({ known: 1, held: 2, orphans: 0, heldTwice: 1, forgotten: [] });
    expect(await stack.inspect.lrange(k.tenantQueue('high', 'default'), 0, -1)).toEqual([id, id]);
    // Told of it, a sweep does not search for that duplicate again, but a new loss still shows.
    expect(await stack.queue.sweep(100, 1)).toEqual({ known: 1, held: 2, orphans: 0, heldTwice: 1, tenantRepairs: 0, forgotten: [] });
    await stack.inspect.rpush(k.tenantQueue('low', 'default'), 'ghost');
    expect(await stack.queue.sweep(100, 1)).toEqual({ known: 1, held: 3, orphans: 1, heldTwice: 1, tenantRepairs: 1, forgotten: [] });
  });

  it('forgets at most `limit` per call; the rest wait for the next pass', async () => {
    const ids = await indexed(5);
    await stack.inspect.del(stack.queue.keys.tenantQueue('high', 'default'));
    expect((await stack.queue.sweep(2)).forgotten).toHaveLength(2);
    expect((await stack.queue.sweep(10)).forgotten).toHaveLength(3);
    expect(await r.runOnce()).toMatchObject({ unheld: 0, requeued: 5 });
    expect((await stack.queue.stats()).ready.high).toBe(ids.length);
  });
});

describe('payloads are read only for the tasks re-queued, a bounded number of bytes at a time', () => {
  /** The real pool, recording per statement how many rows came back with a payload and its bytes. */
  function payloadLog(real: Pool): { pool: Pool; reads: { rows: number; bytes: number }[] } {
    const reads: { rows: number; bytes: number }[] = [];
    const logging = (run: (...a: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>) => async (...args: unknown[]) => {
      const res = await run(...args);
      const withPayload = (res.rows ?? []).filter((r) => r !== null && typeof r === 'object' && 'payload' in r);
      if (withPayload.length > 0) {
        const bytes = withPayload.reduce((sum, r) => sum + Buffer.byteLength(typeof r.payload === 'string' ? r.payload : JSON.stringify(r.payload)), 0);
        reads.push({ rows: withPayload.length, bytes });
      }
      return res;
    };
    const query = logging((...a: unknown[]) => (real.query as (...x: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>).apply(real, a));
    // (The payloads are read on a connection of the push's own, in its transaction.)
    const logged = <T extends object>(on: T, q: (...args: unknown[]) => Promise<unknown>): T =>
      new Proxy(on, {
        get: (target, prop, receiver) =>
          prop === 'query'
            ? q
            : prop === 'connect'
              ? async () => {
                  const client = await real.connect();
                  return logged(client, logging((...a: unknown[]) => (client.query as (...x: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>).apply(client, a)));
                }
              : Reflect.get(target, prop, receiver),
      });
    const pool = logged(real, query);
    return { pool, reads };
  }

  /** A task committed straight into Postgres (never pushed), with a payload of about `bytes`. */
  async function inserted(bytes: number, priority = 'high'): Promise<{ id: string; payload: Record<string, unknown> }> {
    const id = uuidv7();
    // Nested values, non-ASCII text, an exact decimal: what arrives must equal what was stored.
    const payload = { k: id, text: 'ünïcødé € 😀 "quoted" \\ back', nested: [1, 2.5, null, true, { a: 'b' }], blob: 'x'.repeat(bytes) };
    await stack.pool.query(`INSERT INTO tasks (id, type, priority, payload, max_retries) VALUES ($1, 'noop', $2, $3::jsonb, 3)`, [id, priority, JSON.stringify(payload)]);
    return { id, payload };
  }

  it('re-queues many large tasks with their payloads, each read once, in chunks within the budget (a larger payload alone)', async () => {
    // Two payloads to a chunk and one past the budget alone, as at any size: only the ratios matter.
    const budget = 64 * 1024;
    const tasks = [];
    for (let i = 0; i < 40; i++) tasks.push(await inserted(25 * 1024));
    tasks.push(await inserted(100 * 1024));
    for (let i = 0; i < 5; i++) tasks.push(await inserted(25 * 1024));
    const { pool, reads } = payloadLog(stack.pool);
    const r = new Reconciler({ pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 1000, payloadBytes: budget }, silentLog);

    expect(await r.runOnce()).toMatchObject({ checked: tasks.length, requeued: tasks.length });
    const leases = await stack.queue.lease({ max: 100, visibilityMs: 60000 });
    expect(leases.map((l) => l.message.id)).toEqual(tasks.map((t) => t.id));
    for (const [i, l] of leases.entries()) expect(l.message).toMatchObject({ type: 'noop', priority: 'high', maxAttempts: 4, payload: tasks[i]!.payload });

    // The page carried no payloads; the reads that did stay within the budget, or hold one payload.
    const total = reads.reduce((sum, x) => sum + x.bytes, 0);
    expect(reads.reduce((sum, x) => sum + x.rows, 0)).toBe(tasks.length);
    for (const read of reads) expect(read.rows === 1 || read.bytes <= budget).toBe(true);
    expect(reads).toContainEqual({ rows: 1, bytes: expect.any(Number) });
    expect(Math.max(...reads.map((x) => x.bytes))).toBeGreaterThan(budget);
    expect(reads.length).toBeGreaterThanOrEqual(Math.ceil(total / budget));
    // Nothing left to do, and nothing read: a consistent Redis costs no payload.
    reads.length = 0;
    expect(await r.runOnce()).toMatchObject({ requeued: 0 });
    expect(reads).toEqual([]);
  });

  it('the sweep re-indexes forgotten tasks with payloads read apart from the ids, within the budget', async () => {
    const budget = 64 * 1024;
    const tasks = [await inserted(50 * 1024), await inserted(50 * 1024), await inserted(50 * 1024)];
    // Pushed as the API would; then two ready-list entries are lost.
    await stack.queue.enqueue(tasks.map((t) => ({ id: t.id, tenant: 'default', type: 'noop', priority: 'high', payload: t.payload, maxAttempts: 4, createdAtMs: Date.now(), attempts: 0 })));
    for (const t of tasks.slice(1)) expect(await stack.inspect.lrem(stack.queue.keys.tenantQueue('high', 'default'), 0, t.id)).toBe(1);
    const { pool, reads } = payloadLog(stack.pool);
    // A long grace period: the page walk sees none of these fresh tasks, only the sweep does.
    const r = new Reconciler({ pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 600_000, batchSize: 100, payloadBytes: budget }, silentLog);
    expect(await r.runOnce()).toMatchObject({ checked: 0, unheld: 2, requeued: 2 });
    expect(reads.map((x) => x.rows)).toEqual([1, 1]);
    const leases = await stack.queue.lease({ max: 10, visibilityMs: 60000 });
    expect(leases.map((l) => [l.message.id, l.message.payload])).toEqual(tasks.map((t) => [t.id, t.payload]));
  });

  it('chunksWithin: consecutive runs within the budget, an oversized item alone', () => {
    const size = (n: number) => n;
    expect(chunksWithin([], size, 10)).toEqual([]);
    expect(chunksWithin([4, 4, 4, 11, 2, 8, 10], size, 10)).toEqual([[4, 4], [4], [11], [2, 8], [10]]);
    expect(() => new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 1, payloadBytes: 0 }, silentLog)).toThrow(RangeError);
  });
});

describe('the lost attempts it records count as the reaper counts them', () => {
  /** The sum of a worker counter's series matching `labels`. */
  async function counted(registry: ReturnType<typeof createRegistry>, name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((n, v) => n + v.value, 0);
  }

  it('after Redis lost everything: each vanished lease is a failed attempt, the last one also a final failure', async () => {
    const registry = createRegistry('worker');
    const r = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(registry), typeLabel: (t) => t }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
    const lastChance = await storedOnly(0);
    const leased = await storedOnly(5);
    await r.runOnce();
    const leases = await stack.queue.lease({ max: 2, visibilityMs: 60000 });
    await markRunning(stack.pool, leases.map((l) => ({ id: l.message.id, token: l.token, attempt: l.attempt })));
    await flushNamespace();
    expect(await r.runOnce()).toMatchObject({ vanishedLeases: 2 });
    // Postgres's truth: two expired attempts, one task dead.
    const { rows } = await stack.pool.query<{ runs: number; dead: number }>(
      `SELECT (SELECT count(*)::int FROM task_runs WHERE outcome = 'expired') AS runs, (SELECT count(*)::int FROM tasks WHERE status = 'dead') AS dead`,
    );
    expect(rows[0]).toEqual({ runs: 2, dead: 1 });
    expect(await taskStatus(stack.pool, lastChance)).toMatchObject({ status: 'dead' });
    expect(await taskStatus(stack.pool, leased)).toMatchObject({ status: 'queued' });
    expect(await counted(registry, 'tasks_failed_total', { type: 'noop', priority: 'high' })).toBe(2);
    expect(await counted(registry, 'tasks_dead_total', { type: 'noop', priority: 'high' })).toBe(1);
    // A pass that records nothing counts nothing.
    expect(await r.runOnce()).toMatchObject({ vanishedLeases: 0 });
    expect(await counted(registry, 'tasks_failed_total')).toBe(2);
  });

  it('a death Redis decided and Postgres never heard of counts once it is recorded', async () => {
    const registry = createRegistry('worker');
    const r = new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(registry), typeLabel: () => 'unknown' }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
    const id = await storedOnly(0);
    await r.runOnce();
    const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60000 });
    expect(await stack.queue.bury([{ id, token: l!.token, priority: 'high' }])).toEqual([true]);
    expect(await r.runOnce()).toMatchObject({ vanishedLeases: 1 });
    expect(await counted(registry, 'tasks_failed_total', { type: 'unknown', priority: 'high' })).toBe(1);
    expect(await counted(registry, 'tasks_dead_total', { type: 'unknown', priority: 'high' })).toBe(1);
  });
});
