/**
 * Puts back into Redis what Postgres says should be there: tasks accepted but never pushed (the API
 * died between commit and push, or Redis refused), and everything lost when Redis restarted without
 * persistence, was flushed or failed over. Postgres is the source of truth; Redis can always be
 * rebuilt from it. Each pass also checks that every task Redis knows is held somewhere it can be
 * leased from (see lua/sweep.lua): one it knows but holds nowhere is indexed again at once. One
 * copy runs at a time across all workers (a Redis lock with a TTL).
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { EnqueueItem, TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { pushUnderShareLocks } from '../core/db/share-locked-push';
import { maxAttempts } from '../core/tasks/backoff';
import { ExpiredStatus, recordExpired } from '../core/tasks/attempt-store';
import { Cursor, finishCancelled, settledByIds, payloadSizes, payloadTexts, queueItemOf, unfinishedByIds, unfinishedTasks, UnfinishedTask } from '../core/tasks/reconcile-store';
import { CANCEL_REASON } from '../core/operator/cancel-tasks';
import { stopAfterFailedSteps } from '../core/workflows/stop-on-failure';
import { goodbye } from './goodbye';

const MAX_PAGES_PER_PASS = 100;
const BUSY_PAGES_PER_PASS = 10;
const DEFAULT_PAYLOAD_BYTES = 8 * 1048576;
/** Ids of unanswering partitions kept for the next pass (beyond it the walk reaches them). */
const MAX_DEFERRED = 10_000;
/** How long a push may hold the share locks on its tasks' rows (see requeue). */
const PUSH_TIMEOUT_MS = 5000;

export interface ReconcileResult {
  leader: boolean;
  checked: number;
  requeued: number;
  vanishedLeases: number;
  /** Tasks Redis knew but held nowhere (see lua/sweep.lua); indexed again from Postgres. */
  unheld: number;
  /** Waiting tasks an operator asked to cancel that Redis holds nowhere: ended `cancelled`. */
  cancelled: number;
}

export interface ReconcilerOptions {
  intervalMs: number;
  /** A task counts as missing only if Postgres has not touched it for this long (covers the API's commit→push gap). */
  graceMs: number;
  batchSize: number;
  /**
   * Payload bytes read from Postgres at once while re-queueing (RECONCILE_PAYLOAD_BYTES; default
   * 8 MiB): pages carry no payloads, so this, not the payloads' sizes, bounds the memory a pass
   * needs. A single larger payload is read alone.
   */
  payloadBytes?: number;
}

export class Reconciler extends PeriodicService<ReconcileResult> {
  private readonly owner = randomUUID();
  private cursor: Cursor | null = null;
  /** Ids Redis holds twice, as the last sweep found (they are reported once, not searched every pass). */
  private heldTwice = 0;
  /** This pass found its lock taken by another worker: it pushes nothing more. */
  private lost = false;
  /** Ids whose partition did not answer in a page's repair: checked again at the next pass's start. */
  private readonly deferred = new Set<string>();

  constructor(
    /** typeLabel: a task type as the `type` label (the worker's handlers, else `unknown`; all `unknown` when absent). */
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics; typeLabel?: (type: string) => string },
    private readonly opts: ReconcilerOptions,
    log: Logger,
  ) {
    super('reconciler', opts.intervalMs, log);
    if (opts.payloadBytes !== undefined && !(opts.payloadBytes > 0)) throw new RangeError(`payloadBytes must be positive, got ${opts.payloadBytes}`);
  }

  async runOnce(): Promise<ReconcileResult> {
    const result: ReconcileResult = { leader: false, checked: 0, requeued: 0, vanishedLeases: 0, unheld: 0, cancelled: 0 };
    this.lost = false;
    if (!(await this.deps.queue.lock('reconciler', this.owner, this.lockTtlMs))) return result;
    result.leader = true;
    await this.sweep(result);
    // Tasks of a partition that did not answer last pass, not left for the walk to come round to.
    if (this.deferred.size > 0) {
      const ids = [...this.deferred];
      this.deferred.clear();
      await this.repair(await settledByIds(this.deps.pool, ids, this.opts.graceMs), result).catch((err: unknown) => {
        this.defer(ids);
        throw err;
      });
    }
    // Keep paging while pages are full, so a Redis that lost everything is rebuilt in one pass
    // rather than one page per interval; bounded so a pass cannot run forever.
    for (let page = 0; page < MAX_PAGES_PER_PASS; page++) {
      if (!(await this.stillLeading())) break;
      const { next, settled } = await this.reconcilePage(result);
      // Past a few pages, one of tasks all still busy (a fresh backlog) ends the pass: the walk
      // goes on from there next time, without reading the whole backlog every interval.
      if (!next || (settled === 0 && page >= BUSY_PAGES_PER_PASS)) break;
    }
    const { metrics } = this.deps;
    if (result.requeued > 0) metrics.reconciled.inc({ kind: 'requeued' }, result.requeued);
    if (result.vanishedLeases > 0) metrics.reconciled.inc({ kind: 'lease_vanished' }, result.vanishedLeases);
    if (result.unheld > 0) metrics.reconciled.inc({ kind: 'unheld' }, result.unheld);
    if (result.cancelled > 0) metrics.reconciled.inc({ kind: 'cancelled' }, result.cancelled);
    if (result.requeued + result.vanishedLeases + result.unheld + result.cancelled > 0) this.log.warn(result, 'reconciler repaired Redis from Postgres');
    return result;
  }

  private get lockTtlMs(): number {
    return this.opts.intervalMs * 3 + 1000;
  }

  /**
   * Renews the lock; false once it lapsed (whether or not another worker holds it now). A pass can
   * outlive the lock's TTL (a rebuild of a large backlog, a stalled read): another worker's
   * reconciler then walks the same tasks, and a push of what this one read before could put back
   * a task that ran and ended in between (Redis had forgotten it, so enqueue took it as new).
   * Checked before every page and every push, so a pass that lost the lock stops within one round
   * trip of finding out.
   */
  private async stillLeading(): Promise<boolean> {
    if (!this.lost && !(await this.deps.queue.lock('reconciler', this.owner, this.lockTtlMs, { renewOnly: true }))) {
      this.lost = true;
      this.log.warn('reconciler lock lapsed during a pass (another worker may have led meanwhile); stopping the pass');
    }
    return !this.lost;
  }

  /**
   * Tasks Redis knows but holds nowhere are forgotten there by the sweep; those Postgres still shows
   * unfinished are indexed again now rather than when the page walk reaches them. (No grace period:
   * unlike a task not pushed yet, no step of a healthy system leaves a known task unheld.)
   */
  private async sweep(result: ReconcileResult): Promise<void> {
    const s = await this.deps.queue.sweep(this.opts.batchSize, this.heldTwice);
    // Warned of once: more ids held twice than before (fewer is a duplicate that went away).
    const moreTwice = s.heldTwice > this.heldTwice;
    this.heldTwice = s.heldTwice;
    if (s.forgotten.length + s.orphans > 0 || moreTwice) {
      this.log.warn({ known: s.known, held: s.held, unheld: s.forgotten.length, orphans: s.orphans, heldTwice: s.heldTwice, taskIds: s.forgotten.slice(0, 10) }, 'Redis held tasks inconsistently; repairing from Postgres');
    }
    result.unheld += s.forgotten.length;
    await this.repair(await unfinishedByIds(this.deps.pool, s.forgotten), result);
  }

  /** Checks one page of unfinished tasks: whether more follow, and how many it checked (those untouched for the grace period). */
  private async reconcilePage(result: ReconcileResult): Promise<{ next: boolean; settled: number }> {
    const { settled, next } = await unfinishedTasks(this.deps.pool, this.opts.graceMs, this.opts.batchSize, this.cursor);
    result.checked += settled.length;
    await this.repair(settled, result);
    // Moved on only once the page is repaired: a page whose repair failed (Redis or Postgres away
    // for a moment) is walked again next pass, not after the walk has gone round the whole backlog.
    this.cursor = next;
    return { next: next !== null, settled: settled.length };
  }

  /** Puts back into Redis those of `page` (unfinished in Postgres) it does not know, and settles those it dead-lettered. */
  private async repair(page: UnfinishedTask[], result: ReconcileResult): Promise<void> {
    const { pool, queue } = this.deps;
    if (page.length === 0) return;
    const entries = await queue.indexed(page);
    const deadLettered = page.flatMap((t, i) => {
      const after = entries[i]?.deadLetteredAfter;
      return after == null ? [] : [{ task: t, attempts: after }];
    });
    // Redis used up an older budget of a task an operator retried since (the retry's push to Redis
    // failed): it runs again. Otherwise Redis's verdict stands.
    const stale = (d: { task: UnfinishedTask; attempts: number }) => d.attempts < maxAttempts(d.task.max_retries, d.task.retry_base);
    await this.recordUnrecordedDeaths(deadLettered.filter((d) => !stale(d)), result);
    await this.requeue(deadLettered.filter(stale).map((d) => d.task), result, true);
    // undefined: the task's partition did not answer (a master failing over or stalled). Not
    // unknown (queueing it would hold it twice): it is left for the next pass.
    this.defer(page.filter((_, i) => entries[i] === undefined).map((t) => t.id));
    const unknown = page.filter((_, i) => entries[i] === null);
    if (unknown.length === 0) return;
    // A cancel that met an attempt whose outcome (a retry) Postgres had written but Redis had not
    // yet applied answered 202 and left the task waiting; the attempt's end then found the
    // tombstone and forgot it. Queueing it again would run a cancelled task: it ends now.
    const cancelled = await finishCancelled(pool, unknown.filter((t) => t.status !== 'running' && t.cancel_requested).map((t) => t.id), CANCEL_REASON);
    result.cancelled += cancelled.size;
    const missing = unknown.filter((t) => !cancelled.has(t.id));

    const running = missing.filter((t) => t.status === 'running' && t.lease_token !== null);
    const expired = await recordExpired(
      pool,
      running.map((t) => ({ id: t.id, token: t.lease_token!, attempt: t.attempts, dead: t.attempts >= maxAttempts(t.max_retries, t.retry_base) })),
      'lease vanished from Redis',
    );
    result.vanishedLeases += expired.size;
    this.countLost(running.filter((t) => expired.has(t.id)).map((t) => ({ task: t, status: expired.get(t.id)! })));
    // A lost attempt is a failure, as the reaper's are: steps whose workflow stopped (a step of it
    // failed while they ran) are stopped before they are queued again, or a worker could start one.
    // (Steps cancelled just above stop theirs too.)
    await this.stopWorkflows(unknown.filter((t) => t.step_key !== null && (expired.has(t.id) || cancelled.has(t.id))).map((t) => t.id));
    // A running task whose fenced write did not apply got an outcome meanwhile: leave it alone; one
    // it ended (dead, or cancelled as an operator asked) stays out of Redis.
    const toIndex = missing.filter((t) => (t.status === 'running' ? expired.get(t.id) === 'queued' : true));
    await this.requeue(toIndex, result);
  }

  /** Stops the workflows of `stepIds` where the policy says so; a miss is the workers' sweep's to repair. */
  private async stopWorkflows(stepIds: string[]): Promise<void> {
    if (stepIds.length === 0) return;
    await stopAfterFailedSteps(this.deps, stepIds).catch((err: unknown) =>
      this.log.warn({ err, taskIds: stepIds.slice(0, 10) }, 'stopping the workflows of steps whose leases vanished failed; the sweep will stop them'),
    );
  }

  private defer(ids: string[]): void {
    for (const id of ids) {
      if (this.deferred.size >= MAX_DEFERRED) return;
      this.deferred.add(id);
    }
  }

  /**
   * Pushes `tasks` with their payloads, read in chunks of at most payloadBytes (sizes first), each
   * pushed before the next is read, so a pass holds one chunk of payloads at a time. A task that
   * finished since its page was read is left out.
   */
  private async requeue(tasks: UnfinishedTask[], result: ReconcileResult, replace = false): Promise<void> {
    const { pool, queue } = this.deps;
    if (tasks.length === 0) return;
    const sizes = await payloadSizes(pool, tasks.map((t) => t.id));
    const present = tasks.filter((t) => sizes.has(t.id));
    for (const chunk of chunksWithin(present, (t) => sizes.get(t.id)!, this.opts.payloadBytes ?? DEFAULT_PAYLOAD_BYTES)) {
      // Another push (a replay's, a late one) may index a task after it was found missing, and a
      // worker run and end it before this push: the push holds share locks on the rows still
      // unfinished (pushUnderShareLocks). A push past the timeout fails the page, walked again.
      const go = await pushUnderShareLocks(
        pool,
        'reconciler push',
        async (tx) => {
          const texts = await payloadTexts(tx.client, chunk.map((t) => t.id), true);
          const items = chunk.flatMap((t) => {
            const payloadJson = texts.get(t.id);
            return payloadJson === undefined ? [] : [indexItem(t, payloadJson)];
          });
          if (!(await this.stillLeading())) return false;
          if (items.length === 0) return true;
          // `replace`: what Redis holds of them is out of date (requeue replaces it; enqueue keeps it).
          const pushed = await tx.bounded(queue.pushAnswering ? queue.pushAnswering(items, replace) : replace ? queue.requeue(items) : queue.enqueue(items));
          result.requeued += pushed.filter(Boolean).length;
          // A partition that did not answer the push: checked again next pass.
          this.defer(items.filter((_, i) => pushed[i] === undefined).map((it) => it.id));
          return true;
        },
        PUSH_TIMEOUT_MS,
      );
      if (!go) return;
    }
  }

  /**
   * Tasks Postgres shows waiting while Redis has used up their attempts and dead-lettered them: the
   * last attempt's lease was lost and its expiry never reached Postgres (a reaper that died between
   * its two steps did this once). Nothing would ever run them again, so the lost attempt is recorded
   * now and the task ends dead, as Redis decided. The write is fenced: a task that got an outcome
   * since this page was read is left alone.
   */
  private async recordUnrecordedDeaths(dead: { task: UnfinishedTask; attempts: number }[], result: ReconcileResult): Promise<void> {
    const lost = dead.map(({ task: t, attempts }) =>
      // Postgres saw that attempt start: record its own lease as the lost one.
      t.status === 'running' && t.lease_token !== null && t.attempts >= attempts
        ? { id: t.id, token: t.lease_token, attempt: t.attempts, dead: true }
        : { id: t.id, token: `reconciler~${randomUUID()}`, attempt: attempts, dead: true },
    );
    const recorded = await recordExpired(this.deps.pool, lost, 'lease lost and its expiry never recorded');
    result.vanishedLeases += recorded.size;
    this.countLost(dead.filter((d) => recorded.has(d.task.id)).map((d) => ({ task: d.task, status: recorded.get(d.task.id)! })));
  }

  /**
   * Lost attempts this pass recorded in Postgres count as the reaper counts them: a failed attempt,
   * and a final failure when Postgres ended the task dead; one whose task an operator's cancel
   * ended counts as a cancelled run. Only the fenced write that applied counts, so an attempt is
   * counted once whoever records it; without this, the failures of a Redis loss were missing.
   */
  private countLost(lost: { task: UnfinishedTask; status: ExpiredStatus }[]): void {
    const { metrics, typeLabel } = this.deps;
    for (const { task: t, status } of lost) {
      if (status === 'cancelled') {
        metrics.cancelledRuns.inc();
        continue;
      }
      const labels = { type: typeLabel ? typeLabel(t.type) : 'unknown', priority: t.priority };
      metrics.failed.inc(labels);
      if (status === 'dead') metrics.dead.inc(labels);
    }
  }

  override async stop(): Promise<void> {
    await super.stop();
    await goodbye(this.deps.queue.unlock('reconciler', this.owner));
  }
}

/** Consecutive runs of `items` whose sizes add up to at most `budget`; an item larger than the budget forms a run alone. */
export function chunksWithin<T>(items: T[], size: (item: T) => number, budget: number): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (chunk.length > 0 && bytes + n > budget) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += n;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

function indexItem(t: UnfinishedTask, payloadJson: string): EnqueueItem {
  return queueItemOf(t, payloadJson);
}
