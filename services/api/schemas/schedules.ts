/**
 * Cron schedules (issue 19): what POST /schedules and PATCH /schedules/{name} accept, GET
 * /schedules's query, and what the routes answer, as JSON Schema. The OpenAPI document shows these
 * and schedules/schedule-input.ts enforces them (its names, bounds and enums are read from here);
 * test/unit/schema-agreement.test.ts checks that both agree.
 */
import { Type } from '@sinclair/typebox';
import { MISFIRE_POLICIES, OVERLAP_POLICIES } from '../../core/schedules/schedule';
import { Nullable, StringEnum } from '../../core/schema/json-schema';
import { PrioritySchema, ScheduleNameSchema, StatusSchema, TaskTypeSchema } from '../../core/tasks/task-fields';
import { RetryPolicySchema, TaskInputSchema } from './task-input';

const Time = Type.String({ format: 'date-time' });

// One name rule for schedules, shared with the task filter (`?schedule=`).
export { ScheduleNameSchema };
export const SCHEDULE_NAME_PATTERN = ScheduleNameSchema.pattern!;

/**
 * The task each tick creates: POST /tasks's fields without an idempotency key (a tick is its own
 * key) and without run_at or delay_ms (a tick's time is when it runs).
 */
export const SCHEDULE_TASK_OMITS = ['idempotency_key', 'run_at', 'delay_ms'] as const;
export const ScheduleTaskSchema = Type.Omit(TaskInputSchema, [...SCHEDULE_TASK_OMITS], {
  additionalProperties: false,
  description: 'The task each tick (and each trigger) creates, with the rules of POST /tasks; no idempotency_key (a tick is created at most once by itself), no run_at or delay_ms (a tick runs at its time: shift the expression instead).',
});

const cronField = Type.String({
  minLength: 1,
  maxLength: 256,
  description: '5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a nickname (@hourly, @daily, @weekly, @monthly, @yearly). An expression that never fires (30 February) is refused.',
  examples: ['*/15 * * * *', '0 30 2 * * *', '@daily'],
});
const timezoneField = Type.String({ minLength: 1, maxLength: 64, description: 'An IANA time zone the expression is read in (default UTC).', examples: ['UTC', 'Europe/Berlin'] });
const misfireField = StringEnum(MISFIRE_POLICIES, {
  description: 'Ticks missed while no worker could fire them (not while paused): skip them, run_once (one task for all of them), or catch_up (one per missed tick, at most catch_up_limit). Default run_once.',
});
const catchUpField = Type.Integer({ minimum: 1, maximum: 1000, description: 'Most missed ticks catch_up fires at once (default 10).' });
const overlapField = StringEnum(OVERLAP_POLICIES, { description: "allow: a tick fires whatever its earlier tasks are doing; skip: a tick is skipped while the schedule's previous task is unfinished. Default allow." });
const pausedField = Type.Boolean({ description: 'A paused schedule fires nothing; resuming it starts from the next tick after now (ticks missed while paused never run). Default false.' });

export const ScheduleInputSchema = Type.Object(
  {
    name: ScheduleNameSchema,
    cron: cronField,
    timezone: Type.Optional({ ...timezoneField, default: 'UTC' }),
    task: ScheduleTaskSchema,
    misfire: Type.Optional({ ...misfireField, default: 'run_once' }),
    catch_up_limit: Type.Optional({ ...catchUpField, default: 10 }),
    overlap: Type.Optional({ ...overlapField, default: 'allow' }),
    paused: Type.Optional({ ...pausedField, default: false }),
  },
  { additionalProperties: false },
);

export const SchedulePatchSchema = Type.Object(
  {
    cron: Type.Optional(cronField),
    timezone: Type.Optional(timezoneField),
    task: Type.Optional({ ...ScheduleTaskSchema, description: 'Replaces the task whole (fields left out take their defaults).' }),
    misfire: Type.Optional(misfireField),
    catch_up_limit: Type.Optional(catchUpField),
    overlap: Type.Optional(overlapField),
    paused: Type.Optional(pausedField),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'The fields to change; the others are kept. A new cron or timezone, or paused: false on a paused schedule, sets the next tick to the first one after now.',
  },
);

export const ScheduleListQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100, description: 'Schedules per page at most; a page also ends before 8 MiB of schedules (their tasks as JSON), so one of large payloads holds fewer, with next_cursor set.' })),
    cursor: Type.Optional(Type.String({ description: 'next_cursor of the page before, as it came.' })),
  },
  { additionalProperties: false },
);

export const PREVIEW_DEFAULT = 5;
export const ScheduleGetQuerySchema = Type.Object(
  {
    preview: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: PREVIEW_DEFAULT, description: 'How many next fire times to list.' })),
  },
  { additionalProperties: false },
);

/** The stored task, as a schedule shows it (defaults filled in). */
const StoredTaskSchema = Type.Object(
  {
    type: TaskTypeSchema,
    priority: PrioritySchema,
    payload: Type.Unknown(),
    max_retries: Type.Integer({ minimum: 0 }),
    retry: Nullable(RetryPolicySchema),
    timeout_ms: Nullable(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

export const ScheduleSchema = Type.Object(
  {
    tenant: Type.String(),
    name: Type.String(),
    cron: Type.String(),
    timezone: Type.String(),
    task: StoredTaskSchema,
    misfire: misfireField,
    catch_up_limit: Type.Integer({ minimum: 1 }),
    overlap: overlapField,
    paused: Type.Boolean(),
    next_tick: Nullable(Time, { description: 'The earliest tick not fired or skipped yet (UTC; null: the expression fires no more).' }),
    last_tick: Nullable(Time, { description: 'The latest tick fired or skipped.' }),
    last_outcome: Nullable(StringEnum(['fired', 'skipped_misfire', 'skipped_overlap'] as const), { description: 'What became of last_tick.' }),
    created_at: Time,
    updated_at: Time,
  },
  { additionalProperties: false },
);

export const ScheduleTickSchema = Type.Object(
  {
    at: Time,
    local: Type.String({ description: 'The same instant in the schedule\'s time zone, RFC 3339 with its UTC offset (2026-03-29T03:00:00+02:00).' }),
  },
  { additionalProperties: false },
);

export const ScheduleRunSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    status: StatusSchema,
    scheduled_for: Nullable(Time, { description: 'The tick it was created for (null: a manual trigger).' }),
    created_at: Time,
    finished_at: Nullable(Time),
  },
  { additionalProperties: false },
);

export const ScheduleDetailSchema = Type.Object(
  {
    ...ScheduleSchema.properties,
    next_ticks: Type.Array(ScheduleTickSchema, {
      description: 'The next fire times (?preview=N of them, default 5): from next_tick on, or for a paused schedule from now (what resuming would give). Fewer when the expression runs out.',
    }),
    last_runs: Type.Array(ScheduleRunSchema, { description: "The schedule's latest tasks, newest first (at most 10)." }),
  },
  { additionalProperties: false },
);

export const SchedulePageSchema = Type.Object(
  {
    schedules: Type.Array(ScheduleSchema, { description: 'By name.' }),
    next_cursor: Nullable(Type.String(), { description: 'The next page, or null at the last one.' }),
  },
  { additionalProperties: false },
);
