/**
 * Work the workers bring from Postgres into Redis, many tasks of a large payload at once, on a
 * worker with a small heap (the prod entrypoint sizes the heap to the container, 192 MiB in a 256
 * MiB one; here 96 MiB, with data in the same proportion to it): a schedule catching up ticks that all repeat one payload, and the delayed loader
 * bringing in a page of delayed tasks. Neither may hold every payload of what it moves at once.
 */
import { killAllChildren, spawnService, freePort, ChildHandle } from '../support/processes';
import { createWorld, ScheduleWorld, tickTasks } from '../support/schedule-workers';
import { waitFor } from '../support/stack';

/** The worker's heap; each test moves about 0.9 of it, which an unbounded pass would hold several times over. */
const HEAP_MIB = 96;
const TASKS = 180;
const SCHEDULES = 90;
const PAYLOAD_CHARS = 512 * 1024;
const payload = { blob: 'x'.repeat(PAYLOAD_CHARS) };

let w: ScheduleWorld;
beforeEach(async () => {
  w = await createWorld('schedmem', { SCHEDULE_MISFIRE_GRACE_MS: '1000', LEASE_BATCH_SIZE: '4', DELAYED_HORIZON_MS: '600000' });
});
afterEach(async () => {
  await killAllChildren();
  await w?.pg.end();
  await w?.db.drop();
});

function startSmallWorker(): Promise<ChildHandle> {
  return freePort().then((port) =>
    spawnService('dist/services/worker/main.js', { ...w.env, WORKER_ID: `schedmem-${Date.now()}`, METRICS_ADDR: `127.0.0.1:${port}` }, { nodeArgs: [`--max-old-space-size=${HEAP_MIB}`] }),
  );
}

/** Waits for `done`, failing at once (with its output) if the worker exits meanwhile. */
async function whileAlive(worker: ChildHandle, done: () => Promise<boolean>, what: string): Promise<void> {
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void worker.exited.then((e) => (exited = e));
  await waitFor(async () => {
    if (exited) throw new Error(`the worker exited (${JSON.stringify(exited)}): ${worker.output().slice(-2000)}`);
    return done();
  }, 90_000, what);
}

it(`a worker with a ${HEAP_MIB} MiB heap catches up ${TASKS} ticks of a 512 KiB payload, and each tick's task runs once`, async () => {
  const task = { type: 'noop', payload, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  // Down for ten minutes: the first pass fires the latest catch_up_limit missed ticks at once.
  await w.pg.query(
    `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, next_tick)
     VALUES ('default', 'big', '* * * * * *', $1, 'catch_up', $2, date_trunc('second', now()) - interval '10 minutes')`,
    [JSON.stringify(task), TASKS],
  );
  const worker = await startSmallWorker();
  await whileAlive(worker, async () => (await tickTasks(w.pg, 'big')).filter((t) => t.status === 'succeeded').length >= TASKS, 'the caught-up ticks to run');
  await w.pg.query('UPDATE schedules SET paused = true');
  expect(await worker.stop('SIGTERM', 20_000)).toBe(0);
  const tasks = await tickTasks(w.pg, 'big');
  expect(tasks.filter((t) => t.status === 'succeeded' && t.runs !== 1)).toEqual([]);
}, 150_000);

it(`a worker with a ${HEAP_MIB} MiB heap loads ${TASKS} delayed tasks of a 512 KiB payload due together, and each runs once, no earlier than due`, async () => {
  // Due within the loader's half horizon, beyond what the API would have indexed: one page of the loader.
  await w.pg.query(
    `INSERT INTO tasks (id, tenant, type, priority, payload, max_retries, status, run_at)
     SELECT gen_random_uuid(), 'default', 'noop', 'default', $1::jsonb, 0, 'scheduled', date_trunc('second', now()) + interval '6 seconds'
       FROM generate_series(1, $2)`,
    [JSON.stringify(payload), TASKS],
  );
  const worker = await startSmallWorker();
  type Row = { status: string; runs: number; early: number };
  const read = async (): Promise<Row[]> =>
    (
      await w.pg.query<Row>(
        `SELECT t.status::text AS status, (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id) AS runs,
                (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id AND r.started_at < t.run_at) AS early
           FROM tasks t WHERE t.type = 'noop'`,
      )
    ).rows;
  await whileAlive(worker, async () => (await read()).filter((t) => t.status === 'succeeded').length >= TASKS, 'the delayed tasks to run');
  expect(await worker.stop('SIGTERM', 20_000)).toBe(0);
  expect((await read()).filter((t) => t.runs !== 1 || t.early !== 0)).toEqual([]);
}, 150_000);

it(`a worker with a ${HEAP_MIB} MiB heap fires ${SCHEDULES} schedules of a 1000 KiB payload due at the same tick, each once`, async () => {
  const task = { type: 'noop', payload: { blob: 'x'.repeat(1000 * 1024) }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  // A yearly expression whose next tick is now: each schedule fires one tick, in the first pass.
  await w.pg.query(
    `INSERT INTO schedules (tenant, name, cron, task, next_tick)
     SELECT 'default', 's' || n, '0 0 1 1 *', $1, date_trunc('second', now()) FROM generate_series(1, $2) n`,
    [JSON.stringify(task), SCHEDULES],
  );
  const worker = await startSmallWorker();
  const read = async () => (await w.pg.query<{ status: string; runs: number }>(`SELECT t.status::text AS status, (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id) AS runs FROM tasks t WHERE t.schedule IS NOT NULL`)).rows;
  await whileAlive(worker, async () => (await read()).filter((t) => t.status === 'succeeded').length >= SCHEDULES, 'every schedule to fire');
  expect(await worker.stop('SIGTERM', 20_000)).toBe(0);
  const tasks = await read();
  expect([tasks.length, tasks.filter((t) => t.runs !== 1)]).toEqual([SCHEDULES, []]);
}, 150_000);
