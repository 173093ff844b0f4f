/** Planner statistics of the project's tables: which are stale, and refreshing them. */
import type { Pool } from 'pg';

/** The tables whose size swings with the load; the hot statements join them by key. */
const HOT_TABLES = ['tasks', 'task_runs', 'idempotency_keys'] as const;

export interface StaleRule {
  /** Rows a table grew or shrank by since the planner last counted them, before it is stale… */
  minChanges: number;
  /** …plus this fraction of the rows the planner counted. */
  fraction: number;
}

/**
 * ANALYZEs the hot tables whose size moved away from what the planner last counted (pg_class
 * .reltuples, set by anyone's ANALYZE or VACUUM) by more than the rule allows. Size, not churn:
 * what turns a cached plan bad is a table that outgrew it, while a queue table's updates (each
 * task's status changes several times) change nothing the key-driven hot statements depend on,
 * and counting them made a burst ANALYZE `tasks` every few hundred tasks. SKIP_LOCKED: a table
 * another worker or autovacuum is analyzing right now is skipped rather than waited for. Tables
 * this user does not own cannot be analyzed by it; they are returned in `notOwner`.
 */
export async function analyzeStaleTables(pool: Pool, rule: StaleRule = { minChanges: 1000, fraction: 0.5 }): Promise<{ analyzed: string[]; notOwner: string[] }> {
  const { rows } = await pool.query<{ name: string; owned: boolean }>(
    `SELECT c.relname AS name, pg_has_role(c.relowner, 'USAGE') AS owned
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
        AND abs(s.n_live_tup - greatest(c.reltuples, 0)) > $2 + $3 * greatest(c.reltuples, 0)`,
    [HOT_TABLES, rule.minChanges, rule.fraction],
  );
  // Names come from the fixed list above (matched through to_regclass), never from input.
  const analyzed = rows.filter((r) => r.owned && (HOT_TABLES as readonly string[]).includes(r.name)).map((r) => r.name);
  if (analyzed.length > 0) await pool.query(`ANALYZE (SKIP_LOCKED) ${analyzed.join(', ')}`);
  return { analyzed, notOwner: rows.filter((r) => !r.owned).map((r) => r.name) };
}
