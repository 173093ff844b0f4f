/**
 * GET /queues against real Postgres, Redis and a worker: per priority what waits, retries, runs,
 * died or was cancelled, the oldest waiting task's age, the last minute's counts, the live workers
 * with their slots, and only the caller's tenant's tasks.
 */
import { submitTasks } from '../../services/core/tasks/submit';
import { QueuesView } from '../../services/api/operator/queues-route';
import { silentLog, stackWithApi, waitFor } from '../support/stack';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const fx = stackWithApi({ RETRY_BASE_MS: 60_000, RETRY_MAX_MS: 60_000, RETRY_JITTER_MS: 5, POLL_INTERVAL_MS: 10, WORKER_POOL: 24, START_RECORD_DELAY_MS: 20 }, { each: true });

async function submitMany(n: number, type: string, opts: { priority?: 'critical' | 'high' | 'default' | 'low'; maxRetries?: number; tenant?: string; payload?: unknown } = {}): Promise<string[]> {
  const res = await submitTasks(
    { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    Array.from({ length: n }, () => ({ type, priority: opts.priority ?? 'default', payload: opts.payload ?? {}, maxRetries: opts.maxRetries ?? 0, tenant: opts.tenant ?? 'default', idempotencyKey: null, canonical: '' })),
  );
  return res.map((r) => r.task.id);
}

type Queues = { tenant: string; priorities: Record<string, Record<string, number> & { last_minute: Record<string, number> }>; running_now: number; workers: { id: string; slots: number }[] };
const queues = async (): Promise<Queues> => (await (await fetch(`${fx.api.url}/queues`)).json()) as Queues;

it('counts each state per priority, the oldest wait, the last minute, and the workers with their slots', async () => {
  // Waiting before any worker runs: 5 low tasks, the oldest of them a few hundred ms old.
  await submitMany(5, 'noop', { priority: 'low' });
  await new Promise((r) => setTimeout(r, 300));
  const waiting = await queues();
  expect(waiting.tenant).toBe('default');
  expect(waiting.priorities.low).toMatchObject({ queued: 5, scheduled: 0, running: 0, retrying: 0, dead: 0 });
  expect(waiting.priorities.low!.oldest_waiting_seconds).toBeGreaterThanOrEqual(0.25);
  expect(waiting.priorities.low!.last_minute).toMatchObject({ enqueued: 5, succeeded: 0 });
  expect(waiting.workers).toEqual([]);

  fx.startWorker();
  await submitMany(10, 'noop', { priority: 'high' });
  await submitMany(3, 'always_fail', { priority: 'high' });
  await submitMany(2, 'always_fail', { priority: 'critical', maxRetries: 3 });
  const sleepers = await submitMany(4, 'sleeper', { payload: { sleep_ms: 30_000 } });
  const cancelled = await submitMany(2, 'noop', { priority: 'low', tenant: 'default' });
  await fetch(`${fx.api.url}/tasks/${sleepers[0]}/cancel`, { method: 'POST' });
  await fx.stack.pool.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = ANY($1::uuid[]) AND status <> 'succeeded'", [cancelled]);
  const q = await waitFor(async () => {
    const v = await queues();
    const high = v.priorities.high!;
    // running_now counts leases: the two low tasks cancelled in Postgres may still be leased for a
    // moment (their outcomes, refused as final, end those leases).
    return high.dead === 3 && high.last_minute.succeeded === 10 && v.priorities.default!.running === 3 && v.priorities.critical!.retrying === 2 && v.running_now === 3 ? v : null;
  }, 30_000, 'the counts to settle');
  expect(q.priorities.high).toMatchObject({ queued: 0, dead: 3, last_minute: { enqueued: 13, succeeded: 10, dead: 3 } });
  expect(q.priorities.critical).toMatchObject({ retrying: 2, last_minute: { enqueued: 2, retried: 2 } });
  expect(q.priorities.default).toMatchObject({ running: 3, cancelled: 1, last_minute: { cancelled: 1 } });
  expect(q.priorities.low!.queued).toBe(0);
  expect(q.running_now).toBe(3);
  expect(q.workers).toHaveLength(1);
  expect(q.workers[0]!.slots).toBe(24);
});

it('shows only the caller’s tenant', async () => {
  await submitMany(7, 'noop', { tenant: 'someone-else' });
  const q = await queues();
  for (const p of Object.values(q.priorities)) expect([p.queued, p.last_minute.enqueued]).toEqual([0, 0]);
  expect((await fetch(`${fx.api.url}/queues`, { method: 'POST' })).status).toBe(405);
});

it('counts delayed tasks not yet due as scheduled, per priority', async () => {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${fx.api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop', priority: 'high', delay_ms: 3_600_000 }) });
    expect(res.status).toBe(201);
  }
  const q = await queues();
  expect(q.priorities.high).toMatchObject({ scheduled: 3, queued: 0, running: 0 });
  expect(q.priorities.low).toMatchObject({ scheduled: 0 });
});

it('one read in flight per tenant: a slow read is shared, not joined by another every QUEUES_CACHE_MS', async () => {
  // The Postgres half of each read waits until the test lets it go, as on a loaded database.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let counts = 0;
  const pool = new Proxy(fx.stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? async (config: unknown, values?: unknown[]) => {
            if (typeof config === 'string' && config.includes("status IN ('dead', 'cancelled')")) {
              counts++;
              await gate;
            }
            return target.query(config as never, values as never);
          }
        : Reflect.get(target, prop, receiver),
  });
  // QUEUES_CACHE_MS 0: any answer is stale at once, so only a read in flight may be shared.
  const view = new QueuesView({ pool, queue: fx.stack.queue }, 0);
  const first = view.get('default');
  await waitFor(async () => counts === 1, 5000, 'the first read');
  const second = view.get('default');
  const other = view.get('other-tenant');
  await waitFor(async () => counts >= 2, 5000, "the other tenant's read");
  expect(counts).toBe(2);
  open();
  const [a, b] = await Promise.all([first, second, other]);
  expect(b).toBe(a);
  expect(counts).toBe(2);
  // Once it has answered, the next caller reads again.
  await view.get('default');
  expect(counts).toBe(3);
});

it('the oldest wait after a reap is the task waiting longest, not the reaped one put back at the head (GET /queues and the gauge)', async () => {
  await submitMany(3, 'noop', { maxRetries: 2 });
  const submitted = Date.now();
  // The wall clock moves on (Redis's is the same machine's), then the head's lease runs out at once.
  await waitFor(async () => Date.now() > submitted + 150, 5000, 'time to pass');
  expect(await fx.stack.queue.lease({ max: 1, visibilityMs: 1 })).toHaveLength(1);
  const reaped = await waitFor(async () => {
    const r = await fx.stack.queue.reap(10, 60_000);
    return r.length > 0 ? r : null;
  }, 5000, 'the lease to be reaped');
  expect(reaped.map((r) => r.destination)).toEqual(['queued']);
  const asked = Date.now();
  // The two tasks behind it have waited since they were submitted (ms rounding aside).
  const waited = (asked - submitted) / 1000 - 0.01;
  expect((await fx.stack.queue.stats()).oldestWaitingSeconds.default).toBeGreaterThanOrEqual(waited);
  expect((await queues()).priorities.default!.oldest_waiting_seconds).toBeGreaterThanOrEqual(waited);
});
