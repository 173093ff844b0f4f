/** Planner statistics of the project's tables: which are stale, and refreshing them. */
import type { Pool } from 'pg';

/**
 * The tables whose size swings with the load, and the key columns the hot statements find their
 * rows by (the outcome and start writes join tasks on id and look runs up by lease_token; a
 * task's runs are read by task_id; replays look up key).
 */
const HOT_TABLES: Record<string, readonly string[]> = {
  tasks: ['id'],
  task_runs: ['task_id', 'lease_token'],
  idempotency_keys: ['key'],
};

/** The statistics target of the refresher's ANALYZE (rows sampled: 300 times this). */
const REFRESH_STATISTICS_TARGET = 10;

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
 * this user may not maintain (neither owner nor, on Postgres 17+, granted MAINTAIN) cannot be
 * analyzed by it; they are returned in `notOwner`.
 *
 * Only the key columns are analyzed. That is all a cached plan of a key-driven statement rests on
 * (with the row and page counts, which any ANALYZE refreshes), and it is a quarter of the work:
 * a full ANALYZE of a 50k-row `tasks` or `task_runs` took 120–145 ms of Postgres CPU (it sorts a
 * 30,000-row sample of every column, payloads and errors included), the key columns 30–37 ms, and
 * during a burst it runs every few seconds as the tables grow. A column-list ANALYZE also leaves the
 * table's count of modifications alone, so autovacuum's own full ANALYZE still comes on its
 * schedule, for the statistics of the other columns (status and updated_at, for the reconciler).
 */
export async function analyzeStaleTables(pool: Pool, rule: StaleRule = { minChanges: 1000, fraction: 0.5 }): Promise<{ analyzed: string[]; notOwner: string[] }> {
  // ANALYZE needs ownership (pg_has_role: the user is the owner or one of its members) or, from
  // Postgres 17, the MAINTAIN privilege, which migration 0006 grants to task_scheduler_app there.
  // The CASE keeps older servers from seeing a privilege name they do not know.
  const { rows } = await pool.query<{ name: string; owned: boolean }>(
    `SELECT c.relname AS name,
            pg_has_role(c.relowner, 'USAGE')
              OR CASE WHEN current_setting('server_version_num')::int >= 170000 THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END AS owned
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
        AND abs(s.n_live_tup - greatest(c.reltuples, 0)) > $2 + $3 * greatest(c.reltuples, 0)`,
    [Object.keys(HOT_TABLES), rule.minChanges, rule.fraction],
  );
  // Names come from the fixed list above (matched through to_regclass), never from input.
  const analyzed = rows.filter((r) => r.owned && Object.hasOwn(HOT_TABLES, r.name)).map((r) => r.name);
  if (analyzed.length > 0) {
    const client = await pool.connect();
    try {
      // A sample of 3,000 rows instead of 30,000 (statistics target 10 rather than 100): the
      // plans this refresh is for rest on the row and page counts, and on the key columns being
      // (nearly) unique, which the small sample shows as well. The full sample cost the 100k
      // drain 0.5 s of Postgres CPU (three refreshes while task_runs grew; tasks (id) and
      // task_runs (task_id, lease_token) at 100k rows each: 207 ms, against 13-15 ms).
      // Autovacuum's own ANALYZE still samples at the configured target.
      await client.query('BEGIN');
      await client.query(`SET LOCAL default_statistics_target = ${REFRESH_STATISTICS_TARGET}`);
      await client.query(`ANALYZE (SKIP_LOCKED) ${analyzed.map((t) => `${t} (${HOT_TABLES[t]!.join(', ')})`).join(', ')}`);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  return { analyzed, notOwner: rows.filter((r) => !r.owned).map((r) => r.name) };
}
