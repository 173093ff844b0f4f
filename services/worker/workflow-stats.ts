/**
 * Workflow metrics from Postgres, where the trigger ends workflows: every worker claims finished
 * workflows not counted yet (a flag set with SKIP LOCKED, so each end is counted once across all
 * workers) and counts the running ones (a gauge; aggregate with max).
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import { PeriodicService } from '../core/service';

export class WorkflowStats extends PeriodicService<{ finished: number }> {
  private lastCount = -Infinity;

  constructor(
    private readonly deps: { pool: Pool; metrics: WorkerMetrics },
    intervalMs: number,
    log: Logger,
    private readonly countEveryMs = 15_000,
  ) {
    super('workflow-stats', intervalMs, log);
  }

  async runOnce(): Promise<{ finished: number }> {
    const { pool, metrics } = this.deps;
    const { rows } = await pool.query<{ status: string; n: number }>(
      `WITH claimed AS (
         UPDATE workflows SET reported = true
          WHERE id IN (SELECT id FROM workflows WHERE finished_at IS NOT NULL AND NOT reported LIMIT 1000 FOR UPDATE SKIP LOCKED)
            AND finished_at IS NOT NULL AND NOT reported
         RETURNING status
       )
       SELECT status, count(*)::int AS n FROM claimed GROUP BY status`,
    );
    let finished = 0;
    for (const r of rows) {
      metrics.workflowsFinished.inc({ status: r.status }, r.n);
      finished += r.n;
    }
    if (performance.now() - this.lastCount >= this.countEveryMs) {
      this.lastCount = performance.now();
      const { rows: running } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM workflows WHERE finished_at IS NULL`);
      metrics.workflowsRunning.set(running[0]!.n);
    }
    return { finished };
  }
}
