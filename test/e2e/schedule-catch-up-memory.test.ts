/**
 * A schedule catching up many ticks of a large payload, on a worker with a small heap (the prod
 * entrypoint sizes the heap to the container, 192 MiB in a 256 MiB one): every tick repeats the
 * one payload, so a pass must not hold a copy per tick.
 */
import { killAllChildren, spawnService, freePort, ChildHandle } from '../support/processes';
import { createWorld, ScheduleWorld, tickTasks } from '../support/schedule-workers';
import { waitFor } from '../support/stack';

const TICKS = 300;
const PAYLOAD_CHARS = 512 * 1024;

let w: ScheduleWorld;
let worker: ChildHandle | undefined;
beforeAll(async () => {
  w = await createWorld('schedmem', { SCHEDULE_MISFIRE_GRACE_MS: '1000', LEASE_BATCH_SIZE: '4' });
});
afterAll(async () => {
  await killAllChildren();
  await w?.pg.end();
  await w?.db.drop();
});

it(`a worker with a 160 MiB heap catches up ${TICKS} ticks of a 512 KiB payload, and each tick's task runs once`, async () => {
  const task = { type: 'noop', payload: { blob: 'x'.repeat(PAYLOAD_CHARS) }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  // Down for ten minutes: the first pass fires the latest catch_up_limit missed ticks at once.
  await w.pg.query(
    `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, next_tick)
     VALUES ('default', 'big', '* * * * * *', $1, 'catch_up', $2, date_trunc('second', now()) - interval '10 minutes')`,
    [JSON.stringify(task), TICKS],
  );
  worker = await spawnService('dist/services/worker/main.js', { ...w.env, WORKER_ID: `schedmem-${Date.now()}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }, { nodeArgs: ['--max-old-space-size=160'] });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void worker.exited.then((e) => (exited = e));
  await waitFor(async () => {
    if (exited) throw new Error(`the worker exited (${JSON.stringify(exited)}): ${worker!.output().slice(-2000)}`);
    const done = (await tickTasks(w.pg, 'big')).filter((t) => t.status === 'succeeded');
    return done.length >= TICKS;
  }, 90_000, 'the caught-up ticks to run');
  await w.pg.query('UPDATE schedules SET paused = true');
  expect(await worker.stop('SIGTERM', 20_000)).toBe(0);
  const tasks = await tickTasks(w.pg, 'big');
  expect(tasks.filter((t) => t.status === 'succeeded' && t.runs !== 1)).toEqual([]);
}, 150_000);
