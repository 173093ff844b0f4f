/**
 * The misfire rules on fixed clocks: ticks within the grace always fire, missed ones are dropped,
 * fired once or caught up (the latest catch_up_limit) by policy, and a month of missed
 * per-second ticks is planned in bounded time; the kept ticks are the old walk's (catch_up_limit
 * steps back, then filtered) across daylight-saving changes, found in as many steps as were missed.
 */
import * as cronModule from '../../services/core/schedules/cron';
import { compileCron, nextTick } from '../../services/core/schedules/cron';
import { MISSED_COUNT_CAP, planTicks, TickPlan, TickPlanInput } from '../../services/core/schedules/tick-plan';

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

describe('the catch-up walk stops at next_tick', () => {
  /** planTicks's missed-tick walk before it stopped at next_tick: catch_up_limit steps back, then filtered. */
  function latestMissedBefore(s: TickPlanInput, now: Date, graceMs: number): { latest: Date[]; kept: Date[] } | null {
    const cutoff = new Date(now.getTime() - graceMs);
    if (s.next_tick >= cutoff) return null;
    const keep = s.misfire === 'skip' ? 0 : s.misfire === 'run_once' ? 1 : s.catch_up_limit;
    const latest = compileCron(s)
      .previous(Math.max(keep, 1), cutoff)
      .filter((t) => t >= s.next_tick)
      .reverse();
    if (latest.length === 0) latest.push(s.next_tick);
    return { latest, kept: latest.slice(latest.length - keep) };
  }

  /** What the old walk planned, from its kept ticks: the rest of planTicks did not change. */
  function expectSameAsOldWalk(s: TickPlanInput, now: Date): void {
    const plan = planTicks(s, now, GRACE);
    const old = latestMissedBefore(s, now, GRACE);
    const recent = plan.fire.filter((t) => t.getTime() >= now.getTime() - GRACE);
    expect({ kept: plan.fire.slice(0, plan.fire.length - recent.length), lastTick: plan.lastTick }).toEqual({
      kept: old?.kept ?? [],
      lastTick: recent[recent.length - 1] ?? old!.latest[old!.latest.length - 1],
    });
  }

  // Each with outages from one missed tick (or none) to about 40: more than the largest
  // catch_up_limit below, so the walk is cut by the limit as well as by next_tick. Longer ones only
  // make planTicks count more dropped ticks, which this comparison does not look at.
  const MIN = 60_000;
  const DAY = 86_400_000;
  const expressions: [string, number[]][] = [
    ['* * * * *', [2 * MIN, 40 * MIN]],
    ['*/30 * * * * *', [2 * MIN, 20 * MIN]],
    ['0 * * * *', [90 * MIN, 5 * 60 * MIN, 2 * DAY]],
    ['*/20 1 * * *', [5 * 60 * MIN, 3 * DAY, 14 * DAY]],
    ['30 2 * * *', [90 * MIN, 5 * 60 * MIN, 3 * DAY, 40 * DAY]],
    ['0 3 * * *', [90 * MIN, 5 * 60 * MIN, 3 * DAY, 40 * DAY]],
    ['@daily', [5 * 60 * MIN, 3 * DAY, 40 * DAY]],
    ['15 1 * * 0', [5 * 60 * MIN, 3 * DAY, 40 * DAY, 300 * DAY]],
    ['0 0 1 1 *', [800 * DAY]],
  ];
  // Each zone with times just after its clocks change, forward and back (Lord Howe's by half an hour).
  const zones: [string, string[]][] = [
    ['UTC', ['2026-03-29T03:10:20Z', '2026-11-01T07:45:00Z']],
    ['Europe/Berlin', ['2026-03-29T03:10:20Z', '2026-10-25T02:30:00Z']],
    ['America/New_York', ['2026-03-08T08:00:40Z', '2026-11-01T07:45:00Z']],
    ['Australia/Lord_Howe', ['2026-04-05T00:10:00Z', '2026-10-04T00:20:00Z']],
  ];
  const policies: Pick<TickPlanInput, 'misfire' | 'catch_up_limit'>[] = [
    { misfire: 'skip', catch_up_limit: 10 },
    { misfire: 'run_once', catch_up_limit: 10 },
    { misfire: 'catch_up', catch_up_limit: 1 },
    { misfire: 'catch_up', catch_up_limit: 4 },
    { misfire: 'catch_up', catch_up_limit: 25 },
  ];

  it.each(zones)('keeps the same ticks as walking catch_up_limit ticks back and filtering, in %s, across its daylight-saving changes', (timezone, nows) => {
    for (const [cron, spans] of expressions)
      for (const iso of nows)
        for (const span of spans) {
          const now = at(iso);
          const next_tick = nextTick({ cron, timezone }, new Date(now.getTime() - span - 1));
          if (!next_tick || next_tick > now) continue;
          for (const p of policies) expectSameAsOldWalk({ cron, timezone, next_tick, ...p }, now);
        }
  });

  it('keeps the same ticks with the largest catch_up_limit', () => {
    for (const [cron, timezone, next, now] of [
      ['0 0 1 1 *', 'UTC', '2026-01-01T00:00:00Z', '2026-01-01T00:02:00Z'],
      ['0 3 * * *', 'Europe/Berlin', '2026-03-29T01:00:00Z', '2026-03-29T01:02:00Z'],
      ['*/20 1 * * *', 'America/New_York', '2026-10-30T05:00:00Z', '2026-11-01T07:00:00Z'],
      ['* * * * *', 'UTC', '2026-12-05T00:00:00Z', '2026-12-06T00:00:00Z'],
    ] as const)
      expectSameAsOldWalk({ cron, timezone, next_tick: at(next), misfire: 'catch_up', catch_up_limit: 1000 }, at(now));
  });

  /** Cron steps a plan takes: ticks walked back (a walk that found none counts one) and forward. */
  function stepsOf(s: TickPlanInput, now: Date): { back: number; forward: number; plan: TickPlan } {
    const steps = { back: 0, forward: 0 };
    const real = cronModule.compileCron;
    const spy = jest.spyOn(cronModule, 'compileCron').mockImplementation((spec) => {
      const c = real(spec);
      return {
        next: (after) => (steps.forward++, c.next(after)),
        previous: (n, before) => {
          const out = c.previous(n, before);
          steps.back += Math.max(1, out.length);
          return out;
        },
      };
    });
    try {
      const plan = planTicks(s, now, GRACE);
      return { ...steps, plan };
    } finally {
      spy.mockRestore();
    }
  }

  it.each([
    ['0 0 1 1 *', 'UTC', '2026-01-01T00:00:00Z', '2026-01-01T00:02:00Z', 1],
    ['0 0 1 1 *', 'Europe/Berlin', '2025-12-31T23:00:00Z', '2027-12-31T23:02:00Z', 3],
    ['0 3 * * *', 'Europe/Berlin', '2026-03-28T02:00:00Z', '2026-03-29T01:02:00Z', 2],
    ['*/15 * * * *', 'America/New_York', '2026-11-01T05:00:00Z', '2026-11-01T07:02:00Z', 9],
    ['* * * * *', 'UTC', '2026-12-05T23:00:00Z', '2026-12-06T00:00:30Z', 60],
  ] as const)('walks back as many steps as there are missed ticks, not catch_up_limit (%s in %s)', (cron, timezone, next, now, missedTicks) => {
    const s: TickPlanInput = { cron, timezone, next_tick: at(next), misfire: 'catch_up', catch_up_limit: 1000 };
    const { back, forward, plan } = stepsOf(s, at(now));
    expect(plan.fire.filter((t) => t < new Date(at(now).getTime() - GRACE))).toHaveLength(missedTicks);
    // One more than the missed ticks: the step that passes next_tick ends the walk.
    expect(back).toBeGreaterThanOrEqual(missedTicks);
    expect(back).toBeLessThanOrEqual(missedTicks + 1);
    // The first tick within the grace, each one in it, and the next after now.
    expect(forward).toBeLessThanOrEqual(plan.fire.length - missedTicks + 2);
  });

  it('walks back at most catch_up_limit steps when more were missed', () => {
    const s: TickPlanInput = { cron: '* * * * * *', timezone: 'Europe/Berlin', next_tick: at('2026-11-06T00:00:00Z'), misfire: 'catch_up', catch_up_limit: 50 };
    const { back, plan } = stepsOf(s, at('2026-12-06T00:00:00.400Z'));
    // Missed: before 23:59:00.400; the latest 50 are 23:58:11 … 23:59:00.
    expect(plan.fire.slice(0, 50)).toEqual(Array.from({ length: 50 }, (_, i) => new Date(at('2026-12-05T23:58:11Z').getTime() + i * 1000)));
    expect(back).toBe(50);
  });
});
