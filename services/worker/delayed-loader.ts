/**
 * Brings delayed tasks from Postgres into Redis ahead of time. Redis holds only the tasks due within
 * the horizon (the API indexes those at once, by due time); the rest wait in Postgres, and this loop
 * loads each one about half a horizon before it is due, so a million far-future tasks take no Redis
 * memory. How far it has loaded is a mark in Redis: a Redis that lost its data lost the mark with
 * the tasks, and the next pass loads from the start again. It also marks tasks due over a second
 * ago that no worker has started as `queued`, and counts the scheduled ones (a gauge). One copy
 * runs at a time across all workers (a Redis lock with a TTL).
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import { pushUnderShareLocks } from '../core/db/share-locked-push';
import type { TaskQueue, TaskRef } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { countScheduled, DueCursor, DueTask, markDueQueued, scheduledDueSoon } from '../core/tasks/delayed-store';
import { PRIORITIES } from '../core/tasks/priority';
import { payloadTexts } from '../core/tasks/reconcile-store';
import { enqueueItem } from '../core/tasks/submit';
import { chunksWithin } from './reconciler';

export interface DelayedLoaderOptions {
  intervalMs: number;
  /** DELAYED_HORIZON_MS: the API indexes tasks due within it; this loop loads them within half of it. */
  horizonMs: number;
  /** Tasks per page, and pages per pass (the rest waits for the next pass). */
  batch: number;
  maxPages: number;
  /** How often the scheduled tasks are counted (a count walks them all). */
  countEveryMs: number;
}

/** Tasks due sooner than this are not loaded (see scheduledDueSoon); those overdue by it are marked queued. */
const LEAD_MS = 1000;
const MAX_ID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
/** Payload bytes read and pushed at once (a single larger payload goes alone), as the reconciler's default. */
const PAYLOAD_BYTES = 8 * 1048576;

export class DelayedLoader extends PeriodicService<{ loaded: number; markedQueued: number }> {
  private readonly owner = `delayed-loader-${process.pid}-${Math.random().toString(36).slice(2)}`;
  private lastCount = -Infinity;

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics },
    private readonly opts: DelayedLoaderOptions,
    log: Logger,
  ) {
    super('delayed-loader', opts.intervalMs, log);
  }

  async runOnce(): Promise<{ loaded: number; markedQueued: number }> {
    const { pool, queue } = this.deps;
    if (!(await queue.lock('delayed-loader', this.owner, this.lockTtlMs))) return { loaded: 0, markedQueued: 0 };
    try {
      const loaded = await this.load();
      const markedQueued = await markDueQueued(pool, LEAD_MS, this.opts.batch);
      if (markedQueued > 0) this.log.debug({ count: markedQueued }, 'due delayed tasks not started yet marked queued');
      await this.count();
      return { loaded, markedQueued };
    } finally {
      await queue.unlock('delayed-loader', this.owner).catch(() => undefined);
    }
  }

  private get lockTtlMs(): number {
    return this.opts.intervalMs * 3 + 5000;
  }

  /**
   * This pass still holds the lock (renewed), and no other pass moved the mark since it was read as
   * `seen` (in the partitions that answer both reads: one failing or stalled is not waited for).
   */
  private async stillLeading(seen: (string | null)[]): Promise<boolean> {
    const { queue } = this.deps;
    if (!(await queue.lock('delayed-loader', this.owner, this.lockTtlMs, { renewOnly: true }))) return false;
    const now = (await queue.delayedMark()).seen;
    return now.length === seen.length && now.every((v, i) => v === null || seen[i] === null || v === seen[i]);
  }

  /** One pass of loading: from the mark up to half a horizon ahead, at most maxPages pages. */
  private async load(): Promise<number> {
    const { pool, queue, metrics } = this.deps;
    const mark = await queue.delayedMark();
    let after: DueCursor | null = mark.at === null ? null : { runAt: new Date(mark.at.ms), id: mark.at.id ?? MAX_ID };
    let loaded = 0;
    // Tasks whose partition did not answer their push: that partition's mark is not moved.
    const unpushed: TaskRef[] = [];
    for (let page = 0; page < this.opts.maxPages; page++) {
      let { tasks, until } = await scheduledDueSoon(pool, after, this.opts.horizonMs / 2, LEAD_MS, this.opts.batch);
      // A mark beyond what this read could reach: a pass set it while the database's clock ran
      // ahead, and the clock was set back. Tasks due before it were never loaded: start over (what
      // is indexed already is skipped), else they would wait for markDueQueued and the reconciler.
      if (page === 0 && after !== null && after.runAt.getTime() > until.getTime()) {
        after = null;
        ({ tasks, until } = await scheduledDueSoon(pool, null, this.opts.horizonMs / 2, LEAD_MS, this.opts.batch));
      }
      // A pass that outlived its lock (a stalled read) stops: another worker's loader went on from
      // the mark (it holds the lock, or its pass moved the mark and ended), and a task it loaded
      // may have run and ended since this page was read, which a push now would index (and run)
      // again. The mark stays as the other pass set it.
      if (!(await this.stillLeading(mark.seen))) {
        this.log.warn({ loaded }, 'another worker\'s delayed loader ran during this pass; stopping it');
        return loaded;
      }
      if (tasks.length > 0) {
        const pushed = await this.pushStillScheduled(tasks, mark.seen);
        if (pushed === null) {
          this.log.warn({ loaded }, 'another worker\'s delayed loader ran during this pass; stopping it');
          return loaded;
        }
        // Id and tenant only: the payloads are not kept past their chunk.
        tasks.forEach((t, i) => pushed[i] === undefined && unpushed.push({ id: t.id, tenant: t.tenant }));
        const n = pushed.filter(Boolean).length;
        loaded += n;
        if (n > 0) metrics.delayedLoaded.inc(n);
      }
      if (tasks.length < this.opts.batch) {
        await queue.setDelayedMark(mark.seen, { ms: until.getTime(), id: null }, unpushed);
        return loaded;
      }
      const last = tasks[tasks.length - 1]!;
      after = { runAt: last.run_at!, id: last.id };
    }
    // Not done within this pass: the mark moves to the last task loaded, id included, so the next
    // pass goes on after it however many tasks share its due time.
    await queue.setDelayedMark(mark.seen, { ms: after!.runAt.getTime(), id: after!.id }, unpushed);
    return loaded;
  }

  /**
   * A task read here may have come due, run and ended since (the API indexed it at once): the push
   * holds share locks on the rows still scheduled and pushes only those (pushUnderShareLocks); one
   * no longer scheduled is left out (false). A push that fails or takes too long fails the pass,
   * and its mark stays. Payloads are read under those locks, PAYLOAD_BYTES at a time, each chunk
   * pushed before the next is read; before each chunk after the first the pass checks that it
   * still leads (null when it does not: it stops, as before a page).
   */
  private async pushStillScheduled(tasks: DueTask[], seen: (string | null)[]): Promise<(boolean | undefined)[] | null> {
    const { pool, queue } = this.deps;
    const out: (boolean | undefined)[] = [];
    for (const [n, chunk] of chunksWithin(tasks, (t) => t.payload_bytes, PAYLOAD_BYTES).entries()) {
      if (n > 0 && !(await this.stillLeading(seen))) return null;
      const pushed = await pushUnderShareLocks(pool, 'pushing delayed tasks', async (tx) => {
        const still = await tx.lockStill(
          chunk.map((t) => t.id),
          `status = 'scheduled'`,
        );
        if (still.size === 0) return chunk.map(() => false);
        const texts = await payloadTexts(tx.client, [...still]);
        const push = chunk.flatMap((t) => {
          const text = texts.get(t.id);
          return still.has(t.id) && text !== undefined ? [enqueueItem(t, text)] : [];
        });
        // A partitioned queue waits for each partition at most passWaitMs: one failing or stalled
        // holds up neither the others' tasks nor the pass.
        const answered = await tx.bounded(queue.pushAnswering ? queue.pushAnswering(push, false) : queue.enqueue(push));
        const byId = new Map(push.map((it, i) => [it.id, answered[i]]));
        return chunk.map((t) => (byId.has(t.id) ? byId.get(t.id) : false));
      });
      out.push(...pushed);
    }
    return out;
  }

  private async count(): Promise<void> {
    if (performance.now() - this.lastCount < this.opts.countEveryMs) return;
    this.lastCount = performance.now();
    const counts = await countScheduled(this.deps.pool, 2000);
    if (!counts) {
      this.log.debug('counting scheduled tasks took over 2 s; the gauge keeps its last values');
      return;
    }
    for (const p of PRIORITIES) this.deps.metrics.scheduledWaiting.set({ priority: p }, counts[p]);
  }
}
