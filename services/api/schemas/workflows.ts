/**
 * Workflows (issue 20): what POST /workflows accepts, GET /workflows's query, and what the routes
 * answer, as JSON Schema. The OpenAPI document shows these and workflows/workflow-input.ts enforces
 * them (its names, bounds and enums are read from here); a step is held to POST /tasks's rules.
 */
import { Type } from '@sinclair/typebox';
import { EnumList, Nullable, StringEnum } from '../../core/schema/json-schema';
import { STATUSES } from '../../core/tasks/priority';
import { PrioritySchema, StatusSchema, TaskTypeSchema, TimeSchema } from '../../core/tasks/task-fields';
import { FAILURE_POLICIES, MAX_STEP_DEPENDENCIES, MAX_WORKFLOW_STEPS, STEP_KEY_PATTERN, WORKFLOW_STATUSES } from '../../core/workflows/workflow';
import { TaskInputSchema } from './task-input';

const Time = Type.String({ format: 'date-time' });
const Count = Type.Integer({ minimum: 0 });

/** A step's status is its task's; `waiting` until its dependencies have succeeded. */
export const STEP_STATUSES = STATUSES;

export const WorkflowNameSchema = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$',
  description: 'A name for people and filters (not unique): 1-200 letters, digits, . _ : - starting with a letter or digit.',
  examples: ['nightly-etl'],
});

export const StepKeySchema = Type.String({ pattern: STEP_KEY_PATTERN, description: 'The step, unique in its workflow: 1-128 letters, digits, . _ : - starting with a letter or digit.', examples: ['extract'] });

export const FailurePolicySchema = StringEnum(FAILURE_POLICIES, {
  description: 'When a step ends dead or cancelled, the steps that depend on it are cancelled either way; cancel_dependents also cancels every other step not started yet, queued ones included (the workflow stops; running ones finish, and are not retried), continue lets independent branches run on. Default cancel_dependents.',
});

/** A step: POST /tasks's fields without an idempotency key or a delay, plus its key and dependencies. */
export const WorkflowStepInputSchema = Type.Object(
  {
    key: StepKeySchema,
    ...Type.Omit(TaskInputSchema, ['idempotency_key', 'run_at', 'delay_ms']).properties,
    depends_on: Type.Optional(
      Type.Array(StepKeySchema, {
        maxItems: MAX_STEP_DEPENDENCIES,
        uniqueItems: true,
        description: 'Keys of the steps that must succeed before this one is queued (other steps of this workflow, not itself, each once). Default none: it is queued at once.',
      }),
    ),
  },
  { additionalProperties: false, description: 'A step: a task with the rules of POST /tasks (no idempotency_key, run_at or delay_ms), its key and its dependencies.' },
);

export const WorkflowInputSchema = Type.Object(
  {
    name: WorkflowNameSchema,
    on_failure: Type.Optional({ ...FailurePolicySchema, default: 'cancel_dependents' }),
    tasks: Type.Array(WorkflowStepInputSchema, {
      minItems: 1,
      maxItems: MAX_WORKFLOW_STEPS,
      description: 'The steps, in any order; their dependencies must form no cycle. All are created together or none is.',
    }),
  },
  { additionalProperties: false },
);

export const WorkflowListQuerySchema = Type.Object(
  {
    status: Type.Optional(EnumList(WORKFLOW_STATUSES, { description: 'Workflows in any of these statuses.' })),
    name: Type.Optional(WorkflowNameSchema),
    created_after: Type.Optional(Type.Unsafe<string>({ ...TimeSchema, description: `Created strictly after this time. ${TimeSchema.description}` })),
    created_before: Type.Optional(Type.Unsafe<string>({ ...TimeSchema, description: `Created strictly before this time. ${TimeSchema.description}` })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Workflows per page.' })),
    cursor: Type.Optional(Type.String({ description: 'next_cursor of the page before, as it came.' })),
  },
  { additionalProperties: false },
);

export const WorkflowSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    tenant: Type.String(),
    name: Type.String(),
    status: StringEnum(WORKFLOW_STATUSES, { description: 'running until every step is final; then succeeded (all succeeded), failed (one ended dead or cancelled) or cancelled (by POST /workflows/{id}/cancel).' }),
    on_failure: FailurePolicySchema,
    steps_total: Type.Integer({ minimum: 1 }),
    steps_unfinished: Type.Integer({ minimum: 0, description: 'Steps not final yet.' }),
    steps_failed: Type.Integer({ minimum: 0, description: 'Steps that ended dead or cancelled.' }),
    idempotency_key: Nullable(Type.String()),
    cancel_requested_at: Nullable(Time, { description: 'When it was cancelled.' }),
    created_at: Time,
    updated_at: Time,
    finished_at: Nullable(Time, { description: 'When its last step became final.' }),
  },
  { additionalProperties: false },
);

export const WorkflowStepSchema = Type.Object(
  {
    key: Type.String(),
    task_id: Type.String({ format: 'uuid', description: 'The step\'s task (GET /tasks/{id} has its payload and runs).' }),
    type: TaskTypeSchema,
    priority: PrioritySchema,
    status: StatusSchema,
    attempts: Count,
    depends_on: Type.Array(Type.String(), { description: 'Keys of the steps it waits for.' }),
    deps_waiting: Count,
    cancelled_by: Nullable(Type.String(), { description: 'The key of the step whose failure cancelled it.' }),
    last_error: Nullable(Type.String()),
    created_at: Time,
    started_at: Nullable(Time, { description: 'When its first attempt started.' }),
    finished_at: Nullable(Time),
  },
  { additionalProperties: false },
);

export const WorkflowDetailSchema = Type.Object(
  {
    workflow: Type.Object(
      {
        ...WorkflowSchema.properties,
        counts: Type.Unsafe<Record<string, number>>({
          type: 'object',
          propertyNames: StatusSchema,
          additionalProperties: { type: 'integer', minimum: 0 },
          description: 'Steps per status (each status, 0 when none).',
        }),
      },
      { additionalProperties: false },
    ),
    steps: Type.Array(WorkflowStepSchema, { description: 'Every step, in the order submitted.' }),
  },
  { additionalProperties: false },
);

export const WorkflowCreatedSchema = Type.Object(
  {
    workflow: WorkflowSchema,
    steps: Type.Array(Type.Object({ key: Type.String(), task_id: Type.String({ format: 'uuid' }) }, { additionalProperties: false }), { description: 'Each step\'s task, in the order submitted.' }),
  },
  { additionalProperties: false },
);

export const WorkflowPageSchema = Type.Object(
  {
    workflows: Type.Array(WorkflowSchema, { description: 'Newest first.' }),
    next_cursor: Nullable(Type.String(), { description: 'The next page, or null at the last one.' }),
  },
  { additionalProperties: false },
);

export const WorkflowCancelledSchema = Type.Object(
  {
    workflow: WorkflowSchema,
    cancelled: Type.Integer({ minimum: 0, description: 'Steps cancelled at once (waiting or queued).' }),
    cancelling: Type.Integer({ minimum: 0, description: 'Running steps asked to stop; each becomes cancelled when its attempt ends (unless it succeeds first).' }),
  },
  { additionalProperties: false },
);
