/**
 * An in-process stack for integration tests: a private database cloned from the migrated template,
 * a Redis namespace of its own, and the real queue, worker and API built from a test config.
 */
import type { Pool } from 'pg';
import Redis from 'ioredis';
import pino from 'pino';
import type { Registry } from 'prom-client';
import { Config, configWith, SettingName } from '../../services/core/config/config';
import { createPgPool } from '../../services/core/db/postgres';
import { createRedis } from '../../services/core/db/redis';
import type { Logger } from '../../services/core/observability/logger';
import { apiMetrics, ApiMetrics, createRegistry, workerMetrics, WorkerMetrics } from '../../services/core/observability/metrics';
import { AnyQueue, createQueue } from '../../services/core/queue/create-queue';
import type { QueueKeys } from '../../services/core/queue/keys';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { clusterMode, readyClient, testClusterReady, TEST_PARTITIONS } from './cluster-mode';
import { createApp } from '../../services/api/app';
import type { Authenticator } from '../../services/api/auth/authenticator';
import { RunningServer, startServer } from '../../services/api/server';
import { defaultHandlers, Handler } from '../../services/worker/handlers';
import { Worker } from '../../services/worker/worker';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix } from './test-env';

export const silentLog: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export interface Stack {
  cfg: Config;
  dbUrl: string;
  pool: Pool;
  redis: Redis;
  /** One partition (a single Redis) or, with TEST_REDIS_MODE=cluster, TEST_PARTITIONS over the test cluster. */
  queue: AnyQueue;
  /** A second connection for assertions, so test reads never queue behind the worker's traffic. */
  inspect: Redis;
  /** The keys of the partition holding `tenant` (the one partition of a single Redis). */
  keysOf(tenant: string): QueueKeys;
  /** The keys of every partition. */
  allKeys(): QueueKeys[];
  /** Deletes every key of the namespace: Redis lost its data. */
  flushRedis(): Promise<void>;
  close(): Promise<void>;
}

export async function createStack(overrides: Partial<Record<SettingName, string | number>> = {}): Promise<Stack> {
  const db = await createTestDatabase();
  const prefix = uniqueRedisPrefix();
  const cluster = clusterMode() ? await testClusterReady() : null;
  const redisSettings = cluster ? { REDIS_CLUSTER_NODES: cluster.nodes.join(','), REDIS_PARTITIONS: TEST_PARTITIONS } : {};
  const cfg = configWith({ POSTGRES_URL: db.url, REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: prefix, ...redisSettings, ...overrides }, 'worker');
  const pool = createPgPool(cfg.POSTGRES_URL, 10, 'test', silentLog);
  // A cluster client takes the commands of a single connection for keys of one slot (the tests' too).
  const connect = async (name: string) => (cluster ? ((await readyClient(name)) as unknown as Redis) : createRedis({ addr: cfg.REDIS_ADDR, name, offlineQueue: true }));
  const [redis, inspect] = await Promise.all([connect('test'), connect('test-inspect')]);
  const queue = createQueue(redis, { prefix, strategy: cfg.QUEUE_STRATEGY, weights: cfg.QUEUE_WEIGHTS, partitions: cfg.REDIS_PARTITIONS });
  async function flushRedis(): Promise<void> {
    if (cluster) return cluster.deleteKeys(prefix);
    const keys = await inspect.keys(`{${prefix}}:*`);
    if (keys.length) await inspect.del(...keys);
  }
  return {
    cfg,
    dbUrl: db.url,
    pool,
    redis,
    queue,
    inspect,
    keysOf: (tenant) => (queue instanceof PartitionedQueue ? queue.partitionFor(tenant).keys : queue.keys),
    allKeys: () => (queue instanceof PartitionedQueue ? queue.parts.map((q) => q.keys) : [queue.keys]),
    flushRedis,
    async close() {
      await flushRedis();
      await Promise.all([pool.end(), redis.quit(), inspect.quit()]);
      await db.drop();
    },
  };
}

export function startWorker(stack: Stack, opts: { handlers?: Record<string, Handler>; cfg?: Partial<Config>; pool?: Pool; log?: Logger } = {}): {
  worker: Worker;
  metrics: WorkerMetrics;
  registry: Registry;
} {
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  const cfg = { ...stack.cfg, ...opts.cfg };
  const worker = new Worker({ cfg, pool: opts.pool ?? stack.pool, queue: stack.queue, handlers: defaultHandlers(opts.handlers ?? {}), log: opts.log ?? silentLog, metrics });
  worker.start();
  return { worker, metrics, registry };
}

/** An API on a free port; `auth` (e.g. AUTH_MODE=keys) defaults to AUTH_MODE=off. */
export async function startApi(stack: Stack, queue = stack.queue, auth?: Authenticator): Promise<{ url: string; server: RunningServer; metrics: ApiMetrics; registry: Registry }> {
  const registry = createRegistry('api');
  const metrics = apiMetrics(registry);
  const app = createApp({
    auth,
    pool: stack.pool,
    queue,
    log: silentLog,
    metrics,
    maxBodyBytes: stack.cfg.MAX_BODY_BYTES,
    defaultMaxRetries: stack.cfg.DEFAULT_MAX_RETRIES,
    idempotencyTtlMs: stack.cfg.IDEMPOTENCY_TTL_MS,
    delayedHorizonMs: stack.cfg.DELAYED_HORIZON_MS,
    listScanRows: stack.cfg.LIST_SCAN_ROWS,
    bulkMaxLimit: stack.cfg.BULK_MAX_LIMIT,
    bulkBatch: stack.cfg.BULK_BATCH,
    bulkScanRows: stack.cfg.BULK_SCAN_ROWS,
    maxSchedulesPerTenant: stack.cfg.MAX_SCHEDULES_PER_TENANT,
    maxWorkflowBodyBytes: stack.cfg.MAX_WORKFLOW_BODY_BYTES,
  });
  const server = await startServer(app, '127.0.0.1:0');
  return { url: `http://127.0.0.1:${server.address.port}`, server, metrics, registry };
}

/** Polls `check` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 15000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function taskStatus(pool: Pool, id: string): Promise<{ status: string; attempts: number; last_error: string | null }> {
  const { rows } = await pool.query('SELECT status, attempts, last_error FROM tasks WHERE id = $1', [id]);
  return rows[0];
}

export async function runsOf(pool: Pool, id: string): Promise<{ attempt: number; outcome: string; error: string | null; lease_token: string }[]> {
  const { rows } = await pool.query('SELECT attempt, outcome, error, lease_token FROM task_runs WHERE task_id = $1 ORDER BY attempt, started_at, finished_at', [id]);
  return rows;
}

/**
 * Redis's own time in scripts (EVAL, EVALSHA) so far, in µs, over every master (INFO commandstats):
 * what a script costs Redis, apart from the test's clock and the network.
 */
export async function scriptUsec(stack: Stack): Promise<number> {
  const inspect = stack.inspect as unknown as { nodes?: (role: 'master') => Redis[] };
  const nodes = clusterMode() && inspect.nodes ? inspect.nodes('master') : [stack.inspect];
  const infos = await Promise.all(nodes.map((n) => n.info('commandstats')));
  return infos.flatMap((i) => [...i.matchAll(/cmdstat_eval(?:sha)?:calls=\d+,usec=(\d+)/g)]).reduce((a, m) => a + Number(m[1]), 0);
}

type Overrides = Partial<Record<SettingName, string | number>>;

export interface StackFixtureOptions {
  /** A fresh stack for each test rather than one for the whole file. */
  each?: boolean;
  /** Runs on the new stack before anything else starts on it (tenants, triggers). */
  prepare?: (stack: Stack) => Promise<void>;
  /** How long making it may take (the test cluster's first start is slow); jest's default if unset. */
  timeoutMs?: number;
}

/**
 * A stack for one test file, made before its tests (or before each) and closed after them: read
 * `stack` inside a test, not at the file's top level.
 */
export function stackFixture(overrides: Overrides = {}, opts: StackFixtureOptions = {}): { readonly stack: Stack } {
  let stack: Stack | undefined;
  const [before, after] = opts.each ? [beforeEach, afterEach] : [beforeAll, afterAll];
  before(async () => {
    stack = await createStack(overrides);
    await opts.prepare?.(stack);
  }, opts.timeoutMs);
  after(async () => {
    await stack?.close();
    stack = undefined;
  });
  return {
    get stack() {
      return stack!;
    },
  };
}

/**
 * A stack and an API on it for one test file, made before its tests (or before each) and stopped
 * after them (read `stack` and `api` inside a test, not at the file's top level), with a JSON POST
 * to the API. Workers started through it are stopped first, so none outlives the stack it uses.
 */
export function stackWithApi(
  overrides: Overrides = {},
  opts: StackFixtureOptions & { /** The API's authenticator (AUTH_MODE=off without), closed after it. */ auth?: (stack: Stack) => Authenticator } = {},
): {
  readonly stack: Stack;
  readonly api: Awaited<ReturnType<typeof startApi>>;
  post(path: string, body?: unknown): Promise<Response>;
  startWorker(opts?: Parameters<typeof startWorker>[1]): ReturnType<typeof startWorker>;
} {
  let api: Awaited<ReturnType<typeof startApi>> | undefined;
  let auth: Authenticator | undefined;
  const workers: Worker[] = [];
  const [before, after] = opts.each ? [beforeEach, afterEach] : [beforeAll, afterAll];
  // Declared before the stack's hooks, so it runs before the stack closes.
  after(async () => {
    for (const w of workers.splice(0)) await w.stop(0);
    await api?.server.stop();
    await auth?.close();
    api = auth = undefined;
  });
  const fx = stackFixture(overrides, opts);
  before(async () => {
    auth = opts.auth?.(fx.stack);
    api = await startApi(fx.stack, fx.stack.queue, auth);
  }, opts.timeoutMs);
  return {
    get stack() {
      return fx.stack;
    },
    get api() {
      return api!;
    },
    post: (path, body = {}) => fetch(`${api!.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    startWorker(workerOpts) {
      const started = startWorker(fx.stack, workerOpts);
      workers.push(started.worker);
      return started;
    },
  };
}
