/**
 * What the API answers, as JSON Schema: tasks (core/tasks/task.ts's taskToJson), batch results,
 * problems (problem.ts), health and readiness. Objects are closed (additionalProperties: false) so
 * that a field the API starts to send without it being documented here fails the contract test
 * (test/support/contract.ts). A new response field is added here, in the object that sends it.
 */
import { Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from '../../core/schema/json-schema';
import { PrioritySchema, StatusSchema, TaskTypeSchema } from '../../core/tasks/task-fields';
import { RetryPolicySchema } from './task-input';
import { MAX_FIELD_ERRORS } from '../problem';

const Time = Type.String({ format: 'date-time' });
const TimeOrNull = (description: string) => Nullable(Time, { description });

// The outcomes task_runs allows (migrations/0007_cancel_and_redrive.sql).
export const RUN_OUTCOMES = ['succeeded', 'failed', 'expired', 'released', 'discarded', 'cancelled'] as const;

export const RunSchema = Type.Object(
  {
    attempt: Type.Integer({ minimum: 1 }),
    worker_id: Type.String(),
    outcome: StringEnum(RUN_OUTCOMES, { description: 'expired: the lease ran out; released: handed back at shutdown; discarded: the outcome came after the lease was lost.' }),
    error: Nullable(Type.String()),
    error_type: Nullable(Type.String({ description: "The error's name, or its code (ECONNRESET)." })),
    error_stack: Nullable(Type.String({ description: 'Its stack trace, at most 16 KiB.' })),
    started_at: Time,
    finished_at: TimeOrNull('Null while the attempt runs.'),
    duration_ms: Nullable(Type.Number({ minimum: 0, description: 'Milliseconds, fractional; null while the attempt runs.' })),
  },
  { additionalProperties: false },
);

export const TaskSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'A UUIDv7 (time-ordered).' }),
    tenant: Type.String(),
    type: TaskTypeSchema,
    priority: PrioritySchema,
    payload: Type.Unknown({ description: 'As submitted.' }),
    status: StatusSchema,
    attempts: Type.Integer({ minimum: 0 }),
    max_retries: Type.Integer({ minimum: 0 }),
    idempotency_key: Nullable(Type.String()),
    last_error: Nullable(Type.String()),
    next_attempt_at: TimeOrNull('When a retrying task runs again.'),
    created_at: Time,
    updated_at: Time,
    started_at: TimeOrNull('When its first attempt started.'),
    finished_at: TimeOrNull('When it reached a final status.'),
    cancel_requested_at: TimeOrNull('When an operator asked to cancel it.'),
    retry: Nullable(RetryPolicySchema, { description: 'Its own retry policy, as submitted (null: its handler\'s or the environment\'s).' }),
    timeout_ms: Nullable(Type.Integer({ minimum: 1 }), { description: 'Its own timeout (null: its handler\'s or the environment\'s).' }),
    result: Type.Unknown({ description: 'What its handler returned when it succeeded (JSON, at most 64 KiB); null until then.' }),
    run_at: TimeOrNull('When a delayed task is due (run_at or delay_ms); it is `scheduled` until then. Null: it was queued at once.'),
    schedule: Nullable(Type.String(), { description: 'The schedule that created it (null: none).' }),
    scheduled_for: TimeOrNull('The schedule tick it was created for (null: not created by a tick, e.g. a manual trigger).'),
    workflow_id: Nullable(Type.String({ format: 'uuid' }), { description: 'The workflow it is a step of (null: none).' }),
    step_key: Nullable(Type.String(), { description: 'Its key in that workflow (null: not a step).' }),
    runs: Type.Optional(Type.Array(RunSchema, { description: 'Its attempts, oldest first (GET /tasks/{id} and the single-task actions).' })),
  },
  { additionalProperties: false },
);

export const FieldErrorSchema = Type.Object({ field: Type.String(), message: Type.String() }, { additionalProperties: false });

/** RFC 9457 problem details, as problem.ts writes them. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'urn:task-scheduler:problem:<slug of the title>' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.String(),
    instance: Type.Optional(Type.String({ description: 'The path asked for.' })),
    errors: Type.Optional(
      Type.Array(FieldErrorSchema, {
        maxItems: MAX_FIELD_ERRORS,
        description: `Each problem with the field it concerns (body fields, \`tasks[3].priority\`, \`filter.status\`, headers, \`id\`, \`tenant\`); at most ${MAX_FIELD_ERRORS}, the last then saying how many more there were.`,
      }),
    ),
    changed: Type.Optional(
      Type.Integer({ minimum: 0, description: 'A call that commits in parts (a bulk cancel or retry, a workflow cancel) and failed part way: the tasks its committed parts changed.' }),
    ),
    next_cursor: Type.Optional(
      Nullable(Type.String(), { description: 'A bulk cancel or retry that failed part way: send it as `cursor` to carry on; every matching task before it was handled, none after it changed (null: from the newest).' }),
    ),
  },
  { additionalProperties: false },
);

export const BatchResultSchema = Type.Object(
  {
    results: Type.Array(
      Type.Union([
        Type.Object({ status: IntEnum([200, 201]), task: TaskSchema }, { additionalProperties: false }),
        Type.Object({ status: IntEnum([400, 409]), error: ProblemSchema }, { additionalProperties: false }),
      ]),
      { description: 'One per task, in request order: 201 created, 200 an idempotent replay, 400 invalid, 409 idempotency conflict.' },
    ),
  },
  { additionalProperties: false },
);

function IntEnum<T extends number>(values: T[]) {
  return Type.Unsafe<T>({ type: 'integer', enum: values });
}

export const HealthSchema = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false });

export const ReadinessSchema = Type.Object(
  {
    status: StringEnum(['ready', 'unavailable'] as const),
    checks: Type.Unsafe<Record<string, string>>({
      type: 'object',
      additionalProperties: { type: 'string' },
      description: "Each dependency (postgres, redis): 'ok' or why its check failed. Postgres decides readiness; so does `layout`, present only when the queue in Redis was repartitioned (or is being) under this API, which must then be restarted with the new REDIS_PARTITIONS.",
    }),
  },
  { additionalProperties: false },
);

const Count = Type.Integer({ minimum: 0 });

/** GET /queues (operator/queues-route.ts). */
export const QueuesSchema = Type.Object(
  {
    tenant: Type.String(),
    priorities: Type.Unsafe<Record<string, unknown>>({
      type: 'object',
      description: 'One entry per priority (critical, high, default, low).',
      propertyNames: PrioritySchema,
      additionalProperties: Type.Object(
        {
          queued: Type.Integer({ minimum: 0, description: 'Ready to run now.' }),
          scheduled: Type.Integer({ minimum: 0, description: 'To run later.' }),
          retrying: Count,
          running: Count,
          dead: Count,
          cancelled: Count,
          oldest_waiting_seconds: Type.Number({ minimum: 0, description: 'How long the oldest ready task has waited.' }),
          last_minute: Type.Object(
            { enqueued: Count, succeeded: Count, retried: Count, dead: Count, cancelled: Count },
            { additionalProperties: false, description: 'What went through in the last minute.' },
          ),
        },
        { additionalProperties: false },
      ),
    }),
    running_now: Type.Integer({ minimum: 0, description: 'Attempts of the tenant running now (leases held).' }),
    workers: Nullable(
      Type.Array(Type.Object({ id: Type.String(), slots: Nullable(Type.Integer({ minimum: 0 }), { description: 'Tasks it runs at once (null: it did not say).' }) }, { additionalProperties: false })),
      { description: 'The live workers; null when not known (on a Redis Cluster, the master holding their announcements did not answer).' },
    ),
    as_of: Time,
  },
  { additionalProperties: false },
);
