/**
 * Per-test-file isolation on the shared private services started by global-setup.ts:
 * a fresh database cloned from the migrated template, and a unique Redis key prefix.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run tests through jest so test/support/global-setup.ts runs`);
  return value;
}

async function withAdmin<T>(fn: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: requireEnv('TEST_PG_ADMIN_URL'), application_name: 'jest-test-env' });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/** How long drop() lets a database's sessions close by themselves before it terminates them. */
const DROP_GRACE_MS = 5000;

const clientSessions = async (admin: Client, db: string): Promise<number> =>
  (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", [db])).rows[0]!.n;

export interface TestDatabase {
  /** Superuser URL of the new database, e.g. postgres://postgres@127.0.0.1:<port>/ts_t_… */
  url: string;
  name: string;
  /** Drops it once its sessions have closed (those left after DROP_GRACE_MS are terminated); calling it again is a no-op. */
  drop(): Promise<void>;
}

/** A new database with every migration applied (cloned from the template, not migrated again). */
export function createTestDatabase(): Promise<TestDatabase> {
  return createDatabase(requireEnv('TEST_PG_TEMPLATE'));
}

/** A new database without any migration, for testing the migrator itself. */
export function createEmptyDatabase(): Promise<TestDatabase> {
  return createDatabase('template0');
}

async function createDatabase(template: string): Promise<TestDatabase> {
  // The pid lets global-setup sweep databases whose test process died before dropping them.
  const name = `ts_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(async (admin) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        return;
      } catch (err) {
        // 55006 = "source database is being accessed by other users": a momentary session on the
        // template; retry briefly instead of failing the file.
        if ((err as { code?: string }).code !== '55006' || attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  });
  const url = new URL(requireEnv('TEST_PG_ADMIN_URL'));
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin(async (admin) => {
        // Sessions closing on their own go first: pool.end() resolves before its connections have
        // closed, and FORCE then terminated one that had not read its Terminate; the FATAL reached
        // the ended pool, which has no 'error' listener left (an uncaught error in the test file).
        // Still there after the wait (a child's pool, a stuck session): terminated as before.
        const deadline = Date.now() + DROP_GRACE_MS;
        while (Date.now() < deadline && (await clientSessions(admin, name)) > 0) await new Promise((r) => setTimeout(r, 20));
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      });
    },
  };
}

/** host:port of the private test Redis. */
export function testRedisAddr(): string {
  return requireEnv('TEST_REDIS_ADDR');
}

/**
 * A short alphanumeric key prefix unique to the caller, e.g. `tqueue3f9a1c07`; the app wraps it in
 * its own hash tag. The optional label only makes keys easier to recognise in redis-cli.
 */
export function uniqueRedisPrefix(label = ''): string {
  const tag = label.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 16);
  return `t${tag}${randomBytes(4).toString('hex')}`;
}
