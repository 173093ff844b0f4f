/**
 * The API's /readyz: ready while Postgres answers. While Redis is away the API still accepts tasks
 * into Postgres (the reconciler queues them later), so Redis is reported, and counted in
 * dependency_up, but does not make the API unready. A queue repartitioned under a running API
 * does (`layout`): it would index tasks into keys no worker reads.
 */
import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import { createReadinessPool as createBaseReadinessPool, pingPostgres } from '../core/db/readiness-pool';
import type { Logger } from '../core/observability/logger';
import { dependencyGauge, type DependencyGauge } from '../core/observability/metrics';
import { runChecks } from '../core/observability/metrics-server';
import { withTimeout } from '../core/process/with-timeout';

export interface Readiness {
  ready: boolean;
  /** Each dependency: 'ok' or why its check failed. */
  checks: Record<string, string>;
}

export type ReadinessCheck = () => Promise<Readiness>;

export interface ReadinessOptions {
  /** Postgres connections for the check alone (see createReadinessPool), not the request pool. */
  pool: Pool;
  queue: { ping(): Promise<void> };
  /** READINESS_TIMEOUT_MS: each dependency answers within it, or counts as down. */
  timeoutMs: number;
  /** Where dependency_up is registered (and refreshed at scrape time). */
  registry?: Registry;
  /** Why this process's REDIS_PARTITIONS no longer fits the queue (layoutProblem), else null. */
  layout?: () => Promise<string | null>;
}

export function apiReadiness(o: ReadinessOptions): ReadinessCheck {
  let inflight: Promise<Readiness> | null = null;
  let up: DependencyGauge | undefined;
  const once = async (): Promise<Readiness> => {
    // The layout is not a dependency (no dependency_up): unreadable, it is not held against the API.
    const [checks, layout] = await Promise.all([
      runChecks({ postgres: () => pingPostgres(o.pool, o.timeoutMs), redis: () => o.queue.ping() }, o.timeoutMs, up),
      o.layout ? withTimeout(o.layout(), o.timeoutMs).catch(() => null) : null,
    ]);
    if (layout) return { ready: false, checks: { ...checks, layout } };
    return { ready: checks.postgres === 'ok', checks };
  };
  // Probes, scrapes and clients asking at the same time share one check, so /readyz cannot queue
  // work behind a one-connection pool.
  const check = (): Promise<Readiness> => (inflight ??= once().finally(() => (inflight = null)));
  if (o.registry) up = dependencyGauge(o.registry, check);
  return check;
}

/** The API's readiness connection (createReadinessPool in core/db/readiness-pool). */
export function createReadinessPool(url: string, timeoutMs: number, log?: Logger): Pool {
  return createBaseReadinessPool(url, timeoutMs, 'task-scheduler-api-readiness', log);
}
