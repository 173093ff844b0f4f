/**
 * Reclaims expired leases (Redis decides atomically: back to the queue, or to the dead-letter list
 * when the lost attempt was the last), then records each lost attempt in Postgres, fenced by the
 * expired token so a late outcome written first is never overwritten. Workflow steps with attempts
 * left are held until then, and queued again only if their workflow has not stopped. A lease whose
 * expiry Postgres did not take goes where Postgres has the task instead.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { WorkerMetrics } from '../core/observability/metrics';
import type { Reaped, SettleItem, TaskQueue } from '../core/queue/queue';
import { PeriodicService } from '../core/service';
import { recordExpired, TaskState, taskStates } from '../core/tasks/attempt-store';
import { stopHoldingLeases } from '../core/workflows/stop-on-failure';

export interface ReapResult {
  reaped: number;
  requeued: number;
  dead: number;
}

export class Reaper extends PeriodicService<ReapResult> {
  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; metrics: WorkerMetrics; typeLabel: (type: string) => string },
    private readonly batchSize: number,
    intervalMs: number,
    log: Logger,
    /** How long a task out of attempts stays leased while its lost attempt is recorded. */
    private readonly holdMs = 30_000,
  ) {
    super('reaper', intervalMs, log);
  }

  async runOnce(): Promise<ReapResult> {
    const reaped = await this.deps.queue.reap(this.batchSize, this.holdMs);
    if (reaped.length === 0) return { reaped: 0, requeued: 0, dead: 0 };
    const applied = await recordExpired(
      this.deps.pool,
      reaped.map((r) => ({ id: r.id, token: r.expiredToken, attempt: r.attempt, dead: r.destination === 'dead' })),
    );
    const counted = reaped.filter((r) => applied.has(r.id));
    // An operator asked to cancel these while they ran, so Postgres ended them `cancelled`: final,
    // and not a failure. Redis queued one with attempts left already (it knows of the cancel only
    // by a tombstone, which lapses after 10 minutes, sooner than a long lease can run out): it is
    // forgotten below, not left for a worker to run.
    const cancelled = new Set(counted.filter((r) => applied.get(r.id) === 'cancelled').map((r) => r.id));
    const dead = counted.filter((r) => applied.get(r.id) === 'dead').length;
    // Counted as soon as Postgres has them: Redis reclaimed these leases already, so a pass that
    // fails further on (a partition past its wait in the settle) leaves no later pass to count them.
    const m = this.deps.metrics;
    m.reaped.inc(reaped.length);
    // A lost attempt is a failed attempt; the last one is also a final failure. One an operator's
    // cancel ended counts as a cancelled run, as when its worker writes it.
    for (const r of counted) {
      if (cancelled.has(r.id)) {
        m.cancelledRuns.inc();
        continue;
      }
      const labels = { type: this.deps.typeLabel(r.type), priority: r.priority };
      m.failed.inc(labels);
      if (applied.get(r.id) === 'dead') m.dead.inc(labels);
    }
    // A lost attempt is a failure: a step that lost one stops its workflow where the policy says so.
    // Steps with attempts left are still held, so one whose workflow stopped meanwhile is stopped
    // before a worker can start it again (the sweep repairs a miss).
    const held = reaped.filter((r) => r.destination === 'held');
    const steps = [...new Set([...counted.map((r) => r.id), ...held.map((r) => r.id)])];
    // Should the stop fail (null), the held steps stay held for one more interval, and the next pass tries again.
    const stopped =
      steps.length === 0
        ? new Set<string>()
        : await stopHoldingLeases({ ...this.deps, log: this.log }, steps, new Map(held.map((r) => [r.id, r.expiredToken])), Math.min(this.intervalMs, this.holdMs));
    // Out of attempts, cancelled (or stopped): ended only now that Postgres has the lost attempt. A
    // reaper that dies before this leaves them leased until holdMs passes, and the next pass takes them again.
    const ending = reaped.filter((r) => (applied.has(r.id) && (r.destination === 'dead' || (r.destination === 'held' && cancelled.has(r.id)))) || stopped?.has(r.id));
    await this.deps.queue.finish(
      ending.map((r) => ({ id: r.id, token: r.expiredToken, priority: r.priority, outcome: applied.get(r.id) === 'dead' ? ('dead' as const) : ('succeeded' as const), settleAttempts: 0 })),
    );
    // Queued again (the lost attempt counted) only where Postgres took that attempt just now, so the
    // step waits there, and its workflow did not stop.
    const requeue = stopped ? held.filter((r) => applied.has(r.id) && !cancelled.has(r.id) && !stopped.has(r.id)) : [];
    await this.deps.queue.release(requeue.map((r) => ({ id: r.id, token: r.expiredToken, priority: r.priority, attemptCounted: true })));
    this.log.info({ reaped: reaped.length, dead }, 'reclaimed expired leases');
    // Steps held while their stop failed wait for the next pass, whatever Postgres has them as.
    // Cancelled ones Redis queued again go where Postgres has them: forgotten.
    await this.settleWithPostgres(
      reaped.filter((r) => (!applied.has(r.id) && !stopped?.has(r.id) && (stopped !== null || r.destination !== 'held')) || (r.destination === 'queued' && cancelled.has(r.id))),
    );
    return { reaped: reaped.length, requeued: counted.filter((r) => !cancelled.has(r.id) && (r.destination === 'queued' || requeue.includes(r))).length, dead };
  }

  /**
   * A reclaimed lease whose expiry Postgres did not take: the attempt was already counted there
   * (its outcome, or an earlier expiry, got there first), or the task is final. Redis's own
   * decision (its attempt counter, a burial, a hold) is then replaced by what Postgres says, and
   * a lease still held (dead or held) ends in the same script, fenced by its expired token.
   */
  private async settleWithPostgres(items: Reaped[]): Promise<void> {
    if (items.length === 0) return;
    const pg = await taskStates(this.deps.pool, items.map((r) => r.id));
    const settle: SettleItem[] = [];
    for (const r of items) {
      const t = pg.get(r.id);
      // No longer in Postgres (deleted by hand, or by retention behind a long lease): Redis forgets
      // it, ending a lease still held (dead or held; else every pass would take it again), and
      // taking it off the ready list reap.lua put one with attempts left on (ending only the
      // lease, as before, left that one to run again, a lease at a time, until out of attempts).
      if (!t) settle.push({ id: r.id, tenant: r.tenant, priority: r.priority, state: 'succeeded', attempts: 0, token: r.expiredToken });
      else settle.push({ id: r.id, tenant: t.tenant, priority: r.priority, ...placement(t), attempts: t.attempts, token: r.expiredToken });
    }
    await this.deps.queue.settle(settle);
  }
}

/**
 * Where Redis holds a task Postgres has as `t`: a retry (or a delayed task) waits in the retry set
 * until its run_after; one running under a lease Redis no longer has is queued (its loss is the
 * reconciler's to record); any other status is settled as it is (see SettleItem).
 */
function placement(t: TaskState): Pick<SettleItem, 'state' | 'dueAtMs'> {
  switch (t.status) {
    case 'retrying':
    case 'scheduled':
      return { state: 'retrying', dueAtMs: t.runAfterMs ?? 0 };
    case 'running':
      return { state: 'queued' };
    default:
      return { state: t.status };
  }
}
