/** Extends the leases of running attempts; aborts the ones whose lease was lost (reaped or taken over). */
import type { Logger } from '../core/observability/logger';
import type { TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { CancelledError, LeaseLostError } from './errors';
import type { Running } from './processor';

export class Heartbeater extends PeriodicService<{ extended: number; lost: number }> {
  constructor(
    private readonly workerId: string,
    private readonly running: ReadonlyMap<string, Running>,
    private readonly queue: TaskQueue,
    private readonly visibilityMs: number,
    intervalMs: number,
    log: Logger,
    /** WORKER_POOL, announced with the worker (GET /queues lists it). */
    private readonly slots = 0,
  ) {
    super('heartbeater', intervalMs, log);
  }

  /** A heartbeat now (and its check for cancels) rather than at the next interval. */
  checkNow(): void {
    this.runWithin(0);
  }

  /** How long an announcement lasts: three missed heartbeats make a worker count as gone. */
  get announceTtlMs(): number {
    return this.intervalMs * 3;
  }

  async runOnce(): Promise<{ extended: number; lost: number }> {
    // The leases do not wait for the announcement, nor depend on it: on a Redis Cluster it goes to
    // the control slot, and that master failing over must not cost every partition its leases.
    const [extended, announced] = await Promise.allSettled([this.extendHeld(), this.queue.announceWorker(this.workerId, this.announceTtlMs, this.slots)]);
    if (extended.status === 'rejected') throw extended.reason;
    if (announced.status === 'rejected') throw announced.reason;
    return extended.value;
  }

  private async extendHeld(): Promise<{ extended: number; lost: number }> {
    const entries = [...this.running.values()].filter((r) => !r.aborted);
    if (entries.length === 0) return { extended: 0, lost: 0 };
    const ok = await this.queue.extend(entries.map((r) => ({ id: r.lease.message.id, token: r.lease.token })), this.visibilityMs);
    let lost = 0;
    entries.forEach((r, i) => {
      if (ok[i]) return;
      lost++;
      r.abort(new LeaseLostError(r.lease.message.id));
    });
    // The cancel message is fire-and-forget (a worker reconnecting misses it): the tombstone stays.
    const live = entries.filter((r) => !r.aborted);
    const cancelled = await this.queue.cancelRequested(live.map((r) => ({ id: r.lease.message.id, token: r.lease.token })));
    live.forEach((r, i) => cancelled[i] && r.abort(new CancelledError(r.lease.message.id)));
    return { extended: entries.length - lost, lost };
  }
}
