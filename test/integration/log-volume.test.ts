/**
 * Logs stay quiet under load whatever fails: while Redis is away the API goes on accepting tasks
 * into Postgres (the reconciler queues them later), and while Postgres is away (or the API sheds
 * load) it answers 503; each says so in a bounded number of lines, not one per request. A fault
 * (a 500) is still logged for every request.
 */
import { createApp } from '../../services/api/app';
import { startServer } from '../../services/api/server';
import { createPgPool } from '../../services/core/db/postgres';
import { createRedis } from '../../services/core/db/redis';
import { createLogger } from '../../services/core/observability/logger';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { freePort } from '../support/processes';
import { createStack, Stack } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

it('while Redis is away, 200 accepted tasks log their failed push a few times, with how many were left to the reconciler', async () => {
  const redis = createRedis({ addr: `127.0.0.1:${await freePort()}`, name: 'log-volume-dead', offlineQueue: false });
  redis.on('error', () => undefined);
  redis.disconnect();
  const queue = new RedisQueue(redis, { prefix: 'log-volume', strategy: stack.cfg.QUEUE_STRATEGY, weights: stack.cfg.QUEUE_WEIGHTS });
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('api', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const app = createApp({ pool: stack.pool, queue, log, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 3, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0');
  try {
    const url = `http://127.0.0.1:${server.address.port}`;
    // One client after another: each request is its own batch, the worst case for a line per push.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'noop' }) });
      expect(res.status).toBe(201);
    }
    await app.settled();
    const { rows } = await stack.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status = 'queued'");
    expect(rows[0]!.n).toBe(200);
    const pushes = lines.filter((l) => String(l.msg).includes('not queued in Redis'));
    // The first failure is told at once, with task ids; the rest are summed up, not repeated.
    expect(pushes.length).toBeGreaterThanOrEqual(1);
    expect(pushes.length).toBeLessThanOrEqual(3);
    expect(pushes[0]).toMatchObject({ level: 'error', count: 1 });
    expect(pushes[0]!.taskIds).toHaveLength(1);
    expect(lines.length).toBeLessThanOrEqual(5);
  } finally {
    await server.stop();
  }
});

it('while Postgres is away, 200 requests answered 503 log a few lines (with a request id and how many were held back), not one each', async () => {
  const deadPool = createPgPool(`postgres://postgres@127.0.0.1:${await freePort()}/none`, 2, 'log-volume-dead');
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('api', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const app = createApp({ pool: deadPool, queue: stack.queue, log, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 3, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0');
  try {
    const url = `http://127.0.0.1:${server.address.port}`;
    for (let i = 0; i < 100; i++) {
      // The plain POST /tasks (the fast path) and one express serves.
      const fast = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
      const routed = await fetch(`${url}/tasks/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tasks":[{"type":"noop"}]}' });
      expect([fast.status, routed.status]).toEqual([503, 503]);
    }
    const failed = lines.filter((l) => l.msg === 'request failed');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBeLessThanOrEqual(3);
    expect(failed[0]!.requestId).toEqual(expect.any(String));
  } finally {
    await server.stop();
    await deadPool.end();
  }
});

it('a 500 (a fault, not an outage) is still logged for every request, with its id', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('api', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  // A pool whose every query fails with an error that is not an outage.
  const broken = new Proxy(stack.pool, { get: (t, p, r) => (p === 'query' ? () => Promise.reject(new Error('boom')) : p === 'connect' ? () => Promise.reject(new Error('boom')) : Reflect.get(t, p, r)) });
  const app = createApp({ pool: broken, queue: stack.queue, log, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 3, idempotencyTtlMs: 60_000 });
  const server = await startServer(app, '127.0.0.1:0');
  try {
    const url = `http://127.0.0.1:${server.address.port}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
      expect(res.status).toBe(500);
      ids.push(res.headers.get('x-request-id')!);
    }
    expect(lines.filter((l) => l.msg === 'request failed').map((l) => l.requestId)).toEqual(ids);
  } finally {
    await server.stop();
  }
});
