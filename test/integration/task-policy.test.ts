/**
 * Per-task retry policies and timeouts, handler defaults, results and richer runs, against real
 * Postgres and Redis with an API and a worker: what a task asks for is stored, carried to the
 * worker (also when the reconciler re-indexes it), and obeyed; results and errors are recorded.
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { unfinishedByIds, queueItemOf } from '../../services/core/tasks/reconcile-store';
import { withDefaults } from '../../services/worker/handlers';
import { Reconciler } from '../../services/worker/reconciler';
import { silentLog, stackWithApi, waitFor } from '../support/stack';

const fx = stackWithApi({ RETRY_BASE_MS: 10, RETRY_MAX_MS: 20, RETRY_JITTER_MS: 5, RETRY_SCAN_INTERVAL_MS: 20, POLL_INTERVAL_MS: 10, TASK_TIMEOUT_MS: 30_000 }, { each: true });

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${fx.api.url}${path}`, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const submit = async (body: Record<string, unknown>) => {
  const res = await call('POST', '/tasks', body);
  expect(res.status).toBe(201);
  return res.body.id as string;
};
type Run = { attempt: number; outcome: string; error: string | null; error_type: string | null; error_stack: string | null; started_at: string; finished_at: string; duration_ms: number; worker_id: string };
const finalTask = (id: string) =>
  waitFor(async () => {
    const t = (await call('GET', `/tasks/${id}`)).body;
    return ['succeeded', 'dead', 'cancelled'].includes(t.status as string) ? (t as Record<string, unknown> & { runs: Run[] }) : null;
  }, 15_000, `task ${id} to end`);

it('a result is stored with the success and returned; echo returns its payload', async () => {
  fx.startWorker({ handlers: { shape: async ({ payload }) => ({ got: payload, n: [1, 2, 3] }) } });
  const echo = await finalTask(await submit({ type: 'echo', payload: { hello: 'world' } }));
  expect(echo).toMatchObject({ status: 'succeeded', result: { payload: { hello: 'world' } } });
  const shaped = await finalTask(await submit({ type: 'shape', payload: 'x' }));
  expect(shaped.result).toEqual({ got: 'x', n: [1, 2, 3] });
  const nothing = await finalTask(await submit({ type: 'noop' }));
  expect(nothing.result).toBeNull();
  expect(nothing.runs[0]).toMatchObject({ outcome: 'succeeded', error_type: null, error_stack: null, worker_id: expect.any(String), duration_ms: expect.any(Number) });
});

it('a result over 64 KiB, or not JSON, fails the attempt with a clear error', async () => {
  fx.startWorker({ handlers: { big: async () => 'x'.repeat(70_000), cyclic: async () => { const o: Record<string, unknown> = {}; o.self = o; return o; } } });
  const big = await finalTask(await submit({ type: 'big', max_retries: 0 }));
  expect(big).toMatchObject({ status: 'dead', result: null });
  expect(big.runs[0]!.error).toBe('result is 70002 bytes; the limit is 65536');
  const cyclic = await finalTask(await submit({ type: 'cyclic', max_retries: 0 }));
  expect(cyclic.runs[0]!.error).toMatch(/^result is not JSON-serializable/);
});

it('a result Postgres could not store (NUL, lone surrogate, deep nesting) fails only its own attempt; NULs in errors are replaced', async () => {
  const nested = () => {
    let v: unknown = 1;
    for (let i = 0; i < 100; i++) v = [v];
    return v;
  };
  fx.startWorker({
    handlers: {
      nul: async () => ({ a: 'x\u0000y' }),
      surrogate: async () => ['\ud800'],
      nested: async () => nested(),
      nulError: async () => {
        throw Object.assign(new Error('bad\u0000byte'), { code: 'E\u0000X' });
      },
    },
  });
  // Submitted together so their outcomes share batches with a success.
  const ids = await Promise.all([submit({ type: 'nul', max_retries: 0 }), submit({ type: 'surrogate', max_retries: 0 }), submit({ type: 'nested', max_retries: 0 }), submit({ type: 'echo', payload: 1 }), submit({ type: 'nulError', max_retries: 0 })]);
  const [nul, surrogate, deep, echo, nulError] = await Promise.all(ids.map(finalTask));
  expect(nul!.runs[0]!.error).toBe('result at a must not contain the NUL character (\\u0000), which Postgres cannot store');
  expect(surrogate!.runs[0]!.error).toBe('result at [0] must not contain a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)');
  expect(deep!.runs[0]!.error).toMatch(/^result at \[0\]\[0\].* nests more than 64 levels/);
  for (const t of [nul, surrogate, deep]) expect(t).toMatchObject({ status: 'dead', result: null });
  expect(echo).toMatchObject({ status: 'succeeded', result: { payload: 1 } });
  expect(nulError!.runs[0]).toMatchObject({ outcome: 'failed', error: 'bad\ufffdbyte', error_type: 'E\ufffdX' });
  expect(nulError!.runs[0]!.error_stack).toMatch(/^Error: bad\ufffdbyte\n/);
});

it('errors are recorded with their type (code or name) and a bounded stack', async () => {
  fx.startWorker({
    handlers: {
      reset: async () => {
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
      typed: async () => {
        class QuotaError extends Error {
          override name = 'QuotaError';
        }
        throw new QuotaError('over quota');
      },
      deep: async () => {
        // A stack longer than the bound: 1,000 frames of about 70 characters.
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = Infinity;
        try {
          const recurse = (n: number): never => (n === 0 ? (() => { throw new RangeError('deep'); })() : recurse(n - 1));
          recurse(1000);
        } finally {
          Error.stackTraceLimit = limit;
        }
      },
    },
  });
  const reset = await finalTask(await submit({ type: 'reset', max_retries: 0 }));
  expect(reset.runs[0]).toMatchObject({ outcome: 'failed', error: 'socket hang up', error_type: 'ECONNRESET' });
  expect(reset.runs[0]!.error_stack).toMatch(/^Error: socket hang up\n\s+at /);
  const typed = await finalTask(await submit({ type: 'typed', max_retries: 0 }));
  expect(typed.runs[0]).toMatchObject({ error_type: 'QuotaError' });
  expect(typed.runs[0]!.error_stack).toMatch(/^QuotaError: over quota\n\s+at /);
  const deep = await finalTask(await submit({ type: 'deep', max_retries: 0 }));
  expect(deep.runs[0]).toMatchObject({ error: 'deep', error_type: 'RangeError' });
  expect(deep.runs[0]!.error_stack).toHaveLength(16_385);
  expect(deep.runs[0]!.error_stack!.endsWith('…')).toBe(true);
  // The demo handlers' planned failures carry no frames (for speed): no stack, not their message again.
  const planned = await finalTask(await submit({ type: 'always_fail', max_retries: 0 }));
  expect(planned.runs[0]).toMatchObject({ error: 'always_fail: attempt 1 failed on purpose', error_type: 'Error', error_stack: null });
});

it('timeouts: the task’s own over its handler’s over TASK_TIMEOUT_MS; the signal fires and the run says why', async () => {
  const hang = (ctx: { signal: AbortSignal }) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  fx.startWorker({ handlers: { slow: withDefaults(hang, { timeoutMs: 150 }) } });
  const byHandler = await finalTask(await submit({ type: 'slow', max_retries: 0 }));
  expect(byHandler.runs[0]).toMatchObject({ error: 'handler timed out after 150 ms', error_type: 'TaskTimeoutError' });
  const byTask = await finalTask(await submit({ type: 'slow', max_retries: 0, timeout_ms: 300 }));
  expect(byTask.runs[0]!.error).toBe('handler timed out after 300 ms');
  expect(byTask.runs[0]!.duration_ms).toBeGreaterThanOrEqual(290);
  const sleeper = await finalTask(await submit({ type: 'sleeper', payload: { sleep_ms: 30_000 }, max_retries: 0, timeout_ms: 200 }));
  expect(sleeper).toMatchObject({ status: 'dead', timeout_ms: 200 });
});

it('a fixed backoff waits its base between attempts; the handler’s policy applies when the task has none', async () => {
  fx.startWorker({ handlers: { flakyDefault: withDefaults(async ({ attempt }) => { if (attempt < 3) throw new Error(`attempt ${attempt}`); }, { retry: { backoff: 'fixed', base_ms: 250, jitter: 'none' } }) } });
  const gaps = (runs: Run[]) => runs.slice(1).map((r, i) => Date.parse(r.started_at) - Date.parse(runs[i]!.finished_at));
  const own = await finalTask(await submit({ type: 'always_fail', max_retries: 2, retry: { backoff: 'fixed', base_ms: 300, jitter: 'none' } }));
  expect(own.retry).toEqual({ backoff: 'fixed', base_ms: 300, jitter: 'none' });
  expect(own.runs).toHaveLength(3);
  for (const g of gaps(own.runs)) expect(g).toBeGreaterThanOrEqual(290);
  const byHandler = await finalTask(await submit({ type: 'flakyDefault', max_retries: 5 }));
  expect(byHandler.status).toBe('succeeded');
  for (const g of gaps(byHandler.runs)) expect(g).toBeGreaterThanOrEqual(240);
  // The task's own fields win over the handler's, field by field.
  const mixed = await finalTask(await submit({ type: 'flakyDefault', max_retries: 5, retry: { base_ms: 20 } }));
  for (const g of gaps(mixed.runs)) expect(g).toBeLessThan(240);
});

it('policies are validated field by field (single and batch), and belong to the idempotent request', async () => {
  const bad = await call('POST', '/tasks', { type: 'noop', retry: { backoff: 'quadratic', base_ms: -1 }, timeout_ms: 0 });
  expect(bad.status).toBe(400);
  expect((bad.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['retry.backoff', 'retry.base_ms', 'timeout_ms']);
  const batch = await call('POST', '/tasks/batch', { tasks: [{ type: 'noop' }, { type: 'noop', retry: { jitter: 'half' } }] });
  expect((batch.body.results as { status: number; error?: { errors: { field: string }[] } }[]).map((r) => [r.status, r.error?.errors[0]?.field])).toEqual([[201, undefined], [400, 'tasks[1].retry.jitter']]);
  const first = await call('POST', '/tasks', { type: 'noop', retry: { backoff: 'linear' } }, { 'idempotency-key': 'policy-1' });
  expect(first.status).toBe(201);
  expect((await call('POST', '/tasks', { type: 'noop', retry: { backoff: 'linear' } }, { 'idempotency-key': 'policy-1' })).status).toBe(200);
  expect((await call('POST', '/tasks', { type: 'noop', retry: { backoff: 'fixed' } }, { 'idempotency-key': 'policy-1' })).status).toBe(409);
  expect((await call('POST', '/tasks', { type: 'noop', timeout_ms: 5 }, { 'idempotency-key': 'policy-1' })).status).toBe(409);
});

it('the reconciler re-indexes a task with its policy and timeout', async () => {
  const id = await submit({ type: 'noop', retry: { backoff: 'fixed', base_ms: 1000 }, timeout_ms: 1234 });
  // Redis loses everything it held of the task.
  const k = fx.stack.queue.keys;
  for (const key of [k.messages, k.meta, k.attempts, k.readyAt]) await fx.stack.inspect.hdel(key, id);
  await fx.stack.inspect.del(k.tenantQueue('default', 'default'));
  const [row] = await unfinishedByIds(fx.stack.pool, [id]);
  expect(queueItemOf(row!, '{}')).toMatchObject({ retry: { backoff: 'fixed', base_ms: 1000 }, timeoutMs: 1234 });
  const reconciler = new Reconciler({ pool: fx.stack.pool, queue: fx.stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog);
  expect((await reconciler.runOnce()).requeued).toBe(1);
  const [lease] = await fx.stack.queue.lease({ max: 1, visibilityMs: 10_000 });
  expect(lease!.message).toMatchObject({ id, retry: { backoff: 'fixed', base_ms: 1000 }, timeoutMs: 1234 });
});
