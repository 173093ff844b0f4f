/** API entrypoint (`npm run api`, the api image). SIGTERM/SIGINT stop accepting, finish requests, exit 0. */
import { loadConfig } from '../core/config/config';
import { exitOnSignals, runMain } from '../core/process/lifecycle';
import { createPgPool } from '../core/db/postgres';
import { assertSchema } from '../core/db/schema-version';
import { bundledSchemaVersion } from '../migrator/migrate';
import { createRedisClient, redisEndpoint, redisReady } from '../core/db/redis';
import { readEvictionPolicy, warnIfEvicting } from '../core/db/redis-eviction';
import { createLogger } from '../core/observability/logger';
import { apiMetrics, createRegistry, dueWorkGauge, evictionPolicyGauge, queueGauges } from '../core/observability/metrics';
import { nextDueWork } from '../core/schedules/due-work';
import { startMetricsServer } from '../core/observability/metrics-server';
import { withTimeout } from '../core/process/with-timeout';
import { createQueue } from '../core/queue/create-queue';
import { assertLayout, layoutProblem } from '../core/queue/partitions';
import { createApp } from './app';
import { Authenticator } from './auth/authenticator';
import { ensureBootstrapKey } from './auth/bootstrap-key';
import { RequestAdmission } from './limits/request-admission';
import { UnfinishedTrueUp } from './limits/unfinished-true-up';
import { TenantAdmission } from '../core/tenancy/admission';
import { TenantCache } from '../core/tenancy/tenant-cache';
import { TenantLabels } from '../core/observability/tenant-labels';
import { apiReadiness, createReadinessPool } from './readiness';
import { startServer } from './server';

async function main(): Promise<void> {
  const cfg = loadConfig(process.env, 'api');
  const log = createLogger('api', cfg.LOG_LEVEL);
  const registry = createRegistry('api');
  const metrics = apiMetrics(registry);
  const pool = createPgPool(cfg.POSTGRES_URL, cfg.PGPOOL_MAX_CONNS, 'task-scheduler-api', log);
  // No offline queue: while Redis is away, requests fail fast instead of piling up.
  const redis = createRedisClient({ ...redisEndpoint(cfg), name: 'api', offlineQueue: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const queue = createQueue(redis, { prefix: cfg.REDIS_KEY_PREFIX, strategy: cfg.QUEUE_STRATEGY, weights: cfg.QUEUE_WEIGHTS, tenantStatsLimit: cfg.TENANT_METRICS_LIMIT, partitions: cfg.REDIS_PARTITIONS });
  // Every read at scrape time is bounded, so a Redis or Postgres that is connected but does not
  // answer holds no scrape (the gauges keep their last values, and dependency_up still reports it).
  queueGauges(registry, () => withTimeout(queue.stats(), cfg.READINESS_TIMEOUT_MS), cfg.METRICS_SAMPLE_MS);
  dueWorkGauge(registry, () => withTimeout(nextDueWork(pool), cfg.READINESS_TIMEOUT_MS), cfg.METRICS_SAMPLE_MS);
  // The policy rarely changes: read it at most every 30 s.
  evictionPolicyGauge(registry, () => withTimeout(readEvictionPolicy(redis), cfg.READINESS_TIMEOUT_MS), Math.max(cfg.METRICS_SAMPLE_MS, 30_000));
  if (!(await assertSchema(pool, bundledSchemaVersion()))) log.warn('could not read the schema version from Postgres (not checked)');
  const readinessPool = createReadinessPool(cfg.POSTGRES_URL, cfg.READINESS_TIMEOUT_MS, log);
  const readiness = apiReadiness({ pool: readinessPool, queue, timeoutMs: cfg.READINESS_TIMEOUT_MS, registry, layout: () => layoutProblem(redis, cfg.REDIS_KEY_PREFIX, cfg.REDIS_PARTITIONS) });

  const auth = new Authenticator(pool, {
    mode: cfg.AUTH_MODE,
    cacheMs: cfg.AUTH_CACHE_MS,
    maxEntries: cfg.AUTH_CACHE_KEYS,
    log,
    onFailure: (reason) => metrics.authFailures.inc({ reason }),
    onLookup: (result) => metrics.authKeyLookups.inc({ result }),
  });
  if (cfg.AUTH_MODE === 'off') log.warn('AUTH_MODE=off: every request acts as the tenant "default" with every scope; do not expose this API');
  if (cfg.BOOTSTRAP_ADMIN_KEY) await ensureBootstrapKey(pool, cfg.BOOTSTRAP_ADMIN_KEY, log);
  // Not fatal: without it, a key's first lookup on this replica waits with unknown ones.
  await auth.preload().catch((err: unknown) => log.warn({ err }, 'could not read the API keys in use'));

  // Limits apply within a second of `tenants set`; unfinished counts are trued up from Postgres as often.
  const tenantAdmission = new TenantAdmission(redis, cfg.REDIS_KEY_PREFIX, cfg.REDIS_PARTITIONS);
  const admission = new RequestAdmission({
    cache: new TenantCache(pool, 1000),
    admission: tenantAdmission,
    env: cfg,
    log,
    metrics,
    tenantLabels: new TenantLabels(cfg.TENANT_METRICS_LIMIT),
  });
  const trueUp = new UnfinishedTrueUp({ pool, admission: tenantAdmission, lock: queue, envCap: cfg.TENANT_MAX_UNFINISHED }, 1000, log);

  const app = createApp({
    auth,
    admission,
    pool,
    queue,
    log,
    metrics,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    defaultMaxRetries: cfg.DEFAULT_MAX_RETRIES,
    idempotencyTtlMs: cfg.IDEMPOTENCY_TTL_MS,
    delayedHorizonMs: cfg.DELAYED_HORIZON_MS,
    maxPayloadDepth: cfg.MAX_PAYLOAD_DEPTH,
    maxInflightBodyBytes: cfg.MAX_INFLIGHT_BODY_BYTES,
    submitBatchBytes: cfg.SUBMIT_BATCH_BYTES,
    listScanRows: cfg.LIST_SCAN_ROWS,
    bulkMaxLimit: cfg.BULK_MAX_LIMIT,
    queuesCacheMs: cfg.QUEUES_CACHE_MS,
    bulkBatch: cfg.BULK_BATCH,
    bulkScanRows: cfg.BULK_SCAN_ROWS,
    maxSchedulesPerTenant: cfg.MAX_SCHEDULES_PER_TENANT,
    maxWorkflowBodyBytes: cfg.MAX_WORKFLOW_BODY_BYTES,
    readiness,
    tenantDefaults: cfg,
    console: cfg.UI_ENABLED === 'true' ? { basePath: cfg.UI_BASE_PATH } : undefined,
  });
  // Redis away at start-up is an outage like any other (tasks are accepted into Postgres and the
  // reconciler indexes them); a Redis that is merely still connecting is worth a short wait.
  if (!(await redisReady(redis, 5000))) log.warn('Redis is not reachable yet; accepting tasks into Postgres only until it is');
  else {
    if (!(await assertLayout(redis, cfg.REDIS_KEY_PREFIX, cfg.REDIS_PARTITIONS))) log.warn('could not read the queue layout from Redis (REDIS_PARTITIONS is not checked)');
    await warnIfEvicting(redis, log);
  }
  const metricsServer = await startMetricsServer(registry, cfg.METRICS_ADDR);
  // Nothing is awaited from here until the signals are handled: a SIGTERM in between would kill
  // the process with the default action, dropping requests already taken. The ready line comes last.
  const server = await startServer(app, cfg.API_ADDR, {
    headersTimeoutMs: cfg.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: cfg.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: cfg.HTTP_KEEPALIVE_TIMEOUT_MS,
    maxConnections: cfg.HTTP_MAX_CONNECTIONS,
  });
  trueUp.start();

  exitOnSignals(
    log,
    async () => {
      await Promise.all([server.stop(), metricsServer.close()]);
      // Answered requests whose tasks are still on their way to Redis get there first.
      await app.settled();
      await trueUp.stop();
      await auth.close();
      await Promise.all([pool.end(), readinessPool.end(), queue.close()]);
    },
    cfg.SHUTDOWN_GRACE_MS,
  );
  log.info({ api: `${server.address.address}:${server.address.port}`, metrics: `${metricsServer.address.address}:${metricsServer.address.port}` }, 'listening');
}

runMain('api', main);
