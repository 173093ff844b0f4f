/**
 * Cron expressions and their ticks, at fixed dates in New York and Berlin: the daylight-saving
 * rule of cron.ts (a time that does not exist fires once at the transition, a repeated one once at
 * its first occurrence, hour steps every real hour), seconds, refused expressions and zones, and the
 * backward walk the misfire planner uses agreeing with the forward one.
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
