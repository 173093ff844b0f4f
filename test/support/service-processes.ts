/**
 * The built api and worker (dist/) as child processes on a private database and Redis prefix, with
 * the test's admin key: for tests of what talks to the API from outside (the client, the CLI).
 */
import { Pool } from 'pg';
import { AUTH_ENV } from './auth';
import { ChildHandle, freePort, killAllChildren, spawnService } from './processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from './test-env';

export interface ServiceProcesses {
  url: string;
  db: TestDatabase;
  /** For the test's own reads and set-up (superuser). */
  pool: Pool;
  api: ChildHandle;
  worker: ChildHandle | null;
  stop(): Promise<void>;
}

export async function startServiceProcesses(opts: { label: string; worker?: boolean; env?: Record<string, string>; workerEnv?: Record<string, string> }): Promise<ServiceProcesses> {
  const db = await createTestDatabase();
  const pool = new Pool({ connectionString: db.url, max: 4 });
  const env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix(opts.label),
    LOG_LEVEL: 'info',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '100',
    RETRY_JITTER_MS: '10',
    RETRY_SCAN_INTERVAL_MS: '25',
    ...opts.env,
  };
  const port = await freePort();
  const children: ChildHandle[] = [];
  const stop = async () => {
    for (const c of children) await c.stop('SIGTERM', 10_000).catch(() => c.kill());
    await killAllChildren();
    await pool.end();
    await db.drop();
  };
  try {
    const [api, worker] = await Promise.all([
      spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }),
      opts.worker === false ? null : spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: '8', METRICS_ADDR: `127.0.0.1:${await freePort()}`, ...opts.workerEnv }),
    ]);
    children.push(api);
    if (worker) children.push(worker);
    return { url: `http://127.0.0.1:${port}`, db, pool, api, worker, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
