/**
 * Writes attempt outcomes: Postgres first (fenced by the lease token, one statement per batch),
 * then Redis (ack, retry or bury, one script per kind per batch). Redis only forgets a lease once
 * Postgres has the outcome. Outcomes arriving while a flush runs are batched into the next one.
 * While Postgres is unreachable a batch is retried until `giveUpAfterMs`; past it the leases have
 * expired anyway and the reaper hands the tasks out again.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue } from '../core/queue/queue';
import { Outcome, recordOutcomes } from '../core/tasks/attempt-store';
import type { Priority } from '../core/tasks/priority';

export interface CompletedAttempt extends Outcome {
  priority: Priority;
  /** Metric label: the task type if a handler exists for it, else `unknown`. */
  typeLabel: string;
}

export type CompletionResult = 'applied' | 'lease-lost' | 'gave-up';

interface Pending {
  item: CompletedAttempt;
  resolve: (r: CompletionResult) => void;
}

export class Completer {
  private pending: Pending[] = [];
  private readonly flushing = new Set<Promise<void>>();
  private scheduled = false;

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; log: Logger; metrics: WorkerMetrics },
    private readonly opts: { maxBatch: number; maxConcurrent: number; giveUpAfterMs: number },
  ) {}

  complete(item: CompletedAttempt): Promise<CompletionResult> {
    return new Promise((resolve) => {
      this.pending.push({ item, resolve });
      this.schedule();
    });
  }

  /** Resolves once everything handed in so far is written (or given up). */
  async flush(): Promise<void> {
    while (this.flushing.size > 0 || this.pending.length > 0) {
      this.schedule();
      await Promise.all([...this.flushing]);
    }
  }

  /**
   * Starts a batch write once this turn's outcomes are in, unless `maxConcurrent` writes are
   * already running; those pick up what accumulated when they finish.
   */
  private schedule(): void {
    if (this.scheduled || this.flushing.size >= this.opts.maxConcurrent) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.pending.length > 0 && this.flushing.size < this.opts.maxConcurrent) {
        const write: Promise<void> = this.writeBatch(this.pending.splice(0, this.opts.maxBatch)).finally(() => {
          this.flushing.delete(write);
          if (this.pending.length > 0) this.schedule();
        });
        this.flushing.add(write);
      }
    });
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const started = Date.now();
    let applied: Set<string> | null = null;
    for (let delay = 50; applied === null; delay = Math.min(delay * 2, 2000)) {
      try {
        applied = await recordOutcomes(this.deps.pool, batch.map((p) => p.item));
      } catch (err) {
        if (Date.now() - started + delay > this.opts.giveUpAfterMs) {
          this.deps.log.error({ err, count: batch.length }, 'could not record outcomes in Postgres; leases will expire and the tasks run again');
          for (const p of batch) p.resolve('gave-up');
          return;
        }
        this.deps.log.warn({ err, retryInMs: delay }, 'recording outcomes failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    const m = this.deps.metrics;
    const acks: Pending[] = [];
    const retries: Pending[] = [];
    const burials: Pending[] = [];
    for (const p of batch) {
      const it = p.item;
      if (!applied.has(it.id)) {
        m.leasesLost.inc();
        continue;
      }
      if (it.error === null) {
        m.succeeded.inc({ type: it.typeLabel, priority: it.priority });
        acks.push(p);
      } else {
        m.failed.inc({ type: it.typeLabel, priority: it.priority });
        if (it.dead) {
          m.dead.inc({ type: it.typeLabel, priority: it.priority });
          burials.push(p);
        } else {
          m.retried.inc();
          retries.push(p);
        }
      }
    }
    const q = this.deps.queue;
    const held = (p: Pending) => ({ id: p.item.id, token: p.item.token, priority: p.item.priority });
    try {
      const [acked] = await Promise.all([
        q.ack(acks.map(held)),
        q.retry(retries.map((p) => ({ ...held(p), delayMs: p.item.delayMs }))),
        q.bury(burials.map(held)),
      ]);
      m.acks.inc(acked.filter(Boolean).length);
    } catch (err) {
      // Postgres has the outcomes; the leases stay in Redis until the reaper reclaims them, and the
      // next lease sees the final state in Postgres and drops the task.
      this.deps.log.warn({ err }, 'updating Redis after recording outcomes failed');
    }
    for (const p of batch) p.resolve(applied.has(p.item.id) ? 'applied' : 'lease-lost');
  }
}
