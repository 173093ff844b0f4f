/**
 * Applies numbered SQL migrations (`NNNN_name.sql`) in order, each in its own transaction,
 * under a session advisory lock so concurrent migrators serialize instead of racing. Each
 * applied file is recorded with its sha256; an applied file whose content changed is refused.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { postgresConnection } from '../core/db/postgres-connection';
import type { Logger } from '../core/observability/logger';

/** Arbitrary constant shared by every migrator copy: "task-scheduler migrations". */
const ADVISORY_LOCK_KEY = 7_331_001;
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export const DEFAULT_MIGRATIONS_DIR = path.resolve(__dirname, '../../migrations');
// When running from dist/, migrations live two levels above dist/services/migrator.
const BUNDLED_DIRS = [DEFAULT_MIGRATIONS_DIR, path.resolve(__dirname, '../../../migrations')];

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  /** Schema version after the run: the highest applied migration. */
  version: number;
}

export function bundledMigrationsDir(): string {
  for (const d of BUNDLED_DIRS) {
    try {
      if (readdirSync(d).some((f) => FILE_PATTERN.test(f))) return d;
    } catch {
      /* try the next candidate */
    }
  }
  throw new MigrationError(`no migrations found in ${BUNDLED_DIRS.join(' or ')}`);
}

/** The schema version this build needs: its newest bundled migration. */
export function bundledSchemaVersion(): number {
  const versions = readdirSync(bundledMigrationsDir())
    .map((f) => FILE_PATTERN.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number);
  return Math.max(...versions);
}

export function readMigrations(dir: string): MigrationFile[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const seen = new Set<number>();
  return files.map((f) => {
    const m = FILE_PATTERN.exec(f);
    if (!m) throw new MigrationError(`${f}: migration files must be named NNNN_lowercase_name.sql`);
    const version = Number(m[1]);
    if (seen.has(version)) throw new MigrationError(`${f}: version ${version} appears twice`);
    seen.add(version);
    const sql = readFileSync(path.join(dir, f), 'utf8');
    return { version, name: f, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

/** MIGRATION_LOCK_TIMEOUT_MS's default; 0 waits for locks as long as it takes. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;
/** How long a migration that keeps running into its lock timeout is tried again before the run fails. */
const LOCK_RETRY_FOR_MS = 10 * 60_000;

export async function migrate(opts: { databaseUrl: string; dir?: string; log?: Logger; lockTimeoutMs?: number }): Promise<MigrateResult> {
  const files = readMigrations(opts.dir || bundledMigrationsDir());
  const client = new Client({ ...postgresConnection(opts.databaseUrl), application_name: 'task-scheduler-migrator' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text        NOT NULL,
      checksum   text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    const done = new Map(rows.map((r) => [r.version, r]));
    for (const f of files) {
      const prior = done.get(f.version);
      if (prior && prior.checksum !== f.checksum) {
        throw new MigrationError(
          `${f.name} was edited after it was applied (recorded checksum ${prior.checksum.slice(0, 12)}…, ` +
            `file ${f.checksum.slice(0, 12)}…); add a new migration instead`,
        );
      }
    }
    const applied: string[] = [];
    for (const f of files) {
      if (done.has(f.version)) continue;
      await applyOne(client, f, opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, opts.log);
      applied.push(f.name);
      opts.log?.info({ migration: f.name }, 'migration applied');
    }
    const version = Math.max(0, ...rows.map((r) => r.version), ...files.filter((f) => applied.includes(f.name)).map((f) => f.version));
    return { applied, version };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}

/** Indexes a migration builds only if none has the name: `CREATE [UNIQUE] INDEX IF NOT EXISTS name`. */
const INDEX_IF_NOT_EXISTS = /CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?IF\s+NOT\s+EXISTS\s+"?([A-Za-z_][A-Za-z0-9_$]*)"?/gi;

/**
 * Fails the migration when an index it builds "if not exists" exists under that name but invalid.
 * Its file says to build such an index first with CREATE INDEX CONCURRENTLY on a big table; one
 * interrupted (a timeout, a cancel, a deadlock) leaves an invalid index under the name, which the
 * migration then skipped and recorded as done, while no query could ever use the index.
 */
async function refuseInvalidIndexes(client: Client, f: MigrationFile): Promise<void> {
  const names = [...f.sql.matchAll(INDEX_IF_NOT_EXISTS)].map((m) => m[1]!);
  if (names.length === 0) return;
  const { rows } = await client.query<{ name: string }>(
    `SELECT n AS name FROM unnest($1::text[]) n JOIN pg_index i ON i.indexrelid = to_regclass(n) WHERE NOT i.indisvalid`,
    [names],
  );
  if (rows.length > 0) {
    const list = rows.map((r) => r.name).join(', ');
    throw new Error(
      `index ${list} exists but is invalid (an interrupted CREATE INDEX CONCURRENTLY?), so this migration would skip it: ` +
        `DROP INDEX CONCURRENTLY ${rows[0]!.name}; then build it again as the migration defines it (CONCURRENTLY on a big table) and run the migrator again`,
    );
  }
}

/**
 * Applies one migration in a transaction. Its lock requests give up after `lockTimeoutMs`: one
 * waiting for a lock that a long transaction holds would otherwise queue every later statement on
 * that table behind it (the api's and the workers' too) for as long as that transaction runs. It is
 * tried again, after a pause that lets the queued statements through, for up to LOCK_RETRY_FOR_MS;
 * so is one rolled back by a deadlock with live traffic.
 */
async function applyOne(client: Client, f: MigrationFile, lockTimeoutMs: number, log?: Logger): Promise<void> {
  const started = Date.now();
  for (let delay = 1000; ; delay = Math.min(delay * 2, 30_000)) {
    await client.query('BEGIN');
    try {
      if (lockTimeoutMs > 0) await client.query(`SET LOCAL lock_timeout = ${Math.floor(lockTimeoutMs)}`);
      await client.query(f.sql);
      await refuseInvalidIndexes(client, f);
      await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [f.version, f.name, f.checksum]);
      await client.query('COMMIT');
      return;
    } catch (err) {
      await client.query('ROLLBACK');
      // 55P03 lock_not_available: the lock timeout passed. 40P01 deadlock_detected: the migration
      // took its locks in another order than live traffic (0025 locks tasks, then workflows; a
      // workflow's create the other way round) and was chosen to give way; nothing of it remains.
      const code = (err as { code?: unknown }).code;
      const lockBusy = code === '55P03' || code === '40P01';
      if (!lockBusy || Date.now() - started + delay > LOCK_RETRY_FOR_MS) throw new MigrationError(`${f.name} failed: ${(err as Error).message}`);
      const why = code === '40P01' ? 'migration was rolled back to end a deadlock with live traffic' : 'migration waited longer than MIGRATION_LOCK_TIMEOUT_MS for a lock';
      log?.warn({ migration: f.name, retryInMs: delay }, `${why}; trying again`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
