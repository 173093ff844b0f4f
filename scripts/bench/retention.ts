/**
 * `npx tsx scripts/bench/retention.ts`: retention by batch deletes against retention by dropping
 * time partitions, on a private Postgres (profile `bench`, scripts/local-services.sh), in a fresh
 * database migrated to the latest schema. Figures go to stdout; docs/retention.md keeps them.
 *
 *   RETENTION_BENCH_N        finished tasks built (default 400,000), spread over 40 days of
 *                            creation: 90 % succeeded (one run), 8 % dead (three runs),
 *                            2 % cancelled (one run); payloads of ~80 bytes
 *   RETENTION_BENCH_LOAD_S   seconds of each load measurement (default 5)
 *   RETENTION_BENCH_KEYS     live idempotency keys, for the foreign-key figure (default 50,000)
 *   BENCH_KEEP_SERVICES=1    leave the private Postgres and Redis running
 *
 * Measured:
 *   1. bytes per task row and per run row, heap and indexes (pg_total_relation_size);
 *   2. the "insert + update" load alone (4 clients, each: insert 50 tasks, then end them as
 *      succeeded and insert their runs, the worker's outcome write in small), with and without
 *      migration 0011's index tasks_final_finished_idx (what it costs the hot path);
 *   3. batch deletes alone (services/core/retention, 1,000 a statement, no pause): tasks/s and
 *      per-batch latency; one batch with migration 0002's foreign key from idempotency_keys put
 *      back (what 0011 removed);
 *   4. the load while batch deletes run (RETENTION_PAUSE_MS between batches, then none), against 2;
 *   5. dead tuples the deletes left, and a VACUUM of them;
 *   6. finding old succeeded tasks by walking tasks_tenant_finished_idx (created_at) instead, once
 *      only dead and cancelled tasks inside their longer retention are left there;
 *   7. the same tasks in a table partitioned by day of created_at: the load against it (updates by
 *      id alone, and by id and created_at), a lookup by id, DETACH + DROP of a day's partition under
 *      load, and the primary key on id that partitioning does not allow.
 */
import { Client, Pool } from 'pg';
import { migrate } from '../../services/migrator/migrate';
import { configWith } from '../../services/core/config/config';
import { deleteFinishedBatch } from '../../services/core/retention/retention-store';
import { uuidv7 } from '../../services/core/tasks/uuid';
import { startLocalServices, stopBenchServices } from '../local-services';
import { cpuSince, withChildren } from './cpu';

const N = Number(process.env.RETENTION_BENCH_N ?? 400_000);
const LOAD_S = Number(process.env.RETENTION_BENCH_LOAD_S ?? 5);
const KEYS = Number(process.env.RETENTION_BENCH_KEYS ?? 50_000);
const DAYS = 40;
const DAY_MS = 86_400_000;
/** The default settings (RETENTION_*_MS). */
const POLICY = { succeeded: 7 * DAY_MS, dead: 30 * DAY_MS, cancelled: 30 * DAY_MS };
const CLIENTS = 4;
const LOAD_BATCH = 50;
const BATCH = 1000;
const PAUSE_MS = configWith({}).RETENTION_PAUSE_MS;

let adminUrl = '';
let pgPid = 0;

function startServices(): void {
  const env = startLocalServices('bench');
  adminUrl = env.PG_ADMIN_URL!;
  pgPid = Number(env.PG_PID);
}

async function admin<T>(f: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

async function freshDatabase(): Promise<{ name: string; url: string }> {
  const name = `retention_bench_${Date.now()}`;
  await admin(async (c) => {
    const old = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'retention\\_bench\\_%'`);
    for (const { datname } of old.rows) await c.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
    // The private instance runs with synchronous_commit=off for fast tests; measure the durable setting.
    await c.query(`ALTER DATABASE ${name} SET synchronous_commit = on`);
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await migrate({ databaseUrl: url.toString() });
  return { name, url: url.toString() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** A uuidv7 from a timestamp, in SQL: the bulk rows get time-ordered ids like real ones. */
const UUIDV7_SQL = `CREATE FUNCTION bench_uuidv7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3)
          || '8' || substr(md5(random()::text), 1, 15))::uuid $$`;

/** N finished tasks over DAYS days of creation, oldest first, with their runs, in chunks. */
async function build(pool: Pool, table = 'tasks'): Promise<void> {
  const chunk = 100_000;
  for (let from = 0; from < N; from += chunk) {
    const to = Math.min(N, from + chunk) - 1;
    await pool.query(
      `INSERT INTO ${table} (id, type, priority, payload, status, attempts, max_retries, idempotency_key, last_error, created_at, updated_at, first_started_at, finished_at, tenant)
       SELECT bench_uuidv7(c), 'email', 'default',
              jsonb_build_object('to', 'user' || g || '@example.com', 'template', 'welcome', 'n', g),
              s.status::task_status, s.attempts, 2, NULL, s.err, c, c + interval '2 seconds', c + interval '1 second', c + interval '2 seconds', 'default'
         FROM generate_series($1::int, $2::int) g
        CROSS JOIN LATERAL (SELECT now() - $3 * interval '1 millisecond' + g * ($3::float8 / $4) * interval '1 millisecond' AS c) t
        CROSS JOIN LATERAL (SELECT CASE WHEN g % 50 = 7 THEN 'cancelled' WHEN g % 25 IN (3, 11) THEN 'dead' ELSE 'succeeded' END AS status) s0
        CROSS JOIN LATERAL (SELECT s0.status, CASE s0.status WHEN 'dead' THEN 3 ELSE 1 END AS attempts,
                                   CASE s0.status WHEN 'dead' THEN 'smtp: 451 try again later' WHEN 'cancelled' THEN 'cancelled by an operator' END AS err) s`,
      [from, to, DAYS * DAY_MS, N],
    );
  }
  if (table !== 'tasks') return;
  await pool.query(
    `INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error, duration_ms)
     SELECT t.id, a, 'worker-7f9c-12', 'abcdefghijklmnop~' || t.id::text || ':' || a, t.created_at, t.finished_at,
            CASE WHEN t.status = 'succeeded' THEN 'succeeded' WHEN t.status = 'cancelled' THEN 'cancelled' ELSE 'failed' END,
            CASE WHEN t.status <> 'succeeded' THEN t.last_error END, 12.5
       FROM tasks t CROSS JOIN LATERAL generate_series(1, t.attempts) a`,
  );
  // Live idempotency keys of the youngest tasks (the key pruner deletes expired ones).
  await pool.query(
    `WITH young AS (SELECT id, tenant FROM tasks ORDER BY created_at DESC LIMIT $1)
     INSERT INTO idempotency_keys (tenant, key, task_id, request_hash, expires_at)
     SELECT tenant, 'order-' || id, id, md5(id::text) || md5(id::text), now() + interval '1 day' FROM young`,
    [KEYS],
  );
  await pool.query(`UPDATE tasks t SET idempotency_key = k.key FROM idempotency_keys k WHERE k.task_id = t.id`);
}

interface LoadResult {
  tasksPerS: number;
  /** CPU of every Postgres process (the postmaster's children) per 1,000 tasks: steadier than the rate on a shared machine. */
  pgCpuMsPer1k: number;
  /** WAL written per task (pg_current_wal_lsn). */
  walPerTask: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * CLIENTS clients for `seconds`, each looping: insert LOAD_BATCH tasks (uuidv7 ids), then end them
 * as succeeded and insert their runs in one statement. Latency is per loop (both statements).
 */
async function load(pool: Pool, seconds: number, table = 'tasks', byCreatedAt = false, stop: () => boolean = () => false): Promise<LoadResult> {
  const deadline = performance.now() + seconds * 1000;
  const lat: number[] = [];
  let done = 0;
  const client = async () => {
    while (performance.now() < deadline && !stop()) {
      const t0 = performance.now();
      const ids = Array.from({ length: LOAD_BATCH }, () => uuidv7());
      const { rows } = await pool.query<{ created_at: Date }>(
        `INSERT INTO ${table} (id, type, priority, payload, max_retries, tenant)
         SELECT id, 'email', 'default', jsonb_build_object('to', 'someone@example.com', 'template', 'welcome', 'n', 1), 2, 'default'
           FROM unnest($1::uuid[]) AS id
         RETURNING created_at`,
        [ids],
      );
      const prune = byCreatedAt ? 'AND t.created_at = $2' : '';
      await pool.query(
        `WITH done AS (
           UPDATE ${table} t SET status = 'succeeded', attempts = 1, first_started_at = now(), finished_at = now(), updated_at = now(), lease_token = NULL
            WHERE t.id = ANY($1::uuid[]) ${prune}
           RETURNING t.id
         )
         INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, duration_ms)
         SELECT id, 1, 'bench', 'bench~' || id::text, now(), now(), 'succeeded', 1 FROM done`,
        byCreatedAt ? [ids, rows[0]!.created_at] : [ids],
      );
      lat.push(performance.now() - t0);
      done += LOAD_BATCH;
    }
  };
  const lsn0 = (await pool.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  const cpu = cpuSince({ postgres: () => withChildren(pgPid) });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const s = (performance.now() - t0) / 1000;
  const pgCpu = cpu().postgres!;
  const wal = Number((await pool.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS b', [lsn0])).rows[0]!.b);
  return { tasksPerS: done / s, pgCpuMsPer1k: (pgCpu * 1e6) / done, walPerTask: wal / done, p50: pct(lat, 50), p99: pct(lat, 99), max: Math.max(...lat) };
}

const loadLine = (what: string, r: LoadResult) =>
  say(
    `  ${what.padEnd(52)} ${fmt(r.tasksPerS).padStart(7)} tasks/s, Postgres ${fmt(r.pgCpuMsPer1k).padStart(4)} CPU ms/1k tasks, WAL ${fmt(r.walPerTask).padStart(5)} B/task; per loop p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms, max ${fmt(r.max, 1)} ms`,
  );

const UPDATE_N = 20_000;

/**
 * What the index costs a task's final update, without the noise of a concurrent load: one
 * statement ends UPDATE_N queued tasks as succeeded, in a transaction rolled back, with the index
 * and with it dropped (inside the same transaction), alternately; the best of four each.
 */
async function finalUpdateCost(pool: Pool): Promise<{ withUs: number; withoutUs: number }> {
  const ids = Array.from({ length: UPDATE_N }, () => uuidv7());
  await pool.query(
    `INSERT INTO tasks (id, type, priority, payload, max_retries, tenant)
     SELECT id, 'email', 'default', '{"n": 1}', 2, 'default' FROM unnest($1::uuid[]) AS id`,
    [ids],
  );
  const best = { with: Infinity, without: Infinity };
  const c = await pool.connect();
  try {
    for (let round = 0; round < 4; round++) {
      for (const variant of ['with', 'without'] as const) {
        await c.query('BEGIN');
        if (variant === 'without') await c.query('DROP INDEX tasks_final_finished_idx');
        const t0 = performance.now();
        await c.query(`UPDATE tasks SET status = 'succeeded', attempts = 1, finished_at = now(), updated_at = now() WHERE id = ANY($1::uuid[])`, [ids]);
        best[variant] = Math.min(best[variant], performance.now() - t0);
        await c.query('ROLLBACK');
      }
    }
  } finally {
    c.release();
  }
  await pool.query('DELETE FROM tasks WHERE id = ANY($1::uuid[])', [ids]);
  return { withUs: (best.with * 1000) / UPDATE_N, withoutUs: (best.without * 1000) / UPDATE_N };
}

/** Microseconds a read of one task by id takes inside Postgres (a PL/pgSQL loop: no round trips). */
async function lookupUs(pool: Pool, table: string, ids: string[]): Promise<number> {
  const sql = `DO $$ DECLARE r record; i uuid; BEGIN
    FOREACH i IN ARRAY ARRAY[${ids.map((id) => `'${id}'`).join(',')}]::uuid[] LOOP SELECT * INTO r FROM ${table} WHERE id = i; END LOOP; END $$`;
  await pool.query(sql);
  const t0 = performance.now();
  await pool.query(sql);
  return ((performance.now() - t0) * 1000) / ids.length;
}

async function count(pool: Pool, sql: string): Promise<number> {
  return Number((await pool.query<{ n: string }>(sql)).rows[0]!.n);
}

interface DeleteRun {
  tasks: number;
  seconds: number;
  batches: number[];
}

/**
 * Batch deletes of succeeded tasks older than 7 days (each with its one run) until `stop()` or a
 * short batch; `pauseMs` between batches.
 */
async function deleteLoop(pool: Pool, pauseMs: number, stop: () => boolean = () => false): Promise<DeleteRun> {
  const lat: number[] = [];
  let tasks = 0;
  const t0 = performance.now();
  while (!stop()) {
    const b0 = performance.now();
    const ids = await deleteFinishedBatch(pool, 'succeeded', POLICY, BATCH);
    lat.push(performance.now() - b0);
    tasks += ids.length;
    if (ids.length < BATCH) break;
    if (pauseMs > 0) await sleep(pauseMs);
  }
  return { tasks, seconds: (performance.now() - t0) / 1000, batches: lat };
}

const deleteLine = (what: string, d: DeleteRun) =>
  say(
    `  ${what.padEnd(58)} ${fmt(d.tasks / d.seconds).padStart(7)} tasks/s (and as many runs)   (${fmt(d.tasks)} tasks in ${fmt(d.seconds, 1)} s; per batch of ${BATCH} p50 ${fmt(pct(d.batches, 50), 1)} ms, p99 ${fmt(pct(d.batches, 99), 1)} ms)`,
  );

async function sizes(pool: Pool, table: string, rows: number): Promise<{ heap: number; indexes: number; total: number }> {
  const { rows: r } = await pool.query<{ heap: string; idx: string; total: string }>(
    `SELECT pg_relation_size($1) + pg_relation_size(coalesce((SELECT reltoastrelid FROM pg_class WHERE oid = $1::regclass), 0)) AS heap,
            pg_indexes_size($1) AS idx, pg_total_relation_size($1) AS total`,
    [table],
  );
  return { heap: Number(r[0]!.heap) / rows, indexes: Number(r[0]!.idx) / rows, total: Number(r[0]!.total) / rows };
}

/** The same tasks in a table partitioned by day of created_at, with the same partial indexes. */
async function buildPartitioned(pool: Pool): Promise<string[]> {
  await pool.query(`CREATE TABLE tasks_part (LIKE tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)`);
  const { rows } = await pool.query<{ day: string; from: string; to: string }>(
    `SELECT to_char(d, 'YYYYMMDD') AS day, to_char(d, 'YYYY-MM-DD') AS from, to_char(d + interval '1 day', 'YYYY-MM-DD') AS to
       FROM generate_series(date_trunc('day', now() - $1 * interval '1 day'), date_trunc('day', now() + interval '2 days'), interval '1 day') d`,
    [DAYS + 1],
  );
  for (const r of rows) await pool.query(`CREATE TABLE tasks_p${r.day} PARTITION OF tasks_part FOR VALUES FROM ('${r.from}') TO ('${r.to}')`);
  const days = rows.map((r) => r.day);
  await pool.query(`ALTER TABLE tasks_part ADD PRIMARY KEY (id, created_at)`);
  await pool.query(`CREATE INDEX ON tasks_part (tenant, created_at, id) WHERE status IN ('queued', 'running', 'retrying')`);
  await pool.query(`CREATE INDEX ON tasks_part (tenant, created_at, id) WHERE status IN ('succeeded', 'dead', 'cancelled')`);
  await pool.query(`CREATE INDEX ON tasks_part (tenant, created_at DESC, id DESC) WHERE status IN ('dead', 'cancelled')`);
  await pool.query(`INSERT INTO tasks_part SELECT * FROM tasks`);
  await pool.query('VACUUM ANALYZE tasks_part');
  return days;
}

async function main(): Promise<void> {
  startServices();
  const db = await freshDatabase();
  const pool = new Pool({ connectionString: db.url, max: CLIENTS + 4 });
  try {
    await pool.query(UUIDV7_SQL);
    say(`Retention benchmark: ${fmt(N)} finished tasks over ${DAYS} days, Postgres ${(await pool.query('SHOW server_version')).rows[0].server_version}, synchronous_commit=on`);
    let t0 = performance.now();
    await build(pool);
    await pool.query('VACUUM ANALYZE tasks');
    await pool.query('VACUUM ANALYZE task_runs');
    await pool.query('VACUUM ANALYZE idempotency_keys');
    const runs = await count(pool, 'SELECT count(*) AS n FROM task_runs');
    say(`  built in ${fmt((performance.now() - t0) / 1000, 1)} s: ${fmt(N)} tasks, ${fmt(runs)} runs, ${fmt(KEYS)} live idempotency keys`);

    say('\n1. Bytes per row (heap with TOAST, indexes, total; after VACUUM)');
    for (const [table, n] of [['tasks', N], ['task_runs', runs], ['idempotency_keys', KEYS]] as const) {
      const s = await sizes(pool, table, n);
      say(`  ${table.padEnd(18)} heap ${fmt(s.heap).padStart(4)} B   indexes ${fmt(s.indexes).padStart(4)} B   total ${fmt(s.total).padStart(4)} B`);
    }
    const idx = await pool.query<{ name: string; bytes: string }>(
      `SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS bytes FROM pg_index WHERE indrelid IN ('tasks'::regclass, 'task_runs'::regclass) ORDER BY 1`,
    );
    for (const r of idx.rows) say(`    ${r.name.padEnd(30)} ${fmt(Number(r.bytes) / (r.name.startsWith('task_runs') ? runs : N), 1)} B per row of its table`);

    t0 = performance.now();
    const days = await buildPartitioned(pool);
    const partS = (performance.now() - t0) / 1000;

    await pool.query('VACUUM ANALYZE tasks_part');
    await pool.query('CHECKPOINT');

    say(`\n2. The insert + update load alone (${CLIENTS} clients × ${LOAD_BATCH} tasks: insert, then end succeeded + insert the run)`);
    await load(pool, 2); // warm-up
    const withRuns: LoadResult[] = [];
    const withoutRuns: LoadResult[] = [];
    for (let round = 0; round < 2; round++) {
      const w = await load(pool, LOAD_S);
      loadLine('with tasks_final_finished_idx (migration 0011)', w);
      withRuns.push(w);
      await pool.query('DROP INDEX tasks_final_finished_idx');
      const wo = await load(pool, LOAD_S);
      loadLine('without it (schema 0010)', wo);
      withoutRuns.push(wo);
      await pool.query(`CREATE INDEX tasks_final_finished_idx ON tasks (status, finished_at) WHERE status IN ('succeeded', 'dead', 'cancelled')`);
    }
    const mean = (rs: LoadResult[]) => rs.reduce((a, r) => a + r.tasksPerS, 0) / rs.length;
    const withIdx = mean(withRuns);
    const meanOf = (rs: LoadResult[], f: (r: LoadResult) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    const perEntry = await finalUpdateCost(pool);
    say(
      `  ending ${fmt(UPDATE_N)} queued tasks as succeeded in one statement (best of 4, rolled back): ${fmt(perEntry.withUs, 2)} µs a task with the index, ${fmt(perEntry.withoutUs, 2)} µs without: +${fmt(perEntry.withUs - perEntry.withoutUs, 2)} µs, against the load's ${fmt(meanOf(withoutRuns, (r) => r.pgCpuMsPer1k), 0)} µs of Postgres CPU per task`,
    );
    const cpuWith = meanOf(withRuns, (r) => r.pgCpuMsPer1k);
    const cpuWithout = meanOf(withoutRuns, (r) => r.pgCpuMsPer1k);
    const walWith = meanOf(withRuns, (r) => r.walPerTask);
    const walWithout = meanOf(withoutRuns, (r) => r.walPerTask);
    say(
      `  with the index (means of the interleaved runs): rate ${fmt((100 * (withIdx - mean(withoutRuns))) / mean(withoutRuns), 1)} %, Postgres CPU per task ${fmt((100 * (cpuWith - cpuWithout)) / cpuWithout, 1)} %, WAL per task ${fmt((100 * (walWith - walWithout)) / walWithout, 1)} %`,
    );
    await pool.query('VACUUM ANALYZE tasks');

    const oldSucceeded = await count(pool, `SELECT count(*) AS n FROM tasks WHERE status = 'succeeded' AND finished_at < now() - interval '7 days'`);
    say(`\n3. Batch deletes alone (${BATCH} a statement, no pause; ${fmt(oldSucceeded)} succeeded tasks are older than 7 days)`);
    // The foreign key 0011 removed, put back unchecked, for one batch (rolled back).
    const fk = await pool.connect();
    try {
      await fk.query('BEGIN');
      await fk.query(`ALTER TABLE idempotency_keys ADD CONSTRAINT bench_fk FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE NOT VALID`);
      const f0 = performance.now();
      const { rowCount } = await fk.query(`DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status = 'succeeded' AND finished_at < now() - interval '7 days' ORDER BY finished_at LIMIT ${BATCH})`);
      const withFk = performance.now() - f0;
      await fk.query('ROLLBACK');
      await fk.query('BEGIN');
      const g0 = performance.now();
      await fk.query(`DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status = 'succeeded' AND finished_at < now() - interval '7 days' ORDER BY finished_at LIMIT ${BATCH})`);
      const withoutFk = performance.now() - g0;
      await fk.query('ROLLBACK');
      say(`  one batch of ${rowCount} with the foreign key from idempotency_keys (${fmt(KEYS)} keys, no index on task_id): ${fmt(withFk)} ms; without it: ${fmt(withoutFk, 1)} ms`);
    } finally {
      fk.release();
    }
    // A tenth of them here; section 4 needs the rest to last its loads.
    const share = Math.max(1, Math.floor(oldSucceeded / 10 / BATCH));
    let batches = 0;
    const alone = await deleteLoop(pool, 0, () => batches++ >= share);
    deleteLine('batch deletes alone', alone);

    say(`\n4. The load alone and while batch deletes run (RETENTION_PAUSE_MS=${PAUSE_MS} between batches; then none), interleaved`);
    const aloneRuns: LoadResult[] = [];
    const duringRuns: LoadResult[] = [];
    for (const pause of [PAUSE_MS, PAUSE_MS, 0]) {
      if (pause > 0) {
        const a = await load(pool, LOAD_S);
        loadLine('load alone', a);
        aloneRuns.push(a);
      }
      let deletesDone = false;
      let duringDone = false;
      const deletes = deleteLoop(pool, pause, () => duringDone).finally(() => (deletesDone = true));
      // The load stops with the deletes should the old tasks run out first.
      const during = await load(pool, LOAD_S, 'tasks', false, () => deletesDone);
      duringDone = true;
      const d = await deletes;
      loadLine(`load during deletes (pause ${pause} ms)`, during);
      deleteLine(`deletes during the load (pause ${pause} ms)`, d);
      if (pause > 0) duringRuns.push(during);
      if (d.seconds < LOAD_S * 0.95) say(`  (the old tasks ran out after ${fmt(d.seconds, 1)} s of the ${LOAD_S} s)`);
    }
    say(`  with deletes paused ${PAUSE_MS} ms between batches the load ran at ${fmt((100 * mean(duringRuns)) / mean(aloneRuns))} % of its rate alone (means); p99 per loop ${fmt(meanOf(duringRuns, (r) => r.p99), 1)} ms against ${fmt(meanOf(aloneRuns, (r) => r.p99), 1)} ms`);

    say('\n5. Vacuum after the deletes');
    // Whatever succeeded is left older than 7 days goes too (as a steady state would have it).
    t0 = performance.now();
    let rest = 0;
    for (let n = BATCH; n === BATCH; rest += n) n = (await deleteFinishedBatch(pool, 'succeeded', POLICY, BATCH)).length;
    say(`  the other ${fmt(rest)} old succeeded tasks deleted in ${fmt((performance.now() - t0) / 1000, 1)} s`);
    const dead = await pool.query<{ n_dead_tup: string; n_live_tup: string }>(`SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'tasks'`);
    const before = await count(pool, `SELECT pg_total_relation_size('tasks') AS n`);
    const v0 = performance.now();
    await pool.query('VACUUM tasks');
    const vacuumS = (performance.now() - v0) / 1000;
    const v1 = performance.now();
    await pool.query('VACUUM task_runs');
    const vacuumRunsS = (performance.now() - v1) / 1000;
    const after = await count(pool, `SELECT pg_total_relation_size('tasks') AS n`);
    say(`  tasks: ${fmt(Number(dead.rows[0]!.n_dead_tup))} dead tuples beside ${fmt(Number(dead.rows[0]!.n_live_tup))} live ones; VACUUM tasks ${fmt(vacuumS, 1)} s, VACUUM task_runs ${fmt(vacuumRunsS, 1)} s; tasks ${fmt(before / 1048576, 1)} → ${fmt(after / 1048576, 1)} MiB (the space is reused by new rows, not given back)`);
    await pool.query('ANALYZE tasks');

    say('\n6. Finding old succeeded tasks when none is left: walking tasks_tenant_finished_idx by created_at, or tasks_final_finished_idx');
    const band = await count(pool, `SELECT count(*) AS n FROM tasks WHERE status IN ('dead', 'cancelled') AND created_at < now() - interval '7 days'`);
    const walk = `SELECT id FROM tasks WHERE tenant = 'default' AND status IN ('succeeded', 'dead', 'cancelled') AND created_at < now() - interval '7 days'
                   AND status = 'succeeded' AND finished_at < now() - interval '7 days' ORDER BY created_at, id LIMIT ${BATCH}`;
    const byFinish = `SELECT id FROM tasks WHERE status = 'succeeded' AND finished_at < now() - interval '7 days' ORDER BY finished_at LIMIT ${BATCH}`;
    const explain = async (c: { query: Pool['query'] }, sql: string) => {
      await c.query(sql);
      const plan = (await c.query<{ 'QUERY PLAN': { 'Execution Time': number; Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }[] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`)).rows[0]!['QUERY PLAN'][0]!;
      return { ms: plan['Execution Time'], buffers: plan.Plan['Shared Hit Blocks'] + plan.Plan['Shared Read Blocks'] };
    };
    const w = await pool.connect();
    let walked: { ms: number; buffers: number };
    try {
      // Without the new index, as the schema was before 0011 (rolled back).
      await w.query('BEGIN');
      await w.query('DROP INDEX tasks_final_finished_idx');
      walked = await explain(w as unknown as Pool, walk);
      await w.query('ROLLBACK');
    } finally {
      w.release();
    }
    const indexed = await explain(pool, byFinish);
    say(`  walk by created_at (schema 0010)                  ${fmt(walked.ms, 2).padStart(8)} ms, ${fmt(walked.buffers)} buffers, to find nothing`);
    say(`  tasks_final_finished_idx (status, finished_at)    ${fmt(indexed.ms, 2).padStart(8)} ms, ${fmt(indexed.buffers)} buffers, to find nothing`);
    say(`  (the walk reads every dead or cancelled task created more than 7 days ago and still inside its 30 days: ${fmt(band)} here, ${fmt((100 * band) / N, 1)} % of the tasks built, every pass)`);

    say('\n7. Partitioned by day of created_at (primary key (id, created_at), the same partial indexes)');
    say(`  ${days.length} daily partitions, the ${fmt(N)} tasks built copied in ${fmt(partS, 1)} s (before any delete)`);
    try {
      await pool.query('ALTER TABLE tasks_part DROP CONSTRAINT tasks_part_pkey, ADD PRIMARY KEY (id)');
      say('  a primary key on id alone: accepted (unexpected)');
    } catch (err) {
      say(`  a primary key on id alone: refused: "${(err as Error).message}"`);
    }
    await load(pool, 2, 'tasks_part');
    for (let round = 0; round < 2; round++) {
      loadLine('load on the plain table', await load(pool, LOAD_S));
      loadLine('load, updates by id alone (every partition probed)', await load(pool, LOAD_S, 'tasks_part'));
      loadLine('load, updates by id and created_at (pruned to one)', await load(pool, LOAD_S, 'tasks_part', true));
    }
    const sample = (await pool.query<{ id: string }>(`SELECT p.id FROM tasks_part p JOIN tasks t USING (id) ORDER BY random() LIMIT 5000`)).rows.map((r) => r.id);
    const [lookPlain, lookPart] = [await lookupUs(pool, 'tasks', sample), await lookupUs(pool, 'tasks_part', sample)];
    say(`  GET /tasks/:id's read by id, inside Postgres: plain ${fmt(lookPlain, 1)} µs, partitioned ${fmt(lookPart, 1)} µs (${days.length} partitions probed)`);
    // Retention by dropping the oldest day, under the load.
    const populated: string[] = [];
    for (const day of days) if ((await count(pool, `SELECT count(*) AS n FROM (SELECT 1 FROM tasks_p${day} LIMIT 1) x`)) > 0) populated.push(day);
    // The first populated day is a partial one; the next two are whole.
    const [oldest, second] = [populated[1]!, populated[2]!];
    const rowsInDay = await count(pool, `SELECT count(*) AS n FROM tasks_p${oldest}`);
    let detachMs = 0;
    let dropMs = 0;
    const dropping = (async () => {
      await sleep(1000);
      const d0 = performance.now();
      await pool.query(`ALTER TABLE tasks_part DETACH PARTITION tasks_p${oldest}`);
      detachMs = performance.now() - d0;
      const d1 = performance.now();
      await pool.query(`DROP TABLE tasks_p${oldest}`);
      dropMs = performance.now() - d1;
    })();
    const underDrop = await load(pool, LOAD_S, 'tasks_part', true);
    await dropping;
    say(`  DETACH PARTITION of a day (${fmt(rowsInDay)} tasks): ${fmt(detachMs, 1)} ms, DROP TABLE: ${fmt(dropMs, 1)} ms, under the load`);
    loadLine('load while a day is detached and dropped', underDrop);
    const c0 = performance.now();
    await pool.query(`ALTER TABLE tasks_part DETACH PARTITION tasks_p${second} CONCURRENTLY`);
    const concMs = performance.now() - c0;
    await pool.query(`DROP TABLE tasks_p${second}`);
    say(`  DETACH PARTITION … CONCURRENTLY of the next day (no load): ${fmt(concMs, 1)} ms`);

  } finally {
    await pool.end();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`));
  }
}

main().then(
  () => {
    stopBenchServices();
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`retention bench failed: ${(err as Error).stack}\n`);
    stopBenchServices();
    process.exit(1);
  },
);
