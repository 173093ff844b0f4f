/**
 * Plans of the hot statements against a queue table whose statistics lag behind it, and the
 * refresher that keeps them current. Real Postgres: the point is what its planner does.
 */
import type { QueryConfig } from 'pg';
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { analyzeStaleTables } from '../../services/core/tasks/table-stats';
import { Stack, createStack } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

async function insertTasks(n: number, status: string, on: Stack = stack): Promise<void> {
  await on.pool.query(
    `INSERT INTO tasks (id, type, priority, max_retries, status)
     SELECT gen_random_uuid(), 'noop', 'default', 3, $2::task_status FROM generate_series(1, $1)`,
    [n, status],
  );
}

/** The text of the outcome statement, captured from a real call. */
async function outcomeStatement(): Promise<string> {
  let text = '';
  const recording = {
    query: (config: QueryConfig) => {
      text = config.text;
      return stack.pool.query(config);
    },
  };
  const { rows } = await stack.pool.query('SELECT id FROM tasks LIMIT 1');
  await recordOutcomes(recording as never, [{ id: rows[0].id, token: 'w~t', attempt: 1, workerId: 'w', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0 }]);
  return text;
}

it('the outcome write finds tasks by primary key even when the statistics say no task is unfinished', async () => {
  // The state between bursts: ANALYZE saw only finished tasks; then a burst queued many.
  await insertTasks(3000, 'succeeded');
  // Every task with its run, none of them expired (as after a drain).
  await stack.pool.query(
    `INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, outcome)
     SELECT id, 1, 'w', 'w~' || id, 'succeeded' FROM tasks`,
  );
  await stack.pool.query('ANALYZE tasks, task_runs');
  await stack.pool.query(`UPDATE tasks SET status = 'queued'`);
  const text = await outcomeStatement();
  const client = await stack.pool.connect();
  try {
    await client.query('BEGIN');
    // Named statements run on a generic plan after five executions; ask for it directly.
    await client.query('SET LOCAL plan_cache_mode = force_generic_plan');
    await client.query(`PREPARE outcome_plan(uuid[], text[], float8[], text[], bool[], int[], int[], text[], float8[], bool[], jsonb[], text[], text[]) AS ${text}`);
    const { rows } = await client.query(`EXPLAIN EXECUTE outcome_plan('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')`);
    const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
    // Scanning the unfinished-tasks index would read every queued task for each write.
    expect(plan).not.toMatch(/tasks_tenant_unfinished_idx/);
    expect(plan).toMatch(/Index Scan using tasks_pkey on tasks/);
    // Runs are found by their lease token, never by reading all of task_runs.
    expect(plan).not.toMatch(/Seq Scan on task_runs/);
    // The runs are built from the input alone (applied or not is a hashed set lookup): a join to the
    // `applied` CTE ran as a nested loop reading all of it once per outcome, quadratic in the batch
    // (the 100k drain's 500-outcome batches: 32 ms a statement instead of 9 ms).
    const runsPart = plan.slice(plan.indexOf('CTE runs'), plan.indexOf('CTE late'));
    expect(runsPart).toMatch(/CTE Scan on input/);
    expect(runsPart).not.toMatch(/Nested Loop|Join/);
    // Likewise the expired runs of superseded leases: their filters are hashed lookups, and the
    // tasks are read by primary key once for the whole statement (the `cur` CTE).
    const lostPart = plan.slice(plan.indexOf('CTE lost'), plan.indexOf('CTE existing'));
    expect(lostPart).not.toMatch(/Nested Loop|Join/);
    expect(plan.match(/Index Scan using tasks_pkey on tasks/g)).toHaveLength(2);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
});

it('every connection of the services\' pools runs the hot statements on generic plans', async () => {
  // The first query of a new connection, and one of several at once, see the setting already.
  // It is set before the connection is handed out: pg warns (and pg 9 will fail) when queries
  // overlap on one client. Jest does not see process warnings, so a plain node process checks.
  const script = `
    const { createPgPool } = require('./dist/services/core/db/postgres');
    const pool = createPgPool(process.env.DB_URL, 3, 'test-plan-cache');
    Promise.all(Array.from({ length: 6 }, () => pool.query('SHOW plan_cache_mode')))
      .then((rs) => { console.log(JSON.stringify(rs.map((r) => r.rows[0].plan_cache_mode))); return pool.end(); });`;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '../..'), env: { ...process.env, DB_URL: stack.dbUrl }, encoding: 'utf8' });
  expect(run.status).toBe(0);
  expect(JSON.parse(run.stdout)).toEqual(Array(6).fill('force_generic_plan'));
  expect(run.stderr).not.toMatch(/Warning/);
});

it('analyzes a hot table once its size moved by more than the rule allows; updates alone do not count', async () => {
  // A database of its own: counters of the other test's writes may still be on their way.
  const own = await createStack();
  try {
    await countsAnalyses(own);
  } finally {
    await own.close();
  }
});

async function countsAnalyses(db: Stack): Promise<void> {
  // Backends publish their table counters when idle, at most once a second: wait for them.
  const waitForCounters = async (column: 'n_live_tup' | 'n_mod_since_analyze', atLeast: number) => {
    for (let i = 0; i < 50; i++) {
      const { rows } = await db.pool.query(`SELECT ${column}::int AS n FROM pg_stat_user_tables WHERE relname = 'tasks'`);
      if (rows[0].n >= atLeast) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`table counters never showed ${column} ≥ ${atLeast}`);
  };
  const rule = { minChanges: 1000, fraction: 0.5 };
  // Autovacuum's own ANALYZE would change what the checks below look at.
  await db.pool.query('ALTER TABLE tasks SET (autovacuum_enabled = false)');
  await insertTasks(400, 'queued', db);
  await waitForCounters('n_live_tup', 400);
  expect((await analyzeStaleTables(db.pool, rule)).analyzed).toEqual([]);
  await insertTasks(2000, 'queued', db);
  await waitForCounters('n_live_tup', 2400);
  expect((await analyzeStaleTables(db.pool, rule)).analyzed).toEqual(['tasks']);
  const { rows } = await db.pool.query(`SELECT reltuples::int AS n FROM pg_class WHERE relname = 'tasks'`);
  expect(rows[0].n).toBeGreaterThanOrEqual(2400);
  // Only the key column was analyzed, and the modifications still count for autovacuum's own
  // full ANALYZE (a full one would have reset them).
  const stats = await db.pool.query(`SELECT attname FROM pg_stats WHERE tablename = 'tasks' ORDER BY attname`);
  expect(stats.rows.map((r) => r.attname)).toEqual(['id']);
  await waitForCounters('n_mod_since_analyze', 2400);
  expect((await analyzeStaleTables(db.pool, rule)).analyzed).toEqual([]);
  // Churn without growth (every task's status changing, twice) leaves the plans' basis as it was.
  await db.pool.query(`UPDATE tasks SET status = 'running'`);
  await db.pool.query(`UPDATE tasks SET status = 'succeeded'`);
  await waitForCounters('n_mod_since_analyze', 4800);
  expect((await analyzeStaleTables(db.pool, rule)).analyzed).toEqual([]);
  // Growing by more than half of what the planner counted does.
  await insertTasks(2300, 'queued', db);
  await waitForCounters('n_live_tup', 4700);
  expect((await analyzeStaleTables(db.pool, rule)).analyzed).toEqual(['tasks']);
}
