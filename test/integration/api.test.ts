/** The HTTP API against real Postgres and Redis: validation, idempotency, reads, health. */
import { createRedis } from '../../services/core/db/redis';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { createPgPool } from '../../services/core/db/postgres';
import { createTasks } from '../../services/core/tasks/task-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { silentLog, stackWithApi, startApi, startWorker, waitFor } from '../support/stack';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createApp } from '../../services/api/app';
import { startServer } from '../../services/api/server';
import type { Worker } from '../../services/worker/worker';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { Authenticator } from '../../services/api/auth/authenticator';
import { buildOpenApiDocument } from '../../services/api/openapi/document';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const fx = stackWithApi();

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fx.api.url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function expectProblem(res: Response, status: number, field?: string): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  if (field) expect((body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
  return body;
}

describe('POST /tasks', () => {
  it('creates a queued task with defaults, in snake_case', async () => {
    const res = await post({ type: 'noop' });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: 'noop', priority: 'default', payload: {}, status: 'queued', attempts: 0, max_retries: 5, idempotency_key: null, last_error: null });
    expect(res.headers.get('location')).toBe(`/tasks/${body.id}`);
    expect(typeof body.created_at).toBe('string');
    expect((await fx.stack.queue.stats()).ready.default).toBeGreaterThanOrEqual(1);
  });

  it.each([
    ['with an idempotency key', { idempotency_key: 'as-stored-1' }],
    ['without one (the unkeyed statement)', {}],
  ])('answers with the task exactly as it was stored (the answer is built from the request, not read back), %s', async (_, key) => {
    const res = await post({ type: 'flaky', priority: 'high', max_retries: 2, payload: { b: [1, 2.5, 'x'], a: { nested: null } }, ...key });
    expect(res.status).toBe(201);
    const answered = (await res.json()) as Record<string, unknown>;
    // Only the GET of a task lists its runs.
    const { runs, ...stored } = (await (await fetch(`${fx.api.url}/tasks/${answered.id}`)).json()) as Record<string, unknown>;
    expect(runs).toEqual([]);
    expect(answered).toEqual(stored);
  });

  it.each([
    ['malformed JSON', '{"type": "noop",', 400, '(body)'],
    ['an unknown priority', { type: 'noop', priority: 'urgent' }, 400, 'priority'],
    ['a wrong type for max_retries', { type: 'noop', max_retries: 'five' }, 400, 'max_retries'],
    ['max_retries out of range', { type: 'noop', max_retries: 101 }, 400, 'max_retries'],
    ['a missing type', { priority: 'low' }, 400, 'type'],
    ['a non-object body', '[1,2]', 400, '(body)'],
    ['an unknown field', { type: 'noop', prio: 'low' }, 400, 'prio'],
    ['a NUL character in the payload', { type: 'noop', payload: { s: 'a\u0000b' } }, 400, 'payload.s'],
  ])('rejects %s with a problem naming the field', async (_what, body, status, field) => {
    await expectProblem(await post(body), status, field);
  });

  it('rejects a body over 1 MiB with 413', async () => {
    await expectProblem(await post({ type: 'noop', payload: { blob: 'x'.repeat(1024 * 1024) } }), 413);
  });

  it('accepts a payload just under the limit', async () => {
    const res = await post({ type: 'noop', payload: { blob: 'x'.repeat(1024 * 1024 - 100) } });
    expect(res.status).toBe(201);
  });

  it('rejects a non-JSON content type with 415', async () => {
    const res = await fetch(`${fx.api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'type=noop' });
    await expectProblem(res, 415, 'Content-Type');
  });
});

/**
 * POST /tasks takes a path outside express for plain JSON bodies (services/api/fast-submit.ts);
 * these pin that both paths answer alike, and that what the fast path declines still works.
 */
describe('POST /tasks, beside the plain case', () => {
  /** A raw request, so headers and body framing are exactly as given. */
  function raw(headers: Record<string, string>, chunks: (string | Buffer)[]): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const u = new URL(`${fx.api.url}/tasks`);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  it('a gzip-compressed body is accepted (express inflates it)', async () => {
    const res = await raw({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, [gzipSync(JSON.stringify({ type: 'noop', priority: 'low' }))]);
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ type: 'noop', priority: 'low', status: 'queued' });
  });

  it('a charset other than UTF-8 is refused with 415', async () => {
    const res = await raw({ 'content-type': 'application/json; charset=latin1' }, ['{"type":"noop"}']);
    expect(res.status).toBe(415);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('a chunked body (no declared length) over the limit is refused with 413', async () => {
    const piece = 'x'.repeat(64 * 1024);
    const res = await raw({ 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, ['{"type":"noop","payload":{"blob":"', ...Array.from({ length: 17 }, () => piece), '"}}']);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ status: 413, instance: '/tasks' });
  });

  it('a chunked body within the limit, with a byte-order mark and charset=UTF-8, is accepted', async () => {
    const res = await raw({ 'content-type': 'application/json; charset="UTF-8"', 'transfer-encoding': 'chunked' }, ['\ufeff{"type":', '"noop"}']);
    expect(res.status).toBe(201);
  });

  it('an empty body is a task without a type', async () => {
    await expectProblem(await post(''), 400, 'type');
  });

  it('echoes a sane X-Request-Id, replaces an unusable one, and counts the request under its route', async () => {
    const echoed = await post({ type: 'noop' }, { 'X-Request-Id': 'req-42' });
    expect(echoed.headers.get('x-request-id')).toBe('req-42');
    const replaced = await post({ type: 'noop' }, { 'X-Request-Id': 'has spaces' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const bad = await post({ type: 'noop', priority: 'urgent' });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const counts = (await fx.api.registry.getSingleMetric('http_requests_total')!.get()).values;
    const of = (status: string) => counts.find((v) => v.labels.route === '/tasks' && v.labels.method === 'POST' && v.labels.status === status)?.value ?? 0;
    expect(of('201')).toBeGreaterThanOrEqual(2);
    expect(of('400')).toBeGreaterThanOrEqual(1);
  });

  it('a query string takes the express route and answers the same', async () => {
    const res = await fetch(`${fx.api.url}/tasks?tenant=default`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/^\/tasks\/[0-9a-f-]{36}$/);
  });
});

describe('idempotency', () => {
  it('replays the original task for the same key and body, and conflicts on a different body', async () => {
    const first = await post({ type: 'noop', payload: { a: 1, b: 2 }, idempotency_key: 'order-1' });
    expect(first.status).toBe(201);
    const original = (await first.json()) as { id: string };
    // Same request with keys reordered and the key in the header instead.
    const again = await post({ payload: { b: 2, a: 1 }, type: 'noop' }, { 'Idempotency-Key': 'order-1' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(original.id);
    const different = await post({ type: 'noop', payload: { a: 2 }, idempotency_key: 'order-1' });
    await expectProblem(different, 409, 'idempotency_key');
    const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE idempotency_key = 'order-1'");
    expect(rows[0].n).toBe(1);
  });

  it('concurrent requests with one new key create exactly one task', async () => {
    const responses = await Promise.all(Array.from({ length: 20 }, () => post({ type: 'noop', idempotency_key: 'race-1' })));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    const ids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { id: string }).id)));
    expect(ids.size).toBe(1);
    const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE idempotency_key = 'race-1'");
    expect(rows[0].n).toBe(1);
  });

  it('two API replicas racing on one new key create exactly one task', async () => {
    const other = createPgPool(fx.stack.dbUrl, 5, 'replica-2');
    try {
      const req = (n: number) => ({ task: { id: uuidv7(), tenant: 'default', type: 'noop', priority: 'default' as const, payload: { n: 1 }, maxRetries: 5, idempotencyKey: `replicas-${n}` }, requestHash: 'h' });
      for (let n = 0; n < 20; n++) {
        const [a, b] = await Promise.all([createTasks(fx.stack.pool, [req(n)], 60000), createTasks(other, [req(n)], 60000)]);
        expect([a[0]!.kind, b[0]!.kind].sort()).toEqual(['created', 'replayed']);
      }
      const { rows } = await fx.stack.pool.query("SELECT count(*)::int AS n FROM tasks WHERE idempotency_key LIKE 'replicas-%'");
      expect(rows[0].n).toBe(20);
    } finally {
      await other.end();
    }
  });

  it('an expired key can be used for a new task', async () => {
    const first = (await (await post({ type: 'noop', idempotency_key: 'exp-1' })).json()) as { id: string };
    await fx.stack.pool.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'exp-1'");
    const second = await post({ type: 'noop', payload: { other: true }, idempotency_key: 'exp-1' });
    expect(second.status).toBe(201);
    expect(((await second.json()) as { id: string }).id).not.toBe(first.id);
  });

  it('a replay re-queues a task whose first push to Redis failed', async () => {
    const deadRedis = createRedis({ addr: '127.0.0.1:1', name: 'dead', offlineQueue: false });
    deadRedis.on('error', () => undefined);
    const brokenQueue = new RedisQueue(deadRedis, { prefix: fx.stack.cfg.REDIS_KEY_PREFIX, strategy: 'weighted', weights: fx.stack.cfg.QUEUE_WEIGHTS });
    const broken = await startApi(fx.stack, brokenQueue);
    try {
      const res = await fetch(`${broken.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop', idempotency_key: 'push-1' }) });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      expect(await fx.stack.inspect.hexists(fx.stack.queue.keys.meta, id)).toBe(0);
      expect((await post({ type: 'noop', idempotency_key: 'push-1' })).status).toBe(200);
      // The replay's push follows its answer (under a share lock on the task: replay-push-race.test.ts).
      await waitFor(async () => (await fx.stack.inspect.hexists(fx.stack.queue.keys.meta, id)) === 1, 10_000, 'the replay to push the task');
    } finally {
      await broken.server.stop();
      deadRedis.disconnect();
    }
  });
});

describe('POST /tasks/batch', () => {
  function batch(body: unknown): Promise<Response> {
    return fetch(`${fx.api.url}/tasks/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  it('creates each valid task and reports each invalid one, in request order', async () => {
    const res = await batch({
      tasks: [
        { type: 'noop', priority: 'low' },
        { type: 'noop', priority: 'urgent' },
        { type: 'flaky', payload: { fail_attempts: 1 }, idempotency_key: 'b-1' },
        { type: 'noop', idempotency_key: 'b-1' },
        { type: 'flaky', payload: { fail_attempts: 1 }, idempotency_key: 'b-1' },
      ],
    });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: { status: number; task?: { id: string; status: string }; error?: { errors: { field: string }[] } }[] };
    expect(results.map((r) => r.status)).toEqual([201, 400, 201, 409, 200]);
    expect(results[1]!.error!.errors.map((e) => e.field)).toEqual(['tasks[1].priority']);
    expect(results[4]!.task!.id).toBe(results[2]!.task!.id);
    const { rows } = await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::uuid[])', [[results[0]!.task!.id, results[2]!.task!.id]]);
    expect(rows[0].n).toBe(2);
    expect(await fx.stack.inspect.hexists(fx.stack.queue.keys.meta, results[0]!.task!.id)).toBe(1);
  });

  it('accepts 1,000 tasks in one request', async () => {
    const res = await batch({ tasks: Array.from({ length: 1000 }, (_, i) => ({ type: 'noop', payload: { i } })) });
    const { results } = (await res.json()) as { results: { status: number; task: { id: string; created_at: string; payload: unknown } }[] };
    expect(results).toHaveLength(1000);
    expect(results.every((r) => r.status === 201)).toBe(true);
    // Each answer is its own row, as stored.
    const { rows } = await fx.stack.pool.query('SELECT id, created_at, payload FROM tasks WHERE id = ANY($1::uuid[])', [results.map((r) => r.task.id)]);
    const stored = new Map(rows.map((r: { id: string; created_at: Date; payload: unknown }) => [r.id, r]));
    expect(results.every((r, i) => stored.get(r.task.id)?.created_at.toISOString() === r.task.created_at && (r.task.payload as { i: number }).i === i)).toBe(true);
  });

  it.each([
    ['no tasks array', { type: 'noop' }],
    ['an empty batch', { tasks: [] }],
    ['more than 1,000 tasks', { tasks: Array.from({ length: 1001 }, () => ({ type: 'noop' })) }],
    ['an unknown top-level field', { tasks: [{ type: 'noop' }], extra: 1 }],
  ])('rejects %s as a whole', async (_what, body) => {
    await expectProblem(await batch(body), 400);
  });
});

describe('GET /tasks/:id', () => {
  it('returns the task with its runs once a worker ran it', async () => {
    let worker: Worker | null = null;
    try {
      ({ worker } = startWorker(fx.stack, { cfg: { ...fx.stack.cfg, RETRY_BASE_MS: 10, RETRY_MAX_MS: 20, RETRY_JITTER_MS: 0, RETRY_SCAN_INTERVAL_MS: 20, POLL_INTERVAL_MS: 10 } }));
      const { id } = (await (await post({ type: 'flaky', payload: { fail_attempts: 1 }, priority: 'critical' })).json()) as { id: string };
      const task = await waitFor(async () => {
        const body = (await (await fetch(`${fx.api.url}/tasks/${id}`)).json()) as Record<string, unknown>;
        return body.status === 'succeeded' ? body : null;
      });
      expect(task).toMatchObject({ id, status: 'succeeded', attempts: 2, last_error: expect.stringMatching(/flaky/) });
      expect((task.runs as { outcome: string }[]).map((r) => r.outcome)).toEqual(['failed', 'succeeded']);
      expect(task.started_at).toEqual(expect.any(String));
      expect(task.finished_at).toEqual(expect.any(String));
    } finally {
      await worker?.stop(0);
    }
  });

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    await expectProblem(await fetch(`${fx.api.url}/tasks/01a22612-3814-77a3-b56a-d007e5a4999a`), 404);
    await expectProblem(await fetch(`${fx.api.url}/tasks/not-a-uuid`), 400, 'id');
    await expectProblem(await fetch(`${fx.api.url}/nothing-here`), 404);
  });
});

describe('health', () => {
  it('GET /openapi.json serves the document without a key, where every other route asks for one', async () => {
    const auth = new Authenticator(fx.stack.pool, { mode: 'keys', cacheMs: 0, log: silentLog });
    const keyed = await startApi(fx.stack, fx.stack.queue, auth);
    try {
      const res = await fetch(`${keyed.url}/openapi.json`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(buildOpenApiDocument());
      expect((await fetch(`${keyed.url}/openapi.json`, { method: 'HEAD' })).status).toBe(200);
      expect((await fetch(`${keyed.url}/openapi.json`, { method: 'POST' })).status).toBe(405);
      const refused = await fetch(`${keyed.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
      expect(refused.status).toBe(401);
    } finally {
      await keyed.server.stop();
      await auth.close();
    }
  });

  it('healthz is alive and readyz checks both dependencies', async () => {
    expect((await fetch(`${fx.api.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${fx.api.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('with Postgres down, POST /tasks answers 503 with Retry-After and creates nothing', async () => {
    const deadPool = createPgPool('postgres://postgres@127.0.0.1:1/none', 2, 'dead');
    const registry = createRegistry('api');
    const app = createApp({ pool: deadPool, queue: fx.stack.queue, log: silentLog, metrics: apiMetrics(registry), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60000 });
    const server = await startServer(app, '127.0.0.1:0');
    const url = `http://127.0.0.1:${server.address.port}`;
    try {
      const before = (await fx.stack.queue.stats()).ready.default;
      const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
      const body = await expectProblem(res, 503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(String(body.detail)).toMatch(/unavailable/);
      expect((await fx.stack.queue.stats()).ready.default).toBe(before);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: { redis: string } }).checks.redis).toBe('ok');
    } finally {
      await server.stop();
      await deadPool.end();
    }
  });

  it('readyz stays 200 when Redis does not answer, and reports it', async () => {
    const deadRedis = createRedis({ addr: '127.0.0.1:1', name: 'dead', offlineQueue: false });
    deadRedis.on('error', () => undefined);
    const broken = await startApi(fx.stack, new RedisQueue(deadRedis, { prefix: 'x', strategy: 'weighted', weights: fx.stack.cfg.QUEUE_WEIGHTS }));
    try {
      const res = await fetch(`${broken.url}/readyz`);
      // The API still accepts tasks into Postgres while Redis is away (see readiness.test.ts).
      expect(res.status).toBe(200);
      const { checks } = (await res.json()) as { checks: { postgres: string; redis: string } };
      expect(checks.postgres).toBe('ok');
      expect(checks.redis).not.toBe('ok');
    } finally {
      await broken.server.stop();
      deadRedis.disconnect();
    }
  });
});

it("exports the api's counters with known label values at 0 before their first event, so rate() sees that event", async () => {
  const registry = createRegistry('api');
  apiMetrics(registry);
  const zeros = async (name: string, label: string) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)!;
    return Object.fromEntries(m.values.map((v) => [v.labels[label], v.value]));
  };
  expect(await zeros('auth_failures_total', 'reason')).toEqual({ missing: 0, malformed: 0, unknown: 0, revoked_or_expired: 0 });
  expect(await zeros('auth_key_lookups_total', 'result')).toEqual({ verified: 0, found: 0, not_found: 0, refused: 0 });
  expect(await zeros('tasks_cancelled_total', 'how')).toEqual({ waiting: 0, running: 0 });
  expect(await zeros('tasks_redriven_total', 'from')).toEqual({ dead: 0, cancelled: 0 });
});
