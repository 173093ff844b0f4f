/**
 * Cron expressions of schedules, read by croner (a maintained parser with time-zone support): 5
 * fields, or 6 with seconds first, or a nickname (@hourly, @daily, …), in an IANA time zone.
 *
 * Daylight saving (docs/scheduling.md): a wall-clock time that does not exist that day (02:30 when
 * clocks jump from 02:00 to 03:00) fires once, at the transition; a wall-clock time that happens
 * twice (01:30 when clocks go back) fires once, at its first occurrence. Fields that step through
 * the hours (`0 * * * *`) keep firing every real hour, the repeated one included.
 */
import { Cron } from 'croner';

export interface CronSpec {
  cron: string;
  timezone: string;
}

/** Why an expression or zone is refused, naming the field at fault. */
export class CronError extends Error {
  constructor(
    readonly field: 'cron' | 'timezone',
    message: string,
  ) {
    super(message);
  }
}

/** True when `tz` is an IANA time-zone name this runtime knows. */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function parse(spec: CronSpec): Cron {
  if (!isTimeZone(spec.timezone)) throw new CronError('timezone', `timezone '${spec.timezone}' is not an IANA time-zone name (e.g. UTC, Europe/Berlin)`);
  const expr = spec.cron.trim();
  const fields = expr.split(/\s+/).length;
  if (!expr.startsWith('@') && fields !== 5 && fields !== 6) {
    throw new CronError('cron', `cron '${spec.cron}' has ${fields} fields; 5 (minute hour day month weekday) or 6 (seconds first) are accepted`);
  }
  try {
    return new Cron(expr, { timezone: spec.timezone, paused: true });
  } catch (err) {
    throw new CronError('cron', `cron '${spec.cron}' is not valid: ${(err as Error).message.replace(/^CronPattern: /, '')}`);
  }
}

/**
 * Checks an expression and zone; throws CronError naming the field at fault, also for an
 * expression that never fires (30 February).
 */
export function validateCron(spec: CronSpec, now = new Date()): void {
  if (nextTicks(spec, now, 1).length === 0) throw new CronError('cron', `cron '${spec.cron}' never fires`);
}

/** The next `n` fire times strictly after `after` (fewer when the expression runs out). */
export function nextTicks(spec: CronSpec, after: Date, n: number): Date[] {
  const cron = compileCron(spec);
  const out: Date[] = [];
  let from = after;
  while (out.length < n) {
    const next = cron.next(from);
    if (!next) break;
    out.push(next);
    from = next;
  }
  return out;
}

/** An expression parsed once, for walking many ticks (parsing costs about as much as one step). */
export interface CompiledCron {
  /** The first fire time strictly after `after`, or null when there is none. */
  next(after: Date): Date | null;
  /** The last `n` fire times strictly before `before`, latest first (fewer near the expression's start). */
  previous(n: number, before: Date): Date[];
}

/** Throws CronError like validateCron, except for an expression that never fires. */
export function compileCron(spec: CronSpec): CompiledCron {
  return new ZonedCron(spec, parse(spec));
}

/** How far a search for a tick or a daylight-saving change looks (a yearly expression's span, and more). */
const HORIZON_MS = 400 * 86_400_000;
const DAY_MS = 86_400_000;
const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/** The zone's UTC offset at `t`, in minutes (east positive). */
function offsetMinutes(tz: string, t: number): number {
  let f = offsetFormats.get(tz);
  if (!f) offsetFormats.set(tz, (f = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' })));
  const name = f.formatToParts(t).find((p) => p.type === 'timeZoneName')!.value;
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}

interface ForwardChange {
  /** The first second with the new offset. */
  t: number;
  before: number;
  after: number;
}

/** Zone-years whose forward changes are kept (a few entries each). */
const MAX_CACHED_YEARS = 4096;
const forwardChangeCache = new Map<string, ForwardChange[]>();
/** No zone changes its offset twice within a week (Ramadan's suspensions of summer time last a month): a change and its undoing inside one step would go unseen. */
const CHANGE_STRIDE_MS = 7 * DAY_MS;

/** The forward changes of the zone's offset in (from, to], each found to the second. */
function forwardChangesIn(zone: string, from: number, to: number): ForwardChange[] {
  const changes: ForwardChange[] = [];
  // Offsets change on whole seconds: the search moves in whole seconds from one.
  let x = Math.floor(from / 1000) * 1000;
  const end = Math.ceil(to / 1000) * 1000;
  let before = offsetMinutes(zone, x);
  while (x < end) {
    const y = Math.min(end, x + CHANGE_STRIDE_MS);
    if (offsetMinutes(zone, y) === before) {
      x = y;
      continue;
    }
    // The first second in (x, y] with another offset; the search goes on from there.
    let lo = x;
    let hi = y;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (offsetMinutes(zone, mid) === before) lo = mid;
      else hi = mid;
    }
    const after = offsetMinutes(zone, hi);
    if (after > before) changes.push({ t: hi, before, after });
    x = hi;
    before = after;
  }
  return changes;
}

/** The forward changes of the zone's offset in a UTC year, found once per zone and year (see gapFire). */
function forwardChanges(zone: string, year: number): ForwardChange[] {
  const key = `${zone} ${year}`;
  const cached = forwardChangeCache.get(key);
  if (cached) return cached;
  const changes = forwardChangesIn(zone, Date.UTC(year, 0, 1), Date.UTC(year + 1, 0, 1));
  if (forwardChangeCache.size >= MAX_CACHED_YEARS) forwardChangeCache.delete(forwardChangeCache.keys().next().value!);
  forwardChangeCache.set(key, changes);
  return changes;
}

/**
 * How far from a run of the expression at one of the zone's offsets a change that skipped a
 * matching wall-clock time can lie: the time skipped plus the difference of the two offsets
 * (Samoa skipped a whole day in 2011). Three days leave room.
 */
const NEAR_RUN_MS = 3 * DAY_MS;
/** Windows around runs one search looks at before it reads whole years instead (an expression firing every few days across a long stretch). */
const MAX_WINDOWS = 64;
/** Ticks closer than this are searched through the cached zone-years, cheaper for an expression that fires often. */
const WINDOWED_SPAN_MS = 45 * DAY_MS;

/**
 * How many of the 24 hours an hour field names (`*`, `?`, `*\/1`, `0-23/1`, `0-11,12-23`: all of
 * them); 0 for a field it cannot read, which croner has accepted or refused already.
 */
function hoursOf(field: string): number {
  const hours = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(?:(\*|\?)|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(part);
    if (!m) return 0;
    const from = m[1] ? 0 : Number(m[2]);
    const to = m[1] ? 23 : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? 23 : from;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    if (step < 1) return 0;
    for (let h = from; h <= Math.min(to, 23); h += step) hours.add(h);
  }
  return hours.size;
}

/**
 * croner's ticks with the daylight-saving rule of this file's header made whole: croner moves a
 * fixed time that does not exist to the transition, but skips minutes stepping inside an hour that
 * does not exist (`*\/15 2 * * *`) and fires such minutes in both occurrences of a repeated hour
 * (`*\/20 1 * * *`). Here a nonexistent hour the expression matches fires once at the transition,
 * and a repeated wall-clock time fires only at its first occurrence unless the hour field steps
 * through every hour. Forward and backward walks apply the same rule, so they agree.
 */
class ZonedCron implements CompiledCron {
  private readonly everyHour: boolean;
  private readonly zone: string;
  private readonly fixedByOffset = new Map<number, Cron>();

  constructor(
    private readonly spec: CronSpec,
    private readonly cron: Cron,
  ) {
    this.zone = spec.timezone;
    const f = spec.cron.trim().split(/\s+/);
    const hour = spec.cron.trim().startsWith('@') ? (/^@(hourly|minutely|secondly)/i.test(spec.cron.trim()) ? '*' : '0') : f[f.length === 6 ? 2 : 1]!;
    this.everyHour = hoursOf(hour) === 24;
  }

  next(after: Date): Date | null {
    let from = after.getTime();
    for (;;) {
      const raw = this.cron.nextRun(new Date(from));
      const c = raw ? raw.getTime() : null;
      const gap = this.gapFire(from, c ?? from + HORIZON_MS, 'first');
      if (gap !== null && (c === null || gap < c)) return new Date(gap);
      if (c === null) return null;
      if (!this.repeated(c)) return new Date(c);
      from = c;
    }
  }

  previous(n: number, before: Date): Date[] {
    const out: Date[] = [];
    let to = before.getTime();
    while (out.length < n) {
      const raw = this.cron.previousRuns(1, new Date(to))[0];
      const c = raw ? raw.getTime() : null;
      const gap = this.gapFire(c ?? to - HORIZON_MS, to, 'last');
      if (gap !== null && (c === null || gap > c)) {
        out.push(new Date(gap));
        to = gap;
        continue;
      }
      if (c === null) break;
      if (!this.repeated(c)) out.push(new Date(c));
      to = c;
    }
    return out;
  }

  /** `t` shows a wall-clock time the zone already showed (the second pass through a repeated hour), and the hour field does not step through every hour. */
  private repeated(t: number): boolean {
    if (this.everyHour) return false;
    const off = offsetMinutes(this.zone, t);
    for (const d of [60, 30, 120]) if (offsetMinutes(this.zone, t - d * 60_000) - off === d) return true;
    return false;
  }

  /**
   * The instant of a forward change of the zone's offset strictly between `a` and `b` (the first
   * or the last) at which the expression would have fired within the skipped wall-clock time;
   * null when there is none. Such a change lies near a run of the expression read at a fixed
   * offset, so between ticks far apart only the days around those runs are searched: a preview
   * of 100 ticks of `0 0 29 2 *` looks at 200 windows rather than four centuries of changes.
   */
  private gapFire(a: number, b: number, which: 'first' | 'last'): number | null {
    if (b - a <= WINDOWED_SPAN_MS) return this.gapFireByYears(a, b, which, null);
    const probe = this.fixedAt(offsetMinutes(this.zone, a));
    let found: number | null = null;
    // Changes in (a, done] have been looked at.
    let done = a;
    let from = a - NEAR_RUN_MS;
    for (let windows = 0; done < b; windows++) {
      if (windows === MAX_WINDOWS) return this.gapFireByYears(done, b, which, found);
      const run = probe.nextRun(new Date(from));
      if (run === null || run.getTime() - NEAR_RUN_MS >= b) break;
      const r = run.getTime();
      // Runs in (r, r + NEAR] are skipped below: their windows end by r + 2 NEAR, covered here.
      const end = Math.min(b, r + 2 * NEAR_RUN_MS);
      for (const c of forwardChangesIn(this.zone, Math.max(done, r - NEAR_RUN_MS), end)) {
        if (!this.firesAt(c, done, b)) continue;
        if (which === 'first') return c.t;
        found = c.t;
      }
      done = Math.max(done, end);
      from = r + NEAR_RUN_MS;
    }
    return found;
  }

  /** gapFire's search of (a, b) through the zone's cached years. */
  private gapFireByYears(a: number, b: number, which: 'first' | 'last', found: number | null): number | null {
    for (let year = new Date(a).getUTCFullYear(); year <= new Date(b).getUTCFullYear(); year++) {
      for (const c of forwardChanges(this.zone, year)) {
        if (!this.firesAt(c, a, b)) continue;
        if (which === 'first') return c.t;
        found = c.t;
      }
    }
    return found;
  }

  /** The expression read at a fixed UTC offset (minutes), where every wall-clock time exists once. */
  private fixedAt(offset: number): Cron {
    let fixed = this.fixedByOffset.get(offset);
    if (!fixed) this.fixedByOffset.set(offset, (fixed = new Cron(this.spec.cron.trim(), { utcOffset: offset, paused: true })));
    return fixed;
  }

  /** The change lies in (a, b) and skipped a wall-clock time the expression matches: [wall(c.t) at c.before, + the change). */
  private firesAt(c: ForwardChange, a: number, b: number): boolean {
    if (c.t <= a || c.t >= b) return false;
    const r = this.fixedAt(c.before).nextRun(new Date(c.t - 1));
    return r !== null && r.getTime() < c.t + (c.after - c.before) * 60_000;
  }
}

/** The first fire time strictly after `after`, or null when there is none. */
export function nextTick(spec: CronSpec, after: Date): Date | null {
  return nextTicks(spec, after, 1)[0] ?? null;
}

/** `date` as RFC 3339 in the zone, with its UTC offset (2026-03-08T03:00:00-04:00). */
export function inZone(date: Date, timezone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  const offset = parts.timeZoneName === 'GMT' ? '+00:00' : parts.timeZoneName!.replace('GMT', '');
  const ms = date.getUTCMilliseconds();
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${ms ? `.${String(ms).padStart(3, '0')}` : ''}${offset}`;
}
