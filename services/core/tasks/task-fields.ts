/**
 * JSON Schemas of the task fields that requests name (type, priority, status, times), shared by
 * POST /tasks, the task filter and the OpenAPI document. The hand-written validators read their
 * patterns, bounds and enums from here, so the document cannot drift from what is enforced.
 */
import { Type } from '@sinclair/typebox';
import { StringEnum } from '../schema/json-schema';
import { BACKOFFS, JITTERS } from './backoff';
import { PRIORITIES, STATUSES } from './priority';

export const TaskTypeSchema = Type.String({
  pattern: '^[A-Za-z0-9_.:-]{1,128}$',
  description: 'The handler that runs the task: 1-128 characters of letters, digits, _ . : -',
  examples: ['email.send'],
});

export const PrioritySchema = StringEnum(PRIORITIES, { description: 'Highest first: critical, high, default, low.' });

export const StatusSchema = StringEnum(STATUSES);

export const ScheduleNameSchema = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$',
  description: 'A schedule name: 1-128 letters, digits, . _ - (starting with a letter or digit), unique per tenant.',
  examples: ['nightly-report'],
});

/**
 * A retry policy: a task's own (POST /tasks `retry`) or a handler's default. Every field optional,
 * the rest from the handler's or the environment's; policy-check.ts enforces it for both.
 */
export const RetryPolicySchema = Type.Object(
  {
    backoff: Type.Optional(StringEnum(BACKOFFS, { description: 'exponential: base_ms·2^(n-1); linear: base_ms·n; fixed: base_ms (n: the failed attempt). Default exponential.' })),
    base_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'Default RETRY_BASE_MS.' })),
    max_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 604_800_000, description: 'The longest delay (at most 7 days). Default RETRY_MAX_MS.' })),
    jitter: Type.Optional(StringEnum(JITTERS, { description: 'full: a random delay up to the computed one; equal: half of it plus a random half; none. Default: up to RETRY_JITTER_MS added.' })),
  },
  { additionalProperties: false, description: 'How long a failed attempt waits before the next. Precedence: the task\'s own, then its handler\'s, then the environment\'s.' },
);

/** An attempt's time limit: a task's own (POST /tasks `timeout_ms`) or a handler's default. */
export const TimeoutMsSchema = Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'An attempt running longer is aborted and fails (default: its handler\'s, else TASK_TIMEOUT_MS).' });

// RFC 3339 with a zone (Z or an offset): a time without one would be read in the server's zone.
const RFC3339 = '^(\\d{4})-(\\d{2})-(\\d{2})[Tt ](\\d{2}):(\\d{2}):(\\d{2})(?:\\.\\d{1,9})?(?:[Zz]|[+-](\\d{2}):(\\d{2}))$';

export const TimeSchema = Type.String({
  format: 'date-time',
  pattern: RFC3339,
  description: 'An RFC 3339 time with a zone (Z or an offset), e.g. 2026-12-05T10:00:00Z; no leap seconds; from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.',
});

// The times Postgres's timestamptz takes as an ISO string (year 0 and years past 9999 it refuses).
const MIN_TIME_MS = Date.parse('0001-01-01T00:00:00Z');
const MAX_TIME_MS = Date.parse('9999-12-31T23:59:59.999Z');

const TIME = new RegExp(RFC3339);

/**
 * The time a TimeSchema string names, or null: the pattern, and a real calendar date and time (as
 * the `date-time` format asks: no 30 February, no hour 24), which `new Date` alone would roll over;
 * within the years 1 to 9999 once in UTC, which Postgres stores.
 */
export function parseTime(s: string): Date | null {
  const m = TIME.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, sec, oh, om] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v))) as number[];
  const leap = y! % 4 === 0 && (y! % 100 !== 0 || y! % 400 === 0);
  const days = mo === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(mo!) ? 30 : 31;
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > days || h! > 23 || mi! > 59 || sec! > 59 || oh! > 23 || om! > 59) return null;
  const t = new Date(s.replace(' ', 'T'));
  const ms = t.getTime();
  return Number.isNaN(ms) || ms < MIN_TIME_MS || ms > MAX_TIME_MS ? null : t;
}

/**
 * A TimeSchema string parseTime took, at timestamptz's precision: whole microseconds in UTC,
 * rounded down or up when it is finer (it may go to nanoseconds). Through a Date it would be cut
 * to milliseconds, and a bound of .123456 would take in a task created at .123100. For a strict
 * bound: created_at > t is created_at > t rounded down, created_at < t is created_at < t rounded up.
 */
export function microsecondTime(s: string, round: 'down' | 'up'): string {
  const digits = (/^\.(\d{1,9})/.exec(s.slice(19))?.[1] ?? '').padEnd(9, '0');
  // The time to the millisecond (parseTime cuts the rest), then the microseconds and what is finer.
  let ms = parseTime(s)!.getTime();
  let us = Number(digits.slice(3, 6));
  if (round === 'up' && Number(digits.slice(6)) > 0 && ++us === 1000) {
    us = 0;
    ms += 1;
  }
  // Rounded up past 9999 the year has five digits, which toISOString signs (+010000) and Postgres does not take.
  return `${new Date(ms).toISOString().replace(/^\+0*/, '').slice(0, -1)}${String(us).padStart(3, '0')}Z`;
}
