/**
 * One stack for a whole test file, put back before each test as createStack made it: every table
 * emptied (the rows the migrations seed put back) and the stack's Redis keys deleted. Cloning and
 * dropping a database per test costs about a second on a loaded machine; this costs milliseconds.
 * Functions and triggers a test created are dropped. For files whose tests start no connections of
 * their own that outlive the test (they would hold TRUNCATE's lock).
 */
import type { Pool } from 'pg';
import type { Worker } from '../../services/worker/worker';
import { createStack, Stack, startApi, startWorker } from './stack';

interface Snapshot {
  tables: string[];
  seeded: [table: string, rows: unknown[]][];
  /** The schema's functions and triggers, as the statements that drop them. */
  objects: Set<string>;
}

/** Functions and triggers of the schema, as the DROP statements that remove them. */
async function objectsOf(pool: Pool): Promise<Set<string>> {
  const { rows } = await pool.query<{ drop: string }>(
    `SELECT format('DROP TRIGGER IF EXISTS %I ON %s', t.tgname, t.tgrelid::regclass) AS drop FROM pg_trigger t WHERE NOT t.tgisinternal
     UNION ALL
     SELECT format('DROP FUNCTION IF EXISTS %s CASCADE', p.oid::regprocedure) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`,
  );
  return new Set(rows.map((r) => r.drop));
}

async function snapshotOf(pool: Pool): Promise<Snapshot> {
  const { rows } = await pool.query<{ t: string }>(
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> 'schema_migrations' ORDER BY 1`,
  );
  const seeded: Snapshot['seeded'] = [];
  for (const { t } of rows) {
    const res = await pool.query<{ row: unknown }>(`SELECT to_jsonb(x) AS row FROM ${t} x`);
    if (res.rowCount) seeded.push([t, res.rows.map((r) => r.row)]);
  }
  return { tables: rows.map((r) => r.t), seeded, objects: await objectsOf(pool) };
}

async function reset(stack: Stack, snap: Snapshot): Promise<void> {
  // Counts the pool's connections still hold for Postgres's statistics views are reported now,
  // not during the next test (which may measure them).
  const idle = await Promise.all(Array.from({ length: stack.pool.idleCount }, () => stack.pool.connect()));
  try {
    await Promise.all(idle.map((c) => c.query('SELECT pg_stat_force_next_flush()')));
  } finally {
    for (const c of idle) c.release();
  }
  // Triggers and functions a test made (and left, having failed) go first: they might refuse the
  // rest. IF EXISTS: a function's CASCADE may have taken a trigger already.
  for (const drop of await objectsOf(stack.pool)) if (!snap.objects.has(drop)) await stack.pool.query(drop);
  await stack.pool.query(`TRUNCATE ${snap.tables.join(', ')} RESTART IDENTITY CASCADE`);
  for (const [t, rows] of snap.seeded) await stack.pool.query(`INSERT INTO ${t} OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_recordset(NULL::${t}, $1::jsonb)`, [JSON.stringify(rows)]);
  await stack.flushRedis();
}

/** A stack made before the file's tests and reset before each; `current()` is it. */
export function resettableStack(overrides: Parameters<typeof createStack>[0] = {}): { current: () => Stack } {
  let stack: Stack | undefined;
  let snap: Snapshot;
  beforeAll(async () => {
    stack = await createStack(overrides);
    snap = await snapshotOf(stack.pool);
  });
  beforeEach(async () => {
    await reset(stack!, snap);
  });
  afterAll(async () => {
    await stack?.close();
  });
  return { current: () => stack! };
}

/** resettableStack with an API on it for the whole file; workers started through it stop after each test. */
export function resettableStackWithApi(overrides: Parameters<typeof createStack>[0] = {}): {
  readonly stack: Stack;
  readonly api: Awaited<ReturnType<typeof startApi>>;
  startWorker(opts?: Parameters<typeof startWorker>[1]): ReturnType<typeof startWorker>;
} {
  let api: Awaited<ReturnType<typeof startApi>> | undefined;
  const workers: Worker[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.stop(0);
  });
  // Declared before the stack's hooks, so it runs before the stack closes.
  afterAll(async () => {
    await api?.server.stop();
  });
  const shared = resettableStack(overrides);
  beforeAll(async () => {
    api = await startApi(shared.current());
  });
  return {
    get stack() {
      return shared.current();
    },
    get api() {
      return api!;
    },
    startWorker(workerOpts) {
      const started = startWorker(shared.current(), workerOpts);
      workers.push(started.worker);
      return started;
    },
  };
}
