/**
 * Cron expressions and their ticks, at fixed dates in New York and Berlin: the daylight-saving
 * rule of cron.ts (a time that does not exist fires once at the transition, a repeated one once at
 * its first occurrence, hour steps every real hour), seconds, refused expressions and zones, and the
 * backward walk the misfire planner uses agreeing with the forward one; yearly expressions on a day
 * whose clocks jump (Samoa skipped a whole one); then walks of four centuries,
 * and zones whose clocks move by half an hour, two hours, or twice a month apart, against the rule
 * applied one minute at a time.
 */
import { compileCron, CronError, inZone, nextTick, nextTicks, validateCron } from '../../services/core/schedules/cron';

const NY = 'America/New_York';
const at = (iso: string) => new Date(iso);
const iso = (ds: Date[]) => ds.map((d) => d.toISOString());

describe('daylight saving in America/New_York (2026: forward on 8 March at 02:00, back on 1 November at 02:00)', () => {
  it('fires a 02:30 that does not exist once, at the transition (03:00 EDT)', () => {
    const ticks = nextTicks({ cron: '30 2 * * *', timezone: NY }, at('2026-03-07T00:00:00Z'), 3);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-03-07T02:30:00-05:00', '2026-03-08T03:00:00-04:00', '2026-03-09T02:30:00-04:00']);
  });

  it('fires a 01:30 that happens twice once, at its first occurrence (EDT)', () => {
    const ticks = nextTicks({ cron: '30 1 * * *', timezone: NY }, at('2026-10-31T12:00:00Z'), 2);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-11-01T01:30:00-04:00', '2026-11-02T01:30:00-05:00']);
    // Asked from between the two 01:30s, the next is the next day's: the second one never fires.
    expect(inZone(nextTick({ cron: '30 1 * * *', timezone: NY }, at('2026-11-01T06:00:00Z'))!, NY)).toBe('2026-11-02T01:30:00-05:00');
  });

  it('fires an hourly schedule every real hour through the fall-back, the repeated hour included', () => {
    const ticks = nextTicks({ cron: '0 * * * *', timezone: NY }, at('2026-11-01T03:30:00Z'), 5);
    expect(iso(ticks)).toEqual(['2026-11-01T04:00:00.000Z', '2026-11-01T05:00:00.000Z', '2026-11-01T06:00:00.000Z', '2026-11-01T07:00:00.000Z', '2026-11-01T08:00:00.000Z']);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-11-01T00:00:00-04:00', '2026-11-01T01:00:00-04:00', '2026-11-01T01:00:00-05:00', '2026-11-01T02:00:00-05:00', '2026-11-01T03:00:00-05:00']);
  });

  it('fires an hourly schedule every real hour through the spring-forward (02:00 does not exist)', () => {
    const ticks = nextTicks({ cron: '0 * * * *', timezone: NY }, at('2026-03-08T05:30:00Z'), 3);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-03-08T01:00:00-05:00', '2026-03-08T03:00:00-04:00', '2026-03-08T04:00:00-04:00']);
  });

  // Minutes stepping inside a fixed hour: croner 11 alone skips them in a nonexistent hour and
  // fires them in both occurrences of a repeated one; cron.ts applies the rule over it.
  it('fires */15 within a 02:00 hour that does not exist once at the transition', () => {
    const ticks = nextTicks({ cron: '*/15 2 * * *', timezone: NY }, at('2026-03-08T00:00:00Z'), 1);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-03-08T03:00:00-04:00']);
  });
  it('fires */20 within a repeated 01:00 hour only in its first occurrence', () => {
    const ticks = nextTicks({ cron: '*/20 1 * * *', timezone: NY }, at('2026-11-01T04:30:00Z'), 4);
    expect(ticks.map((d) => inZone(d, NY))).toEqual(['2026-11-01T01:00:00-04:00', '2026-11-01T01:20:00-04:00', '2026-11-01T01:40:00-04:00', '2026-11-02T01:00:00-05:00']);
  });
});

it('fires a nonexistent 02:30 in Europe/Berlin once, at 03:00 CEST (29 March 2026)', () => {
  const ticks = nextTicks({ cron: '30 2 * * *', timezone: 'Europe/Berlin' }, at('2026-03-28T12:00:00Z'), 2);
  expect(ticks.map((d) => inZone(d, 'Europe/Berlin'))).toEqual(['2026-03-29T03:00:00+02:00', '2026-03-30T02:30:00+02:00']);
});

it('takes six fields with seconds first, and nicknames', () => {
  expect(iso(nextTicks({ cron: '*/10 * * * * *', timezone: 'UTC' }, at('2026-12-06T01:00:05.500Z'), 3))).toEqual(['2026-12-06T01:00:10.000Z', '2026-12-06T01:00:20.000Z', '2026-12-06T01:00:30.000Z']);
  expect(iso(nextTicks({ cron: '* * * * * *', timezone: 'UTC' }, at('2026-12-06T01:00:00.000Z'), 2))).toEqual(['2026-12-06T01:00:01.000Z', '2026-12-06T01:00:02.000Z']);
  expect(iso(nextTicks({ cron: '@hourly', timezone: 'UTC' }, at('2026-12-06T01:00:00Z'), 1))).toEqual(['2026-12-06T02:00:00.000Z']);
  expect(inZone(nextTick({ cron: '@daily', timezone: 'Asia/Kolkata' }, at('2026-12-06T01:00:00Z'))!, 'Asia/Kolkata')).toBe('2026-12-07T00:00:00+05:30');
});

describe('refuses', () => {
  it.each([
    ['* * * *', /4 fields/],
    ['* * * * * * *', /7 fields/],
    ['61 * * * *', /not valid/],
    ['* 25 * * *', /not valid/],
    ['nonsense here x y z', /not valid/],
    ['0 0 30 2 *', /never fires/],
  ])('the expression %s', (cron, message) => {
    let err: unknown;
    try {
      validateCron({ cron, timezone: 'UTC' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CronError);
    expect((err as CronError).field).toBe('cron');
    expect((err as CronError).message).toMatch(message);
  });

  it.each(['Mars/Olympus', '', 'EST5EDT-nope', 'x'.repeat(65)])('the zone %j', (timezone) => {
    expect(() => validateCron({ cron: '* * * * *', timezone })).toThrow(expect.objectContaining({ field: 'timezone' }));
  });
});

describe('walking back (the misfire planner) agrees with walking forward', () => {
  it.each([
    ['30 2 * * *', NY, '2026-03-05T00:00:00Z'],
    ['30 1 * * *', NY, '2026-10-29T00:00:00Z'],
    ['0 * * * *', NY, '2026-10-31T22:00:00Z'],
    ['0 * * * *', NY, '2026-03-07T22:00:00Z'],
    ['*/7 * * * *', 'Europe/Berlin', '2026-10-25T00:00:00Z'],
    ['*/15 2 * * *', NY, '2026-03-06T00:00:00Z'],
    ['*/20 1 * * *', NY, '2026-10-31T00:00:00Z'],
    ['*/10 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z'],
    ['*/5 * * * * *', 'UTC', '2026-12-06T00:00:00Z'],
  ])('%s in %s from %s', (cron, timezone, from) => {
    const c = compileCron({ cron, timezone });
    const forward = nextTicks({ cron, timezone }, at(from), 12);
    const end = new Date(forward[forward.length - 1]!.getTime() + 1);
    expect(iso(c.previous(12, end).reverse())).toEqual(iso(forward));
    // Strictly before: a tick at the reference itself is not one of them.
    expect(iso(c.previous(1, forward[5]!))).toEqual(iso([forward[4]!]));
  });
});

describe('ticks a year apart on a day whose clocks jump (the change is searched near the runs, not year by year)', () => {
  it.each([
    // Minutes stepping through 02:00-03:00 on 8 March 2026, which New York skips: once, at 03:00 EDT.
    ['*/20 2 8 3 *', NY, '2025-04-01T00:00:00Z', ['2026-03-08T07:00:00.000Z', '2027-03-08T07:00:00.000Z', '2027-03-08T07:20:00.000Z', '2027-03-08T07:40:00.000Z']],
    ['*/10 2 29 3 *', 'Europe/Berlin', '2025-04-01T00:00:00Z', ['2026-03-29T01:00:00.000Z', '2027-03-29T00:00:00.000Z', '2027-03-29T00:10:00.000Z', '2027-03-29T00:20:00.000Z']],
    // Samoa skipped 30 December 2011 (UTC-10 to UTC+14): noon that day fires at the jump, 31 December 00:00 local.
    ['0 12 30 12 *', 'Pacific/Apia', '2010-06-01T00:00:00Z', ['2010-12-30T22:00:00.000Z', '2011-12-30T10:00:00.000Z', '2012-12-29T22:00:00.000Z', '2013-12-29T22:00:00.000Z']],
  ])('%s in %s', (cron, timezone, from, expected) => {
    const ticks = nextTicks({ cron: cron as string, timezone: timezone as string }, at(from as string), 4);
    expect(iso(ticks)).toEqual(expected);
    expect(iso(compileCron({ cron: cron as string, timezone: timezone as string }).previous(4, new Date(ticks[3]!.getTime() + 1)).reverse())).toEqual(expected);
  });
});

describe('long walks and other zones, against the rule applied minute by minute', () => {
  it('lists a hundred leap days (four centuries) in order, skipping 2100, 2200 and 2300', () => {
    const ticks = nextTicks({ cron: '0 0 29 2 *', timezone: 'UTC' }, at('2026-12-06T00:00:00Z'), 100);
    const leap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
    const years: number[] = [];
    for (let y = 2027; years.length < 100; y++) if (leap(y)) years.push(y);
    expect(iso(ticks)).toEqual(years.map((y) => `${y}-02-29T00:00:00.000Z`));
    // The backward walk meets the same days.
    expect(iso(compileCron({ cron: '0 0 29 2 *', timezone: 'UTC' }).previous(100, new Date(ticks[99]!.getTime() + 1)).reverse())).toEqual(iso(ticks));
  });

  /**
   * The documented rule, checked one real minute at a time through the zone's wall clock: each
   * wall-clock time of `times` fires at its first occurrence on each local date; clocks jumping over
   * some of them fire once, at the jump.
   */
  function byMinutes(times: string[], timezone: string, from: string, to: string): string[] {
    const f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
    const wallAt = (t: number) => {
      const p = Object.fromEntries(f.formatToParts(t).map((x) => [x.type, x.value]));
      return { date: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}` };
    };
    const out: string[] = [];
    const fired = new Set<string>();
    let prev: { date: string; time: string } | null = null;
    for (let t = at(from).getTime() + 60_000; t <= at(to).getTime(); t += 60_000) {
      const { date, time } = wallAt(t);
      const skipped = prev !== null && prev.date === date ? times.filter((x) => prev!.time < x && x < time) : [];
      const due = [...skipped, ...(times.includes(time) ? [time] : [])].filter((x) => !fired.has(`${date} ${x}`));
      if (due.length > 0) out.push(new Date(t).toISOString());
      for (const x of [...skipped, time]) fired.add(`${date} ${x}`);
      prev = { date, time };
    }
    return out;
  }

  const everyMinutes = (hours: number[], step: number) => hours.flatMap((h) => Array.from({ length: 60 / step }, (_, i) => `${String(h).padStart(2, '0')}:${String(i * step).padStart(2, '0')}`));

  it.each([
    // Morocco leaves summer time for Ramadan: back on 15 February, forward on 22 March (2026).
    ['*/20 2 * * *', 'Africa/Casablanca', everyMinutes([2], 20), '2026-02-13T00:00:00Z', '2026-02-17T00:00:00Z'],
    ['*/20 2 * * *', 'Africa/Casablanca', everyMinutes([2], 20), '2026-03-20T00:00:00Z', '2026-03-24T00:00:00Z'],
    ['0 3 * * *', 'Africa/Casablanca', ['03:00'], '2026-03-20T00:00:00Z', '2026-03-24T00:00:00Z'],
    // Lord Howe moves its clocks by half an hour: forward on 4 October, back on 5 April.
    ['*/10 2 * * *', 'Australia/Lord_Howe', everyMinutes([2], 10), '2026-10-02T00:00:00Z', '2026-10-06T00:00:00Z'],
    ['*/10 1 * * *', 'Australia/Lord_Howe', everyMinutes([1], 10), '2026-04-03T00:00:00Z', '2026-04-07T00:00:00Z'],
    // Troll (Antarctica) moves them by two hours.
    ['*/30 1,2 * * *', 'Antarctica/Troll', everyMinutes([1, 2], 30), '2026-03-27T00:00:00Z', '2026-03-31T00:00:00Z'],
  ])('%s in %s', (cron, timezone, times, from, to) => {
    const expected = byMinutes(times as string[], timezone as string, from as string, to as string);
    const ticks = nextTicks({ cron: cron as string, timezone: timezone as string }, at(from as string), expected.length + 1).filter((d) => d <= at(to as string));
    expect(iso(ticks)).toEqual(expected);
  });
});
