/** One Postgres transaction on a connection of its own. */
import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` between `begin` (BEGIN, or BEGIN with an isolation level) and COMMIT, and rolls back
 * if it throws. A connection whose transaction failed is closed rather than reused (it may be in
 * any state); work that returns normally gives it back to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    await client.query(begin);
    const out = await work(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    failed = err as Error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(failed);
  }
}

/** A read-only transaction on one snapshot: reads that must agree with each other. */
export const READ_SNAPSHOT = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

/**
 * Runs `transaction` again (up to `attempts` times in all) when Postgres aborted it to break a
 * deadlock (SQLSTATE 40P01): the other transaction goes on, and a second run then finds its rows
 * free. Only for work whose effects outside that transaction can be repeated.
 */
export async function retryingDeadlocks<T>(transaction: () => Promise<T>, attempts = 5): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await transaction();
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code !== '40P01' || n >= attempts) throw err;
      // A short random pause, growing: under contention a run at once can meet the next writer.
      await new Promise((r) => setTimeout(r, Math.random() * 10 * n));
    }
  }
}
