/** The worker against real Postgres and Redis: outcomes, retries, dead letters, leases, shutdown. */
import { submitTask, submitTasks } from '../../services/core/tasks/submit';
import type { Priority } from '../../services/core/tasks/priority';
import { Stack, createStack, runsOf, silentLog, startWorker, taskStatus, waitFor } from '../support/stack';
import { Worker } from '../../services/worker/worker';
import { defaultHandlers } from '../../services/worker/handlers';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { gatedPool } from '../support/gated-pool';
import { createLogger } from '../../services/core/observability/logger';

let stack: Stack;
let worker: Worker | null = null;

beforeEach(async () => {
  stack = await createStack({ RETRY_BASE_MS: 10, RETRY_MAX_MS: 50, RETRY_JITTER_MS: 5, RETRY_SCAN_INTERVAL_MS: 20, REAPER_SCAN_INTERVAL_MS: 50, POLL_INTERVAL_MS: 10 });
});
afterEach(async () => {
  await worker?.stop(0);
  worker = null;
  await stack.close();
});

async function submit(type: string, payload: unknown = {}, maxRetries = 5, priority: Priority = 'default'): Promise<string> {
  const res = await submitTask(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 60000 },
    { type, priority, payload, maxRetries, tenant: 'default', idempotencyKey: null, canonical: '' },
  );
  if (res.kind === 'conflict') throw new Error('unexpected conflict');
  return res.task.id;
}

const isFinal = (id: string) => async () => {
  const t = await taskStatus(stack.pool, id);
  return t.status === 'succeeded' || t.status === 'dead' ? t : null;
};

it('runs a task to success, records its run and forgets it in Redis', async () => {
  const seen: unknown[] = [];
  ({ worker } = startWorker(stack, { handlers: { capture: async (ctx) => void seen.push({ payload: ctx.payload, attempt: ctx.attempt, id: ctx.id }) } }));
  const id = await submit('capture', { hello: 'world' });
  const t = await waitFor(isFinal(id));
  expect(t).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect(seen).toEqual([{ payload: { hello: 'world' }, attempt: 1, id }]);
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
  await waitFor(async () => (await stack.inspect.hexists(stack.queue.keys.messages, id)) === 0, 5000, 'the ack');
  expect(await stack.inspect.zcard(stack.queue.keys.processing)).toBe(0);
});

it('flaky with fail_attempts N succeeds on attempt N+1, keeping each error', async () => {
  ({ worker } = startWorker(stack));
  const id = await submit('flaky', { fail_attempts: 2 });
  expect(await waitFor(isFinal(id))).toMatchObject({ status: 'succeeded', attempts: 3 });
  const runs = await runsOf(stack.pool, id);
  expect(runs.map((r) => [r.attempt, r.outcome])).toEqual([[1, 'failed'], [2, 'failed'], [3, 'succeeded']]);
  expect(runs[0]!.error).toMatch(/flaky: attempt 1/);
});

it('always_fail ends dead after max_retries + 1 attempts, in its priority dead-letter list', async () => {
  ({ worker } = startWorker(stack));
  const id = await submit('always_fail', {}, 3, 'high');
  const t = await waitFor(isFinal(id));
  expect(t).toMatchObject({ status: 'dead', attempts: 4 });
  expect(t.last_error).toMatch(/always_fail: attempt 4/);
  const runs = await runsOf(stack.pool, id);
  expect(runs).toHaveLength(4);
  expect(runs.every((r) => r.outcome === 'failed' && /always_fail/.test(r.error ?? ''))).toBe(true);
  await waitFor(async () => (await stack.queue.deadLetterIds('high')).includes(id));
  expect(await stack.queue.deadLetterIds('default')).toEqual([]);
});

it('max_retries 0 means exactly one attempt', async () => {
  ({ worker } = startWorker(stack));
  const id = await submit('always_fail', {}, 0);
  expect(await waitFor(isFinal(id))).toMatchObject({ status: 'dead', attempts: 1 });
});

it('an unknown type goes straight to the dead-letter list with a clear error', async () => {
  ({ worker } = startWorker(stack));
  const id = await submit('no_such_type', {}, 5, 'low');
  const t = await waitFor(isFinal(id));
  expect(t).toMatchObject({ status: 'dead', attempts: 1 });
  expect(t.last_error).toMatch(/unknown task type "no_such_type"/);
  await waitFor(async () => (await stack.queue.deadLetterIds('low')).includes(id));
});

it('reaps an expired lease, counts the attempt and runs the task again; the stale outcome is discarded', async () => {
  let calls = 0;
  const handlers = {
    // The first attempt outlives its lease (heartbeats are too slow to save it); the second is quick.
    slow_once: async () => {
      calls++;
      if (calls === 1) await new Promise((r) => setTimeout(r, 1600));
    },
  };
  ({ worker } = startWorker(stack, { handlers, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 3_600_000 } }));
  const id = await submit('slow_once');
  const t = await waitFor(isFinal(id));
  expect(t).toMatchObject({ status: 'succeeded', attempts: 2 });
  // The first attempt's late outcome arrives after the second attempt succeeded; it must not win.
  await waitFor(async () => (await runsOf(stack.pool, id))[0]?.outcome === 'discarded', 5000, 'the late outcome');
  const runs = await runsOf(stack.pool, id);
  expect(runs.map((r) => [r.attempt, r.outcome])).toEqual([[1, 'discarded'], [2, 'succeeded']]);
  expect(runs[0]!.error).toMatch(/lease lost/);
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'succeeded', attempts: 2 });
});

it('a task that always outlives its lease ends dead instead of looping', async () => {
  ({ worker } = startWorker(stack, { cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 3_600_000 } }));
  const id = await submit('sleeper', { sleep_ms: 60_000 }, 1);
  const t = await waitFor(isFinal(id), 20000);
  expect(t).toMatchObject({ status: 'dead', attempts: 2 });
  expect(t.last_error).toMatch(/lease expired during attempt 2/);
  await waitFor(async () => (await stack.queue.deadLetterIds('default')).includes(id));
});

it('an attempt outliving START_RECORD_DELAY_MS shows as running; a fast one is written once, with its outcome', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  ({ worker } = startWorker(stack, { handlers: { gated: () => gate, quick: async () => undefined }, cfg: { START_RECORD_DELAY_MS: 50 } }));
  const slow = await submit('gated');
  const seen = await waitFor(async () => {
    const t = await taskStatus(stack.pool, slow);
    return t.status === 'running' ? t : null;
  });
  expect(seen).toMatchObject({ status: 'running', attempts: 1 });
  release();
  expect(await waitFor(isFinal(slow))).toMatchObject({ status: 'succeeded', attempts: 1 });
  const fast = await submit('quick');
  expect(await waitFor(isFinal(fast))).toMatchObject({ status: 'succeeded', attempts: 1 });
  const { rows } = await stack.pool.query('SELECT first_started_at, finished_at FROM tasks WHERE id = ANY($1::uuid[])', [[slow, fast]]);
  for (const r of rows) expect(r.first_started_at.getTime()).toBeLessThanOrEqual(r.finished_at.getTime());
  for (const id of [slow, fast]) expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
});

it('an attempt whose lease Redis lost is aborted, not recorded as running, and its outcome discarded', async () => {
  let aborted = false;
  const handlers = {
    hang: ({ signal }: { signal: AbortSignal }) =>
      new Promise<void>((_, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(signal.reason)))),
  };
  ({ worker } = startWorker(stack, { handlers, cfg: { START_RECORD_DELAY_MS: 300, HEARTBEAT_INTERVAL_MS: 3_600_000 } }));
  const id = await submit('hang');
  await waitFor(async () => (await stack.queue.stats()).processing === 1 || null);
  // Redis forgets the lease before the start is recorded (data loss; the reconciler rebuilds later).
  await stack.inspect.zrem(stack.queue.keys.processing, id);
  await stack.inspect.hdel(stack.queue.keys.tokens, id);
  await waitFor(async () => aborted || null);
  await waitFor(async () => ((await runsOf(stack.pool, id)).length > 0 ? true : null));
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'queued', attempts: 0 });
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['discarded']);
});

it('heartbeats keep a long task leased past the visibility timeout', async () => {
  ({ worker } = startWorker(stack, { cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200 } }));
  const id = await submit('sleeper', { sleep_ms: 2500 });
  expect(await waitFor(isFinal(id), 15000)).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
});

it('heartbeats extend leases even while the worker cannot announce itself', async () => {
  // On a Redis Cluster the announcement goes to the control slot; its master failing over must not
  // cost the leases held on every other partition.
  const queue = new Proxy(stack.queue, {
    get: (target, prop, receiver) => (prop === 'announceWorker' ? async () => Promise.reject(new Error('CLUSTERDOWN (test)')) : Reflect.get(target, prop, receiver)),
  });
  const cfg = { ...stack.cfg, VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200 };
  worker = new Worker({ cfg, pool: stack.pool, queue, handlers: defaultHandlers({}), log: silentLog, metrics: workerMetrics(createRegistry('worker')) });
  worker.start();
  const id = await submit('sleeper', { sleep_ms: 2500 });
  expect(await waitFor(isFinal(id), 15000)).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
});

it('a handler past TASK_TIMEOUT_MS is aborted and its attempt fails', async () => {
  let sawAbort = false;
  const handlers = {
    hang: ({ signal }: { signal: AbortSignal }) =>
      new Promise<void>((_, reject) => signal.addEventListener('abort', () => ((sawAbort = true), reject(signal.reason)))),
  };
  ({ worker } = startWorker(stack, { handlers, cfg: { TASK_TIMEOUT_MS: 100 } }));
  const id = await submit('hang', {}, 1);
  const t = await waitFor(isFinal(id));
  expect(t).toMatchObject({ status: 'dead', attempts: 2 });
  expect(t.last_error).toMatch(/timed out after 100 ms/);
  expect(sawAbort).toBe(true);
});

it('graceful shutdown lets running handlers finish and leaves nothing leased', async () => {
  let w: Worker;
  ({ worker: w } = startWorker(stack, { cfg: { WORKER_POOL: 4 } }));
  const ids = await Promise.all([1, 2, 3, 4].map(() => submit('sleeper', { sleep_ms: 400 })));
  await waitFor(async () => (await stack.queue.stats()).processing === 4 || null);
  const res = await w.stop(5000);
  expect(res.handedBack).toBe(0);
  for (const id of ids) expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await stack.queue.stats()).processing).toBe(0);
});

it('shutdown past the grace period hands unfinished attempts back without counting them', async () => {
  let w: Worker;
  ({ worker: w } = startWorker(stack, { cfg: { WORKER_POOL: 2 } }));
  const ids = await Promise.all([1, 2].map(() => submit('sleeper', { sleep_ms: 30_000 })));
  await waitFor(async () => (await stack.queue.stats()).processing === 2 || null);
  const res = await w.stop(100);
  expect(res.handedBack).toBe(2);
  const s = await stack.queue.stats();
  expect(s.processing).toBe(0);
  expect(s.ready.default).toBe(2);
  for (const id of ids) {
    expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'queued', attempts: 0 });
    expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['released']);
  }
  // A new worker picks them up as first attempts.
  ({ worker } = startWorker(stack, { handlers: { sleeper: async () => undefined } }));
  for (const id of ids) expect(await waitFor(isFinal(id))).toMatchObject({ status: 'succeeded', attempts: 1 });
});

it('the shutdown line of attempts handed back names their tasks, at most 20 of them', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('worker', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  let w: Worker;
  ({ worker: w } = startWorker(stack, { cfg: { WORKER_POOL: 25 }, log }));
  const ids = await Promise.all(Array.from({ length: 25 }, () => submit('sleeper', { sleep_ms: 30_000 })));
  await waitFor(async () => (await stack.queue.stats()).processing === 25 || null);
  expect((await w.stop(50)).handedBack).toBe(25);
  const line = lines.find((l) => l.msg === 'grace period over; handing unfinished attempts back');
  expect(line).toMatchObject({ count: 25 });
  const named = line!.taskIds as string[];
  expect(named).toHaveLength(20);
  for (const id of named) expect(ids).toContain(id);
});

it('shutdown keeps extending the leases of finished attempts whose outcomes are still being written', async () => {
  // The outcome write is held past the visibility timeout while the worker stops: the attempt has
  // finished, so the shutdown must not treat it as one to abandon (its lease would run out, the
  // reaper would count the attempt as lost and its outcome be discarded: the task runs again).
  const gated = gatedPool(stack.pool, 'record-outcomes');
  let w: Worker;
  ({ worker: w } = startWorker(stack, { pool: gated.pool, cfg: { VIS_TIMEOUT_MS: 1000, HEARTBEAT_INTERVAL_MS: 200 } }));
  const id = await submit('noop');
  await waitFor(async () => gated.stats.running > 0 || null, 5000, 'the outcome write');
  const stopped = w.stop(5000);
  try {
    await new Promise((r) => setTimeout(r, 2000));
  } finally {
    gated.release();
  }
  expect((await stopped).handedBack).toBe(0);
  expect(await taskStatus(stack.pool, id)).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['succeeded']);
  const s = await stack.queue.stats();
  expect(s.processing).toBe(0);
  expect(s.ready.default).toBe(0);
});

it.each([
  ['recorded as running', false],
  ['recorded as running, the answer lost', true],
])('an attempt Postgres shows running (%s) whose hand-back it could not record is left to the reaper, not run again behind its back', async (_name, answerLost) => {
  // Handed back in Redis alone, the next worker's lease repeated the attempt number Postgres had
  // counted: not current there, its run was discarded whatever it did, the task waited out that
  // lease too, and then ran a third time. The lost answer arrives only after the stop has begun:
  // the hand-back must go by what the start record says once it has settled.
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  const failing = new Proxy(stack.pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? async (config: unknown, values?: unknown[]) => {
            const text = typeof config === 'string' ? config : (config as { text: string; name?: string }).text;
            const lost = () => Object.assign(new Error('terminating connection (test)'), { code: '57P01' });
            // The hand-back's record (recordReleased: its reason is a parameter).
            if (text.includes("'released'") && Array.isArray(values) && values.includes('handed back at shutdown')) throw lost();
            const res = await target.query(config as never, values as never);
            // The start was committed, but its answer never reached the worker.
            if (answerLost && (config as { name?: string }).name === 'mark-running') {
              await answered;
              throw lost();
            }
            return res;
          }
        : Reflect.get(target, prop, receiver),
  });
  let runs = 0;
  const handlers = { slow: async () => void (runs++, await new Promise((r) => setTimeout(r, 1500))) };
  const cfg = { START_RECORD_DELAY_MS: 50, VIS_TIMEOUT_MS: 2000 };
  const id = await submit('slow', {}, 1);
  const { worker: w } = startWorker(stack, { handlers, pool: failing, cfg });
  await waitFor(async () => (await taskStatus(stack.pool, id)).status === 'running' || null);
  const stopped = w.stop(0);
  setTimeout(answer, 200);
  expect((await stopped).handedBack).toBe(1);
  ({ worker } = startWorker(stack, { handlers, cfg }));
  expect(await waitFor(isFinal(id), 20_000)).toMatchObject({ status: 'succeeded', attempts: 2 });
  // The attempt handed back counts as lost (as when a worker dies): Postgres had it running.
  expect((await runsOf(stack.pool, id)).map((r) => r.outcome)).toEqual(['expired', 'succeeded']);
  expect(runs).toBe(2);
});

it('metrics add up: attempts, final failures, retries and acks match what happened', async () => {
  const started = startWorker(stack);
  worker = started.worker;
  const registry = started.registry;
  const ids = [await submit('flaky', { fail_attempts: 2 }, 5, 'high'), await submit('always_fail', {}, 1, 'low'), await submit('mystery', {}, 3, 'low')];
  for (const id of ids) await waitFor(isFinal(id));
  await waitFor(async () => (await stack.queue.stats()).processing === 0);
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)!;
    return m.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((n, v) => n + v.value, 0);
  };
  expect(await value('tasks_succeeded_total', { type: 'flaky', priority: 'high' })).toBe(1);
  expect(await value('tasks_failed_total', { type: 'flaky', priority: 'high' })).toBe(2);
  expect(await value('tasks_failed_total', { type: 'always_fail', priority: 'low' })).toBe(2);
  expect(await value('tasks_dead_total', { type: 'always_fail', priority: 'low' })).toBe(1);
  // An unknown type is reported as `unknown`, never as a new label value.
  expect(await value('tasks_dead_total', { type: 'unknown', priority: 'low' })).toBe(1);
  expect(await value('tasks_dead_total', { type: 'mystery' })).toBe(0);
  expect(await value('tasks_retried_total')).toBe(3);
  expect(await value('acks_total')).toBe(1);
  expect(await value('tasks_dequeued_total')).toBe(3 + 2 + 1);
  // Counters exist at 0 before their first event.
  expect((await registry.getMetricsAsJSON()).find((x) => x.name === 'tasks_dead_total')!.values.some((v) => v.labels.type === 'noop' && v.value === 0)).toBe(true);
});

it('a handler that settled frees its slot while its outcome waits to be written; a stalled write pauses leasing only briefly, and 64 outcomes past the pause point stop it', async () => {
  // Outcome writes are held; two slots, so leasing pauses (20 ms) at 2 + 2 unwritten outcomes and
  // stops at 2 + 2 + 64 (WORKER_MAX_UNWRITTEN below that). A keeps one slot busy; the 68 quick ones finish, each in the slot the one
  // before freed, although none of their outcomes is written. Then the stop is reached, and the
  // last waits for the writes even though a slot is free.
  const gated = gatedPool(stack.pool, 'record-outcomes');
  const ran: string[] = [];
  // A holds its slot until the test is done looking, not for a fixed time.
  let releaseA!: () => void;
  const heldA = new Promise<void>((r) => (releaseA = r));
  const handlers = {
    named: async (ctx: { payload: unknown; signal: AbortSignal }) => {
      const { name } = ctx.payload as { name: string };
      ran.push(name);
      if (name === 'A') await heldA;
    },
  };
  ({ worker } = startWorker(stack, { handlers, pool: gated.pool, cfg: { WORKER_POOL: 2, LEASE_BATCH_SIZE: 1, WORKER_MAX_UNWRITTEN: 1 } }));
  const quick = Array.from({ length: 68 }, (_, i) => `q${i}`);
  let a: string;
  try {
    a = await submit('named', { name: 'A' });
    await waitFor(async () => ran.includes('A'), 5000, 'A to start');
    for (const name of [...quick, 'last']) await submit('named', { name });
    await waitFor(async () => ran.includes('q67'), 10_000, 'the quick ones to run in the slot each one before freed');
    await new Promise((r) => setTimeout(r, 300));
    expect(ran).toEqual(['A', ...quick]);
  } finally {
    releaseA();
    gated.release(); // also when an expectation failed, so the worker can stop
  }
  expect(await waitFor(isFinal(a))).toMatchObject({ status: 'succeeded' });
  await waitFor(async () => ran.includes('last'), 5000, 'the last to run once the outcomes were written');
});

it('behind a backlog a small pool keeps leasing while outcome writes are on their way, up to WORKER_MAX_UNWRITTEN', async () => {
  // Two slots, writes held: without a backlog leasing would pause at 2 + 2 unwritten outcomes; with
  // 150 tasks waiting it goes on, each finished attempt holding its lease, and stops at 100.
  const gated = gatedPool(stack.pool, 'record-outcomes');
  let ran = 0;
  const handlers = { count: async () => void ran++ };
  await submitTasks(
    { pool: stack.pool, queue: stack.queue, log: silentLog, idempotencyTtlMs: 1000 },
    Array.from({ length: 150 }, () => ({ type: 'count', priority: 'default' as const, payload: {}, maxRetries: 0, tenant: 'default', idempotencyKey: null, canonical: '' })),
  );
  ({ worker } = startWorker(stack, { handlers, pool: gated.pool, cfg: { WORKER_POOL: 2, LEASE_BATCH_SIZE: 2, WORKER_MAX_UNWRITTEN: 100 } }));
  try {
    await waitFor(async () => ran >= 100, 10_000, '100 attempts to run with none written');
    await new Promise((r) => setTimeout(r, 300));
    expect(ran).toBe(100);
    expect((await stack.queue.stats()).processing).toBe(100);
  } finally {
    gated.release();
  }
  await waitFor(async () => ran === 150 && (await stack.queue.stats()).processing === 0, 10_000, 'the rest once writes land');
  const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE status = 'succeeded'");
  expect(rows[0].n).toBe(150);
});

it('recorded times are consistent: an attempt starts after its task was created and ends after it started', async () => {
  // The worker's clock against Postgres's on one machine: a start stamped from a truncated or
  // badly anchored clock (the millisecond before the insert committed) would read negative.
  ({ worker } = startWorker(stack));
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) {
    ids.push(await submit('noop'));
    await new Promise((r) => setTimeout(r, 3));
  }
  for (const id of ids) await waitFor(isFinal(id));
  const { rows } = await stack.pool.query(
    `SELECT count(*) FILTER (WHERE t.first_started_at < t.created_at)::int AS early, count(*) FILTER (WHERE r.finished_at < r.started_at)::int AS backwards
       FROM tasks t JOIN task_runs r ON r.task_id = t.id WHERE t.id = ANY($1::uuid[])`,
    [ids],
  );
  expect(rows[0]).toEqual({ early: 0, backwards: 0 });
});

it('an idle worker wakes up for new work without waiting for its next poll', async () => {
  ({ worker } = startWorker(stack, { cfg: { POLL_INTERVAL_MS: 600_000 } }));
  // Let the worker go idle (it polled once, found nothing, and now sleeps for ten minutes).
  await new Promise((r) => setTimeout(r, 300));
  const id = await submit('noop');
  expect(await waitFor(isFinal(id), 10_000, 'a wake-up')).toMatchObject({ status: 'succeeded' });
});

it('an idle worker keeps listening across its polls: new work after a poll still wakes it at once', async () => {
  ({ worker } = startWorker(stack, { cfg: { POLL_INTERVAL_MS: 1500 } }));
  // Past one poll: its doorbell wait timed out while the loop idled again, and must be renewed.
  await new Promise((r) => setTimeout(r, 1800));
  const id = await submit('noop');
  await waitFor(isFinal(id), 10_000, 'the task');
  const { rows } = await stack.pool.query<{ waited_ms: number }>(`SELECT extract(epoch FROM (first_started_at - created_at)) * 1000 AS waited_ms FROM tasks WHERE id = $1`, [id]);
  // Deaf until the next poll, it would have started about 1.2 s later.
  expect(Number(rows[0]!.waited_ms)).toBeLessThan(700);
});

it('new work wakes one idle worker, not every one: no lease call comes back empty', async () => {
  ({ worker } = startWorker(stack, { cfg: { POLL_INTERVAL_MS: 600_000 } }));
  const second = startWorker(stack, { cfg: { POLL_INTERVAL_MS: 600_000 } }).worker;
  try {
    // Both lease once at start, find nothing and wait on the doorbell (the next poll is in ten minutes).
    await new Promise((r) => setTimeout(r, 300));
    const lease = jest.spyOn(stack.queue, 'leaseBatch');
    for (let i = 0; i < 5; i++) {
      const id = await submit('noop');
      expect(await waitFor(isFinal(id), 10_000, 'a wake-up')).toMatchObject({ status: 'succeeded' });
    }
    await new Promise((r) => setTimeout(r, 100));
    // Each task woke one worker, whose one lease took it (with pub/sub both leased, one for nothing).
    const results = await Promise.all(lease.mock.results.map((r) => r.value as ReturnType<typeof stack.queue.leaseBatch>));
    expect(results.map((b) => b.leases.length)).toEqual([1, 1, 1, 1, 1]);
  } finally {
    await second.stop(0);
  }
});

it('work announced while every slot is busy starts when a slot frees, not at the next poll', async () => {
  ({ worker } = startWorker(stack, { cfg: { WORKER_POOL: 1, POLL_INTERVAL_MS: 600_000 } }));
  await new Promise((r) => setTimeout(r, 300));
  // The sleeper takes the only slot and leaves the queue empty; the noop's ring reaches a worker
  // with no room, which hands it back to the doorbell, and must lease once the sleeper is done.
  const sleeper = await submit('sleeper', { sleep_ms: 400 });
  await waitFor(async () => (await stack.pool.query("SELECT 1 FROM task_runs WHERE task_id = $1", [sleeper])).rowCount === 0 && (await stack.inspect.zcard(stack.queue.keys.processing)) === 1, 5_000, 'the sleeper to be leased');
  const noop = await submit('noop');
  await waitFor(isFinal(noop), 10_000, 'the noop');
  const { rows } = await stack.pool.query<{ gap_ms: number }>(
    `SELECT extract(epoch FROM (n.first_started_at - s.finished_at)) * 1000 AS gap_ms FROM tasks n, tasks s WHERE n.id = $1 AND s.id = $2`,
    [noop, sleeper],
  );
  // Left to the poll, it would have waited ten minutes.
  expect(Number(rows[0]!.gap_ms)).toBeLessThan(1000);
});

describe('lease pacing (LEASE_GAP_MS)', () => {
  /** When the handler of each task started, as the worker recorded it (ms since epoch). */
  async function startedAt(...ids: [string, string]): Promise<[number, number]> {
    const { rows } = await stack.pool.query<{ id: string; ms: number }>(`SELECT id, extract(epoch FROM first_started_at) * 1000 AS ms FROM tasks WHERE id = ANY($1::uuid[])`, [ids]);
    const at = (id: string) => Number(rows.find((r) => r.id === id)!.ms);
    return [at(ids[0]), at(ids[1])];
  }

  it('an idle worker leases at once; a busy one that keeps up waits out the gap after its last lease', async () => {
    // A gap long enough that a test process starved for a while (a loaded machine) cannot pass
    // for a worker that waited it out, nor the reverse.
    ({ worker } = startWorker(stack, { cfg: { LEASE_GAP_MS: 2000, POLL_INTERVAL_MS: 600_000 } }));
    await new Promise((r) => setTimeout(r, 300));
    // Idle: the sleeper starts without waiting for the gap.
    const sleeper = await submit('sleeper', { sleep_ms: 2500 });
    const { rows } = await stack.pool.query('SELECT created_at FROM tasks WHERE id = $1', [sleeper]);
    await waitFor(async () => (await stack.inspect.zcard(stack.queue.keys.processing)) === 1, 5_000, 'the sleeper to be leased');
    const noop = await submit('noop');
    await waitFor(isFinal(noop), 10_000, 'the noop');
    const [sleeperStart, noopStart] = await startedAt(sleeper, noop);
    expect(sleeperStart - rows[0].created_at.getTime()).toBeLessThan(1500);
    // Busy (the sleeper runs) and its last lease left nothing: the noop waited for the gap (2 s
    // from the start of the lease that took the sleeper; without pacing it would start within ms).
    expect(noopStart - sleeperStart).toBeGreaterThanOrEqual(1500);
  });

  it('a worker behind a backlog leases again at once', async () => {
    ({ worker } = startWorker(stack, { cfg: { LEASE_GAP_MS: 400, WORKER_POOL: 1, POLL_INTERVAL_MS: 600_000 } }));
    await new Promise((r) => setTimeout(r, 300));
    const sleeper = await submit('sleeper', { sleep_ms: 200 });
    await waitFor(async () => (await stack.inspect.zcard(stack.queue.keys.processing)) === 1, 5_000, 'the sleeper to be leased');
    const first = await submit('noop');
    const second = await submit('noop');
    await waitFor(isFinal(second), 10_000, 'the noops');
    // One slot: each lease takes one noop and leaves the other behind, so none waits for the gap.
    const [a, b] = await startedAt(first, second);
    expect(Math.abs(b - a)).toBeLessThan(300);
  });
});

it('a retry is promoted when its backoff ends, not at the next scan of the retry pump', async () => {
  // The scan would come in ten minutes; the backoff is 300 ms.
  ({ worker } = startWorker(stack, { cfg: { RETRY_SCAN_INTERVAL_MS: 600_000, RETRY_BASE_MS: 300, RETRY_MAX_MS: 300, RETRY_JITTER_MS: 0, POLL_INTERVAL_MS: 600_000 } }));
  const id = await submit('flaky', { fail_attempts: 1 });
  expect(await waitFor(isFinal(id), 10_000, 'the retry')).toMatchObject({ status: 'succeeded', attempts: 2 });
  const { rows } = await stack.pool.query<{ waited_ms: number }>(
    `SELECT extract(epoch FROM (b.started_at - a.finished_at)) * 1000 AS waited_ms
       FROM task_runs a JOIN task_runs b ON b.task_id = a.task_id AND b.attempt = 2 WHERE a.task_id = $1 AND a.attempt = 1`,
    [id],
  );
  // It waited out its backoff (Redis and the worker share this machine's clock).
  expect(Number(rows[0]!.waited_ms)).toBeGreaterThanOrEqual(250);
});

it('a retry another worker scheduled is promoted when due: each pump pass learns when the next one is', async () => {
  // As if a worker that died had scheduled it: the task waits in its retry set, due in 300 ms.
  const id = await submit('noop');
  await stack.inspect.del(stack.queue.keys.tenantQueue('default', 'default'), stack.queue.keys.meta);
  await stack.queue.enqueue([{ id, tenant: 'default', type: 'noop', priority: 'default', payload: {}, maxAttempts: 6, createdAtMs: Date.now(), attempts: 0, dueAtMs: Date.now() + 300 }]);
  ({ worker } = startWorker(stack, { cfg: { RETRY_SCAN_INTERVAL_MS: 600_000, POLL_INTERVAL_MS: 600_000 } }));
  expect(await waitFor(isFinal(id), 10_000, 'the waiting retry')).toMatchObject({ status: 'succeeded', attempts: 1 });
});
