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
  const cron = parse(spec);
  const out: Date[] = [];
  let from = after;
  while (out.length < n) {
    const next = cron.nextRun(from);
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
  const cron = parse(spec);
  return { next: (after) => cron.nextRun(after), previous: (n, before) => cron.previousRuns(n, before) };
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
