/**
 * Leases tasks into free slots and runs their handlers. Each lease is recorded in Postgres as a
 * started attempt before its handler runs; each outcome goes through the Completer. The map of
 * running attempts is shared with the heartbeater, which aborts those whose lease was lost.
 */
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { Lease, TaskQueue } from '../core/queue/queue';
import { markRunning, recordReleased } from '../core/tasks/attempt-store';
import { BackoffPolicy, backoffDelayMs } from '../core/tasks/backoff';
import type { Completer } from './completer';
import { LeaseLostError, ShutdownError, TaskTimeoutError } from './errors';
import type { HandlerRegistry } from './handlers';

/** Lease batches whose Postgres start write may overlap; more only queue up in Postgres. */
const MAX_CONCURRENT_BEGINS = 2;

export interface Running {
  lease: Lease;
  controller: AbortController;
}

export interface ProcessorOptions {
  workerId: string;
  slots: number;
  leaseBatch: number;
  visibilityMs: number;
  pollIntervalMs: number;
  taskTimeoutMs: number;
  backoff: BackoffPolicy;
}

export class Processor {
  /** Running attempts by lease token: one task can have two attempts alive when a lease was lost. */
  readonly running = new Map<string, Running>();
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private wakePending = false;
  /** Leased tasks whose start is being recorded; they hold slots. */
  private starting = 0;
  private readonly begins = new Set<Promise<void>>();
  private beginFailed = false;
  private readonly attempts = new Set<Promise<void>>();

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; completer: Completer; handlers: HandlerRegistry; log: Logger; metrics: WorkerMetrics },
    private readonly opts: ProcessorOptions,
  ) {}

  start(): void {
    if (this.loopDone) return;
    this.stopping = false;
    this.loopDone = this.loop();
  }

  /** Wakes an idle lease loop now (new work was announced). */
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    // Not idle right now (mid-lease): remember it, so the next idle() returns at once instead of
    // sleeping through work that arrived meanwhile.
    else this.wakePending = true;
  }

  /** Stops leasing; running attempts continue until drain() or abortAll(). */
  async stopLeasing(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loopDone;
    this.loopDone = null;
  }

  /** Waits for running attempts to finish, up to `graceMs`; returns how many are still running. */
  async drain(graceMs: number): Promise<number> {
    const deadline = Date.now() + graceMs;
    while (this.attempts.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.attempts]), sleep(Math.min(100, Math.max(1, deadline - Date.now())))]);
    }
    return this.attempts.size;
  }

  /** Aborts what is still running with a shutdown reason (they are handed back) and waits for them. */
  async abortAll(): Promise<void> {
    for (const r of this.running.values()) r.controller.abort(new ShutdownError());
    await Promise.allSettled([...this.attempts]);
  }

  private async loop(): Promise<void> {
    let errorDelay = 100;
    while (!this.stopping) {
      // Let attempts finishing in this turn release their slots first, so one lease call (and one
      // Postgres statement) covers them all instead of one slot at a time.
      if (this.attempts.size > 0 || this.starting > 0) await new Promise((r) => setImmediate(r));
      if (this.beginFailed) {
        this.beginFailed = false;
        await this.idle(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
        continue;
      }
      const free = this.opts.slots - this.attempts.size - this.starting;
      if (free <= 0 || this.begins.size >= MAX_CONCURRENT_BEGINS) {
        await this.idle(this.opts.pollIntervalMs);
        continue;
      }
      let leases: Lease[];
      try {
        leases = await this.deps.queue.lease({ max: Math.min(free, this.opts.leaseBatch), visibilityMs: this.opts.visibilityMs, owner: this.opts.workerId });
        errorDelay = 100;
      } catch (err) {
        this.deps.log.warn({ err, retryInMs: errorDelay }, 'leasing failed; backing off');
        await this.idle(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
        continue;
      }
      if (leases.length === 0) {
        await this.idle(this.opts.pollIntervalMs);
        continue;
      }
      // Start these without waiting, so the next lease overlaps this batch's Postgres write.
      this.starting += leases.length;
      const begun: Promise<void> = this.begin(leases)
        .then((ok) => {
          if (!ok) this.beginFailed = true;
        })
        .finally(() => {
          this.starting -= leases.length;
          this.begins.delete(begun);
          this.wake();
        });
      this.begins.add(begun);
    }
    await Promise.all([...this.begins]);
  }

  /** Records the attempts as started in Postgres and launches them; false when Postgres failed. */
  private async begin(leases: Lease[]): Promise<boolean> {
    const { metrics: m, queue, log } = this.deps;
    let started: Set<string>;
    try {
      ({ started } = await markRunning(
        this.deps.pool,
        leases.map((l) => ({ id: l.message.id, token: l.token, attempt: l.attempt })),
      ));
    } catch (err) {
      log.warn({ err, count: leases.length }, 'could not record leased attempts in Postgres; handing them back');
      await queue.release(leases.map(held)).catch((e: unknown) => log.warn({ err: e }, 'handing back failed; the reaper will reclaim'));
      return false;
    }
    const stale = leases.filter((l) => !started.has(l.message.id));
    if (stale.length > 0) {
      // Postgres already has a final state for these (an outcome recorded before Redis forgot the
      // lease, or a task Postgres never knew): Redis must not hand them out again.
      log.info({ count: stale.length, ids: stale.slice(0, 10).map((l) => l.message.id) }, 'dropping leased tasks that are already final in Postgres');
      await queue.ack(stale.map(held)).catch((e: unknown) => log.warn({ err: e }, 'dropping stale leases failed'));
    }
    for (const l of leases) {
      if (!started.has(l.message.id)) continue;
      const p = l.message.priority;
      m.dequeued.inc({ priority: p });
      m.attemptWait.observe({ priority: p }, Math.max(0, l.leasedAtMs - l.readyAtMs) / 1000);
      if (l.attempt === 1) m.enqueueToStart.observe({ priority: p }, Math.max(0, l.leasedAtMs - l.message.createdAtMs) / 1000);
      const attempt = this.run(l).finally(() => {
        this.attempts.delete(attempt);
        this.wake();
      });
      this.attempts.add(attempt);
    }
    return true;
  }

  private async run(lease: Lease): Promise<void> {
    const { message: msg } = lease;
    const { log, metrics: m } = this.deps;
    const controller = new AbortController();
    this.running.set(lease.token, { lease, controller });
    m.inflight.inc();
    const timer = setTimeout(() => controller.abort(new TaskTimeoutError(this.opts.taskTimeoutMs)), this.opts.taskTimeoutMs);
    const handler = this.deps.handlers.get(msg.type);
    const typeLabel = handler ? msg.type : 'unknown';
    const startedAtMs = Date.now();
    const t0 = performance.now();
    let error: string | null = null;
    try {
      if (!handler) throw new Error(`unknown task type "${msg.type}": no handler is registered for it`);
      const ctx = { id: msg.id, type: msg.type, payload: msg.payload, attempt: lease.attempt, signal: controller.signal };
      // A handler that ignores its signal must not hold the slot: the abort settles the race.
      await Promise.race([handler(ctx), aborted(controller.signal)]);
    } catch (err) {
      error = errorText(controller.signal.aborted ? controller.signal.reason : err);
    } finally {
      clearTimeout(timer);
    }
    const durationMs = performance.now() - t0;
    m.runSeconds.observe({ type: typeLabel }, durationMs / 1000);
    const reason: unknown = controller.signal.reason;
    try {
      if (reason instanceof ShutdownError) {
        await this.handBack(lease, startedAtMs);
        return;
      }
      if (reason instanceof LeaseLostError) log.warn({ taskId: msg.id, attempt: lease.attempt }, 'lease lost while running; outcome discarded');
      const dead = error !== null && (!handler || lease.attempt >= msg.maxAttempts);
      const res = await this.deps.completer.complete({
        id: msg.id,
        token: lease.token,
        attempt: lease.attempt,
        workerId: this.opts.workerId,
        startedAtMs,
        priority: msg.priority,
        typeLabel,
        durationMs,
        error,
        dead,
        delayMs: error !== null && !dead ? backoffDelayMs(this.opts.backoff, lease.attempt) : 0,
      });
      if (log.isLevelEnabled('debug')) log.debug({ taskId: msg.id, attempt: lease.attempt, error, dead, result: res }, 'attempt finished');
    } finally {
      m.inflight.dec();
      this.running.delete(lease.token);
    }
  }

  private async handBack(lease: Lease, startedAtMs: number): Promise<void> {
    const { log, queue } = this.deps;
    await recordReleased(this.deps.pool, [{ id: lease.message.id, token: lease.token, attempt: lease.attempt, startedAtMs }]).catch((err: unknown) =>
      log.warn({ err, taskId: lease.message.id }, 'could not record the hand-back in Postgres'),
    );
    await queue.release([held(lease)]).catch((err: unknown) => log.warn({ err, taskId: lease.message.id }, 'hand-back to Redis failed; the reaper will reclaim'));
  }

  private idle(ms: number): Promise<void> {
    if (this.wakePending || this.stopping) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }
}

function held(l: Lease) {
  return { id: l.message.id, token: l.token, priority: l.message.priority };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
