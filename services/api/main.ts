/** API entrypoint (`npm run api`, the api image). SIGTERM/SIGINT stop accepting, finish requests, exit 0. */
import { ConfigError, loadConfig } from '../core/config/config';
import { createPgPool } from '../core/db/postgres';
import { createRedis } from '../core/db/redis';
import { createLogger } from '../core/observability/logger';
import { apiMetrics, createRegistry, queueGauges } from '../core/observability/metrics';
import { startMetricsServer } from '../core/observability/metrics-server';
import { RedisQueue } from '../core/queue/redis-queue';
import { createApp } from './app';
import { startServer } from './server';

async function main(): Promise<void> {
  const cfg = loadConfig(process.env, 'api');
  const log = createLogger('api', cfg.LOG_LEVEL);
  const registry = createRegistry('api');
  const metrics = apiMetrics(registry);
  const pool = createPgPool(cfg.POSTGRES_URL, cfg.PGPOOL_MAX_CONNS, 'task-scheduler-api', log);
  // No offline queue: while Redis is away, requests fail fast instead of piling up.
  const redis = createRedis({ addr: cfg.REDIS_ADDR, password: cfg.REDIS_PASS, name: 'api', offlineQueue: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const queue = new RedisQueue(redis, { prefix: cfg.REDIS_KEY_PREFIX, strategy: cfg.QUEUE_STRATEGY, weights: cfg.QUEUE_WEIGHTS });
  queueGauges(registry, () => queue.stats(), cfg.METRICS_SAMPLE_MS);

  const app = createApp({
    pool,
    queue,
    log,
    metrics,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    defaultMaxRetries: cfg.DEFAULT_MAX_RETRIES,
    idempotencyTtlMs: cfg.IDEMPOTENCY_TTL_MS,
  });
  const server = await startServer(app, cfg.API_ADDR);
  const metricsServer = await startMetricsServer(registry, cfg.METRICS_ADDR);
  log.info({ api: `${server.address.address}:${server.address.port}`, metrics: `${metricsServer.address.address}:${metricsServer.address.port}` }, 'listening');

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(0), cfg.SHUTDOWN_GRACE_MS).unref();
    Promise.all([server.stop(), metricsServer.close()])
      .then(() => Promise.all([pool.end(), queue.close()]))
      .then(() => {
        clearTimeout(force);
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : `api failed to start: ${(err as Error).stack}`}\n`);
  process.exit(1);
});
