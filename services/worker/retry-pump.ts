/**
 * Moves retries whose backoff has elapsed (Redis clock) back to their priority queue, on time:
 * each pass learns when the next waiting retry is due and the next pass starts then, and the
 * completer says when it schedules one sooner. The scan interval is only the fallback (a retry
 * another worker scheduled, then died). Scanning alone promoted a retry up to a whole interval
 * late (500 ms by default, as long as the first backoff).
 */
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { PRIORITIES } from '../core/tasks/priority';

/**
 * While busy, passes start at least this far apart: retries due close together are promoted in
 * one pass rather than one pass each (each pass is a script, and a wake-up). A retry is
 * thus promoted at most this late. Chasing each due time exactly cost the burst benchmark more
 * than scanning every 20 ms had (Redis CPU 0.58–0.60 → 0.75–0.85 s, workers +15 %).
 */
const MIN_GAP_MS = 25;
/**
 * Busy: this many passes or more in the last second. Below it, passes chase each due time (1 ms
 * apart at least), so a delayed task due alone starts on time (docs/benchmarks.md, scenario 9a).
 */
const BUSY_PASSES = 40;
const IDLE_GAP_MS = 1;

export class RetryPump extends PeriodicService<{ promoted: number }> {
  /** When the last pass started (performance.now()). */
  private lastPass = -Infinity;
  /** Passes in the current one-second window, and whether the last window was busy. */
  private windowStart = -Infinity;
  private windowPasses = 0;
  private busy = false;

  constructor(
    private readonly deps: { queue: TaskQueue; metrics: WorkerMetrics },
    private readonly batchSize: number,
    intervalMs: number,
    log: Logger,
  ) {
    super('retry-pump', intervalMs, log);
  }

  /** The first pass runs at once: it learns when the retries already waiting are due. */
  override start(): void {
    super.start();
    this.runWithin(0);
  }

  /** A retry was just scheduled `delayMs` from now: promote it then. */
  retryScheduled(delayMs: number): void {
    this.passWithin(delayMs);
  }

  private passWithin(delayMs: number): void {
    this.runWithin(Math.max(delayMs, this.lastPass + (this.busy ? MIN_GAP_MS : IDLE_GAP_MS) - performance.now()));
  }

  async runOnce(): Promise<{ promoted: number }> {
    this.lastPass = performance.now();
    if (this.lastPass - this.windowStart >= 1000) {
      this.busy = this.windowPasses >= BUSY_PASSES;
      this.windowStart = this.lastPass;
      this.windowPasses = 0;
    }
    this.windowPasses++;
    const { moved, nextDueInMs } = await this.deps.queue.promoteDue(this.batchSize);
    let promoted = 0;
    let full = false;
    for (const p of PRIORITIES) {
      if (moved[p] > 0) this.deps.metrics.promoted.inc({ priority: p }, moved[p]);
      promoted += moved[p];
      full ||= moved[p] >= this.batchSize;
    }
    // Promoting rings the doorbell: one idle worker wakes (not necessarily this one).
    // A full batch may have left due retries behind: go again at once.
    if (full) this.runWithin(0);
    else if (nextDueInMs !== null) this.passWithin(nextDueInMs);
    return { promoted };
  }
}
