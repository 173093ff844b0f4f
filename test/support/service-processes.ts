/**
 * The built api and worker (dist/) as child processes on a private database and Redis prefix, with
 * the test's admin key: for tests of what talks to the API from outside (the client, the CLI).
 */
import { Pool } from 'pg';
import { AUTH_ENV } from './auth';
import { ChildHandle, freePort, killAllChildren, spawnService, startWithFreePort } from './processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from './test-env';

export interface ServiceProcesses {
  /** The first API's. */
  url: string;
  db: TestDatabase;
  /** For the test's own reads and set-up (superuser). */
  pool: Pool;
  /** The first API and worker (null: no worker). */
  api: ChildHandle;
  worker: ChildHandle | null;
  /** Every API with its URL, and every worker. */
  apis: { url: string; child: ChildHandle }[];
  workers: ChildHandle[];
  stop(): Promise<void>;
}

/** One API and one worker (WORKER_POOL=8) by default; `worker: false` for none. */
export async function startServiceProcesses(opts: {
  label: string;
  worker?: boolean;
  apis?: number;
  workers?: number;
  env?: Record<string, string>;
  workerEnv?: Record<string, string>;
}): Promise<ServiceProcesses> {
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
  const children: ChildHandle[] = [];
  const stop = async () => {
    for (const c of children) await c.stop('SIGTERM', 10_000).catch(() => c.kill());
    await killAllChildren();
    await pool.end();
    await db.drop();
  };
  try {
    const startApi = () =>
      startWithFreePort(async () => {
        const port = await freePort();
        return { url: `http://127.0.0.1:${port}`, child: await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }) };
      });
    const startWorker = () => startWithFreePort(async () => spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: '8', METRICS_ADDR: `127.0.0.1:${await freePort()}`, ...opts.workerEnv }));
    const workerCount = opts.worker === false ? 0 : (opts.workers ?? 1);
    const [apis, workers] = await Promise.all([
      Promise.all(Array.from({ length: opts.apis ?? 1 }, startApi)),
      Promise.all(Array.from({ length: workerCount }, startWorker)),
    ]);
    // Workers stop first: an API outliving them answers nothing a test still waits for.
    children.push(...workers, ...apis.map((a) => a.child));
    return { url: apis[0]!.url, db, pool, api: apis[0]!.child, worker: workers[0] ?? null, apis, workers, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
