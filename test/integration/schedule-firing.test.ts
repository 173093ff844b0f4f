/**
 * Firing cron schedules against real Postgres and Redis: exactly one task per tick with several
 * firers racing, a failed insert that leaves the schedule where it was, each misfire policy after
 * downtime, the overlap policy, pausing, and the ticker waking for a schedule's next tick.
 */
import type { Pool } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { createRegistry, initCounters, workerMetrics } from '../../services/core/observability/metrics';
import { fireDueSchedules, FireResult } from '../../services/core/schedules/fire-due';
import type { ScheduleTask } from '../../services/core/schedules/schedule';
import { updateSchedule } from '../../services/core/schedules/schedule-store';
import { ScheduleTicker } from '../../services/worker/schedule-ticker';
import { silentLog, Stack, waitFor } from '../support/stack';
import { resettableStack } from '../support/stack-reset';

let stack: Stack;
const shared = resettableStack();
beforeEach(() => {
  stack = shared.current();
});

const task: ScheduleTask = { type: 'noop', payload: { n: 1 }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const deps = () => ({ pool: stack.pool, queue: stack.queue, log: silentLog });

interface NewSchedule {
  name: string;
  cron?: string;
  misfire?: 'skip' | 'run_once' | 'catch_up';
  catch_up_limit?: number;
  overlap?: 'allow' | 'skip';
  paused?: boolean;
  /** SQL for next_tick, evaluated by Postgres. */
  nextTick: string;
}

async function createSchedule(s: NewSchedule, pool: Pool = stack.pool): Promise<void> {
  await pool.query(
    `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, overlap, paused, next_tick)
     VALUES ('acme', $1, $2, $3, $4, $5, $6, $7, ${s.nextTick})`,
    [s.name, s.cron ?? '* * * * * *', JSON.stringify(task), s.misfire ?? 'run_once', s.catch_up_limit ?? 10, s.overlap ?? 'allow', s.paused ?? false],
  );
}

async function scheduleRow(name: string): Promise<{ next_tick: Date | null; last_tick: Date | null; last_outcome: string | null; updated_at: Date }> {
  const { rows } = await stack.pool.query('SELECT next_tick, last_tick, last_outcome, updated_at FROM schedules WHERE tenant = $1 AND name = $2', ['acme', name]);
  return rows[0];
}

async function ticksOf(name: string): Promise<number[]> {
  const { rows } = await stack.pool.query<{ t: Date }>('SELECT scheduled_for AS t FROM tasks WHERE tenant = $1 AND schedule = $2 ORDER BY scheduled_for', ['acme', name]);
  return rows.map((r) => r.t.getTime());
}

const seconds = (fromMs: number, toMs: number): number[] => {
  const out: number[] = [];
  for (let t = Math.ceil(fromMs / 1000) * 1000; t <= toMs; t += 1000) out.push(t);
  return out;
};

it('fires each tick exactly once while five firers on their own pools race over twenty ticks', async () => {
  // Fifteen ticks are already due (within the grace) and five more come while the firers run.
  await createSchedule({ name: 'race', nextTick: "date_trunc('second', now()) - interval '14 seconds'" });
  const pools = Array.from({ length: 5 }, () => createPgPool(stack.dbUrl, 2, 'test-firer', silentLog));
  const results: FireResult[] = [];
  let stop = false;
  try {
    const firers = pools.map(async (pool) => {
      while (!stop) {
        results.push(await fireDueSchedules({ pool, queue: stack.queue, log: silentLog }, { batch: 10, graceMs: 60_000 }));
        await sleep(Math.random() * 3);
      }
    });
    await waitFor(async () => (await ticksOf('race')).length >= 20, 20_000, 'twenty ticks');
    stop = true;
    await Promise.all(firers);
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
  const ticks = await ticksOf('race');
  // One task per second, none missing between the first and the last.
  expect(ticks).toEqual(seconds(ticks[0]!, ticks[ticks.length - 1]!));
  // The schedule's lock decided every tick: no firer even tried to insert one a second time.
  expect(results.reduce((n, r) => n + r.existing, 0)).toBe(0);
  expect(results.reduce((n, r) => n + r.fired, 0)).toBe(ticks.length);
  expect(results.flatMap((r) => r.failed)).toEqual([]);
  const row = await scheduleRow('race');
  expect(row.last_tick!.getTime()).toBe(ticks[ticks.length - 1]);
  expect(row.next_tick!.getTime()).toBe(ticks[ticks.length - 1]! + 1000);
  // Every task reached Redis after its commit.
  const leased = await stack.queue.lease({ max: 100, visibilityMs: 10_000, owner: 'test' });
  expect(leased).toHaveLength(ticks.length);
}, 40_000);

it("a failed insert leaves its schedule where it was and the others fire; a failed advance leaves no task", async () => {
  await createSchedule({ name: 'broken', nextTick: "date_trunc('second', now()) - interval '2 seconds'" });
  await createSchedule({ name: 'fine', nextTick: "date_trunc('second', now()) - interval '2 seconds'" });
  await createSchedule({ name: 'stuck', nextTick: "date_trunc('second', now()) - interval '2 seconds'" });
  await stack.pool.query(`
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
    CREATE TRIGGER refuse_broken BEFORE INSERT ON tasks FOR EACH ROW WHEN (NEW.schedule = 'broken') EXECUTE FUNCTION refuse();
    CREATE TRIGGER refuse_stuck BEFORE UPDATE ON schedules FOR EACH ROW WHEN (NEW.name = 'stuck') EXECUTE FUNCTION refuse();`);
  const before = { broken: await scheduleRow('broken'), stuck: await scheduleRow('stuck') };
  const res = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(res.failed.map((f) => f.key.split('\u0000')[1]).sort()).toEqual(['broken', 'stuck']);
  expect(await scheduleRow('broken')).toEqual(before.broken);
  expect(await ticksOf('broken')).toEqual([]);
  // The task inserted before the advance failed was rolled back with it.
  expect(await scheduleRow('stuck')).toEqual(before.stuck);
  expect(await ticksOf('stuck')).toEqual([]);
  expect((await ticksOf('fine')).length).toBeGreaterThanOrEqual(3);
  expect((await scheduleRow('fine')).last_outcome).toBe('fired');
  // Left out, the failed ones do not hold the others back; once the fault is gone they catch up.
  // ('fine' fires every second, so a second boundary passed since may fire it again: only it.)
  const excluding = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000, exclude: res.failed.map((f) => f.key) });
  expect(excluding.failed).toEqual([]);
  expect(excluding.schedules).toBeLessThanOrEqual(1);
  expect(excluding.tasks.map((t) => t.schedule).filter((s) => s !== 'fine')).toEqual([]);
  expect(await scheduleRow('broken')).toEqual(before.broken);
  expect(await scheduleRow('stuck')).toEqual(before.stuck);
  await stack.pool.query('DROP TRIGGER refuse_broken ON tasks; DROP TRIGGER refuse_stuck ON schedules');
  const again = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(again.failed).toEqual([]);
  const broken = await ticksOf('broken');
  expect(broken[0]).toBe(before.broken.next_tick!.getTime());
  expect(broken).toEqual(seconds(broken[0]!, broken[broken.length - 1]!));
  expect((await ticksOf('stuck'))[0]).toBe(before.stuck.next_tick!.getTime());
});

describe('after 30 s of downtime (a per-second schedule, 5 s of grace)', () => {
  const GRACE = 5000;
  async function downtime(misfire: 'skip' | 'run_once' | 'catch_up') {
    await createSchedule({ name: misfire, misfire, catch_up_limit: 10, nextTick: "date_trunc('second', now()) - interval '30 seconds'" });
    const first = (await scheduleRow(misfire)).next_tick!.getTime();
    const res = await fireDueSchedules(deps(), { batch: 10, graceMs: GRACE });
    const row = await scheduleRow(misfire);
    // updated_at is now() of the firing transaction: the clock every decision used.
    const now = row.updated_at.getTime();
    const recent = seconds(now - GRACE, now);
    const missed = seconds(first, now - GRACE - 1);
    return { res, row, now, recent, missed, ticks: await ticksOf(misfire) };
  }

  it('skip drops the missed ticks and fires those within the grace', async () => {
    const { res, row, recent, missed, ticks } = await downtime('skip');
    expect(ticks).toEqual(recent);
    expect(res).toMatchObject({ fired: recent.length, skippedMisfire: missed.length, skippedOverlap: 0 });
    expect(row).toMatchObject({ last_tick: new Date(recent[recent.length - 1]!), last_outcome: 'fired', next_tick: new Date(recent[recent.length - 1]! + 1000) });
  });

  it('run_once fires the latest missed tick, then those within the grace', async () => {
    const { res, recent, missed, ticks } = await downtime('run_once');
    expect(ticks).toEqual([missed[missed.length - 1]!, ...recent]);
    expect(res).toMatchObject({ fired: recent.length + 1, skippedMisfire: missed.length - 1 });
  });

  it('catch_up fires the latest catch_up_limit missed ticks, then those within the grace', async () => {
    const { res, recent, missed, ticks } = await downtime('catch_up');
    expect(ticks).toEqual([...missed.slice(-10), ...recent]);
    expect(res).toMatchObject({ fired: recent.length + 10, skippedMisfire: missed.length - 10 });
  });
});

/** Makes the schedule's next tick the second after its latest, and waits until Postgres's clock reaches it. */
async function nextSecondDue(name: string): Promise<void> {
  const { rows } = await stack.pool.query<{ wait_ms: number }>(
    `UPDATE schedules SET next_tick = greatest(last_tick, date_trunc('second', now())) + interval '1 second' WHERE name = $1
     RETURNING extract(epoch FROM next_tick - clock_timestamp()) * 1000 AS wait_ms`,
    [name],
  );
  await sleep(Math.max(0, Number(rows[0]!.wait_ms)) + 20);
}

it('overlap skip: no tick fires while the previous task is unfinished, and the schedule moves on', async () => {
  await createSchedule({ name: 'exclusive', overlap: 'skip', misfire: 'catch_up', nextTick: "date_trunc('second', now()) - interval '3 seconds'" });
  // Four due ticks and no earlier task: only the latest fires (the others would overlap it).
  let res = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(res.fired).toBe(1);
  expect(res.skippedOverlap).toBeGreaterThanOrEqual(3);
  const [only] = await ticksOf('exclusive');
  await nextSecondDue('exclusive');
  res = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(res.fired).toBe(0);
  expect(res.skippedOverlap).toBeGreaterThanOrEqual(1);
  expect(await ticksOf('exclusive')).toEqual([only]);
  const row = await scheduleRow('exclusive');
  expect(row.last_outcome).toBe('skipped_overlap');
  expect(row.next_tick!.getTime()).toBeGreaterThan(row.last_tick!.getTime());
  // Once it has finished, the next due tick fires.
  await stack.pool.query(`UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE schedule = 'exclusive'`);
  await nextSecondDue('exclusive');
  res = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(res.fired).toBe(1);
  expect((await scheduleRow('exclusive')).last_outcome).toBe('fired');
});

it('overlap skip: an earlier task still running holds the next tick, though a later manual run has finished', async () => {
  await createSchedule({ name: 'exclusive-2', overlap: 'skip', nextTick: "date_trunc('second', now()) - interval '1 second'" });
  expect((await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 })).fired).toBe(1);
  await stack.pool.query(`UPDATE tasks SET status = 'running' WHERE schedule = 'exclusive-2'`);
  // A manual run (the newest task of the schedule) that has finished already.
  await stack.pool.query(
    `INSERT INTO tasks (id, tenant, type, priority, payload, status, attempts, max_retries, schedule, finished_at)
     VALUES (gen_random_uuid(), 'acme', 'noop', 'default', '{}', 'succeeded', 1, 0, 'exclusive-2', now())`,
  );
  await nextSecondDue('exclusive-2');
  const res = await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 });
  expect(res.fired).toBe(0);
  expect(res.skippedOverlap).toBeGreaterThanOrEqual(1);
  expect((await stack.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE schedule = 'exclusive-2' AND scheduled_for IS NOT NULL`)).rows[0].n).toBe(1);
});

it('a schedule resumed while a ticker pass holds it starts from after the wait, so no tick of the pause fires', async () => {
  await createSchedule({ name: 'held', paused: true, nextTick: "date_trunc('second', now()) - interval '20 seconds'" });
  const holder = await stack.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM schedules WHERE tenant = 'acme' AND name = 'held' FOR UPDATE`);
    const resuming = updateSchedule(stack.pool, 'acme', 'held', { paused: false });
    await sleep(1500);
    const released = Date.now();
    await holder.query('COMMIT');
    const row = await resuming;
    // Every second fires: the first tick is after the wait, not a second after the resume began.
    expect(row!.next_tick!.getTime()).toBeGreaterThan(released - 100);
  } finally {
    holder.release();
  }
});

it('a paused schedule never fires; resumed with a next_tick from now, it fires from there', async () => {
  await createSchedule({ name: 'paused', paused: true, nextTick: "date_trunc('second', now()) - interval '20 seconds'" });
  const before = await scheduleRow('paused');
  expect(await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 })).toMatchObject({ schedules: 0, fired: 0 });
  expect(await scheduleRow('paused')).toEqual(before);
  // Resuming recomputes next_tick from now (the API's store does that): no backlog of the pause fires.
  await stack.pool.query(`UPDATE schedules SET paused = false, next_tick = date_trunc('second', now()) + interval '1 second' WHERE name = 'paused'`);
  const resumedAt = (await scheduleRow('paused')).next_tick!.getTime();
  await sleep(Math.max(0, resumedAt - Date.now()) + 300);
  await waitFor(async () => (await fireDueSchedules(deps(), { batch: 10, graceMs: 60_000 })).fired > 0, 5000, 'the resumed schedule to fire');
  const ticks = await ticksOf('paused');
  expect(ticks[0]).toBe(resumedAt);
});

it('the ticker wakes for the next tick (not its poll), counts ticks and reports the lag', async () => {
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  initCounters(metrics, []);
  await createSchedule({ name: 'late-hourly', cron: '0 * * * *', misfire: 'skip', nextTick: "date_trunc('hour', now()) - interval '2 hours'" });
  await createSchedule({ name: 'secondly', misfire: 'skip', nextTick: "date_trunc('second', now()) + interval '1 second'" });
  // A poll of a minute: only waking at each next tick can fire the per-second schedule on time.
  const ticker = new ScheduleTicker({ pool: stack.pool, queue: stack.queue, metrics }, { pollMs: 60_000, graceMs: 60_000 }, silentLog);
  ticker.start();
  try {
    // Both due after the first pass: each fired by a wake of its own.
    await waitFor(async () => (await ticksOf('secondly')).length >= 2, 6000, 'two per-second ticks');
  } finally {
    await ticker.stop();
  }
  const ticks = await ticksOf('secondly');
  expect(ticks).toEqual(seconds(ticks[0]!, ticks[ticks.length - 1]!));
  // Each task was created within a fraction of a second of its tick.
  const { rows } = await stack.pool.query<{ late_ms: number }>(`SELECT extract(epoch FROM created_at - scheduled_for) * 1000 AS late_ms FROM tasks WHERE schedule = 'secondly'`);
  for (const r of rows) expect(Number(r.late_ms)).toBeLessThan(500);
  const text = await registry.metrics();
  const fired = Number(/schedule_ticks_total\{outcome="fired",service="worker"\} (\d+)/.exec(text)?.[1]);
  expect(fired).toBeGreaterThanOrEqual(ticks.length);
  // The hourly schedule's two missed ticks (the current hour's is more than a minute old or within it).
  expect(Number(/schedule_ticks_total\{outcome="skipped_misfire",service="worker"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
  expect(Number(/schedule_tick_lag_seconds\{service="worker"\} ([\d.e+-]+)/.exec(text)?.[1])).toBeLessThan(1);
  // A schedule left behind shows as lag: the gauge reads Postgres, not this process's memory.
  await stack.pool.query(`UPDATE schedules SET next_tick = date_trunc('hour', now()) - interval '1 hour', misfire = 'run_once' WHERE name = 'late-hourly'`);
  await stack.pool.query(`UPDATE schedules SET paused = true WHERE name = 'secondly'`);
  const lagTicker = new ScheduleTicker({ pool: stack.pool, queue: stack.queue, metrics }, { pollMs: 60_000, graceMs: 60_000 }, silentLog);
  // Pretend its firing keeps failing: excluded schedules still count in the lag.
  await stack.pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
    CREATE TRIGGER refuse_all BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION refuse();`);
  expect((await lagTicker.runOnce()).failed).toHaveLength(1);
  expect(Number(/schedule_tick_lag_seconds\{service="worker"\} ([\d.e+-]+)/.exec(await registry.metrics())?.[1])).toBeGreaterThanOrEqual(3600);
  // The failed schedule backs off: the next pass leaves it out (and so could fire the others).
  expect(await lagTicker.runOnce()).toMatchObject({ schedules: 0, failed: [] });
  expect(Number(/schedule_tick_lag_seconds\{service="worker"\} ([\d.e+-]+)/.exec(await registry.metrics())?.[1])).toBeGreaterThanOrEqual(3600);
});

it('a database clock set back (a forward step corrected) does not leave a schedule silent until the clock catches up with what a pass decided meanwhile', async () => {
  // What a pass leaves behind while the clock ran a day ahead: the tick it fired, and the next one, a day away.
  await createSchedule({ name: 'stepped', nextTick: "date_trunc('second', now()) + interval '1 day 1 second'" });
  await stack.pool.query(`UPDATE schedules SET last_tick = date_trunc('second', now()) + interval '1 day', last_outcome = 'fired' WHERE name = 'stepped'`);
  const { rows } = await stack.pool.query(
    `INSERT INTO tasks (id, tenant, type, priority, payload, max_retries, schedule, scheduled_for, status)
     VALUES (gen_random_uuid(), 'acme', 'noop', 'default', '{}', 0, 'stepped', date_trunc('second', now()) + interval '1 day', 'succeeded') RETURNING scheduled_for`,
  );
  const fired = (rows[0] as { scheduled_for: Date }).scheduled_for.getTime();
  const start = Date.now();
  await fireDueSchedules(deps(), { batch: 100, graceMs: 5000 });
  // The schedule goes on from the clock as it is now: its next tick is a second away, not a day.
  expect((await scheduleRow('stepped')).next_tick!.getTime()).toBeLessThan(start + 5000);
  await sleep(2100);
  await fireDueSchedules(deps(), { batch: 100, graceMs: 5000 });
  const ticks = await ticksOf('stepped');
  expect(ticks.filter((t) => t < fired).length).toBeGreaterThanOrEqual(1);
  // Each tick still has one task: the one fired ahead of time is not fired again.
  expect(new Set(ticks).size).toBe(ticks.length);
});
