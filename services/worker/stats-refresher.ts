/**
 * Keeps the planner's statistics of the hot tables current, sooner than autovacuum would.
 *
 * The worker's and API's hot statements are named prepared statements: Postgres plans them once
 * and reuses that generic plan until the table's statistics change. A queue table changes size
 * fast (a new installation goes from empty to thousands of rows within seconds of its first
 * burst), while autovacuum looks only once a minute (autovacuum_naptime). In between, a plan made
 * for "a tiny table" seq-scans the tasks table on every outcome write: measured in the 10k burst,
 * Postgres spent 4.8 s of CPU instead of 2.1 s. ANALYZE is cheap (it samples at most
 * 300 × default_statistics_target rows), and it invalidates the cached plans, so they are re-made
 * with the real size.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import { PeriodicService } from '../core/service';
import { analyzeStaleTables } from '../core/tasks/table-stats';

export class StatsRefresher extends PeriodicService<{ analyzed: string[] }> {
  private warned = false;

  constructor(
    private readonly pool: Pool,
    intervalMs: number,
    log: Logger,
  ) {
    super('stats-refresher', intervalMs, log);
  }

  async runOnce(): Promise<{ analyzed: string[] }> {
    const { analyzed, notOwner } = await analyzeStaleTables(this.pool);
    if (analyzed.length > 0 && this.log.isLevelEnabled('debug')) this.log.debug({ tables: analyzed }, 'refreshed planner statistics');
    if (notOwner.length > 0 && !this.warned) {
      this.warned = true;
      // Expected when the worker logs in with DML rights only (docs/security.md): what is lost is
      // the quick re-plan after a table outgrows its cached plans, not correctness.
      this.log.warn(
        { tables: notOwner },
        'cannot ANALYZE these tables (the database user neither owns them nor has MAINTAIN): autovacuum alone refreshes their statistics, up to autovacuum_naptime (1 min) after they grow, and until then hot statements may keep plans made for smaller tables; on Postgres 17+ migration 0006 grants MAINTAIN to task_scheduler_app (or GRANT pg_maintain / MAINTAIN to the worker user)',
      );
    }
    return { analyzed };
  }
}
