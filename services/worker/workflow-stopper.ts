/**
 * The sweep behind stop-on-failure.ts: a writer that failed a step of a `cancel_dependents`
 * workflow stops it itself, and this pass stops any it did not (it died between its commit and its
 * stop, or Redis was unreachable then).
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { stopFailedWorkflows } from '../core/workflows/stop-on-failure';

export class WorkflowStopper extends PeriodicService<{ cancelled: number }> {
  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue },
    intervalMs: number,
    log: Logger,
  ) {
    super('workflow-stopper', intervalMs, log);
  }

  async runOnce(): Promise<{ cancelled: number }> {
    const cancelled = await stopFailedWorkflows(this.deps);
    if (cancelled > 0) this.log.info({ cancelled }, 'stopped failed workflows’ queued steps');
    return { cancelled };
  }
}
