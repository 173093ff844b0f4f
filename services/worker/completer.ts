/**
 * Writes attempt outcomes: Postgres first (fenced, one statement per batch), then Redis (one
 * script per batch ends every lease with its outcome). Redis only forgets a lease once Postgres
 * has the outcome.
 * Outcomes arriving while a flush runs are batched into the next one.
 * While Postgres is unreachable a batch is retried until `giveUpAfterMs`; past it the leases have
 * expired anyway and the reaper hands the tasks out again.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import { outcomeCounters, WorkerMetrics } from '../core/observability/metrics';
import type { EnqueueItem, FinishItem, TaskQueue } from '../core/queue/queue';
import { Outcome, OutcomeWrite, recordOutcomes } from '../core/tasks/attempt-store';
import type { Priority } from '../core/tasks/priority';
import { stopHoldingLeases } from '../core/workflows/stop-on-failure';
import { LOCKED_PUSH_TIMEOUT_MS } from '../core/db/share-locked-push';
import { withTimeout } from '../core/process/with-timeout';

export interface CompletedAttempt extends Outcome {
  priority: Priority;
  /** Metric label: the task type if a handler exists for it, else `unknown`. */
  typeLabel: string;
}

export type CompletionResult = 'applied' | 'lease-lost' | 'gave-up';

interface Pending {
  /** Replaced by an unstorable failure when Postgres refuses what it holds. */
  item: CompletedAttempt;
  resolve: (r: CompletionResult) => void;
}

export class Completer {
  private pending: Pending[] = [];
  private readonly flushing = new Set<Promise<void>>();
  private scheduled = false;
  private failures = 0;
  /** When the last write started (performance.now()). */
  private lastStart = -Infinity;
  /** The timer of a write waiting for `minGapMs` to pass. */
  private paced: NodeJS.Timeout | null = null;
  /** flush() is running: nothing waits for pacing. */
  private flushingAll = false;
  private readonly counters: ReturnType<typeof outcomeCounters>;

  constructor(
    private readonly deps: {
      pool: Pool;
      queue: TaskQueue;
      log: Logger;
      metrics: WorkerMetrics;
      /** Retries were scheduled, the soonest due in this many ms (so the retry pump comes back then). */
      onRetryScheduled?: (delayMs: number) => void;
    },
    private readonly opts: {
      maxBatch: number;
      maxConcurrent: number;
      /** Outcomes waiting that justify a write beside one already running. */
      overlapAt: number;
      /**
       * Fewer than `eagerAt` outcomes waiting: a write starts at least this long after the
       * previous one started. Under a steady trickle, writes that each carry two or three
       * outcomes cost Postgres, Redis and the worker nearly as much as ones that carry ten.
       */
      minGapMs: number;
      /** Outcomes waiting when a write is due that start it at once, however recent the last one. */
      eagerAt: number;
      /**
       * Outcomes waiting that cut a paced wait short (the processor stops leasing at that many
       * unwritten outcomes: waiting longer would idle it).
       */
      flushAt: number;
      giveUpAfterMs: number;
      /** A step whose workflow's stop failed: its lease runs out this soon, for the reaper to stop it. */
      reclaimAfterMs: number;
    },
  ) {
    this.counters = outcomeCounters(deps.metrics);
  }

  complete(item: CompletedAttempt): Promise<CompletionResult> {
    return new Promise((resolve) => {
      this.pending.push({ item, resolve });
      this.schedule();
    });
  }

  /** True while a batch is failing to reach Postgres: the processor stops leasing meanwhile. */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** Resolves once everything handed in so far is written (or given up). */
  async flush(): Promise<void> {
    this.flushingAll = true;
    try {
      while (this.flushing.size > 0 || this.pending.length > 0) {
        this.schedule();
        // A turn of the event loop at least: a write may only start on the next one, and awaiting
        // an empty list would spin on microtasks, starving the timers and I/O it waits for.
        await Promise.all([...this.flushing, new Promise((r) => setImmediate(r))]);
      }
    } finally {
      this.flushingAll = false;
    }
  }

  /**
   * Starts a batch write once this turn's outcomes are in. While one write runs, the next waits
   * for it (and grows meanwhile) unless `overlapAt` outcomes are already waiting: at a trickle,
   * one write at a time makes fewer, larger statements (burst: 7 % less CPU), while a backlog
   * drains faster with writes overlapping (drain: 31k → 34k tasks/s with two). Below `eagerAt`,
   * writes also start at least `minGapMs` apart, so a steady trickle is written in batches of
   * several outcomes rather than one or two (burst: Postgres and worker CPU down a quarter); an
   * outcome then waits at most that long, and a heavier flow or a backlog never does.
   */
  private schedule(): void {
    // A paced write that enough outcomes have piled up for (or that flush() waits for) goes now.
    if (this.paced && (this.pending.length >= this.opts.flushAt || this.flushingAll || this.stepWaiting())) {
      clearTimeout(this.paced);
      this.paced = null;
      this.scheduled = false;
    }
    if (this.scheduled || !this.mayStartWrite()) return;
    this.scheduled = true;
    const start = () => {
      this.scheduled = false;
      this.paced = null;
      if (this.pending.length > 0) this.lastStart = performance.now();
      while (this.pending.length > 0 && this.mayStartWrite()) {
        const write: Promise<void> = this.writeBatch(this.takeBatch()).finally(() => {
          this.flushing.delete(write);
          if (this.pending.length > 0) this.schedule();
        });
        this.flushing.add(write);
      }
    };
    const wait = this.opts.minGapMs - (performance.now() - this.lastStart);
    if (wait > 0 && this.pending.length < this.opts.eagerAt && !this.flushingAll && !this.stepWaiting()) this.paced = setTimeout(start, wait);
    else setImmediate(start);
  }

  /** A workflow step's outcome waits: it is not paced, since the steps that depend on it wait for its write. */
  private stepWaiting(): boolean {
    return this.pending.some((p) => p.item.step);
  }

  private mayStartWrite(): boolean {
    if (this.flushing.size === 0) return true;
    return this.flushing.size < this.opts.maxConcurrent && this.pending.length >= this.opts.overlapAt;
  }

  /**
   * Up to maxBatch pending outcomes, at most one per task (a task whose lease was lost can have two
   * attempts finishing together; the later one waits for the next batch).
   */
  private takeBatch(): Pending[] {
    if (this.pending.length <= this.opts.maxBatch && new Set(this.pending.map((p) => p.item.id)).size === this.pending.length) {
      return this.pending.splice(0);
    }
    const ids = new Set<string>();
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    for (const p of this.pending) {
      if (batch.length < this.opts.maxBatch && !ids.has(p.item.id)) {
        ids.add(p.item.id);
        batch.push(p);
      } else rest.push(p);
    }
    this.pending = rest;
    return batch;
  }

  /**
   * Writes a batch one outcome at a time; one Postgres still refuses is stored as a failure that
   * says why (no result, no retry: the same result would be refused again). Other errors are
   * thrown, and the caller retries the whole batch (outcomes already written are recognised then).
   */
  private async writeApart(batch: Pending[], cause: unknown): Promise<OutcomeWrite> {
    this.deps.log.warn({ err: cause, count: batch.length }, 'Postgres refused an outcome batch; writing its outcomes one by one');
    const all: OutcomeWrite = { applied: new Set(), final: new Map(), cancelled: new Set(), released: [] };
    for (const p of batch) {
      let one: OutcomeWrite;
      try {
        one = await recordOutcomes(this.deps.pool, [p.item]);
      } catch (err) {
        if (!refusedData(err)) throw err;
        this.deps.log.error({ err, taskId: p.item.id, attempt: p.item.attempt }, 'Postgres refused an attempt outcome; recorded as a final failure');
        p.item = unstorable(p.item, err);
        one = await recordOutcomes(this.deps.pool, [p.item]);
      }
      for (const k of ['applied', 'cancelled'] as const) for (const id of one[k]) all[k].add(id);
      for (const [id, status] of one.final) all.final.set(id, status);
      all.released.push(...one.released);
    }
    return all;
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const started = Date.now();
    let written: OutcomeWrite | null = null;
    // Counts as failing from the first error until this batch is written or given up.
    let failed = false;
    try {
      for (let delay = 50; written === null; delay = Math.min(delay * 2, 2000)) {
        try {
          written = await recordOutcomes(this.deps.pool, batch.map((p) => p.item));
        } catch (err) {
          // Postgres refused what an outcome holds: retrying the batch would refuse it forever, and
          // hold up every other outcome in it. Each is written alone instead.
          if (refusedData(err)) {
            try {
              written = await this.writeApart(batch, err);
              break;
            } catch (apart) {
              err = apart;
            }
          }
          if (Date.now() - started + delay > this.opts.giveUpAfterMs) {
            this.deps.log.error({ err, count: batch.length }, 'could not record outcomes in Postgres; leases will expire and the tasks run again');
            for (const p of batch) p.resolve('gave-up');
            return;
          }
          if (!failed) this.failures++;
          failed = true;
          this.deps.log.warn({ err, retryInMs: delay }, 'recording outcomes failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    } finally {
      if (failed) this.failures--;
    }
    const { applied, final, cancelled, released } = written;
    // Steps whose last dependency just succeeded: Postgres queued them with the success.
    if (released.length > 0) await this.pushReleased(released);
    // Failed steps stop their workflows where the policy says so; before Redis hears of the
    // retries, so that a step due for one in a workflow stopped while it ran cannot start again.
    // Should the stop fail (null), the steps due for a retry are left to the reaper, their leases cut short.
    const failedSteps = batch.filter((p) => p.item.step && applied.has(p.item.id) && (p.item.error !== null || cancelled.has(p.item.id)));
    const retrying = new Map(failedSteps.filter((p) => !p.item.dead && !cancelled.has(p.item.id)).map((p) => [p.item.id, p.item.token]));
    const stopped = failedSteps.length > 0 ? await stopHoldingLeases(this.deps, failedSteps.map((p) => p.item.id), retrying, this.opts.reclaimAfterMs) : new Set<string>();
    const m = this.deps.metrics;
    const finish: FinishItem[] = [];
    for (const p of batch) {
      const it = p.item;
      if (!applied.has(it.id)) {
        m.leasesLost.inc();
        // Redis handed out a task Postgres already finished (its earlier outcome was committed but
        // Redis never heard, or Redis was rebuilt): if this lease still holds it, it ends there as in
        // Postgres (a dead one dead-lettered, for the DLQ and its gauge; others forgotten).
        const status = final.get(it.id);
        if (status) finish.push({ id: it.id, token: it.token, priority: it.priority, outcome: status === 'dead' ? 'dead' : 'succeeded', settleAttempts: 0 });
        continue;
      }
      // Postgres took the outcome: should Redis no longer have this lease (it lost data and rebuilt
      // the task from Postgres while the attempt ran), the rebuilt copy is moved where Postgres says.
      const settleAttempts = it.attempt;
      const c = this.counters(it.typeLabel)[it.priority];
      let outcome: FinishItem['outcome'] = 'succeeded';
      if (cancelled.has(it.id)) {
        // An operator cancelled it while it ran: final, so Redis forgets it (as for a success).
        m.cancelledRuns.inc();
      } else if (it.error === null) c.succeeded.inc();
      else {
        c.failed.inc();
        if (it.dead) {
          c.dead.inc();
          outcome = 'dead';
        } else if (!stopped?.has(it.id)) {
          // Unless its workflow stopped it (cancelled in Postgres: final, so Redis forgets it).
          m.retried.inc();
          outcome = 'retrying';
          // The stop failed: whether it should run again is unknown, so the reaper decides.
          if (stopped === null && retrying.has(it.id)) continue;
        }
      }
      finish.push({ id: it.id, token: it.token, priority: it.priority, outcome, delayMs: it.delayMs, settleAttempts });
    }
    try {
      const done = await this.deps.queue.finish(finish);
      m.acks.inc(done.filter((r, i) => r === 'finished' && finish[i]!.outcome === 'succeeded' && finish[i]!.settleAttempts > 0).length);
      let soonest = Infinity;
      done.forEach((r, i) => {
        if (r !== 'stale' && finish[i]!.outcome === 'retrying') soonest = Math.min(soonest, finish[i]!.delayMs ?? 0);
      });
      if (soonest < Infinity) this.deps.onRetryScheduled?.(soonest);
    } catch (err) {
      // Postgres has the outcomes; the leases stay in Redis until the reaper reclaims them, and the
      // reaper settles them with what Postgres says.
      this.deps.log.warn({ err }, 'updating Redis after recording outcomes failed');
    }
    for (const p of batch) p.resolve(applied.has(p.item.id) ? 'applied' : 'lease-lost');
  }

  /**
   * A failed or late push leaves the steps queued in Postgres only: the reconciler pushes them.
   * Bounded: the batch's other leases (and the next batches) must not wait on a stalled partition.
   */
  private async pushReleased(items: EnqueueItem[]): Promise<void> {
    try {
      await withTimeout(this.deps.queue.enqueue(items), LOCKED_PUSH_TIMEOUT_MS, 'pushing released workflow steps: no answer');
    } catch (err) {
      this.deps.log.warn({ err, count: items.length, taskIds: items.slice(0, 10).map((i) => i.id) }, 'workflow steps queued in Postgres but not pushed to Redis; the reconciler will queue them');
    }
  }
}

/** Postgres refused the data itself (SQLSTATE class 22, data exception, or 54, a program limit): the same write fails again. */
function refusedData(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('54'));
}

/** The attempt as a failure that ends the task, its error saying what Postgres refused. */
function unstorable(item: CompletedAttempt, err: unknown): CompletedAttempt {
  const why = String((err as Error).message ?? err).replace(/\0/g, '\uFFFD').slice(0, 500);
  return { ...item, error: `the attempt's outcome could not be stored: ${why}`, dead: true, delayMs: 0, result: null, errorType: 'UnstorableOutcome', errorStack: null };
}
