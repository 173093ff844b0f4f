/**
 * /readyz says whether the API can take tasks: ready while Postgres answers, also while Redis is
 * away (tasks are then accepted into Postgres), with Redis reported in the body and in
 * dependency_up. The check has its own connection, so a saturated request pool does not make the
 * API look unready, and it answers within READINESS_TIMEOUT_MS whatever the dependencies do.
 */
import net from 'node:net';
import type { PoolClient } from 'pg';
import type { Registry } from 'prom-client';
import { createApp } from '../../services/api/app';
import { apiReadiness, createReadinessPool } from '../../services/api/readiness';
import { RunningServer, startServer } from '../../services/api/server';
import { createRedis } from '../../services/core/db/redis';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { dependencyChecks, startMetricsServer } from '../../services/core/observability/metrics-server';
import { layoutProblem } from '../../services/core/queue/partitions';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import type { TaskQueue } from '../../services/core/queue/queue';
import { freePort } from '../support/processes';
import { createStack, silentLog, Stack } from '../support/stack';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from '../support/contract';

const TIMEOUT_MS = 1000;
// Scheduling on a shared two-core machine; the checks themselves are bounded by TIMEOUT_MS.
const SLACK_MS = 500;

let stack: Stack;
beforeAll(async () => {
  stack = await createStack({ READINESS_TIMEOUT_MS: TIMEOUT_MS });
});
afterAll(async () => {
  await stack.close();
});

interface Api {
  url: string;
  registry: Registry;
  stop(): Promise<void>;
}

/** An API as main.ts builds it: /readyz on a one-connection pool of its own to `readinessUrl`. */
async function startApi(opts: { queue?: TaskQueue; readinessUrl?: string; layout?: () => Promise<string | null> } = {}): Promise<Api> {
  const registry = createRegistry('api');
  const readinessPool = createReadinessPool(opts.readinessUrl ?? stack.dbUrl, TIMEOUT_MS, silentLog);
  const queue = opts.queue ?? stack.queue;
  const readiness = apiReadiness({ pool: readinessPool, queue, timeoutMs: stack.cfg.READINESS_TIMEOUT_MS, registry, layout: opts.layout });
  const app = createApp({ pool: stack.pool, queue, log: silentLog, metrics: apiMetrics(registry), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, readiness });
  const server: RunningServer = await startServer(app, '127.0.0.1:0');
  return {
    url: `http://127.0.0.1:${server.address.port}`,
    registry,
    async stop() {
      await server.stop();
      await readinessPool.end();
    },
  };
}

async function readyz(url: string): Promise<{ status: number; body: { status: string; checks: Record<string, string> }; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(`${url}/readyz`);
  const body = (await res.json()) as { status: string; checks: Record<string, string> };
  return { status: res.status, body, ms: Date.now() - t0 };
}

/** dependency_up as exported on /metrics (reading it also runs a check, as a scrape does). */
async function dependencyUp(registry: Registry): Promise<Record<string, number>> {
  const text = await registry.metrics();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^dependency_up\{([^}]*)\} (\S+)$/gm)) {
    const dep = /dependency="([^"]+)"/.exec(m[1]!)![1]!;
    out[dep] = Number(m[2]);
  }
  return out;
}

/** A queue whose Redis connection is gone: pointed at a closed port, and closed for good at once. */
async function deadRedisQueue(): Promise<RedisQueue> {
  const redis = createRedis({ addr: `127.0.0.1:${await freePort()}`, name: 'readiness-dead', offlineQueue: false });
  redis.on('error', () => undefined);
  // Closed before its first retry: a client left reconnecting keeps timers running after the test.
  redis.disconnect();
  return new RedisQueue(redis, { prefix: 'readiness', strategy: stack.cfg.QUEUE_STRATEGY, weights: stack.cfg.QUEUE_WEIGHTS });
}

it('is ready with both dependencies up, and dependency_up says so', async () => {
  const api = await startApi();
  try {
    const r = await readyz(api.url);
    expect([r.status, r.body]).toEqual([200, { status: 'ready', checks: { postgres: 'ok', redis: 'ok' } }]);
    expect(await dependencyUp(api.registry)).toEqual({ postgres: 1, redis: 1 });
  } finally {
    await api.stop();
  }
});

it('answers 200 within READINESS_TIMEOUT_MS while every connection of the request pool is taken', async () => {
  const api = await startApi();
  const held: PoolClient[] = [];
  try {
    // The request pool's every connection checked out, as under a burst of slow queries.
    for (let i = 0; i < 10; i++) held.push(await stack.pool.connect());
    expect([stack.pool.totalCount, stack.pool.idleCount]).toEqual([10, 0]);
    const r = await readyz(api.url);
    expect([r.status, r.body.checks.postgres]).toEqual([200, 'ok']);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  } finally {
    for (const c of held) c.release();
    await api.stop();
  }
});

it('stays ready while Redis is unreachable, reports it, and still accepts tasks', async () => {
  const queue = await deadRedisQueue();
  const api = await startApi({ queue });
  try {
    const r = await readyz(api.url);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ready');
    expect(r.body.checks.postgres).toBe('ok');
    expect(r.body.checks.redis).not.toBe('ok');
    expect(r.body.checks.redis).toMatch(/\S/);
    expect(await dependencyUp(api.registry)).toEqual({ postgres: 1, redis: 0 });
    // What readiness promises: the task is committed to Postgres for the reconciler to queue.
    const posted = await fetch(`${api.url}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"noop"}' });
    expect(posted.status).toBe(201);
  } finally {
    await api.stop();
  }
});

it('answers 503 while Postgres refuses connections', async () => {
  const api = await startApi({ readinessUrl: `postgres://postgres@127.0.0.1:${await freePort()}/none` });
  try {
    const r = await readyz(api.url);
    expect([r.status, r.body.status, r.body.checks.redis]).toEqual([503, 'unavailable', 'ok']);
    expect(r.body.checks.postgres).not.toBe('ok');
    expect(r.body.checks.postgres).toMatch(/\S/);
    expect(await dependencyUp(api.registry)).toEqual({ postgres: 0, redis: 1 });
  } finally {
    await api.stop();
  }
});

it('answers 503 within READINESS_TIMEOUT_MS, every time, while Postgres accepts connections but never answers', async () => {
  // A Postgres that hangs (frozen, or a partition that drops packets): connections open, nothing comes back.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const api = await startApi({ readinessUrl: `postgres://postgres@127.0.0.1:${(silent.address() as net.AddressInfo).port}/none` });
  try {
    for (let round = 0; round < 2; round++) {
      // Probes asking at once share one check rather than queueing behind the one connection.
      const answers = await Promise.all(Array.from({ length: 20 }, () => readyz(api.url)));
      for (const r of answers) {
        expect([r.status, r.body.checks.redis]).toEqual([503, 'ok']);
        expect(r.body.checks.postgres).toMatch(/timeout|within/i);
        expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      }
    }
  } finally {
    await api.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

describe("the worker's /readyz (metrics server)", () => {
  it('requires Postgres and Redis, and answers within its timeout while the pool is saturated', async () => {
    const queue = await deadRedisQueue();
    const metrics = await startMetricsServer(createRegistry('worker'), '127.0.0.1:0', () => dependencyChecks(stack.pool, queue, TIMEOUT_MS));
    const url = `http://127.0.0.1:${metrics.address.port}`;
    const held: PoolClient[] = [];
    try {
      let r = await readyz(url);
      expect([r.status, r.body.checks.postgres]).toEqual([503, 'ok']);
      expect(r.body.checks.redis).not.toBe('ok');

      // The pool the check is given (in the worker, a connection of its own) taken: a failed check, in bounded time.
      for (let i = 0; i < 10; i++) held.push(await stack.pool.connect());
      r = await readyz(url);
      expect([r.status, r.body.checks.postgres]).toEqual([503, `no answer within ${TIMEOUT_MS} ms`]);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    } finally {
      for (const c of held) c.release();
      await metrics.close();
      }
  });
});

it('is unready while the queue is repartitioned under it, or laid out in another count, naming why', async () => {
  const { REDIS_KEY_PREFIX: prefix, REDIS_PARTITIONS: partitions } = stack.cfg;
  const api = await startApi({ layout: () => layoutProblem(stack.redis, prefix, partitions) });
  try {
    expect((await readyz(api.url)).status).toBe(200);
    await stack.redis.hset(`{${prefix}}:repartition`, 'from', String(partitions), 'to', String(partitions + 2), 'phase', 'copy');
    let r = await readyz(api.url);
    expect([r.status, r.body.status]).toEqual([503, 'unavailable']);
    expect(r.body.checks.layout).toMatch(/being repartitioned from \d+ to \d+/);
    await stack.redis.del(`{${prefix}}:repartition`);
    await stack.redis.set(`{${prefix}}:layout`, String(partitions + 2));
    r = await readyz(api.url);
    expect(r.status).toBe(503);
    expect(r.body.checks.layout).toMatch(new RegExp(`REDIS_PARTITIONS=${partitions}, but .* laid out in ${partitions + 2}`));
    // Not a dependency: dependency_up does not count it.
    expect(Object.keys(await dependencyUp(api.registry)).sort()).toEqual(['postgres', 'redis']);
    await stack.redis.set(`{${prefix}}:layout`, String(partitions));
    expect((await readyz(api.url)).status).toBe(200);
  } finally {
    await stack.redis.del(`{${prefix}}:layout`, `{${prefix}}:repartition`).catch(() => undefined);
    await api.stop();
  }
});
