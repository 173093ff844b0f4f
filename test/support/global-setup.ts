/**
 * Jest globalSetup: starts (or reuses) the private `test` Postgres and Redis, builds one migrated
 * template database, and hands their coordinates to the test workers through process.env
 * (workers are forked after this runs, so they inherit it). Each test file then clones the
 * template (test-env.ts), which takes milliseconds instead of re-running every migration.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../services/migrator/migrate';

export const REPO_ROOT = path.resolve(__dirname, '../..');
const PROFILE = 'test';

/** What global-teardown needs; jest shares globalThis between globalSetup and globalTeardown. */
export interface TestServicesState {
  adminUrl: string;
  template: string;
  startedServices: boolean;
}
export const STATE_KEY = '__taskSchedulerTestServices';

/** Parses the KEY=value lines written by scripts/local-services.sh (values may be single-quoted). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    const raw = m[2] ?? '';
    env[m[1]!] = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1).replace(/'\\''/g, "'") : raw;
  }
  return env;
}

function localServices(command: 'start' | 'status'): boolean {
  try {
    // stdout of the script is kept clean; its diagnostics (stderr) go straight to the terminal.
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts/local-services.sh'), command, PROFILE], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', command === 'start' ? 'inherit' : 'ignore'],
    });
    return true;
  } catch (err) {
    if (command === 'status') return false;
    throw new Error(`scripts/local-services.sh start ${PROFILE} failed: ${(err as Error).message}`);
  }
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Template names carry the pid of the jest process that made them, so a later run can drop the
 * ones whose run died before its teardown without touching a template another live run (sharing
 * the same services) is still cloning from. Test databases (ts_t_<pid>_…) are swept the same way.
 */
async function dropStaleDatabases(admin: Client): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    String.raw`SELECT datname FROM pg_database WHERE datname ~ '^ts_(template|t)_\d+_'`,
  );
  for (const { datname } of rows) {
    const pid = Number(/^ts_(?:template|t)_(\d+)_/.exec(datname)?.[1]);
    if (isAlive(pid)) continue;
    await admin.query(`ALTER DATABASE "${datname}" WITH IS_TEMPLATE false`);
    await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  }
}

export default async function globalSetup(): Promise<void> {
  const wasRunning = localServices('status');
  localServices('start');
  const env = parseEnvFile(readFileSync(path.join(REPO_ROOT, '.data', PROFILE, 'env'), 'utf8'));
  const adminUrl = env.PG_ADMIN_URL;
  const redisAddr = env.REDIS_ADDR;
  if (!adminUrl || !redisAddr) throw new Error(`.data/${PROFILE}/env lacks PG_ADMIN_URL or REDIS_ADDR`);

  const template = `ts_template_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl, application_name: 'jest-global-setup' });
  await admin.connect();
  try {
    await dropStaleDatabases(admin);
    await admin.query(`CREATE DATABASE "${template}"`);
    const templateUrl = new URL(adminUrl);
    templateUrl.pathname = `/${template}`;
    try {
      await migrate({ databaseUrl: templateUrl.toString() });
    } catch (err) {
      // jest skips globalTeardown when globalSetup throws, so clean up here.
      await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
      throw err;
    }
    // CREATE DATABASE … TEMPLATE fails while anyone is connected to the template; forbidding
    // connections keeps the test files' concurrent clones from tripping over a stray session.
    await admin.query(`ALTER DATABASE "${template}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [template]);
  } finally {
    await admin.end();
  }

  process.env.TEST_PG_ADMIN_URL = adminUrl;
  process.env.TEST_PG_TEMPLATE = template;
  process.env.TEST_REDIS_ADDR = redisAddr;
  if (!wasRunning) process.env.TEST_SERVICES_STARTED = '1';
  else delete process.env.TEST_SERVICES_STARTED;

  const state: TestServicesState = { adminUrl, template, startedServices: !wasRunning };
  (globalThis as Record<string, unknown>)[STATE_KEY] = state;
}
