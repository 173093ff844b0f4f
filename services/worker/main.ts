/** Worker entrypoint (`npm run worker`, the worker image). SIGTERM/SIGINT drain and exit 0. */
import { loadConfig } from '../core/config/config';
import { exitOnSignals, runMain } from '../core/process/lifecycle';
import { createPgPool } from '../core/db/postgres';
import { assertSchema } from '../core/db/schema-version';
import { bundledSchemaVersion } from '../migrator/migrate';
import { createRedisClient, redisEndpoint } from '../core/db/redis';
import { warnIfEvicting } from '../core/db/redis-eviction';
import { createLogger } from '../core/observability/logger';
import { createRegistry, workerMetrics } from '../core/observability/metrics';
import { startMetricsServer } from '../core/observability/metrics-server';
import { createQueue } from '../core/queue/create-queue';
import { assertLayout } from '../core/queue/partitions';
import { customHandlers } from './custom-handlers';
import { defaultHandlers, loadHandlersModule } from './handlers';
import { goodbye } from './goodbye';
import { workerReadiness } from './readiness';
import { Worker } from './worker';

async function main(): Promise<void> {
  const cfg = loadConfig(process.env, 'worker');
  const log = createLogger('worker', cfg.LOG_LEVEL);
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  const pool = createPgPool(cfg.POSTGRES_URL, cfg.PGPOOL_MAX_CONNS, 'task-scheduler-worker', log);
  if (!(await assertSchema(pool, bundledSchemaVersion()))) log.warn('could not read the schema version from Postgres (not checked)');
  const redis = createRedisClient({ ...redisEndpoint(cfg), name: 'worker', offlineQueue: true });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  // Waits for Redis (offline queue): a worker has nothing to do without it.
  if (!(await assertLayout(redis, cfg.REDIS_KEY_PREFIX, cfg.REDIS_PARTITIONS))) log.warn('could not read the queue layout from Redis (REDIS_PARTITIONS is not checked)');
  const queue = createQueue(redis, {
    prefix: cfg.REDIS_KEY_PREFIX,
    strategy: cfg.QUEUE_STRATEGY,
    weights: cfg.QUEUE_WEIGHTS,
    tenantStatsLimit: cfg.TENANT_METRICS_LIMIT,
    partitions: cfg.REDIS_PARTITIONS,
  });
  const extra = cfg.HANDLERS_MODULE ? loadHandlersModule(cfg.HANDLERS_MODULE) : {};
  const worker = new Worker({ cfg, pool, queue, handlers: defaultHandlers({ ...customHandlers, ...extra }), log, metrics });
  const readiness = workerReadiness({ postgresUrl: cfg.POSTGRES_URL, queue, timeoutMs: cfg.READINESS_TIMEOUT_MS, log });
  const metricsServer = await startMetricsServer(registry, cfg.METRICS_ADDR, readiness.check);
  worker.start();
  void warnIfEvicting(redis, log);
  // A call to Redis or Postgres that never answers (a partition) must not hold the stop until
  // SIGKILL: what was not handed back by then is the reaper's and the reconciler's, as for a crash.
  exitOnSignals(
    log,
    async () => {
      await worker.stop();
      await Promise.all([metricsServer.close().then(() => readiness.close()), pool.end(), goodbye(queue.close())]);
    },
    cfg.SHUTDOWN_GRACE_MS + cfg.WORKER_STOP_MARGIN_MS,
    'SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS',
  );
  // Only once SIGTERM drains: whoever waits for this line may stop the worker at once.
  log.info({ metrics: `${metricsServer.address.address}:${metricsServer.address.port}` }, 'listening');
}

runMain('worker', main);
