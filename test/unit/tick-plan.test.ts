/**
 * The misfire rules on fixed clocks: ticks within the grace always fire, missed ones are dropped,
 * fired once or caught up (the latest catch_up_limit) by policy, and a month of missed
 * per-second ticks is planned in bounded time.
 */
import { MISSED_COUNT_CAP, planTicks, TickPlanInput } from '../../services/core/schedules/tick-plan';

const at = (iso: string) => new Date(iso);
const minutely = (next: string, misfire: TickPlanInput['misfire'], catch_up_limit = 10): TickPlanInput => ({ cron: '* * * * *', timezone: 'UTC', next_tick: at(next), misfire, catch_up_limit });
const GRACE = 60_000;

it('fires a due tick within the grace and moves to the first tick after now', () => {
  for (const misfire of ['skip', 'run_once', 'catch_up'] as const) {
    const plan = planTicks(minutely('2026-12-06T01:00:00Z', misfire), at('2026-12-06T01:00:00.250Z'), GRACE);
    expect(plan).toEqual({ fire: [at('2026-12-06T01:00:00Z')], missed: 0, lastTick: at('2026-12-06T01:00:00Z'), lastOutcome: 'fired', nextTick: at('2026-12-06T01:01:00Z') });
  }
});

it('counts a tick exactly one grace old as on time, and one a millisecond older as missed', () => {
  const s = minutely('2026-12-06T01:00:00Z', 'skip');
  expect(planTicks(s, at('2026-12-06T01:01:00.000Z'), GRACE).fire).toEqual([at('2026-12-06T01:00:00Z'), at('2026-12-06T01:01:00Z')]);
  expect(planTicks(s, at('2026-12-06T01:01:00.001Z'), GRACE)).toMatchObject({ fire: [at('2026-12-06T01:01:00Z')], missed: 1 });
});

describe('after ten minutes of downtime (ticks 01:00 … 01:10, now 01:10:30, 60 s of grace)', () => {
  const now = at('2026-12-06T01:10:30Z');
  it('skip: drops the missed ticks, fires the one within the grace', () => {
    expect(planTicks(minutely('2026-12-06T01:00:00Z', 'skip'), now, GRACE)).toEqual({ fire: [at('2026-12-06T01:10:00Z')], missed: 10, lastTick: at('2026-12-06T01:10:00Z'), lastOutcome: 'fired', nextTick: at('2026-12-06T01:11:00Z') });
  });
  it('run_once: fires the latest missed tick and the one within the grace', () => {
    expect(planTicks(minutely('2026-12-06T01:00:00Z', 'run_once'), now, GRACE)).toMatchObject({ fire: [at('2026-12-06T01:09:00Z'), at('2026-12-06T01:10:00Z')], missed: 9 });
  });
  it('catch_up: fires the latest catch_up_limit missed ticks, oldest first', () => {
    expect(planTicks(minutely('2026-12-06T01:00:00Z', 'catch_up', 3), now, GRACE)).toMatchObject({ fire: ['01:07', '01:08', '01:09', '01:10'].map((t) => at(`2026-12-06T${t}:00Z`)), missed: 7 });
    expect(planTicks(minutely('2026-12-06T01:00:00Z', 'catch_up', 100), now, GRACE)).toMatchObject({ fire: Array.from({ length: 11 }, (_, i) => at(`2026-12-06T01:${String(i).padStart(2, '0')}:00Z`)), missed: 0 });
  });
});

it('with nothing within the grace, skip records the latest missed tick as skipped; the others fire it', () => {
  const now = at('2026-12-06T01:10:30Z');
  const hourly = (misfire: TickPlanInput['misfire']): TickPlanInput => ({ cron: '0 * * * *', timezone: 'UTC', next_tick: at('2026-12-06T00:00:00Z'), misfire, catch_up_limit: 5 });
  expect(planTicks(hourly('skip'), now, GRACE)).toEqual({ fire: [], missed: 2, lastTick: at('2026-12-06T01:00:00Z'), lastOutcome: 'skipped_misfire', nextTick: at('2026-12-06T02:00:00Z') });
  expect(planTicks(hourly('run_once'), now, GRACE)).toEqual({ fire: [at('2026-12-06T01:00:00Z')], missed: 1, lastTick: at('2026-12-06T01:00:00Z'), lastOutcome: 'fired', nextTick: at('2026-12-06T02:00:00Z') });
  expect(planTicks(hourly('catch_up'), now, GRACE)).toMatchObject({ fire: [at('2026-12-06T00:00:00Z'), at('2026-12-06T01:00:00Z')], missed: 0, lastOutcome: 'fired' });
});

it('plans a per-second schedule down for a month in bounded time', () => {
  const s: TickPlanInput = { cron: '* * * * * *', timezone: 'Europe/Berlin', next_tick: at('2026-11-06T00:00:00Z'), misfire: 'catch_up', catch_up_limit: 1000 };
  const now = at('2026-12-06T00:00:00.400Z');
  const t0 = performance.now();
  const plan = planTicks(s, now, 2000);
  const took = performance.now() - t0;
  // Missed: before 23:59:58.400. The latest 1000 of them (23:43:19 … 23:59:58), then the two seconds within the grace.
  expect(plan.fire).toHaveLength(1002);
  expect(plan.fire[0]).toEqual(at('2026-12-05T23:43:19Z'));
  expect(plan.fire.slice(-3)).toEqual([at('2026-12-05T23:59:58Z'), at('2026-12-05T23:59:59Z'), at('2026-12-06T00:00:00Z')]);
  expect(plan.missed).toBe(MISSED_COUNT_CAP);
  expect(plan.nextTick).toEqual(at('2026-12-06T00:00:01Z'));
  // Walking all 2.6 million ticks would take minutes (~50 µs a step).
  expect(took).toBeLessThan(3000);
  const skip = planTicks({ ...s, misfire: 'skip' }, now, 2000);
  expect(skip.fire).toEqual([at('2026-12-05T23:59:59Z'), at('2026-12-06T00:00:00Z')]);
});

it('refuses to plan a schedule that is not due', () => {
  expect(() => planTicks(minutely('2026-12-06T01:01:00Z', 'skip'), at('2026-12-06T01:00:59Z'), GRACE)).toThrow(/not due/);
});
