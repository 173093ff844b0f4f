/**
 * The worker's /readyz: Postgres and Redis both answer. Postgres is asked on a connection of the
 * check's own, so outcome writes filling the main pool neither delay the check (a worker reported
 * unready, even restarted, while it works) nor lose a connection to it.
 */
import type { Logger } from '../core/observability/logger';
import { dependencyChecks, type ReadinessChecks } from '../core/observability/metrics-server';
import { createReadinessPool } from '../core/db/readiness-pool';

export interface WorkerReadiness {
  check: ReadinessChecks;
  close(): Promise<void>;
}

export function workerReadiness(o: { postgresUrl: string; queue: { ping(): Promise<void> }; timeoutMs: number; log: Logger }): WorkerReadiness {
  const pool = createReadinessPool(o.postgresUrl, o.timeoutMs, 'task-scheduler-worker-readiness', o.log);
  let inflight: Promise<Record<string, string>> | null = null;
  return {
    // Probes and clients asking at once share one check rather than queueing on the one connection.
    check: () => (inflight ??= dependencyChecks(pool, o.queue, o.timeoutMs).finally(() => (inflight = null))),
    close: () => pool.end(),
  };
}
