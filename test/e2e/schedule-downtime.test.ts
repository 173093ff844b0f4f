/**
 * Every worker stopped for a few ticks, then three started again, with a grace of 1.5 s: ticks
 * missed meanwhile are dropped (skip), fired once (run_once, the latest) or caught up (catch_up,
 * the latest catch_up_limit), and ticks within the grace of the restart fire under every policy.
 */
import { killAllChildren } from '../support/processes';
import { createSchedule, createWorld, ScheduleWorld, seconds, startWorkers, stopWorkers, tickTasks } from '../support/schedule-workers';
import { waitFor } from '../support/stack';

const GRACE_MS = 1500;
const POLICIES = { skip: 0, run_once: 1, catch_up: 2 } as const;

let w: ScheduleWorld;
beforeAll(async () => {
  w = await createWorld('schedmiss', { SCHEDULE_MISFIRE_GRACE_MS: String(GRACE_MS) });
  await startWorkers(w, 3);
});
afterAll(async () => {
  await killAllChildren();
  await w?.pg.end();
  await w?.db.drop();
});

it('after all workers were down for four seconds, each misfire policy keeps what it promises', async () => {
  for (const misfire of Object.keys(POLICIES)) await createSchedule(w.pg, misfire, { misfire, catch_up_limit: POLICIES.catch_up, nextTick: "date_trunc('second', now()) + interval '1 second'" });
  await waitFor(async () => (await tickTasks(w.pg, 'skip')).length >= 2, 10_000, 'ticks before the stop');
  expect(await stopWorkers(w)).toEqual([0, 0, 0]);
  const last = new Map<string, number>();
  for (const p of Object.keys(POLICIES)) last.set(p, Math.max(...(await tickTasks(w.pg, p)).map((t) => t.tick)));
  // Down until the database's clock is 5 s past the latest tick fired (at least 4 s): the first
  // pass after the restart then finds at least three ticks older than the grace (1.5 s), one more
  // than catch_up keeps. A fixed sleep alone found one fewer when the last tick fired just before
  // the stop and the workers came back fast.
  const downUntil = Math.max(...last.values()) + 5000;
  await new Promise((r) => setTimeout(r, 4000));
  let restartedAt = 0;
  await waitFor(async () => {
    const { rows } = await w.pg.query<{ now: Date }>('SELECT now()');
    restartedAt = rows[0]!.now.getTime();
    return restartedAt >= downUntil;
  }, 10_000, 'the downtime to pass');
  await startWorkers(w, 3);
  await waitFor(async () => {
    for (const p of Object.keys(POLICIES)) if ((await tickTasks(w.pg, p)).filter((t) => t.createdAt >= restartedAt).length < 3) return false;
    return true;
  }, 15_000, 'ticks after the restart');
  await w.pg.query('UPDATE schedules SET paused = true');
  await waitFor(async () => {
    for (const p of Object.keys(POLICIES)) if (!(await tickTasks(w.pg, p)).every((t) => t.status === 'succeeded')) return false;
    return true;
  }, 10_000, 'every task to succeed');
  expect(await stopWorkers(w)).toEqual([0, 0, 0]);

  for (const [policy, kept] of Object.entries(POLICIES)) {
    const tasks = await tickTasks(w.pg, policy);
    expect([policy, tasks.filter((t) => t.status !== 'succeeded' || t.runs !== 1)]).toEqual([policy, []]);
    const before = tasks.filter((t) => t.createdAt < restartedAt).map((t) => t.tick);
    expect([policy, before]).toEqual([policy, seconds(before[0]!, last.get(policy)!)]);
    const after = tasks.filter((t) => t.createdAt >= restartedAt);
    // The first pass after the restart decided on the backlog, on the database's clock: its
    // transaction's now() is the tasks' created_at.
    const firstPass = Math.min(...after.map((t) => t.createdAt));
    const missed = seconds(last.get(policy)! + 1000, firstPass - GRACE_MS - 1);
    expect(missed.length).toBeGreaterThanOrEqual(3);
    const ticks = after.map((t) => t.tick);
    const end = ticks[ticks.length - 1]!;
    const expected = [...missed.slice(missed.length - kept), ...seconds(firstPass - GRACE_MS, end)].filter((t, i, a) => a.indexOf(t) === i);
    expect([policy, ticks]).toEqual([policy, expected]);
  }
  // Every schedule's state says what became of its latest tick.
  const { rows: states } = await w.pg.query("SELECT name, last_outcome FROM schedules ORDER BY name");
  expect(states).toEqual([{ name: 'catch_up', last_outcome: 'fired' }, { name: 'run_once', last_outcome: 'fired' }, { name: 'skip', last_outcome: 'fired' }]);
}, 60_000);
