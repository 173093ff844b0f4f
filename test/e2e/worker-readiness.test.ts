/**
 * The built worker's /readyz checks Postgres on a connection of its own: a main pool taken by
 * queries that wait (here on a lock, as behind slow outcome writes) does not make the worker look
 * unready, and a Postgres that stops answering does, within READINESS_TIMEOUT_MS, and no longer
 * once it answers again. Run `npm run build` first.
 */
import http from 'node:http';
import type { Pool, PoolClient } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { silentLog, waitFor } from '../support/stack';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

const TIMEOUT_MS = 1000;
// Scheduling on a shared two-core machine; the checks themselves are bounded by TIMEOUT_MS.
const SLACK_MS = 1000;

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPgPool(db.url, 2, 'worker-readiness', silentLog);
});

afterAll(async () => {
  await killAllChildren();
  await pool?.end();
  await db?.drop();
});

/** A worker with one connection in its main pool, whose delayed-task loader reads `tasks` every 50 ms. */
async function startWorker(postgresUrl: string): Promise<{ child: ChildHandle; metricsPort: number }> {
  const metricsPort = await freePort();
  const child = await spawnService('dist/services/worker/main.js', {
    POSTGRES_URL: postgresUrl,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix('wready'),
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
    PGPOOL_MAX_CONNS: '1',
    DELAYED_LOAD_INTERVAL_MS: '50',
    READINESS_TIMEOUT_MS: String(TIMEOUT_MS),
    LOG_LEVEL: 'info',
  });
  return { child, metricsPort };
}

async function readyz(port: number): Promise<{ status: number; checks: Record<string, string>; ms: number }> {
  const t0 = Date.now();
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/readyz', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
  return { status, checks: (JSON.parse(body) as { checks: Record<string, string> }).checks, ms: Date.now() - t0 };
}

it('answers 200 within READINESS_TIMEOUT_MS while every connection of its main pool waits', async () => {
  const { child, metricsPort } = await startWorker(db.url);
  let locker: PoolClient | undefined;
  try {
    expect((await readyz(metricsPort)).status).toBe(200);
    locker = await pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE');
    // The main pool's one connection stuck behind the lock: the pool is saturated.
    const waiting = async () =>
      (
        await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'task-scheduler-worker' AND wait_event_type = 'Lock'",
        )
      ).rows[0]!.n === 1;
    await waitFor(waiting, 10_000, "the worker's main pool to wait on the lock");

    for (let round = 0; round < 2; round++) {
      const r = await readyz(metricsPort);
      expect([r.status, r.checks]).toEqual([200, { postgres: 'ok', redis: 'ok' }]);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
  } finally {
    await locker?.query('ROLLBACK');
    locker?.release();
    expect(await child.stop('SIGTERM', 15_000)).toBe(0);
  }
});

it('answers 503 within READINESS_TIMEOUT_MS while Postgres does not answer, and 200 again once it does', async () => {
  const proxy: StallProxy = await startStallProxy(new URL(db.url).host);
  const url = new URL(db.url);
  url.host = proxy.addr;
  const { child, metricsPort } = await startWorker(url.toString());
  try {
    expect((await readyz(metricsPort)).status).toBe(200);
    proxy.stall();
    // Twice: a check must not queue behind the connection the first one left hanging.
    for (let round = 0; round < 2; round++) {
      const r = await readyz(metricsPort);
      expect([r.status, r.checks.redis]).toEqual([503, 'ok']);
      expect(r.checks.postgres).toMatch(/within|timeout/i);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
    proxy.resume();
    await waitFor(async () => (await readyz(metricsPort)).status === 200, 10_000, 'the worker to be ready again');
  } finally {
    proxy.resume();
    expect(await child.stop('SIGTERM', 15_000)).toBe(0);
    await proxy.close();
  }
});
