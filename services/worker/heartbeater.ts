/**
 * Extends the leases of running attempts; aborts the ones whose lease was lost (reaped or taken
 * over), and the ones whose lease may have run out because no extension reached Redis in time.
 */
import type { Logger } from '../core/observability/logger';
import type { TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { tokenPartition } from '../core/queue/redis-queue';
import { CancelledError, LeaseLostError, TaskTimeoutError } from './errors';
import type { Running } from './processor';

export class Heartbeater extends PeriodicService<{ extended: number; lost: number }> {
  private expiryTimer: NodeJS.Timeout | null = null;
  /** How often leases are checked for having run out, and how long before then an attempt is aborted. */
  private readonly expiryCheckMs: number;

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
    this.expiryCheckMs = Math.max(10, Math.min(1000, Math.floor(visibilityMs / 10)));
  }

  override start(): void {
    super.start();
    // Its own timer: a pass stuck on an extend that never answers (a partition) holds up the next pass.
    this.expiryTimer ??= setInterval(() => this.abortExpiring(), this.expiryCheckMs);
    this.expiryTimer.unref?.();
  }

  override async stop(): Promise<void> {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
    await super.stop();
  }

  /**
   * Aborts running attempts whose lease Redis may no longer hold: no extension it confirmed keeps
   * it past the next check. Redis then lets the reaper hand the task to another worker, whatever
   * this one hears (extends that fail or never answer); the handler must stop before that happens.
   */
  abortExpiring(now = performance.now()): number {
    const ids: string[] = [];
    for (const r of this.running.values()) {
      if (r.finished || r.aborted || r.heldUntil - this.expiryCheckMs > now) continue;
      r.abort(new LeaseLostError(r.lease.message.id));
      ids.push(r.lease.message.id);
    }
    if (ids.length > 0) this.log.warn({ count: ids.length, taskIds: ids.slice(0, 10) }, 'leases not extended in time (Redis did not answer); attempts aborted');
    return ids.length;
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
    // An attempt aborted at its timeout or by a cancel has ended too: its outcome is being written,
    // and its lease must outlast that write, or the reaper counts it lost and runs it again at once.
    const entries = [...this.running.values()].filter((r) => !r.aborted || (r.finished && (r.reason instanceof TaskTimeoutError || r.reason instanceof CancelledError)));
    if (entries.length === 0) return { extended: 0, lost: 0 };
    // One call per partition: on a Redis Cluster, a partition that does not answer must not leave
    // the leases the others extended looking unconfirmed (abortExpiring would abort them).
    const groups = new Map<number, Running[]>();
    for (const r of entries) {
      const p = tokenPartition(r.lease.token);
      const g = groups.get(p);
      if (g) g.push(r);
      else groups.set(p, [r]);
    }
    const sentAt = performance.now();
    const answers = await Promise.allSettled([...groups.values()].map((g) => this.queue.extend(g.map((r) => ({ id: r.lease.message.id, token: r.lease.token })), this.visibilityMs)));
    let extended = 0;
    let lost = 0;
    const answered: Running[] = [];
    let failure: PromiseRejectedResult | undefined;
    [...groups.values()].forEach((g, j) => {
      const a = answers[j]!;
      if (a.status === 'rejected') {
        failure ??= a;
        return;
      }
      g.forEach((r, i) => {
        answered.push(r);
        if (a.value[i]) {
          extended++;
          r.heldUntil = Math.max(r.heldUntil, sentAt + this.visibilityMs);
          return;
        }
        lost++;
        r.abort(new LeaseLostError(r.lease.message.id));
      });
    });
    if (failure) throw failure.reason;
    // The cancel message is fire-and-forget (a worker reconnecting misses it): the tombstone stays.
    // Not the finished attempts: aborted, their leases would no longer be extended while their
    // outcomes are written, and a success written after its lease ran out is lost (see Processor.cancel).
    const live = answered.filter((r) => !r.aborted && !r.finished);
    const cancelled = await this.queue.cancelRequested(live.map((r) => ({ id: r.lease.message.id, token: r.lease.token })));
    live.forEach((r, i) => cancelled[i] && r.abort(new CancelledError(r.lease.message.id)));
    return { extended, lost };
  }
}
