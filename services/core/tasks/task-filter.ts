/**
 * The task filter shared by GET /tasks (query parameters) and the bulk routes (`{"filter": {...}}`):
 * status, type, priority, created_after, created_before, schedule. Statuses and priorities may be lists
 * (comma-separated in a query, an array or a comma-separated string in JSON). Parsing reports every
 * problem with the field it concerns; the SQL it makes is parameterized, never spliced.
 */
import { Static, Type } from '@sinclair/typebox';
import { EnumList } from '../schema/json-schema';
import { Priority, PRIORITIES, STATUSES, TaskStatus } from './priority';
import { microsecondTime, parseTime, ScheduleNameSchema, TaskTypeSchema, TimeSchema } from './task-fields';

/**
 * The filter as JSON Schema (for the bulk bodies and GET /tasks's query), its statuses narrowed to
 * those a caller may name (the bulk actions each apply to some). parseFilter enforces the same.
 */
export function filterSchema(statuses: readonly TaskStatus[] = STATUSES) {
  return Type.Object(
    {
      status: Type.Optional(EnumList(statuses, { description: 'Tasks in any of these statuses.' })),
      type: Type.Optional(TaskTypeSchema),
      priority: Type.Optional(EnumList(PRIORITIES, { description: 'Tasks of any of these priorities.' })),
      created_after: Type.Optional(Type.Unsafe<string>({ ...TimeSchema, description: `Created strictly after this time. ${TimeSchema.description}` })),
      created_before: Type.Optional(Type.Unsafe<string>({ ...TimeSchema, description: `Created strictly before this time. ${TimeSchema.description}` })),
      schedule: Type.Optional(Type.Unsafe<string>({ ...ScheduleNameSchema, description: 'Tasks created by this schedule (its ticks and manual triggers).' })),
    },
    { additionalProperties: false },
  );
}
export type FilterInput = Static<ReturnType<typeof filterSchema>>;

export interface TaskFilter {
  statuses?: TaskStatus[];
  type?: string;
  priorities?: Priority[];
  /** Strict bounds on created_at, to the microsecond (microsecondTime: created_after rounded down, created_before up). */
  createdAfter?: string;
  createdBefore?: string;
  schedule?: string;
}

export interface FilterProblem {
  field: string;
  message: string;
}

export const FILTER_FIELDS = Object.keys(filterSchema().properties) as (keyof FilterInput)[];
const TYPE_PATTERN = new RegExp(TaskTypeSchema.pattern!);
const SCHEDULE_PATTERN = new RegExp(ScheduleNameSchema.pattern!);

/** Parses the filter fields of `input` (a query object or a JSON object); other keys are left to the caller. */
export function parseFilter(input: Record<string, unknown>, prefix = ''): { filter: TaskFilter; problems: FilterProblem[] } {
  const filter: TaskFilter = {};
  const problems: FilterProblem[] = [];
  const name = (f: string) => `${prefix}${f}`;
  const list = (f: string, v: unknown): string[] | null => {
    const items = Array.isArray(v) ? v : [v];
    if (!items.every((x) => typeof x === 'string')) {
      problems.push({ field: name(f), message: 'must be a string or a list of strings' });
      return null;
    }
    const out = (items as string[]).flatMap((x) => x.split(',')).map((x) => x.trim());
    if (out.length === 0 || out.some((x) => x === '')) {
      problems.push({ field: name(f), message: 'must not be empty' });
      return null;
    }
    return [...new Set(out)];
  };
  if (input.status !== undefined) {
    const v = list('status', input.status);
    const bad = v?.filter((s) => !(STATUSES as readonly string[]).includes(s)) ?? [];
    if (bad.length) problems.push({ field: name('status'), message: `unknown status ${bad.map((b) => JSON.stringify(b)).join(', ')}; one of ${STATUSES.join(', ')}` });
    else if (v) filter.statuses = v as TaskStatus[];
  }
  if (input.priority !== undefined) {
    const v = list('priority', input.priority);
    const bad = v?.filter((p) => !(PRIORITIES as readonly string[]).includes(p)) ?? [];
    if (bad.length) problems.push({ field: name('priority'), message: `unknown priority ${bad.map((b) => JSON.stringify(b)).join(', ')}; one of ${PRIORITIES.join(', ')}` });
    else if (v) filter.priorities = v as Priority[];
  }
  if (input.type !== undefined) {
    if (typeof input.type !== 'string' || !TYPE_PATTERN.test(input.type)) problems.push({ field: name('type'), message: 'must be 1-128 characters of letters, digits, _ . : -' });
    else filter.type = input.type;
  }
  if (input.schedule !== undefined) {
    if (typeof input.schedule !== 'string' || !SCHEDULE_PATTERN.test(input.schedule)) problems.push({ field: name('schedule'), message: 'must be a schedule name: 1-128 letters, digits, . _ - starting with a letter or digit' });
    else filter.schedule = input.schedule;
  }
  for (const [f, key] of [['created_after', 'createdAfter'], ['created_before', 'createdBefore']] as const) {
    const v = input[f];
    if (v === undefined) continue;
    const d = typeof v === 'string' ? parseTime(v) : null;
    if (!d) problems.push({ field: name(f), message: 'must be an RFC 3339 time with a zone, e.g. 2026-12-05T10:00:00Z' });
    else filter[key] = microsecondTime(v as string, key === 'createdAfter' ? 'down' : 'up');
  }
  return { filter, problems };
}

/**
 * The filter as a SQL condition on `tasks` (without the tenant), its parameters numbered from
 * `$first`; an empty filter is `TRUE`.
 */
export function filterSql(filter: TaskFilter, first = 1): { sql: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  const param = (v: unknown) => {
    values.push(v);
    return `$${first + values.length - 1}`;
  };
  if (filter.statuses) parts.push(`status = ANY(${param(filter.statuses)}::task_status[])`);
  if (filter.type !== undefined) parts.push(`type = ${param(filter.type)}`);
  if (filter.priorities) parts.push(`priority = ANY(${param(filter.priorities)}::text[])`);
  if (filter.createdAfter) parts.push(`created_at > ${param(filter.createdAfter)}::timestamptz`);
  if (filter.createdBefore) parts.push(`created_at < ${param(filter.createdBefore)}::timestamptz`);
  if (filter.schedule !== undefined) parts.push(`schedule = ${param(filter.schedule)}`);
  return { sql: parts.length ? parts.join(' AND ') : 'TRUE', values };
}
