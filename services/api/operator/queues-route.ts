/**
 * GET /queues: the caller's tenant's queues per priority (queued, scheduled, retrying, running,
 * dead, cancelled, the oldest waiting task's age, and the last minute's counts) and the live
 * workers with their slots. Redis answers for what waits and what went through; Postgres for what
 * is scheduled (delayed, not yet due), retrying, running longer than START_RECORD_DELAY_MS, dead or
 * cancelled. An answer is reused for QUEUES_CACHE_MS per tenant (one read in flight each), so
 * dashboards polling it cost the databases the same however many watch.
 */
import type { Pool } from 'pg';
import type { TaskQueue } from '../../core/queue/queue';
import { PRIORITIES } from '../../core/tasks/priority';
import { tenantTaskCounts } from '../../core/tasks/queue-counts';

export class QueuesView {
  private readonly cache = new Map<string, { at: number; answer: Promise<Record<string, unknown>>; pending: boolean }>();

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue },
    private readonly cacheMs: number,
    /** Tenants whose answers are kept at once (the oldest goes first). */
    private readonly maxTenants = 1000,
  ) {}

  get(tenant: string): Promise<Record<string, unknown>> {
    const now = Date.now();
    const hit = this.cache.get(tenant);
    // A read still in flight is shared however long it takes: a slow one (Postgres loaded, a
    // tenant with many dead tasks to count) is not joined by another every cacheMs.
    if (hit && (hit.pending || now - hit.at < this.cacheMs)) return hit.answer;
    const entry = { at: now, answer: this.read(tenant), pending: true };
    this.cache.delete(tenant);
    this.cache.set(tenant, entry);
    if (this.cache.size > this.maxTenants) this.cache.delete(this.cache.keys().next().value!);
    // A failed read is not kept.
    entry.answer.then(
      () => (entry.pending = false),
      () => this.cache.get(tenant) === entry && this.cache.delete(tenant),
    );
    return entry.answer;
  }

  private async read(tenant: string): Promise<Record<string, unknown>> {
    const [redis, counts] = await Promise.all([this.deps.queue.overview(tenant), tenantTaskCounts(this.deps.pool, tenant)]);
    const priorities: Record<string, unknown> = {};
    for (const p of PRIORITIES) {
      const r = redis.priorities[p];
      const c = counts[p];
      priorities[p] = {
        queued: r.ready,
        scheduled: c.scheduled,
        retrying: c.retrying,
        running: c.running,
        dead: c.dead,
        cancelled: c.cancelled,
        oldest_waiting_seconds: Math.round(r.oldestWaitingSeconds * 1000) / 1000,
        last_minute: r.lastMinute,
      };
    }
    return {
      tenant,
      priorities,
      running_now: redis.running,
      workers: redis.workers && redis.workers.map((w) => ({ id: w.id, slots: w.slots })),
      as_of: new Date().toISOString(),
    };
  }
}
