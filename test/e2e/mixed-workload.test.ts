/**
 * End to end: the built api and worker run as child processes against private Postgres and Redis;
 * 1,000 mixed tasks go in over HTTP and each must reach its expected final state and attempt count.
 */
import { Pool } from 'pg';
import { PRIORITIES } from '../../services/core/tasks/priority';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix } from '../support/test-env';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';

interface Planned {
  body: Record<string, unknown>;
  status: 'succeeded' | 'dead';
  attempts: number;
}

function plan(i: number): Planned {
  const priority = PRIORITIES[i % 4];
  const r = i % 20;
  if (r < 13) return { body: { type: 'noop', priority }, status: 'succeeded', attempts: 1 };
  if (r < 16) {
    const n = 1 + (i % 3);
    return { body: { type: 'flaky', priority, payload: { fail_attempts: n } }, status: 'succeeded', attempts: n + 1 };
  }
  if (r < 18) return { body: { type: 'always_fail', priority, max_retries: 2 }, status: 'dead', attempts: 3 };
  if (r < 19) return { body: { type: 'sleeper', priority, payload: { sleep_ms: 20 } }, status: 'succeeded', attempts: 1 };
  return { body: { type: 'mystery', priority }, status: 'dead', attempts: 1 };
}

let db: { url: string; drop(): Promise<void> };
let pool: Pool;
const children: ChildHandle[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 4 });
});

afterAll(async () => {
  for (const c of children) await c.stop('SIGTERM', 10000).catch(() => c.kill());
  await killAllChildren();
  await pool.end();
  await db.drop();
});

it('runs 1,000 mixed tasks to their expected final states', async () => {
  const apiPort = await freePort();
  const env = {
    POSTGRES_URL: db.url,
    REDIS_ADDR: testRedisAddr(),
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    LOG_LEVEL: 'info',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '100',
    RETRY_JITTER_MS: '20',
    RETRY_SCAN_INTERVAL_MS: '25',
  };
  children.push(await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }));
  for (let w = 0; w < 2; w++) {
    children.push(await spawnService('dist/services/worker/main.js', { ...env, WORKER_POOL: '16', METRICS_ADDR: `127.0.0.1:${await freePort()}` }));
  }

  const planned = Array.from({ length: 1000 }, (_, i) => plan(i));
  const ids: string[] = new Array(planned.length);
  // 16 concurrent clients, like the Go README's load run.
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < planned.length) {
        const i = next++;
        const res = await fetch(`http://127.0.0.1:${apiPort}/tasks`, { method: 'POST', headers: { ...AUTH_HEADER, 'content-type': 'application/json' }, body: JSON.stringify(planned[i]!.body) });
        expect(res.status).toBe(201);
        ids[i] = ((await res.json()) as { id: string }).id;
      }
    }),
  );

  const deadline = Date.now() + 60000;
  let unfinished = -1;
  while (Date.now() < deadline) {
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('succeeded', 'dead')");
    unfinished = rows[0].n;
    if (unfinished === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(unfinished).toBe(0);

  const { rows } = await pool.query<{ id: string; status: string; attempts: number; runs: number }>(
    `SELECT t.id, t.status, t.attempts, (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id) AS runs FROM tasks t`,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const wrong: string[] = [];
  planned.forEach((p, i) => {
    const got = byId.get(ids[i]!);
    if (!got || got.status !== p.status || got.attempts !== p.attempts || got.runs !== p.attempts) {
      wrong.push(`${JSON.stringify(p.body)} → ${JSON.stringify(got)}`);
    }
  });
  expect(wrong).toEqual([]);
}, 120000);
