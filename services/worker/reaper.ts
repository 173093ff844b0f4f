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
import type { FinishItem, Reaped, SettleItem, TaskQueue } from '../core/queue/queue';
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
    // Dead as Postgres has it: a last attempt whose task an operator cancelled while it ran ends cancelled.
    const endedDead = (r: Reaped) => applied.get(r.id) === 'dead';
    const dead = counted.filter(endedDead).length;
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
    // Out of attempts (or stopped): ended only now that Postgres has the lost attempt. A reaper that
    // dies before this leaves them leased until holdMs passes, and the next pass takes them again.
    // One Postgres ended cancelled is forgotten, as a cancelled run's (not dead-lettered).
    const ending = reaped.filter((r) => (r.destination === 'dead' && applied.has(r.id)) || stopped?.has(r.id));
    await this.deps.queue.finish(
      ending.map((r) => ({ id: r.id, token: r.expiredToken, priority: r.priority, outcome: r.destination === 'dead' && endedDead(r) ? ('dead' as const) : ('succeeded' as const), settleAttempts: 0 })),
    );
    // Queued again (the lost attempt counted) only where Postgres took that attempt just now, so the
    // step waits there, and its workflow did not stop.
    const requeue = stopped ? held.filter((r) => applied.has(r.id) && !stopped.has(r.id)) : [];
    await this.deps.queue.release(requeue.map((r) => ({ id: r.id, token: r.expiredToken, priority: r.priority, attemptCounted: true })));
    // Steps held while their stop failed wait for the next pass, whatever Postgres has them as.
    await this.settleWithPostgres(reaped.filter((r) => !applied.has(r.id) && !stopped?.has(r.id) && (stopped !== null || r.destination !== 'held')));
    const m = this.deps.metrics;
    m.reaped.inc(reaped.length);
    // A lost attempt is a failed attempt; the last one is also a final failure.
    for (const r of counted) {
      const labels = { type: this.deps.typeLabel(r.type), priority: r.priority };
      m.failed.inc(labels);
      if (endedDead(r)) m.dead.inc(labels);
    }
    this.log.info({ reaped: reaped.length, dead }, 'reclaimed expired leases');
    return { reaped: reaped.length, requeued: counted.filter((r) => r.destination === 'queued' || requeue.includes(r)).length, dead };
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
    // No longer in Postgres: a lease still held ends (else every pass would take it again), and Redis forgets the task.
    const gone: FinishItem[] = [];
    for (const r of items) {
      const t = pg.get(r.id);
      if (!t) gone.push({ id: r.id, token: r.expiredToken, priority: r.priority, outcome: 'succeeded', settleAttempts: 0 });
      else settle.push({ id: r.id, tenant: t.tenant, priority: r.priority, ...placement(t), attempts: t.attempts, token: r.expiredToken });
    }
    await this.deps.queue.settle(settle);
    await this.deps.queue.finish(gone);
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
