/** --status, --type, --priority, --created-after, --created-before, --schedule: the filters of tasks list, dlq and redrive. */
import type { TaskFilter } from '../client';
import { PRIORITIES, STATUSES } from '../core/tasks/priority';
import { microsecondTime, parseTime as apiTime, ScheduleNameSchema } from '../core/tasks/task-fields';
import { parseDuration, UsageError } from './args';

export const FILTER_OPTIONS = {
  status: { type: 'string' },
  type: { type: 'string' },
  priority: { type: 'string' },
  'created-after': { type: 'string' },
  'created-before': { type: 'string' },
  schedule: { type: 'string' },
} as const;

export const FILTER_USAGE = '[--status S] [--type T] [--priority P] [--created-after TIME] [--created-before TIME] [--schedule NAME]';
export const TIME_USAGE = 'TIME: an RFC 3339 time (2026-01-31T22:00:00Z) or an age such as 90m, 12h, 7d (that long ago)';

const TYPE_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
const SCHEDULE_PATTERN = new RegExp(ScheduleNameSchema.pattern!);
const RFC3339 = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(?:(:\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/i;

export function parseFilter(values: Record<string, string | boolean | undefined>, nowMs = Date.now()): TaskFilter {
  const f: TaskFilter = {};
  if (typeof values.status === 'string') f.status = listOf(values.status, '--status', STATUSES).join(',');
  if (typeof values.type === 'string') {
    if (!TYPE_PATTERN.test(values.type)) throw new UsageError(`--type must be 1-128 characters of letters, digits, _ . : -, got ${JSON.stringify(values.type)}`);
    f.type = values.type;
  }
  if (typeof values.schedule === 'string') {
    if (!SCHEDULE_PATTERN.test(values.schedule)) throw new UsageError(`--schedule must be a schedule name (1-128 letters, digits, . _ - starting with a letter or digit), got ${JSON.stringify(values.schedule)}`);
    f.schedule = values.schedule;
  }
  if (typeof values.priority === 'string') f.priority = listOf(values.priority, '--priority', PRIORITIES).join(',');
  for (const [option, field] of [['created-after', 'created_after'], ['created-before', 'created_before']] as const) {
    const v = values[option];
    if (typeof v === 'string') f[field] = parseTime(v, `--${option}`, nowMs);
  }
  // To the microsecond, as the API compares them (Date.parse would cut both to the millisecond).
  if (f.created_after && f.created_before && microsecondTime(f.created_after, 'down') >= microsecondTime(f.created_before, 'up')) {
    throw new UsageError('--created-after must be earlier than --created-before');
  }
  return f;
}

/** One value or a comma-separated list, each one of `allowed`. */
function listOf(text: string, option: string, allowed: readonly string[]): string[] {
  const items = text.split(',').map((x) => x.trim());
  const bad = items.find((x) => !allowed.includes(x));
  if (bad !== undefined) throw new UsageError(`${option} must be one of ${allowed.join(', ')} (or a comma-separated list), got ${JSON.stringify(bad)}`);
  return [...new Set(items)];
}

/**
 * An RFC 3339 time (a date alone is midnight UTC, a time without a zone UTC), or an age ("12h":
 * twelve hours ago), as the API takes it. A time is completed (seconds, a zone) and sent as written,
 * checked as the API checks it: through a Date, 30 February would become 2 March and a bound lose
 * its microseconds.
 */
export function parseTime(text: string, option: string, nowMs = Date.now()): string {
  if (/^\d+[smhdw]$/.test(text)) return new Date(nowMs - parseDuration(text, option)).toISOString();
  const m = RFC3339.exec(text);
  const full = m ? `${m[1]}T${m[2] ?? '00:00'}${m[3] ?? ':00'}${m[4] ?? ''}${m[5] ?? 'Z'}` : null;
  if (full === null || apiTime(full) === null) throw new UsageError(`${option} must be an RFC 3339 time (e.g. 2026-01-31T22:00:00Z) or an age such as 12h or 7d, got ${JSON.stringify(text)}`);
  return full;
}
