/** Moves retries whose backoff has elapsed (Redis clock) back to their priority queue. */
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { PRIORITIES } from '../core/tasks/priority';

export class RetryPump extends PeriodicService<{ promoted: number }> {
  constructor(
    private readonly deps: { queue: TaskQueue; metrics: WorkerMetrics; onPromoted?: () => void },
    private readonly batchSize: number,
    intervalMs: number,
    log: Logger,
  ) {
    super('retry-pump', intervalMs, log);
  }

  async runOnce(): Promise<{ promoted: number }> {
    const moved = await this.deps.queue.promoteDue(this.batchSize);
    let promoted = 0;
    for (const p of PRIORITIES) {
      if (moved[p] > 0) this.deps.metrics.promoted.inc({ priority: p }, moved[p]);
      promoted += moved[p];
    }
    if (promoted > 0) this.deps.onPromoted?.();
    return { promoted };
  }
}
