/**
 * Retention: deletes final tasks (with their runs) some time after they finished, per final status
 * (RETENTION_SUCCEEDED_MS, RETENTION_DEAD_MS, RETENTION_CANCELLED_MS; 0 keeps them forever). One
 * copy runs at a time across all workers (a Redis lock with a TTL, renewed after every batch).
 *
 * A pass deletes in batches, each one short statement (services/core/retention): finished
 * workflows first (each whole, with its steps), then the statuses of other tasks in turn, with a
 * pause between batches; each is done for the pass when a batch comes back short. A pass stops
 * after `maxBatches` and the next one follows after a pause, so a large backlog (retention
 * switched on over months of tasks) is worked off steadily, never in one long transaction. Dead
 * tasks deleted are forgotten in Redis (their dead-letter entries) before their batch commits, so
 * a failed purge deletes nothing; over partitions, only the tasks of those that answered are
 * deleted, and the rest are tried again at a later pass. One info line per pass
 * that deleted something; nothing otherwise. See docs/retention.md.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue, TaskRef } from '../core/queue/queue';
import { deleteFinishedWindow, deleteLocked, FinalStatus, lockFinishedWindow, oldestFinishedAges, RangeCursor, RetentionPolicy } from '../core/retention/retention-store';
import { deleteLockedWorkflows, lockFinishedWorkflows, workflowAges } from '../core/retention/workflow-retention-store';
import { inTransaction } from '../core/db/transaction';
import { PeriodicService } from '../core/service';
import { FINAL_STATUSES } from '../core/tasks/priority';
import { goodbye } from './goodbye';

export interface RetentionOptions {
  intervalMs: number;
  policy: RetentionPolicy;
  /** Tasks deleted per batch (one statement, one transaction); a workflow bigger than this goes whole in one. */
  batch: number;
  /** Pause between two batches of a pass, in milliseconds. */
  pauseMs: number;
  /** Most batches in one pass (default 1000); the next pass follows after a pause. */
  maxBatches?: number;
  /**
   * How often a status's walk through its due range starts again from the oldest task, at the
   * earliest (default an hour): between, each pass reads on from where the last one ended.
   */
  rescanMs?: number;
}

export interface RetentionResult {
  /** Whether this copy held the lock (false: another worker sweeps, or retention is off). */
  leader: boolean;
  /** Tasks deleted, by their status, steps of the workflows deleted included. */
  deleted: Record<FinalStatus, number>;
  /** Finished workflows deleted, each whole. */
  workflows: number;
  /** Batches (statements, transactions) run, including the last short one of each status. */
  batches: number;
  /** The pass stopped at maxBatches (or lost the lock, or the worker is stopping) with work left. */
  cut: boolean;
  /** Dead tasks Redis still held (dead-letter entries) and forgot. */
  purged: number;
  /**
   * Tasks due but left in place (and their workflows) because their partition of Redis failed or
   * did not answer in time: a later pass tries them again.
   */
  unanswered: number;
}

const LOCK = 'retention';
const RESCAN_MS = 3_600_000;

/**
 * A status's walk through its due range, oldest first, a window of `batch` tasks per batch. Kept
 * tasks (a workflow's steps until the workflow goes whole, keyed tasks while the key lives) are
 * passed over, not read again by every batch and pass: they can sit ahead of the due ones by the
 * million (a failed workflow's succeeded steps, kept 30 days against 7). A walk that reached the
 * range's end goes on from there at the next pass (the tasks due since); once `rescanMs` has
 * passed it starts again from the oldest, for what became deletable behind it (a key that
 * expired, a row that was locked).
 */
interface Walk {
  after: RangeCursor | null;
  startedAt: number;
  /** Its last window was short: it is at the range's end (and may start again). */
  atEnd: boolean;
  /**
   * Where it first passed over due tasks whose partition of Redis did not answer (`from`: the
   * cursor before that window): once at the end, the next pass goes on from there, to try them again.
   */
  missed?: { from: RangeCursor | null };
}

/** What one batch deletes: finished workflows, whole, or other final tasks of one status. */
type Phase = 'workflows' | FinalStatus;

export class RetentionSweeper extends PeriodicService<RetentionResult> {
  private readonly owner = randomUUID();
  private readonly phases: Phase[];
  private readonly walks = new Map<FinalStatus, Walk>();
  /** This pass: tenants whose partition of Redis did not answer a purge (not asked again until the next pass). */
  private unansweredTenants = new Set<string>();
  /** This pass: workflows left in place for that reason (passed over by its later batches). */
  private passedOver = new Set<string>();
  private stopping = false;

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics },
    private readonly opts: RetentionOptions,
    log: Logger,
  ) {
    super('retention', opts.intervalMs, log);
    if (!(opts.batch >= 1)) throw new RangeError(`batch must be at least 1, got ${opts.batch}`);
    if (!(opts.pauseMs >= 0)) throw new RangeError(`pauseMs must not be negative, got ${opts.pauseMs}`);
    // Workflows first, until none is due: each batch of a status reads past the steps of stored
    // workflows (it leaves them to the workflows' batches), so due ones are better gone by then.
    const workflows = Object.values(workflowAges(opts.policy)).some((ms) => ms > 0);
    this.phases = [...(workflows ? (['workflows'] as const) : []), ...FINAL_STATUSES.filter((s) => opts.policy[s] > 0)];
  }

  /** Whether any final status has a retention (otherwise the worker need not start the sweep). */
  get enabled(): boolean {
    return this.phases.length > 0;
  }

  /** The lock outlives a batch and its pause many times over; it is renewed after each. */
  private get lockTtlMs(): number {
    return Math.max(this.opts.intervalMs * 3, 60_000) + this.opts.pauseMs;
  }

  async runOnce(): Promise<RetentionResult> {
    const deleted = Object.fromEntries(FINAL_STATUSES.map((s) => [s, 0])) as Record<FinalStatus, number>;
    const result: RetentionResult = { leader: false, deleted, workflows: 0, batches: 0, cut: false, purged: 0, unanswered: 0 };
    if (!this.enabled) return result;
    if (!(await this.deps.queue.lock(LOCK, this.owner, this.lockTtlMs))) {
      // Another worker sweeps: only its gauge is current.
      this.deps.metrics.oldestFinished.reset();
      return result;
    }
    result.leader = true;
    const started = performance.now();
    for (const [status, walk] of this.walks) {
      if (!walk.atEnd) continue;
      if (started - walk.startedAt >= (this.opts.rescanMs ?? RESCAN_MS)) this.walks.delete(status);
      else if (walk.missed) this.walks.set(status, { after: walk.missed.from, startedAt: walk.startedAt, atEnd: false });
    }
    this.unansweredTenants = new Set();
    this.passedOver = new Set();
    const maxBatches = this.opts.maxBatches ?? 1000;
    const pending = [...this.phases];
    let next = 0;
    let lost = false;
    while (pending.length > 0) {
      const k = next % pending.length;
      const more = await this.batch(pending[k]!, result);
      result.batches++;
      // A short batch: nothing more of this kind to delete now. Otherwise the next status's turn
      // (workflows keep theirs).
      if (!more) pending.splice(k, 1);
      else if (pending[k] !== 'workflows') next = k + 1;
      if (pending.length === 0) break;
      if (result.batches >= maxBatches || this.stopping) {
        result.cut = true;
        break;
      }
      if (!(await this.deps.queue.lock(LOCK, this.owner, this.lockTtlMs))) {
        // Taken by another worker after this one stalled past the TTL: that one carries on.
        this.log.warn({ batches: result.batches }, 'retention lock lost during a pass; stopping it');
        result.cut = true;
        lost = true;
        break;
      }
      await sleep(this.opts.pauseMs);
    }
    if (!lost) await this.observeOldest();
    const total = deleted.succeeded + deleted.dead + deleted.cancelled;
    if (total > 0) this.log.info({ deleted, workflows: result.workflows, batches: result.batches, purged: result.purged, ms: Math.round(performance.now() - started), more: result.cut }, 'retention deleted finished tasks');
    if (result.unanswered > 0) this.log.warn({ count: result.unanswered, tenants: [...this.unansweredTenants].slice(0, 10) }, 'due tasks kept: their partition of Redis did not answer the purge of their dead-letter entries; a later pass tries them again');
    // Work left: the next pass follows after a pause rather than a whole interval.
    if (result.cut && !lost && !this.stopping) this.runWithin(this.opts.pauseMs);
    return result;
  }

  /** Runs one batch of `phase`, counting what it deleted; whether it left more to delete now. */
  private async batch(phase: Phase, result: RetentionResult): Promise<boolean> {
    // Succeeded tasks left Redis when they ended: one statement. Otherwise Redis still holds dead
    // ones (their dead-letter entries, see lua/purge.lua; and a cancelled one dead-lettered before
    // its cancel), forgotten before the delete commits: a purge that fails rolls the batch back and
    // a later pass deletes both. Purged after the commit, a failed purge left the entries for good.
    if (phase === 'succeeded') {
      const { tasks, walk } = await this.window(this.deps.pool, phase);
      this.walks.set(phase, walk);
      this.count(phase, tasks, result);
      return !walk.atEnd;
    }
    let done: Batch;
    try {
      done = await inTransaction(this.deps.pool, (client) => (phase === 'workflows' ? this.workflowsBatch(client) : this.statusBatch(client, phase)));
    } catch (err) {
      if (!(err instanceof PurgeFailed)) throw err;
      // Nothing deleted (the walk stays where it was): the next pass tries these again.
      this.log.warn({ err: err.cause, phase, count: err.ids.length, taskIds: err.ids.slice(0, 10) }, 'dead tasks not removed from Redis dead-letter lists; their batch was rolled back');
      return false;
    }
    result.purged += done.purged;
    result.unanswered += done.unanswered;
    for (const status of FINAL_STATUSES) this.count(status, done.tasks.filter((t) => t.status === status), result);
    if (phase === 'workflows') {
      result.workflows += done.workflows;
      // Nothing deleted nor passed over (the due ones held by other transactions): the next pass tries them again.
      return done.more && (done.workflows > 0 || done.unanswered > 0);
    }
    this.walks.set(phase, done.walk!);
    return !done.walk!.atEnd;
  }

  /**
   * The next window of a status's walk, locked; Redis forgets its tasks, and those of the
   * partitions that answered are deleted. The others stay in Postgres as they are (the walk
   * comes back for them: Walk.missed), so one partition down holds up no other's tenants.
   */
  private async statusBatch(client: PoolClient, status: FinalStatus): Promise<Batch> {
    const walk = this.walks.get(status) ?? { after: null, startedAt: performance.now(), atEnd: false };
    const b = await lockFinishedWindow(client, status, this.opts.policy, this.opts.batch, walk.after);
    const { purged, unanswered } = await this.purge(b.tasks);
    const left = new Set(unanswered.map((t) => t.id));
    const gone = await deleteLocked(client, status, this.opts.policy, b.tasks.filter((t) => !left.has(t.id)));
    const missed = walk.missed ?? (left.size > 0 ? { from: walk.after } : undefined);
    return {
      tasks: gone.map((t) => ({ ...t, status })),
      workflows: 0,
      more: false,
      purged,
      unanswered: left.size,
      walk: { ...walk, after: b.last ?? walk.after, atEnd: b.seen < this.opts.batch, ...(missed ? { missed } : {}) },
    };
  }

  /** The next due workflows, locked whole; those with a step whose partition did not answer the purge stay (passed over for the rest of the pass). */
  private async workflowsBatch(client: PoolClient): Promise<Batch> {
    const b = await lockFinishedWorkflows(client, this.opts.policy, this.opts.batch, [...this.passedOver]);
    const { purged, unanswered } = await this.purge(b.tasks.filter((t) => t.status !== 'succeeded'));
    const workflowOf = new Map(b.tasks.map((t) => [t.id, t.workflow_id]));
    const left = new Set(unanswered.map((t) => workflowOf.get(t.id)!));
    for (const id of left) this.passedOver.add(id);
    const gone = await deleteLockedWorkflows(client, b.workflows.filter((w) => !left.has(w.id)).map((w) => w.id));
    return { ...gone, more: b.more, purged, unanswered: b.tasks.filter((t) => left.has(t.workflow_id)).length };
  }

  /** The next window of `status`'s walk (see Walk): the tasks it deleted, and the walk moved on (kept once its transaction commits). */
  private async window(db: Pool | PoolClient, status: FinalStatus): Promise<{ tasks: TaskRef[]; walk: Walk }> {
    const walk = this.walks.get(status) ?? { after: null, startedAt: performance.now(), atEnd: false };
    const b = await deleteFinishedWindow(db, status, this.opts.policy, this.opts.batch, walk.after);
    return { tasks: b.tasks, walk: { ...walk, after: b.last ?? walk.after, atEnd: b.seen < this.opts.batch } };
  }

  private count(status: FinalStatus, ids: TaskRef[], result: RetentionResult): void {
    if (ids.length === 0) return;
    result.deleted[status] += ids.length;
    this.deps.metrics.deleted.inc({ status }, ids.length);
  }

  /**
   * Redis forgets `tasks` (their dead-letter entries): how many it held, and those it could not be
   * asked about (their partition failed or did not answer in time, now or earlier in this pass).
   * Throws PurgeFailed when no partition answered (one Redis, or all of them down).
   */
  private async purge(tasks: TaskRef[]): Promise<{ purged: number; unanswered: TaskRef[] }> {
    const known = tasks.filter((t) => this.unansweredTenants.has(t.tenant));
    const ask = tasks.filter((t) => !this.unansweredTenants.has(t.tenant)).map(({ id, tenant }) => ({ id, tenant }));
    if (ask.length === 0) return { purged: 0, unanswered: known };
    try {
      const queue = this.deps.queue;
      const { held, unanswered } = queue.purgeAnswering ? await queue.purgeAnswering(ask) : { held: await queue.purge(ask), unanswered: [] };
      for (const t of unanswered) this.unansweredTenants.add(t.tenant);
      const left = new Set(unanswered.map((t) => t.id));
      return { purged: held, unanswered: [...known, ...tasks.filter((t) => left.has(t.id))] };
    } catch (err) {
      throw new PurgeFailed(err, ask);
    }
  }

  private async observeOldest(): Promise<void> {
    const ages = await oldestFinishedAges(this.deps.pool);
    for (const status of FINAL_STATUSES) this.deps.metrics.oldestFinished.set({ status }, Math.max(0, ages[status] ?? 0));
  }

  override async stop(): Promise<void> {
    this.stopping = true;
    await super.stop();
    await goodbye(this.deps.queue.unlock(LOCK, this.owner));
  }
}

/** What one batch of a phase did (its transaction committed). */
interface Batch {
  tasks: (TaskRef & { status: FinalStatus })[];
  workflows: number;
  more: boolean;
  purged: number;
  unanswered: number;
  walk?: Walk;
}

/** The Redis side of a batch failed: its Postgres side is rolled back. */
class PurgeFailed extends Error {
  constructor(
    override readonly cause: unknown,
    readonly ids: TaskRef[],
  ) {
    super('purge failed');
  }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
