/**
 * Reclaims expired leases (Redis decides atomically: back to the queue, or to the dead-letter list
 * when the lost attempt was the last), then records each lost attempt in Postgres, fenced by the
 * expired token so a late outcome written first is never overwritten.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { Reaped, TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { recordExpired, unfinishedAttempts } from '../core/tasks/attempt-store';

export interface ReapResult {
  reaped: number;
  requeued: number;
  dead: number;
}

export class Reaper extends PeriodicService<ReapResult> {
  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics; typeLabel: (type: string) => string },
    private readonly batchSize: number,
    intervalMs: number,
    log: Logger,
  ) {
    super('reaper', intervalMs, log);
  }

  async runOnce(): Promise<ReapResult> {
    const reaped = await this.deps.queue.reap(this.batchSize);
    if (reaped.length === 0) return { reaped: 0, requeued: 0, dead: 0 };
    const applied = await recordExpired(
      this.deps.pool,
      reaped.map((r) => ({ id: r.id, token: r.expiredToken, attempt: r.attempt, dead: r.destination === 'dead' })),
    );
    const revived = await this.resyncUnstarted(reaped.filter((r) => !applied.has(r.id)));
    const dead = reaped.filter((r) => r.destination === 'dead' && !revived.has(r.id)).length;
    const m = this.deps.metrics;
    m.reaped.inc(reaped.length);
    // A lost attempt is a failed attempt; the last one is also a final failure.
    for (const r of reaped) {
      const labels = { type: this.deps.typeLabel(r.type), priority: r.priority };
      m.failed.inc(labels);
      if (r.destination === 'dead' && !revived.has(r.id)) m.dead.inc(labels);
    }
    this.log.info({ reaped: reaped.length, dead }, 'reclaimed expired leases');
    return { reaped: reaped.length, requeued: reaped.length - dead, dead };
  }

  /**
   * A reclaimed lease whose expiry Postgres did not take belongs to a task Postgres still counts as
   * unfinished without that attempt (the worker died before recording the start, so the handler
   * never ran), or to one already final (nothing to do). The unfinished ones get Postgres's attempt
   * count back, and any buried for being "out of attempts" return to their queue.
   */
  private async resyncUnstarted(items: Reaped[]): Promise<Set<string>> {
    if (items.length === 0) return new Set();
    const pg = await unfinishedAttempts(this.deps.pool, items.map((r) => r.id));
    const unfinished = items.filter((r) => pg.has(r.id));
    await this.deps.queue.resync(unfinished.map((r) => ({ id: r.id, priority: r.priority, attempts: pg.get(r.id)! })));
    return new Set(unfinished.filter((r) => r.destination === 'dead').map((r) => r.id));
  }
}
