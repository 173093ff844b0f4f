/** Deletes expired idempotency keys in small batches so the table stays small without a long delete. */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import { PeriodicService } from '../core/service';
import { pruneIdempotencyKeys } from '../core/tasks/task-store';

export class KeyPruner extends PeriodicService<{ deleted: number }> {
  constructor(
    private readonly pool: Pool,
    intervalMs: number,
    log: Logger,
  ) {
    super('idempotency-key-pruner', intervalMs, log);
  }

  async runOnce(): Promise<{ deleted: number }> {
    const batch = 1000;
    let deleted = 0;
    // Bounded per pass, so a huge expired backlog is worked off over several passes.
    while (deleted < 100 * batch) {
      const n = await pruneIdempotencyKeys(this.pool, batch);
      deleted += n;
      if (n < batch) break;
    }
    return { deleted };
  }
}
