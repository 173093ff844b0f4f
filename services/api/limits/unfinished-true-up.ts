/**
 * Keeps the unfinished-task counts of admission.ts close to Postgres: one API replica at a time
 * (a Redis leader lock) counts unfinished tasks per tenant every interval, while any tenant has a
 * cap (TENANT_MAX_UNFINISHED or its own --max-unfinished). The count walks the unfinished-tasks
 * index, so its cost grows with the backlog; the pass waits at least five times its own duration.
 * The lock is held through that wait (and, taken, for as long as the last pass and its wait took),
 * so the wait holds for every replica: another one taking a lapsed lock would count meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { Logger } from '../../core/observability/logger';
import { PeriodicService } from '../../core/service';
import type { TenantAdmission } from '../../core/tenancy/admission';
import { anyUnfinishedCap, countUnfinished } from '../../core/tenancy/tenant-store';

export interface LeaderLock {
  lock(name: string, owner: string, ttlMs: number): Promise<boolean>;
}

export class UnfinishedTrueUp extends PeriodicService<{ tenants: number } | null> {
  private readonly owner = `api-${randomBytes(6).toString('hex')}`;
  private pausedUntil = 0;
  /** How long the last pass took (its count); the lock is taken to cover a pass as long and its wait. */
  private lastTookMs = 0;

  constructor(
    private readonly deps: { pool: Pool; admission: TenantAdmission; lock: LeaderLock; envCap: number },
    intervalMs: number,
    log: Logger,
  ) {
    super('unfinished-true-up', intervalMs, log);
  }

  async runOnce(): Promise<{ tenants: number } | null> {
    if (performance.now() < this.pausedUntil) return null;
    if (!(await this.deps.lock.lock('unfinished-true-up', this.owner, this.intervalMs * 3 + this.lastTookMs * 5))) return null;
    if (this.deps.envCap === 0 && !(await anyUnfinishedCap(this.deps.pool))) return null;
    const t0 = performance.now();
    const before = await this.deps.admission.snapshot();
    const counts = await countUnfinished(this.deps.pool);
    // Admissions in flight at the read may commit after the count: they are part of the base (see admission.ts).
    for (const [tenant, n] of before.inFlight) counts.set(tenant, (counts.get(tenant) ?? 0) + n);
    await this.deps.admission.trueUp(counts, before.admitted, before.partitions);
    const took = Math.ceil(performance.now() - t0);
    this.lastTookMs = took;
    if (took * 5 > this.intervalMs) {
      // On the monotonic clock: a wall clock set back must not stretch the wait.
      this.pausedUntil = performance.now() + took * 4;
      // Kept (or taken again, when it lapsed during the pass and no other replica holds it) for the wait.
      await this.deps.lock.lock('unfinished-true-up', this.owner, took * 4 + this.intervalMs * 3);
    }
    return { tenants: counts.size };
  }
}
