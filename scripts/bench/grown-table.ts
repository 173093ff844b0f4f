/**
 * Scenario 7's starting point: a database whose `tasks` already holds `rows` finished tasks (95 %
 * succeeded, 4 % dead, 1 % cancelled, over ten tenants, half of them `default`, created 10 ms apart,
 * with time-ordered ids), each with its run. Built once per bench data directory, as a template
 * named after the row count and the migrations, and copied for each run (CREATE DATABASE …
 * TEMPLATE), since filling it takes minutes.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../services/migrator/migrate';

const MIGRATIONS = path.resolve(__dirname, '../../migrations');
const CHUNK = 1_000_000;

/** The template's name (built first if missing): a different schema makes a different template. */
export async function grownTemplate(adminUrl: string, rows: number, log: (line: string) => void): Promise<string> {
  const schema = createHash('sha256');
  for (const f of readdirSync(MIGRATIONS).sort()) schema.update(f).update(readFileSync(path.join(MIGRATIONS, f)));
  const name = `grown_${rows}_${schema.digest('hex').slice(0, 10)}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount) return name;
    // Older templates (other sizes or schemas) take disk for nothing.
    const old = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'grown\\_%'`);
    for (const { datname } of old.rows) await admin.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
    const building = `${name}_building`;
    await admin.query(`DROP DATABASE IF EXISTS "${building}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${building}"`);
    const url = new URL(adminUrl);
    url.pathname = `/${building}`;
    await migrate({ databaseUrl: url.toString() });
    const db = new Client({ connectionString: url.toString() });
    await db.connect();
    try {
      const t0 = Date.now();
      for (let from = 1; from <= rows; from += CHUNK) {
        const to = Math.min(rows, from + CHUNK - 1);
        await fill(db, rows, from, to);
        log(`grown table: ${to.toLocaleString('en-US')} of ${rows.toLocaleString('en-US')} tasks (${Math.round((Date.now() - t0) / 1000)} s)`);
      }
      await db.query('VACUUM ANALYZE tasks, task_runs');
    } finally {
      await db.end();
    }
    await admin.query(`ALTER DATABASE "${building}" RENAME TO "${name}"`);
    return name;
  } finally {
    await admin.end();
  }
}

/** Tasks `from`..`to` of `rows` (task i was created (rows − i) × 10 ms ago), with their runs. */
async function fill(db: Client, rows: number, from: number, to: number): Promise<void> {
  await db.query(
    `WITH t AS (
       INSERT INTO tasks (id, tenant, type, priority, payload, status, attempts, max_retries, created_at, updated_at, first_started_at, finished_at, last_error)
       SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12))::uuid,
              CASE WHEN i % 2 = 0 THEN 'default' ELSE 't' || (i % 9) END, 'noop', 'default', '{}',
              s::task_status, 1, 0, at, at + interval '5 ms', at + interval '1 ms', at + interval '5 ms',
              CASE WHEN s = 'dead' THEN 'failed on purpose' END
         FROM (SELECT i, lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') AS h, md5(i::text) AS r, t AS at,
                      CASE WHEN i % 100 < 4 THEN 'dead' WHEN i % 100 = 4 THEN 'cancelled' ELSE 'succeeded' END AS s
                 FROM (SELECT i, now() - ($1::bigint - i) * interval '10 ms' AS t FROM generate_series($2::bigint, $3::bigint) AS i) g) x
       RETURNING id, status, first_started_at, finished_at, last_error)
     INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error, duration_ms)
     SELECT id, 1, 'bench-grown', 'grown~' || id, first_started_at, finished_at,
            CASE status WHEN 'succeeded' THEN 'succeeded' WHEN 'dead' THEN 'failed' ELSE 'cancelled' END, last_error, 4
       FROM t`,
    [rows, from, to],
  );
}
