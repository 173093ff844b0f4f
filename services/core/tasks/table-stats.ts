/** Planner statistics of the project's tables: which are stale, and refreshing them. */
import type { Pool } from 'pg';

/** The tables whose size swings with the load; the hot statements join them by key. */
const HOT_TABLES = ['tasks', 'task_runs', 'idempotency_keys'] as const;

export interface StaleRule {
  /** Rows changed since the last ANALYZE before a table counts as stale… */
  minChanges: number;
  /** …plus this fraction of its rows (autovacuum's default scale factor is 0.1 too). */
  fraction: number;
}

/**
 * ANALYZEs the hot tables that changed by more than the rule allows since their last ANALYZE
 * (by anyone: autovacuum counts). SKIP_LOCKED: when another worker or autovacuum is analyzing a
 * table right now, it is skipped rather than waited for. Tables this user does not own cannot
 * be analyzed by it; they are returned in `notOwner`.
 */
export async function analyzeStaleTables(pool: Pool, rule: StaleRule = { minChanges: 500, fraction: 0.1 }): Promise<{ analyzed: string[]; notOwner: string[] }> {
  const { rows } = await pool.query<{ name: string; owned: boolean }>(
    `SELECT c.relname AS name, pg_has_role(c.relowner, 'USAGE') AS owned
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
        AND s.n_mod_since_analyze > $2 + $3 * greatest(c.reltuples, 0)`,
    [HOT_TABLES, rule.minChanges, rule.fraction],
  );
  // Names come from the fixed list above (matched through to_regclass), never from input.
  const analyzed = rows.filter((r) => r.owned && (HOT_TABLES as readonly string[]).includes(r.name)).map((r) => r.name);
  if (analyzed.length > 0) await pool.query(`ANALYZE (SKIP_LOCKED) ${analyzed.join(', ')}`);
  return { analyzed, notOwner: rows.filter((r) => !r.owned).map((r) => r.name) };
}
