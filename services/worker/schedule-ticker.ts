/**
 * Fires cron schedules from every worker process: there is no leader (a leader that advanced
 * next-run in its own memory lost runs in River; two schedulers double-enqueued in Asynq). Each
 * pass is one transaction that locks the due schedules it takes (SKIP LOCKED: replicas split them,
 * none waits), on the database's clock (services/core/schedules/fire-due.ts). Then it sleeps until
 * the earliest next tick, at most SCHEDULE_POLL_MS, so a seconds-level schedule fires on time.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue } from '../core/queue/queue';
import { dueSoon, fireDueSchedules, FireResult } from '../core/schedules/fire-due';
import { PeriodicService } from '../core/service';

export interface ScheduleTickerConfig {
  /** SCHEDULE_POLL_MS: the longest sleep. */
  pollMs: number;
  /** SCHEDULE_MISFIRE_GRACE_MS. */
  graceMs: number;
  /** Schedules fired per transaction. */
  batch?: number;
  /** How long a schedule whose firing failed is left out of this worker's passes. */
  failureBackoffMs?: number;
}

/**
 * Passes start at least this far apart: a schedule another replica holds locked (it is firing it)
 * still looks due, and going again at once would spin until that replica commits.
 */
const MIN_GAP_MS = 20;
/** The timer may fire a little early against the database's clock; aim just after the tick. */
const WAKE_AFTER_MS = 3;

export class ScheduleTicker extends PeriodicService<FireResult> {
  private readonly batch: number;
  private readonly backoffMs: number;
  /** Schedules whose firing failed here, until when they are left out (so they cannot starve the others). */
  private readonly backingOff = new Map<string, number>();

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics },
    private readonly cfg: ScheduleTickerConfig,
    log: Logger,
  ) {
    super('schedule-ticker', cfg.pollMs, log);
    if (!(cfg.graceMs >= 0)) throw new Error(`schedule-ticker: graceMs must be >= 0, got ${cfg.graceMs}`);
    this.batch = cfg.batch ?? 100;
    this.backoffMs = cfg.failureBackoffMs ?? 30_000;
    if (!(this.batch >= 1)) throw new Error(`schedule-ticker: batch must be >= 1, got ${this.batch}`);
  }

  /** The first pass runs at once: ticks missed while no worker ran are handled at start-up. */
  override start(): void {
    super.start();
    this.runWithin(0);
  }

  async runOnce(): Promise<FireResult> {
    const now = Date.now();
    for (const [key, until] of this.backingOff) if (until <= now) this.backingOff.delete(key);
    const { pool, queue, metrics } = this.deps;
    let res: FireResult;
    try {
      res = await fireDueSchedules({ pool, queue, log: this.log }, { batch: this.batch, graceMs: this.cfg.graceMs, exclude: this.backingOff.keys() });
    } finally {
      // Whatever the pass did, learn when to go next and how late the schedules are.
      await this.plan().catch((err: unknown) => this.log.warn({ err }, 'reading the next schedule tick failed'));
    }
    for (const f of res.failed) this.backingOff.set(f.key, Date.now() + this.backoffMs);
    if (res.fired > 0) metrics.scheduleTicks.inc({ outcome: 'fired' }, res.fired);
    if (res.skippedMisfire > 0) metrics.scheduleTicks.inc({ outcome: 'skipped_misfire' }, res.skippedMisfire);
    if (res.skippedOverlap > 0) metrics.scheduleTicks.inc({ outcome: 'skipped_overlap' }, res.skippedOverlap);
    if (res.more) this.runWithin(MIN_GAP_MS);
    if ((res.fired > 0 || res.skippedMisfire > 0 || res.skippedOverlap > 0) && this.log.isLevelEnabled('debug')) {
      this.log.debug({ schedules: res.schedules, fired: res.fired, skippedMisfire: res.skippedMisfire, skippedOverlap: res.skippedOverlap }, 'schedules fired');
    }
    return res;
  }

  private async plan(): Promise<void> {
    const { nextInMs, lagSeconds } = await dueSoon(this.deps, this.backingOff.keys());
    this.deps.metrics.scheduleLag.set(lagSeconds);
    // runWithin only brings the next pass forward: SCHEDULE_POLL_MS stays the longest sleep.
    if (nextInMs !== null) this.runWithin(nextInMs > 0 ? nextInMs + WAKE_AFTER_MS : MIN_GAP_MS);
  }
}
