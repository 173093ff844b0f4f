/**
 * The reconciler's memory follows RECONCILE_PAYLOAD_BYTES, not the payloads: a worker process with
 * a 48 MB heap finds ~90 MB of payloads committed to Postgres but never pushed to Redis, re-queues
 * and runs all of them, and stays up: payloads twice the heap, the budget a twelfth of it. (When its
 * page carried the payloads, the first page alone outgrew the heap and the worker died, and then the
 * next one that took the reconciler lock; a budget above the payloads does the same.)
 * Spawns the built worker: run `npm run build` first.
 */
import { Pool } from 'pg';
import { freePort, killAllChildren, spawnService, type ChildHandle } from '../support/processes';
import { waitFor } from '../support/stack';
import { createTestDatabase, testRedisAddr, uniqueRedisPrefix, type TestDatabase } from '../support/test-env';

const TASKS = 100;
/** 28,125 × a 32-character md5: 900,000 bytes of payload text per task. */
const REPEATS = 28_125;

let db: TestDatabase;
let pool: Pool;
let worker: ChildHandle | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await worker?.stop();
  await killAllChildren();
  await pool?.end();
  await db?.drop();
});

it('a worker with a 48 MB heap re-queues and runs 100 tasks of 900 KB committed but never queued, and stays up', async () => {
  // Built by Postgres itself, so the test process never holds the payloads either.
  await pool.query(
    `INSERT INTO tasks (id, type, priority, payload, max_retries)
     SELECT gen_random_uuid(), 'noop', 'default', jsonb_build_object('i', i, 'blob', repeat(md5(i::text), $2)), 0
       FROM generate_series(1, $1) AS i`,
    [TASKS, REPEATS],
  );
  const redisPrefix = uniqueRedisPrefix('reconmem');
  worker = await spawnService(
    'dist/services/worker/main.js',
    {
      POSTGRES_URL: db.url,
      REDIS_ADDR: testRedisAddr(),
      REDIS_KEY_PREFIX: redisPrefix,
      METRICS_ADDR: `127.0.0.1:${await freePort()}`,
      LOG_LEVEL: 'info',
      RECONCILE_INTERVAL_MS: '200',
      RECONCILE_GRACE_MS: '0',
      // Half the default, as the heap is half the 96 MB it was sized for.
      RECONCILE_PAYLOAD_BYTES: String(4 * 1048576),
      // The handlers hold what they lease; few slots keep that part small, so the heap measures the reconciler.
      WORKER_POOL: '4',
    },
    { nodeArgs: ['--max-old-space-size=48'] },
  );

  let exited = false;
  void worker.exited.then(() => (exited = true));
  const done = await waitFor(
    async () => {
      if (exited) throw new Error(`the worker exited; output:\n${worker!.output().slice(-4000)}`);
      const { rows } = await pool.query<{ succeeded: number }>(`SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded FROM tasks`);
      return rows[0]!.succeeded === TASKS ? rows[0]! : null;
    },
    50_000,
    `all ${TASKS} tasks to succeed`,
  );
  expect(done.succeeded).toBe(TASKS);
  // Each ran once, from the reconciler's push.
  const { rows } = await pool.query<{ runs: number }>(`SELECT count(*)::int AS runs FROM task_runs WHERE outcome = 'succeeded'`);
  expect(rows[0]!.runs).toBe(TASKS);
  expect(worker.output()).toMatch(/reconciler repaired Redis from Postgres/);
  expect(worker.output()).not.toMatch(/heap out of memory|reconciler pass failed/);
  expect(await worker.stop()).toBe(0);
  worker = undefined;
}, 60_000);
