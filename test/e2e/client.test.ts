/**
 * The typed client against the built api and worker processes: every method, its errors, and its
 * retries: a 429 under a tenant's rate limit waited out per Retry-After, a lost answer sent again
 * under the same idempotency key (one task, not two), connection errors retried only where safe.
 * Every answer it receives is checked against the OpenAPI document.
 */
import net from 'node:net';
import { ApiError, ConnectionError, RetryInfo, TaskSchedulerClient } from '../../services/client';
import { createKey } from '../../services/core/tenancy/key-store';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { TEST_KEY } from '../support/auth';
import { fetch as contractFetch } from '../support/contract';
import { LossyProxy, startLossyProxy } from '../support/lossy-proxy';
import { freePort } from '../support/processes';
import { ServiceProcesses, startServiceProcesses } from '../support/service-processes';
import { waitFor } from '../support/stack';

let svc: ServiceProcesses;
let proxy: LossyProxy;
beforeAll(async () => {
  svc = await startServiceProcesses({ label: 'client' });
  proxy = await startLossyProxy(svc.url);
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await svc?.stop();
});

const fast = { baseDelayMs: 20, maxDelayMs: 5000 };
// Every answer the client gets is checked against the OpenAPI document (the contract test's fetch).
const client = (opts: Partial<ConstructorParameters<typeof TaskSchedulerClient>[0]> = {}) =>
  new TaskSchedulerClient({ baseUrl: svc.url, apiKey: TEST_KEY, retry: fast, fetch: contractFetch as typeof fetch, ...opts });
const countTasks = async (where: string, params: unknown[] = []) => (await svc.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE ${where}`, params)).rows[0].n as number;

it('submits, reads back with runs, and gives every submission an idempotency key', async () => {
  const c = client();
  const { task, created } = await c.submit({ type: 'noop', priority: 'high', payload: { n: 1 } });
  expect(created).toBe(true);
  expect(task).toMatchObject({ type: 'noop', priority: 'high', payload: { n: 1 }, status: 'queued' });
  expect(task.idempotency_key).toMatch(/^client-[0-9a-f-]{36}$/);
  const done = await waitFor(async () => {
    const t = await c.get(task.id);
    return t.status === 'succeeded' ? t : null;
  });
  expect(done.runs).toEqual([expect.objectContaining({ attempt: 1, outcome: 'succeeded' })]);

  // The caller's own key is used as given, and a repeat of the request is its replay.
  const again = await c.submit({ type: 'noop', idempotency_key: 'mine-1' });
  const replay = await c.submit({ type: 'noop', idempotency_key: 'mine-1' });
  expect(replay).toEqual({ task: expect.objectContaining({ id: again.task.id }), created: false });
});

it('per-task retry policy and timeout go through; the result comes back', async () => {
  const c = client();
  const { task } = await c.submit({ type: 'echo', payload: { hi: 1 }, retry: { backoff: 'fixed', base_ms: 100, jitter: 'none' }, timeout_ms: 5000 });
  expect(task).toMatchObject({ retry: { backoff: 'fixed', base_ms: 100, jitter: 'none' }, timeout_ms: 5000, result: null });
  const done = await waitFor(async () => {
    const t = await c.get(task.id);
    return t.status === 'succeeded' ? t : null;
  });
  expect(done.result).toEqual({ payload: { hi: 1 } });
  await expect(c.submit({ type: 'echo', timeout_ms: -1 })).rejects.toMatchObject({ status: 400, problem: { errors: [expect.objectContaining({ field: 'timeout_ms' })] } });
});

it('submitBatch keys every item and reports each result in order', async () => {
  const r = await client().submitBatch([{ type: 'noop' }, { type: 'bad type!' }, { type: 'noop', idempotency_key: 'batch-own' }]);
  expect(r.results.map((x) => x.status)).toEqual([201, 400, 201]);
  expect(r.results).toEqual([
    { status: 201, task: expect.objectContaining({ idempotency_key: expect.stringMatching(/^client-/) }) },
    { status: 400, error: expect.objectContaining({ errors: [expect.objectContaining({ field: 'tasks[1].type' })] }) },
    { status: 201, task: expect.objectContaining({ idempotency_key: 'batch-own' }) },
  ]);
});

it('a submission whose answer is lost is sent again under its key: one task, not two', async () => {
  const retries: RetryInfo[] = [];
  const c = client({ baseUrl: proxy.url, onRetry: (i) => retries.push(i) });
  const before = await countTasks('true');
  proxy.dropAnswers(1);
  const { task, created } = await c.submit({ type: 'noop', payload: { lost: 1 } });
  expect(proxy.dropped()).toBe(1);
  expect(retries).toEqual([expect.objectContaining({ request: 'POST /tasks', retry: 1, status: null })]);
  // The first send created the task; the second is answered with that same task.
  expect(created).toBe(false);
  expect(await countTasks('true')).toBe(before + 1);
  expect(await countTasks('idempotency_key = $1', [task.idempotency_key])).toBe(1);

  proxy.dropAnswers(1);
  const batch = await c.submitBatch([{ type: 'noop' }, { type: 'noop' }, { type: 'noop' }]);
  expect(batch.results.map((x) => x.status)).toEqual([200, 200, 200]);
  expect(await countTasks('true')).toBe(before + 4);
});

it('429 under a rate limit: waits Retry-After and sends again; a 429 without it (over the burst) is thrown at once', async () => {
  const { key } = await createKey(svc.pool, { tenant: 'slow', scopes: ['tasks:write', 'tasks:read'], expiresInMs: null });
  await setTenant(svc.pool, 'slow', { rate_limit: 1, burst: 1 });
  await new Promise((r) => setTimeout(r, 1100)); // the API re-reads tenant settings every second
  const retries: RetryInfo[] = [];
  const c = client({ apiKey: key, onRetry: (i) => retries.push(i) });
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) expect((await c.submit({ type: 'noop' })).created).toBe(true);
  expect(await countTasks("tenant = 'slow'")).toBe(3);
  expect(retries.length).toBeGreaterThanOrEqual(2);
  for (const r of retries) {
    expect(r.status).toBe(429);
    expect(r.delayMs).toBeGreaterThanOrEqual(1000);
  }
  expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);

  const err = await client({ apiKey: key }).submitBatch([{ type: 'noop' }, { type: 'noop' }]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  expect(err).toMatchObject({ status: 429, attempts: 1, problem: { detail: expect.stringMatching(/burst of 1/) } });

  // Without retries the caller sees the 429 itself.
  const once = client({ apiKey: key, retry: { maxRetries: 0 } });
  const settled = await Promise.allSettled([once.submit({ type: 'noop' }), once.submit({ type: 'noop' })]);
  const refused = settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason);
  expect(refused.length).toBeGreaterThanOrEqual(1);
  for (const e of refused) expect(e).toMatchObject({ name: 'ApiError', status: 429, attempts: 1 });
}, 30_000);

it('errors carry the status and problem body', async () => {
  const c = client();
  await expect(c.get('00000000-0000-7000-8000-000000000000')).rejects.toMatchObject({ name: 'ApiError', status: 404, problem: { title: 'Not found' } });
  await expect(c.get('nope')).rejects.toMatchObject({ status: 400, problem: { errors: [{ field: 'id', message: 'must be a UUID' }] } });
  await expect(client({ apiKey: 'tsk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }).get('00000000-0000-7000-8000-000000000000')).rejects.toMatchObject({ status: 401 });
  const e = await c.submit({ type: '' }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ApiError);
  expect((e as ApiError).message).toMatch(/type/);
});

it('connection errors: retried for safe calls, not for a retry of a task', async () => {
  const port = await freePort();
  const retries: RetryInfo[] = [];
  const c = new TaskSchedulerClient({ baseUrl: `http://127.0.0.1:${port}`, retry: { maxRetries: 2, baseDelayMs: 10 }, onRetry: (i) => retries.push(i) });
  const got = await c.get('00000000-0000-7000-8000-000000000000').catch((x: unknown) => x);
  expect(got).toBeInstanceOf(ConnectionError);
  expect(got).toMatchObject({ attempts: 3, message: expect.stringMatching(/ECONNREFUSED/) });
  expect(retries).toHaveLength(2);
  await expect(c.retry('00000000-0000-7000-8000-000000000000')).rejects.toMatchObject({ name: 'ConnectionError', attempts: 1 });
});

it('a request no HTTP header can carry (a line break in a key or a tenant) is a TypeError at once: not sent, not retried as a lost connection', async () => {
  const retries: RetryInfo[] = [];
  const c = client({ onRetry: (i) => retries.push(i) });
  const keyed = await c.submit({ type: 'noop', idempotency_key: 'line\nbreak' }).catch((x: unknown) => x);
  expect(keyed).toBeInstanceOf(TypeError);
  expect((keyed as Error).message).toMatch(/^POST \/tasks: /);
  const tenanted = await client({ tenant: 'a\r\nX-Other: 1', onRetry: (i) => retries.push(i) }).queues().catch((x: unknown) => x);
  expect(tenanted).toBeInstanceOf(TypeError);
  expect(retries).toEqual([]);
});

it('a server that never answers: each send times out, and the caller may abort', async () => {
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const sockets: net.Socket[] = [];
  silent.on('connection', (s) => sockets.push(s));
  try {
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const c = new TaskSchedulerClient({ baseUrl: url, timeoutMs: 200, retry: { maxRetries: 1, baseDelayMs: 10 } });
    const t0 = Date.now();
    await expect(c.get('00000000-0000-7000-8000-000000000000')).rejects.toMatchObject({ name: 'ConnectionError', attempts: 2, message: expect.stringMatching(/no answer within 200 ms/) });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    const slow = new TaskSchedulerClient({ baseUrl: url, timeoutMs: 60_000 });
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('caller gave up')), 100);
    await expect(slow.get('00000000-0000-7000-8000-000000000000', { signal: stop.signal })).rejects.toThrow('caller gave up');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

it('cancel and retry one task', async () => {
  const c = client();
  const { task } = await c.submit({ type: 'sleeper', payload: { sleep_ms: 60_000 } });
  await waitFor(async () => (await c.get(task.id)).status === 'running');
  const cancelling = await c.cancel(task.id);
  expect(cancelling.status).toBe(202);
  await waitFor(async () => (await c.get(task.id)).status === 'cancelled', 10_000);
  const again = await c.cancel(task.id);
  expect(again).toMatchObject({ status: 200, task: { status: 'cancelled' } });
  const retried = await c.retry(task.id);
  expect(retried).toMatchObject({ status: 200, task: { status: 'queued' } });
  await c.cancel(task.id);

  const dead = (await c.submit({ type: 'always_fail', max_retries: 0 })).task;
  await waitFor(async () => (await c.get(dead.id)).status === 'dead');
  expect((await c.retry(dead.id)).task.status).toMatch(/queued|running|retrying|dead/);
  const done = (await c.submit({ type: 'noop' })).task;
  await waitFor(async () => (await c.get(done.id)).status === 'succeeded');
  await expect(c.retry(done.id)).rejects.toMatchObject({ status: 409 });
  await expect(c.cancel(done.id)).rejects.toMatchObject({ status: 409 });
});

it('list: pages follow next_cursor, exactly once each while tasks are added', async () => {
  const c = client();
  // A type no worker knows: each goes straight to the dead-letter queue.
  const older: string[] = [];
  for (let i = 0; i < 7; i++) older.push((await c.submit({ type: 'pageme' })).task.id);
  const pages: string[][] = [];
  for await (const page of c.list({ type: 'pageme', limit: 3 })) {
    pages.push(page.tasks.map((t) => t.id));
    await c.submit({ type: 'pageme' }); // newer than any cursor: never on a later page
  }
  expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
  expect(pages.flat()).toEqual([...older].reverse());
  const first = await c.listPage({ type: 'pageme', status: ['dead', 'queued'], limit: 500 });
  expect(first).toEqual({ tasks: expect.any(Array), next_cursor: null });
  expect(first.tasks).toHaveLength(10);
  await expect(c.listPage({ status: 'lost' })).rejects.toMatchObject({ status: 400, problem: { errors: [expect.objectContaining({ field: 'status' })] } });
});

it('bulkRetry and bulkCancel: dry runs count, calls change, the filter scopes them', async () => {
  const c = client();
  const { results } = await c.submitBatch(Array.from({ length: 5 }, () => ({ type: 'bulkme' })));
  const ids = results.flatMap((r) => ('task' in r ? [r.task.id] : []));
  await waitFor(async () => (await countTasks("type = 'bulkme' AND status = 'dead'")) === 5);
  expect(await c.bulkRetry({ filter: { type: 'bulkme', status: 'dead' }, dry_run: true })).toEqual({ matched: 5, changed: 0, has_more: false, next_cursor: null, dry_run: true });
  const two = await c.bulkRetry({ filter: { type: 'bulkme', status: 'dead' }, limit: 2 });
  expect(two).toEqual({ matched: 2, changed: 2, has_more: true, next_cursor: expect.any(String), dry_run: false });
  await waitFor(async () => (await countTasks("type = 'bulkme' AND status = 'dead'")) === 5);
  // The cursor carries on after those two, though they are dead again: the other three.
  expect(await c.bulkRetry({ filter: { type: 'bulkme', status: 'dead' }, cursor: two.next_cursor!, dry_run: true })).toMatchObject({ matched: 3, has_more: false, next_cursor: null });

  const after = results[0]!.status === 201 && 'task' in results[0]! ? results[0].task.created_at : '';
  const sleepers = await c.submitBatch(Array.from({ length: 4 }, () => ({ type: 'sleeper', priority: 'low' as const, payload: { sleep_ms: 60_000 } })));
  expect(sleepers.results.every((r) => r.status === 201)).toBe(true);
  const cancelled = await c.bulkCancel({ filter: { type: 'sleeper', priority: 'low', created_after: after } });
  expect(cancelled).toMatchObject({ matched: 4, changed: 4, has_more: false });
  await waitFor(async () => (await countTasks("type = 'sleeper' AND priority = 'low' AND status = 'cancelled'")) === 4, 10_000);
  expect(ids).toHaveLength(5);
  await expect(c.bulkCancel({ filter: { status: 'dead' } })).rejects.toMatchObject({ status: 400, problem: { errors: [expect.objectContaining({ field: 'filter.status' })] } });
});

it('queues: per priority, and the worker with its slots', async () => {
  const q = await client().queues();
  expect(q.tenant).toBe('default');
  expect(Object.keys(q.priorities).sort()).toEqual(['critical', 'default', 'high', 'low']);
  expect(q.priorities.low).toMatchObject({ queued: expect.any(Number), dead: expect.any(Number), last_minute: expect.objectContaining({ enqueued: expect.any(Number) }) });
  expect(q.workers).toEqual([expect.objectContaining({ slots: 8 })]);
});
