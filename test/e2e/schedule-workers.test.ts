/**
 * A per-second schedule on three real worker processes (no leader among them) for ten ticks:
 * each tick creates exactly one task, on time, and each task runs once and succeeds.
 */
import { killAllChildren } from '../support/processes';
import { createSchedule, createWorld, ScheduleWorld, seconds, startWorkers, stopWorkers, tickTasks } from '../support/schedule-workers';
import { waitFor } from '../support/stack';

let w: ScheduleWorld;
beforeAll(async () => {
  w = await createWorld('sched3', {});
  await startWorkers(w, 3);
});
afterAll(async () => {
  await killAllChildren();
  await w?.pg.end();
  await w?.db.drop();
});

it('fires a per-second schedule once per tick across three workers for ten ticks', async () => {
  await createSchedule(w.pg, 'every-second', { nextTick: "date_trunc('second', now()) + interval '1 second'" });
  await waitFor(async () => (await tickTasks(w.pg, 'every-second')).length >= 10, 20_000, 'ten ticks');
  await w.pg.query(`UPDATE schedules SET paused = true WHERE name = 'every-second'`);
  await waitFor(async () => (await tickTasks(w.pg, 'every-second')).every((t) => t.status === 'succeeded'), 10_000, 'every task to succeed');
  expect(await stopWorkers(w)).toEqual([0, 0, 0]);
  const tasks = await tickTasks(w.pg, 'every-second');
  expect(tasks.length).toBeGreaterThanOrEqual(10);
  // One task per second from the first tick to the last, none missing, none twice.
  expect(tasks.map((t) => t.tick)).toEqual(seconds(tasks[0]!.tick, tasks[tasks.length - 1]!.tick));
  // Each ran once, and was created on time (a worker wakes for the tick, not on a poll).
  expect(tasks.filter((t) => t.status !== 'succeeded' || t.runs !== 1)).toEqual([]);
  const late = tasks.map((t) => t.createdAt - t.tick);
  expect(Math.max(...late)).toBeLessThan(1000);
  // At most one in ten a little late (a loaded machine), none by a second.
  expect(late.filter((ms) => ms > 250).length).toBeLessThanOrEqual(1);
}, 60_000);
