/**
 * Delayed tasks (`run_at`, `delay_ms`) against real Postgres, Redis, an API and a worker: a task is
 * `scheduled` until due and starts no earlier; a batch of mixed delays; cancel before due; a task
 * due beyond the horizon waits in Postgres only, until the loader brings it in; Redis losing its
 * data while thousands are scheduled (all still run, none twice); the loader paging through many
 * tasks sharing one due time; bad input.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import type { EnqueueItem } from '../../services/core/queue/queue';
import { scheduledDueSoon } from '../../services/core/tasks/delayed-store';
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import { DelayedLoader } from '../../services/worker/delayed-loader';
import type { Worker } from '../../services/worker/worker';
import { createStack, silentLog, Stack, startApi, startWorker, waitFor } from '../support/stack';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

let stack: Stack;
let api: Awaited<ReturnType<typeof startApi>>;
let worker: Worker | null = null;
const started = new Map<string, number[]>();

async function setUp(overrides: Record<string, string | number> = {}): Promise<void> {
  stack = await createStack({ RETRY_SCAN_INTERVAL_MS: 500, POLL_INTERVAL_MS: 50, DELAYED_LOAD_INTERVAL_MS: 100, ...overrides });
  api = await startApi(stack);
}
afterEach(async () => {
  jest.restoreAllMocks();
  await worker?.stop(0);
  worker = null;
  await api?.server.stop();
  await stack?.close();
  started.clear();
});

function run(): ReturnType<typeof startWorker> {
  const w = startWorker(stack, {
    handlers: {
      stamp: async (ctx) => {
        const at = started.get(ctx.id) ?? [];
        at.push(Date.now());
        started.set(ctx.id, at);
      },
    },
  });
  worker = w.worker;
  return w;
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function task(id: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${api.url}/tasks/${id}`)).json()) as Record<string, unknown>;
}

const succeeded = (id: string) => async () => ((await task(id)).status === 'succeeded' ? true : null);

it('a task with delay_ms is scheduled until due, then runs no earlier than run_at', async () => {
  await setUp();
  const { registry } = run();
  const before = Date.now();
  const res = await post('/tasks', { type: 'stamp', delay_ms: 1000 });
  expect(res.status).toBe(201);
  expect(res.body.status).toBe('scheduled');
  const runAt = Date.parse(res.body.run_at as string);
  expect(runAt).toBeGreaterThanOrEqual(before + 1000);
  // Still scheduled when read before it is due (a starved test process may read it only after).
  const read = (await task(res.body.id as string)).status;
  if (Date.now() < runAt) expect(read).toBe('scheduled');
  await waitFor(succeeded(res.body.id as string), 10_000, 'the delayed task to succeed');
  expect(started.get(res.body.id as string)![0]).toBeGreaterThanOrEqual(runAt);
  const t = await task(res.body.id as string);
  expect(Date.parse(t.started_at as string)).toBeGreaterThanOrEqual(runAt);
  expect(t.run_at).toBe(res.body.run_at);
  const lateness = await registry.getSingleMetric('task_start_lateness_seconds')!.get();
  expect(lateness.values.find((v) => (v as { metricName?: string }).metricName === 'task_start_lateness_seconds_count' && v.labels.priority === 'default')?.value).toBe(1);
});

it('a batch of mixed delays: each task starts no earlier than it is due, in due order', async () => {
  await setUp();
  run();
  const now = Date.now();
  const res = await post('/tasks/batch', {
    tasks: [
      { type: 'stamp', delay_ms: 2500 },
      { type: 'stamp' },
      { type: 'stamp', run_at: new Date(now + 1500).toISOString() },
      { type: 'stamp', run_at: new Date(now - 60_000).toISOString() },
      { type: 'stamp', delay_ms: 0 },
      { type: 'stamp', delay_ms: 300, priority: 'low' },
    ],
  });
  expect(res.status).toBe(200);
  const results = res.body.results as { status: number; task: { id: string; status: string; run_at: string | null } }[];
  expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201, 201, 201]);
  expect(results.map((r) => r.task.status)).toEqual(['scheduled', 'queued', 'scheduled', 'queued', 'queued', 'scheduled']);
  // A time in the past (or no delay) runs now: no run_at.
  expect(results[3]!.task.run_at).toBeNull();
  const ids = results.map((r) => r.task.id);
  await waitFor(async () => ((await Promise.all(ids.map((id) => task(id)))).every((t) => t.status === 'succeeded') ? true : null), 10_000, 'the batch to succeed');
  for (const r of results) if (r.task.run_at) expect(started.get(r.task.id)![0]).toBeGreaterThanOrEqual(Date.parse(r.task.run_at));
  const order = [5, 2, 0].map((i) => started.get(ids[i]!)![0]!);
  expect(order).toEqual([...order].sort((a, b) => a - b));
  for (const id of ids) expect(started.get(id)).toHaveLength(1);
});

it('a scheduled task cancelled before it is due never runs, and GET /tasks?status=scheduled lists the waiting ones', async () => {
  await setUp();
  run();
  // Due late enough that the list and the cancel come first, also on a starved machine.
  const a = await post('/tasks', { type: 'stamp', delay_ms: 3000 });
  const b = await post('/tasks', { type: 'stamp', delay_ms: 60_000 });
  const listed = await fetch(`${api.url}/tasks?status=scheduled`);
  expect(((await listed.json()) as { tasks: { id: string }[] }).tasks.map((t) => t.id)).toEqual([b.body.id, a.body.id]);
  const cancelled = await post(`/tasks/${a.body.id as string}/cancel`, {});
  expect(cancelled.status).toBe(200);
  expect(cancelled.body.status).toBe('cancelled');
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(a.body.run_at as string) + 500 - Date.now())));
  expect(started.has(a.body.id as string)).toBe(false);
  expect((await task(a.body.id as string)).status).toBe('cancelled');
  // The other one is still waiting.
  expect((await task(b.body.id as string)).status).toBe('scheduled');
});

it('a task due beyond the horizon waits in Postgres only; the loader brings it into Redis ahead of time and it runs on time', async () => {
  await setUp({ DELAYED_HORIZON_MS: 10_000 });
  run();
  // Just beyond the shortest horizon allowed.
  const res = await post('/tasks', { type: 'stamp', delay_ms: 10_500 });
  const id = res.body.id as string;
  const keys = stack.keysOf('default');
  expect(await stack.inspect.hexists(keys.meta, id)).toBe(0);
  // Loaded half a horizon (5 s) before it is due.
  await waitFor(async () => (await stack.inspect.hexists(keys.meta, id)) === 1, 10_000, 'the loader to index the task');
  expect(Date.now()).toBeLessThan(Date.parse(res.body.run_at as string));
  await waitFor(succeeded(id), 10_000, 'the task to succeed');
  const startedAt = started.get(id)![0]!;
  expect(startedAt).toBeGreaterThanOrEqual(Date.parse(res.body.run_at as string));
}, 30_000);

it('the loader reads up to the bound its own read used: a task due just past it is left for the next pass, also when Postgres answers slowly', async () => {
  await setUp();
  const res = await post('/tasks', { type: 'stamp', delay_ms: 5_300 });
  const id = res.body.id as string;
  const runAt = Date.parse(res.body.run_at as string);
  // Every statement after the first waits 600 ms, as a second read of now() could under load.
  let statements = 0;
  const query = (config: unknown, values?: unknown[]) =>
    (statements++ > 0 ? new Promise((r) => setTimeout(r, 600)) : Promise.resolve()).then(() => stack.pool.query(config as never, values as never));
  const slow = new Proxy(stack.pool, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) }) as Pool;
  const soon = await scheduledDueSoon(slow, null, 5_000, 1_000, 100);
  // Read now, or beyond the bound (so beyond the mark the loader sets): never skipped.
  expect(soon.tasks.some((t) => t.id === id) || soon.until.getTime() < runAt).toBe(true);
});

/** `n` scheduled tasks due at `runAt` (random ids, so their id order is not their insert order). */
async function scheduledAt(runAt: Date, n: number): Promise<string[]> {
  const { rows } = await stack.pool.query<{ id: string }>(
    `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, run_at)
     SELECT gen_random_uuid(), 'default', 'stamp', 'default', '{}', 'scheduled', 0, $1 FROM generate_series(1, $2) RETURNING id`,
    [runAt, n],
  );
  return rows.map((r) => r.id);
}

/** A loader with small pages, and every id it sends to Redis (a spy that passes each call on). */
function smallLoader(batch: number, maxPages: number): { loader: DelayedLoader; sent: string[] } {
  const sent: string[] = [];
  const enqueue = stack.queue.enqueue.bind(stack.queue);
  jest.spyOn(stack.queue, 'enqueue').mockImplementation((items: EnqueueItem[]) => {
    sent.push(...items.map((it) => it.id));
    return enqueue(items);
  });
  // A partitioned queue's loader pushes through pushAnswering (each partition waited for at most passWaitMs).
  if (stack.queue instanceof PartitionedQueue) {
    const push = stack.queue.pushAnswering.bind(stack.queue);
    jest.spyOn(stack.queue, 'pushAnswering').mockImplementation((items: EnqueueItem[], replace: boolean) => {
      sent.push(...items.map((it) => it.id));
      return push(items, replace);
    });
  }
  const loader = new DelayedLoader(
    { pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 1000, horizonMs: 10_000, batch, maxPages, countEveryMs: 60_000 },
    silentLog,
  );
  return { loader, sent };
}

async function indexed(ids: string[]): Promise<number> {
  const keys = stack.keysOf('default');
  return (await Promise.all(ids.map((id) => stack.inspect.hexists(keys.meta, id)))).filter((n) => n === 1).length;
}

it('the loader gets past more tasks sharing one due time than a pass loads: each pass goes on where the last stopped, each task sent once', async () => {
  await setUp();
  // Due within the loader's half horizon (5 s) and beyond its lead (1 s) while the passes run.
  const ids = await scheduledAt(new Date(Date.now() + 4000), 1200);
  const { loader, sent } = smallLoader(100, 5);
  const perPass: number[] = [];
  for (let pass = 0; pass < 4; pass++) perPass.push((await loader.runOnce()).loaded);
  expect(perPass).toEqual([500, 500, 200, 0]);
  expect(await indexed(ids)).toBe(1200);
  expect(sent.length).toBe(1200);
  expect(new Set(sent).size).toBe(1200);
});

it('the loader pages through ties across page and pass boundaries in (run_at, id) order, and a pass that found the end marks it', async () => {
  await setUp();
  const t = Date.now() + 4000;
  // 37 at one time, 3 at the next, 25 at a third: pages of 10 and passes of 2 pages stop inside each run.
  const ids = [...(await scheduledAt(new Date(t), 37)), ...(await scheduledAt(new Date(t + 1), 3)), ...(await scheduledAt(new Date(t + 2), 25))];
  const { loader, sent } = smallLoader(10, 2);
  const perPass: number[] = [];
  for (let pass = 0; pass < 5; pass++) perPass.push((await loader.runOnce()).loaded);
  expect(perPass).toEqual([20, 20, 20, 5, 0]);
  const { rows } = await stack.pool.query<{ id: string }>(`SELECT id FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY run_at, id`, [ids]);
  expect(sent).toEqual(rows.map((r) => r.id));
  expect(await indexed(ids)).toBe(ids.length);
  // The last pass reached the end of what is due within the horizon: its mark has no id.
  expect((await stack.queue.delayedMark()).at).toMatchObject({ id: null });
});

it('tasks whose run_at has microseconds (written by SQL: an operator, a migration) do not stall the loader: each pass goes on where the last stopped', async () => {
  await setUp();
  // now() keeps microseconds; three sub-millisecond times among the 60, so ties and order both count.
  const { rows } = await stack.pool.query<{ id: string }>(
    `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, run_at)
     SELECT gen_random_uuid(), 'default', 'stamp', 'default', '{}', 'scheduled', 0,
            now() + interval '4 seconds' + (i % 3) * interval '1 microsecond'
       FROM generate_series(1, 60) i RETURNING id`,
  );
  const ids = rows.map((r) => r.id);
  const { loader, sent } = smallLoader(10, 2);
  const perPass: number[] = [];
  for (let pass = 0; pass < 4; pass++) perPass.push((await loader.runOnce()).loaded);
  expect(perPass).toEqual([20, 20, 20, 0]);
  expect(await indexed(ids)).toBe(60);
  expect(new Set(sent).size).toBe(60);
  // Stored to the millisecond, never before the time asked for.
  const { rows: times } = await stack.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[]) AND run_at = date_trunc('milliseconds', run_at) AND run_at >= created_at + interval '4 seconds'`,
    [ids],
  );
  expect(times[0]!.n).toBe(60);
});

it('migration 0027 rounds up the run_at of scheduled tasks written with microseconds before it', async () => {
  await setUp();
  await stack.pool.query('ALTER TABLE tasks DISABLE TRIGGER tasks_run_at_ms');
  const { rows } = await stack.pool.query<{ id: string; us: string }>(
    `INSERT INTO tasks (id, tenant, type, priority, payload, status, max_retries, run_at)
     VALUES (gen_random_uuid(), 'default', 'stamp', 'default', '{}', 'scheduled', 0, '2030-01-01T00:00:00.123456Z') RETURNING id`,
  );
  await stack.pool.query('ALTER TABLE tasks ENABLE TRIGGER tasks_run_at_ms');
  // The migration run again (it is idempotent): it finds the row.
  await stack.pool.query(readFileSync(path.join(__dirname, '../../migrations/0027_tasks_run_at_milliseconds.sql'), 'utf8'));
  const { rows: after } = await stack.pool.query<{ run_at: string }>(`SELECT to_char(run_at AT TIME ZONE 'UTC', 'HH24:MI:SS.US') AS run_at FROM tasks WHERE id = $1`, [rows[0]!.id]);
  expect(after[0]!.run_at).toBe('00:00:00.124000');
});

it('Redis losing its data during a pass that stopped inside a run of ties: the mark stays lost, and the next passes load every task again', async () => {
  await setUp();
  const ids = await scheduledAt(new Date(Date.now() + 4000), 60);
  const { loader } = smallLoader(10, 2);
  expect((await loader.runOnce()).loaded).toBe(20);
  // The flush lands between the pass reading the mark and setting it.
  const setMark = stack.queue.setDelayedMark.bind(stack.queue);
  const spy = jest.spyOn(stack.queue, 'setDelayedMark').mockImplementationOnce(async (seen, at, unpushed?) => {
    await stack.flushRedis();
    return setMark(seen, at, unpushed);
  });
  expect((await loader.runOnce()).loaded).toBe(20);
  expect(spy).toHaveBeenCalledTimes(1);
  expect((await stack.queue.delayedMark()).at).toBeNull();
  const perPass: number[] = [];
  for (let pass = 0; pass < 4; pass++) perPass.push((await loader.runOnce()).loaded);
  expect(perPass).toEqual([20, 20, 20, 0]);
  expect(await indexed(ids)).toBe(60);
});

it('a worker from before the mark kept an id (a rolling upgrade, or a rollback) reads the mark of a stopped pass as a time before the tasks not loaded yet, and its pass loads them', async () => {
  await setUp();
  const runAt = new Date(Date.now() + 4000);
  const ids = await scheduledAt(runAt, 60);
  const { loader } = smallLoader(10, 2);
  expect((await loader.runOnce()).loaded).toBe(20);
  // As that worker's delayedMark and load() read it (git show 7f32444^): Number(v), then a read
  // after (that time, the highest id). "ms:id" was NaN there: every such pass threw (RangeError)
  // before loading anything or marking overdue tasks queued.
  const v = await stack.inspect.get(stack.keysOf('default').delayedMark);
  const oldAt = Number(v);
  expect(Number.isFinite(oldAt)).toBe(true);
  const { tasks } = await scheduledDueSoon(stack.pool, { runAt: new Date(oldAt), id: 'ffffffff-ffff-ffff-ffff-ffffffffffff' }, 5_000, 1_000, 100);
  expect(tasks.map((t) => t.id).sort()).toEqual([...ids].sort());
  // This version reads the same mark as the place the pass stopped: it goes on after it.
  expect((await loader.runOnce()).loaded).toBe(20);
  expect((await loader.runOnce()).loaded).toBe(20);
  expect(await indexed(ids)).toBe(60);
});

it('Redis losing its data while 3,000 tasks are scheduled: every one still runs, and none twice', async () => {
  // Enough for the loader to read several pages (1,000 a page) and the reconciler several batches.
  await setUp({ DELAYED_HORIZON_MS: 10_000, RECONCILE_INTERVAL_MS: 200, RECONCILE_GRACE_MS: 500, RECONCILE_BATCH_SIZE: 300 });
  const ids: string[] = [];
  for (let b = 0; b < 3; b++) {
    const res = await post('/tasks/batch', { tasks: Array.from({ length: 1000 }, (_, i) => ({ type: 'stamp', delay_ms: 1000 + ((b * 1000 + i) % 4000) })) });
    ids.push(...(res.body.results as { task: { id: string } }[]).map((r) => r.task.id));
  }
  await stack.flushRedis();
  run();
  await waitFor(
    async () => {
      const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'succeeded'`, [ids]);
      return rows[0]!.n === ids.length ? true : null;
    },
    60_000,
    'every scheduled task to succeed',
  );
  expect([...started.values()].filter((s) => s.length > 1)).toEqual([]);
  expect(started.size).toBe(ids.length);
  const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_runs WHERE task_id = ANY($1::uuid[])`, [ids]);
  expect(rows[0]!.n).toBe(ids.length);
}, 90_000);

it('bad run_at and delay_ms get a 400 naming the field', async () => {
  await setUp();
  for (const [body, field] of [
    [{ type: 'stamp', run_at: '2026-12-05T10:00:00Z', delay_ms: 5 }, 'delay_ms'],
    [{ type: 'stamp', delay_ms: -1 }, 'delay_ms'],
    [{ type: 'stamp', delay_ms: 1.5 }, 'delay_ms'],
    [{ type: 'stamp', delay_ms: '100' }, 'delay_ms'],
    [{ type: 'stamp', run_at: '2026-12-05T10:00:00' }, 'run_at'],
    [{ type: 'stamp', run_at: 'tomorrow' }, 'run_at'],
    [{ type: 'stamp', run_at: new Date(Date.now() + 400 * 86_400_000).toISOString() }, 'run_at'],
  ] as const) {
    const res = await post('/tasks', body);
    expect(res.status).toBe(400);
    expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
  }
});

it('an idempotent replay of a delayed request returns the same task', async () => {
  await setUp();
  const key = createHash('sha1').update(String(Math.random())).digest('hex');
  const first = await post('/tasks', { type: 'stamp', delay_ms: 5000, idempotency_key: key });
  const again = await post('/tasks', { type: 'stamp', delay_ms: 5000, idempotency_key: key });
  expect(again.status).toBe(200);
  expect(again.body.id).toBe(first.body.id);
  const other = await post('/tasks', { type: 'stamp', delay_ms: 6000, idempotency_key: key });
  expect(other.status).toBe(409);
});

it('a loader pass that outlives its lock (another worker\'s loader took over) stops before pushing what it read: a task loaded, run and ended meanwhile is not indexed again', async () => {
  await setUp();
  const [id] = await scheduledAt(new Date(Date.now() + 7000), 1);
  // This loader's read of the due tasks answers only when the test lets it, after its lock lapsed
  // and another worker's loader took over.
  let stall = true;
  let stalled = false;
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  const query = async (config: unknown, values?: unknown[]) => {
    const res = await stack.pool.query(config as never, values as never);
    if (stall && (config as { name?: string }).name?.startsWith('delayed-due-soon')) {
      stall = false;
      stalled = true;
      await gate;
    }
    return res;
  };
  const slow = new Proxy(stack.pool, { get: (target, prop, receiver) => (prop === 'query' ? query : Reflect.get(target, prop, receiver)) }) as Pool;
  const opts = { intervalMs: 50, horizonMs: 300_000, batch: 100, maxPages: 5, countEveryMs: 60_000 };
  const metrics = () => workerMetrics(createRegistry('worker'));
  const a = new DelayedLoader({ pool: slow, queue: stack.queue, metrics: metrics() }, opts, silentLog);
  const b = new DelayedLoader({ pool: stack.pool, queue: stack.queue, metrics: metrics() }, opts, silentLog);
  const passA = a.runOnce();
  await waitFor(async () => stalled, 10_000, 'the first pass to read the due tasks');
  // The lock's TTL (3 intervals + 5 s) runs out at once instead of being waited out.
  await stack.inspect.pexpire(stack.keysOf('default').lock('delayed-loader'), 1);
  // Once the lock lapses, the other worker's loader leads and loads the task; it comes due (moved
  // up here) and a worker runs it.
  await waitFor(async () => (await b.runOnce()).loaded === 1, 15_000, 'the other loader to take over');
  const keys = stack.keysOf('default');
  await stack.inspect.zadd(keys.retries[2]!, 0, id!);
  await stack.queue.promoteDue(10);
  const [l] = await stack.queue.lease({ max: 1, visibilityMs: 60_000, owner: 'w1' });
  expect(l!.message.id).toBe(id);
  await recordOutcomes(stack.pool, [{ id: id!, token: l!.token, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0 }]);
  await stack.queue.finish([{ id: id!, token: l!.token, priority: 'default', outcome: 'succeeded', settleAttempts: 1 }]);
  expect((await task(id!)).status).toBe('succeeded');
  // The first pass goes on with what it read before: it must not index the finished task again.
  resume();
  await passA;
  expect(await indexed([id!])).toBe(0);
}, 30_000);

it('a scheduled task cancelled and then retried before it is due still starts no earlier than its run_at', async () => {
  await setUp();
  run();
  const a = await post('/tasks', { type: 'stamp', delay_ms: 3000 });
  const runAt = Date.parse(a.body.run_at as string);
  expect((await post(`/tasks/${a.body.id as string}/cancel`, {})).status).toBe(200);
  const retried = await post(`/tasks/${a.body.id as string}/retry`, {});
  expect(retried.status).toBe(200);
  // Read before it is due (a starved test process may read it only after): still waiting for its time.
  const read = await task(a.body.id as string);
  if (Date.now() < runAt) expect(read.status).toBe('scheduled');
  await waitFor(succeeded(a.body.id as string), 10_000, 'the retried delayed task to succeed');
  expect(started.get(a.body.id as string)).toHaveLength(1);
  expect(started.get(a.body.id as string)![0]).toBeGreaterThanOrEqual(runAt);
  expect((await task(a.body.id as string)).run_at).toBe(a.body.run_at);
});

it('a loader mark ahead of the database clock (set while the clock ran a day ahead, then set back) does not hide the tasks due before it', async () => {
  await setUp();
  // As a pass leaves it while the database's clock is a day ahead.
  const { seen } = await stack.queue.delayedMark();
  expect(await stack.queue.setDelayedMark(seen, { ms: Date.now() + 86_400_000, id: null })).toBe(true);
  const ids = await scheduledAt(new Date(Date.now() + 3000), 3);
  const { loader } = smallLoader(10, 2);
  expect((await loader.runOnce()).loaded).toBe(3);
  expect(await indexed(ids)).toBe(3);
  // The mark is back within the clock's half horizon.
  expect((await stack.queue.delayedMark()).at!.ms).toBeLessThan(Date.now() + 10_000);
});
