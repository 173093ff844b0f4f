/**
 * Leasing ahead (WORKER_LEASE_AHEAD_MS): behind a deep backlog (sixteen times what it would take
 * ahead) of short attempts a worker leases up to WORKER_POOL or LEASE_BATCH_SIZE (the larger) tasks
 * beyond its free slots and starts each as a slot frees. A lease waiting ahead
 * never runs twice or late: it is handed back uncounted at the stop or once it has waited too long,
 * and an operator's cancel ends it without its handler running. Real Postgres and Redis, in-process workers.
 */
import type { TaskContext } from '../../services/worker/handlers';
import type { LeaseBatch, LeaseOptions } from '../../services/core/queue/queue';
import { submitTasks } from '../../services/core/tasks/submit';
import { runsOf, silentLog, stackWithApi, taskStatus, waitFor } from '../support/stack';

const fx = stackWithApi({ REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 50 }, { each: true });

/** Every lease call's task ids, in order. */
function spyLeases(): string[][] {
  const calls: string[][] = [];
  const queue = fx.stack.queue as unknown as { leaseBatch(opts: LeaseOptions): Promise<LeaseBatch> };
  const leaseBatch = queue.leaseBatch.bind(queue);
  queue.leaseBatch = async (opts) => {
    const batch = await leaseBatch(opts);
    calls.push(batch.leases.map((l) => l.message.id));
    return batch;
  };
  return calls;
}

/** Submits tasks of these types in one call (one tenant's list, in this order); their ids. */
async function submit(types: string[]): Promise<string[]> {
  const out = await submitTasks(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    types.map((type) => ({ type, priority: 'default', payload: {}, maxRetries: 3, tenant: 'default', idempotencyKey: null, canonical: '' })),
  );
  return out.map((o) => {
    if (o.kind === 'conflict') throw new Error('unexpected conflict');
    return o.task.id;
  });
}

/** A handler that records its task and runs until its attempt is aborted. */
function holding(started: string[]) {
  return ({ id, signal }: TaskContext) =>
    new Promise<void>((_, reject) => {
      started.push(id);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
}

/** Waits until `n` leases wait ahead: leased, not started (the first `quick` leased tasks ran at once). */
async function aheadOf(calls: string[][], started: string[], quick: string[], n: number): Promise<string[]> {
  return waitFor(async () => {
    const ahead = calls.flat().filter((id) => !quick.includes(id) && !started.includes(id));
    return ahead.length === n ? ahead : null;
  }, 10_000, `${n} leases ahead`);
}

const allFinal = (ids: string[]) =>
  waitFor(async () => {
    const s = await Promise.all(ids.map((id) => taskStatus(fx.stack.pool, id)));
    return s.every((t) => ['succeeded', 'dead', 'cancelled'].includes(t.status)) ? s : null;
  }, 20_000, 'every task final');

it('behind a backlog of short attempts a pool smaller than LEASE_BATCH_SIZE fills whole lease calls, and runs each task once', async () => {
  const calls = spyLeases();
  const ids = await submit(Array.from({ length: 400 }, () => 'noop'));
  // Without leasing ahead a call takes at most the 4 free slots; with up to the pool ahead, 8.
  fx.startWorker({ cfg: { WORKER_POOL: 4, LEASE_BATCH_SIZE: 16 } });
  const done = await allFinal(ids);
  expect(done.every((t) => t.status === 'succeeded' && t.attempts === 1)).toBe(true);
  const sizes = calls.map((c) => c.length);
  expect(Math.max(...sizes)).toBe(16);
  expect(calls.flat().sort()).toEqual([...ids].sort());
  const { rows } = await fx.stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_runs WHERE task_id = ANY($1::uuid[]) AND attempt = 1 AND outcome = 'succeeded'`, [ids]);
  expect(rows[0]!.n).toBe(400);
});

it('with WORKER_LEASE_AHEAD_MS=0 a lease call takes no more than the free slots', async () => {
  const calls = spyLeases();
  const ids = await submit(Array.from({ length: 200 }, () => 'noop'));
  fx.startWorker({ cfg: { WORKER_POOL: 4, WORKER_LEASE_AHEAD_MS: 0 } });
  await allFinal(ids);
  expect(Math.max(...calls.map((c) => c.length))).toBe(4);
});

it('leases waiting ahead at the stop are handed back uncounted: they never ran there, and run once, as attempt 1, on the next worker', async () => {
  const calls = spyLeases();
  const started: string[] = [];
  const quick = await submit(['noop', 'noop']);
  // A backlog of at least sixteen times what the worker leases ahead (2 slots, calls of 2: 2).
  const held = await submit(Array.from({ length: 40 }, () => 'hold'));
  // Any attempt time qualifies: the two no-ops say attempts are short, then the holds fill both slots.
  const a = fx.startWorker({ handlers: { hold: holding(started) }, cfg: { WORKER_POOL: 2, LEASE_BATCH_SIZE: 2, WORKER_LEASE_AHEAD_MS: 60_000 } });
  const ahead = await aheadOf(calls, started, quick, 2);
  await waitFor(async () => started.length === 2 || null, 5000, 'both slots holding');
  await a.worker.stop(0);
  expect(started.filter((id) => ahead.includes(id))).toEqual([]);

  fx.startWorker({ handlers: { hold: async () => undefined }, cfg: { WORKER_POOL: 2 } });
  await allFinal([...quick, ...held]);
  for (const id of ahead) {
    expect((await runsOf(fx.stack.pool, id)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'succeeded']]);
  }
});

it('a lease that waits ahead longer than a quarter of VIS_TIMEOUT_MS is handed back uncounted, and another worker runs it', async () => {
  const calls = spyLeases();
  const started: string[] = [];
  const quick = await submit(['noop', 'noop']);
  const held = await submit(Array.from({ length: 40 }, () => 'hold'));
  fx.startWorker({ handlers: { hold: holding(started) }, cfg: { WORKER_POOL: 2, LEASE_BATCH_SIZE: 2, WORKER_LEASE_AHEAD_MS: 60_000, VIS_TIMEOUT_MS: 2000 } });
  const ahead = await aheadOf(calls, started, quick, 2);
  await waitFor(async () => started.length === 2 || null, 5000, 'both slots holding');
  // Handed back after 500 ms (within a poll interval), long before the 2 s lease would run out.
  await new Promise((r) => setTimeout(r, 900));
  const ran: string[] = [];
  fx.startWorker({ handlers: { hold: async ({ id }: TaskContext) => void ran.push(id) }, cfg: { WORKER_POOL: 2 } });
  const rest = held.filter((id) => !started.includes(id));
  await allFinal(rest);
  expect(ran.sort()).toEqual([...rest].sort());
  // Not reaped: no lost attempt was counted for them.
  for (const id of ahead) {
    expect((await runsOf(fx.stack.pool, id)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'succeeded']]);
  }
  // The first worker's slots are still held: nothing it took ahead ran there.
  expect(started.filter((id) => ahead.includes(id))).toEqual([]);
});

it("an operator's cancel of a lease waiting ahead ends it cancelled without its handler running", async () => {
  const calls = spyLeases();
  const started: string[] = [];
  const quick = await submit(['noop']);
  await submit(Array.from({ length: 20 }, () => 'hold'));
  fx.startWorker({ handlers: { hold: holding(started) }, cfg: { WORKER_POOL: 1, LEASE_BATCH_SIZE: 1, WORKER_LEASE_AHEAD_MS: 60_000 } });
  const [ahead] = await aheadOf(calls, started, quick, 1);
  const res = await fetch(`${fx.api.url}/tasks/${ahead}/cancel`, { method: 'POST' });
  expect(res.status).toBe(202);
  const t = await waitFor(async () => {
    const s = await taskStatus(fx.stack.pool, ahead!);
    return s.status === 'cancelled' ? s : null;
  }, 10_000, 'the cancel');
  expect(t.attempts).toBe(1);
  expect((await runsOf(fx.stack.pool, ahead!)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'cancelled']]);
  expect(started).not.toContain(ahead);
});
