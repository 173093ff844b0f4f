/**
 * The schema a process finds at start-up. A build needs the schema its newest migration makes; an
 * older one (the migrator has not run) would fail its statements at run time, or, where a
 * migration replaced a function, run the old one. A newer one is fine: migrations keep the
 * previous release working, which a rolling upgrade needs.
 */
import type { Pool } from 'pg';

/** The highest migration recorded in `schema_migrations`; 0 when there is none; null when Postgres could not be asked. */
export async function schemaVersion(pool: Pool): Promise<number | null> {
  try {
    const { rows } = await pool.query<{ v: number }>('SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations');
    return rows[0]!.v;
  } catch (err) {
    // 42P01 undefined_table: nothing was ever migrated here.
    if ((err as { code?: unknown }).code === '42P01') return 0;
    return null;
  }
}

/**
 * Throws when the database's schema is older than `needed`; false when it could not be read
 * (Postgres away at start-up: the services start anyway and wait for it, as they do for Redis).
 */
export async function assertSchema(pool: Pool, needed: number): Promise<boolean> {
  const found = await schemaVersion(pool);
  if (found === null) return false;
  if (found < needed) {
    throw new Error(`the database schema is at version ${found}, older than this build's ${needed}: run the migrator first (npm run migrate, or the release's migrator Job)`);
  }
  return true;
}
