/** The migrator against a real, empty database: apply, no-op, tamper detection, concurrent copies. */
import { mkdtempSync, readdirSync, copyFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '../../services/migrator/migrate';
import { createEmptyDatabase } from '../support/test-env';

let db: { url: string; drop(): Promise<void> };

beforeEach(async () => {
  db = await createEmptyDatabase();
});
afterEach(async () => {
  await db.drop();
});

function copyOfMigrations(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'migrations-'));
  for (const f of readdirSync(DEFAULT_MIGRATIONS_DIR)) copyFileSync(path.join(DEFAULT_MIGRATIONS_DIR, f), path.join(dir, f));
  return dir;
}

async function tables(): Promise<string[]> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    const { rows } = await c.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    return rows.map((r) => r.tablename as string);
  } finally {
    await c.end();
  }
}

it('applies every migration once, records checksums, and is a no-op afterwards', async () => {
  const first = await migrate({ databaseUrl: db.url });
  expect(first.applied).toEqual(readdirSync(DEFAULT_MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).sort());
  expect(await tables()).toEqual(['api_keys', 'idempotency_keys', 'schedules', 'schema_migrations', 'task_runs', 'tasks', 'tenants', 'workflow_edges', 'workflows']);
  const second = await migrate({ databaseUrl: db.url });
  expect(second.applied).toEqual([]);
  expect(second.version).toBe(first.version);
});

it('refuses an applied migration whose file was edited', async () => {
  const dir = copyOfMigrations();
  await migrate({ databaseUrl: db.url, dir });
  appendFileSync(path.join(dir, '0001_tasks.sql'), '\n-- an innocent-looking edit\n');
  await expect(migrate({ databaseUrl: db.url, dir })).rejects.toThrow(/0001_tasks.sql was edited after it was applied/);
});

it('applies a new migration added later, and rolls back a failing one entirely', async () => {
  const dir = copyOfMigrations();
  await migrate({ databaseUrl: db.url, dir });
  writeFileSync(path.join(dir, '0900_broken.sql'), 'CREATE TABLE half_done (id int);\nSELECT no_such_function();\n');
  await expect(migrate({ databaseUrl: db.url, dir })).rejects.toThrow(/0900_broken.sql failed/);
  expect(await tables()).not.toContain('half_done');
  writeFileSync(path.join(dir, '0900_broken.sql'), 'CREATE TABLE half_done (id int);\n');
  expect((await migrate({ databaseUrl: db.url, dir })).applied).toEqual(['0900_broken.sql']);
});

it('rejects badly named files', async () => {
  const dir = copyOfMigrations();
  writeFileSync(path.join(dir, '3_oops.sql'), 'SELECT 1;');
  await expect(migrate({ databaseUrl: db.url, dir })).rejects.toThrow(/must be named NNNN_lowercase_name.sql/);
});

it('is safe when several copies start at once', async () => {
  const results = await Promise.all(Array.from({ length: 5 }, () => migrate({ databaseUrl: db.url })));
  const appliedCounts = results.map((r) => r.applied.length).sort();
  expect(appliedCounts.slice(0, 4)).toEqual([0, 0, 0, 0]);
  expect(appliedCounts[4]).toBeGreaterThan(0);
  const c = new Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query('SELECT count(*)::int AS n FROM schema_migrations');
  await c.end();
  expect(rows[0].n).toBe(appliedCounts[4]);
});

it('a migration that waits for a lock a long transaction holds gives way to the traffic queued behind it, and applies once it can', async () => {
  const dir = copyOfMigrations();
  await migrate({ databaseUrl: db.url, dir });
  writeFileSync(path.join(dir, '0900_add_column.sql'), 'ALTER TABLE tasks ADD COLUMN note text;\n');
  // A long transaction that read tasks (a report, an operator's psql session) holds its lock.
  const reader = new Client({ connectionString: db.url });
  const other = new Client({ connectionString: db.url });
  await Promise.all([reader.connect(), other.connect()]);
  try {
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM tasks');
    const migrating = migrate({ databaseUrl: db.url, dir, lockTimeoutMs: 300 });
    await new Promise((r) => setTimeout(r, 100));
    // Every statement on tasks queues behind the migration's ACCESS EXCLUSIVE request while it waits:
    // the API's and the workers' too. It waits at most the lock timeout, then retries later.
    await other.query('SET statement_timeout = 3000');
    const t0 = Date.now();
    await other.query('SELECT count(*) FROM tasks');
    expect(Date.now() - t0).toBeLessThan(1500);
    await reader.query('COMMIT');
    expect((await migrating).applied).toEqual(['0900_add_column.sql']);
    await other.query('SELECT note FROM tasks LIMIT 1');
  } finally {
    await Promise.all([reader.end(), other.end()]);
  }
});

it('a migration rolled back to end a deadlock with live traffic is tried again, and applies', async () => {
  const dir = copyOfMigrations();
  await migrate({ databaseUrl: db.url, dir });
  // Locks taken in the opposite order to a live transaction (as 0025 does against a workflow's create).
  writeFileSync(path.join(dir, '0900_two_locks.sql'), 'LOCK TABLE schedules IN ACCESS EXCLUSIVE MODE;\nLOCK TABLE tenants IN ACCESS EXCLUSIVE MODE;\n');
  const live = new Client({ connectionString: db.url });
  await live.connect();
  try {
    // The migration's wait is checked for deadlocks first (1 s), so it is the one rolled back.
    await live.query("SET deadlock_timeout = '10s'");
    await live.query('BEGIN');
    await live.query('LOCK TABLE tenants IN ROW EXCLUSIVE MODE');
    const migrating = migrate({ databaseUrl: db.url, dir, lockTimeoutMs: 0 });
    for (;;) {
      const { rows } = await live.query("SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'tenants' AND NOT l.granted");
      if (rows.length > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await live.query('LOCK TABLE schedules IN ROW EXCLUSIVE MODE');
    await live.query('COMMIT');
    expect((await migrating).applied).toEqual(['0900_two_locks.sql']);
  } finally {
    await live.end();
  }
});

it('refuses to record a migration whose index exists under its name but invalid (an interrupted CREATE INDEX CONCURRENTLY), naming it', async () => {
  // An installation at migration 0010 about to take 0011, whose index the file says to build first
  // with CREATE INDEX CONCURRENTLY under its name on a big table (the migration then skips it).
  const before = mkdtempSync(path.join(tmpdir(), 'migrations-'));
  for (const f of readdirSync(DEFAULT_MIGRATIONS_DIR).filter((f) => f < '0011')) copyFileSync(path.join(DEFAULT_MIGRATIONS_DIR, f), path.join(before, f));
  await migrate({ databaseUrl: db.url, dir: before });
  // The build is interrupted (here: a lock timeout while it waits for an older snapshot to end),
  // which leaves the index in the catalog, invalid: never used by a query.
  const holder = new Client({ connectionString: db.url });
  const builder = new Client({ connectionString: db.url });
  await Promise.all([holder.connect(), builder.connect()]);
  try {
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await holder.query('SELECT count(*) FROM tasks');
    await builder.query(`SET lock_timeout = 200`);
    await expect(
      builder.query(`CREATE INDEX CONCURRENTLY tasks_final_finished_idx ON tasks (status, finished_at) WHERE status IN ('succeeded', 'dead', 'cancelled')`),
    ).rejects.toThrow(/lock timeout/);
    await holder.query('COMMIT');
    const valid = async () => (await builder.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('tasks_final_finished_idx')`)).rows[0]?.indisvalid;
    expect(await valid()).toBe(false);
    await expect(migrate({ databaseUrl: db.url })).rejects.toThrow(/0011_retention\.sql.*tasks_final_finished_idx.*invalid/s);
    const { rows } = await builder.query('SELECT max(version)::int AS v FROM schema_migrations');
    expect(rows[0].v).toBe(10);
    // Built again as the message says, the migration goes through.
    await builder.query('DROP INDEX CONCURRENTLY tasks_final_finished_idx');
    await builder.query(`CREATE INDEX CONCURRENTLY tasks_final_finished_idx ON tasks (status, finished_at) WHERE status IN ('succeeded', 'dead', 'cancelled')`);
    expect((await migrate({ databaseUrl: db.url })).applied[0]).toBe('0011_retention.sql');
    expect(await valid()).toBe(true);
  } finally {
    await Promise.all([holder.end(), builder.end()]);
  }
});
